//! Rate encoding of pixel intensities into spike trains.
//!
//! Pixel `p ∈ 0..=255` fires at rate `q = p / (scale · 255)` spikes per step (`scale` =
//! [`DEFAULT_RATE_SCALE`] = 5.5 in the paper) over steps `t = 1..T−1`; step 0 never spikes and
//! `p = 0` never spikes. Two spike processes ([`SpikeProcess`]):
//! - Bernoulli (the paper's): each step fires independently with probability `q`, sampled
//!   exactly in time proportional to the number of spikes (the gaps between spikes are
//!   geometric, `gap = ⌊ln U / ln(1 − q)⌋ + 1` with `U` uniform in `(0, 1]`);
//! - regular: evenly spaced spikes at the same rate with a random phase `φ ∈ [0, 1)` per pixel,
//!   step `t` firing where `⌊φ + q·t⌋ > ⌊φ + q·(t − 1)⌋`: the count is `q·(T − 1)` to within
//!   one spike, without the Bernoulli count noise (±`√(q(1−q)(T−1))`).
//!
//! Determinism: every (sample, epoch) gets its own ChaCha8 stream seeded from the encoder's
//! seed and the indices, so no spike train has to be stored and any sample can be encoded
//! again, in any order, on any thread, with the same result.

use crate::spikes::SpikeRaster;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Default intensity scale: a white pixel fires with probability 1/5.5 per step.
pub const DEFAULT_RATE_SCALE: f32 = 5.5;

/// When spike trains are redrawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncodingMode {
    /// One spike train per sample, reused every epoch (the authors' choice). The random
    /// stream depends on (seed, sample index) only.
    FixedPerSample,
    /// A new spike train every epoch. The random stream depends on (seed, epoch, sample index).
    FreshPerEpoch,
}

/// How a pixel's spikes are placed in time at its rate (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpikeProcess {
    /// Each step fires independently with probability `q` (the paper's encoding).
    #[default]
    Bernoulli,
    /// Evenly spaced spikes at rate `q` with a random phase per pixel (count noise-free).
    Regular,
}

/// Deterministic rate encoder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateEncoder {
    /// Number of time steps `T`.
    pub steps: usize,
    /// Intensity scale: `q = p / (scale · 255)`. Values giving `q ≥ 1` fire at every step
    /// `1..T`; non-positive or NaN scales fire never.
    pub scale: f32,
    /// Base seed.
    pub seed: u64,
    /// Whether trains are fixed per sample or redrawn each epoch.
    pub mode: EncodingMode,
    /// How spikes are placed in time.
    pub process: SpikeProcess,
}

impl RateEncoder {
    /// A Bernoulli encoder with the default scale.
    pub fn new(steps: usize, seed: u64, mode: EncodingMode) -> Self {
        RateEncoder {
            steps,
            scale: DEFAULT_RATE_SCALE,
            seed,
            mode,
            process: SpikeProcess::Bernoulli,
        }
    }

    /// This encoder with spike process `process`.
    pub fn with_process(self, process: SpikeProcess) -> Self {
        Self { process, ..self }
    }

