//! # hm2bp
//!
//! HM2-BP (Hybrid Macro/Micro level BackPropagation, Jin, Zhang & Li, NeurIPS 2018) for deep
//! spiking neural networks, on the Burn deep-learning framework.
//!
//! Data flows one way: dataset → rate encoder → spike trains → spiking layers → output spike
//! counts → rate-coded loss → (autodiff) → HM2-BP custom backward → optimizer. Layers exchange
//! [`SpikeTrains`]: counts `[B, N]`, the tensor autodiff tracks, and the trains bit-packed.
//!
//! ```
//! use burn::optim::{AdamConfig, GradientsParams};
//! use burn::prelude::*;
//! use burn::tensor::Distribution;
//! use hm2bp::SpikeTrains;
//! use hm2bp::rule::output::CountTargets;
//! use hm2bp::layers::SpikingDenseConfig;
//! use hm2bp::loss::count_loss;
//! use hm2bp::neuron::LifSpec;
//! use hm2bp::rule::output::OutputRule;
//!
//! let device = Device::flex().autodiff();
//! // An output layer of 10 of the paper's LIF neurons (ν = 8) with lateral inhibition
//! // (strength 1) and label-spike insertion, on 784 inputs.
//! let layer = SpikingDenseConfig::new(784, 10, LifSpec::paper(8.0))
//!     .with_output(Some(OutputRule::default()))
//!     .init(&device);
//! // A batch of 2 random spike trains, T = 100 steps.
//! let spikes = Tensor::<3>::random([2, 100, 784], Distribution::Uniform(0.0, 1.0), &device)
//!     .lower_elem(0.05)
//!     .float();
//! let labels = Tensor::<1, Int>::from_ints([3, 7], &device);
//! // Layers exchange spike counts (differentiable) and bit-packed trains.
//! let out = layer.forward(SpikeTrains::from_dense(spikes), Some(labels.clone()));
//! assert_eq!(out.dims(), [2, 100, 10]);
//! let loss = count_loss(out.counts(), labels, None, &CountTargets::default());
//! // The gradient of the spiking layer is HM2-BP, computed by its custom backward op.
//! let grads = GradientsParams::from_grads(loss.backward(), &layer);
//! let layer = AdamConfig::new().init().step(1e-3, layer, grads);
//! assert_eq!(layer.weight.val().dims(), [10, 784]);
//! ```

#![warn(missing_docs)]

pub mod backend;
#[cfg(feature = "cli")]
pub mod bench;
pub mod bptt;
#[cfg(feature = "cli")]
pub mod compare;
pub mod datasets;
pub mod definition;
pub mod device_counts;
pub mod device_reads;
#[cfg(feature = "cli")]
pub mod experiment;
pub mod layers;
pub mod loss;
pub mod model;
pub mod neuron;
#[cfg(feature = "nir")]
pub mod nir;
pub mod ops;
#[cfg(feature = "cli")]
pub mod plot;
pub mod prelude;
pub mod rule;
pub mod simd;
pub mod spike_trains;
pub mod spikes;
pub mod spsp;
pub mod trace;
#[cfg(feature = "cli")]
pub mod train;

pub use spike_trains::SpikeTrains;
