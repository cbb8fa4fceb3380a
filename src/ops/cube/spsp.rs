//! The HM2-BP backward of a spiking dense layer as CubeCL kernels, in the order and `f32`
//! operations of the host kernels ([`crate::rule::dense`], terms of [`crate::rule::terms`]):
//!
//! 1. [`pre_counts_kernel`]: input spike counts `o_j`.
//! 2. [`spsp_kernel`]: per (sample, post neuron), the S-PSP row `e_{i|j} = Σ_{t ∈ spikes(j)}
//!    K_i(t)` event by event in ascending `t` (with 0.1 for silent post neurons), the side
//!    effect and the weight coefficient `δ_i (1 + s_i) γ_i`.
//! 3. [`weight_grad_kernel`]: `∂E/∂w_ij = Σ_b coef_bi e_bij`.
//! 4. [`pre_error_kernel`]: `∂E/∂o_j = Σ_i δ_i w_ij ρ_ij`.
//!
//! The post kernels `K`, post counts (after label-spike insertion) and lateral factors `γ`
//! come from the host ([`crate::ops::generic`]'s post terms). `e` is kept `[B, n_in, n_out]`
//! (post neuron fastest), so that neighbouring threads touch neighbouring memory.

// Kernel bodies are written in the forms the #[cube] expansion was tested with.
#![allow(clippy::manual_div_ceil, clippy::assign_op_pattern)]

use cubecl::prelude::*;

/// Thread per (sample, input neuron): `o_pre [B, n_in]`, the spikes of each input train
/// `words [B, T, ⌈n_in/32⌉]`.
#[cube(launch)]
pub fn pre_counts_kernel(words: &Tensor<u32>, o_pre: &mut Tensor<f32>, steps: u32, n_in: u32) {
    let n_in = n_in as usize;
    let steps = steps as usize;
    if ABSOLUTE_POS >= o_pre.len() {
        terminate!();
    }
    let b = ABSOLUTE_POS / n_in;
    let j = ABSOLUTE_POS % n_in;
    let w_in = n_in.div_ceil(32);
    let mut count = 0u32;
    for t in 0..steps {
        count += (words[(b * steps + t) * w_in + j / 32] >> ((j % 32) as u32)) & 1u32;
    }
    o_pre[ABSOLUTE_POS] = f32::cast_from(count);
}

/// Thread per (sample `b`, post neuron `i`): writes `e [B, n_in, n_out]` column `i` from the
/// post kernels `kernels [B, n_out, T]` and input words, then `delta [B, n_out]` (`d/ν`) and
/// `coef [B, n_out]` (`δ (1 + s) γ`) from `o_post`, `gamma`, `d_post` (`[B, n_out]`),
/// `weight_t [n_in, n_out]` and `o_pre [B, n_in]`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn spsp_kernel(
    words: &Tensor<u32>,
    kernels: &Tensor<f32>,
    o_post: &Tensor<f32>,
    gamma: &Tensor<f32>,
    d_post: &Tensor<f32>,
    weight_t: &Tensor<f32>,
    o_pre: &Tensor<f32>,
    e: &mut Tensor<f32>,
    delta: &mut Tensor<f32>,
    coef: &mut Tensor<f32>,
    steps: u32,
    n_in: u32,
    n_out: u32,
    nu: f32,
    silent_spsp: f32,
    silent_side_ratio: f32,
) {
    let n_in = n_in as usize;
    let n_out = n_out as usize;
    let steps = steps as usize;
    if ABSOLUTE_POS >= o_post.len() {
        terminate!();
    }
    let b = ABSOLUTE_POS / n_out;
    let i = ABSOLUTE_POS % n_out;
    let w_in = n_in.div_ceil(32);
    let column = b * n_in * n_out + i;
    for j in 0..n_in {
        e[column + j * n_out] = 0.0;
    }
    let post_fired = o_post[ABSOLUTE_POS] > 0.0;
    if post_fired {
        for t in 0..steps {
            let k = kernels[ABSOLUTE_POS * steps + t];
            if k != 0.0 {
                let base = (b * steps + t) * w_in;
                for w in 0..w_in {
                    let word = words[base + w];
                    if word != 0u32 {
                        // Unrolled over the word's bits, as `lif::add_set_bits`.
                        #[unroll]
                        for bit in 0..32u32 {
                            if (word >> bit) & 1u32 == 1u32 {
                                let at = column + (w * 32 + bit as usize) * n_out;
                                e[at] = e[at] + k;
                            }
                        }
                    }
                }
            }
        }
    }
    // Side effect s_i (S9, S11) from Σ_l w_il e_il over the inputs that fired.
    let mut we = 0.0f32;
    let mut w_sum = 0.0f32;
    for j in 0..n_in {
        let w = weight_t[j * n_out + i];
        w_sum += w;
        if o_pre[b * n_in + j] > 0.0 {
            if post_fired {
                we += w * e[column + j * n_out];
            } else {
                e[column + j * n_out] = silent_spsp;
                we += w * silent_spsp;
            }
        }
    }
    let o = o_post[ABSOLUTE_POS];
    let side = select(post_fired, we / (o * nu), silent_side_ratio * w_sum / nu);
    let d = d_post[ABSOLUTE_POS] / nu;
    delta[ABSOLUTE_POS] = d;
    coef[ABSOLUTE_POS] = d * (1.0 + side) * gamma[ABSOLUTE_POS];
}

