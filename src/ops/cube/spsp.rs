//! The HM2-BP backward of a spiking dense layer as CubeCL kernels, in the `f32` operations of
//! the host kernels ([`crate::rule::dense`], terms of [`crate::rule::terms`]) and in their
//! order except the side effect's sum (eight slices of the inputs, added in a fixed order):
//!
//! 1. [`spike_times_kernel`]: each input's spike steps and count `o_j` (the steps split eight
//!    ways per neuron).
//! 2. [`spsp_rows_kernel`]: per (sample, input, post neuron), the S-PSP
//!    `e_{i|j} = Σ_{t ∈ spikes(j)} K_i(t)` event by event in ascending `t` (0.1 for silent post
//!    neurons).
//! 3. [`side_effect_kernel`]: the side effect and the weight coefficient `δ_i (1 + s_i) γ_i`.
//! 4. [`weight_grad_kernel`]: `∂E/∂w_ij = Σ_b coef_bi e_bij`.
//! 5. [`pre_error_kernel`]: `∂E/∂o_j = Σ_i δ_i w_ij ρ_ij`.
//!
//! Every loop runs over steps, inputs or neurons, never over spikes within a step, so no
//! thread loops more than `max(T, n_in, n_out)` times (lavapipe, the CI's Vulkan driver, ends
//! a loop nest after 65,535 iterations per invocation).
//!
//! The post kernels `K`, post counts (after label-spike insertion) and lateral factors `γ`
//! come from [`super::post`]'s kernels. `e` is kept `[B, n_in, n_out]`
//! (post neuron fastest), so that neighbouring threads touch neighbouring memory.

// Kernel bodies are written in the forms the #[cube] expansion was tested with.
#![allow(clippy::manual_div_ceil, clippy::assign_op_pattern)]

use cubecl::prelude::*;

use super::reduce::sum_slices;

/// Neurons per cube of [`spike_times_kernel`] (one word of the trains).
pub const TIMES_NEURONS: u32 = 32;
/// Slices of the steps per cube of [`spike_times_kernel`].
pub const TIMES_SLICES: u32 = 8;

/// Cube per (sample `b`, word of [`TIMES_NEURONS`] neurons), unit per (neuron `j`, slice of
/// the steps): the steps at which `j` spiked, ascending, `times [B·n, T]` (the first
/// `counts` entries), and its count `counts [B, n]`, from `words [B, T, ⌈n/32⌉]`. Each unit
/// counts its slice's spikes, the slices before it give its offset, then it writes its steps:
/// the scan over `T` is split [`TIMES_SLICES`] ways, the result the same.
#[cube(launch)]
pub fn spike_times_kernel(
    words: &Tensor<u32>,
    times: &mut Tensor<u32>,
    counts: &mut Tensor<f32>,
    steps: u32,
    n: u32,
) {
    let n = n as usize;
    let steps = steps as usize;
    let lanes = TIMES_NEURONS as usize;
    let slices = TIMES_SLICES as usize;
    let b = CUBE_POS_Y as usize;
    let word = CUBE_POS_X as usize;
    let lane = UNIT_POS_X as usize;
    let slice = UNIT_POS_Y as usize;
    let j = word * lanes + lane;
    let w_n = n.div_ceil(32);
    let per_slice = steps.div_ceil(slices);
    let first = slice * per_slice;
    let mut last = first + per_slice;
    if last > steps {
        last = steps;
    }
    let mut found = Shared::<[u32]>::new_slice(lanes * slices);
    let mut count = 0u32;
    for t in first..last {
        count += (words[(b * steps + t) * w_n + word] >> (lane as u32)) & 1u32;
    }
    found[slice * lanes + lane] = count;
    sync_cube();
    if j < n {
        let row = b * n + j;
        let mut at = 0usize;
        for k in 0..slice {
            at += found[k * lanes + lane] as usize;
        }
        for t in first..last {
            if (words[(b * steps + t) * w_n + word] >> (lane as u32)) & 1u32 == 1u32 {
                times[row * steps + at] = t as u32;
                at += 1;
            }
        }
        if slice == slices - 1 {
            counts[row] = f32::cast_from(at as u32);
        }
    }
}

