//! Discrete LIF neuron with a first-order synapse (spec §1.1), as the authors' code runs it.
//!
//! Per step, for every neuron: leak (`v -= v/τm`, `ep -= ep/τs`); at `t = 0` nothing else; then
//! the current `I` (spikes of step `t − 1`, a one-step synaptic delay) is added to `ep`,
//! `v += ep/τs`, the refractory counter clamps `v` to 0, and the neuron fires when
//! `v > ν − eps`, resetting `v` to 0 and the counter to `t_ref`. Arithmetic is `f32`, in this
//! order, so that rasters match the authors' golden data bit for bit. The update is written
//! once, in [`LifStep::update`] (eight neurons per vector); [`LifPopulation`] runs it over
//! every layer kind, and the dense layer's forward calls it directly on its blocks.

use serde::{Deserialize, Serialize};

use crate::simd::{F32x8, LANES, Vectors};

/// Parameters of one layer of LIF neurons.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LifSpec {
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

impl LifSpec {
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

    /// The level the membrane potential must exceed to fire: `ν − eps`.
    pub fn firing_level(&self) -> f32 {
        self.threshold - self.threshold_eps
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

/// The state of [`LANES`] neurons: membrane potential `v`, synaptic state `ep`, and the
/// refractory steps left.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LifLanes {
    /// Membrane potentials.
    pub v: F32x8,
    /// Synaptic states.
    pub ep: F32x8,
    /// Refractory steps left (0: not refractory).
    pub refractory: [i32; LANES],
}

/// The LIF update of one step (`t > 0`) with a layer's constants prepared, applied to
/// [`LANES`] neurons at a time by [`LifStep::update`].
#[derive(Clone, Copy, Debug)]
pub struct LifStep {
    tau_m: f32,
    tau_s: f32,
    inv_m: f32,
    inv_s: f32,
    /// `ν − eps`: a neuron fires when `v` exceeds it.
    v_fire: f32,
    t_ref: i32,
    /// `/ τ` may be taken as `* (1/τ)`: both time constants are powers of two, where the two
    /// are identical for every `f32`.
    exact_reciprocal: bool,
    vectors: Vectors,
}

impl LifStep {
    /// The update of neurons with parameters `p`.
    pub fn new(p: &LifSpec) -> Self {
        Self {
            tau_m: p.tau_m,
            tau_s: p.tau_s,
            inv_m: 1.0 / p.tau_m,
            inv_s: 1.0 / p.tau_s,
            v_fire: p.firing_level(),
            t_ref: p.t_ref.min(i32::MAX as u32) as i32,
            exact_reciprocal: exact_reciprocals(p),
            vectors: Vectors::detect(),
        }
    }

    /// One step of [`LANES`] neurons receiving `current` (the weighted spikes of step
    /// `t − 1`, a one-step synaptic delay): leak (`v -= v/τm`, `ep -= ep/τs`), integration
    /// (`ep += I`, `v += ep/τs`), refractory clamp (`v = 0`, counter down), threshold test
    /// (`v > ν − eps`) and reset of the neurons that fired (`v = 0`, counter `t_ref`). The
    /// operations and their order are the authors' (spec §1.1), in `f32`, so rasters match
    /// their golden data bit for bit; branch-free within the lanes, which the compiler turns
    /// into vector instructions. Returns the neurons that fired as a bit mask (bit `k`: lane
    /// `k`).
    #[inline(always)]
    pub fn update(&self, s: &mut LifLanes, current: F32x8) -> u32 {
        if self.exact_reciprocal {
            let (inv_m, inv_s) = (self.inv_m, self.inv_s);
            self.update_lanes(s, current, |v| v * inv_m, |ep| ep * inv_s)
        } else {
            let (tau_m, tau_s) = (self.tau_m, self.tau_s);
            self.update_lanes(s, current, |v| v / tau_m, |ep| ep / tau_s)
        }
    }

