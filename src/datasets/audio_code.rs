//! Spike codes for band signals (a spectrogram from [`crate::datasets::audio`]):
//!
//! - **BSA** (Ben's Spiker Algorithm, Schrauwen & Van Campenhout 2003) as the authors encode
//!   TI46 (spec §1.2): a 24-tap kernel `h_i ∝ exp(−(i − 12)²/25)` normalised to sum 1,
//!   threshold 0.6, a spike at step `t + 1` whenever the kernel placed at `t` fits the
//!   remaining signal better than nothing, which is then subtracted. A band at level `x` fires
//!   about `rate · x` spikes per step.
//! - **Delta** (send-on-delta): per band an "up" and a "down" channel; a spike whenever the
//!   level has risen (fallen) by `delta` since that channel's last spike, at most one per step.
//!
//! Time: each frame holds for `hold` steps, or with `hold = 0` every recording is stretched
//! over all `T` steps (time-normalised). With `slices = K > 1` the channels are repeated `K`
//! times and a spike of step `t` goes to copy `⌊t K / T⌋`, so that the input channel also says
//! *when* in the recording a band was active.

use serde::{Deserialize, Serialize};

use crate::spikes::SpikeRaster;

/// Which code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AudioCode {
    /// Ben's Spiker Algorithm (the authors' TI46 code).
    #[default]
    Bsa,
    /// Send-on-delta with up and down channels.
    Delta,
}

/// Settings of the spike code.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioCodeDef {
    /// Which code.
    #[serde(default)]
    pub code: AudioCode,
    /// BSA: spikes per step of a band at level 1.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// BSA: the fit threshold (the authors: 0.6).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Delta: level change per spike.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// Steps per frame; 0 stretches every recording over all steps.
    #[serde(default)]
    pub hold: usize,
    /// Copies of the channels, one per slice of the simulation.
    #[serde(default = "one")]
    pub slices: usize,
}

fn default_rate() -> f64 {
    0.25
}
fn default_threshold() -> f64 {
    0.6
}
fn default_delta() -> f64 {
    0.1
}
fn one() -> usize {
    1
}

impl Default for AudioCodeDef {
    fn default() -> Self {
        Self {
            code: AudioCode::Bsa,
            rate: default_rate(),
            threshold: default_threshold(),
            delta: default_delta(),
            hold: 0,
            slices: 1,
        }
    }
}

/// Taps of the BSA kernel.
pub const BSA_TAPS: usize = 24;

impl AudioCodeDef {
    /// Checks the ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("rate", self.rate),
            ("threshold", self.threshold),
            ("delta", self.delta),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("audio.{name}: must be a positive number"));
            }
        }
        if self.slices == 0 {
            return Err("audio.slices: must be at least 1".into());
        }
        Ok(())
    }

    /// Input channels for `bands` bands.
    pub fn channels(&self, bands: usize) -> usize {
        let per_slice = match self.code {
            AudioCode::Bsa => bands,
            AudioCode::Delta => 2 * bands,
        };
        per_slice * self.slices
    }

    /// The spike raster (`steps` steps) of a spectrogram `frames × bands` in `0..=1`.
    pub fn encode(&self, spectrogram: &[Vec<f32>], steps: usize) -> SpikeRaster {
        let bands = spectrogram.first().map_or(0, Vec::len);
        let per_slice = self.channels(bands) / self.slices;
        let mut events: Vec<(u32, u32)> = Vec::new();
        let mut emit = |t: usize, channel: usize| {
            if t < steps {
                let slice = t * self.slices / steps;
                events.push((t as u32, (slice * per_slice + channel) as u32));
            }
        };
        for band in 0..bands {
            let signal = self.band_signal(spectrogram, band, steps);
            match self.code {
                AudioCode::Bsa => {
                    for t in bsa(&signal, self.rate, self.threshold) {
                        emit(t, band);
                    }
                }
                AudioCode::Delta => {
                    for (t, up) in send_on_delta(&signal, self.delta) {
                        emit(t, 2 * band + usize::from(!up));
                    }
                }
            }
        }
        SpikeRaster::from_events(steps, self.channels(bands), &events)
    }

    /// The level of `band` at every step (frames held or stretched, see the module docs).
    fn band_signal(&self, spectrogram: &[Vec<f32>], band: usize, steps: usize) -> Vec<f64> {
        let frames = spectrogram.len();
        (0..steps)
            .map(|t| {
                let f = t.checked_div(self.hold).unwrap_or(t * frames / steps);
                spectrogram.get(f).map_or(0.0, |fr| f64::from(fr[band]))
            })
            .collect()
    }
}

