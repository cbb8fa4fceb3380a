//! Network definitions (`models/*.json`) and the spiking network module built from them.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::definition::{DefinitionError, read_definition};
use crate::neuron::LifSpec;
use crate::ops::KernelPath;
use crate::rule::output::OutputRule;
use crate::rule::regularizer::WeightRegularizer;
use crate::spike_trains::SpikeTrains;

use crate::layers::{
    LayerConfigError, SpikingConv2d, SpikingConv2dConfig, SpikingDense, SpikingDenseConfig,
    SpikingPool2d, SpikingPool2dConfig,
};

/// Neuron constants shared by every layer (spec §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeuronDef {
    /// τm in steps.
    pub tau_m: f32,
    /// τs in steps.
    pub tau_s: f32,
    /// Refractory period in steps.
    pub t_ref: u32,
}

impl NeuronDef {
    /// The parameters of a layer of these neurons with threshold ν that fire when
    /// `v > ν − 1e-6` (the paper's FC and pooling neurons; its conv neurons are
    /// [`LifSpec::strict`]).
    pub fn lif(&self, threshold: f32) -> LifSpec {
        LifSpec {
            tau_m: self.tau_m,
            tau_s: self.tau_s,
            t_ref: self.t_ref,
            ..LifSpec::paper(threshold)
        }
    }
}

impl Default for NeuronDef {
    /// The paper's constants (τm 64, τs 8, t_ref 2).
    fn default() -> Self {
        let LifSpec {
            tau_m,
            tau_s,
            t_ref,
            ..
        } = LifSpec::paper(1.0);
        Self {
            tau_m,
            tau_s,
            t_ref,
        }
    }
}

/// One layer of a network definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LayerDef {
    /// Fully connected LIF layer.
    Dense {
        /// Neurons.
        size: usize,
        /// Threshold ν.
        threshold: f32,
    },
    /// Spiking convolution (stride 1, no padding, `v > ν`).
    Conv {
        /// Output maps.
        maps: usize,
        /// Kernel side.
        kernel: usize,
        /// Threshold ν.
        threshold: f32,
    },
    /// Spiking 2×2 sum pooling.
    Pool {
        /// Window side.
        size: usize,
        /// Threshold ν.
        threshold: f32,
    },
}

/// A network definition, as stored in `models/NAME.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDef {
    /// Name (the file stem).
    pub name: String,
    /// Input shape `[channels, height, width]`; an MLP reads it flattened.
    pub input: [usize; 3],
    /// Layers, bottom-up; the last one is the output layer.
    pub layers: Vec<LayerDef>,
    /// Neuron constants.
    #[serde(default)]
    pub neuron: NeuronDef,
    /// Uniform initialisation scale of FC weights (`initW`).
    #[serde(default = "one")]
    pub init_scale: f64,
    /// Uniform initialisation scale of conv kernels.
    #[serde(default = "half")]
    pub conv_init_scale: f64,
    /// Fixed lateral inhibition between output neurons (0 = none).
    #[serde(default = "one_f32")]
    pub lateral_strength: f32,
}

fn one() -> f64 {
    1.0
}
fn half() -> f64 {
    0.5
}
fn one_f32() -> f32 {
    1.0
}

/// Errors of loading or building a network.
pub type ModelError = DefinitionError;

impl NetworkDef {
    /// Loads `name` from `dir/name.json`, or `name` itself if it is a path to a file.
    pub fn load(name: &str, dir: &Path) -> Result<Self, ModelError> {
        let (path, text) =
            read_definition("model", name, dir.join(format!("{name}.json")), || {
                list_stems(dir, "json")
            })?;
        Self::parse(&path, &text)
    }

