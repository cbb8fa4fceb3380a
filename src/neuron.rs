//! Discrete LIF neuron with a first-order synapse (spec §1.1), as the authors' code runs it.
//!
//! Per step, for every neuron: leak (`v -= v/τm`, `ep -= ep/τs`); at `t = 0` nothing else; then
//! the current `I` (spikes of step `t − 1`, a one-step synaptic delay) is added to `ep`,
//! `v += ep/τs`, the refractory counter clamps `v` to 0, and the neuron fires when
//! `v > ν − eps`, resetting `v` to 0 and the counter to `t_ref`. Arithmetic is `f32`, in this
//! order, so that rasters match the authors' golden data bit for bit. The update is written
//! once, in `lif_update`; [`LifPopulation`] runs it over every layer kind.

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

/// Neurons are stepped in chunks of this many: a chunk that has never received input is at
/// rest (`v = ep = 0`, not refractory) and stays so without being touched, exactly.
const CHUNK: usize = 32;

/// State of a population of LIF neurons simulated one step at a time, starting at rest.
///
/// Input currents are added with [`LifPopulation::add`] / [`LifPopulation::add_all`] and
/// consumed by the next [`LifPopulation::step`]. Only chunks of neurons that have received
/// some input are simulated: a neuron at rest with no input stays at rest bit for bit (every
/// term of the update is `0`), so skipping it changes nothing; conv neurons over the image
/// background are never touched.
#[derive(Clone, Debug)]
pub struct LifPopulation {
    params: LifParams,
    v: Vec<f32>,
    ep: Vec<f32>,
    refractory: Vec<u32>,
    current: Vec<f32>,
    /// Whether a chunk has ever received input.
    awake: Vec<bool>,
}

impl LifPopulation {
    /// `neurons` neurons at rest.
    pub fn new(params: LifParams, neurons: usize) -> Self {
        Self {
            params,
            v: vec![0.0; neurons],
            ep: vec![0.0; neurons],
            refractory: vec![0; neurons],
            current: vec![0.0; neurons],
            awake: vec![false; neurons.div_ceil(CHUNK)],
        }
    }

    /// Adds `x` to the input current of neuron `i` for the next step.
    #[inline]
    pub fn add(&mut self, i: usize, x: f32) {
        self.current[i] += x;
        self.awake[i / CHUNK] = true;
    }

    /// Adds `x[k]` to the input current of neuron `start + k` for the next step.
    #[inline]
    pub fn add_slice(&mut self, start: usize, x: &[f32]) {
        for (c, &v) in self.current[start..start + x.len()].iter_mut().zip(x) {
            *c += v;
        }
        let last = (start + x.len()).max(start + 1) - 1;
        self.awake[start / CHUNK..=last / CHUNK].fill(true);
    }

    /// Adds `x[i]` to the input current of every neuron `i` for the next step.
    pub fn add_all(&mut self, x: &[f32]) {
        for (c, &v) in self.current.iter_mut().zip(x) {
            *c += v;
        }
        self.awake.fill(true);
    }

    /// Advances every neuron by one step `t > 0` with the input added since the last step
    /// (the weighted spikes of step `t − 1`, a one-step synaptic delay), then clears the
    /// input. Calls `fire(i)` for every neuron that fires, in ascending order. (Step 0 of a
    /// population at rest is a no-op: leak of a zero state, no input, no spike.)
    pub fn step(&mut self, mut fire: impl FnMut(usize)) {
        let p = self.params;
        let exact_reciprocal = is_power_of_two(p.tau_m) && is_power_of_two(p.tau_s);
        for c in 0..self.awake.len() {
            if !self.awake[c] {
                continue;
            }
            let range = c * CHUNK..((c + 1) * CHUNK).min(self.v.len());
            let lo = range.start;
            let (v, ep) = (&mut self.v[range.clone()], &mut self.ep[range.clone()]);
            let (r, cur) = (
                &mut self.refractory[range.clone()],
                &mut self.current[range],
            );
            let mut fired = if exact_reciprocal {
                lif_update::<true>(&p, v, ep, r, cur)
            } else {
                lif_update::<false>(&p, v, ep, r, cur)
            };
            while fired != 0 {
                let k = fired.trailing_zeros() as usize;
                fired &= fired - 1;
                r[k] = p.t_ref;
                v[k] = 0.0;
                fire(lo + k);
            }
        }
    }
}

/// Whether `x` is an exact power of two (so `y / x == y * (1 / x)` for every `y`).
fn is_power_of_two(x: f32) -> bool {
    x > 0.0 && x.is_normal() && (1.0 / x).is_normal() && x.to_bits() & 0x007f_ffff == 0
}

