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

use super::host::{host_labels, host_rasters};
use super::tape::{LayerInput, Tape, WordsTape};
use crate::rule::output::{insert_label_spikes, lateral_factor};
use crate::rule::terms::{SILENT_POST_SIDE_RATIO, SILENT_POST_SPSP};
use crate::rule::{DenseSpec, LayerGrads, Needs};
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

/// The forward op of a dense layer on the generic path: the input's words →
/// (counts, words) of the output.
pub(crate) fn forward_words<B: Backend>(
    input: &LayerInput<B>,
    spec: &DenseSpec,
) -> (FloatTensor<B>, IntTensor<B>) {
    let spikes = unpack::<B>(input.words.clone(), input.n_in);
    let out = dense_forward::<B>(spikes, input.weight.clone(), spec);
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

/// The HM2-BP backward of a dense layer on the generic path, from the forward's tape and its
/// bit-packed trains (see [`super::SpikingOps::spiking_backward`]).
pub(crate) fn backward<B: Backend>(
    tape: &Tape<B>,
    words: &WordsTape<B>,
    spec: &DenseSpec,
    d_post: FloatTensor<B>,
    needs: Needs,
) -> LayerGrads<FloatTensor<B>> {
    let n_out = tape.weight.shape()[0];
    let labels = spec
        .output
        .is_some()
        .then(|| host_labels::<B>(tape.labels.clone(), n_out));
    let input = unpack::<B>(words.input.clone(), words.n_in);
    let output = host_rasters::<B>(words.output.clone(), n_out);
    let terms = post_terms(&output, labels.as_deref(), spec);
    dense_backward::<B>(input, terms, tape.weight.clone(), d_post, spec, needs)
}

/// The shapes of a dense layer's backward and the tensors it builds them with.
struct Pairs<B: Backend> {
    b: usize,
    n_out: usize,
    n_in: usize,
    device: B::Device,
    bool_dtype: burn::tensor::BoolDType,
}

impl<B: Backend> Pairs<B> {
    /// `[B, n_out, n_in]`: one entry per sample and (post, pre) pair.
    fn full(&self) -> Shape {
        Shape::new([self.b, self.n_out, self.n_in])
    }

    /// Ones shaped `shape`.
    fn ones(&self, shape: Shape) -> FloatTensor<B> {
        B::float_ones(shape, &self.device, FloatDType::F32)
    }

    /// 1 where `x > 0`, else 0.
    fn positive(&self, x: FloatTensor<B>) -> FloatTensor<B> {
        B::bool_into_float(
            B::float_greater_elem(x, scalar(0.0), self.bool_dtype),
            FloatDType::F32,
        )
    }

    /// `values` uploaded as a tensor of `shape`.
    fn upload(&self, values: Vec<f32>, shape: [usize; 3]) -> FloatTensor<B> {
        B::float_from_data(TensorData::new(values, shape), &self.device)
    }
}

/// The S-PSP matrix of a batch and the firing masks it was built with.
struct Spsp<B: Backend> {
    /// `e [B, n_out, n_in]`.
    e: FloatTensor<B>,
    /// Input counts `o_pre [B, 1, n_in]`.
    o_pre: FloatTensor<B>,
    /// 1 where the post neuron fired (after label insertion), `[B, n_out, 1]`.
    post_fired: FloatTensor<B>,
    /// 1 where the pre neuron fired, `[B, 1, n_in]`.
    pre_fired: FloatTensor<B>,
}

/// `E = K · S_pre` per sample (S5), with `e = 0.1` for (silent post, active pre) pairs
/// (§3.5.2): `kernels [B, n_out, T]`, `input [B, T, n_in]`, post `counts [B, n_out, 1]`.
#[inline]
fn spsp_matrix<B: Backend>(
    p: &Pairs<B>,
    kernels: FloatTensor<B>,
    input: FloatTensor<B>,
    counts: FloatTensor<B>,
) -> Spsp<B> {
    let o_pre = B::float_sum_dim(input.clone(), 1); // [B, 1, n_in]
    let e = B::float_matmul(kernels, input); // [B, n_out, n_in]
    let post_fired = p.positive(counts);
    let pre_fired = p.positive(o_pre.clone());
    let silent_post = B::float_sub(p.ones(Shape::new([p.b, p.n_out, 1])), post_fired.clone());
    let silent_pairs = B::float_greater_elem(
        B::float_mul(
            B::float_expand(silent_post, p.full()),
            B::float_expand(pre_fired.clone(), p.full()),
        ),
        scalar(0.0),
        p.bool_dtype,
    );
    Spsp {
        e: B::float_mask_fill(e, silent_pairs, scalar(SILENT_POST_SPSP)),
        o_pre,
        post_fired,
        pre_fired,
    }
}

/// The side effect `s_i` (S9, S11), `[B, n_out, 1]`: `Σ_l w_il e_il / (o_i ν)`, or
/// `0.5 Σ_l w_il / ν` when `i` is silent (`w [B, n_out, n_in]`, post `counts [B, n_out, 1]`).
#[inline]
fn side_effect<B: Backend>(
    p: &Pairs<B>,
    w: FloatTensor<B>,
    spsp: &Spsp<B>,
    counts: FloatTensor<B>,
    nu: f32,
) -> FloatTensor<B> {
    let we = B::float_sum_dim(B::float_mul(w.clone(), spsp.e.clone()), 2); // [B, n_out, 1]
    let row_sums = B::float_sum_dim(w, 2);
    let fired_side = B::float_div(
        we,
        B::float_mul_scalar(B::float_clamp_min(counts, scalar(1.0)), scalar(nu)),
    );
    let silent_side = B::float_mul_scalar(row_sums, scalar(SILENT_POST_SIDE_RATIO / nu));
    let silent = B::float_sub(
        p.ones(Shape::new([p.b, p.n_out, 1])),
        spsp.post_fired.clone(),
    );
    B::float_add(
        B::float_mul(spsp.post_fired.clone(), fired_side),
        B::float_mul(silent, silent_side),
    )
}

/// The weight gradient `Σ_b δ_i (1 + s_i) γ_i e_ij` (S12 main term), `[n_out, n_in]`.
#[inline]
fn weight_grad<B: Backend>(
    p: &Pairs<B>,
    delta: FloatTensor<B>,
    side: FloatTensor<B>,
    gamma: FloatTensor<B>,
    e: FloatTensor<B>,
) -> FloatTensor<B> {
    let coef = B::float_mul(
        B::float_mul(delta, B::float_add_scalar(side, scalar(1.0))),
        gamma,
    );
    let g = B::float_sum_dim(B::float_mul(B::float_expand(coef, p.full()), e), 0);
    B::float_reshape(g, Shape::new([p.n_out, p.n_in]))
}

/// The backpropagated error `Σ_i δ_i w_ij ρ_ij` (S10), `[B, n_in]`, with the effect ratio
/// `ρ_ij = e_ij / o_j` when both neurons fired, else 1 (S8; 1 throughout without
/// `effect_ratio`).
#[inline]
fn pre_error<B: Backend>(
    p: &Pairs<B>,
    delta: FloatTensor<B>,
    w: FloatTensor<B>,
    spsp: Spsp<B>,
    effect_ratio: bool,
) -> FloatTensor<B> {
    let rho = if effect_ratio {
        let both = B::float_mul(
            B::float_expand(spsp.post_fired, p.full()),
            B::float_expand(spsp.pre_fired, p.full()),
        );
        let ratio = B::float_div(
            spsp.e,
            B::float_expand(B::float_clamp_min(spsp.o_pre, scalar(1.0)), p.full()),
        );
        // both · e/o + (1 − both)
        B::float_add(
            B::float_mul(both, B::float_sub_scalar(ratio, scalar(1.0))),
            p.ones(p.full()),
        )
    } else {
        p.ones(p.full())
    };
    let terms = B::float_mul(B::float_mul(B::float_expand(delta, p.full()), w), rho);
    B::float_reshape(B::float_sum_dim(terms, 1), Shape::new([p.b, p.n_in]))
}

/// The HM2-BP backward of a dense layer from its input `[B, T, n_in]`, the post `terms` of
/// its output, `weight [n_out, n_in]` and `d_post [B, n_out]`: the weight gradient summed over
/// the batch and `∂E/∂o_pre [B, n_in]`, as `needs` asks.
fn dense_backward<B: Backend>(
    input: FloatTensor<B>,
    terms: PostTerms,
    weight: FloatTensor<B>,
    d_post: FloatTensor<B>,
    spec: &DenseSpec,
    needs: Needs,
) -> LayerGrads<FloatTensor<B>> {
    let [b, t, n_in] = dims::<3, _>(&input);
    let n_out = weight.shape()[0];
    let device = input.device();
    let bool_dtype = get_device_settings::<B>(&device).bool_dtype;
    let p = Pairs::<B> {
        b,
        n_out,
        n_in,
        device,
        bool_dtype,
    };
    let nu = spec.lif.threshold;
    let kernels = p.upload(terms.kernels, [b, n_out, t]);
    let counts = p.upload(terms.counts, [b, n_out, 1]);
    let spsp = spsp_matrix(&p, kernels, input, counts.clone());
    let w = B::float_expand(
        B::float_reshape(weight, Shape::new([1, n_out, n_in])),
        p.full(),
    );
    let side = side_effect(&p, w.clone(), &spsp, counts, nu);
    // δ = d/ν (S7).
    let delta = B::float_div_scalar(
        B::float_reshape(d_post, Shape::new([b, n_out, 1])),
        scalar(nu),
    );
    let weight = needs.weight.then(|| {
        let gamma = p.upload(terms.gamma, [b, n_out, 1]);
        weight_grad(&p, delta.clone(), side, gamma, spsp.e.clone())
    });
    let input = needs
        .input
        .then(|| pre_error(&p, delta, w, spsp, spec.effect_ratio));
    LayerGrads { weight, input }
}
