//! Spiking convolution (stride 1, no padding, cross-correlation, no bias; the paper's neurons
//! fire when `v > ν`) trained with HM2-BP (spec §4).

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::Distribution;

use super::config_error::{Checks, LayerConfigError, or_panic};
use crate::neuron::LifSpec;
use crate::rule::conv::ConvShape;
use crate::rule::local::{LocalSpec, Topology};
use crate::rule::regularizer::WeightRegularizer;
use crate::spike_trains::SpikeTrains;
use crate::spike_trains::spiking_local;

/// Configuration of a [`SpikingConv2d`] layer.
#[derive(Config, Debug)]
pub struct SpikingConv2dConfig {
    /// Input shape `[maps, height, width]`.
    pub input: [usize; 3],
    /// Output maps.
    pub maps: usize,
    /// Kernel side.
    pub kernel: usize,
    /// The layer's LIF neurons. The paper's conv neurons fire when `v > ν`:
    /// `LifSpec::paper(ν).strict()`.
    pub lif: LifSpec,
    /// Initial kernels uniform in `[−init_scale, init_scale]` (the authors: 0.5).
    #[config(default = 0.5)]
    pub init_scale: f64,
    /// The per-map exponential regulariser (default off; the CNN config: off).
    #[config(default = "WeightRegularizer::OFF")]
    pub regularizer: WeightRegularizer,
}

impl SpikingConv2dConfig {
    fn spec(&self) -> LocalSpec {
        let [in_maps, height, width] = self.input;
        LocalSpec {
            topology: Topology::Conv(ConvShape {
                in_maps,
                height,
                width,
                out_maps: self.maps,
                kernel: self.kernel,
            }),
            lif: self.lif,
        }
    }

    /// Refuses values the layer cannot run with, naming the field.
    pub fn validate(&self) -> Result<(), LayerConfigError> {
        let c = Checks::of("SpikingConv2d");
        c.nonzero_shape("input", &self.input)?;
        c.nonzero("maps", self.maps)?;
        c.nonzero("kernel", self.kernel)?;
        let [in_maps, height, width] = self.input;
        if self.kernel > height || self.kernel > width {
            return Err(c.refuse(
                "kernel",
                format!("{} is larger than the {height}×{width} input", self.kernel),
            ));
        }
        c.bounded("input", "input neurons", &self.input)?;
        let (k, maps) = (self.kernel, self.maps);
        c.bounded("maps", "kernels", &[maps, in_maps, k, k])?;
        c.bounded("maps", "neurons", &[maps, height - k + 1, width - k + 1])?;
        c.lif(&self.lif)?;
        c.positive("init_scale", self.init_scale)?;
        c.regularizer(&self.regularizer)
    }

    /// Creates the layer with uniform random kernels, or refuses an invalid configuration.
    pub fn try_init(&self, device: &Device) -> Result<SpikingConv2d, LayerConfigError> {
        self.validate()?;
        let shape = [self.maps, self.input[0], self.kernel, self.kernel];
        let s = self.init_scale;
        self.try_init_with(Tensor::random(shape, Distribution::Uniform(-s, s), device))
    }

    /// Creates the layer with uniform random kernels.
    ///
    /// # Panics
    /// If the configuration is invalid (see [`Self::validate`]).
    pub fn init(&self, device: &Device) -> SpikingConv2d {
        or_panic(self.try_init(device))
    }

    /// Creates the layer with the given kernels `[maps, in_maps, k, k]`, or refuses an invalid
    /// configuration or kernels of another shape.
    pub fn try_init_with(&self, kernels: Tensor<4>) -> Result<SpikingConv2d, LayerConfigError> {
        self.validate()?;
        let want = [self.maps, self.input[0], self.kernel, self.kernel];
        Checks::of("SpikingConv2d").weight_shape(&kernels.dims(), &want)?;
        Ok(SpikingConv2d {
            weight: Param::from_tensor(kernels),
            spec: self.spec(),
            regularizer: self.regularizer,
        })
    }