/// The LIF update of one step (`t > 0`) for a chunk of at most 32 neurons, branch-free so
/// that it vectorises: leak (`v -= v/τm`, `ep -= ep/τs`), integration of `current` (`ep += I`,
/// `v += ep/τs`; the current is then cleared), refractory clamp (`v = 0`, counter down) and
/// threshold test (`v > ν − eps`). The operations and their order are the authors'; `/ τ` is
/// taken as `* (1/τ)` when `EXACT_RECIPROCAL` (only for powers of two, where both are
/// identical). Returns the neurons that crossed the threshold as a bit mask; resetting them is
/// the caller's.
fn lif_update<const EXACT_RECIPROCAL: bool>(
    p: &LifParams,
    v: &mut [f32],
    ep: &mut [f32],
    refractory: &mut [u32],
    current: &mut [f32],
) -> u32 {
    debug_assert!(v.len() <= 32);
    let (inv_m, inv_s) = (1.0 / p.tau_m, 1.0 / p.tau_s);
    let over = |x: f32, tau: f32, inv: f32| {
        if EXACT_RECIPROCAL { x * inv } else { x / tau }
    };
    let vth = p.threshold - p.threshold_eps;
    let mut fired = 0u32;
    for (k, (((v, ep), r), i)) in v
        .iter_mut()
        .zip(ep.iter_mut())
        .zip(refractory.iter_mut())
        .zip(current.iter_mut())
        .enumerate()
    {
        *v -= over(*v, p.tau_m, inv_m);
        *ep -= over(*ep, p.tau_s, inv_s);
        *ep += *i;
        *i = 0.0;
        *v += over(*ep, p.tau_s, inv_s);
        let clamped = *r > 0;
        *v = if clamped { 0.0 } else { *v };
        *r -= u32::from(clamped);
        fired |= u32::from(*v > vth) << k;
    }
    fired
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A single neuron driven by a constant current: the first spike time follows from the
    /// closed-form recursion, and the refractory clamp keeps at least 3 steps between spikes.
    #[test]
    fn constant_drive_fires_regularly() {
        let mut pop = LifPopulation::new(LifParams::paper(1.0), 1);
        let mut times = Vec::new();
        for t in 1..200 {
            pop.add(0, 0.5);
            pop.step(|_| times.push(t));
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
        let n = 32;
        let (mut v1, mut e1) = (vec![0.0f32; n], vec![0.0f32; n]);
        let (mut v2, mut e2) = (vec![0.0f32; n], vec![0.0f32; n]);
        let (mut r1, mut r2) = (vec![0u32; n], vec![0u32; n]);
        for _ in 0..300 {
            let current: Vec<f32> = (0..n).map(|_| next()).collect();
            let (mut c1, mut c2) = (current.clone(), current);
            let f1 = lif_update::<true>(&p, &mut v1, &mut e1, &mut r1, &mut c1);
            let f2 = lif_update::<false>(&p, &mut v2, &mut e2, &mut r2, &mut c2);
            assert_eq!(f1, f2);
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
    fn silent_without_input_and_resting_chunks_are_skipped() {
        let mut pop = LifPopulation::new(LifParams::paper(0.1), 100);
        let mut fired = Vec::new();
        for _ in 1..50 {
            pop.step(|i| fired.push(i));
        }
        assert!(fired.is_empty());
        // Input to neuron 70 wakes its chunk only; everyone else stays exactly at rest.
        pop.add(70, 1.0);
        pop.step(|i| fired.push(i));
        pop.step(|i| fired.push(i));
        assert_eq!(fired, vec![70]);
        assert_eq!(pop.awake, vec![false, false, true, false]);
        assert!(
            pop.v
                .iter()
                .enumerate()
                .all(|(i, &v)| v == 0.0 || (64..96).contains(&i))
        );
    }

    /// Chunked stepping equals the update applied to every neuron (with and without input).
    #[test]
    fn chunked_step_matches_full_update() {
        let p = LifParams::paper(0.7);
        let n = 75;
        let mut pop = LifPopulation::new(p, n);
        let (mut v, mut ep, mut r) = (vec![0.0f32; n], vec![0.0f32; n], vec![0u32; n]);
        let mut state = 99u32;
        for _ in 1..300 {
            let mut current = vec![0.0f32; n];
            for (i, c) in current.iter_mut().enumerate().skip(20) {
                state = state.wrapping_mul(1664525).wrapping_add(1013904223);
                if state >> 29 == 0 {
                    *c = (state % 1000) as f32 / 500.0 - 0.6;
                    pop.add(i, *c);
                }
            }
            let mut got = Vec::new();
            pop.step(|i| got.push(i));
            // The update one neuron at a time, straight from the spec.
            let mut want = Vec::new();
            for i in 0..n {
                let mask = lif_update::<false>(
                    &p,
                    &mut v[i..=i],
                    &mut ep[i..=i],
                    &mut r[i..=i],
                    &mut current[i..=i],
                );
                if mask != 0 {
                    want.push(i);
                }
            }
            for &i in &want {
                v[i] = 0.0;
                r[i] = p.t_ref;
            }
            assert_eq!(got, want);
            assert_eq!(pop.v, v);
            assert_eq!(pop.ep, ep);
        }
    }
}
