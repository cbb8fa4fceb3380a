//! The spiking layers on CubeCL devices (wgpu, CUDA): [`Hm2bpBackend`] for
//! [`burn::backend::Cube`] with device kernels for the dense layer's forward pass ([`lif`]:
//! active inputs, input currents of all steps, LIF scan over all steps writing packed words) and HM2-BP
//! backward ([`post`]: output spike times, label-spike insertion, post kernels `K`, lateral
//! factors; [`spsp`]: input spike times, S-PSP entries, side effect, weight gradient,
//! backpropagated error), and for convolution and pooling layers ([`local`]: the same steps
//! over the pairs of their geometry), so that a training step launches the same number of
//! kernels at any `T` and the trains never leave the device (nothing is uploaded but the
//! batch, by the batcher).
//!
//! [`KernelPath::EventDriven`] (the default) selects these kernels for dense layers;
//! [`KernelPath::Generic`] the tensor-operation path of [`super::generic`] (`tests/wgpu.rs`
//! checks both against the host kernels). Convolution and pooling layers always run the
//! device kernels (weights of another dtype than `f32`: the host kernels).

mod activity;
mod adam;
mod count_loss;
mod lif;
mod local;
mod penalty;
mod post;
mod reduce;
mod spsp;

use burn::backend::Cube;
use burn::backend::TensorMetadata;
use burn::backend::ops::{FloatTensorOps, IntTensorOps};
use burn::backend::tensor::{FloatTensor, IntTensor};
use std::ops::Range;

use burn::tensor::{DType, IntDType, Shape, Slice};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::client::Client;
use cubecl::{CubeCount, CubeDim, calculate_cube_count_elemwise};

use super::host;
use super::tape::{DeviceForward, Kept, Saved, WordsTape};
use super::{
    AdamUpdate, Hm2bpBackend, KernelPath, LayerInput, LossReduce, PenaltyState, SpikingOps, Tape,
    backward_off_device, forward_untaped, generic,
};
use crate::neuron::LifSpec;
use crate::rule::output::{CountTargets, OutputRule};
use crate::rule::regularizer::WeightRegularizer;
use crate::rule::terms::{SILENT_POST_SIDE_RATIO, SILENT_POST_SPSP};
use crate::rule::{DenseSpec, LayerGrads, LayerSpec, Needs};
use crate::spikes::words_per_step;

impl Hm2bpBackend for Cube {
    fn spiking_layer(
        counts: FloatTensor<Self>,
        words: IntTensor<Self>,
        _times: IntTensor<Self>,
        weight: FloatTensor<Self>,
        labels: IntTensor<Self>,
        spec: LayerSpec,
        kernels: KernelPath,
    ) -> (FloatTensor<Self>, IntTensor<Self>, IntTensor<Self>) {
        forward_untaped::<Self>(counts, words, weight, labels, spec, kernels)
    }

    fn add_weight_penalty(
        total: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        regularizer: WeightRegularizer,
    ) -> FloatTensor<Self> {
        Self::penalty_forward(total, weight, regularizer).0
    }

    fn count_loss(
        counts: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        labels: IntTensor<Self>,
        targets: CountTargets,
        reduce: LossReduce,
    ) -> FloatTensor<Self> {
        Self::count_loss_forward([counts, weight], labels, targets, reduce).0
    }

    fn layer_activity(counts: FloatTensor<Self>) -> FloatTensor<Self> {
        if activity::fits(&counts) {
            activity::statistics(counts)
        } else {
            super::activity::host_activity::<Self>(counts)
        }
    }

    fn adam_update(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        settings: AdamUpdate,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if adam::fits(&[&weight, &grad, &m, &v]) {
            adam::update([weight, grad, m, v], settings)
        } else {
            let [w, m, v] =
                super::adam::adam_update_generic::<Self>([weight, grad, m, v], settings);
            (w, m, v)
        }
    }
}

impl SpikingOps for Cube {
    /// On the device (no weight read back): the penalty kernels, the total added by the
    /// last, or tensor operations for weights they do not take.
    fn penalty_forward(
        total: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        regularizer: WeightRegularizer,
    ) -> (FloatTensor<Self>, PenaltyState<Self>) {
        if !penalty::fits(&weight, &total) {
            let (value, state) = super::penalty::device_penalty::<Self>(weight, regularizer);
            return (Self::float_add(total, value), state);
        }
        let (value, barriers) = penalty::forward(total, weight.clone(), &regularizer);
        let state = PenaltyState::Device {
            weight,
            barriers,
            regularizer,
        };
        (value, state)
    }

