//! Data augmentation of 28×28 training images by a random displacement field: scaling,
//! rotation and Simard et al.'s (2003) elastic distortion, as the authors' CNN run used
//! (inherited from zhxfl/CUDA-CNN, `cuApplyRandom` / `g_generateDistortionMap` /
//! `g_applyDistortionMap`; spec §1.2, §5.1, §8.13).
//!
//! A [`Distortion`] is a dense field `(Δrow, Δcol)` per output pixel, the sum of
//! - elastic: per-pixel `U(−1, 1)` fields for each axis, convolved with the 21×21 Gaussian
//!   `k(dx, dy) = exp(−(dx² + dy²) / 2σ²) / (2πσ)` (CUDA-CNN's unnormalised kernel, window
//!   radius ⌈2.5σ⌉ = 10 for σ = 4; samples outside the image are 0) and multiplied by α.
//!   With σ = 4 and α = 3.4 the displacement has a standard deviation of about 0.55 pixel in the
//!   image centre. The kernel is separable, `k = g(dx)·g(dy)` with `g(d) = exp(−d²/2σ²)/√(2πσ)`,
//!   so the blur is two 1-D passes;
//! - scaling: `Δcol += s_h·(col − 14)`, `Δrow += s_v·(row − 14)` with `s_h`, `s_v` drawn
//!   independently from `U(−scale, scale)` (per axis, as in Simard's and O'Neill's code from
//!   which CUDA-CNN's is derived);
//! - rotation by `θ ~ U(−rotation, rotation)` about pixel (14, 14).
//!
//! An output pixel takes the input at `(row − Δrow, col − Δcol)` by bilinear interpolation,
//! pixels outside the image counting as background (0), and is clamped to `[0, 255]`.
//! Intensities stay real-valued (the rate encoder takes them as they are): CUDA-CNN distorts
//! the pixel values mapped to (−1, 1) with background −1 and maps them back linearly, which is
//! the same as distorting the 0…255 intensities with background 0.
//!
//! Differences from the CUDA-CNN code as published: there the scale factors and the angle
//! reuse the first elastic random number (so they are correlated with it and with each other)
//! and the vertical elastic field aliases the horizontal one for the first image of a batch;
//! those look like bugs and are not reproduced. A bilinear source with any corner outside the
//! image is background there; here only the outside corners count as 0.
//!
//! Every field is drawn from its own ChaCha8 stream seeded by (seed, epoch) for
//! [`FieldMode::PerEpoch`] (the authors: one field for every training image of an epoch) or
//! by (seed, epoch, sample index) for [`FieldMode::PerSample`], so it is reproducible in any
//! order and after a resume.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Side of the images the distortion works on.
pub const SIDE: usize = 28;
const PIXELS: usize = SIDE * SIDE;
/// Centre of scaling and rotation (CUDA-CNN's `ImgSize / 2`).
const MID: f32 = (SIDE / 2) as f32;
/// Largest accepted elastic σ (a wider blur would reach beyond the image anyway).
const MAX_SIGMA: f64 = 14.0;

/// Which images share a distortion field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldMode {
    /// One field per epoch, applied to every training image of the epoch (the authors).
    PerEpoch,
    /// A new field for every image in every epoch.
    PerSample,
}

/// The `[augmentation]` table of an experiment definition.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentDef {
    /// Largest relative scale change per axis (0.12: factors in [0.88, 1.12]).
    pub scale: f64,
    /// Largest rotation angle in degrees.
    pub rotation_deg: f64,
    /// Elastic displacement scale α (CUDA-CNN's `DISTORTION`).
    pub elastic_alpha: f64,
    /// Elastic smoothing σ in pixels.
    pub elastic_sigma: f64,
    /// One field per epoch or per sample.
    pub field: FieldMode,
}