    /// Parses and validates the JSON text of a network definition; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ModelError> {
        let def: NetworkDef = serde_json::from_str(text).map_err(|e| ModelError::Malformed {
            path: path.to_path_buf(),
            message: format!("malformed network definition: {e}"),
        })?;
        def.validate().map_err(|message| ModelError::Malformed {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(def)
    }

    fn validate(&self) -> Result<(), String> {
        if self.layers.is_empty() {
            return Err("`layers` is empty".into());
        }
        if self.input.contains(&0) {
            return Err(format!("`input` {:?} has a zero dimension", self.input));
        }
        if self
            .input
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .is_none()
        {
            return Err(format!("`input` {:?} has too many elements", self.input));
        }
        for (k, l) in self.layers.iter().enumerate() {
            let (size, threshold) = match l {
                LayerDef::Dense { size, threshold } => (*size, *threshold),
                LayerDef::Conv {
                    maps, threshold, ..
                } => (*maps, *threshold),
                LayerDef::Pool { size, threshold } => (*size, *threshold),
            };
            if size == 0 {
                return Err(format!("layers[{k}]: size must be > 0"));
            }
            if !(threshold.is_finite() && threshold > 0.0) {
                return Err(format!("layers[{k}]: threshold must be a positive number"));
            }
        }
        Ok(())
    }

    /// Flattened input size.
    pub fn input_size(&self) -> usize {
        self.input.iter().product()
    }

    /// An error about this definition's file (`models/NAME.json`).
    fn malformed(&self, message: String) -> ModelError {
        ModelError::Malformed {
            path: PathBuf::from(format!("models/{}.json", self.name)),
            message,
        }
    }

    /// Builds the layer `layer` reading trains of `input` shape (`is_output`: the last layer)
    /// with random weights.
    fn build_layer(
        &self,
        layer: &LayerDef,
        input: [usize; 3],
        is_output: bool,
        rule: &RuleOptions,
        device: &Device,
    ) -> Result<SpikingLayer, LayerConfigError> {
        let neuron = &self.neuron;
        Ok(match *layer {
            LayerDef::Dense { size, threshold } => {
                let output = is_output.then_some(OutputRule {
                    lateral_strength: self.lateral_strength,
                    label_spike_level: rule.label_spike_level,
                });
                let d_input = input.iter().product();
                let config = SpikingDenseConfig::new(d_input, size, neuron.lif(threshold))
                    .with_init_scale(self.init_scale)
                    .with_output(output)
                    .with_effect_ratio(rule.effect_ratio)
                    .with_regularizer(rule.regularizer);
                SpikingLayer::Dense(config.try_init(device)?)
            }
            LayerDef::Conv {
                maps,
                kernel,
                threshold,
            } => {
                let lif = neuron.lif(threshold).strict();
                let config = SpikingConv2dConfig::new(input, maps, kernel, lif)
                    .with_init_scale(self.conv_init_scale)
                    .with_regularizer(rule.regularizer);
                SpikingLayer::Conv(config.try_init(device)?)
            }
            LayerDef::Pool { size, threshold } => {
                let config = SpikingPool2dConfig::new(input, size, neuron.lif(threshold));
                SpikingLayer::Pool(config.try_init(device)?)
            }
        })
    }
}

/// File stems with extension `ext` in `dir`, sorted.
pub fn list_stems(dir: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            if p.extension()? != ext {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    v.sort();
    v
}

/// Learning-rule options that apply to every layer of a network.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleOptions {
    /// Effect ratio ρ (S8) on.
    pub effect_ratio: bool,
    /// Weight regulariser (applied to every layer with weights).
    pub regularizer: WeightRegularizer,
    /// Label-spike insertion level (`DESIRED_LEVEL`).
    pub label_spike_level: u32,
}

/// One layer of a [`SpikingNet`].
#[derive(Module, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "a network holds a few layers; Burn's Module derive takes no boxed variant"
)]
pub enum SpikingLayer {
    /// Fully connected.
    Dense(SpikingDense),
    /// Convolution.
    Conv(SpikingConv2d),
    /// Sum pooling.
    Pool(SpikingPool2d),
}

impl SpikingLayer {
    /// Simulates the layer (`labels` reach the output layer's rule).
    pub fn forward(&self, input: SpikeTrains, labels: Option<Tensor<1, Int>>) -> SpikeTrains {
        match self {
            SpikingLayer::Dense(l) => l.forward(input, labels),
            SpikingLayer::Conv(l) => l.forward(input),
            SpikingLayer::Pool(l) => l.forward(input),
        }
    }

    /// The shape `[maps, height, width]` of the layer's output (a dense layer: `[n, 1, 1]`).
    pub fn output_shape(&self) -> [usize; 3] {
        match self {
            SpikingLayer::Dense(l) => [l.weight.dims()[0], 1, 1],
            SpikingLayer::Conv(l) => l.output_shape(),
            SpikingLayer::Pool(l) => l.output_shape(),
        }
    }

    /// `total [1]` plus the layer's weight-regulariser penalty, if it has weights.
    pub fn add_regularizer_penalty(&self, total: Tensor<1>) -> Tensor<1> {
        match self {
            SpikingLayer::Dense(l) => l.add_regularizer_penalty(total),
            SpikingLayer::Conv(l) => l.add_regularizer_penalty(total),
            SpikingLayer::Pool(_) => total,
        }
    }
}

/// A stack of spiking layers trained with HM2-BP.
#[derive(Module, Debug)]
pub struct SpikingNet {
    /// Layers, bottom-up.
    pub layers: Vec<SpikingLayer>,
}

