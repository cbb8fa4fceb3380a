//! Thin Burn modules over the HM2-BP kernels.

pub mod config_error;
pub mod conv;
pub mod dense;
pub mod pool;

pub use config_error::LayerConfigError;
pub use conv::{SpikingConv2d, SpikingConv2dConfig};
pub use dense::{SpikingDense, SpikingDenseConfig};
pub use pool::{SpikingPool2d, SpikingPool2dConfig};

/// Panics with a message naming `layer` unless `input` has the neurons its topology reads.
fn check_input(layer: &str, spec: &crate::rule::local::LocalSpec, input: &crate::SpikeTrains) {
    let want = spec.topology.n_in();
    assert_eq!(
        input.neurons(),
        want,
        "{layer}: input trains have {} neurons, the layer reads {:?} = {want}",
        input.neurons(),
        spec.topology.input_shape()
    );
}
