//! Spiking sum pooling: non-overlapping windows of LIF neurons fed with unit weights (their own
//! ν; the paper's fire when `v > ν − 1e-6`); HM2-BP backpropagates `d/size² · ρ` through them (spec §4).

use burn::module::Module;
use burn::prelude::*;

use super::config_error::{Checks, LayerConfigError, or_panic};
use crate::neuron::LifSpec;
use crate::rule::local::{LocalSpec, Topology};
use crate::spike_trains::SpikeTrains;
use crate::spike_trains::spiking_local;

/// Configuration of a [`SpikingPool2d`] layer.
#[derive(Config, Debug)]
pub struct SpikingPool2dConfig {
    /// Input shape `[maps, height, width]`.
    pub input: [usize; 3],
    /// Window side (and stride).
    pub size: usize,
    /// The layer's LIF neurons (the paper's: `LifSpec::paper(ν)`, firing when
    /// `v > ν − 1e-6`).
    pub lif: LifSpec,
}

impl SpikingPool2dConfig {
    /// Refuses values the layer cannot run with, naming the field.
    pub fn validate(&self) -> Result<(), LayerConfigError> {
        let c = Checks::of("SpikingPool2d");
        c.nonzero_shape("input", &self.input)?;
        c.nonzero("size", self.size)?;
        c.bounded("input", "input neurons", &self.input)?;
        let [_, height, width] = self.input;
        if !(height.is_multiple_of(self.size) && width.is_multiple_of(self.size)) {
            return Err(c.refuse(
                "size",
                format!("{} does not tile the {height}×{width} input", self.size),
            ));
        }
        c.lif(&self.lif)
    }

    /// Creates the layer on `device`.
    ///
    /// # Panics
    /// If the configuration is invalid (see [`Self::validate`]).
    pub fn init(&self, device: &Device) -> SpikingPool2d {
        or_panic(self.try_init(device))
    }

    /// Creates the layer on `device` (it has no parameters), or refuses an invalid
    /// configuration.
    pub fn try_init(&self, device: &Device) -> Result<SpikingPool2d, LayerConfigError> {
        self.validate()?;
        let [maps, height, width] = self.input;
        Ok(SpikingPool2d {
            unit: Tensor::ones([1], device),
            spec: LocalSpec {
                topology: Topology::Pool {
                    maps,
                    height,
                    width,
                    size: self.size,
                },
                lif: self.lif,
            },
        })
    }
}

/// A spiking sum-pooling layer: trains of `maps·h·w` neurons → `maps·(h/s)·(w/s)` neurons.
#[derive(Module, Debug)]
pub struct SpikingPool2d {
    #[module(skip)]
    spec: LocalSpec,
    /// The unit weight `[1]`, made once (not a parameter, not recorded; it moves with the
    /// module), so that a step creates no tensor for it.
    unit: Tensor<1>,
}

impl SpikingPool2d {
    /// Simulates the layer.
    ///
    /// # Panics
    /// If `input` does not have `maps·h·w` neurons.
    pub fn forward(&self, input: SpikeTrains) -> SpikeTrains {
        super::check_input("SpikingPool2d", &self.spec, &input);
        spiking_local(input, self.unit.clone(), self.spec)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(config: SpikingPool2dConfig) -> String {
        config.try_init(&Device::flex()).unwrap_err().to_string()
    }

    fn pool(input: [usize; 3], size: usize, threshold: f32) -> SpikingPool2dConfig {
        SpikingPool2dConfig::new(input, size, LifSpec::paper(threshold))
    }

    #[test]
    fn refuses_bad_values_naming_the_field() {
        assert!(pool([2, 8, 8], 2, 1.0).try_init(&Device::flex()).is_ok());
        let err = refused(pool([2, 8, 9], 2, 1.0));
        assert_eq!(err, "SpikingPool2d: size 2 does not tile the 8×9 input");
        assert!(refused(pool([2, 8, 8], 0, 1.0)).contains("size"));
        assert!(refused(pool([0, 8, 8], 2, 1.0)).contains("input"));
        assert!(refused(pool([2, 8, 8], 2, f32::INFINITY)).contains("lif.threshold"));
        let mut tau = pool([2, 8, 8], 2, 1.0);
        tau.lif.tau_m = 0.0;
        assert!(refused(tau).contains("lif.tau_m"));
    }
}
