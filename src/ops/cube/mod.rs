//! The spiking layers on CubeCL devices (wgpu, CUDA): [`Hm2bpBackend`] for
//! [`burn::backend::Cube`] with device kernels for the dense layer's forward pass ([`lif`]:
//! active inputs, input currents of all steps, LIF scan over all steps, packing) and HM2-BP
//! backward ([`post`]: output spike times, label-spike insertion, post kernels `K`, lateral
//! factors; [`spsp`]: input spike times, S-PSP entries, side effect, weight gradient,
//! backpropagated error), so that a training step launches the same number of kernels at any
//! `T` and the trains never leave the device (only an output layer's classes are uploaded).
//!
//! [`KernelPath::EventDriven`] (the default) selects these kernels; [`KernelPath::Generic`]
//! the tensor-operation path of [`super::generic`] (`tests/wgpu.rs` checks both against the
//! host kernels). Conv and pooling layers run on the host, as on every backend without CPU
//! tensors.

mod lif;
mod post;
mod spsp;

use burn::backend::Cube;
use burn::backend::TensorMetadata;
use burn::backend::ops::{FloatTensorOps, IntTensorOps};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::tensor::{DType, Shape, TensorData};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::client::Client;
use cubecl::{CubeCount, CubeDim, calculate_cube_count_elemwise};

use super::{Hm2bpBackend, KernelPath, generic, host_forward, host_labels};
use crate::neuron::LifParams;
use crate::rule::terms::{SILENT_POST_SIDE_RATIO, SILENT_POST_SPSP};
use crate::rule::{DenseSpec, LayerSpec};
use crate::spikes::words_per_step;

impl Hm2bpBackend for Cube {
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
    let [b, t, w_in] = dims3(&words);
    assert_eq!(
        w_in,
        words_per_step(n_in),
        "hm2bp: spike words [{b}, {t}, {w_in}] do not hold {n_in} neurons"
    );
    let n_out = weight.shape()[0];
    let client = words.client.clone();
    let words_dtype = words.dtype;
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
    // The LIF scan over all steps.
    let spikes = empty([b * t, n_out], DType::U32);
    let counts = empty([b, n_out], DType::F32);
    let consts = lif_consts(&spec.lif);
    match spec
        .output
        .map(|o| o.lateral_strength)
        .filter(|&s| s != 0.0)
    {
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
    let w_out = words_per_step(n_out);
    let packed = empty([b * t, w_out], words_dtype);
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
    let packed = Cube::int_reshape(packed, Shape::new([b, t, w_out]));
    (counts, packed)
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
    let client = input.client.clone();
    let words = into_contiguous(input);
    let d_post = into_contiguous(d_post);
    let weight_t = into_contiguous(Cube::float_transpose(weight));
    let like = words.clone();
    let empty = |shape: Vec<usize>, dtype| empty_like(&like, shape, dtype);
    let (kernels, o_post, gamma) = post_terms(into_contiguous(output), labels, spec, b, t, n_out);

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
    spec: &DenseSpec,
    b: usize,
    t: usize,
    n_out: usize,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let client = words.client.clone();
    let device = words.device.clone();
    let like = words.clone();
    let empty = |shape: Vec<usize>, dtype| empty_like(&like, shape, dtype);
    let (times, raw) = spike_times(words, n_out);
    let labels = spec.output.zip(labels).map(|(rule, labels)| {
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
            spec.lif.tau_m,
            spec.lif.tau_s,
            spec.lif.t_ref,
            crate::spsp::window_steps(&spec.lif),
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
                spec.lif.threshold,
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