impl AugmentDef {
    /// Checks value ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.scale.is_finite() && (0.0..1.0).contains(&self.scale)) {
            return Err(format!(
                "augmentation.scale: must be in [0, 1) (a fraction, 0.12 for 12 %), got {}",
                self.scale
            ));
        }
        if !(self.rotation_deg.is_finite() && (0.0..=180.0).contains(&self.rotation_deg)) {
            return Err(format!(
                "augmentation.rotation_deg: must be in [0, 180], got {}",
                self.rotation_deg
            ));
        }
        if !(self.elastic_alpha.is_finite() && self.elastic_alpha >= 0.0) {
            return Err(format!(
                "augmentation.elastic_alpha: must be a number ≥ 0, got {}",
                self.elastic_alpha
            ));
        }
        if !(self.elastic_sigma.is_finite()
            && self.elastic_sigma > 0.0
            && self.elastic_sigma <= MAX_SIGMA)
        {
            return Err(format!(
                "augmentation.elastic_sigma: must be in (0, {MAX_SIGMA}], got {}",
                self.elastic_sigma
            ));
        }
        Ok(())
    }

    /// The field for image `sample_index` in 0-based `epoch` under base `seed`.
    pub fn field_for(&self, seed: u64, epoch: u64, sample_index: u64) -> Distortion {
        let (tag, sample) = match self.field {
            FieldMode::PerEpoch => (2u64, 0u64),
            FieldMode::PerSample => (3u64, sample_index),
        };
        let mut bytes = [0u8; 32];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip([seed, sample, epoch, tag]) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        Distortion::random(self, &mut ChaCha8Rng::from_seed(bytes))
    }
}

/// `U(−1, 1)` from 53 random bits.
fn uniform_pm1(rng: &mut impl Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (2.0 / (1u64 << 53) as f64) - 1.0
}

/// The 1-D factor `g(d) = exp(−d²/2σ²)/√(2πσ)`, `d = −r..=r`, `r = ⌈2.5σ⌉`.
fn gaussian_factor(sigma: f64) -> Vec<f32> {
    let radius = (2.5 * sigma).ceil() as i64;
    let norm = (2.0 * std::f64::consts::PI * sigma).sqrt();
    (-radius..=radius)
        .map(|d| ((-(d * d) as f64 / (2.0 * sigma * sigma)).exp() / norm) as f32)
        .collect()
}

/// Convolves the `SIDE × SIDE` field with `g(dx)·g(dy)` (zero outside), in two 1-D passes.
fn separable_blur(field: &[f32], g: &[f32]) -> Vec<f32> {
    let r = (g.len() / 2) as isize;
    let side = SIDE as isize;
    let pass = |src: &[f32], along_rows: bool| -> Vec<f32> {
        let mut out = vec![0.0f32; PIXELS];
        for row in 0..side {
            for col in 0..side {
                let mut acc = 0.0f32;
                for (k, &w) in g.iter().enumerate() {
                    let d = k as isize - r;
                    let (rr, cc) = if along_rows {
                        (row, col + d)
                    } else {
                        (row + d, col)
                    };
                    if (0..side).contains(&rr) && (0..side).contains(&cc) {
                        acc += w * src[(rr * side + cc) as usize];
                    }
                }
                out[(row * side + col) as usize] = acc;
            }
        }
        out
    };
    pass(&pass(field, true), false)
}

/// A dense displacement field for `SIDE × SIDE` images.
#[derive(Clone, Debug, PartialEq)]
pub struct Distortion {
    /// Row displacement of every output pixel.
    d_row: Vec<f32>,
    /// Column displacement of every output pixel.
    d_col: Vec<f32>,
}

