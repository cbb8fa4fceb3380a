//! The generic path of the spiking dense layer: forward simulation and HM2-BP backward built
//! from the backend's own tensor operations, so that they run on the device of any backend
//! (GPU backends included) instead of on the host.
//!
//! - Forward: one GEMM gives the input currents of every step, `[B·T, n_in] × [n_in, n_out]`;
//!   the LIF recursion then runs as element-wise operations on `[B, n_out]`, step by step.
//! - Backward: the post kernels `K_i(t)`, the lateral factors γ and the label-spike insertion
//!   are computed on the host from the output spike trains (`O(B·T·n_out)`); the S-PSP matrix
//!   is one batched GEMM, `E = Kᵀ · S_pre` (`[B, n_out, T] × [B, T, n_in]`), and every other
//!   term of S8–S12 is an element-wise operation or a reduction over `E`.
//!
//! It computes the same rule as the event-driven kernels of [`crate::rule::dense`], with
//! dense `[B, n_out, n_in]` work instead of event lists (the tests compare the two).

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, TensorMetadata, get_device_settings};
use burn::tensor::{FloatDType, Scalar, Shape, Slice, TensorData};

use super::{host_labels, host_rasters};
use crate::rule::DenseSpec;
use crate::rule::output::{insert_label_spikes, lateral_factor};
use crate::rule::terms::{SILENT_POST_SIDE_RATIO, SILENT_POST_SPSP};
use crate::spikes::{SpikeRaster, words_per_step};
use crate::spsp::KernelTables;

fn scalar(x: f32) -> Scalar {
    Scalar::Float(f64::from(x))
}

fn dims<const D: usize, T: TensorMetadata>(t: &T) -> [usize; D] {
    let s = t.shape();
    std::array::from_fn(|i| s[i])
}

/// Spike counts `[B, N]` of dense trains `[B, T, N]`.
pub(crate) fn counts<B: Backend>(spikes: FloatTensor<B>) -> FloatTensor<B> {
    let [b, _, n] = dims::<3, _>(&spikes);
    B::float_reshape(B::float_sum_dim(spikes, 1), Shape::new([b, n]))
}

/// An int tensor of `values` shaped `shape`, in the device's int dtype.
fn int_values<B: Backend>(values: Vec<i32>, shape: [usize; 4], device: &B::Device) -> IntTensor<B> {
    let dtype = get_device_settings::<B>(device).int_dtype;
    B::int_from_data(
        TensorData::new(values, shape).convert_dtype(dtype.into()),
        device,
    )
}

/// Packs dense 0/1 trains `[B, T, N]` into 32-bit words `[B, T, ⌈N/32⌉]` (bit `k` of word `w`
/// is neuron `32·w + k`, as [`crate::spikes::SpikeRaster::write_words`]). Each word is built
/// from two 16-bit halves, `Σ_k s_k 2^k` summed without overflow, joined by a shift and an or.
pub(crate) fn pack<B: Backend>(spikes: FloatTensor<B>) -> IntTensor<B> {
    let [b, t, n] = dims::<3, _>(&spikes);
    let w = words_per_step(n);
    let device = spikes.device();
    let dtype = get_device_settings::<B>(&device).int_dtype;
    let spikes = if 32 * w > n {
        let pad = B::float_zeros(Shape::new([b, t, 32 * w - n]), &device, FloatDType::F32);
        B::float_cat(vec![spikes, pad], 2)
    } else {
        spikes
    };
    let halves = Shape::new([b, t, 2 * w, 16]);
    let bits = B::float_into_int(B::float_reshape(spikes, halves.clone()), dtype);
    let powers = int_values::<B>((0..16).map(|k| 1 << k).collect(), [1, 1, 1, 16], &device);
    let sums = B::int_sum_dim(B::int_mul(bits, B::int_expand(powers, halves)), 3);
    let sums = B::int_reshape(sums, Shape::new([b, t, w, 2]));
    let half = |k: usize| {
        let range = [
            Slice::from(0..b),
            Slice::from(0..t),
            Slice::from(0..w),
            Slice::from(k..k + 1),
        ];
        B::int_reshape(B::int_slice(sums.clone(), &range), Shape::new([b, t, w]))
    };
    let high = B::bitwise_left_shift_scalar(half(1), Scalar::Int(16));
    B::bitwise_or(half(0), high)
}

