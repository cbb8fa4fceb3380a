//! The spiking layers on CubeCL devices (wgpu, CUDA): [`Hm2bpBackend`] for
//! [`burn::backend::Cube`] with device kernels for the dense layer's forward pass ([`lif`]:
//! active inputs, input currents of all steps, LIF scan over all steps, packing) and HM2-BP
//! backward ([`post`]: output spike times, label-spike insertion, post kernels `K`, lateral
//! factors; [`spsp`]: input spike times, S-PSP entries, side effect, weight gradient,
//! backpropagated error), and for convolution and pooling layers ([`local`]: the same steps
//! over the pairs of their connectivity), so that a training step launches the same number of
//! kernels at any `T` and the trains never leave the device (only an output layer's classes
//! and a local layer's index tables are uploaded).
//!
//! [`KernelPath::EventDriven`] (the default) selects these kernels for dense layers;
//! [`KernelPath::Generic`] the tensor-operation path of [`super::generic`] (`tests/wgpu.rs`
//! checks both against the host kernels). Convolution and pooling layers always run the
//! device kernels (weights of another dtype than `f32`: the host kernels).

mod lif;
mod local;
mod post;
mod spsp;

use burn::backend::Cube;
use burn::backend::TensorMetadata;
use burn::backend::ops::{FloatTensorOps, IntTensorOps};
use burn::backend::tensor::{FloatTensor, IntTensor};
use std::ops::Range;

use burn::tensor::{DType, Shape, Slice, TensorData};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::client::Client;
use cubecl::{CubeCount, CubeDim, calculate_cube_count_elemwise};

use super::{Hm2bpBackend, KernelPath, generic, host_forward, host_labels, host_local_backward};
use crate::neuron::LifParams;
use crate::rule::output::OutputRule;
use crate::rule::sparse::LocalSpec;
use crate::rule::terms::{SILENT_POST_SIDE_RATIO, SILENT_POST_SPSP};
use crate::rule::{DenseSpec, LayerSpec};
use crate::spikes::words_per_step;

impl Hm2bpBackend for Cube {
    const LOCAL_ON_DEVICE: bool = true;

    fn spiking_layer(
        counts: FloatTensor<Self>,
        words: IntTensor<Self>,
        weight: FloatTensor<Self>,
        labels: IntTensor<Self>,
        spec: LayerSpec,
        kernels: KernelPath,
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        let _ = labels;
        let n_in = counts.shape()[1];
        match spec {
            LayerSpec::Dense(d)
                if kernels == KernelPath::EventDriven
                    && device_kernels_fit(&words, &weight)
                    && lateral_fits(&weight, &d) =>
            {
                dense_forward(words, weight, n_in, &d)
            }
            LayerSpec::Dense(d) => generic::forward_words::<Self>(words, n_in, weight, &d),
            LayerSpec::Local(l)
                if device_kernels_fit(&words, &weight) && local::fits(&words, &l) =>
            {
                local::forward(words, weight, &l)
            }
            LayerSpec::Local(_) => {
                let (counts, words, _) = host_forward::<Self>(words, n_in, weight, spec);
                (counts, words)
            }
        }
    }

