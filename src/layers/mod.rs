//! Thin Burn modules over the HM2-BP kernels.

pub mod dense;

pub use dense::{SpikingDense, SpikingDenseConfig};
