//! Writes a PGM picture of distorted MNIST digits: one row per digit, the original first, then
//! the digit under the authors' distortion fields of epochs 0, 1, 2, … (as
//! `experiments/mnist-cnn` draws them, seed 1).
//!
//! `cargo run --release --example augment_samples -- [DATA_DIR] [OUT.pgm] [DIGITS] [EPOCHS]`
//! (defaults: `data`, `augment-samples.pgm`, 6, 5).

use std::path::PathBuf;

use anyhow::{Context, Result};
use hm2bp::datasets::augment::SIDE;
use hm2bp::datasets::{AugmentDef, FieldMode, ImageDatasetKind, Split, load_image_set};

/// Gap between tiles, in pixels (drawn grey).
const GAP: usize = 2;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or(default.to_string());
    let data_dir = PathBuf::from(arg(0, "data"));
    let out = PathBuf::from(arg(1, "augment-samples.pgm"));
    let digits: usize = arg(2, "6").parse().context("DIGITS: not a number")?;
    let epochs: usize = arg(3, "5").parse().context("EPOCHS: not a number")?;
    let set = load_image_set(ImageDatasetKind::Mnist, &data_dir, Split::Train)?;
    let cfg = AugmentDef {
        scale: 0.12,
        rotation_deg: 12.0,
        elastic_alpha: 3.4,
        elastic_sigma: 4.0,
        field: FieldMode::PerEpoch,
    };
    let (cols, rows) = (epochs + 1, digits.min(set.len()));
    let width = cols * (SIDE + GAP) + GAP;
    let height = rows * (SIDE + GAP) + GAP;
    let mut canvas = vec![128u8; width * height];
    let mut tile = vec![0.0f32; SIDE * SIDE];
    for d in 0..rows {
        let image = set.images.image(d);
        for c in 0..cols {
            if c == 0 {
                tile.iter_mut()
                    .zip(image)
                    .for_each(|(t, &p)| *t = f32::from(p));
            } else {
                cfg.field_for(1, (c - 1) as u64, d as u64)
                    .apply(image, &mut tile);
            }
            let (y0, x0) = (GAP + d * (SIDE + GAP), GAP + c * (SIDE + GAP));
            for (i, v) in tile.iter().enumerate() {
                canvas[(y0 + i / SIDE) * width + x0 + i % SIDE] = v.round() as u8;
            }
        }
    }
    let mut bytes = format!("P5\n{width} {height}\n255\n").into_bytes();
    bytes.extend_from_slice(&canvas);
    std::fs::write(&out, bytes).with_context(|| format!("{}: cannot write", out.display()))?;
    println!("wrote {} ({rows} digits × {epochs} epochs)", out.display());
    Ok(())
}