    /// The random stream of one (sample, epoch).
    fn rng(&self, sample_index: u64, epoch: u64) -> ChaCha8Rng {
        let (tag, epoch) = match self.mode {
            EncodingMode::FixedPerSample => (0u64, 0u64),
            EncodingMode::FreshPerEpoch => (1u64, epoch),
        };
        let mut seed = [0u8; 32];
        for (chunk, word) in seed
            .chunks_exact_mut(8)
            .zip([self.seed, sample_index, epoch, tag])
        {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        ChaCha8Rng::from_seed(seed)
    }

    /// Calls `f(neuron, step)` for every spike, neuron after neuron, steps ascending.
    /// This fixes the order of random draws, so the dense and event outputs agree.
    fn for_each_spike(
        &self,
        intensities: impl Iterator<Item = f64>,
        sample_index: u64,
        epoch: u64,
        mut f: impl FnMut(usize, usize),
    ) {
        let steps = self.steps;
        if steps < 2 || self.scale.is_nan() || self.scale <= 0.0 {
            return;
        }
        let mut rng = self.rng(sample_index, epoch);
        let denom = f64::from(self.scale) * 255.0;
        for (n, p) in intensities.enumerate() {
            let q = p / denom;
            if q <= 0.0 {
                continue;
            }
            if q >= 1.0 {
                (1..steps).for_each(|t| f(n, t));
                continue;
            }
            if self.process == SpikeProcess::Regular {
                let phase = uniform_unit(&mut rng);
                regular_spikes(phase, q, steps, |t| f(n, t));
                continue;
            }
            let log_keep = (-q).ln_1p(); // ln(1 − q) < 0
            let mut t = 0usize;
            loop {
                // U in (0, 1].
                let u = 1.0 - uniform_unit(&mut rng);
                // Saturating float-to-int cast; the quotient is ≥ 0.
                let gap = (u.ln() / log_keep) as usize;
                t = t.saturating_add(gap).saturating_add(1);
                if t >= steps {
                    break;
                }
                f(n, t);
            }
        }
    }

    /// Writes the dense raster of one sample, time-major: `out[t · N + n]` is 1.0 when input
    /// neuron `n` (pixel `n`) spikes at step `t`, else 0.0. `out` is zero-filled first.
    ///
    /// # Panics
    /// If `out.len() != self.steps * pixels.len()` (a caller bug, not a data problem).
    pub fn encode_into(&self, pixels: &[u8], sample_index: u64, epoch: u64, out: &mut [f32]) {
        let n_in = pixels.len();
        assert_eq!(
            out.len(),
            self.steps * n_in,
            "raster buffer must hold steps × inputs values"
        );
        out.fill(0.0);
        let intensities = pixels.iter().map(|&p| f64::from(p));
        self.for_each_spike(intensities, sample_index, epoch, |n, t| {
            out[t * n_in + n] = 1.0
        });
    }

    /// The spike raster of one sample (events grouped by time step): the spikes of
    /// [`RateEncoder::encode_into`], without the dense buffer.
    pub fn encode_raster(&self, pixels: &[u8], sample_index: u64, epoch: u64) -> SpikeRaster {
        let intensities = pixels.iter().map(|&p| f64::from(p));
        self.raster_of(intensities, pixels.len(), sample_index, epoch)
    }

    /// [`RateEncoder::encode_raster`] for real-valued intensities in `0..=255` (distorted
    /// images); an intensity equal to a `u8` pixel gives the same spikes as that pixel.
    pub fn encode_intensities_raster(
        &self,
        intensities: &[f32],
        sample_index: u64,
        epoch: u64,
    ) -> SpikeRaster {
        let values = intensities.iter().map(|&p| f64::from(p));
        self.raster_of(values, intensities.len(), sample_index, epoch)
    }

    fn raster_of(
        &self,
        intensities: impl Iterator<Item = f64>,
        neurons: usize,
        sample_index: u64,
        epoch: u64,
    ) -> SpikeRaster {
        let mut events = Vec::new();
        self.for_each_spike(intensities, sample_index, epoch, |n, t| {
            // `t < steps` and `n < neurons`; rasters beyond u32::MAX are not meaningful.
            events.push((t as u32, n as u32));
        });
        SpikeRaster::from_events(self.steps, neurons, &events)
    }

    /// The spike steps of one sample, per input neuron, ascending. Same spikes as
    /// [`RateEncoder::encode_into`] for the same arguments.
    pub fn encode_events(&self, pixels: &[u8], sample_index: u64, epoch: u64) -> Vec<Vec<u32>> {
        let mut events = vec![Vec::new(); pixels.len()];
        let intensities = pixels.iter().map(|&p| f64::from(p));
        self.for_each_spike(intensities, sample_index, epoch, |n, t| {
            // `t < steps`; trains longer than u32::MAX steps are not meaningful.
            events[n].push(u32::try_from(t).unwrap_or(u32::MAX));
        });
        events
    }
}

/// Calls `f(t)` for every step `t` in `1..steps` where `level(t) = ⌊phase + q·t⌋` exceeds
/// `level(t − 1)`, in time proportional to the number of spikes (`0 < q < 1`): `level` does not
/// decrease in `t`, so from each spike the next is guessed from the rate and the guess moved
/// to the first step whose level is higher.
fn regular_spikes(phase: f64, q: f64, steps: usize, mut f: impl FnMut(usize)) {
    let level = |t: usize| (phase + q * t as f64).floor();
    let (mut t, mut fired) = (0usize, level(0));
    loop {
        // Saturating float-to-int cast; the quotient is ≥ 0 up to rounding.
        let mut next = (((fired + 1.0 - phase) / q).ceil() as usize).max(t + 1);
        while next > t + 1 && level(next - 1) > fired {
            next -= 1;
        }
        while next < steps && level(next) <= fired {
            next += 1;
        }
        if next >= steps {
            return;
        }
        fired = level(next);
        f(next);
        t = next;
    }
}

/// A uniform draw in `[0, 1)` from 53 random bits.
fn uniform_unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixels() -> Vec<u8> {
        (0..64)
            .map(|i| (i * 4) as u8)
            .chain([255, 0, 128])
            .collect()
    }