/// The normalised BSA kernel.
fn bsa_kernel() -> [f64; BSA_TAPS] {
    let mut h = [0.0; BSA_TAPS];
    for (i, v) in h.iter_mut().enumerate() {
        let d = i as f64 - 12.0;
        *v = (-d * d / 25.0).exp();
    }
    let sum: f64 = h.iter().sum();
    h.map(|v| v / sum)
}

/// BSA spike steps of `level · rate` (each spike at its kernel position + 1); the rate of a
/// constant level comes out slightly above `level · rate` (greedy fit).
pub fn bsa(level: &[f64], rate: f64, threshold: f64) -> Vec<usize> {
    let h = bsa_kernel();
    let mut s: Vec<f64> = level.iter().map(|v| v * rate).collect();
    let mut spikes = Vec::new();
    for t in 0..s.len() {
        let window = &mut s[t..(t + BSA_TAPS).min(level.len())];
        let (mut with, mut without) = (0.0, 0.0);
        for (v, k) in window.iter().zip(&h) {
            with += (v - k).abs();
            without += v.abs();
        }
        if with <= without - threshold {
            for (v, k) in window.iter_mut().zip(&h) {
                *v -= k;
            }
            spikes.push(t + 1);
        }
    }
    spikes
}

/// Send-on-delta spikes `(step, up)` of `level`, at most one per step.
pub fn send_on_delta(level: &[f64], delta: f64) -> Vec<(usize, bool)> {
    let (mut up_ref, mut down_ref) = (0.0, 0.0);
    let mut spikes = Vec::new();
    for (t, &v) in level.iter().enumerate() {
        if v - up_ref >= delta {
            up_ref += delta;
            down_ref = up_ref;
            spikes.push((t, true));
        } else if down_ref - v >= delta {
            down_ref -= delta;
            up_ref = down_ref;
            spikes.push((t, false));
        }
    }
    spikes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A constant level fires about `rate · level` spikes per step, nothing fires on silence,
    /// and a weak level stays below BSA's threshold.
    #[test]
    fn bsa_rate_follows_the_level() {
        let steps = 2000;
        let n = |level: f64| bsa(&vec![level; steps], 0.25, 0.6).len() as f64 / steps as f64;
        // BSA is greedy: it overshoots a little (0.284 and 0.17 here).
        assert!((n(1.0) - 0.25).abs() < 0.05, "{}", n(1.0));
        assert!((n(0.6) - 0.15).abs() < 0.04, "{}", n(0.6));
        assert!(n(1.0) > n(0.6) && n(0.6) > n(0.3));
        assert_eq!(n(0.0), 0.0);
        assert_eq!(n(0.1), 0.0);
        let h = bsa_kernel();
        assert!((h.iter().sum::<f64>() - 1.0).abs() < 1e-12 && h[12] > h[11] && h[11] == h[13]);
    }

    #[test]
    fn delta_tracks_rises_and_falls() {
        let level = [0.0, 0.25, 0.25, 0.25, 0.1, 0.0];
        // +0.1 at steps 1 and 2 (one per step), then falls 0.2→0.1 at 4 and 0.1→0.0 at 5.
        assert_eq!(
            send_on_delta(&level, 0.1),
            vec![(1, true), (2, true), (4, false), (5, false)]
        );
    }

    #[test]
    fn slices_and_stretching_place_spikes_by_time() {
        // Two frames, one band: loud then silent, stretched over 8 steps in 2 slices.
        let spec = vec![vec![1.0f32], vec![0.0]];
        let opts = AudioCodeDef {
            code: AudioCode::Delta,
            delta: 0.5,
            slices: 2,
            ..AudioCodeDef::default()
        };
        let r = opts.encode(&spec, 8);
        assert_eq!((r.steps(), r.neurons()), (8, 4));
        // Up spikes at steps 0 and 1 (slice 0, channel 0); down at 4 and 5 (slice 1, channel 3).
        let times = r.times();
        assert_eq!(times[0], vec![0, 1]);
        assert_eq!(times[3], vec![4, 5]);
        assert_eq!(r.num_spikes(), 4);
        let held = AudioCodeDef { hold: 3, ..opts };
        // Held 3 steps per frame: loud for steps 0–2, silent from 3 on.
        assert_eq!(held.encode(&spec, 8).times()[3], vec![4]);
    }
}
