//! [`SpikeTrains`]: what spiking layers exchange. A batch of spike trains travels as two
//! tensors:
//!
//! - `counts [B, N]` (`f32`): the spike count of every neuron. This is the quantity HM2-BP
//!   differentiates (its errors are `∂E/∂o`), so it is the tensor autodiff tracks: a loss
//!   written on the output layer's counts sends `∂E/∂o` straight into the layers' custom
//!   backward, and each layer hands `∂E/∂o_pre` to the counts of the layer below.
//! - `words [B, T, ⌈N/32⌉]` (int): the trains themselves, bit-packed (bit `k` of word `w` of
//!   step `t` is neuron `32·w + k`; see [`crate::spikes`]). Not differentiable; 32× smaller than
//!   a dense `f32` train, and read by the kernels in `O(words + spikes)`.
//!
//! [`SpikeTrains::from_dense`] and [`SpikeTrains::to_dense`] convert from and to dense 0/1
//! tensors `[B, T, N]` with the backend's tensor operations (on its device).
//!
//! The layers' functions on trains live here too: [`spiking_dense`] and [`spiking_local`]
//! run the spiking layer's op ([`crate::ops::Hm2bpBackend::spiking_layer`]) and
//! [`add_weight_penalty`] the regulariser's, through Burn's `Dispatch`.

use burn::backend::Dispatch;
use burn::prelude::*;

use crate::device_reads;
use crate::ops::host::{NO_LABEL, words_of};
use crate::ops::{Hm2bpBackend, KernelPath};
use crate::rule::local::LocalSpec;
use crate::rule::regularizer::WeightRegularizer;
use crate::rule::{DenseSpec, LayerSpec};
use crate::spikes::{
    BatchShape, SpikeRaster, rasters_counts, rasters_from_words, rasters_to_words, words_per_step,
};

/// A batch of spike trains: differentiable counts and bit-packed trains, and where a spiking
/// layer's device kernels made them, every neuron's spike steps (which the next layer's
/// backward reads instead of scanning the words again).
#[derive(Clone, Debug)]
pub struct SpikeTrains {
    counts: Tensor<2>,
    words: Tensor<3, Int>,
    /// Spike steps `[B·N, T]` (neuron `b·N + i`'s first `count` entries, ascending), if known.
    times: Option<Tensor<2, Int>>,
}

impl SpikeTrains {
    /// From counts `[B, N]` and bit-packed words `[B, T, ⌈N/32⌉]` that agree with them.
    ///
    /// # Panics
    /// If the batch sizes differ or `words` does not have `⌈N/32⌉` words per step.
    pub fn new(counts: Tensor<2>, words: Tensor<3, Int>) -> Self {
        let [b, n] = counts.dims();
        let [wb, _, w] = words.dims();
        assert!(
            b == wb && w == words_per_step(n),
            "SpikeTrains: counts [{b}, {n}] need words [{b}, T, {}], got {:?}",
            words_per_step(n),
            words.dims()
        );
        Self {
            counts,
            words,
            times: None,
        }
    }

    /// Dense 0/1 trains `[B, T, N]` (any value `> 0.5` is a spike). The counts are
    /// `spikes.sum_dim(1)`, so gradients reaching them flow on to `spikes`.
    pub fn from_dense(spikes: Tensor<3>) -> Self {
        let [b, _, n] = spikes.dims();
        let counts = spikes.clone().sum_dim(1).reshape([b, n]);
        let fired = spikes.detach().greater_elem(0.5).float();
        let words = Tensor::from_dispatch(Dispatch::pack_spikes(fired.into_dispatch()));
        Self::new(counts, words)
    }

    /// Per-sample rasters (all of the same steps and neurons) on `device`.
    pub fn from_rasters(rasters: &[SpikeRaster], device: &Device) -> Self {
        let (steps, neurons) = rasters.first().map_or((0, 0), |r| (r.steps(), r.neurons()));
        let b = rasters.len();
        let counts = rasters_counts(rasters);
        let words = rasters_to_words(rasters);
        Self::new(
            Tensor::from_data(TensorData::new(counts, [b, neurons]), device),
            Tensor::from_data(
                TensorData::new(words, [b, steps, words_per_step(neurons)]),
                device,
            ),
        )
    }

    /// The dense 0/1 trains `[B, T, N]` (not differentiable).
    pub fn to_dense(&self) -> Tensor<3> {
        let n = self.neurons();
        Tensor::from_dispatch(Dispatch::unpack_spikes(
            self.words.clone().into_dispatch(),
            n,
        ))
    }

    /// The trains as per-sample rasters on the host.
    ///
    /// # Panics
    /// When the device fails to hand the trains back.
    pub fn to_rasters(&self) -> Vec<SpikeRaster> {
        let [b, t, n] = self.dims();
        let data = device_reads::data(self.words.clone(), "spike trains");
        let shape = BatchShape {
            batch: b,
            steps: t,
            neurons: n,
        };
        rasters_from_words(&words_of(&data), shape)
    }