    #[test]
    fn step_zero_and_black_pixels_are_silent() {
        let enc = RateEncoder::new(300, 7, EncodingMode::FixedPerSample);
        let px = pixels();
        let ev = enc.encode_events(&px, 3, 0);
        for (n, train) in ev.iter().enumerate() {
            assert!(!train.contains(&0));
            if px[n] == 0 {
                assert!(train.is_empty());
            }
            assert!(train.windows(2).all(|w| w[0] < w[1]));
            assert!(train.iter().all(|&t| (t as usize) < enc.steps));
        }
        assert!(ev.iter().map(Vec::len).sum::<usize>() > 100);
    }

    #[test]
    fn deterministic_and_modes() {
        let px = pixels();
        let fixed = RateEncoder::new(200, 11, EncodingMode::FixedPerSample);
        assert_eq!(
            fixed.encode_events(&px, 5, 0),
            fixed.encode_events(&px, 5, 0)
        );
        assert_eq!(
            fixed.encode_events(&px, 5, 0),
            fixed.encode_events(&px, 5, 9)
        );
        assert_ne!(
            fixed.encode_events(&px, 5, 0),
            fixed.encode_events(&px, 6, 0)
        );
        let other_seed = RateEncoder { seed: 12, ..fixed };
        assert_ne!(
            fixed.encode_events(&px, 5, 0),
            other_seed.encode_events(&px, 5, 0)
        );

        let fresh = RateEncoder::new(200, 11, EncodingMode::FreshPerEpoch);
        assert_eq!(
            fresh.encode_events(&px, 5, 2),
            fresh.encode_events(&px, 5, 2)
        );
        assert_ne!(
            fresh.encode_events(&px, 5, 1),
            fresh.encode_events(&px, 5, 2)
        );
    }

    #[test]
    fn dense_and_events_agree() {
        let px = pixels();
        let enc = RateEncoder::new(120, 3, EncodingMode::FreshPerEpoch);
        let n = px.len();
        let mut out = vec![7.0f32; enc.steps * n];
        enc.encode_into(&px, 4, 1, &mut out);
        let ev = enc.encode_events(&px, 4, 1);
        for t in 0..enc.steps {
            for i in 0..n {
                let v = out[t * n + i];
                assert!(v == 0.0 || v == 1.0);
                assert_eq!(v == 1.0, ev[i].contains(&(t as u32)), "t={t} n={i}");
            }
        }
        assert_eq!(
            enc.encode_raster(&px, 4, 1),
            SpikeRaster::from_dense(&out, enc.steps, n)
        );
    }

    #[test]
    fn real_intensities_match_pixels() {
        let px = pixels();
        let enc = RateEncoder::new(150, 2, EncodingMode::FreshPerEpoch);
        let a = enc.encode_raster(&px, 9, 3);
        let real: Vec<f32> = px.iter().map(|&p| f32::from(p)).collect();
        assert_eq!(enc.encode_intensities_raster(&real, 9, 3), a);
        let brighter: Vec<f32> = real.iter().map(|p| (p * 1.5).min(255.0)).collect();
        let b = enc.encode_intensities_raster(&brighter, 9, 3);
        assert!(b.num_spikes() > a.num_spikes());
    }

