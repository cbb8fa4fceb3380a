//! The forward simulation of a spiking dense layer as CubeCL kernels: the active inputs of
//! every step, every step's input currents (event-driven like the host kernels: one weight per
//! active input, in the host's order), then all `T` steps of the LIF scan in one launch, with
//! the LIF update of [`crate::neuron::LifStep::update`] in the
//! same `f32` operations and order, so that the spike trains equal the host path's bit for bit
//! wherever the device rounds `f32` `+ − ×` as IEEE 754 does (every Vulkan / CUDA device) and
//! `τm`, `τs` are powers of two (then `/ τ` is the exact `× (1/τ)`; otherwise the device's
//! division, which WGSL allows to be 2.5 ULP off, is used).

// Kernel bodies are written in the forms the #[cube] expansion was tested with.
#![allow(clippy::manual_div_ceil, clippy::assign_op_pattern)]

use cubecl::prelude::*;

/// A layer's LIF constants, as the kernels take them.
#[derive(CubeType, CubeLaunch, Clone, Copy)]
pub struct LifConsts {
    /// `1/τm`, `1/τs` (used when `reciprocal` is 1).
    pub inv_m: f32,
    pub inv_s: f32,
    /// `τm`, `τs` (divided by when `reciprocal` is 0).
    pub tau_m: f32,
    pub tau_s: f32,
    /// `ν − eps`: a neuron fires when `v` exceeds it.
    pub v_fire: f32,
    /// Refractory steps after a spike.
    pub t_ref: u32,
    /// 1: `/ τ` is taken as `× (1/τ)` (both time constants are powers of two).
    pub reciprocal: u32,
}

/// The state of one neuron: membrane potential, synaptic state, refractory steps left.
#[derive(CubeType, Clone, Copy)]
pub struct LifState {
    pub v: f32,
    pub ep: f32,
    pub refractory: u32,
}

/// One step `t > 0` of one neuron receiving `current`: the device statement of
/// [`crate::neuron::LifStep::update`] (leak, integration, refractory clamp, threshold, reset).
/// Returns 1 when the neuron fires.
#[cube]
pub fn lif_update(state: &mut LifState, current: f32, c: &LifConsts) -> u32 {
    let mut v = state.v;
    let mut ep = state.ep;
    if c.reciprocal == 1u32 {
        v -= v * c.inv_m;
        ep -= ep * c.inv_s;
        ep += current;
        v += ep * c.inv_s;
    } else {
        v -= v / c.tau_m;
        ep -= ep / c.tau_s;
        ep += current;
        v += ep / c.tau_s;
    }
    let mut refractory = state.refractory;
    if refractory > 0u32 {
        v = 0.0;
        refractory -= 1u32;
    }
    let mut fired = 0u32;
    if v > c.v_fire {
        v = 0.0;
        refractory = c.t_ref;
        fired = 1u32;
    }
    state.v = v;
    state.ep = ep;
    state.refractory = refractory;
    fired
}

/// One thread per (sample, step) row of `words [B·T, ⌈n_in/32⌉]`: the indices of the inputs
/// that spiked, ascending, into `active [B·T, n_in]` (the first `lens[row]` entries). The
/// loops run over words, with the bits of a word unrolled: no loop grows with the spikes
/// (lavapipe, the CI's Vulkan driver, ends any loop nest after 65,535 iterations per
/// invocation).
#[cube(launch)]
pub fn active_inputs_kernel(
    words: &Tensor<u32>,
    active: &mut Tensor<u32>,
    lens: &mut Tensor<u32>,
    n_in: u32,
) {
    let n_in = n_in as usize;
    if ABSOLUTE_POS >= lens.len() {
        terminate!();
    }
    let w_in = (n_in + 31) / 32;
    let base = ABSOLUTE_POS * n_in;
    let mut len = 0usize;
    for w in 0..w_in {
        let word = words[ABSOLUTE_POS * w_in + w];
        if word != 0u32 {
            #[unroll]
            for k in 0..32u32 {
                if (word >> k) & 1u32 == 1u32 {
                    active[base + len] = w as u32 * 32u32 + k;
                    len += 1;
                }
            }
        }
    }
    lens[ABSOLUTE_POS] = len as u32;
}

/// One thread per (sample, step, neuron): `currents [B·T, n_out]`, the weights
/// `weight_t [n_in, n_out]` of the row's active inputs summed in ascending input order from
/// `0` (the host kernels' order, so the sums are the host's bit for bit).
#[cube(launch)]
pub fn currents_kernel(
    active: &Tensor<u32>,
    lens: &Tensor<u32>,
    weight_t: &Tensor<f32>,
    currents: &mut Tensor<f32>,
    n_in: u32,
    n_out: u32,
) {
    let n_out = n_out as usize;
    if ABSOLUTE_POS >= currents.len() {
        terminate!();
    }
    let row = ABSOLUTE_POS / n_out;
    let i = ABSOLUTE_POS % n_out;
    let base = row * n_in as usize;
    let mut current = 0.0f32;
    for k in 0..lens[row] as usize {
        current += weight_t[active[base + k] as usize * n_out + i];
    }
    currents[ABSOLUTE_POS] = current;
}