/// Unpacks words `[B, T, ⌈N/32⌉]` into dense 0/1 trains `[B, T, neurons]`.
pub(crate) fn unpack<B: Backend>(words: IntTensor<B>, neurons: usize) -> FloatTensor<B> {
    let [b, t, w] = dims::<3, _>(&words);
    let device = words.device();
    let bits = Shape::new([b, t, w, 32]);
    let words = B::int_expand(
        B::int_reshape(words, Shape::new([b, t, w, 1])),
        bits.clone(),
    );
    let shifts = int_values::<B>((0..32).collect(), [1, 1, 1, 32], &device);
    let bits = B::bitwise_and_scalar(
        B::bitwise_right_shift(words, B::int_expand(shifts, bits)),
        Scalar::Int(1),
    );
    let dense = B::int_into_float(
        B::int_reshape(bits, Shape::new([b, t, 32 * w])),
        FloatDType::F32,
    );
    if 32 * w == neurons {
        dense
    } else {
        let range = [
            Slice::from(0..b),
            Slice::from(0..t),
            Slice::from(0..neurons),
        ];
        B::float_slice(dense, &range)
    }
}

/// The forward op of a dense layer on the generic path: words of `n_in` neurons →
/// (counts, words) of the output.
pub(crate) fn forward_words<B: Backend>(
    words: IntTensor<B>,
    n_in: usize,
    weight: FloatTensor<B>,
    spec: &DenseSpec,
) -> (FloatTensor<B>, IntTensor<B>) {
    let out = dense_forward::<B>(unpack::<B>(words, n_in), weight, spec);
    (counts::<B>(out.clone()), pack::<B>(out))
}

/// Simulates `input [B, T, n_in]` through a dense layer with `weight [n_out, n_in]`.
pub(crate) fn dense_forward<B: Backend>(
    input: FloatTensor<B>,
    weight: FloatTensor<B>,
    spec: &DenseSpec,
) -> FloatTensor<B> {
    let [b, t, n_in] = dims::<3, _>(&input);
    let n_out = weight.shape()[0];
    let device = input.device();
    let bool_dtype = get_device_settings::<B>(&device).bool_dtype;
    let flat = B::float_reshape(input, Shape::new([b * t, n_in]));
    let current = B::float_matmul(flat, B::float_transpose(weight));
    let current = B::float_reshape(current, Shape::new([b, t, n_out]));
    let zeros = || B::float_zeros(Shape::new([b, n_out]), &device, FloatDType::F32);
    let lif = spec.lif;
    let lateral = spec.output.map_or(0.0, |o| o.lateral_strength);
    // Step 0 only leaks a neuron at rest: no input, no spike.
    let (mut v, mut ep, mut refractory) = (zeros(), zeros(), zeros());
    let mut spikes = vec![zeros()];
    for step in 1..t {
        let slice = [
            Slice::from(0..b),
            Slice::from(step - 1..step),
            Slice::from(0..n_out),
        ];
        let mut i = B::float_reshape(
            B::float_slice(current.clone(), &slice),
            Shape::new([b, n_out]),
        );
        if lateral != 0.0 {
            // −strength · (spikes of the other output neurons at t − 1).
            let prev = spikes.last().expect("step 0 is pushed first").clone();
            let total = B::float_expand(B::float_sum_dim(prev.clone(), 1), Shape::new([b, n_out]));
            let others = B::float_sub(total, prev);
            i = B::float_sub(i, B::float_mul_scalar(others, scalar(lateral)));
        }
        // Same operations in the same order as `LifPopulation::step`.
        v = B::float_sub(v.clone(), B::float_div_scalar(v, scalar(lif.tau_m)));
        ep = B::float_sub(ep.clone(), B::float_div_scalar(ep, scalar(lif.tau_s)));
        ep = B::float_add(ep, i);
        v = B::float_add(v, B::float_div_scalar(ep.clone(), scalar(lif.tau_s)));
        let clamped = B::float_greater_elem(refractory.clone(), scalar(0.0), bool_dtype);
        v = B::float_mask_fill(v, clamped.clone(), scalar(0.0));
        refractory = B::float_sub(refractory, B::bool_into_float(clamped, FloatDType::F32));
        let fired = B::float_greater_elem(
            v.clone(),
            scalar(lif.threshold - lif.threshold_eps),
            bool_dtype,
        );
        refractory = B::float_mask_fill(refractory, fired.clone(), scalar(lif.t_ref as f32));
        v = B::float_mask_fill(v, fired.clone(), scalar(0.0));
        spikes.push(B::bool_into_float(fired, FloatDType::F32));
    }
    let steps = spikes
        .into_iter()
        .map(|s| B::float_reshape(s, Shape::new([b, 1, n_out])))
        .collect();
    B::float_cat(steps, 1)
}