    fn dense_backward(
        input: IntTensor<Self>,
        output: IntTensor<Self>,
        weight: FloatTensor<Self>,
        d_post: FloatTensor<Self>,
        labels: IntTensor<Self>,
        spec: DenseSpec,
        kernels: KernelPath,
        n_in: usize,
        need_grad: bool,
        need_d_pre: bool,
    ) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>) {
        if kernels == KernelPath::EventDriven
            && device_kernels_fit(&input, &weight)
            && d_post.dtype == DType::F32
        {
            let labels = spec
                .output
                .is_some()
                .then(|| host_labels::<Self>(labels, weight.shape()[0]));
            dense_backward(
                input,
                output,
                weight,
                d_post,
                labels.as_deref(),
                &spec,
                n_in,
                need_grad,
                need_d_pre,
            )
        } else {
            generic::backward_from_words::<Self>(
                input, output, weight, d_post, labels, &spec, n_in, need_grad, need_d_pre,
            )
        }
    }

    fn local_backward(
        input: IntTensor<Self>,
        output: IntTensor<Self>,
        weight: FloatTensor<Self>,
        d_post: FloatTensor<Self>,
        spec: LocalSpec,
        n_in: usize,
        need_grad: bool,
        need_d_pre: bool,
    ) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>) {
        if device_kernels_fit(&input, &weight)
            && d_post.dtype == DType::F32
            && local::fits(&input, &spec)
        {
            local::backward(input, output, weight, d_post, &spec, need_grad, need_d_pre)
        } else {
            host_local_backward::<Self>(
                input, output, weight, d_post, spec, n_in, need_grad, need_d_pre,
            )
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
/// `weight [n_out, n_in]` → (counts `[B, n_out]`, words `[B, T, ⌈n_out/32⌉]`), in five
/// launches at any `T` (weight transpose, active inputs, input currents of all steps, LIF scan
/// over all steps, packing).
fn dense_forward(
    words: CubeTensor,
    weight: CubeTensor,
    n_in: usize,
    spec: &DenseSpec,
) -> (CubeTensor, CubeTensor) {
    let [_, t, _] = dims3(&words);
    let per_sample = 4 * t * n_in.max(weight.shape()[0]);
    forward_by_chunks(words, per_sample, |w| {
        dense_forward_chunk(w, weight.clone(), n_in, spec)
    })
}

/// [`dense_forward`] of a batch whose buffers fit the device.
fn dense_forward_chunk(
    words: CubeTensor,
    weight: CubeTensor,
    n_in: usize,
    spec: &DenseSpec,
) -> (CubeTensor, CubeTensor) {
    let [b, t, w_in] = dims3(&words);
    assert_eq!(
        w_in,
        words_per_step(n_in),
        "hm2bp: spike words [{b}, {t}, {w_in}] do not hold {n_in} neurons"
    );
    let n_out = weight.shape()[0];
    let client = words.client.clone();
    let words = into_contiguous(words);
    let weight_t = into_contiguous(Cube::float_transpose(weight));
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
    lif_scan(currents, &like, b, t, n_out, &spec.lif, lateral)
}

/// The LIF scan over all steps of `currents [B·T, n_out]` (step `t` receives row `t − 1`),
/// with lateral inhibition of `lateral` when given (at most [`lif::MAX_LATERAL`] neurons),
/// then packing: (counts `[B, n_out]`, words `[B, T, ⌈n_out/32⌉]` of `like`'s dtype).
fn lif_scan(
    currents: CubeTensor,
    like: &CubeTensor,
    b: usize,
    t: usize,
    n_out: usize,
    lif: &LifParams,
    lateral: Option<f32>,
) -> (CubeTensor, CubeTensor) {
    let client = like.client.clone();
    let empty = |shape: [usize; 2], dtype| empty_like(like, shape.to_vec(), dtype);
    let spikes = empty([b * t, n_out], DType::U32);
    let counts = empty([b, n_out], DType::F32);
    let consts = lif_consts(lif);
    match lateral {
        None => {
            let (count, dim) = elementwise(&client, b * n_out);
            lif::lif_dense_kernel::launch(
                &client,
                count,
                dim,
                currents.into_tensor_arg(),
                spikes.clone().into_tensor_arg(),
                counts.clone().into_tensor_arg(),
                t as u32,
                n_out as u32,
                consts,
            );
        }
        Some(lateral) => lif::lif_lateral_kernel::launch(
            &client,
            CubeCount::Static(b as u32, 1, 1),
            CubeDim::new_1d(n_out as u32),
            currents.into_tensor_arg(),
            spikes.clone().into_tensor_arg(),
            counts.clone().into_tensor_arg(),
            t as u32,
            n_out as u32,
            lateral,
            consts,
        ),
    }
    (counts, pack(spikes, like, b, t, n_out))
}

/// Packs the 0/1 trains `spikes [B·T, n_out]` into words `[B, T, ⌈n_out/32⌉]` of `like`'s
/// dtype.
fn pack(spikes: CubeTensor, like: &CubeTensor, b: usize, t: usize, n_out: usize) -> CubeTensor {
    let client = like.client.clone();
    let w_out = words_per_step(n_out);
    let packed = empty_like(like, vec![b * t, w_out], like.dtype);
    let (count, dim) = elementwise(&client, b * t * w_out);
    lif::pack_kernel::launch(
        &client,
        count,
        dim,
        spikes.into_tensor_arg(),
        packed.clone().into_tensor_arg(),
        (b * t) as u32,
        n_out as u32,
    );
    Cube::int_reshape(packed, Shape::new([b, t, w_out]))
}

/// The dense layer's HM2-BP backward on the device (see [`spsp`]): input words
/// `[B, T, ⌈n_in/32⌉]`, output words, `weight [n_out, n_in]`, `d_post [B, n_out]`, the classes
/// of an output layer → (weight gradient `[n_out, n_in]`, `∂E/∂o_pre [B, n_in]`), each only
/// when asked for.
#[allow(clippy::too_many_arguments)]
fn dense_backward(
    input: CubeTensor,
    output: CubeTensor,
    weight: CubeTensor,
    d_post: CubeTensor,
    labels: Option<&[usize]>,
    spec: &DenseSpec,
    n_in: usize,
    need_grad: bool,
    need_d_pre: bool,
) -> (Option<CubeTensor>, Option<CubeTensor>) {
    let [b, t, _] = dims3(&input);
    let n_out = weight.shape()[0];
    let per_sample = 4 * (n_in * n_out).max(t * n_in.max(n_out));
    let mut grad: Option<CubeTensor> = None;
    let mut d_pre = Vec::new();
    for r in batch_chunks(&input, b, per_sample) {
        let (g, d) = dense_backward_chunk(
            batch_slice(&input, &r),
            batch_slice(&output, &r),
            weight.clone(),
            batch_slice(&d_post, &r),
            labels.map(|l| &l[r.clone()]),
            spec,
            n_in,
            need_grad,
            need_d_pre,
        );
        grad = match (grad, g) {
            (Some(sum), Some(g)) => Some(Cube::float_add(sum, g)),
            (sum, g) => sum.or(g),
        };
        d_pre.extend(d);
    }
    (grad, (!d_pre.is_empty()).then(|| batch_cat(d_pre)))
}

/// [`dense_backward`] of a batch whose buffers fit the device.
#[allow(clippy::too_many_arguments)]
fn dense_backward_chunk(
    input: CubeTensor,
    output: CubeTensor,
    weight: CubeTensor,
    d_post: CubeTensor,
    labels: Option<&[usize]>,
    spec: &DenseSpec,
    n_in: usize,
    need_grad: bool,
    need_d_pre: bool,
) -> (Option<CubeTensor>, Option<CubeTensor>) {
    let [b, t, _] = dims3(&input);
    let n_out = weight.shape()[0];
    let client = input.client.clone();
    let words = into_contiguous(input);
    let d_post = into_contiguous(d_post);
    let weight_t = into_contiguous(Cube::float_transpose(weight));
    let like = words.clone();
    let empty = |shape: Vec<usize>, dtype| empty_like(&like, shape, dtype);
    let (kernels, o_post, gamma) = post_terms(
        into_contiguous(output),
        labels,
        &spec.lif,
        spec.output,
        b,
        t,
        n_out,
    );

    let (times, o_pre) = spike_times(words, n_in);
    let e = empty(vec![b, n_in, n_out], DType::F32);
    let (count, dim) = elementwise(&client, b * n_in * n_out);
    spsp::spsp_rows_kernel::launch(
        &client,
        count,
        dim,
        times.into_tensor_arg(),
        o_pre.clone().into_tensor_arg(),
        kernels.into_tensor_arg(),
        o_post.clone().into_tensor_arg(),
        e.clone().into_tensor_arg(),
        t as u32,
        n_in as u32,
        n_out as u32,
        SILENT_POST_SPSP,
    );
    let delta = empty(vec![b, n_out], DType::F32);
    let coef = empty(vec![b, n_out], DType::F32);
    let (count, dim) = elementwise(&client, b * n_out);
    spsp::side_effect_kernel::launch(
        &client,
        count,
        dim,
        e.clone().into_tensor_arg(),
        weight_t.clone().into_tensor_arg(),
        o_pre.clone().into_tensor_arg(),
        o_post.clone().into_tensor_arg(),
        gamma.into_tensor_arg(),
        d_post.into_tensor_arg(),
        delta.clone().into_tensor_arg(),
        coef.clone().into_tensor_arg(),
        n_in as u32,
        n_out as u32,
        spec.lif.threshold,
        SILENT_POST_SIDE_RATIO,
    );
    let grad = need_grad.then(|| {
        let grad_t = empty(vec![n_in, n_out], DType::F32);
        let (count, dim) = elementwise(&client, n_in * n_out);
        spsp::weight_grad_kernel::launch(
            &client,
            count,
            dim,
            e.clone().into_tensor_arg(),
            coef.into_tensor_arg(),
            grad_t.clone().into_tensor_arg(),
            b as u32,
            n_out as u32,
        );
        into_contiguous(Cube::float_transpose(grad_t))
    });
    let d_pre = need_d_pre.then(|| {
        let d_pre = empty(vec![b, n_in], DType::F32);
        let (count, dim) = elementwise(&client, b * n_in);
        spsp::pre_error_kernel::launch(
            &client,
            count,
            dim,
            e.into_tensor_arg(),
            delta.into_tensor_arg(),
            o_post.into_tensor_arg(),
            o_pre.into_tensor_arg(),
            weight_t.into_tensor_arg(),
            d_pre.clone().into_tensor_arg(),
            n_in as u32,
            n_out as u32,
            u32::from(spec.effect_ratio),
        );
        d_pre
    });
    (grad, d_pre)
}

/// The post-side terms of the backward (see [`post`]) from the output `words [B, T, ⌈n_out/32⌉]`
/// and, for an output layer, the classes: (post kernels `[B, T, n_out]`, post counts after
/// label-spike insertion `[B, n_out]`, lateral factors `[B, n_out]`).
fn post_terms(
    words: CubeTensor,
    labels: Option<&[usize]>,
    lif: &LifParams,
    output: Option<OutputRule>,
    b: usize,
    t: usize,
    n_out: usize,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let client = words.client.clone();
    let device = words.device.clone();
    let like = words.clone();
    let empty = |shape: Vec<usize>, dtype| empty_like(&like, shape, dtype);
    let (times, raw) = spike_times(words, n_out);
    let labels = output.zip(labels).map(|(rule, labels)| {
        let classes: Vec<u32> = labels.iter().map(|&c| c as u32).collect();
        let labels = Cube::int_from_data(TensorData::new(classes, [b]), &device);
        (rule, labels)
    });
    // Counts before (`raw`) and after label-spike insertion.
    let (raw, counts) = match &labels {
        Some((rule, labels)) => {
            let counts = empty(vec![b, n_out], DType::F32);
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
                rule.label_spike_level,
            );
            (raw, counts)
        }
        None => (raw.clone(), raw),
    };
    let kernels = empty(vec![b, t, n_out], DType::F32);
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
    let gamma = match labels {
        Some((rule, labels)) if rule.lateral_strength != 0.0 => {
            let gamma = empty(vec![b, n_out], DType::F32);
            let (count, dim) = elementwise(&client, b * n_out);
            post::lateral_factor_kernel::launch(
                &client,
                count,
                dim,
                times.into_tensor_arg(),
                raw.into_tensor_arg(),
                kernels.clone().into_tensor_arg(),
                labels.into_tensor_arg(),
                gamma.clone().into_tensor_arg(),
                t as u32,
                n_out as u32,
                rule.lateral_strength,
                lif.threshold,
            );
            gamma
        }
        _ => Cube::float_from_data(
            TensorData::new(vec![1.0f32; b * n_out], [b, n_out]),
            &device,
        ),
    };
    (kernels, counts, gamma)
}

/// Each neuron's spike steps, ascending, `[B·n, T]` (the first `counts` entries), and its count
/// `[B, n]`, from the trains `words [B, T, ⌈n/32⌉]` of `n` neurons.
fn spike_times(words: CubeTensor, n: usize) -> (CubeTensor, CubeTensor) {
    let [b, t, _] = dims3(&words);
    let client = words.client.clone();
    let times = empty_like(&words, vec![b * n, t], DType::U32);
    let counts = empty_like(&words, vec![b, n], DType::F32);
    let (count, dim) = elementwise(&client, b * n);
    spsp::spike_times_kernel::launch(
        &client,
        count,
        dim,
        words.into_tensor_arg(),
        times.clone().into_tensor_arg(),
        counts.clone().into_tensor_arg(),
        t as u32,
        n as u32,
    );
    (times, counts)
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
/// its (counts, words) concatenated.
fn forward_by_chunks(
    words: CubeTensor,
    per_sample: usize,
    f: impl Fn(CubeTensor) -> (CubeTensor, CubeTensor),
) -> (CubeTensor, CubeTensor) {
    let b = words.shape()[0];
    let (counts, trains): (Vec<_>, Vec<_>) = batch_chunks(&words, b, per_sample)
        .iter()
        .map(|r| f(batch_slice(&words, r)))
        .unzip();
    (batch_cat(counts), batch_cat(trains))
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
fn lif_consts(p: &LifParams) -> lif::LifConstsLaunch {
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