    /// One kernel, the reduction and the gradient's scale included (the host form for counts
    /// or weights of another dtype).
    fn count_loss_forward(
        [counts, weight]: [FloatTensor<Self>; 2],
        labels: IntTensor<Self>,
        targets: CountTargets,
        reduce: LossReduce,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if count_loss::fits(&counts, &weight) {
            count_loss::forward([counts, weight], labels, targets, reduce)
        } else {
            let inputs = [counts, weight];
            let (loss, grad) = super::count_loss::host_count_loss::<Self>(inputs, labels, targets);
            reduce.finish::<Self>(loss, grad)
        }
    }

    fn penalty_gradient(state: PenaltyState<Self>, g: FloatTensor<Self>) -> FloatTensor<Self> {
        match state {
            PenaltyState::Device {
                weight,
                barriers,
                regularizer,
            } if penalty::fits(&weight, &g) => penalty::gradient(weight, barriers, g, &regularizer),
            state => state.gradient(g),
        }
    }

    /// Dense layers: the device kernels when asked for ([`KernelPath::EventDriven`]) and
    /// the tensors are theirs (their backward then runs on the device too, at any size; the
    /// forward of an output layer with lateral inhibition over more than
    /// [`lif::MAX_LATERAL`] neurons runs the generic way); else the generic tensor operations.
    /// Convolution and pooling: the device kernels where a sample fits the device, else the
    /// host kernels.
    fn spiking_forward(
        input: LayerInput<Self>,
    ) -> (FloatTensor<Self>, IntTensor<Self>, Tape<Self>) {
        let fit = device_kernels_fit(&input.words, &input.weight);
        match input.spec {
            LayerSpec::Dense(d) => {
                let device = input.kernels == KernelPath::EventDriven && fit;
                Tape::run_on_device(input, device, |i| {
                    if device && lateral_fits(&i.weight, &d) {
                        dense_forward(i.words.clone(), i.weight.clone(), i.n_in, &d)
                    } else {
                        let (counts, words) = generic::forward_words::<Self>(i, &d);
                        (counts, words, Kept::none())
                    }
                })
            }
            LayerSpec::Local(l) if fit && local::fits(&input.words, &l) => {
                Tape::run_on_device(input, true, |i| {
                    local::forward(i.words.clone(), i.weight.clone(), &l)
                })
            }
            LayerSpec::Local(_) => host::forward::<Self>(input),
        }
    }

    /// The device kernels where the forward chose them and the error is `f32`; else
    /// [`backward_off_device`].
    fn spiking_backward(
        tape: Tape<Self>,
        d_post: FloatTensor<Self>,
        needs: Needs,
    ) -> LayerGrads<FloatTensor<Self>> {
        match (&tape.saved, tape.spec) {
            (Saved::Words(words), spec) if words.device_kernels && d_post.dtype == DType::F32 => {
                match spec {
                    LayerSpec::Dense(d) => dense_backward(&tape, words, &d, d_post, needs),
                    LayerSpec::Local(l) => local::backward(&tape, words, &l, d_post, needs),
                }
            }
            _ => backward_off_device::<Self>(&tape, d_post, needs),
        }
    }
}

/// Whether the kernels take these tensors: 32-bit words and `f32` weights (other dtypes go
/// the generic way).
fn device_kernels_fit(words: &CubeTensor, weight: &CubeTensor) -> bool {
    matches!(words.dtype, DType::I32 | DType::U32) && weight.dtype == DType::F32
}

/// Whether the forward kernels simulate this layer: with lateral inhibition at most
/// [`lif::MAX_LATERAL`] neurons (one cube per sample); larger ones go the generic way.
fn lateral_fits(weight: &CubeTensor, spec: &DenseSpec) -> bool {
    let lateral = spec.output.is_some_and(|o| o.lateral_strength != 0.0);
    !lateral || weight.shape()[0] <= lif::MAX_LATERAL
}