    #[test]
    fn empirical_rate_of_white_pixel() {
        let steps = 200_001usize;
        let trials = (steps - 1) as f64;
        let q = 1.0 / f64::from(DEFAULT_RATE_SCALE);
        for seed in 0..3 {
            let enc = RateEncoder::new(steps, seed, EncodingMode::FixedPerSample);
            let count = enc.encode_events(&[255], 0, 0)[0].len() as f64;
            let se = (trials * q * (1.0 - q)).sqrt();
            assert!(
                (count - trials * q).abs() < 3.0 * se,
                "seed {seed}: {count} spikes, expected {} ± {se}",
                trials * q
            );
        }
    }

    #[test]
    fn extreme_scales_and_short_trains() {
        let always = RateEncoder {
            scale: 1.0,
            ..RateEncoder::new(5, 0, EncodingMode::FixedPerSample)
        };
        assert_eq!(
            always.encode_events(&[255, 0], 0, 0),
            vec![vec![1, 2, 3, 4], vec![]]
        );
        let never = RateEncoder {
            scale: 0.0,
            ..always
        };
        assert_eq!(never.encode_events(&[255], 0, 0), vec![Vec::<u32>::new()]);
        let nan = RateEncoder {
            scale: f32::NAN,
            ..always
        };
        assert_eq!(nan.encode_events(&[255], 0, 0), vec![Vec::<u32>::new()]);
        let one_step = RateEncoder::new(1, 0, EncodingMode::FixedPerSample);
        let mut out = vec![0.0; 2];
        one_step.encode_into(&[255, 255], 0, 0, &mut out);
        assert_eq!(out, vec![0.0, 0.0]);
    }

    #[test]
    fn regular_trains_fire_at_the_rate_without_count_noise() {
        let steps = 400;
        let bernoulli = RateEncoder::new(steps, 7, EncodingMode::FixedPerSample);
        let regular = bernoulli.with_process(SpikeProcess::Regular);
        let px = pixels();
        let ev = regular.encode_events(&px, 3, 0);
        for (n, train) in ev.iter().enumerate() {
            let q = f64::from(px[n]) / (f64::from(DEFAULT_RATE_SCALE) * 255.0);
            let expected = (q.min(1.0) * (steps - 1) as f64).round() as i64;
            assert!(
                (train.len() as i64 - expected).abs() <= 1,
                "pixel {n}: {train:?}"
            );
            assert!(!train.contains(&0) && train.iter().all(|&t| (t as usize) < steps));
            assert!(train.windows(2).all(|w| w[0] < w[1]));
            // Evenly spaced: gaps differ by at most one step.
            let gaps: Vec<u32> = train.windows(2).map(|w| w[1] - w[0]).collect();
            if let (Some(lo), Some(hi)) = (gaps.iter().min(), gaps.iter().max()) {
                assert!(hi - lo <= 1, "pixel {n}: gaps {gaps:?}");
            }
        }
        // The same steps as a scan of every step (the slow, obviously correct version).
        for phase in [0.0, 0.3, 0.999_999] {
            for q in [0.001, 0.05, 0.181_818, 0.5, 0.999] {
                let mut fast = Vec::new();
                regular_spikes(phase, q, steps, |t| fast.push(t));
                let level = |t: usize| (phase + q * t as f64).floor();
                let slow: Vec<usize> = (1..steps).filter(|&t| level(t) > level(t - 1)).collect();
                assert_eq!(fast, slow, "phase {phase}, q {q}");
            }
        }
        // Deterministic, and the dense, raster and event forms agree.
        assert_eq!(ev, regular.encode_events(&px, 3, 0));
        assert_eq!(regular.encode_raster(&px, 3, 0).times(), ev);
        // Phases are random: two pixels of equal intensity fire at different steps.
        let same = regular.encode_events(&[128, 128], 3, 0);
        assert_ne!(same[0], same[1]);
        // The Bernoulli default is unchanged by the option's existence.
        assert_ne!(bernoulli.encode_events(&px, 3, 0), ev);
    }
}