/// Thread per (sample `b`, input `j`, post neuron `i`), post fastest: the S-PSP
/// `e [B, n_in, n_out]`, `e_{i|j} = Σ_{t ∈ spikes(j)} K_i(t)` summed in ascending `t` from the
/// post kernels `kernels [B, T, n_out]` when `i` fired (`o_post [B, n_out]`); `silent_spsp`
/// for a silent `i` where `j` fired; else 0.
#[cube(launch)]
pub fn spsp_rows_kernel(
    times: &Tensor<u32>,
    o_pre: &Tensor<f32>,
    kernels: &Tensor<f32>,
    o_post: &Tensor<f32>,
    e: &mut Tensor<f32>,
    steps: u32,
    n_in: u32,
    n_out: u32,
    silent_spsp: f32,
) {
    let n_out = n_out as usize;
    let steps = steps as usize;
    if ABSOLUTE_POS >= e.len() {
        terminate!();
    }
    let i = ABSOLUTE_POS % n_out;
    let pre = ABSOLUTE_POS / n_out;
    let b = pre / n_in as usize;
    let post_fired = o_post[b * n_out + i] > 0.0;
    e[ABSOLUTE_POS] = spsp_entry(
        times,
        kernels,
        o_pre[pre],
        pre * steps,
        b * steps,
        i,
        post_fired,
        n_out,
        silent_spsp,
    );
}

/// The S-PSP `e_{i|j}` of one pair (S2–S3, §3.5.2): `K_i(t)` (`kernels [B, T, n_out]`, rows
/// from `row0`) summed over the `o_pre` spike steps of `j` (`times` from `times0`) in
/// ascending `t` when `i` fired; `silent_spsp` for a silent `i` where `j` fired; else 0.
#[cube]
pub fn spsp_entry(
    times: &Tensor<u32>,
    kernels: &Tensor<f32>,
    o_pre: f32,
    times0: usize,
    row0: usize,
    i: usize,
    post_fired: bool,
    n_out: usize,
    silent_spsp: f32,
) -> f32 {
    let fired = u32::cast_from(o_pre) as usize;
    let mut sum = 0.0f32;
    if post_fired {
        for k in 0..fired {
            let t = times[times0 + k] as usize;
            sum += kernels[(row0 + t) * n_out + i];
        }
    } else if fired > 0 {
        sum = silent_spsp;
    }
    sum
}

/// The side effect `s_i` (S9, S11) from `we = Σ_l w_il e_il` (firing `i`, `o > 0`) or
/// `w_sum = Σ_l w_il` (silent `i`): the device statement of [`crate::rule::terms::side_effect`].
#[cube]
pub fn side_effect(o: f32, we: f32, w_sum: f32, nu: f32, silent_side_ratio: f32) -> f32 {
    select(o > 0.0, we / (o * nu), silent_side_ratio * w_sum / nu)
}

/// Post neurons per cube of [`side_effect_kernel`] (consecutive: their weights and `e` are
/// read coalesced).
pub const SIDE_NEURONS: u32 = 32;
/// Slices of the inputs per cube of [`side_effect_kernel`]: each unit sums every
/// `SIDE_SLICES`-th input, then the slices' sums are added in order.
pub const SIDE_SLICES: u32 = 8;