/// The dense layer's forward pass on the device: input `words [B, T, ⌈n_in/32⌉]`,
/// `weight [n_out, n_in]` → (counts `[B, n_out]`, words `[B, T, ⌈n_out/32⌉]`, the weights
/// transposed `[n_in, n_out]`, which the backward reads too), in four launches at any `T`
/// (weight transpose, active inputs, input currents of all steps, the LIF scan over all
/// steps setting the words' bits).
fn dense_forward(
    words: CubeTensor,
    weight: CubeTensor,
    n_in: usize,
    spec: &DenseSpec,
) -> DeviceForward<Cube> {
    let t = dims3(&words)[1];
    let n_out = weight.shape()[0];
    let per_sample = 4 * t * n_in.max(n_out);
    let weight_t = into_contiguous(Cube::float_transpose(weight));
    let (counts, trains, output_times) = forward_by_chunks(words, per_sample, |w, keep| {
        dense_forward_chunk(w, weight_t.clone(), n_in, spec, keep)
    });
    let kept = Kept {
        weight_t: Some(weight_t),
        output_times,
    };
    (counts, trains, kept)
}

/// [`dense_forward`] of a batch whose buffers fit the device (`weight_t [n_in, n_out]`):
/// counts, words and, when `keep_times`, the output spike times.
fn dense_forward_chunk(
    words: CubeTensor,
    weight_t: CubeTensor,
    n_in: usize,
    spec: &DenseSpec,
    keep_times: bool,
) -> ChunkForward {
    let n_out = weight_t.shape()[1];
    let [b, t, w_in] = dims3(&words);
    assert_eq!(
        w_in,
        words_per_step(n_in),
        "hm2bp: spike words [{b}, {t}, {w_in}] do not hold {n_in} neurons"
    );
    let client = words.client.clone();
    let words = into_contiguous(words);
    let like = words.clone();
    let empty = |shape: [usize; 2], dtype| empty_like(&like, shape.to_vec(), dtype);
    // The active inputs of every step, then every step's input currents.
    let active = empty([b * t, n_in], DType::U32);
    let lens = empty([b * t, 1], DType::U32);
    let (count, dim) = elementwise(&client, b * t);
    lif::active_inputs_kernel::launch(
        &client,
        count,
        dim,
        words.into_tensor_arg(),
        active.clone().into_tensor_arg(),
        lens.clone().into_tensor_arg(),
        n_in as u32,
    );
    let currents = empty([b * t, n_out], DType::F32);
    let (count, dim) = elementwise(&client, b * t * n_out);
    lif::currents_kernel::launch(
        &client,
        count,
        dim,
        active.into_tensor_arg(),
        lens.into_tensor_arg(),
        weight_t.into_tensor_arg(),
        currents.clone().into_tensor_arg(),
        n_in as u32,
        n_out as u32,
    );
    let lateral = spec
        .output
        .map(|o| o.lateral_strength)
        .filter(|&s| s != 0.0);
    lif_scan(
        currents,
        &like,
        [b, t, n_out],
        (&spec.lif, lateral),
        keep_times,
    )
}

