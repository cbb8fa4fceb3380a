//! LIF networks trained by backpropagation through time (BPTT) with surrogate gradients.
//!
//! The dynamics are those of the HM2-BP layers ([`crate::neuron`], spec §1.1), step by step:
//! leak `v −= v/τm`, `ep −= ep/τs`; at `t = 0` nothing else; the current
//! `I(t) = W·x(t−1)` (minus `λ·Σ_{l≠i} s_l(t−1)` in the output layer) is added to `ep`,
//! `v += ep/τs`, refractory neurons are clamped to `v = 0`, and a neuron fires when
//! `v > ν − eps`, resetting `v` to 0 and its refractory counter to `t_ref`. With the same
//! weights the spike trains are those of the HM2-BP forward pass.
//!
//! Gradients flow through `v`, `ep`, the synaptic delay and the lateral inhibition; the spike
//! step uses a [`Surrogate`] derivative of `x = (v − ϑ)/ϑ`. The reset `v ← v·(1 − s)` uses the
//! spike as a constant (as snnTorch does), and the refractory clamp is a constant mask.
//!
//! Each step's current is one `[B, N_in] × [N_in, N_out]` product: slicing a current tensor
//! computed for all steps at once would make Burn's autodiff build a full-size gradient per
//! slice (`O(T²)` memory traffic in the backward pass).
//!
//! Truncated BPTT: with `window = K > 0` the neuron state (`v`, `ep` and the previous spikes
//! that feed the lateral inhibition) is detached every `K` steps, so no gradient crosses a
//! window boundary in time (gradients still cross layers at every step). Burn keeps the tape of
//! the whole sequence until the backward pass, so this shortens the gradient paths but does not
//! lower the peak memory; T = 400 fits in memory without it (measured numbers in the README).

use std::path::PathBuf;

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::Distribution;

use super::spike::spike;
use super::surrogate::Surrogate;
use crate::model::{LayerDef, ModelError, NetworkDef};
use crate::neuron::LifSpec;

/// How the spike of a neuron is computed from its scaled distance to threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SpikeFunction {
    /// Heaviside step forward, the surrogate's derivative backward (training).
    Surrogate(Surrogate),
    /// The surrogate's smooth relaxation forward, its exact derivative backward, and a reset
    /// that is differentiated too: a smooth network, for checking gradients against finite
    /// differences.
    Relaxed(Surrogate),
}

/// One fully connected layer of LIF neurons.
#[derive(Module, Debug)]
pub struct BpttDense {
    /// Weights `[n_out, n_in]` (the layout of [`crate::layers::SpikingDense`]).
    pub weight: Param<Tensor<2>>,
    #[module(skip)]
    lif: LifSpec,
    #[module(skip)]
    lateral_strength: f32,
}

/// A layer's spikes over a run.
#[derive(Clone, Debug)]
pub struct LayerRun {
    /// Spikes `[B, N]` at every step.
    pub spikes: Vec<Tensor<2>>,
    /// Spike counts `[B, N]`.
    pub counts: Tensor<2>,
}

/// A stack of dense LIF layers trained with BPTT.
#[derive(Module, Debug)]
pub struct BpttNet {
    /// Layers, bottom-up; the last one is the output layer.
    pub layers: Vec<BpttDense>,
    #[module(skip)]
    spike_function: SpikeFunction,
    #[module(skip)]
    window: usize,
}