impl Distortion {
    /// Draws elastic fields, scale factors and angle from `rng` (in that order).
    pub fn random(cfg: &AugmentDef, rng: &mut impl Rng) -> Self {
        let mut horizontal: Vec<f32> = (0..PIXELS).map(|_| uniform_pm1(rng) as f32).collect();
        let mut vertical: Vec<f32> = (0..PIXELS).map(|_| uniform_pm1(rng) as f32).collect();
        let scale_h = cfg.scale * uniform_pm1(rng);
        let scale_v = cfg.scale * uniform_pm1(rng);
        let angle = (cfg.rotation_deg * uniform_pm1(rng)).to_radians();
        if cfg.elastic_alpha > 0.0 {
            let g = gaussian_factor(cfg.elastic_sigma);
            let alpha = cfg.elastic_alpha as f32;
            horizontal = separable_blur(&horizontal, &g);
            vertical = separable_blur(&vertical, &g);
            horizontal.iter_mut().for_each(|v| *v *= alpha);
            vertical.iter_mut().for_each(|v| *v *= alpha);
        } else {
            horizontal.fill(0.0);
            vertical.fill(0.0);
        }
        let mut field = Self {
            d_row: vertical,
            d_col: horizontal,
        };
        field.add_affine(scale_h, scale_v, angle);
        field
    }

    /// Adds per-axis scaling and a rotation by `angle` radians about (`MID`, `MID`).
    fn add_affine(&mut self, scale_h: f64, scale_v: f64, angle: f64) {
        let (sin, cos) = angle.sin_cos();
        for row in 0..SIDE {
            for col in 0..SIDE {
                let i = row * SIDE + col;
                let y = row as f64 - f64::from(MID);
                let x = col as f64 - f64::from(MID);
                self.d_col[i] += (scale_h * x + x - x * cos - y * sin) as f32;
                self.d_row[i] += (scale_v * y + y - y * cos + x * sin) as f32;
            }
        }
    }

