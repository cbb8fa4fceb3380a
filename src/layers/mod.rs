//! Thin Burn modules over the HM2-BP kernels.

pub mod config_error;
pub mod conv;
pub mod dense;
pub mod pool;

use burn::prelude::*;

pub use config_error::LayerConfigError;
pub use conv::{SpikingConv2d, SpikingConv2dConfig};
pub use dense::{SpikingDense, SpikingDenseConfig};
pub use pool::{SpikingPool2d, SpikingPool2dConfig};

use crate::rule::regularizer::WeightRegularizer;

/// The exponential weight-norm penalty `Σ_rows λ (n L/2) exp(β (S_row − 1))` of a weight matrix
/// `[rows, n]` (S12), whose gradient is the regulariser `R`; `[1]` (0 when λ = 0).
pub fn regularizer_penalty(w: Tensor<2>, r: &WeightRegularizer) -> Tensor<1> {
    let device = w.device();
    if r.lambda == 0.0 {
        return Tensor::zeros([1], &device);
    }
    let [_, n] = w.dims();
    let s = (w / r.limit).powi_scalar(2).mean_dim(1); // [rows, 1]
    let per_row = ((s - 1.0) * r.beta).exp();
    per_row.sum() * (r.lambda * n as f64 * r.limit / 2.0)
}

/// Panics with a message naming `layer` unless `input` has the neurons its topology reads.
fn check_input(layer: &str, spec: &crate::rule::sparse::LocalSpec, input: &crate::SpikeTrains) {
    let want = spec.topology.n_in();
    assert_eq!(
        input.neurons(),
        want,
        "{layer}: input trains have {} neurons, the layer reads {:?} = {want}",
        input.neurons(),
        spec.topology.input_shape()
    );
}