impl BpttNet {
    /// Builds the network of `def` with the random weights an HM2-BP network of the same
    /// definition and seed gets (uniform in `±init_scale`). Dense layers only.
    pub fn new(
        def: &NetworkDef,
        spike_function: SpikeFunction,
        window: usize,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let mut d_in = def.input_size();
        let last = def.layers.len() - 1;
        let mut layers = Vec::with_capacity(def.layers.len());
        for (k, layer) in def.layers.iter().enumerate() {
            let LayerDef::Dense { size, threshold } = *layer else {
                return Err(ModelError::Malformed {
                    path: PathBuf::from(format!("models/{}.json", def.name)),
                    message: format!(
                        "layers[{k}]: BPTT training supports dense layers only (this is a {} layer)",
                        match layer {
                            LayerDef::Conv { .. } => "conv",
                            _ => "pool",
                        }
                    ),
                });
            };
            let weight = Tensor::random(
                [size, d_in],
                Distribution::Uniform(-def.init_scale, def.init_scale),
                device,
            );
            let lif = LifSpec {
                tau_m: def.neuron.tau_m,
                tau_s: def.neuron.tau_s,
                t_ref: def.neuron.t_ref,
                threshold,
                threshold_eps: LifSpec::paper(threshold).threshold_eps,
            };
            let lateral_strength = if k == last { def.lateral_strength } else { 0.0 };
            layers.push(BpttDense {
                weight: Param::from_tensor(weight),
                lif,
                lateral_strength,
            });
            d_in = size;
        }
        Ok(Self {
            layers,
            spike_function,
            window,
        })
    }

    /// Simulates `input [B, T, N_in]` spike trains through every layer; returns each layer's
    /// spikes, bottom-up.
    pub fn forward(&self, input: Tensor<3>) -> Vec<LayerRun> {
        let [b, _, n] = input.dims();
        let mut steps: Vec<Tensor<2>> = input.iter_dim(1).map(|x| x.reshape([b, n])).collect();
        let mut runs = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let run = layer.run(&steps, self.spike_function, self.window);
            steps = run.spikes.clone();
            runs.push(run);
        }
        runs
    }
}

impl BpttDense {
    /// Simulates the layer on the spikes `inputs[t] [B, N_in]` of every step.
    fn run(&self, inputs: &[Tensor<2>], spike_function: SpikeFunction, window: usize) -> LayerRun {
        let p = self.lif;
        let [b, _] = inputs[0].dims();
        let n = self.weight.val().dims()[0];
        let device = inputs[0].device();
        let w_t = self.weight.val().transpose();
        let zeros = || Tensor::<2>::zeros([b, n], &device);
        let (mut v, mut ep, mut refractory) = (zeros(), zeros(), zeros());
        let mut previous = zeros();
        let mut counts = zeros();
        let mut spikes = Vec::with_capacity(inputs.len());
        let firing_level = p.firing_level();
        for t in 0..inputs.len() {
            if window > 0 && t > 0 && t % window == 0 {
                v = v.detach();
                ep = ep.detach();
                previous = previous.detach();
            }
            v = v.clone() - v / p.tau_m;
            ep = ep.clone() - ep / p.tau_s;
            if t == 0 {
                spikes.push(zeros());
                continue;
            }
            let mut current = inputs[t - 1].clone().matmul(w_t.clone());
            if self.lateral_strength != 0.0 {
                let total = previous.clone().sum_dim(1);
                current = current - (total - previous.clone()) * self.lateral_strength;
            }
            ep = ep + current;
            v = v + ep.clone() / p.tau_s;
            let clamped = refractory.clone().greater_elem(0.0);
            v = v.mask_fill(clamped, 0.0);
            refractory = (refractory - 1.0).clamp_min(0.0);
            let distance = (v.clone() - firing_level) / p.threshold;
            let s = match spike_function {
                SpikeFunction::Surrogate(surrogate) => {
                    let s = spike(distance, surrogate);
                    v = v * (-s.clone().detach() + 1.0);
                    s
                }
                SpikeFunction::Relaxed(surrogate) => {
                    let s = surrogate.relaxation(distance);
                    v = v * (-s.clone() + 1.0);
                    s
                }
            };
            refractory = refractory + s.clone().detach() * p.t_ref as f32;
            counts = counts + s.clone();
            previous = s.clone();
            spikes.push(s);
        }
        LayerRun { spikes, counts }
    }
}
