//! The forward simulation of a spiking dense layer as CubeCL kernels: all `T` steps of a
//! layer in one launch, event-driven like the host kernels (each set bit of the input words
//! adds one weight column), with the LIF update of [`crate::neuron::LifStep::update`] in the
//! same `f32` operations and order, so that the spike trains equal the host path's bit for bit
//! wherever the device rounds `f32` `+ − ×` as IEEE 754 does (every Vulkan / CUDA device) and
//! `τm`, `τs` are powers of two (then `/ τ` is the exact `× (1/τ)`; otherwise the device's
//! division, which WGSL allows to be 2.5 ULP off, is used).

// Kernel bodies are written in the forms the #[cube] expansion was tested with.
#![allow(clippy::manual_div_ceil, clippy::assign_op_pattern)]

use cubecl::prelude::*;

/// A layer's LIF constants, as the kernels take them.
#[derive(CubeType, Clone, Copy)]
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

/// `Σ_j w[j, i]` over the input neurons `j` that spiked at the step whose words start at
/// `words[base..base + w_in]`, in ascending `j` from `0` (the host kernels' order);
/// `weight_t` is `[n_in, n_out]`.
#[cube]
fn input_current(
    words: &Tensor<u32>,
    base: usize,
    w_in: usize,
    weight_t: &Tensor<f32>,
    n_out: usize,
    i: usize,
) -> f32 {
    let mut current = 0.0f32;
    for w in 0..w_in {
        let mut word = words[base + w];
        while word != 0u32 {
            let j = w * 32 + u32::trailing_zeros(word) as usize;
            current += weight_t[j * n_out + i];
            word &= word - 1u32;
        }
    }
    current
}

/// One thread per (sample, output neuron) of a layer without lateral inhibition: simulates
/// all steps, writing the 0/1 train `spikes [B, T, n_out]` and the count `counts [B, n_out]`.
/// `words [B, T, ⌈n_in/32⌉]` are the input trains, `weight_t [n_in, n_out]` the weights.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn lif_dense_kernel(
    words: &Tensor<u32>,
    weight_t: &Tensor<f32>,
    spikes: &mut Tensor<u32>,
    counts: &mut Tensor<f32>,
    batch: u32,
    steps: u32,
    n_in: u32,
    n_out: u32,
    inv_m: f32,
    inv_s: f32,
    tau_m: f32,
    tau_s: f32,
    v_fire: f32,
    t_ref: u32,
    reciprocal: u32,
) {
    let consts = LifConsts {
        inv_m,
        inv_s,
        tau_m,
        tau_s,
        v_fire,
        t_ref,
        reciprocal,
    };
    let n_out = n_out as usize;
    let steps = steps as usize;
    if ABSOLUTE_POS >= batch as usize * n_out {
        terminate!();
    }
    let b = ABSOLUTE_POS / n_out;
    let i = ABSOLUTE_POS % n_out;
    let w_in = (n_in as usize + 31) / 32;
    let mut state = LifState {
        v: 0.0,
        ep: 0.0,
        refractory: 0u32,
    };
    let mut count = 0.0f32;
    spikes[b * steps * n_out + i] = 0u32;
    for t in 1..steps {
        let current = input_current(words, (b * steps + t - 1) * w_in, w_in, weight_t, n_out, i);
        let fired = lif_update(&mut state, current, &consts);
        count += f32::cast_from(fired);
        spikes[(b * steps + t) * n_out + i] = fired;
    }
    counts[ABSOLUTE_POS] = count;
}

/// One thread per sample of an output layer with lateral inhibition (every neuron receives
/// `−strength · (spikes of the other neurons at t − 1)`, added after the input as the host
/// kernel adds it): simulates all neurons step by step, their state in `state_v`, `state_ep`,
/// `state_r` (`[B, n_out]` scratch), writing `spikes` and `counts` as [`lif_dense_kernel`].
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn lif_lateral_kernel(
    words: &Tensor<u32>,
    weight_t: &Tensor<f32>,
    spikes: &mut Tensor<u32>,
    counts: &mut Tensor<f32>,
    state_v: &mut Tensor<f32>,
    state_ep: &mut Tensor<f32>,
    state_r: &mut Tensor<u32>,
    batch: u32,
    steps: u32,
    n_in: u32,
    n_out: u32,
    lateral: f32,
    inv_m: f32,
    inv_s: f32,
    tau_m: f32,
    tau_s: f32,
    v_fire: f32,
    t_ref: u32,
    reciprocal: u32,
) {
    let consts = LifConsts {
        inv_m,
        inv_s,
        tau_m,
        tau_s,
        v_fire,
        t_ref,
        reciprocal,
    };
    let n_out = n_out as usize;
    let steps = steps as usize;
    let b = ABSOLUTE_POS;
    if b >= batch as usize {
        terminate!();
    }
    let w_in = (n_in as usize + 31) / 32;
    for i in 0..n_out {
        state_v[b * n_out + i] = 0.0;
        state_ep[b * n_out + i] = 0.0;
        state_r[b * n_out + i] = 0u32;
        counts[b * n_out + i] = 0.0;
        spikes[b * steps * n_out + i] = 0u32;
    }
    let mut total = 0u32;
    for t in 1..steps {
        let prev = (b * steps + t - 1) * n_out;
        let mut fired_now = 0u32;
        for i in 0..n_out {
            let mut current =
                input_current(words, (b * steps + t - 1) * w_in, w_in, weight_t, n_out, i);
            if total > 0u32 {
                let others = f32::cast_from(total) - f32::cast_from(spikes[prev + i]);
                current += -(lateral * others);
            }
            let at = b * n_out + i;
            let mut state = LifState {
                v: state_v[at],
                ep: state_ep[at],
                refractory: state_r[at],
            };
            let fired = lif_update(&mut state, current, &consts);
            state_v[at] = state.v;
            state_ep[at] = state.ep;
            state_r[at] = state.refractory;
            counts[at] = counts[at] + f32::cast_from(fired);
            spikes[(b * steps + t) * n_out + i] = fired;
            fired_now += fired;
        }
        total = fired_now;
    }
}

/// One thread per (sample, step, word): packs 32 neurons of the 0/1 trains
/// `spikes [B, T, n]` into bit `k` of word `w` (neuron `32·w + k`, as
/// [`crate::spikes::SpikeRaster::write_words`]), `words [B, T, ⌈n/32⌉]`.
#[cube(launch)]
pub fn pack_kernel(spikes: &Tensor<u32>, words: &mut Tensor<u32>, rows: u32, n: u32) {
    let n = n as usize;
    let w_out = (n + 31) / 32;
    if ABSOLUTE_POS >= rows as usize * w_out {
        terminate!();
    }
    let row = ABSOLUTE_POS / w_out;
    let w = ABSOLUTE_POS % w_out;
    let mut word = 0u32;
    for k in 0..32usize {
        let i = w * 32 + k;
        if i < n {
            word |= spikes[row * n + i] << (k as u32);
        }
    }
    words[ABSOLUTE_POS] = word;
}
