//! What a program that builds and trains spiking networks usually needs:
//! `use hm2bp::prelude::*;`.

pub use crate::SpikeTrains;
pub use crate::bptt::{BpttNet, SpikeFunction, Surrogate};
pub use crate::datasets::{
    DatasetKind, EncodingMode, InputOptions, RateEncoder, Samples, Split, load_samples,
};
pub use crate::layers::{
    SpikingConv2d, SpikingConv2dConfig, SpikingDense, SpikingDenseConfig, SpikingPool2d,
    SpikingPool2dConfig,
};
pub use crate::loss::{count_cross_entropy, count_loss};
pub use crate::model::{NetworkDef, RuleOptions, SpikingNet};
pub use crate::neuron::LifSpec;
pub use crate::ops::KernelPath;
pub use crate::rule::output::{CountTargets, OutputRule};
pub use crate::rule::regularizer::{RegularizerPreset, WeightRegularizer};