    /// [`LifStep::update`] with `/ τm` and `/ τs` given.
    #[inline(always)]
    fn update_lanes(
        &self,
        s: &mut LifLanes,
        current: F32x8,
        by_tau_m: impl Fn(f32) -> f32,
        by_tau_s: impl Fn(f32) -> f32,
    ) -> u32 {
        for k in 0..LANES {
            let (mut v, mut ep) = (s.v.0[k], s.ep.0[k]);
            v -= by_tau_m(v);
            ep -= by_tau_s(ep);
            ep += current.0[k];
            v += by_tau_s(ep);
            let refractory = s.refractory[k];
            let clamped = refractory > 0;
            s.v.0[k] = if clamped { 0.0 } else { v };
            s.ep.0[k] = ep;
            s.refractory[k] = refractory - i32::from(clamped);
        }
        let fired = self.vectors.above(s.v, self.v_fire);
        if fired != 0 {
            // The same test per lane (not the mask's bits), so that the reset stays a vector
            // select.
            for k in 0..LANES {
                let reset = s.v.0[k] > self.v_fire;
                s.v.0[k] = if reset { 0.0 } else { s.v.0[k] };
                s.refractory[k] = if reset { self.t_ref } else { s.refractory[k] };
            }
        }
        fired
    }
}

/// State of a population of LIF neurons simulated one step at a time, starting at rest.
///
/// Input currents are added with [`LifPopulation::add`] / [`LifPopulation::add_all`] and
/// consumed by the next [`LifPopulation::step`]. Only chunks of neurons that have received
/// some input are simulated: a neuron at rest with no input stays at rest bit for bit (every
/// term of the update is `0`), so skipping it changes nothing; conv neurons over the image
/// background are never touched.
#[derive(Clone, Debug)]
pub struct LifPopulation {
    step: LifStep,
    neurons: usize,
    /// State per group of [`LANES`] neurons (the last group padded with neurons that never
    /// receive input).
    lanes: Vec<LifLanes>,
    /// Input currents for the next step, padded like `lanes`.
    current: Vec<f32>,
    /// Whether a chunk has ever received input: bit `c % 64` of word `c / 64` (a bit set,
    /// so that waking a chunk is one store and resting chunks are skipped 64 at a time).
    awake: Vec<u64>,
}

impl LifPopulation {
    /// `neurons` neurons at rest.
    pub fn new(params: LifSpec, neurons: usize) -> Self {
        let chunks = neurons.div_ceil(CHUNK);
        Self {
            step: LifStep::new(&params),
            neurons,
            lanes: vec![LifLanes::default(); chunks * (CHUNK / LANES)],
            current: vec![0.0; chunks * CHUNK],
            awake: vec![0; chunks.div_ceil(64)],
        }
    }

    /// Adds `x` to the input current of neuron `i` for the next step.
    #[inline(always)]
    pub fn add(&mut self, i: usize, x: f32) {
        self.current[i] += x;
        self.wake(i / CHUNK);
    }

    /// Marks chunk `c` as having received input.
    #[inline(always)]
    fn wake(&mut self, c: usize) {
        self.awake[c / 64] |= 1 << (c % 64);
    }

    /// Adds `x[k]` to the input current of neuron `start + k` for the next step.
    #[inline(always)]
    pub fn add_slice(&mut self, start: usize, x: &[f32]) {
        for (c, &v) in self.current[start..start + x.len()].iter_mut().zip(x) {
            *c += v;
        }
        let last = (start + x.len()).max(start + 1) - 1;
        for c in start / CHUNK..=last / CHUNK {
            self.wake(c);
        }
    }

    /// Adds `x[i]` to the input current of every neuron `i` for the next step.
    pub fn add_all(&mut self, x: &[f32]) {
        for (c, &v) in self.current.iter_mut().zip(x) {
            *c += v;
        }
        for c in 0..self.neurons.div_ceil(CHUNK) {
            self.wake(c);
        }
    }

    /// Advances every neuron by one step `t > 0` with the input added since the last step
    /// (see [`LifStep::update`]), then clears the input. Calls `fire(i)` for every neuron
    /// that fires, in ascending order. (Step 0 of a population at rest is a no-op: leak of a
    /// zero state, no input, no spike.)
    #[inline(always)]
    pub fn step(&mut self, mut fire: impl FnMut(usize)) {
        let per_chunk = CHUNK / LANES;
        for (w, &word) in self.awake.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let c = w * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                let lanes = &mut self.lanes[c * per_chunk..(c + 1) * per_chunk];
                let current = &mut self.current[c * CHUNK..(c + 1) * CHUNK];
                for (g, (s, cur)) in lanes
                    .iter_mut()
                    .zip(current.chunks_exact_mut(LANES))
                    .enumerate()
                {
                    let cur: &mut [f32; LANES] = cur.try_into().expect("LANES currents");
                    let input = std::mem::replace(cur, [0.0; LANES]);
                    let mut fired = self.step.update(s, F32x8::from(input));
                    let lo = c * CHUNK + g * LANES;
                    while fired != 0 {
                        let i = lo + fired.trailing_zeros() as usize;
                        fired &= fired - 1;
                        // Padding neurons receive no input and cannot fire above a positive
                        // threshold; never report them.
                        if i < self.neurons {
                            fire(i);
                        }
                    }
                }
            }
        }
    }

    /// Membrane potentials of the neurons (for tests and inspection).
    pub fn potentials(&self) -> Vec<f32> {
        let mut v: Vec<f32> = self.lanes.iter().flat_map(|s| s.v.to_array()).collect();
        v.truncate(self.neurons);
        v
    }

    /// Synaptic states of the neurons (for tests and inspection).
    pub fn synaptic_states(&self) -> Vec<f32> {
        let mut ep: Vec<f32> = self.lanes.iter().flat_map(|s| s.ep.to_array()).collect();
        ep.truncate(self.neurons);
        ep
    }
}

