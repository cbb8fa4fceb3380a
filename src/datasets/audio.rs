//! Auditory front end: a WAV recording (hound) → a mel-band spectrogram (rustfft) normalised to
//! `0..=1` on a log (dB) scale.
//!
//! Frames of `frame_ms` every `hop_ms`, Hann window, power spectrum; `bands` triangular filters
//! equally spaced on the mel scale (HTK: `mel = 2595 log10(1 + f/700)`) from `min_hz` to the
//! Nyquist frequency; `10 log10` of each band's energy, mapped to `0..=1` over the top
//! `dynamic_range_db` of the recording (the loudest band-frame is 1, anything `dynamic_range_db`
//! below it or quieter is 0).

use std::path::Path;
use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};

use crate::datasets::error::{DataError, Result};

/// Settings of the filter bank (every field optional in an experiment file).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontEndDef {
    /// Mel bands.
    pub bands: usize,
    /// Frame length in ms.
    pub frame_ms: f64,
    /// Frame step in ms.
    pub hop_ms: f64,
    /// Lowest filter edge in Hz.
    pub min_hz: f64,
    /// Levels kept below the loudest band-frame, in dB.
    pub dynamic_range_db: f64,
}

impl Default for FrontEndDef {
    fn default() -> Self {
        Self {
            bands: 32,
            frame_ms: 25.0,
            hop_ms: 10.0,
            min_hz: 60.0,
            dynamic_range_db: 50.0,
        }
    }
}

impl FrontEndDef {
    /// Checks the ranges; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.bands == 0 {
            return Err("audio.bands: must be at least 1".into());
        }
        for (name, v) in [
            ("frame_ms", self.frame_ms),
            ("hop_ms", self.hop_ms),
            ("dynamic_range_db", self.dynamic_range_db),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("audio.{name}: must be a positive number"));
            }
        }
        if !(self.min_hz.is_finite() && self.min_hz >= 0.0) {
            return Err("audio.min_hz: must be a number ≥ 0".into());
        }
        Ok(())
    }
}

/// A mono recording.
#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    /// Samples in `-1..1`.
    pub samples: Vec<f32>,
    /// Sample rate in Hz.
    pub sample_rate: u32,
}

/// Highest sample rate [`parse_wav`] accepts (the highest in common use), in Hz.
pub const MAX_SAMPLE_RATE: u32 = 384_000;

/// Reads a WAV file (integer PCM up to 32 bits or 32-bit float; channels averaged).
pub fn read_wav(path: &Path) -> Result<Recording> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    parse_wav(path, std::io::BufReader::new(file))
}

/// Parses a WAV stream; `path` names it in errors.
pub fn parse_wav(path: &Path, source: impl std::io::Read) -> Result<Recording> {
    let format = |detail: String| DataError::Format {
        path: path.to_path_buf(),
        detail,
    };
    let mut reader = hound::WavReader::new(source).map_err(|e| match e {
        // hound reports short files as I/O errors: only opening failures are I/O.
        hound::Error::IoError(source)
            if matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            DataError::io(path, source)
        }
        other => format(format!("not a readable WAV file: {other}")),
    })?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(format(format!(
            "{} channels at {} Hz",
            spec.channels, spec.sample_rate
        )));
    }
    // The front end's frames (and FFT) grow with the rate: a hostile header must not size them.
    if spec.sample_rate > MAX_SAMPLE_RATE {
        return Err(format(format!(
            "sample rate {} Hz above the {MAX_SAMPLE_RATE} Hz this front end reads",
            spec.sample_rate
        )));
    }
    let raw: std::result::Result<Vec<f32>, hound::Error> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().collect(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect()
        }
    };
    let raw = raw.map_err(|e| format(format!("bad or truncated WAV data: {e}")))?;
    let channels = usize::from(spec.channels);
    let samples = raw
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    Ok(Recording {
        samples,
        sample_rate: spec.sample_rate,
    })
}

/// Triangular mel filters for one sample rate and FFT size.
struct MelFilters {
    /// Per band: first bin and weights.
    bands: Vec<(usize, Vec<f32>)>,
}

fn hz_to_mel(hz: f64) -> f64 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

fn mel_to_hz(mel: f64) -> f64 {
    700.0 * (10f64.powf(mel / 2595.0) - 1.0)
}

impl MelFilters {
    fn new(opts: &FrontEndDef, sample_rate: u32, fft_len: usize) -> Self {
        let nyquist = f64::from(sample_rate) / 2.0;
        let (lo, hi) = (hz_to_mel(opts.min_hz.min(nyquist)), hz_to_mel(nyquist));
        let edges: Vec<f64> = (0..opts.bands + 2)
            .map(|k| mel_to_hz(lo + (hi - lo) * k as f64 / (opts.bands + 1) as f64))
            .collect();
        let bin_hz = f64::from(sample_rate) / fft_len as f64;
        let bins = fft_len / 2 + 1;
        let bands = edges
            .windows(3)
            .map(|e| {
                let weight = |bin: usize| {
                    let f = bin as f64 * bin_hz;
                    let w = if f <= e[1] {
                        (f - e[0]) / (e[1] - e[0])
                    } else {
                        (e[2] - f) / (e[2] - e[1])
                    };
                    w.max(0.0) as f32
                };
                let first = ((e[0] / bin_hz).floor() as usize).min(bins - 1);
                let last = ((e[2] / bin_hz).ceil() as usize).min(bins - 1);
                (first, (first..=last).map(weight).collect())
            })
            .collect();
        Self { bands }
    }
}

