//! Exponential weight regulariser (spec §3.4, S12):
//! `R_ij = λ β (w_ij/L) exp(β (S_i − 1))`, `S_i = (1/N_in) Σ_l (w_il/L)²`.
//!
//! It is the gradient of the penalty `P = Σ_i λ (N_in L / 2) exp(β (S_i − 1))`, which is how
//! training adds it (as an ordinary differentiable term of the loss, see [`crate::loss`]).

use rayon::prelude::*;
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

    /// The values committed in the authors' MNIST config (`LAMBDA_REG` 10, `BETA_REG` 0.04):
    /// a strong decay (R ≈ 0.048·w) that silences hidden neurons under Adam (spec S12 note).
    pub const CODE_FAITHFUL: Self = Self {
        lambda: 10.0,
        beta: 0.04,
        limit: 8.0,
    };

    /// The values of the authors' CPU simulator (λ 0.04, β 10), the likely setting of their
    /// logged MNIST run: a soft barrier near rms(w/L) = 1 that leaves trained neurons alive
    /// (spec S12 note).
    pub const LOG_FAITHFUL: Self = Self {
        lambda: 0.04,
        beta: 10.0,
        limit: 8.0,
    };

    /// `exp(β (S_i − 1))`, `S_i = (1/N_in) Σ_l (w_il/L)²`, of the weights `w_i·` of one post
    /// neuron (or one conv output map).
    fn barrier<T: Copy + Into<f64>>(&self, row: &[T]) -> f64 {
        let inv_limit = 1.0 / self.limit;
        let s = row
            .iter()
            .map(|&w| (w.into() * inv_limit).powi(2))
            .sum::<f64>()
            / row.len() as f64;
        (self.beta * (s - 1.0)).exp()
    }

    /// `R_ij = λ β (w_ij/L) exp(β (S_i − 1))` from the row's [`barrier`](Self::barrier).
    fn r(&self, barrier: f64, w: f64) -> f64 {
        self.lambda * self.beta * barrier * (w * (1.0 / self.limit))
    }

    /// The penalty `λ (N_in L / 2) exp(β (S_i − 1))` of a row of `n` weights from its barrier.
    fn row_penalty(&self, barrier: f64, n: usize) -> f64 {
        self.lambda * n as f64 * self.limit / 2.0 * barrier
    }

    /// `R_i·` for the weights `w_i·` of one post neuron (or one conv output map).
    pub fn gradient_row<T: Copy + Into<f64>>(&self, row: &[T]) -> Vec<f64> {
        if self.lambda == 0.0 || row.is_empty() {
            return vec![0.0; row.len()];
        }
        let barrier = self.barrier(row);
        row.iter().map(|&w| self.r(barrier, w.into())).collect()
    }

    /// The penalty whose gradient is [`WeightRegularizer::gradient_row`], for one row.
    pub fn penalty_row<T: Copy + Into<f64>>(&self, row: &[T]) -> f64 {
        if self.lambda == 0.0 || row.is_empty() {
            return 0.0;
        }
        self.row_penalty(self.barrier(row), row.len())
    }

    /// The barrier `exp(β (S_i − 1))` of every row of a row-major weight matrix (rows of
    /// `row_len` weights, in parallel, in `f64`): what [`penalty`](Self::penalty) and
    /// [`gradient`](Self::gradient) are computed from.
    pub fn barriers(&self, weights: &[f32], row_len: usize) -> Vec<f64> {
        weights
            .par_chunks(row_len.max(1))
            .map(|row| self.barrier(row))
            .collect()
    }

    /// The penalty of a whole weight matrix with rows of `row_len` weights, summed over rows
    /// in order.
    pub fn penalty(&self, barriers: &[f64], row_len: usize) -> f64 {
        if self.lambda == 0.0 || row_len == 0 {
            return 0.0;
        }
        barriers.iter().map(|&b| self.row_penalty(b, row_len)).sum()
    }

    /// `g · R` for a whole row-major weight matrix, rows in parallel, computed in `f64` and
    /// rounded once to `f32`.
    pub fn gradient(&self, weights: &[f32], barriers: &[f64], g: f64) -> Vec<f32> {
        let mut out = vec![0.0f32; weights.len()];
        if self.lambda == 0.0 || barriers.is_empty() {
            return out;
        }
        let row_len = weights.len() / barriers.len();
        out.par_chunks_mut(row_len.max(1))
            .zip(weights.par_chunks(row_len.max(1)))
            .zip(barriers)
            .for_each(|((o, row), &b)| {
                for (o, &w) in o.iter_mut().zip(row) {
                    *o = (g * self.r(b, f64::from(w))) as f32;
                }
            });
        out
    }
}

/// A named regulariser setting (spec S12 note).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum RegularizerPreset {
    /// λ 10, β 0.04: the authors' committed MNIST config.
    CodeFaithful,
    /// λ 0.04, β 10: what reproduces the authors' logged MNIST run.
    LogFaithful,
    /// λ 0: no regulariser.
    Off,
}

