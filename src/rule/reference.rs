//! The HM2-BP rule of one layer and one sample written straight from the spec, per pair, in
//! `f64`, with every intermediate matrix materialised. Slow and obviously correct: it is what
//! the `trace` mode reports and what the fast kernels are tested against.

use crate::neuron::LifSpec;
use crate::rule::regularizer::WeightRegularizer;
use crate::rule::terms::{SILENT_POST_SIDE_RATIO, SILENT_POST_SPSP};
use crate::spsp::spsp_pair;

/// Every quantity of one layer's backward pass (`[post][pre]` matrices).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LayerBackward {
    /// S-PSP `e_{i|j}` with the 0.1 rule (S2, S3, §3.5.2).
    pub e: Vec<Vec<f64>>,
    /// Effect ratio ρ (S8).
    pub rho: Vec<Vec<f64>>,
    /// Side ratio σ (S9).
    pub sigma: Vec<Vec<f64>>,
    /// Side effect `s_i = Σ_l w_il σ_il / ν` (S11).
    pub s: Vec<f64>,
    /// `∂E/∂o` of the post neurons.
    pub d_post: Vec<f64>,
    /// `δ = d_post / ν` (S7).
    pub delta: Vec<f64>,
    /// Backpropagated `∂E/∂o` of the pre neurons (S10), `None` when not requested.
    pub d_pre: Option<Vec<f64>>,
    /// `δ_i (1+s_i) γ_i e_{i|j}` (S12).
    pub grad_main: Vec<Vec<f64>>,
    /// Regulariser gradient `R_ij` (S12).
    pub grad_reg: Vec<Vec<f64>>,
    /// `grad_main + grad_reg`.
    pub grad: Vec<Vec<f64>>,
}

/// The inputs of [`layer_backward`].
pub struct LayerCase<'a> {
    /// Pre spike steps per pre neuron.
    pub pre: &'a [Vec<u32>],
    /// Post spike steps per post neuron (after any label-spike insertion).
    pub post: &'a [Vec<u32>],
    /// `W[post][pre]`.
    pub weight: &'a [Vec<f64>],
    /// `∂E/∂o` of the post neurons.
    pub d_post: &'a [f64],
    /// Lateral factors γ (ones for hidden layers).
    pub gamma: &'a [f64],
    /// Neuron parameters of the post layer.
    pub lif: &'a LifSpec,
    /// S8 on (`false`: ρ := 1).
    pub effect_ratio: bool,
    /// Compute `d_pre`.
    pub need_d_pre: bool,
    /// Weight regulariser.
    pub regularizer: &'a WeightRegularizer,
}

/// One layer's backward, per spec §3.6, pair by pair.
#[allow(clippy::needless_range_loop)] // indices i, j mirror the spec's formulas
pub fn layer_backward(c: &LayerCase<'_>) -> LayerBackward {
    let nu = c.lif.threshold as f64;
    let o_pre: Vec<f64> = c.pre.iter().map(|t| t.len() as f64).collect();
    let o_post: Vec<f64> = c.post.iter().map(|t| t.len() as f64).collect();
    let (n_out, n_in) = (c.post.len(), c.pre.len());
    let mut out = LayerBackward {
        d_post: c.d_post.to_vec(),
        delta: c.d_post.iter().map(|d| d / nu).collect(),
        ..Default::default()
    };
    for i in 0..n_out {
        let mut e_row = Vec::with_capacity(n_in);
        let mut rho_row = Vec::with_capacity(n_in);
        let mut sigma_row = Vec::with_capacity(n_in);
        for j in 0..n_in {
            let e = if o_pre[j] == 0.0 {
                0.0
            } else if o_post[i] == 0.0 {
                SILENT_POST_SPSP as f64
            } else {
                spsp_pair(&c.post[i], &c.pre[j], c.lif)
            };
            let rho = if c.effect_ratio && o_post[i] > 0.0 && o_pre[j] > 0.0 {
                e / o_pre[j]
            } else {
                1.0
            };
            let sigma = if o_post[i] > 0.0 {
                e / o_post[i]
            } else {
                SILENT_POST_SIDE_RATIO as f64
            };
            e_row.push(e);
            rho_row.push(rho);
            sigma_row.push(sigma);
        }
        let s: f64 = (0..n_in)
            .map(|l| c.weight[i][l] * sigma_row[l])
            .sum::<f64>()
            / nu;
        out.e.push(e_row);
        out.rho.push(rho_row);
        out.sigma.push(sigma_row);
        out.s.push(s);
    }
    if c.need_d_pre {
        out.d_pre = Some(
            (0..n_in)
                .map(|j| {
                    (0..n_out)
                        .map(|i| out.delta[i] * c.weight[i][j] * out.rho[i][j])
                        .sum()
                })
                .collect(),
        );
    }
    for i in 0..n_out {
        let coef = out.delta[i] * (1.0 + out.s[i]) * c.gamma[i];
        let main: Vec<f64> = out.e[i].iter().map(|e| coef * e).collect();
        let reg = c.regularizer.gradient_row(&c.weight[i]);
        out.grad
            .push(main.iter().zip(&reg).map(|(a, b)| a + b).collect());
        out.grad_main.push(main);
        out.grad_reg.push(reg);
    }
    out
}
