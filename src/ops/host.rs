//! The bridge between a backend's tensors and host memory, and the host kernels' side of the
//! op: reading weights, gradients, labels and bit-packed trains to the host, running the
//! event-driven kernels of [`crate::rule`] on them ([`forward`], [`backward`]) and uploading
//! the results.
//!
//! **One error rule.** A spiking layer's op has no error channel (Burn's backend ops return
//! tensors), so every read from a device goes through [`crate::device_reads::primitive`],
//! which counts it and stops the step with a message naming what was being read and why it failed — at the point of failure, never as
//! an empty vector that fails later elsewhere. Values that are not what the op needs
//! (a missing or out-of-range label, words that do not hold the layer's neurons) stop it
//! the same way, with what was expected.

use std::sync::Arc;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::{DType, TensorData};

use super::tape::{LayerInput, Saved, Tape, WordsTape};
use crate::device_reads;
use crate::rule::{LayerGrads, Needs, RasterTape};
use crate::spikes::words_per_step;
use crate::spikes::{
    BatchShape, SpikeRaster, rasters_counts, rasters_from_words, rasters_to_words,
};

/// The label tensor of a forward pass without labels (read back only by an output layer's
/// backward, which refuses it).
pub(crate) const NO_LABEL: i64 = -1;

/// A float tensor's data on the host as `f32` (converted if the tensor has another float
/// dtype), without further copies; [`f32s`] gives its values.
pub(crate) fn host_f32<B: Backend>(what: &str, tensor: FloatTensor<B>) -> TensorData {
    let data = device_reads::primitive(what, B::float_into_data(tensor));
    if data.dtype() == DType::F32 {
        data
    } else {
        data.convert::<f32>()
    }
}

/// The `f32` values of data produced by [`host_f32`].
pub(crate) fn f32s(data: &TensorData) -> &[f32] {
    data.as_slice::<f32>()
        .expect("host_f32 always yields f32 data")
}

/// The 32-bit words of bit-packed trains' data (any int dtype; only the low 32 bits count).
pub(crate) fn words_of(data: &TensorData) -> Vec<u32> {
    match data.dtype() {
        DType::U32 => data.iter::<u32>().collect(),
        DType::I32 => data.iter::<i32>().map(|w| w as u32).collect(),
        _ => data.iter::<i64>().map(|w| w as u32).collect(),
    }
}

/// Reads bit-packed trains `[B, T, ⌈neurons/32⌉]` into per-sample rasters.
///
/// # Panics
/// When the words do not hold `neurons` neurons per step (or cannot be read).
pub(crate) fn host_rasters<B: Backend>(words: IntTensor<B>, neurons: usize) -> Vec<SpikeRaster> {
    let shape = words.shape();
    let (b, t, w) = (shape[0], shape[1], shape[2]);
    assert_eq!(
        w,
        words_per_step(neurons),
        "hm2bp: spike words [{b}, {t}, {w}] do not hold {neurons} neurons"
    );
    let data = device_reads::primitive("spike trains", B::int_into_data(words));
    let shape = BatchShape {
        batch: b,
        steps: t,
        neurons,
    };
    rasters_from_words(&words_of(&data), shape)
}

/// Class labels `[B]` on the host, for the backward of an output layer of `classes` neurons.
///
/// # Panics
/// When the forward pass had no labels ([`NO_LABEL`]) or a label is not below `classes`: the
/// output layer's rule needs every sample's class, and guessing one would train silently wrong.
pub(crate) fn host_labels<B: Backend>(labels: IntTensor<B>, classes: usize) -> Vec<usize> {
    device_reads::primitive("labels", B::int_into_data(labels))
        .iter::<i64>()
        .map(|v| {
            assert!(
                v != NO_LABEL,
                "output layer trained without labels: pass the batch's classes to `forward` \
                 (`labels: Some(…)`) when its gradient is computed"
            );
            usize::try_from(v)
                .ok()
                .filter(|&c| c < classes)
                .unwrap_or_else(|| {
                    panic!("label {v} is not a class of this output layer (0..{classes})")
                })
        })
        .collect()
}