/// The LIF scan over all steps of `currents [B·T, n_out]` (step `t` receives row `t − 1`),
/// with lateral inhibition of `lateral` when given (at most [`lif::MAX_LATERAL`] neurons),
/// the spikes set as bits of words the scan zeroes, in one launch: (counts `[B, n_out]`,
/// words `[B, T, ⌈n_out/32⌉]` of `like`'s dtype, and when `keep_times` each neuron's spike
/// steps `[B·n_out, T]`, as [`spike_times`] would find them).
fn lif_scan(
    currents: CubeTensor,
    like: &CubeTensor,
    [b, t, n_out]: [usize; 3],
    (lif, lateral): (&LifSpec, Option<f32>),
    keep_times: bool,
) -> ChunkForward {
    let client = like.client.clone();
    let w_out = words_per_step(n_out);
    let words = empty_like(like, vec![b, t, w_out], like.dtype);
    let counts = empty_like(like, vec![b, n_out], DType::F32);
    // Without times the kernels write none: a one-word stand-in.
    let times_shape = if keep_times {
        vec![b * n_out, t]
    } else {
        vec![1]
    };
    let times = empty_like(like, times_shape, DType::U32);
    let consts = lif_consts(lif);
    let keep = u32::from(keep_times);
    match lateral {
        None => {
            let cubes = w_out.div_ceil(lif::SCAN_WORDS as usize);
            lif::lif_dense_kernel::launch(
                &client,
                CubeCount::Static(cubes as u32, b as u32, 1),
                CubeDim::new_2d(32, lif::SCAN_WORDS),
                currents.into_tensor_arg(),
                words.clone().into_tensor_arg(),
                counts.clone().into_tensor_arg(),
                times.clone().into_tensor_arg(),
                t as u32,
                n_out as u32,
                keep,
                consts,
            );
        }
        Some(lateral) => lif::lif_lateral_kernel::launch(
            &client,
            CubeCount::Static(b as u32, 1, 1),
            CubeDim::new_1d(n_out as u32),
            currents.into_tensor_arg(),
            words.clone().into_tensor_arg(),
            counts.clone().into_tensor_arg(),
            times.clone().into_tensor_arg(),
            t as u32,
            n_out as u32,
            keep,
            lateral,
            consts,
        ),
    }
    (counts, words, keep_times.then_some(times))
}

/// The dense layer's HM2-BP backward on the device (see [`spsp`]) from the forward's tape
/// (input and output words, `weight [n_out, n_in]`, the classes of an output layer) and
/// `d_post [B, n_out]` → (weight gradient `[n_out, n_in]`, `∂E/∂o_pre [B, n_in]`), each only
/// when asked for.
fn dense_backward(
    tape: &Tape<Cube>,
    words: &WordsTape<Cube>,
    spec: &DenseSpec,
    d_post: CubeTensor,
    needs: Needs,
) -> LayerGrads<CubeTensor> {
    let weight = &tape.weight;
    // The classes stay on the device; the kernels ignore one that is no class of the layer
    // (`NO_LABEL` becomes u32::MAX).
    let labels = spec
        .output
        .is_some()
        .then(|| labels_u32(tape.labels.clone()));
    let [b, t, _] = dims3(&words.input);
    let (n_in, n_out) = (words.n_in, weight.shape()[0]);
    let per_sample = 4 * (n_in * n_out).max(t * n_in.max(n_out));
    let weight_t = words
        .kept
        .weight_t
        .clone()
        .unwrap_or_else(|| into_contiguous(Cube::float_transpose(weight.clone())));
    let mut grad: Option<CubeTensor> = None;
    let mut d_pre = Vec::new();
    let chunks = batch_chunks(&words.input, b, per_sample);
    let [input_times, output_times] = known_times(words, &chunks);
    for r in chunks {
        let chunk = Chunk {
            input: batch_slice(&words.input, &r),
            output: batch_slice(&words.output, &r),
            d_post: batch_slice(&d_post, &r),
            labels: labels.as_ref().map(|l| batch_slice(l, &r)),
            input_times: input_times.clone(),
            output_times: output_times.clone(),
        };
        let g = dense_backward_chunk(chunk, weight_t.clone(), spec, needs);
        grad = match (grad, g.weight) {
            (Some(sum), Some(g)) => Some(Cube::float_add(sum, g)),
            (sum, g) => sum.or(g),
        };
        d_pre.extend(g.input);
    }
    LayerGrads {
        weight: grad,
        input: (!d_pre.is_empty()).then(|| batch_cat(d_pre)),
    }
}

/// Spike times and counts of the input (kept by the layer below) and of the output (kept by
/// this layer's forward), which serve a backward in one piece (`chunks`: its sample ranges).
fn known_times(words: &WordsTape<Cube>, chunks: &[Range<usize>]) -> [Option<Times>; 2] {
    let whole = |t: &Option<Times>| t.clone().filter(|_| chunks.len() == 1);
    [whole(&words.input_times), whole(&words.kept.output_times)]
}

/// Spike steps `[B·n, T]` and counts `[B, n]` of a layer's input or output.
type Times = (CubeTensor, CubeTensor);

/// Samples of a batch whose backward buffers fit the device: their input and output words,
/// `d_post`, (output layer) classes and, where the forwards kept them, the input's and the
/// output's spike times and counts.
struct Chunk {
    input: CubeTensor,
    output: CubeTensor,
    d_post: CubeTensor,
    labels: Option<CubeTensor>,
    input_times: Option<Times>,
    output_times: Option<Times>,
}

