//! Spiking dense (fully connected) layer of LIF neurons trained with HM2-BP.

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::Distribution;

use super::config_error::{Checks, LayerConfigError, or_panic};
use crate::neuron::LifSpec;
use crate::ops::KernelPath;
use crate::rule::DenseSpec;
use crate::rule::output::OutputRule;
use crate::rule::regularizer::WeightRegularizer;
use crate::spike_trains::SpikeTrains;
use crate::spike_trains::spiking_dense;

/// Configuration of a [`SpikingDense`] layer: its size, its neurons ([`LifSpec`]), its
/// learning rule and its weight regulariser, each setting in one place (as Burn nests
/// `PaddingConfig2d` in `Conv2dConfig`).
#[derive(Config, Debug)]
pub struct SpikingDenseConfig {
    /// Input neurons.
    pub d_input: usize,
    /// Output neurons.
    pub d_output: usize,
    /// The layer's LIF neurons: threshold ν, τm, τs, refractory period and the comparison
    /// `v > ν − threshold_eps` ([`LifSpec::paper`]: the paper's FC neurons).
    pub lif: LifSpec,
    /// Initial weights are uniform in `[−init_scale, init_scale]` (the authors' "Bernoulli").
    #[config(default = 1.0)]
    pub init_scale: f64,
    /// The output layer's lateral inhibition and label-spike insertion (`None`: a hidden
    /// layer).
    pub output: Option<OutputRule>,
    /// Use the effect ratio ρ = e/o_pre in the backpropagated error (S8).
    #[config(default = true)]
    pub effect_ratio: bool,
    /// The exponential weight regulariser (S12; default off).
    #[config(default = "WeightRegularizer::OFF")]
    pub regularizer: WeightRegularizer,
}

impl SpikingDenseConfig {
    /// The layer's neuron parameters and learning rule.
    pub fn spec(&self) -> DenseSpec {
        DenseSpec {
            lif: self.lif,
            output: self.output,
            effect_ratio: self.effect_ratio,
        }
    }

    /// Refuses values the layer cannot run with, naming the field.
    pub fn validate(&self) -> Result<(), LayerConfigError> {
        let c = Checks::of("SpikingDense");
        c.nonzero("d_input", self.d_input)?;
        c.nonzero("d_output", self.d_output)?;
        c.bounded("d_output", "weights", &[self.d_output, self.d_input])?;
        c.lif(&self.lif)?;
        c.positive("init_scale", self.init_scale)?;
        if let Some(output) = &self.output {
            c.finite("output.lateral_strength", output.lateral_strength.into())?;
        }
        c.regularizer(&self.regularizer)
    }

    /// Creates the layer with uniform random weights, or refuses an invalid configuration.
    pub fn try_init(&self, device: &Device) -> Result<SpikingDense, LayerConfigError> {
        self.validate()?;
        let weight = Tensor::random(
            [self.d_output, self.d_input],
            Distribution::Uniform(-self.init_scale, self.init_scale),
            device,
        );
        self.try_init_with(weight)
    }

    /// Creates the layer with uniform random weights.
    ///
    /// # Panics
    /// If the configuration is invalid (see [`Self::validate`]).
    pub fn init(&self, device: &Device) -> SpikingDense {
        or_panic(self.try_init(device))
    }

    /// Creates the layer with the given weights `[d_output, d_input]`, or refuses an invalid
    /// configuration or weights of another shape.
    pub fn try_init_with(&self, weight: Tensor<2>) -> Result<SpikingDense, LayerConfigError> {
        self.validate()?;
        Checks::of("SpikingDense").weight_shape(&weight.dims(), &[self.d_output, self.d_input])?;
        Ok(SpikingDense {
            weight: Param::from_tensor(weight),
            spec: self.spec(),
            regularizer: self.regularizer,
            kernels: KernelPath::default(),
        })
    }

    /// Creates the layer with the given weights `[d_output, d_input]`.
    ///
    /// # Panics
    /// If the configuration is invalid or the weights have another shape.
    pub fn init_with(&self, weight: Tensor<2>) -> SpikingDense {
        or_panic(self.try_init_with(weight))
    }
}

/// A layer of LIF neurons fully connected to its input spike trains.
///
/// `forward`: trains of `d_input` neurons → trains of `d_output` neurons (see
/// [`SpikeTrains`]). On an autodiff device the gradient of its output counts is HM2-BP (see
/// [`crate::ops`]).
#[derive(Module, Debug)]
pub struct SpikingDense {
    /// Weights `[d_output, d_input]`.
    pub weight: Param<Tensor<2>>,
    #[module(skip)]
    spec: DenseSpec,
    #[module(skip)]
    regularizer: WeightRegularizer,
    #[module(skip)]
    kernels: KernelPath,
}