/// Cube per (sample `b`, [`SIDE_NEURONS`] post neurons), unit per (neuron `i`, input slice):
/// the side effect `s_i` (S9, S11) from `Σ_l w_il e_il` over the inputs that fired
/// (`e [B, n_in, n_out]`, `weight_t [n_in, n_out]`, `o_pre [B, n_in]`), each slice summing
/// every [`SIDE_SLICES`]-th input and the slices added in ascending order (a fixed order, not
/// the host's: equal to it up to `f32` rounding), then `delta [B, n_out]` (`d/ν`) and the
/// weight coefficient `coef [B, n_out]` (`δ (1 + s) γ`) from `o_post`, `gamma` (read when
/// `has_gamma` is 1, else γ = 1), `d_post` (`[B, n_out]`). A post neuron's inputs are read by [`SIDE_SLICES`] units at once instead of
/// one thread's loop over all of them (an output layer has only `B · 10` neurons).
#[cube(launch)]
pub fn side_effect_kernel(
    e: &Tensor<f32>,
    weight_t: &Tensor<f32>,
    o_pre: &Tensor<f32>,
    o_post: &Tensor<f32>,
    gamma: &Tensor<f32>,
    has_gamma: u32,
    d_post: &Tensor<f32>,
    delta: &mut Tensor<f32>,
    coef: &mut Tensor<f32>,
    n_in: u32,
    n_out: u32,
    nu: f32,
    silent_side_ratio: f32,
) {
    let n_in = n_in as usize;
    let n_out = n_out as usize;
    let lanes = SIDE_NEURONS as usize;
    let slices = SIDE_SLICES as usize;
    let b = CUBE_POS_Y as usize;
    let i = CUBE_POS_X as usize * lanes + UNIT_POS_X as usize;
    let slice = UNIT_POS_Y as usize;
    let mut we_part = Shared::<[f32]>::new_slice(lanes * slices);
    let mut w_part = Shared::<[f32]>::new_slice(lanes * slices);
    let mut we = 0.0f32;
    let mut w_sum = 0.0f32;
    if i < n_out {
        let mut j = slice;
        while j < n_in {
            let w = weight_t[j * n_out + i];
            w_sum += w;
            if o_pre[b * n_in + j] > 0.0 {
                we += w * e[(b * n_in + j) * n_out + i];
            }
            j += slices;
        }
    }
    let slot = slice * lanes + UNIT_POS_X as usize;
    we_part[slot] = we;
    w_part[slot] = w_sum;
    sync_cube();
    if slice == 0 && i < n_out {
        let we_total = sum_slices(&we_part, lanes, slices, UNIT_POS_X as usize);
        let w_total = sum_slices(&w_part, lanes, slices, UNIT_POS_X as usize);
        let at = b * n_out + i;
        let side = side_effect(o_post[at], we_total, w_total, nu, silent_side_ratio);
        let d = d_post[at] / nu;
        delta[at] = d;
        let mut c = d * (1.0 + side);
        if has_gamma == 1u32 {
            c = c * gamma[at];
        }
        coef[at] = c;
    }
}

/// Thread per weight in `e`'s order (`j · n_out + i`, so that neighbouring threads read
/// neighbouring entries): `grad [n_out, n_in]`, `Σ_b coef_bi e_bij` in ascending `b`, written
/// in the weights' own layout (no transpose launch).
#[cube(launch)]
pub fn weight_grad_kernel(
    e: &Tensor<f32>,
    coef: &Tensor<f32>,
    grad: &mut Tensor<f32>,
    batch: u32,
    n_in: u32,
    n_out: u32,
) {
    let n_out = n_out as usize;
    let per_sample = grad.len();
    if ABSOLUTE_POS >= per_sample {
        terminate!();
    }
    let i = ABSOLUTE_POS % n_out;
    let j = ABSOLUTE_POS / n_out;
    let mut g = 0.0f32;
    for b in 0..batch as usize {
        g += coef[b * n_out + i] * e[b * per_sample + ABSOLUTE_POS];
    }
    grad[i * n_in as usize + j] = g;
}

/// Thread per (sample `b`, input neuron `j`): `d_pre [B, n_in]`, `Σ_i δ_i w_ij ρ_ij` in
/// ascending `i` (S10), `ρ_ij = e_{i|j}/o_j` when both neurons fired and `ratio` is 1, else 1
/// (S8).
#[cube(launch)]
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
