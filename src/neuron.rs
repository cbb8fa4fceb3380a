//! Discrete LIF neuron with a first-order synapse (spec §1.1), as the authors' code runs it.
//!
//! Per step, for every neuron: leak (`v -= v/τm`, `ep -= ep/τs`); at `t = 0` nothing else; then
//! the current `I` (spikes of step `t − 1`, a one-step synaptic delay) is added to `ep`,
//! `v += ep/τs`, the refractory counter clamps `v` to 0, and the neuron fires when
//! `v > ν − eps`, resetting `v` to 0 and the counter to `t_ref`. Arithmetic is `f32`, in this
//! order, so that rasters match the authors' golden data bit for bit.

use serde::{Deserialize, Serialize};

/// Parameters of one layer of LIF neurons.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LifParams {
    /// Membrane time constant τm in steps (64 in every config of the paper).
    pub tau_m: f32,
    /// Synaptic time constant τs in steps (8).
    pub tau_s: f32,
    /// Absolute refractory period in steps (2).
    pub t_ref: u32,
    /// Firing threshold ν of the layer.
    pub threshold: f32,
    /// The neuron fires when `v > threshold − threshold_eps` (1e-6 for FC and pooling layers,
    /// 0 for conv layers).
    pub threshold_eps: f32,
}

impl LifParams {
    /// The paper's constants (τm 64, τs 8, t_ref 2) with threshold `threshold` and the FC
    /// comparison `v > ν − 1e-6`.
    pub fn paper(threshold: f32) -> Self {
        Self {
            tau_m: 64.0,
            tau_s: 8.0,
            t_ref: 2,
            threshold,
            threshold_eps: 1e-6,
        }
    }

    /// The same parameters with the conv-layer comparison `v > ν`.
    pub fn strict(self) -> Self {
        Self {
            threshold_eps: 0.0,
            ..self
        }
    }
}

/// State of a population of LIF neurons simulated one step at a time.
#[derive(Clone, Debug)]
pub struct LifPopulation {
    params: LifParams,
    v: Vec<f32>,
    ep: Vec<f32>,
    refractory: Vec<u32>,
    spiked: Vec<u8>,
}

impl LifPopulation {
    /// `neurons` neurons at rest.
    pub fn new(params: LifParams, neurons: usize) -> Self {
        Self {
            params,
            v: vec![0.0; neurons],
            ep: vec![0.0; neurons],
            refractory: vec![0; neurons],
            spiked: vec![0; neurons],
        }
    }

    /// Advances every neuron by one step. `current` holds the input of this step (the weighted
    /// spikes of step `t − 1`); it is ignored at `t = 0`. Appends the neurons that fire to
    /// `fired` (ascending).
    pub fn step(&mut self, t: usize, current: &[f32], fired: &mut Vec<u32>) {
        let p = self.params;
        if t == 0 {
            // Leak only (the state is at rest unless the population is reused).
            for (v, ep) in self.v.iter_mut().zip(&mut self.ep) {
                *v -= *v / p.tau_m;
                *ep -= *ep / p.tau_s;
            }
            return;
        }
        // Dividing by a power of two equals multiplying by its reciprocal, bit for bit, and
        // a multiplication is several times cheaper than a vector division.
        if is_power_of_two(p.tau_m) && is_power_of_two(p.tau_s) {
            leak_integrate::<true>(&mut self.v, &mut self.ep, current, &p);
        } else {
            leak_integrate::<false>(&mut self.v, &mut self.ep, current, &p);
        }
        // Refractory clamp and threshold test, branch-free so it vectorises; the (few) spikes
        // are then collected and reset.
        let vth = p.threshold - p.threshold_eps;
        let mut any = 0u8;
        for ((v, r), s) in self
            .v
            .iter_mut()
            .zip(&mut self.refractory)
            .zip(&mut self.spiked)
        {
            let refractory = *r > 0;
            *v = if refractory { 0.0 } else { *v };
            *r -= u32::from(refractory);
            *s = u8::from(*v > vth);
            any |= *s;
        }
        if any == 0 {
            return;
        }
        for (n, &s) in self.spiked.iter().enumerate() {
            if s != 0 {
                fired.push(n as u32);
                self.refractory[n] = p.t_ref;
                self.v[n] = 0.0;
            }
        }
    }
}