/// [`dense_backward`] of a chunk (`weight_t [n_in, n_out]`): post terms, S-PSP entries, side
/// effect, then the weight gradient and the backpropagated error.
fn dense_backward_chunk(
    chunk: Chunk,
    weight_t: CubeTensor,
    spec: &DenseSpec,
    needs: Needs,
) -> LayerGrads<CubeTensor> {
    let [b, t, _] = dims3(&chunk.input);
    let [n_in, n_out] = [weight_t.shape()[0], weight_t.shape()[1]];
    let d_post = into_contiguous(chunk.d_post);
    let rule = spec.output.zip(chunk.labels);
    let output = into_contiguous(chunk.output);
    let post = post_terms(output, n_out, rule, &spec.lif, chunk.output_times);
    let (times, o_pre) = input_times(chunk.input, chunk.input_times, n_in);
    let e = spsp_entries(&times, &o_pre, &post, [b, t, n_in, n_out]);
    let (delta, coef) = dense_side_effect(&e, &weight_t, &o_pre, &post, d_post, spec);
    let weight = needs
        .weight
        .then(|| dense_weight_grad(&e, coef, [b, n_in, n_out]));
    let input = needs.input.then(|| {
        let d = PreError {
            delta,
            o_post: post.counts,
            o_pre,
        };
        dense_pre_error(e, d, weight_t, [b, n_in, n_out], spec.effect_ratio)
    });
    LayerGrads { weight, input }
}

/// `e [B, n_in, n_out]`: the S-PSP entries of every pair (S2–S3, §3.5.2) from the input
/// spike `times` and counts `o_pre` and the post `terms` (`dims`: `[B, T, n_in, n_out]`).
#[inline]
fn spsp_entries(
    times: &CubeTensor,
    o_pre: &CubeTensor,
    post: &PostTerms,
    [b, t, n_in, n_out]: [usize; 4],
) -> CubeTensor {
    let client = times.client.clone();
    let e = empty_like(times, vec![b, n_in, n_out], DType::F32);
    let (count, dim) = elementwise(&client, b * n_in * n_out);
    spsp::spsp_rows_kernel::launch(
        &client,
        count,
        dim,
        times.clone().into_tensor_arg(),
        o_pre.clone().into_tensor_arg(),
        post.kernels.clone().into_tensor_arg(),
        post.counts.clone().into_tensor_arg(),
        e.clone().into_tensor_arg(),
        t as u32,
        n_in as u32,
        n_out as u32,
        SILENT_POST_SPSP,
    );
    e
}

/// The side effect `s_i` (S9, S11), `δ = d/ν` (S7) and the weight coefficient `δ (1 + s) γ`:
/// (`delta [B, n_out]`, `coef [B, n_out]`).
#[inline]
fn dense_side_effect(
    e: &CubeTensor,
    weight_t: &CubeTensor,
    o_pre: &CubeTensor,
    post: &PostTerms,
    d_post: CubeTensor,
    spec: &DenseSpec,
) -> (CubeTensor, CubeTensor) {
    let [b, n_out] = [d_post.shape()[0], d_post.shape()[1]];
    let n_in = weight_t.shape()[0];
    let client = e.client.clone();
    let delta = empty_like(e, vec![b, n_out], DType::F32);
    let coef = empty_like(e, vec![b, n_out], DType::F32);
    let lanes = spsp::SIDE_NEURONS as usize;
    spsp::side_effect_kernel::launch(
        &client,
        CubeCount::Static(n_out.div_ceil(lanes) as u32, b as u32, 1),
        CubeDim::new_2d(spsp::SIDE_NEURONS, spsp::SIDE_SLICES),
        e.clone().into_tensor_arg(),
        weight_t.clone().into_tensor_arg(),
        o_pre.clone().into_tensor_arg(),
        post.counts.clone().into_tensor_arg(),
        // Without lateral factors the kernel reads none (any `[B, n_out]` tensor will do).
        post.gamma
            .as_ref()
            .unwrap_or(&d_post)
            .clone()
            .into_tensor_arg(),
        u32::from(post.gamma.is_some()),
        d_post.into_tensor_arg(),
        delta.clone().into_tensor_arg(),
        coef.clone().into_tensor_arg(),
        n_in as u32,
        n_out as u32,
        spec.lif.threshold,
        SILENT_POST_SIDE_RATIO,
    );
    (delta, coef)
}