impl SpikingDense {
    /// The same layer running on `kernels` (default: event-driven where the backend has host
    /// kernels).
    pub fn with_kernels(self, kernels: KernelPath) -> Self {
        Self { kernels, ..self }
    }

    /// Neuron parameters and learning rule of this layer.
    pub fn spec(&self) -> DenseSpec {
        self.spec
    }

    /// Simulates the layer. `labels [batch]` are used by the output layer's backward rule.
    ///
    /// # Panics
    /// If `input` does not have `d_input` neurons.
    pub fn forward(&self, input: SpikeTrains, labels: Option<Tensor<1, Int>>) -> SpikeTrains {
        let [_, d_input] = self.weight.dims();
        assert_eq!(
            input.neurons(),
            d_input,
            "SpikingDense: input trains have {} neurons, the layer takes {d_input}",
            input.neurons()
        );
        let labels = self.spec.output.and(labels);
        spiking_dense(input, self.weight.val(), labels, self.spec, self.kernels)
    }

    /// `total [1]` plus the exponential weight-norm penalty `Σ_i λ (N_in L/2) exp(β (S_i − 1))`
    /// (S12), whose gradient is the regulariser `R` (`total` itself when λ = 0).
    pub fn add_regularizer_penalty(&self, total: Tensor<1>) -> Tensor<1> {
        crate::spike_trains::add_weight_penalty(total, self.weight.val(), &self.regularizer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(config: SpikingDenseConfig) -> String {
        config.try_init(&Device::flex()).unwrap_err().to_string()
    }

    fn dense(d_input: usize, d_output: usize, threshold: f32) -> SpikingDenseConfig {
        SpikingDenseConfig::new(d_input, d_output, LifSpec::paper(threshold))
    }

    /// A valid configuration with `change` applied to its neuron parameters.
    fn lif(change: impl FnOnce(&mut LifSpec)) -> SpikingDenseConfig {
        let mut config = dense(4, 3, 1.0);
        change(&mut config.lif);
        config
    }

    #[test]
    fn refuses_bad_values_naming_the_field() {
        let ok = || dense(4, 3, 1.0);
        assert!(ok().try_init(&Device::flex()).is_ok());
        assert!(refused(dense(0, 3, 1.0)).starts_with("SpikingDense: d_input"));
        assert!(refused(dense(4, 0, 1.0)).contains("d_output"));
        assert!(refused(dense(4, 3, f32::NAN)).contains("lif.threshold"));
        let tau_m = refused(lif(|p| p.tau_m = 0.0));
        assert!(
            tau_m.contains("lif.tau_m must be a finite number > 0"),
            "{tau_m}"
        );
        assert!(refused(lif(|p| p.tau_s = -8.0)).contains("lif.tau_s"));
        assert!(refused(lif(|p| p.threshold_eps = -1.0)).contains("lif.threshold_eps"));
        assert!(refused(ok().with_init_scale(0.0)).contains("init_scale"));
        let lateral = OutputRule {
            lateral_strength: f32::INFINITY,
            ..OutputRule::default()
        };
        let err = refused(ok().with_output(Some(lateral)));
        assert!(err.contains("output.lateral_strength"), "{err}");
        let limit = WeightRegularizer {
            limit: 0.0,
            ..WeightRegularizer::OFF
        };
        let err = refused(ok().with_regularizer(limit));
        assert!(err.contains("regularizer.limit"), "{err}");
        // A hostile size is refused before anything is allocated.
        let huge = refused(dense(1 << 20, 1 << 20, 1.0));
        assert!(huge.starts_with("SpikingDense: d_output gives weights [1048576, 1048576], more"));
        assert!(refused(dense(usize::MAX, 2, 1.0)).contains("more than"));
        let wrong = Tensor::zeros([4, 3], &Device::flex());
        let err = ok().try_init_with(wrong).unwrap_err().to_string();
        assert!(
            err.contains("weights have shape [4, 3], the layer takes [3, 4]"),
            "{err}"
        );
    }

    #[test]
    #[should_panic(expected = "SpikingDense: lif.tau_m")]
    fn init_panics_with_the_refusal() {
        lif(|p| p.tau_m = f32::NAN).init(&Device::flex());
    }
}
