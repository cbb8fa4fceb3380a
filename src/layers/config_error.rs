//! Refusals of layer configurations: which layer, which field, what is wrong. A layer's
//! `try_init` returns them; its `init` panics with the same message (as Burn's modules do).

use crate::neuron::LifSpec;
use crate::rule::regularizer::WeightRegularizer;

/// The most weights, or neurons, one layer may have (2³⁰: 4 GiB of `f32`). A hostile or
/// mistyped size is refused before anything is allocated.
pub const MAX_LAYER_ELEMENTS: usize = 1 << 30;

/// A configuration value a layer cannot run with.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{layer}: {field} {problem}")]
pub struct LayerConfigError {
    /// The layer type, e.g. `SpikingDense`.
    pub layer: &'static str,
    /// The configuration field.
    pub field: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

/// Checks of one layer's configuration fields.
pub(crate) struct Checks {
    layer: &'static str,
}

impl Checks {
    /// Checks of `layer`'s fields.
    pub(crate) fn of(layer: &'static str) -> Self {
        Self { layer }
    }

    /// A refusal of `field`.
    pub(crate) fn refuse(&self, field: &'static str, problem: String) -> LayerConfigError {
        LayerConfigError {
            layer: self.layer,
            field,
            problem,
        }
    }

    /// `value` must be at least 1.
    pub(crate) fn nonzero(
        &self,
        field: &'static str,
        value: usize,
    ) -> Result<(), LayerConfigError> {
        match value {
            0 => Err(self.refuse(field, "must be at least 1 (got 0)".into())),
            _ => Ok(()),
        }
    }

    /// Every dimension of `shape` must be at least 1.
    pub(crate) fn nonzero_shape(
        &self,
        field: &'static str,
        shape: &[usize],
    ) -> Result<(), LayerConfigError> {
        match shape.contains(&0) {
            true => Err(self.refuse(field, format!("{shape:?} has a zero dimension"))),
            false => Ok(()),
        }
    }

    /// A tensor of shape `dims` (the layer's `what`, e.g. weights) must have at most
    /// [`MAX_LAYER_ELEMENTS`] elements.
    pub(crate) fn bounded(
        &self,
        field: &'static str,
        what: &str,
        dims: &[usize],
    ) -> Result<(), LayerConfigError> {
        match dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
            Some(n) if n <= MAX_LAYER_ELEMENTS => Ok(()),
            _ => Err(self.refuse(
                field,
                format!(
                    "gives {what} {dims:?}, more than the {MAX_LAYER_ELEMENTS} a layer may have"
                ),
            )),
        }
    }

    /// `value` must be a finite number > 0.
    pub(crate) fn positive(&self, field: &'static str, value: f64) -> Result<(), LayerConfigError> {
        match value.is_finite() && value > 0.0 {
            true => Ok(()),
            false => Err(self.refuse(field, format!("must be a finite number > 0 (got {value})"))),
        }
    }

    /// `value` must be a finite number ≥ 0.
    pub(crate) fn non_negative(
        &self,
        field: &'static str,
        value: f64,
    ) -> Result<(), LayerConfigError> {
        match value.is_finite() && value >= 0.0 {
            true => Ok(()),
            false => Err(self.refuse(field, format!("must be a finite number ≥ 0 (got {value})"))),
        }
    }

    /// `value` must be finite.
    pub(crate) fn finite(&self, field: &'static str, value: f64) -> Result<(), LayerConfigError> {
        match value.is_finite() {
            true => Ok(()),
            false => Err(self.refuse(field, format!("must be a finite number (got {value})"))),
        }
    }

    /// The threshold, time constants and threshold margin of LIF neurons (field `lif`).
    pub(crate) fn lif(&self, p: &LifSpec) -> Result<(), LayerConfigError> {
        self.positive("lif.threshold", p.threshold.into())?;
        self.positive("lif.tau_m", p.tau_m.into())?;
        self.positive("lif.tau_s", p.tau_s.into())?;
        self.non_negative("lif.threshold_eps", p.threshold_eps.into())
    }

    /// The weight regulariser's λ, β and L (field `regularizer`).
    pub(crate) fn regularizer(&self, r: &WeightRegularizer) -> Result<(), LayerConfigError> {
        self.non_negative("regularizer.lambda", r.lambda)?;
        self.finite("regularizer.beta", r.beta)?;
        self.positive("regularizer.limit", r.limit)
    }

    /// Given weights must have the configured shape.
    pub(crate) fn weight_shape(
        &self,
        got: &[usize],
        want: &[usize],
    ) -> Result<(), LayerConfigError> {
        match got == want {
            true => Ok(()),
            false => Err(self.refuse(
                "weights",
                format!("have shape {got:?}, the layer takes {want:?}"),
            )),
        }
    }
}

/// The value of a layer constructor that panics on a refused configuration (`init`).
pub(crate) fn or_panic<T>(result: Result<T, LayerConfigError>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}