/// The normalised mel spectrogram of a recording: `frames × bands`, frame-major, in `0..=1`.
/// A recording shorter than one frame gives one (zero-padded) frame.
pub fn mel_spectrogram(rec: &Recording, opts: &FrontEndDef) -> Vec<Vec<f32>> {
    let rate = f64::from(rec.sample_rate);
    let frame = ((opts.frame_ms * rate / 1000.0).round() as usize).max(1);
    let hop = ((opts.hop_ms * rate / 1000.0).round() as usize).max(1);
    let fft_len = frame.next_power_of_two();
    let fft: Arc<dyn Fft<f32>> = FftPlanner::new().plan_fft_forward(fft_len);
    let filters = MelFilters::new(opts, rec.sample_rate, fft_len);
    let window: Vec<f32> = (0..frame)
        .map(|n| {
            let phase = 2.0 * std::f64::consts::PI * n as f64 / frame as f64;
            (0.5 - 0.5 * phase.cos()) as f32
        })
        .collect();
    let frames = 1 + rec.samples.len().saturating_sub(frame) / hop;
    let mut buf = vec![Complex::new(0.0f32, 0.0); fft_len];
    let mut db: Vec<Vec<f32>> = (0..frames)
        .map(|f| {
            buf.iter_mut().for_each(|c| *c = Complex::new(0.0, 0.0));
            let start = f * hop;
            for (k, w) in window.iter().enumerate() {
                let s = rec.samples.get(start + k).copied().unwrap_or(0.0);
                buf[k] = Complex::new(s * w, 0.0);
            }
            fft.process(&mut buf);
            filters
                .bands
                .iter()
                .map(|(first, weights)| {
                    let e: f32 = weights
                        .iter()
                        .zip(&buf[*first..])
                        .map(|(w, c)| w * c.norm_sqr())
                        .sum();
                    10.0 * (e + 1e-10).log10()
                })
                .collect()
        })
        .collect();
    let peak = db
        .iter()
        .flatten()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let range = opts.dynamic_range_db as f32;
    for v in db.iter_mut().flatten() {
        *v = ((*v - (peak - range)) / range).clamp(0.0, 1.0);
    }
    db
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, seconds: f64, rate: u32) -> Recording {
        let n = (seconds * f64::from(rate)) as usize;
        Recording {
            samples: (0..n)
                .map(|k| {
                    (0.5 * (2.0 * std::f64::consts::PI * hz * k as f64 / f64::from(rate)).sin())
                        as f32
                })
                .collect(),
            sample_rate: rate,
        }
    }

    /// A pure tone lights the band whose centre is nearest to it, in every frame.
    #[test]
    fn a_tone_lands_in_its_band() {
        let opts = FrontEndDef::default();
        let spec = mel_spectrogram(&tone(1000.0, 0.5, 8000), &opts);
        // 25 ms frames every 10 ms over 0.5 s: 1 + (4000 − 200) / 80 = 48 frames.
        assert_eq!((spec.len(), spec[0].len()), (48, 32));
        let (lo, hi) = (hz_to_mel(60.0), hz_to_mel(4000.0));
        let centre = |b: usize| mel_to_hz(lo + (hi - lo) * (b + 1) as f64 / 33.0);
        let nearest = (0..32)
            .min_by(|&a, &b| {
                (centre(a) - 1000.0)
                    .abs()
                    .total_cmp(&(centre(b) - 1000.0).abs())
            })
            .unwrap();
        for frame in &spec {
            let loudest = (0..32)
                .max_by(|&a, &b| frame[a].total_cmp(&frame[b]))
                .unwrap();
            assert_eq!(loudest, nearest);
            assert!(frame[loudest] > 0.95 && frame[0] == 0.0, "{frame:?}");
        }
    }

    #[test]
    fn wav_files_are_read_and_bad_ones_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for s in [16384i16, 0, -32768, -32768] {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        let rec = read_wav(&p).unwrap();
        assert_eq!(rec.samples, vec![0.25, -1.0]);
        assert_eq!(rec.sample_rate, 8000);
        // Truncated data and garbage name the file.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        let e = read_wav(&p).unwrap_err().to_string();
        assert!(
            e.starts_with(&p.display().to_string()) && e.contains("WAV"),
            "{e}"
        );
        std::fs::write(&p, b"RIFF0000nonsense").unwrap();
        let e = read_wav(&p).unwrap_err().to_string();
        assert!(e.contains("not a readable WAV file"), "{e}");
    }
}
