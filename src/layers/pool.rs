//! Spiking sum pooling: non-overlapping windows of LIF neurons fed with unit weights (their own
//! ν, `v > ν − 1e-6`); HM2-BP backpropagates `d/size² · ρ` through them (spec §4).

use burn::module::Module;
use burn::prelude::*;

use crate::neuron::LifParams;
use crate::ops::spiking_local;
use crate::rule::sparse::{LocalSpec, Topology};
use crate::trains::SpikeTrains;

/// Configuration of a [`SpikingPool2d`] layer.
#[derive(Config, Debug)]
pub struct SpikingPool2dConfig {
    /// Input shape `[maps, height, width]`.
    pub input: [usize; 3],
    /// Window side (and stride).
    pub size: usize,
    /// Threshold ν.
    pub threshold: f32,
    /// Membrane time constant τm.
    #[config(default = 64.0)]
    pub tau_m: f32,
    /// Synaptic time constant τs.
    #[config(default = 8.0)]
    pub tau_s: f32,
    /// Refractory period (steps).
    #[config(default = 2)]
    pub t_ref: u32,
}

impl SpikingPool2dConfig {
    /// Creates the layer (it has no parameters).
    pub fn init(&self) -> SpikingPool2d {
        let [maps, height, width] = self.input;
        SpikingPool2d {
            spec: LocalSpec {
                topology: Topology::Pool {
                    maps,
                    height,
                    width,
                    size: self.size,
                },
                lif: LifParams {
                    tau_m: self.tau_m,
                    tau_s: self.tau_s,
                    t_ref: self.t_ref,
                    threshold: self.threshold,
                    threshold_eps: 1e-6,
                },
            },
        }
    }
}

/// A spiking sum-pooling layer: trains of `maps·h·w` neurons → `maps·(h/s)·(w/s)` neurons.
#[derive(Module, Debug)]
pub struct SpikingPool2d {
    #[module(skip)]
    spec: LocalSpec,
}

impl SpikingPool2d {
    /// Simulates the layer.
    ///
    /// # Panics
    /// If `input` does not have `maps·h·w` neurons.
    pub fn forward(&self, input: SpikeTrains) -> SpikeTrains {
        super::check_input("SpikingPool2d", &self.spec, &input);
        let unit = Tensor::ones([1], &input.device());
        spiking_local(input, unit, self.spec)
    }

    /// Geometry and neuron parameters of this layer.
    pub fn spec(&self) -> LocalSpec {
        self.spec
    }

    /// Output shape `[maps, height, width]`.
    pub fn output_shape(&self) -> [usize; 3] {
        self.spec.topology.output_shape()
    }
}
