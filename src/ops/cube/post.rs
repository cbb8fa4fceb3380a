//! The post-side terms of the HM2-BP backward of a dense layer as CubeCL kernels, from the
//! layer's output spike times (`times [B·n_out, T]`, the first `counts` entries of each row,
//! ascending, from [`super::spsp::spike_times_kernel`]):
//!
//! 1. [`label_spikes_kernel`]: a silent label neuron of an output layer gets the spikes of
//!    [`crate::rule::output::label_spike_steps`] (spec §3.5.1).
//! 2. [`post_kernels_kernel`]: the post kernels `K_i(t)` (spec §2.2, S2–S3), `kernels
//!    [B, T, n_out]`, so that `e_{i|j} = Σ_{t ∈ spikes(j)} K_i(t)`.
//! 3. [`lateral_factor_kernel`]: the lateral factors `γ` of an output layer with lateral
//!    inhibition (spec §3.4), from the trains before label insertion.
//!
//! These are the device statements of [`crate::spsp::spsp_epsilon`],
//! [`crate::spsp::post_kernel`] and [`crate::rule::output::lateral_factor`]; the host computes
//! them in `f64` (from tables), the device in `f32` with its `exp`, so the gradients agree to
//! `f32` rounding, not bit for bit (`tests/wgpu.rs` compares them to `1e-4` of their largest
//! magnitude).

// Kernel bodies are written in the forms the #[cube] expansion was tested with.
#![allow(clippy::manual_div_ceil, clippy::assign_op_pattern)]

use cubecl::prelude::*;

use super::reduce::sum_slices;

/// The constants of the PSP kernel `ε` (S1, S3).
#[derive(CubeType, CubeLaunch, Clone, Copy)]
pub struct PspConsts {
    /// `τm`, `τs` in steps.
    pub tau_m: f32,
    pub tau_s: f32,
    /// Refractory steps.
    pub t_ref: u32,
    /// `⌊WINDOW_TAU_M · τm⌋`: pre spikes further back than this before a post spike are ignored.
    pub window: u32,
}

/// `ε(s, τ)` (S3): the potential of a pre spike `τ` steps before a post spike, `s` steps after
/// the post neuron's last reset (device statement of [`crate::spsp::spsp_epsilon`]).
#[cube]
fn epsilon(s: f32, tau: f32, c: &PspConsts) -> f32 {
    let decay = f32::exp(-f32::max(tau - s, 0.0) / c.tau_s);
    let x = f32::min(s, tau);
    decay * (f32::exp(-x / c.tau_m) - f32::exp(-x / c.tau_s)) / (1.0 - c.tau_s / c.tau_m)
}

/// Thread per sample: `counts [B, n_out]` = `counts_raw`, except that a silent label neuron
/// `labels[b]` (`< n_out`) of an output layer gets the spikes `m · ⌊T / level⌋ < T`,
/// `m = 1, 2, …`, written into its row of `times`, and their number.
#[cube(launch)]
pub fn label_spikes_kernel(
    labels: &Tensor<u32>,
    counts_raw: &Tensor<f32>,
    times: &mut Tensor<u32>,
    counts: &mut Tensor<f32>,
    steps: u32,
    n_out: u32,
    level: u32,
) {
    let n_out = n_out as usize;
    let steps = steps as usize;
    if ABSOLUTE_POS >= labels.len() {
        terminate!();
    }
    for i in 0..n_out {
        counts[ABSOLUTE_POS * n_out + i] = counts_raw[ABSOLUTE_POS * n_out + i];
    }
    let label = labels[ABSOLUTE_POS] as usize;
    let row = ABSOLUTE_POS * n_out + label;
    if label < n_out && level > 0u32 && counts_raw[row] == 0.0 {
        let gap = steps / level as usize;
        let mut n = 0usize;
        if gap > 0 {
            for m in 1..steps {
                if m * gap < steps {
                    times[row * steps + n] = (m * gap) as u32;
                    n += 1;
                }
            }
        }
        counts[row] = f32::cast_from(n as u32);
    }
}