    /// Warps one `SIDE × SIDE` image (intensities 0…255) into `out`.
    ///
    /// # Panics
    /// If `pixels` or `out` does not hold `SIDE × SIDE` values (a caller bug).
    pub fn apply(&self, pixels: &[u8], out: &mut [f32]) {
        assert_eq!(pixels.len(), PIXELS, "distortion needs 28×28 images");
        assert_eq!(
            out.len(),
            PIXELS,
            "distortion output must hold 28×28 values"
        );
        let at = |r: i64, c: i64| -> f32 {
            if (0..SIDE as i64).contains(&r) && (0..SIDE as i64).contains(&c) {
                f32::from(pixels[r as usize * SIDE + c as usize])
            } else {
                0.0
            }
        };
        for (i, o) in out.iter_mut().enumerate() {
            let src_row = (i / SIDE) as f32 - self.d_row[i];
            let src_col = (i % SIDE) as f32 - self.d_col[i];
            let (r0, c0) = (src_row.floor(), src_col.floor());
            let (fr, fc) = (src_row - r0, src_col - c0);
            let (r, c) = (r0 as i64, c0 as i64);
            let v = (1.0 - fr) * ((1.0 - fc) * at(r, c) + fc * at(r, c + 1))
                + fr * ((1.0 - fc) * at(r + 1, c) + fc * at(r + 1, c + 1));
            *o = v.clamp(0.0, 255.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authors() -> AugmentDef {
        AugmentDef {
            scale: 0.12,
            rotation_deg: 12.0,
            elastic_alpha: 3.4,
            elastic_sigma: 4.0,
            field: FieldMode::PerEpoch,
        }
    }

    fn identity() -> Distortion {
        Distortion {
            d_row: vec![0.0; PIXELS],
            d_col: vec![0.0; PIXELS],
        }
    }

    fn digit() -> Vec<u8> {
        (0..PIXELS)
            .map(|i| {
                let (r, c) = ((i / SIDE) as i64, (i % SIDE) as i64);
                if (6..22).contains(&r) && (11..17).contains(&c) || (r - 8).abs() < 2 {
                    255
                } else {
                    ((r * 7 + c * 13) % 40) as u8
                }
            })
            .collect()
    }

    #[test]
    fn zero_parameters_are_the_identity() {
        let cfg = AugmentDef {
            scale: 0.0,
            rotation_deg: 0.0,
            elastic_alpha: 0.0,
            ..authors()
        };
        let img = digit();
        let mut out = vec![-1.0; PIXELS];
        cfg.field_for(5, 3, 7).apply(&img, &mut out);
        let want: Vec<f32> = img.iter().map(|&p| f32::from(p)).collect();
        assert_eq!(out, want);
        assert_eq!(cfg.field_for(5, 3, 7), identity());
    }

    /// Rotation by a fixed angle, done the obvious way: for every output pixel, rotate its
    /// offset from the centre back and interpolate the 4 neighbours.
    fn naive_rotate(img: &[u8], angle: f64) -> Vec<f32> {
        let mut out = vec![0.0f32; PIXELS];
        for row in 0..SIDE {
            for col in 0..SIDE {
                let y = row as f64 - 14.0;
                let x = col as f64 - 14.0;
                let sx = x * angle.cos() + y * angle.sin() + 14.0;
                let sy = y * angle.cos() - x * angle.sin() + 14.0;
                let (r0, c0) = (sy.floor(), sx.floor());
                let mut v = 0.0;
                for (dr, wr) in [(0.0, 1.0 - (sy - r0)), (1.0, sy - r0)] {
                    for (dc, wc) in [(0.0, 1.0 - (sx - c0)), (1.0, sx - c0)] {
                        let (r, c) = (r0 + dr, c0 + dc);
                        if r >= 0.0 && c >= 0.0 && r < SIDE as f64 && c < SIDE as f64 {
                            v += wr * wc * f64::from(img[r as usize * SIDE + c as usize]);
                        }
                    }
                }
                out[row * SIDE + col] = v as f32;
            }
        }
        out
    }

    #[test]
    fn rotation_matches_a_naive_rotation() {
        let img = digit();
        for deg in [10.0f64, -7.5, 90.0] {
            let mut field = identity();
            field.add_affine(0.0, 0.0, deg.to_radians());
            let mut got = vec![0.0; PIXELS];
            field.apply(&img, &mut got);
            let want = naive_rotate(&img, deg.to_radians());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 0.05, "{deg}°, pixel {i}: {g} vs {w}");
            }
        }
        // A single pixel at (14, 20), 6 right of the centre, turns by 90° to (20, 14).
        let mut dot = vec![0u8; PIXELS];
        dot[14 * SIDE + 20] = 255;
        let mut field = identity();
        field.add_affine(0.0, 0.0, 90f64.to_radians());
        let mut out = vec![0.0; PIXELS];
        field.apply(&dot, &mut out);
        assert!(out[20 * SIDE + 14] > 254.9, "{}", out[20 * SIDE + 14]);
        assert!(out.iter().sum::<f32>() < 255.1);
    }

    #[test]
    fn separable_blur_matches_a_naive_2d_convolution() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let field: Vec<f32> = (0..PIXELS).map(|_| uniform_pm1(&mut rng) as f32).collect();
        for sigma in [4.0, 1.3] {
            let g = gaussian_factor(sigma);
            let r = (g.len() / 2) as i64;
            let fast = separable_blur(&field, &g);
            for row in 0..SIDE as i64 {
                for col in 0..SIDE as i64 {
                    let mut acc = 0.0f64;
                    for dy in -r..=r {
                        for dx in -r..=r {
                            let (rr, cc) = (row + dy, col + dx);
                            if (0..SIDE as i64).contains(&rr) && (0..SIDE as i64).contains(&cc) {
                                let k = (-((dx * dx + dy * dy) as f64) / (2.0 * sigma * sigma))
                                    .exp()
                                    / (2.0 * std::f64::consts::PI * sigma);
                                acc += k * f64::from(field[(rr * 28 + cc) as usize]);
                            }
                        }
                    }
                    let got = fast[(row * 28 + col) as usize];
                    assert!(
                        (f64::from(got) - acc).abs() < 1e-5,
                        "σ {sigma} ({row}, {col}): {got} vs {acc}"
                    );
                }
            }
        }
        assert_eq!(gaussian_factor(4.0).len(), 21);
    }