/// Uploads per-sample rasters as (counts `[B, N]`, words `[B, T, ⌈N/32⌉]` of `int_dtype`).
pub(crate) fn upload_trains<B: Backend>(
    rasters: &[SpikeRaster],
    device: &B::Device,
    int_dtype: DType,
) -> (FloatTensor<B>, IntTensor<B>) {
    let b = rasters.len();
    let (t, n) = rasters.first().map_or((0, 0), |r| (r.steps(), r.neurons()));
    let counts = rasters_counts(rasters);
    let words = TensorData::new(rasters_to_words(rasters), [b, t, words_per_step(n)]);
    let words = if int_dtype == DType::I32 {
        words
    } else {
        words.convert_dtype(int_dtype)
    };
    (
        B::float_from_data(TensorData::new(counts, [b, n]), device),
        B::int_from_data(words, device),
    )
}

/// The forward pass on the host kernels: output (counts, words) and the tape of rasters for
/// the backward.
pub(crate) fn forward<B: Backend>(input: LayerInput<B>) -> (FloatTensor<B>, IntTensor<B>, Tape<B>) {
    let LayerInput {
        words,
        n_in,
        weight,
        labels,
        spec,
        ..
    } = input;
    let n_out = spec.n_out(&weight.shape());
    let device = words.device();
    let int_dtype = words.dtype();
    let input = host_rasters::<B>(words, n_in);
    let layer = spec.prepare(f32s(&host_f32::<B>("weights", weight.clone())), n_in, n_out);
    let rasters = layer.forward(input);
    let (counts, words) = upload_trains::<B>(&rasters.output, &device, int_dtype);
    let tape = Tape {
        spec,
        weight,
        labels,
        saved: Saved::Rasters(Arc::new(rasters)),
    };
    (counts, words, tape)
}

/// The HM2-BP backward on the host kernels from the forward's rasters, `weight` (its shape and
/// device) and `d_post [B, n_out]`.
pub(crate) fn backward<B: Backend>(
    rasters: &RasterTape,
    tape: &Tape<B>,
    d_post: FloatTensor<B>,
    needs: Needs,
) -> LayerGrads<FloatTensor<B>> {
    let labels = tape
        .spec
        .needs_labels()
        .then(|| host_labels::<B>(tape.labels.clone(), tape.weight.shape()[0]));
    let d = host_f32::<B>("the output error", d_post);
    let grads = rasters.backward(f32s(&d), labels.as_deref(), needs);
    upload_grads::<B>(grads, tape, rasters.batch(), rasters.input_neurons())
}

/// The HM2-BP backward of a layer whose forward ran on the device, on the host kernels: its
/// input and output words read back as rasters.
pub(crate) fn backward_from_words<B: Backend>(
    tape: &Tape<B>,
    words: &WordsTape<B>,
    d_post: FloatTensor<B>,
    needs: Needs,
) -> LayerGrads<FloatTensor<B>> {
    let (input, output, n_in) = (words.input.clone(), words.output.clone(), words.n_in);
    let n_out = tape.spec.n_out(&tape.weight.shape());
    let weights = host_f32::<B>("weights", tape.weight.clone());
    let rasters = tape.spec.prepare(f32s(&weights), n_in, n_out).with_trains(
        host_rasters::<B>(input, n_in),
        host_rasters::<B>(output, n_out),
    );
    backward::<B>(&rasters, tape, d_post, needs)
}

/// Host gradients uploaded to the weight's device: the weight gradient shaped as the weight,
/// `∂E/∂o_pre` as `[batch, n_in]`.
fn upload_grads<B: Backend>(
    grads: LayerGrads<Vec<f32>>,
    tape: &Tape<B>,
    batch: usize,
    n_in: usize,
) -> LayerGrads<FloatTensor<B>> {
    let device = tape.weight.device();
    let up = |v: Vec<f32>, shape: burn::tensor::Shape| {
        B::float_from_data(TensorData::new(v, shape), &device)
    };
    LayerGrads {
        weight: grads.weight.map(|v| up(v, tape.weight.shape())),
        input: grads.input.map(|v| up(v, [batch, n_in].into())),
    }
}