    /// Creates the layer with the given kernels `[maps, in_maps, k, k]`.
    ///
    /// # Panics
    /// If the configuration is invalid or the kernels have another shape.
    pub fn init_with(&self, kernels: Tensor<4>) -> SpikingConv2d {
        or_panic(self.try_init_with(kernels))
    }
}

/// A spiking convolution layer.
///
/// `forward`: trains of `in_maps·h·w` neurons → trains of `maps·(h−k+1)·(w−k+1)` neurons,
/// maps flattened channel-major.
#[derive(Module, Debug)]
pub struct SpikingConv2d {
    /// Kernels `[maps, in_maps, k, k]`.
    pub weight: Param<Tensor<4>>,
    #[module(skip)]
    spec: LocalSpec,
    #[module(skip)]
    regularizer: WeightRegularizer,
}

impl SpikingConv2d {
    /// Simulates the layer.
    ///
    /// # Panics
    /// If `input` does not have `in_maps·h·w` neurons.
    pub fn forward(&self, input: SpikeTrains) -> SpikeTrains {
        super::check_input("SpikingConv2d", &self.spec, &input);
        let w = self.weight.val();
        let n = w.shape().num_elements();
        spiking_local(input, w.reshape([n]), self.spec)
    }

    /// Geometry and neuron parameters of this layer.
    pub fn spec(&self) -> LocalSpec {
        self.spec
    }

    /// Output shape `[maps, height, width]`.
    pub fn output_shape(&self) -> [usize; 3] {
        self.spec.topology.output_shape()
    }

    /// `total [1]` plus the per-map exponential weight penalty (S12 with `S` the mean over one
    /// map's kernel).
    pub fn add_regularizer_penalty(&self, total: Tensor<1>) -> Tensor<1> {
        let w = self.weight.val();
        let [maps, c, k, _] = w.dims();
        let rows = w.reshape([maps, c * k * k]);
        crate::spike_trains::add_weight_penalty(total, rows, &self.regularizer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(config: SpikingConv2dConfig) -> String {
        config.try_init(&Device::flex()).unwrap_err().to_string()
    }

    fn conv(input: [usize; 3], maps: usize, kernel: usize, threshold: f32) -> SpikingConv2dConfig {
        SpikingConv2dConfig::new(input, maps, kernel, LifSpec::paper(threshold).strict())
    }

    #[test]
    fn refuses_bad_values_naming_the_field() {
        let ok = || conv([1, 8, 8], 2, 5, 1.0);
        assert!(ok().try_init(&Device::flex()).is_ok());
        let err = refused(conv([1, 8, 4], 2, 5, 1.0));
        assert_eq!(err, "SpikingConv2d: kernel 5 is larger than the 8×4 input");
        assert!(refused(conv([1, 0, 8], 2, 5, 1.0)).contains("input"));
        assert!(refused(conv([1, 8, 8], 0, 5, 1.0)).contains("maps"));
        assert!(refused(conv([1, 8, 8], 2, 0, 1.0)).contains("kernel"));
        let huge = refused(conv([1, 1 << 16, 1 << 16], 1, 1, 1.0));
        assert!(huge.starts_with("SpikingConv2d: input gives input neurons"));
        let many = refused(conv([1, 8, 8], 1 << 28, 3, 1.0));
        assert!(many.starts_with("SpikingConv2d: maps gives kernels [268435456, 1, 3, 3]"));
        assert!(refused(conv([1, 8, 8], 2, 5, 0.0)).contains("lif.threshold"));
        let mut nan_tau = ok();
        nan_tau.lif.tau_s = f32::NAN;
        assert!(refused(nan_tau).contains("lif.tau_s"));
        assert!(refused(ok().with_init_scale(-0.5)).contains("init_scale"));
        let negative = WeightRegularizer {
            lambda: -1.0,
            ..WeightRegularizer::OFF
        };
        let err = refused(ok().with_regularizer(negative));
        assert!(err.contains("regularizer.lambda"), "{err}");
        let wrong = Tensor::zeros([2, 1, 3, 3], &Device::flex());
        assert!(
            ok().try_init_with(wrong)
                .unwrap_err()
                .to_string()
                .contains("weights")
        );
    }
}