impl RegularizerPreset {
    /// All settings.
    pub const ALL: [Self; 3] = [Self::CodeFaithful, Self::LogFaithful, Self::Off];

    /// The parameters of the setting.
    pub fn params(self) -> WeightRegularizer {
        match self {
            Self::CodeFaithful => WeightRegularizer::CODE_FAITHFUL,
            Self::LogFaithful => WeightRegularizer::LOG_FAITHFUL,
            Self::Off => WeightRegularizer::OFF,
        }
    }

    /// Kebab-case name as written in experiment files.
    pub fn name(self) -> &'static str {
        match self {
            Self::CodeFaithful => "code-faithful",
            Self::LogFaithful => "log-faithful",
            Self::Off => "off",
        }
    }
}

/// The `[regularizer]` table of an experiment: either `setting = "log-faithful"` (or another
/// [`RegularizerPreset`]) or explicit `lambda`, `beta`, `limit`. Written back (e.g. into
/// `summary.json`) with both the setting and its values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RegularizerTable", into = "RegularizerTable")]
pub enum RegularizerDef {
    /// A named setting.
    Named(RegularizerPreset),
    /// Explicit values.
    Custom(WeightRegularizer),
}

impl RegularizerDef {
    /// The parameters.
    pub fn params(&self) -> WeightRegularizer {
        match self {
            Self::Named(s) => s.params(),
            Self::Custom(r) => *r,
        }
    }
}

/// The serialised form of [`RegularizerDef`].
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegularizerTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    setting: Option<RegularizerPreset>,
    #[serde(default)]
    lambda: Option<f64>,
    #[serde(default)]
    beta: Option<f64>,
    #[serde(default)]
    limit: Option<f64>,
}

impl TryFrom<RegularizerTable> for RegularizerDef {
    type Error = String;

    fn try_from(t: RegularizerTable) -> Result<Self, String> {
        let given = [t.lambda, t.beta, t.limit];
        match t.setting {
            Some(setting) => {
                let p = setting.params();
                // Values next to a setting must be the setting's own (as written back).
                let agree = given
                    .iter()
                    .zip([p.lambda, p.beta, p.limit])
                    .all(|(g, v)| g.is_none_or(|g| g == v));
                if agree {
                    Ok(Self::Named(setting))
                } else {
                    Err(format!(
                        "regularizer: setting '{}' is λ {}, β {}, L {}; give either the \
                         setting or lambda/beta/limit",
                        setting.name(),
                        p.lambda,
                        p.beta,
                        p.limit
                    ))
                }
            }
            None => match given {
                [Some(lambda), Some(beta), Some(limit)] => Ok(Self::Custom(WeightRegularizer {
                    lambda,
                    beta,
                    limit,
                })),
                _ => Err(format!(
                    "regularizer: give `setting` (one of {}) or all of lambda, beta, limit",
                    RegularizerPreset::ALL
                        .map(RegularizerPreset::name)
                        .join(", ")
                )),
            },
        }
    }
}

impl From<RegularizerDef> for RegularizerTable {
    fn from(d: RegularizerDef) -> Self {
        let p = d.params();
        Self {
            setting: match d {
                RegularizerDef::Named(s) => Some(s),
                RegularizerDef::Custom(_) => None,
            },
            lambda: Some(p.lambda),
            beta: Some(p.beta),
            limit: Some(p.limit),
        }
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

    #[derive(Debug, Deserialize, Serialize)]
    struct Holder {
        regularizer: RegularizerDef,
    }

    fn parse(text: &str) -> Result<RegularizerDef, String> {
        toml::from_str::<Holder>(text)
            .map(|h| h.regularizer)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn settings_and_values_parse_and_round_trip() {
        let log = parse("[regularizer]\nsetting = \"log-faithful\"\n").unwrap();
        assert_eq!(log, RegularizerDef::Named(RegularizerPreset::LogFaithful));
        assert_eq!((log.params().lambda, log.params().beta), (0.04, 10.0));
        let custom = parse("[regularizer]\nlambda = 1.0\nbeta = 2.0\nlimit = 8.0\n").unwrap();
        assert_eq!(custom.params().beta, 2.0);
        for def in [log, custom] {
            let json = serde_json::to_string(&Holder { regularizer: def }).unwrap();
            let back: Holder = serde_json::from_str(&json).unwrap();
            assert_eq!(back.regularizer, def, "{json}");
        }
        let e = parse("[regularizer]\nsetting = \"code-faithful\"\nlambda = 0.0\n").unwrap_err();
        assert!(e.contains("setting 'code-faithful' is λ 10"), "{e}");
        let e = parse("[regularizer]\nlambda = 1.0\n").unwrap_err();
        assert!(e.contains("code-faithful, log-faithful, off"), "{e}");
        assert!(parse("[regularizer]\nsetting = \"strong\"\n").is_err());
    }
}