/// What the backward needs from the output spike trains, computed on the host.
pub(crate) struct PostTerms {
    /// Post kernels `K_i(t)` after label-spike insertion, `[B][n_out][T]`.
    pub(crate) kernels: Vec<f32>,
    /// Post counts after insertion, `[B][n_out]`.
    pub(crate) counts: Vec<f32>,
    /// Lateral factors γ (1 for hidden layers), `[B][n_out]`.
    pub(crate) gamma: Vec<f32>,
}

/// The post terms of the output rasters (`labels`: the classes, for an output layer).
pub(crate) fn post_terms(
    output: &[SpikeRaster],
    labels: Option<&[usize]>,
    spec: &DenseSpec,
) -> PostTerms {
    let b = output.len();
    let (steps, n_out) = output.first().map_or((0, 0), |r| (r.steps(), r.neurons()));
    let tables = KernelTables::new(steps, &spec.lif);
    let mut terms = PostTerms {
        kernels: vec![0.0; b * n_out * steps],
        counts: vec![0.0; b * n_out],
        gamma: vec![1.0; b * n_out],
    };
    for (s, raster) in output.iter().enumerate() {
        let mut times = raster.times();
        if let (Some(rule), Some(labels)) = (spec.output, labels) {
            let label = labels[s];
            let gamma = lateral_factor(&times, label, rule.lateral_strength, &spec.lif);
            terms.gamma[s * n_out..(s + 1) * n_out].copy_from_slice(&gamma);
            if label < n_out {
                insert_label_spikes(&mut times[label], steps, rule.label_spike_level);
            }
        }
        for (i, t) in times.iter().enumerate() {
            let at = (s * n_out + i) * steps;
            tables.add_post_kernel(t, &mut terms.kernels[at..at + steps], 1);
            terms.counts[s * n_out + i] = t.len() as f32;
        }
    }
    terms
}

/// [`dense_backward`] from the layer's bit-packed input and output trains (see
/// [`super::Hm2bpBackend::dense_backward`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_from_words<B: Backend>(
    input: IntTensor<B>,
    output: IntTensor<B>,
    weight: FloatTensor<B>,
    d_post: FloatTensor<B>,
    labels: IntTensor<B>,
    spec: &DenseSpec,
    n_in: usize,
    need_grad: bool,
    need_d_pre: bool,
) -> (Option<FloatTensor<B>>, Option<FloatTensor<B>>) {
    let n_out = weight.shape()[0];
    let labels = spec
        .output
        .is_some()
        .then(|| host_labels::<B>(labels, n_out));
    dense_backward::<B>(
        unpack::<B>(input, n_in),
        host_rasters::<B>(output, n_out),
        weight,
        d_post,
        labels.as_deref(),
        spec,
        need_grad,
        need_d_pre,
    )
}

