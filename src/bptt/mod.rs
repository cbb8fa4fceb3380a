//! Surrogate-gradient BPTT baselines: the same LIF networks as the HM2-BP layers, trained by
//! backpropagation through time with a surrogate derivative of the spike step.

pub mod network;
pub mod spike;
pub mod surrogate;

pub use network::{BpttNet, LayerRun, SpikeFunction};
pub use spike::spike;
pub use surrogate::Surrogate;