/// The weight gradient `Σ_b coef_i e_ij` (S12 main term), `[n_out, n_in]`.
#[inline]
fn dense_weight_grad(e: &CubeTensor, coef: CubeTensor, [b, n_in, n_out]: [usize; 3]) -> CubeTensor {
    let client = e.client.clone();
    let grad = empty_like(e, vec![n_out, n_in], DType::F32);
    let (count, dim) = elementwise(&client, n_in * n_out);
    spsp::weight_grad_kernel::launch(
        &client,
        count,
        dim,
        e.clone().into_tensor_arg(),
        coef.into_tensor_arg(),
        grad.clone().into_tensor_arg(),
        b as u32,
        n_in as u32,
        n_out as u32,
    );
    grad
}

/// What the backpropagated error reads besides `e` and the weights: `δ [B, n_out]` and the
/// post and pre counts.
struct PreError {
    delta: CubeTensor,
    o_post: CubeTensor,
    o_pre: CubeTensor,
}

/// The backpropagated error `Σ_i δ_i w_ij ρ_ij` (S10, S8), `[B, n_in]`.
#[inline]
fn dense_pre_error(
    e: CubeTensor,
    d: PreError,
    weight_t: CubeTensor,
    [b, n_in, n_out]: [usize; 3],
    effect_ratio: bool,
) -> CubeTensor {
    let client = e.client.clone();
    let d_pre = empty_like(&e, vec![b, n_in], DType::F32);
    let (count, dim) = elementwise(&client, b * n_in);
    spsp::pre_error_kernel::launch(
        &client,
        count,
        dim,
        e.into_tensor_arg(),
        d.delta.into_tensor_arg(),
        d.o_post.into_tensor_arg(),
        d.o_pre.into_tensor_arg(),
        weight_t.into_tensor_arg(),
        d_pre.clone().into_tensor_arg(),
        n_in as u32,
        n_out as u32,
        u32::from(effect_ratio),
    );
    d_pre
}

/// The post-side terms of the backward (see [`post`]).
struct PostTerms {
    /// Post kernels `K` `[B, T, n_out]`.
    kernels: CubeTensor,
    /// Post counts after label-spike insertion `[B, n_out]`.
    counts: CubeTensor,
    /// Lateral factors γ `[B, n_out]` (`None`: 1, no lateral inhibition).
    gamma: Option<CubeTensor>,
}

/// The post-side terms from the output `words [B, T, ⌈n_out/32⌉]` and, for an output layer,
/// its rule and the classes: spike times (those the forward kept, `known`: times and counts,
/// else found in the words), label-spike insertion, post kernels, lateral factors.
fn post_terms(
    words: CubeTensor,
    n_out: usize,
    labels: Option<(OutputRule, CubeTensor)>,
    lif: &LifSpec,
    known: Option<(CubeTensor, CubeTensor)>,
) -> PostTerms {
    let (times, raw) = known.unwrap_or_else(|| spike_times(words, n_out));
    // Counts before (`raw`) and after label-spike insertion.
    let (raw, counts) = match &labels {
        Some((rule, labels)) => {
            let counts = label_spikes(&times, &raw, labels, rule.label_spike_level);
            (raw, counts)
        }
        None => (raw.clone(), raw),
    };
    let kernels = post_kernels(&times, &counts, lif);
    let gamma = match labels {
        Some((rule, labels)) if rule.lateral_strength != 0.0 => {
            let inputs = [times, raw, kernels.clone(), labels];
            Some(lateral_factors(
                inputs,
                rule.lateral_strength,
                lif.threshold,
            ))
        }
        _ => None,
    };
    PostTerms {
        kernels,
        counts,
        gamma,
    }
}