    #[test]
    fn elastic_field_statistics() {
        let elastic = |alpha: f64| AugmentDef {
            scale: 0.0,
            rotation_deg: 0.0,
            elastic_alpha: alpha,
            ..authors()
        };
        // Centre pixels (no border effect), over many fields.
        let stats = |alpha: f64| {
            let (mut sum, mut sq, mut n) = (0.0f64, 0.0f64, 0.0f64);
            for epoch in 0..200 {
                let f = elastic(alpha).field_for(9, epoch, 0);
                for row in 10..18 {
                    for col in 10..18 {
                        let i = row * SIDE + col;
                        let (dr, dc) = (f.d_row[i], f.d_col[i]);
                        for d in [dr, dc] {
                            sum += f64::from(d);
                            sq += f64::from(d) * f64::from(d);
                            n += 1.0;
                        }
                    }
                }
            }
            let mean = sum / n;
            (mean, (sq / n - mean * mean).sqrt())
        };
        let (mean, std) = stats(3.4);
        // Theory: α·√(Σk²/3) with Σk² ≈ 1/(4π) → 0.554.
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((std - 0.554).abs() < 0.06, "std {std}");
        let (_, std2) = stats(6.8);
        assert!((std2 / std - 2.0).abs() < 1e-3, "{std2} / {std}");
    }

    #[test]
    fn fields_are_reproducible_and_differ_where_they_should() {
        let per_epoch = authors();
        let a = per_epoch.field_for(1, 4, 10);
        assert_eq!(a, per_epoch.field_for(1, 4, 10));
        assert_eq!(
            a,
            per_epoch.field_for(1, 4, 11),
            "one field for all samples"
        );
        assert_ne!(a, per_epoch.field_for(1, 5, 10));
        assert_ne!(a, per_epoch.field_for(2, 4, 10));
        let per_sample = AugmentDef {
            field: FieldMode::PerSample,
            ..authors()
        };
        let b = per_sample.field_for(1, 4, 10);
        assert_eq!(b, per_sample.field_for(1, 4, 10));
        assert_ne!(b, per_sample.field_for(1, 4, 11));
        assert_ne!(b, per_sample.field_for(1, 5, 10));
    }

    #[test]
    fn outputs_stay_in_range_and_change_the_image() {
        let strong = AugmentDef {
            elastic_alpha: 40.0,
            elastic_sigma: 2.0,
            ..authors()
        };
        let img = digit();
        let mut out = vec![0.0; PIXELS];
        for epoch in 0..20 {
            strong.field_for(3, epoch, 0).apply(&img, &mut out);
            assert!(out.iter().all(|v| (0.0..=255.0).contains(v)));
            authors().field_for(3, epoch, 0).apply(&img, &mut out);
            assert!(out.iter().all(|v| (0.0..=255.0).contains(v)));
            assert!(
                out.iter()
                    .zip(&img)
                    .any(|(o, &p)| (o - f32::from(p)).abs() > 1.0)
            );
        }
    }

    #[test]
    fn validation_names_the_field() {
        let bad = [
            (
                AugmentDef {
                    scale: 1.5,
                    ..authors()
                },
                "augmentation.scale",
            ),
            (
                AugmentDef {
                    rotation_deg: -1.0,
                    ..authors()
                },
                "augmentation.rotation_deg",
            ),
            (
                AugmentDef {
                    elastic_alpha: f64::NAN,
                    ..authors()
                },
                "augmentation.elastic_alpha",
            ),
            (
                AugmentDef {
                    elastic_sigma: 0.0,
                    ..authors()
                },
                "augmentation.elastic_sigma",
            ),
        ];
        for (cfg, field) in bad {
            assert!(cfg.validate().unwrap_err().starts_with(field));
        }
        assert!(authors().validate().is_ok());
    }
}