/// Words of the trains per cube of [`lif_dense_kernel`].
pub const SCAN_WORDS: u32 = 4;

/// Cube per (sample `b`, [`SCAN_WORDS`] words of 32 output neurons), unit per (neuron `i`,
/// word) of a layer without lateral inhibition. First the 32 units of a word zero its steps
/// in `words [B, T, ⌈n_out/32⌉]` (unit `k` the steps `k, k + 32, …`; no separate fill
/// launch); then each neuron simulates all steps (step `t` receives the current of step
/// `t − 1`, `currents [B·T, n_out]`), setting its bit of the step's word (an atomic OR, so the
/// 32 neurons of a word may write in any order and give the same word) at every step it
/// fires, and writes its count `counts [B, n_out]` and, when `keep_times` is 1, its spike
/// steps into `times [B·n_out, T]` (the first `count` entries, ascending: what
/// [`super::spsp::spike_times_kernel`] would find in the words).
#[cube(launch)]
pub fn lif_dense_kernel(
    currents: &Tensor<f32>,
    words: &mut Tensor<Atomic<u32>>,
    counts: &mut Tensor<f32>,
    times: &mut Tensor<u32>,
    steps: u32,
    n_out: u32,
    keep_times: u32,
    consts: LifConsts,
) {
    let n_out = n_out as usize;
    let steps = steps as usize;
    let w_out = (n_out + 31) / 32;
    let b = CUBE_POS_Y as usize;
    let w = CUBE_POS_X as usize * SCAN_WORDS as usize + UNIT_POS_Y as usize;
    let lane = UNIT_POS_X as usize;
    if w < w_out {
        let mut t = lane;
        while t < steps {
            words[(b * steps + t) * w_out + w].store(0u32);
            t += 32;
        }
    }
    sync_cube();
    let i = w * 32 + lane;
    if i < n_out {
        let bit = 1u32 << (lane as u32);
        let mut state = LifState {
            v: 0.0,
            ep: 0.0,
            refractory: 0u32,
        };
        let mut count = 0u32;
        for t in 1..steps {
            let current = currents[(b * steps + t - 1) * n_out + i];
            let fired = lif_update(&mut state, current, &consts);
            if fired == 1u32 {
                words[(b * steps + t) * w_out + w].fetch_or(bit);
                if keep_times == 1u32 {
                    times[(b * n_out + i) * steps + count as usize] = t as u32;
                }
                count += 1u32;
            }
        }
        counts[b * n_out + i] = f32::cast_from(count);
    }
}

/// Most neurons of an output layer with lateral inhibition on the device kernels (one cube
/// per sample, one unit per neuron; also WebGPU's default limit of units per cube).
pub const MAX_LATERAL: usize = 256;

/// One cube per sample, one unit per neuron (`n_out ≤ MAX_LATERAL` units) of an output layer
/// with lateral inhibition: every neuron receives `−lateral ·` (spikes of the other neurons
/// at `t − 1`) on top of its input current, shared through a double-buffered slot of shared
/// memory, one barrier per step; the units first zero the sample's `words` (unit `i` every
/// `n_out`-th word), then its spikes set its bits (and, `keep_times`, its spike steps) as in
/// [`lif_dense_kernel`].
#[cube(launch)]
pub fn lif_lateral_kernel(
    currents: &Tensor<f32>,
    words: &mut Tensor<Atomic<u32>>,
    counts: &mut Tensor<f32>,
    times: &mut Tensor<u32>,
    steps: u32,
    n_out: u32,
    keep_times: u32,
    lateral: f32,
    consts: LifConsts,
) {
    let n_out = n_out as usize;
    let steps = steps as usize;
    let b = CUBE_POS;
    let i = UNIT_POS as usize;
    // Slot `t % 2`: which neurons fired at step `t`.
    let mut fired_at = Shared::<[u32]>::new_slice(2 * MAX_LATERAL);
    fired_at[i] = 0u32;
    let w_out = (n_out + 31) / 32;
    let mut k = i;
    while k < steps * w_out {
        words[b * steps * w_out + k].store(0u32);
        k += n_out;
    }
    let bit = 1u32 << ((i % 32) as u32);
    let mut state = LifState {
        v: 0.0,
        ep: 0.0,
        refractory: 0u32,
    };
    let mut count = 0u32;
    sync_cube();
    for t in 1..steps {
        let prev = ((t - 1) % 2) * MAX_LATERAL;
        let mut total = 0u32;
        for k in 0..n_out {
            total += fired_at[prev + k];
        }
        let mut current = currents[(b * steps + t - 1) * n_out + i];
        if total > 0u32 {
            let others = f32::cast_from(total) - f32::cast_from(fired_at[prev + i]);
            current += -(lateral * others);
        }
        let fired = lif_update(&mut state, current, &consts);
        if fired == 1u32 {
            words[(b * steps + t) * w_out + i / 32].fetch_or(bit);
            if keep_times == 1u32 {
                times[(b * n_out + i) * steps + count as usize] = t as u32;
            }
            count += 1u32;
        }
        fired_at[(t % 2) * MAX_LATERAL + i] = fired;
        sync_cube();
    }
    counts[b * n_out + i] = f32::cast_from(count);
}