/// Label-spike insertion: the counts `[B, n_out]` after it (the label neuron's spike `times`
/// are filled in place) from the counts before, `raw`.
#[inline]
fn label_spikes(
    times: &CubeTensor,
    raw: &CubeTensor,
    labels: &CubeTensor,
    level: u32,
) -> CubeTensor {
    let [b, n_out] = [raw.shape()[0], raw.shape()[1]];
    let t = times.shape()[1];
    let client = times.client.clone();
    let counts = empty_like(raw, vec![b, n_out], DType::F32);
    let (count, dim) = elementwise(&client, b);
    post::label_spikes_kernel::launch(
        &client,
        count,
        dim,
        labels.clone().into_tensor_arg(),
        raw.clone().into_tensor_arg(),
        times.clone().into_tensor_arg(),
        counts.clone().into_tensor_arg(),
        t as u32,
        n_out as u32,
        level,
    );
    counts
}

/// The post kernels `K_i(t)` `[B, T, n_out]` of the spike `times` and `counts [B, n_out]`.
#[inline]
fn post_kernels(times: &CubeTensor, counts: &CubeTensor, lif: &LifSpec) -> CubeTensor {
    let [b, n_out] = [counts.shape()[0], counts.shape()[1]];
    let t = times.shape()[1];
    let client = times.client.clone();
    let kernels = empty_like(counts, vec![b, t, n_out], DType::F32);
    let (count, dim) = elementwise(&client, b * t * n_out);
    post::post_kernels_kernel::launch(
        &client,
        count,
        dim,
        times.clone().into_tensor_arg(),
        counts.clone().into_tensor_arg(),
        kernels.clone().into_tensor_arg(),
        t as u32,
        n_out as u32,
        post::PspConstsLaunch::new(
            lif.tau_m,
            lif.tau_s,
            lif.t_ref,
            crate::spsp::window_steps(lif),
        ),
    );
    kernels
}

/// The lateral factors γ `[B, n_out]` of an output layer with lateral inhibition, from its
/// spike times, raw counts, post kernels and classes.
#[inline]
fn lateral_factors(
    [times, raw, kernels, labels]: [CubeTensor; 4],
    strength: f32,
    nu: f32,
) -> CubeTensor {
    let [b, n_out] = [raw.shape()[0], raw.shape()[1]];
    let t = times.shape()[1];
    let client = times.client.clone();
    let gamma = empty_like(&raw, vec![b, n_out], DType::F32);
    post::lateral_factor_kernel::launch(
        &client,
        CubeCount::Static(n_out as u32, b as u32, 1),
        CubeDim::new_1d(n_out.min(post::LATERAL_UNITS) as u32),
        times.into_tensor_arg(),
        raw.into_tensor_arg(),
        kernels.into_tensor_arg(),
        labels.into_tensor_arg(),
        gamma.clone().into_tensor_arg(),
        t as u32,
        n_out as u32,
        strength,
        nu,
    );
    gamma
}

/// Each neuron's spike steps, ascending, `[B·n, T]` (the first `counts` entries), and its count
/// `[B, n]`, from the trains `words [B, T, ⌈n/32⌉]` of `n` neurons.
fn spike_times(words: CubeTensor, n: usize) -> (CubeTensor, CubeTensor) {
    let [b, t, _] = dims3(&words);
    let client = words.client.clone();
    let times = empty_like(&words, vec![b * n, t], DType::U32);
    let counts = empty_like(&words, vec![b, n], DType::F32);
    spsp::spike_times_kernel::launch(
        &client,
        CubeCount::Static(n.div_ceil(32) as u32, b as u32, 1),
        CubeDim::new_2d(spsp::TIMES_NEURONS, spsp::TIMES_SLICES),
        words.into_tensor_arg(),
        times.clone().into_tensor_arg(),
        counts.clone().into_tensor_arg(),
        t as u32,
        n as u32,
    );
    (times, counts)
}

/// The input's spike times and counts: those the layer below kept (`known`), else scanned
/// from its `words`.
fn input_times(words: CubeTensor, known: Option<Times>, n_in: usize) -> Times {
    known.unwrap_or_else(|| spike_times(into_contiguous(words), n_in))
}

/// The sample ranges a batch of `b` is processed in, so that a buffer of `per_sample` bytes
/// per sample fits the device's largest allocation (wgpu: its storage-buffer binding limit);
/// one range when the whole batch fits.
fn batch_chunks(like: &CubeTensor, b: usize, per_sample: usize) -> Vec<Range<usize>> {
    let n = (largest_allocation(like) / per_sample.max(1)).clamp(1, b.max(1));
    (0..b).step_by(n).map(|s| s..(s + n).min(b)).collect()
}

