//! Exponential weight regulariser (spec §3.4, S12):
//! `R_ij = λ β (w_ij/L) exp(β (S_i − 1))`, `S_i = (1/N_in) Σ_l (w_il/L)²`.
//!
//! It is the gradient of the penalty `P = Σ_i λ (N_in L / 2) exp(β (S_i − 1))`, which is how
//! training adds it (as an ordinary differentiable term of the loss, see [`crate::loss`]).

use serde::{Deserialize, Serialize};

/// Parameters of the weight regulariser; `lambda = 0` turns it off.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightRegularizer {
    /// λ (`LAMBDA_REG`): 10 for the MNIST MLP, 0 for the CNN.
    pub lambda: f64,
    /// β (`BETA_REG`): 0.04 for the MNIST MLP.
    pub beta: f64,
    /// L (`WEIGHT_LIMIT`): 8.
    pub limit: f64,
}

impl WeightRegularizer {
    /// No regularisation.
    pub const OFF: Self = Self {
        lambda: 0.0,
        beta: 0.0,
        limit: 8.0,
    };

    /// `R_i·` for the weights `w_i·` of one post neuron (or one conv output map).
    pub fn gradient_row(&self, row: &[f64]) -> Vec<f64> {
        if self.lambda == 0.0 || row.is_empty() {
            return vec![0.0; row.len()];
        }
        let s = row.iter().map(|w| (w / self.limit).powi(2)).sum::<f64>() / row.len() as f64;
        let scale = self.lambda * self.beta * (self.beta * (s - 1.0)).exp();
        row.iter().map(|w| scale * w / self.limit).collect()
    }

    /// The penalty whose gradient is [`WeightRegularizer::gradient_row`], for one row.
    pub fn penalty_row(&self, row: &[f64]) -> f64 {
        if self.lambda == 0.0 || row.is_empty() {
            return 0.0;
        }
        let n = row.len() as f64;
        let s = row.iter().map(|w| (w / self.limit).powi(2)).sum::<f64>() / n;
        self.lambda * n * self.limit / 2.0 * (self.beta * (s - 1.0)).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gradient formula is the derivative of the penalty (central finite differences).
    #[test]
    fn gradient_is_derivative_of_penalty() {
        let r = WeightRegularizer {
            lambda: 10.0,
            beta: 0.4,
            limit: 8.0,
        };
        let row = vec![0.3, -1.2, 2.5, 0.0, -0.7];
        let g = r.gradient_row(&row);
        for k in 0..row.len() {
            let h = 1e-5;
            let mut up = row.clone();
            up[k] += h;
            let mut dn = row.clone();
            dn[k] -= h;
            let fd = (r.penalty_row(&up) - r.penalty_row(&dn)) / (2.0 * h);
            assert!((fd - g[k]).abs() < 1e-7, "{k}: {fd} vs {}", g[k]);
        }
    }
}