/// Whether `x` is an exact power of two (so `y / x == y * (1 / x)` for every `y`).
fn is_power_of_two(x: f32) -> bool {
    x > 0.0 && x.is_normal() && (1.0 / x).is_normal() && x.to_bits() & 0x007f_ffff == 0
}

/// Leak and integration of one step (`t > 0`): branch-free, so it vectorises; the same
/// operations in the same order as the authors' code, with `/ τ` taken as `* (1/τ)` when
/// `EXACT_RECIPROCAL` (only for powers of two, where both are identical).
fn leak_integrate<const EXACT_RECIPROCAL: bool>(
    v: &mut [f32],
    ep: &mut [f32],
    current: &[f32],
    p: &LifParams,
) {
    let (inv_m, inv_s) = (1.0 / p.tau_m, 1.0 / p.tau_s);
    let over = |x: f32, tau: f32, inv: f32| {
        if EXACT_RECIPROCAL { x * inv } else { x / tau }
    };
    for ((v, ep), &i) in v.iter_mut().zip(ep.iter_mut()).zip(current) {
        *v -= over(*v, p.tau_m, inv_m);
        *ep -= over(*ep, p.tau_s, inv_s);
        *ep += i;
        *v += over(*ep, p.tau_s, inv_s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A single neuron driven by a constant current: the first spike time follows from the
    /// closed-form recursion, and the refractory clamp keeps at least 3 steps between spikes.
    #[test]
    fn constant_drive_fires_regularly() {
        let mut pop = LifPopulation::new(LifParams::paper(1.0), 1);
        let mut fired = Vec::new();
        let mut times = Vec::new();
        for t in 0..200 {
            fired.clear();
            pop.step(t, &[0.5], &mut fired);
            if !fired.is_empty() {
                times.push(t);
            }
        }
        assert!(times.len() > 5);
        assert!(times.windows(2).all(|w| w[1] - w[0] >= 3));
        // Hand computation: t=1: ep=.5, v=.0625; t=2: ep=.9375, v=.0615+.1172=.1787; ...
        let (mut v, mut ep) = (0.0f32, 0.0f32);
        let mut first = None;
        for t in 1..50 {
            v -= v / 64.0;
            ep -= ep / 8.0;
            ep += 0.5;
            v += ep / 8.0;
            if v > 1.0 - 1e-6 {
                first = Some(t);
                break;
            }
        }
        assert_eq!(Some(times[0]), first);
    }

    /// The reciprocal shortcut gives the same rasters as division, bit for bit, for powers of
    /// two, and other time constants still divide.
    #[test]
    fn reciprocal_leak_matches_division() {
        assert!(is_power_of_two(64.0) && is_power_of_two(8.0) && is_power_of_two(0.5));
        assert!(!is_power_of_two(10.0) && !is_power_of_two(0.0) && !is_power_of_two(-8.0));
        let mut state = 0x1234_5678u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 1000) as f32 / 250.0 - 1.0
        };
        let p = LifParams::paper(3.0);
        let n = 37;
        let (mut v1, mut e1) = (vec![0.0f32; n], vec![0.0f32; n]);
        let (mut v2, mut e2) = (vec![0.0f32; n], vec![0.0f32; n]);
        for _ in 0..300 {
            let current: Vec<f32> = (0..n).map(|_| next()).collect();
            leak_integrate::<true>(&mut v1, &mut e1, &current, &p);
            leak_integrate::<false>(&mut v2, &mut e2, &current, &p);
            assert_eq!(
                v1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                v2.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
            assert_eq!(
                e1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                e2.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn no_spike_at_step_zero_and_silent_without_input() {
        let mut pop = LifPopulation::new(LifParams::paper(0.1), 3);
        let mut fired = Vec::new();
        pop.step(0, &[100.0; 3], &mut fired);
        assert!(fired.is_empty());
        for t in 1..50 {
            pop.step(t, &[0.0; 3], &mut fired);
        }
        assert!(fired.is_empty());
    }
}