/// The HM2-BP backward of a dense layer from its input `[B, T, n_in]`, output `[B, T, n_out]`,
/// `weight [n_out, n_in]` and `d_post [B, n_out]`: the weight gradient summed over the batch
/// (when `need_grad`) and `∂E/∂o_pre [B, n_in]` (when `need_d_pre`).
#[allow(clippy::too_many_arguments)]
fn dense_backward<B: Backend>(
    input: FloatTensor<B>,
    output: Vec<SpikeRaster>,
    weight: FloatTensor<B>,
    d_post: FloatTensor<B>,
    labels: Option<&[usize]>,
    spec: &DenseSpec,
    need_grad: bool,
    need_d_pre: bool,
) -> (Option<FloatTensor<B>>, Option<FloatTensor<B>>) {
    let [b, t, n_in] = dims::<3, _>(&input);
    let n_out = weight.shape()[0];
    let device = input.device();
    let bool_dtype = get_device_settings::<B>(&device).bool_dtype;
    let nu = spec.lif.threshold;
    let full = || Shape::new([b, n_out, n_in]);
    let upload =
        |v: Vec<f32>, shape: [usize; 3]| B::float_from_data(TensorData::new(v, shape), &device);
    let terms = post_terms(&output, labels, spec);

    // E = K · S_pre per sample, with e = 0.1 for (silent post, active pre) pairs (§3.5.2).
    let kernels = upload(terms.kernels, [b, n_out, t]);
    let o_pre = B::float_sum_dim(input.clone(), 1); // [B, 1, n_in]
    let mut e = B::float_matmul(kernels, input); // [B, n_out, n_in]
    let counts = upload(terms.counts, [b, n_out, 1]);
    let post_fired = B::bool_into_float(
        B::float_greater_elem(counts.clone(), scalar(0.0), bool_dtype),
        FloatDType::F32,
    );
    let pre_fired = B::bool_into_float(
        B::float_greater_elem(o_pre.clone(), scalar(0.0), bool_dtype),
        FloatDType::F32,
    );
    let silent_pairs = B::float_greater_elem(
        B::float_mul(
            B::float_expand(
                B::float_sub(
                    B::float_ones(Shape::new([b, n_out, 1]), &device, FloatDType::F32),
                    post_fired.clone(),
                ),
                full(),
            ),
            B::float_expand(pre_fired.clone(), full()),
        ),
        scalar(0.0),
        bool_dtype,
    );
    e = B::float_mask_fill(e, silent_pairs, scalar(SILENT_POST_SPSP));

    // Side effect s_i (S9, S11): Σ_l w_il e_il / (o_i ν), or 0.5 Σ_l w_il / ν when silent.
    let w = B::float_expand(
        B::float_reshape(weight, Shape::new([1, n_out, n_in])),
        full(),
    );
    let we = B::float_sum_dim(B::float_mul(w.clone(), e.clone()), 2); // [B, n_out, 1]
    let row_sums = B::float_sum_dim(w.clone(), 2);
    let fired_side = B::float_div(
        we,
        B::float_mul_scalar(B::float_clamp_min(counts, scalar(1.0)), scalar(nu)),
    );
    let silent_side = B::float_mul_scalar(row_sums, scalar(SILENT_POST_SIDE_RATIO / nu));
    let side = B::float_add(
        B::float_mul(post_fired.clone(), fired_side),
        B::float_mul(
            B::float_sub(
                B::float_ones(Shape::new([b, n_out, 1]), &device, FloatDType::F32),
                post_fired.clone(),
            ),
            silent_side,
        ),
    );

    // δ = d/ν (S7); weight gradient Σ_b δ_i (1 + s_i) γ_i e_ij (S12 main term).
    let delta = B::float_div_scalar(
        B::float_reshape(d_post, Shape::new([b, n_out, 1])),
        scalar(nu),
    );
    let grad = need_grad.then(|| {
        let gamma = upload(terms.gamma, [b, n_out, 1]);
        let coef = B::float_mul(
            B::float_mul(delta.clone(), B::float_add_scalar(side, scalar(1.0))),
            gamma,
        );
        let g = B::float_sum_dim(B::float_mul(B::float_expand(coef, full()), e.clone()), 0);
        B::float_reshape(g, Shape::new([n_out, n_in]))
    });

    // Backpropagated error (S10) with ρ (S8): e_ij / o_j when both fired, else 1.
    let d_pre = need_d_pre.then(|| {
        let rho = if spec.effect_ratio {
            let both = B::float_mul(
                B::float_expand(post_fired, full()),
                B::float_expand(pre_fired, full()),
            );
            let ratio = B::float_div(
                e,
                B::float_expand(B::float_clamp_min(o_pre, scalar(1.0)), full()),
            );
            // both · e/o + (1 − both)
            B::float_add(
                B::float_mul(both.clone(), B::float_sub_scalar(ratio, scalar(1.0))),
                B::float_ones(full(), &device, FloatDType::F32),
            )
        } else {
            B::float_ones(full(), &device, FloatDType::F32)
        };
        let terms = B::float_mul(B::float_mul(B::float_expand(delta, full()), w), rho);
        B::float_reshape(B::float_sum_dim(terms, 1), Shape::new([b, n_in]))
    });
    (grad, d_pre)
}
