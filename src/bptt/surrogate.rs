//! Surrogate derivatives of the spike nonlinearity.
//!
//! A LIF neuron fires when `v > ϑ`: the spike is the Heaviside step `H(x)` of the scaled
//! distance to threshold `x = (v − ϑ) / ϑ` (dimensionless, so one slope parameter fits layers
//! with different thresholds). `H` has no useful derivative; surrogate-gradient training keeps
//! `H` in the forward pass and uses a smooth pseudo-derivative `h(x)` in the backward pass.
//! Each `h` is the derivative of a smooth *relaxation* `p(x)` of the step (used by the tests to
//! check gradients against finite differences).
//!
//! | surrogate | `h(x)` | parameter (default) |
//! |---|---|---|
//! | arctan (snnTorch `atan`) | `(α/2) / (1 + (παx/2)²)` | `alpha` (2) |
//! | fast sigmoid (snnTorch) | `1 / (1 + k|x|)²` | `slope` k (25) |
//! | triangle (piecewise linear, Esser/Bellec) | `max(0, 1 − |x|/w) / w` | `width` w (1) |
//! | SuperSpike (Zenke & Ganguli 2018) | `β / (1 + β|x|)²`, the derivative of `σ(βx)` with the fast sigmoid `σ(u) = u/(1+|u|)` | `beta` (10) |
//! | exponential (SLAYER) | `a · exp(−b|x|)` | `amplitude` a (1), `decay` b (5) |

use burn::backend::Backend;
use burn::backend::tensor::FloatTensor;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// A surrogate derivative of the spike step function, with its shape parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Surrogate {
    /// `(α/2) / (1 + (παx/2)²)`.
    Arctan {
        /// Steepness α.
        alpha: f32,
    },
    /// `1 / (1 + k|x|)²`.
    FastSigmoid {
        /// Slope k.
        slope: f32,
    },
    /// `max(0, 1 − |x|/w) / w`.
    Triangle {
        /// Half-width w of the support.
        width: f32,
    },
    /// `β / (1 + β|x|)²`.
    SuperSpike {
        /// Steepness β.
        beta: f32,
    },
    /// `a · exp(−b|x|)`.
    Exponential {
        /// Peak value a.
        amplitude: f32,
        /// Decay rate b.
        decay: f32,
    },
}

impl Surrogate {
    /// Names of the surrogates, as written in experiment files and `--methods`.
    pub const NAMES: [&'static str; 5] = [
        "arctan",
        "fast-sigmoid",
        "triangle",
        "super-spike",
        "exponential",
    ];

    /// The surrogate called `name` with its default parameters.
    pub fn with_defaults(name: &str) -> Result<Self, String> {
        Ok(match name {
            "arctan" => Self::Arctan { alpha: 2.0 },
            "fast-sigmoid" => Self::FastSigmoid { slope: 25.0 },
            "triangle" => Self::Triangle { width: 1.0 },
            "super-spike" => Self::SuperSpike { beta: 10.0 },
            "exponential" => Self::Exponential {
                amplitude: 1.0,
                decay: 5.0,
            },
            other => {
                return Err(format!(
                    "unknown surrogate '{other}' (known: {})",
                    Self::NAMES.join(", ")
                ));
            }
        })
    }

    /// The name of this surrogate's kind.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Arctan { .. } => "arctan",
            Self::FastSigmoid { .. } => "fast-sigmoid",
            Self::Triangle { .. } => "triangle",
            Self::SuperSpike { .. } => "super-spike",
            Self::Exponential { .. } => "exponential",
        }
    }

    /// Checks that every parameter is a positive finite number; the message names it.
    pub fn validate(&self) -> Result<(), String> {
        let params: &[(&str, f32)] = match self {
            Self::Arctan { alpha } => &[("alpha", *alpha)],
            Self::FastSigmoid { slope } => &[("slope", *slope)],
            Self::Triangle { width } => &[("width", *width)],
            Self::SuperSpike { beta } => &[("beta", *beta)],
            Self::Exponential { amplitude, decay } => {
                &[("amplitude", *amplitude), ("decay", *decay)]
            }
        };
        for (name, v) in params {
            if !(v.is_finite() && *v > 0.0) {
                return Err(format!(
                    "{} surrogate: `{name}` must be a positive number (got {v})",
                    self.name()
                ));
            }
        }
        Ok(())
    }

    /// The surrogate derivative `h(x)`, elementwise, on backend primitives (used by the spike
    /// op's backward pass).
    pub fn derivative<B: Backend>(&self, x: FloatTensor<B>) -> FloatTensor<B> {
        let abs = |x| B::float_abs(x);
        // 1 / (1 + k|x|)²
        let inverse_square = |x, k: f32| {
            let d = B::float_add_scalar(B::float_mul_scalar(abs(x), k.into()), 1f32.into());
            B::float_recip(B::float_mul(d.clone(), d))
        };
        match *self {
            Self::Arctan { alpha } => {
                let y = B::float_mul_scalar(x, (std::f32::consts::PI * alpha / 2.0).into());
                let d = B::float_add_scalar(B::float_mul(y.clone(), y), 1f32.into());
                B::float_mul_scalar(B::float_recip(d), (alpha / 2.0).into())
            }
            Self::FastSigmoid { slope } => inverse_square(x, slope),
            Self::SuperSpike { beta } => B::float_mul_scalar(inverse_square(x, beta), beta.into()),
            Self::Triangle { width } => {
                let tent = B::float_add_scalar(
                    B::float_mul_scalar(abs(x), (-1.0 / width).into()),
                    1f32.into(),
                );
                B::float_mul_scalar(B::float_clamp_min(tent, 0f32.into()), (1.0 / width).into())
            }
            Self::Exponential { amplitude, decay } => B::float_mul_scalar(
                B::float_exp(B::float_mul_scalar(abs(x), (-decay).into())),
                amplitude.into(),
            ),
        }
    }

    /// The smooth relaxation `p(x)` of the step whose derivative is `h(x)`, built from
    /// differentiable tensor ops (`p(−∞) = 0`; it reaches 1 at `+∞` for arctan, triangle and
    /// exponential with `a = b/2`).
    pub fn relaxation<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match *self {
            Self::Arctan { alpha } => {
                (x * (std::f32::consts::PI * alpha / 2.0)).atan() / std::f32::consts::PI + 0.5
            }
            Self::FastSigmoid { slope } => x.clone() / (x.abs() * slope + 1.0) + 1.0 / slope,
            Self::SuperSpike { beta } => x.clone() * beta / (x.abs() * beta + 1.0) + 1.0,
            Self::Triangle { width } => {
                let y = (x / width).clamp(-1.0, 1.0);
                y.clone() - y.clone() * y.abs() / 2.0 + 0.5
            }
            Self::Exponential { amplitude, decay } => {
                let rise = -(x.clone().abs() * (-decay)).exp() + 1.0;
                (x.sign() * rise + 1.0) * (amplitude / decay)
            }
        }
    }
}