/// Thread per (sample `b`, step `t`, post neuron `i`), post fastest: `kernels [B, T, n_out]`,
/// `K_i(t) = Σ_f ε(s_f, t_f − t − t_ref)` over the post spikes `t_f` of `i` with
/// `t_f − window ≤ t`, `1 ≤ t` and `t + max(t_ref, 1) ≤ t_f`, where `s_f = t_f − t̂_f` and `t̂_f`
/// is 1 for the first spike and `t_{f−1} + t_ref` after (S2), summed in ascending `f`.
#[cube(launch)]
pub fn post_kernels_kernel(
    times: &Tensor<u32>,
    counts: &Tensor<f32>,
    kernels: &mut Tensor<f32>,
    steps: u32,
    n_out: u32,
    consts: PspConsts,
) {
    let n_out = n_out as usize;
    let steps = steps as usize;
    if ABSOLUTE_POS >= kernels.len() {
        terminate!();
    }
    let i = ABSOLUTE_POS % n_out;
    let t = (ABSOLUTE_POS / n_out) % steps;
    let b = ABSOLUTE_POS / (n_out * steps);
    let row = b * n_out + i;
    let n = u32::cast_from(counts[row]) as usize;
    let gap = u32::max(consts.t_ref, 1u32) as usize;
    let mut k = 0.0f32;
    if t >= 1 {
        for f in 0..n {
            let tf = times[row * steps + f] as usize;
            if tf >= t + gap && tf <= t + consts.window as usize {
                let t_hat = select(
                    f == 0,
                    1usize,
                    times[row * steps + f - 1] as usize + consts.t_ref as usize,
                );
                let s = f32::cast_from(tf as u32) - f32::cast_from(t_hat as u32);
                let tau = f32::cast_from((tf - t - consts.t_ref as usize) as u32);
                k += epsilon(s, tau, &consts);
            }
        }
    }
    kernels[ABSOLUTE_POS] = k;
}

/// Cube per (sample `b`, output neuron `j`), unit per other neuron `l` (with more than
/// [`LATERAL_UNITS`] neurons, unit `u` takes `l = u, u + units, …`): `gamma [B, n_out]`,
/// `γ_j = 1 / (1 − w0² Σ_{l≠j} ρ_{l|j} d_l ρ_{j|l} d_j)` with `ρ_{l|j} = e_{l|j}/o_j` (1 if either
/// neuron is silent) and `d_x = 1/ν` if `x` fired or is the label, else 0, the units' sums
/// added in ascending order by the first unit (for up to [`LATERAL_UNITS`] neurons, the
/// terms in ascending `l`). `counts_raw` are the counts before label insertion; `kernels`
/// (after it) are those of the neurons that fired, which insertion leaves alone.
#[cube(launch)]
pub fn lateral_factor_kernel(
    times: &Tensor<u32>,
    counts_raw: &Tensor<f32>,
    kernels: &Tensor<f32>,
    labels: &Tensor<u32>,
    gamma: &mut Tensor<f32>,
    steps: u32,
    n_out: u32,
    strength: f32,
    nu: f32,
) {
    let n_out = n_out as usize;
    let steps = steps as usize;
    let units = CUBE_DIM as usize;
    let j = CUBE_POS_X as usize;
    let b = CUBE_POS_Y as usize;
    let row = b * n_out + j;
    let u = UNIT_POS as usize;
    let mut terms = Shared::<[f32]>::new_slice(LATERAL_UNITS);
    let label = labels[b] as usize;
    let o_j = counts_raw[row];
    let d_j = select(o_j > 0.0 || j == label, 1.0 / nu, 0.0);
    let mut sum = 0.0f32;
    let mut l = u;
    while l < n_out {
        if l != j {
            let o_l = counts_raw[b * n_out + l];
            let d_l = select(o_l > 0.0 || l == label, 1.0 / nu, 0.0);
            let mut rho_lj = 1.0f32;
            let mut rho_jl = 1.0f32;
            if o_j > 0.0 && o_l > 0.0 {
                // e_{l|j}: K_l over j's spikes; e_{j|l}: K_j over l's spikes.
                let mut e_lj = 0.0f32;
                for k in 0..u32::cast_from(o_j) as usize {
                    let t = times[row * steps + k] as usize;
                    e_lj += kernels[(b * steps + t) * n_out + l];
                }
                let mut e_jl = 0.0f32;
                for k in 0..u32::cast_from(o_l) as usize {
                    let t = times[(b * n_out + l) * steps + k] as usize;
                    e_jl += kernels[(b * steps + t) * n_out + j];
                }
                rho_lj = e_lj / o_j;
                rho_jl = e_jl / o_l;
            }
            sum += rho_lj * d_l * rho_jl * d_j;
        }
        l += units;
    }
    terms[u] = sum;
    sync_cube();
    if u == 0 {
        let loop_gain = sum_slices(&terms, 1, units, 0);
        gamma[row] = 1.0 / (1.0 - strength * strength * loop_gain);
    }
}

/// Units of a [`lateral_factor_kernel`] cube at most (WebGPU's default limit).
pub const LATERAL_UNITS: usize = 256;