    /// Spike counts `[B, N]` (tracked by autodiff).
    pub fn counts(&self) -> Tensor<2> {
        self.counts.clone()
    }

    /// Bit-packed trains `[B, T, ⌈N/32⌉]`.
    pub fn words(&self) -> Tensor<3, Int> {
        self.words.clone()
    }

    /// `[batch, steps, neurons]`.
    pub fn dims(&self) -> [usize; 3] {
        let [b, n] = self.counts.dims();
        [b, self.words.dims()[1], n]
    }

    /// Neurons per sample.
    pub fn neurons(&self) -> usize {
        self.counts.dims()[1]
    }

    /// Time steps.
    pub fn steps(&self) -> usize {
        self.words.dims()[1]
    }

    /// The device the trains live on.
    pub fn device(&self) -> Device {
        self.counts.device()
    }

    /// The same trains with counts cut from the autodiff graph.
    pub fn detach(self) -> Self {
        Self {
            counts: self.counts.detach(),
            ..self
        }
    }

    /// The same trains with counts that collect a gradient (`∂E/∂o` of these neurons).
    pub fn require_grad(self) -> Self {
        Self {
            counts: self.counts.require_grad(),
            ..self
        }
    }

    fn into_parts(self) -> (Tensor<2>, Tensor<3, Int>, Option<Tensor<2, Int>>) {
        (self.counts, self.words, self.times)
    }
}

/// Runs a spiking dense layer: `input` trains of `n_in` neurons, `weight [n_out, n_in]`,
/// optional `labels [B]` (output layer) → trains of `n_out` neurons, differentiable with the
/// HM2-BP rule on autodiff devices.
pub fn spiking_dense(
    input: SpikeTrains,
    weight: Tensor<2>,
    labels: Option<Tensor<1, Int>>,
    spec: DenseSpec,
    kernels: KernelPath,
) -> SpikeTrains {
    spiking_layer(input, weight, labels, LayerSpec::Dense(spec), kernels)
}

/// Runs a convolution or pooling layer: `input` trains (maps flattened channel-major), shared
/// `weight [n_weights]` → output trains, differentiable with HM2-BP.
pub fn spiking_local(input: SpikeTrains, weight: Tensor<1>, spec: LocalSpec) -> SpikeTrains {
    spiking_layer(
        input,
        weight,
        None,
        LayerSpec::Local(spec),
        KernelPath::EventDriven,
    )
}

/// The weight regulariser's penalty of `weight [rows, row_len]` (rows: post neurons or output
/// maps), `[1]`, differentiable on autodiff devices (gradient `R`, spec S12).
pub fn weight_penalty(weight: Tensor<2>, regularizer: &WeightRegularizer) -> Tensor<1> {
    add_weight_penalty(Tensor::zeros([1], &weight.device()), weight, regularizer)
}

/// `total [1]` plus [`weight_penalty`] in one op (a loss collecting its layers' penalties
/// needs no additions); the gradient reaches `total` unchanged. `total` itself when λ = 0.
pub fn add_weight_penalty(
    total: Tensor<1>,
    weight: Tensor<2>,
    regularizer: &WeightRegularizer,
) -> Tensor<1> {
    if regularizer.lambda == 0.0 {
        return total;
    }
    Tensor::from_dispatch(Dispatch::add_weight_penalty(
        total.into_dispatch(),
        weight.into_dispatch(),
        *regularizer,
    ))
}

fn spiking_layer<const D: usize>(
    input: SpikeTrains,
    weight: Tensor<D>,
    labels: Option<Tensor<1, Int>>,
    spec: LayerSpec,
    kernels: KernelPath,
) -> SpikeTrains {
    let device = input.device();
    // Only an output layer's backward reads the classes: other layers get an empty tensor
    // (no fill launch on a device), an output layer without them `NO_LABEL`s, which its
    // backward refuses.
    let is_output = matches!(spec, LayerSpec::Dense(d) if d.output.is_some());
    let labels = labels.unwrap_or_else(|| match is_output {
        true => Tensor::full([input.dims()[0]], NO_LABEL, &device),
        false => Tensor::empty([0], &device),
    });
    let (counts, words, times) = input.into_parts();
    let times = times.unwrap_or_else(|| Tensor::empty([0, 0], &device));
    let (counts, words, times) = Dispatch::spiking_layer(
        counts.into_dispatch(),
        words.into_dispatch(),
        times.into_dispatch(),
        weight.into_dispatch(),
        labels.into_dispatch(),
        spec,
        kernels,
    );
    let times: Tensor<2, Int> = Tensor::from_dispatch(times);
    SpikeTrains {
        times: (times.shape().num_elements() > 0).then_some(times),
        ..SpikeTrains::new(Tensor::from_dispatch(counts), Tensor::from_dispatch(words))
    }
}