impl SpikingNet {
    /// Builds the network of `def` with random weights.
    pub fn new(def: &NetworkDef, rule: &RuleOptions, device: &Device) -> Result<Self, ModelError> {
        let mut shape = def.input;
        let mut layers = Vec::with_capacity(def.layers.len());
        for (k, l) in def.layers.iter().enumerate() {
            let is_output = k + 1 == def.layers.len();
            let layer = def
                .build_layer(l, shape, is_output, rule, device)
                .map_err(|e| def.malformed(format!("layers[{k}]: {e}")))?;
            shape = layer.output_shape();
            layers.push(layer);
        }
        if !matches!(layers.last(), Some(SpikingLayer::Dense(_))) {
            return Err(def.malformed("the output layer must be a dense layer".into()));
        }
        Ok(Self { layers })
    }

    /// The same network with its dense layers on `kernels`.
    pub fn with_kernels(self, kernels: KernelPath) -> Self {
        let layers = self
            .layers
            .into_iter()
            .map(|l| match l {
                SpikingLayer::Dense(d) => SpikingLayer::Dense(d.with_kernels(kernels)),
                other => other,
            })
            .collect();
        Self { layers }
    }

    /// Runs the network: input trains → every layer's spike trains, bottom-up.
    pub fn forward(&self, input: SpikeTrains, labels: Option<Tensor<1, Int>>) -> Vec<SpikeTrains> {
        let mut outs = Vec::with_capacity(self.layers.len());
        self.forward_inspecting(input, labels, |spikes| outs.push(spikes.clone()));
        outs
    }

    /// Runs the network and returns the output layer's spike trains; `inspect` sees every
    /// layer's spike trains (output included) before the next layer consumes them.
    pub fn forward_inspecting(
        &self,
        input: SpikeTrains,
        labels: Option<Tensor<1, Int>>,
        mut inspect: impl FnMut(&SpikeTrains),
    ) -> SpikeTrains {
        let mut x = input;
        for layer in &self.layers {
            x = layer.forward(x, labels.clone());
            inspect(&x);
        }
        x
    }

    /// Sum of the layers' weight-regulariser penalties, `[1]`.
    pub fn regularizer_penalty(&self) -> Tensor<1> {
        let device = self.devices().into_iter().next();
        let device = device.expect("the output layer is a dense layer, with weights");
        self.add_regularizer_penalty(Tensor::zeros([1], &device))
    }

    /// `total [1]` plus the layers' weight-regulariser penalties, bottom-up, each layer's op
    /// adding its own (no separate additions: on a device, no launch of their own).
    pub fn add_regularizer_penalty(&self, total: Tensor<1>) -> Tensor<1> {
        self.layers
            .iter()
            .fold(total, |total, layer| layer.add_regularizer_penalty(total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::regularizer::{RegularizerDef, RegularizerPreset};

    fn build(json: &str) -> Result<SpikingNet, ModelError> {
        let def = NetworkDef::parse(Path::new("models/t.json"), json)?;
        let regularizer = RegularizerDef::Named(RegularizerPreset::Off).params();
        let rule = RuleOptions {
            effect_ratio: true,
            regularizer,
            label_spike_level: 35,
        };
        SpikingNet::new(&def, &rule, &Device::flex())
    }

    /// Layer configurations that cannot run are refused with the file, layer and field.
    #[test]
    fn bad_layer_values_name_the_layer_and_field() {
        let net = |input: &str, layers: &str, neuron: &str| {
            format!(
                r#"{{"name": "t", "input": {input}, "layers": [{layers}], "neuron": {neuron}}}"#
            )
        };
        let neuron = r#"{"tau_m": 64.0, "tau_s": 8.0, "t_ref": 2}"#;
        let dense = r#"{"kind": "dense", "size": 10, "threshold": 8.0}"#;
        assert!(build(&net("[1, 8, 8]", dense, neuron)).is_ok());
        let err = |input: &str, layers: &str, neuron: &str| {
            build(&net(input, layers, neuron))
                .expect_err("refused")
                .to_string()
        };
        let zero_tau = r#"{"tau_m": 0.0, "tau_s": 8.0, "t_ref": 2}"#;
        assert_eq!(
            err("[1, 8, 8]", dense, zero_tau),
            "models/t.json: layers[0]: SpikingDense: lif.tau_m must be a finite number > 0 (got 0)"
        );
        let conv = r#"{"kind": "conv", "maps": 2, "kernel": 9, "threshold": 1.0}"#;
        assert_eq!(
            err("[1, 8, 8]", &format!("{conv}, {dense}"), neuron),
            "models/t.json: layers[0]: SpikingConv2d: kernel 9 is larger than the 8×8 input"
        );
        let pool = r#"{"kind": "pool", "size": 3, "threshold": 1.0}"#;
        assert!(
            err("[1, 8, 8]", &format!("{pool}, {dense}"), neuron)
                .contains("layers[0]: SpikingPool2d: size 3 does not tile the 8×8 input")
        );
    }
}
