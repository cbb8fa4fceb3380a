//! # hm2bp
//!
//! HM2-BP (Hybrid Macro/Micro level BackPropagation, Jin, Zhang & Li, NeurIPS 2018) for deep
//! spiking neural networks, on the Burn deep-learning framework.
//!
//! Data flows one way: dataset → rate encoder → spike trains → spiking layers → output spike
//! counts → rate-coded loss → (autodiff) → HM2-BP custom backward → optimizer.

pub mod backend;
pub mod bench;
pub mod data;
pub mod experiment;
pub mod hm2bp;
pub mod layers;
pub mod loss;
pub mod model;
pub mod neuron;
pub mod ops;
pub mod spikes;
pub mod spsp;
pub mod trace;
pub mod train;
