//! What a spiking layer's op takes ([`LayerInput`]) and what its forward pass hands its
//! backward ([`Tape`]) — the state of Burn's custom-kernel example: the backward takes one
//! value instead of restating the layer's arguments.

use std::sync::Arc;

use burn::backend::Backend;
use burn::backend::tensor::{FloatTensor, IntTensor};

use super::KernelPath;
use crate::rule::{LayerSpec, RasterTape};

/// The arguments of a spiking layer's forward pass on backend `B`.
#[derive(Clone, Debug)]
pub struct LayerInput<B: Backend> {
    /// Bit-packed input trains `[B, T, ⌈n_in/32⌉]`.
    pub words: IntTensor<B>,
    /// The input's spike steps `[B·n_in, T]` and counts `[B, n_in]` where the layer below's
    /// device kernels kept them (read by the device kernels' backward instead of a scan).
    pub times: Option<(IntTensor<B>, FloatTensor<B>)>,
    /// Input neurons.
    pub n_in: usize,
    /// `[n_out, n_in]` for a dense layer, `[n_weights]` shared weights for conv / pooling.
    pub weight: FloatTensor<B>,
    /// Class per sample `[B]`, read by an output layer's backward only.
    pub labels: IntTensor<B>,
    /// The layer.
    pub spec: LayerSpec,
    /// The kernels asked for (dense layers).
    pub kernels: KernelPath,
}

/// What a layer's forward pass keeps for its HM2-BP backward: the layer, the weights it ran
/// with (the pre-update weights), the labels, and its trains in the form the kernels chosen
/// for the backward read ([`Saved`]). The backend's forward chooses the kernels; the backward
/// follows the tape.
#[derive(Clone, Debug)]
pub struct Tape<B: Backend> {
    pub(crate) spec: LayerSpec,
    pub(crate) weight: FloatTensor<B>,
    pub(crate) labels: IntTensor<B>,
    pub(crate) saved: Saved<B>,
}

/// A forward pass's trains as its backward reads them.
#[derive(Clone, Debug)]
pub(crate) enum Saved<B: Backend> {
    /// The host kernels ran the forward: per-sample event lists and prepared weights; the
    /// backward runs the host kernels on them.
    Rasters(Arc<RasterTape>),
    /// The forward ran on the device: its bit-packed trains.
    Words(WordsTape<B>),
}

/// The bit-packed input and output trains of a forward pass that ran on the device. The
/// backward runs the backend's device kernels when `device_kernels` (and the error is `f32`),
/// otherwise the [`super::generic`] tensor operations (dense layers) or the host kernels on
/// the trains read back (convolution, pooling).
#[derive(Clone, Debug)]
pub(crate) struct WordsTape<B: Backend> {
    /// Input trains `[B, T, ⌈n_in/32⌉]`.
    pub(crate) input: IntTensor<B>,
    /// Output trains `[B, T, ⌈n_out/32⌉]`.
    pub(crate) output: IntTensor<B>,
    /// Input neurons.
    pub(crate) n_in: usize,
    /// The input's spike steps and counts, where the layer below kept them.
    #[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
    pub(crate) input_times: Option<(IntTensor<B>, FloatTensor<B>)>,
    /// What the forward's kernels made that the backward reads too.
    #[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
    pub(crate) kept: Kept<B>,
    /// Whether the backward runs the backend's device kernels (read by the CubeCL backends
    /// only).
    #[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
    pub(crate) device_kernels: bool,
}

/// A forward pass on the device: output counts, words and what else its kernels made that
/// the backward reads.
pub(crate) type DeviceForward<B> = (FloatTensor<B>, IntTensor<B>, Kept<B>);

/// What a forward pass's kernels made besides its outputs that its backward reads too (the
/// CubeCL layers'; nothing elsewhere).
#[derive(Clone, Debug)]
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
pub(crate) struct Kept<B: Backend> {
    /// The weights transposed `[n_in, n_out]`.
    pub(crate) weight_t: Option<FloatTensor<B>>,
    /// Each output neuron's spike steps `[B·n_out, T]` (the first `count` entries, ascending)
    /// and the counts `[B, n_out]`, written by the LIF scan.
    pub(crate) output_times: Option<(IntTensor<B>, FloatTensor<B>)>,
}

impl<B: Backend> Kept<B> {
    /// Nothing kept.
    pub(crate) fn none() -> Self {
        Self {
            weight_t: None,
            output_times: None,
        }
    }
}

impl<B: Backend> Tape<B> {
    /// Runs a forward pass on the device (`run`: input → output counts, words and what its
    /// kernels keep for the backward) and keeps its trains for a backward on the device
    /// kernels (`device_kernels`) or off them.
    pub(crate) fn run_on_device(
        input: LayerInput<B>,
        device_kernels: bool,
        run: impl FnOnce(&LayerInput<B>) -> DeviceForward<B>,
    ) -> (FloatTensor<B>, IntTensor<B>, Self) {
        let (counts, output, kept) = run(&input);
        let words = WordsTape {
            input: input.words,
            output: output.clone(),
            n_in: input.n_in,
            input_times: input.times,
            kept,
            device_kernels,
        };
        let tape = Tape {
            spec: input.spec,
            weight: input.weight,
            labels: input.labels,
            saved: Saved::Words(words),
        };
        (counts, output, tape)
    }

    /// The output spike steps `[B·n_out, T]` the forward's kernels kept for the backward, which
    /// the next layer's backward reads as its input's.
    pub(crate) fn output_times(&self) -> Option<IntTensor<B>> {
        match &self.saved {
            Saved::Words(w) => w.kept.output_times.as_ref().map(|(t, _)| t.clone()),
            Saved::Rasters(_) => None,
        }
    }
}