/// The largest buffer `like`'s device allocates, in bytes.
fn largest_allocation(like: &CubeTensor) -> usize {
    like.client.properties().memory.max_page_size as usize
}

/// Samples `r` (first dimension) of `t`, contiguous; `t` itself when `r` is all of it.
fn batch_slice(t: &CubeTensor, r: &Range<usize>) -> CubeTensor {
    let shape = t.shape();
    if r.start == 0 && r.end == shape[0] {
        return t.clone();
    }
    let slices: Vec<Slice> = (0..shape.num_dims())
        .map(|d| Slice::from(if d == 0 { r.clone() } else { 0..shape[d] }))
        .collect();
    into_contiguous(if t.dtype.is_float() {
        Cube::float_slice(t.clone(), &slices)
    } else {
        Cube::int_slice(t.clone(), &slices)
    })
}

/// `parts` concatenated along the first dimension.
fn batch_cat(mut parts: Vec<CubeTensor>) -> CubeTensor {
    if parts.len() == 1 {
        return parts.remove(0);
    }
    if parts[0].dtype.is_float() {
        Cube::float_cat(parts, 0)
    } else {
        Cube::int_cat(parts, 0)
    }
}

/// A forward pass `f` over input words `[B, T, ·]` run chunk by chunk (see [`batch_chunks`]),
/// its (counts, words) concatenated. In one piece `f` is asked to keep the output spike times
/// (its second argument), which come back with the counts for the backward.
fn forward_by_chunks(
    words: CubeTensor,
    per_sample: usize,
    f: impl Fn(CubeTensor, bool) -> ChunkForward,
) -> (CubeTensor, CubeTensor, Option<(CubeTensor, CubeTensor)>) {
    let b = words.shape()[0];
    let chunks = batch_chunks(&words, b, per_sample);
    if chunks.len() == 1 {
        let (counts, trains, times) = f(words, true);
        let kept = times.map(|times| (times, counts.clone()));
        return (counts, trains, kept);
    }
    let (counts, trains): (Vec<_>, Vec<_>) = chunks
        .iter()
        .map(|r| {
            let (counts, trains, _) = f(batch_slice(&words, r), false);
            (counts, trains)
        })
        .unzip();
    (batch_cat(counts), batch_cat(trains), None)
}

/// A chunk's forward pass: counts, words and, when asked to keep them, the output spike times.
type ChunkForward = (CubeTensor, CubeTensor, Option<CubeTensor>);

/// Classes `[B]` as the kernels read them, `u32`: 32-bit labels as they are (an `i32`'s bits:
/// `NO_LABEL` reads as `u32::MAX`, no class; no cast launch), wider ones cast.
pub(super) fn labels_u32(labels: CubeTensor) -> CubeTensor {
    match labels.dtype {
        DType::I32 | DType::U32 => into_contiguous(labels),
        _ => into_contiguous(Cube::int_cast(labels, IntDType::U32)),
    }
}

/// An uninitialised contiguous tensor on `like`'s device.
fn empty_like(like: &CubeTensor, shape: Vec<usize>, dtype: DType) -> CubeTensor {
    empty_device_contiguous_dtype(
        like.client.clone(),
        like.device.clone(),
        Shape::from(shape),
        dtype,
    )
}

/// Cube count and dimension of a launch with one unit per element of `units`.
fn elementwise(client: &Client, units: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new(client, units);
    (calculate_cube_count_elemwise(client, units, dim), dim)
}

/// A layer's LIF constants as the kernels take them (see [`crate::neuron::LifStep`]).
fn lif_consts(p: &LifSpec) -> lif::LifConstsLaunch {
    lif::LifConstsLaunch::new(
        1.0 / p.tau_m,
        1.0 / p.tau_s,
        p.tau_m,
        p.tau_s,
        p.firing_level(),
        p.t_ref,
        u32::from(crate::neuron::exact_reciprocals(p)),
    )
}

fn dims3(t: &CubeTensor) -> [usize; 3] {
    let s = t.shape();
    [s[0], s[1], s[2]]
}