/// Thread per weight, transposed (`j · n_out + i`): `grad_t [n_in, n_out]`,
/// `Σ_b coef_bi e_bij` in ascending `b`.
#[cube(launch)]
pub fn weight_grad_kernel(
    e: &Tensor<f32>,
    coef: &Tensor<f32>,
    grad_t: &mut Tensor<f32>,
    batch: u32,
    n_out: u32,
) {
    let n_out = n_out as usize;
    let per_sample = grad_t.len();
    if ABSOLUTE_POS >= per_sample {
        terminate!();
    }
    let i = ABSOLUTE_POS % n_out;
    let mut g = 0.0f32;
    for b in 0..batch as usize {
        g += coef[b * n_out + i] * e[b * per_sample + ABSOLUTE_POS];
    }
    grad_t[ABSOLUTE_POS] = g;
}

/// Thread per (sample `b`, input neuron `j`): `d_pre [B, n_in]`, `Σ_i δ_i w_ij ρ_ij` in
/// ascending `i` (S10), `ρ_ij = e_{i|j}/o_j` when both neurons fired and `ratio` is 1, else 1
/// (S8).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn pre_error_kernel(
    e: &Tensor<f32>,
    delta: &Tensor<f32>,
    o_post: &Tensor<f32>,
    o_pre: &Tensor<f32>,
    weight_t: &Tensor<f32>,
    d_pre: &mut Tensor<f32>,
    n_in: u32,
    n_out: u32,
    ratio: u32,
) {
    let n_in = n_in as usize;
    let n_out = n_out as usize;
    if ABSOLUTE_POS >= d_pre.len() {
        terminate!();
    }
    let b = ABSOLUTE_POS / n_in;
    let j = ABSOLUTE_POS % n_in;
    let o = o_pre[ABSOLUTE_POS];
    let with_ratio = ratio == 1u32 && o > 0.0;
    let inv_o = 1.0 / o;
    let row = ABSOLUTE_POS * n_out;
    let mut sum = 0.0f32;
    for i in 0..n_out {
        let dw = delta[b * n_out + i] * weight_t[j * n_out + i];
        if with_ratio && o_post[b * n_out + i] > 0.0 {
            sum += dw * (e[row + i] * inv_o);
        } else {
            sum += dw;
        }
    }
    d_pre[ABSOLUTE_POS] = sum;
}