/// Whether `/ τm` and `/ τs` may be taken as `* (1/τm)`, `* (1/τs)`: both time constants
/// are powers of two, where the two are identical for every `f32`.
pub fn exact_reciprocals(p: &LifSpec) -> bool {
    is_power_of_two(p.tau_m) && is_power_of_two(p.tau_s)
}

/// Whether `x` is an exact power of two (so `y / x == y * (1 / x)` for every `y`).
fn is_power_of_two(x: f32) -> bool {
    x > 0.0 && x.is_normal() && (1.0 / x).is_normal() && x.to_bits() & 0x007f_ffff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A single neuron driven by a constant current: the first spike time follows from the
    /// closed-form recursion, and the refractory clamp keeps at least 3 steps between spikes.
    #[test]
    fn constant_drive_fires_regularly() {
        let mut pop = LifPopulation::new(LifSpec::paper(1.0), 1);
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

    /// The update of one neuron straight from the spec (§1.1), scalar and with divisions:
    /// the obviously correct version of [`LifStep::update`].
    fn reference_step(p: &LifSpec, v: &mut f32, ep: &mut f32, r: &mut u32, i: f32) -> bool {
        *v -= *v / p.tau_m;
        *ep -= *ep / p.tau_s;
        *ep += i;
        *v += *ep / p.tau_s;
        if *r > 0 {
            *v = 0.0;
            *r -= 1;
        }
        let fired = *v > p.firing_level();
        if fired {
            *v = 0.0;
            *r = p.t_ref;
        }
        fired
    }

    /// The vector update equals the scalar reference bit for bit, with the reciprocal
    /// shortcut (powers of two) and with division (other time constants).
    #[test]
    fn vector_update_matches_the_scalar_reference() {
        assert!(is_power_of_two(64.0) && is_power_of_two(8.0) && is_power_of_two(0.5));
        assert!(!is_power_of_two(10.0) && !is_power_of_two(0.0) && !is_power_of_two(-8.0));
        let mut state = 0x1234_5678u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 1000) as f32 / 250.0 - 1.0
        };
        let odd = LifSpec {
            tau_m: 10.0,
            tau_s: 3.0,
            ..LifSpec::paper(0.9).strict()
        };
        for p in [LifSpec::paper(3.0), odd] {
            let step = LifStep::new(&p);
            assert_eq!(step.exact_reciprocal, p.tau_m == 64.0);
            let mut lanes = LifLanes::default();
            let (mut v, mut ep, mut r) = ([0.0f32; LANES], [0.0f32; LANES], [0u32; LANES]);
            for _ in 0..300 {
                let current: [f32; LANES] = std::array::from_fn(|_| next());
                let mask = step.update(&mut lanes, F32x8::from(current));
                let mut want = 0u32;
                for k in 0..LANES {
                    if reference_step(&p, &mut v[k], &mut ep[k], &mut r[k], current[k]) {
                        want |= 1 << k;
                    }
                }
                assert_eq!(mask, want);
                let bits = |x: [f32; LANES]| x.map(f32::to_bits);
                assert_eq!(bits(lanes.v.to_array()), bits(v));
                assert_eq!(bits(lanes.ep.to_array()), bits(ep));
                assert_eq!(lanes.refractory, r.map(|x| x as i32));
            }
        }
    }

    #[test]
    fn silent_without_input_and_resting_chunks_are_skipped() {
        let mut pop = LifPopulation::new(LifSpec::paper(0.1), 100);
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
        assert_eq!(pop.awake, vec![0b100]);
        assert!(
            pop.potentials()
                .iter()
                .enumerate()
                .all(|(i, &v)| v == 0.0 || (64..96).contains(&i))
        );
    }

    /// Chunked stepping equals the scalar reference applied to every neuron (with and without
    /// input), on a population that is not a multiple of the chunk size.
    #[test]
    fn chunked_step_matches_full_update() {
        let p = LifSpec::paper(0.7);
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
            let want: Vec<usize> = (0..n)
                .filter(|&i| reference_step(&p, &mut v[i], &mut ep[i], &mut r[i], current[i]))
                .collect();
            assert_eq!(got, want);
            assert_eq!(pop.potentials(), v);
            assert_eq!(pop.synaptic_states(), ep);
        }
    }
}
