//! Learning curves: test accuracy and training loss per epoch of one or more runs
//! (`summary.json`), beside the authors' logged test accuracy.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use super::{draw_error, register_bundled_font};
use crate::train::summary::RunSummary;

/// Test accuracy (%) by 1-based epoch in the authors' logs. MLP: every epoch of
/// `Result/log_clean_se=0.5_ts=8_beta=0.04_hvth=20_ovth=10_mnist_best.txt` (jinyyy666/mm-bp-snn;
/// their "epoch=k" is our epoch k+1); CNN: spec §6.
pub const AUTHORS_MLP: &[(usize, f64)] = &[
    (1, 97.32),
    (2, 97.79),
    (3, 98.04),
    (4, 98.36),
    (5, 98.45),
    (6, 98.57),
    (7, 98.49),
    (8, 98.50),
    (9, 98.59),
    (10, 98.57),
    (11, 98.61),
    (12, 98.55),
    (13, 98.57),
    (14, 98.67),
    (15, 98.66),
];

/// The authors' CNN test accuracy by epoch (spec §6).
pub const AUTHORS_CNN: &[(usize, f64)] = &[(1, 95.74), (6, 98.62), (20, 99.18)];

/// Which authors' curve to draw beside the runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthorsCurve {
    /// MNIST 784-800-10 (batch 1).
    Mlp,
    /// MNIST CNN.
    Cnn,
    /// None.
    None,
}

impl AuthorsCurve {
    fn points(self) -> &'static [(usize, f64)] {
        match self {
            Self::Mlp => AUTHORS_MLP,
            Self::Cnn => AUTHORS_CNN,
            Self::None => &[],
        }
    }
}

/// Reads a `summary.json`.
pub fn read_summary(path: &Path) -> Result<RunSummary> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a run summary", path.display()))
}

/// Points `(epoch, value)` of one curve.
type Curve = Vec<(f64, f64)>;

/// The drawing area of one panel.
type Panel<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Draws the curves of `runs` (label, summary) into a 1400×600 PNG at `path`.
pub fn learning_curves(
    runs: &[(String, RunSummary)],
    authors: AuthorsCurve,
    title: &str,
    path: &Path,
) -> Result<()> {
    register_bundled_font();
    let accuracy: Vec<(String, Curve)> = runs
        .iter()
        .map(|(label, s)| {
            let points = s
                .epochs
                .iter()
                .map(|e| (e.epoch as f64, 100.0 * e.test_accuracy))
                .collect();
            (label.clone(), points)
        })
        .collect();
    let loss: Vec<Curve> = runs
        .iter()
        .map(|(_, s)| {
            s.epochs
                .iter()
                .filter(|e| e.loss.is_finite() && e.loss > 0.0)
                .map(|e| (e.epoch as f64, e.loss))
                .collect()
        })
        .collect();
    let last_epoch = runs
        .iter()
        .flat_map(|(_, s)| s.epochs.iter().map(|e| e.epoch))
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let authors: Curve = authors
        .points()
        .iter()
        .filter(|(e, _)| *e as f64 <= last_epoch)
        .map(|&(e, a)| (e as f64, a))
        .collect();
    let root = BitMapBackend::new(path, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let root = root.titled(title, ("sans-serif", 26)).map_err(draw_error)?;
    let (left, right) = root.split_horizontally(760);
    draw_accuracy(&left, &accuracy, &authors, last_epoch)?;
    draw_loss(&right, &loss, last_epoch)?;
    root.present().map_err(draw_error)?;
    Ok(())
}

/// The accuracy axis (%): the range of every curve's points, rounded outwards (0–100 when
/// there are none).
fn accuracy_range(accuracy: &[(String, Curve)], authors: &[(f64, f64)]) -> (f64, f64) {
    let all_acc = accuracy
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, a)| *a))
        .chain(authors.iter().map(|(_, a)| *a));
    let (lo, hi) = all_acc.fold((100.0f64, 0.0f64), |(lo, hi), a| (lo.min(a), hi.max(a)));
    if lo > hi {
        (0.0, 100.0)
    } else {
        ((lo - 1.0).max(0.0).floor(), (hi + 0.5).min(100.0).ceil())
    }
}

/// The test-accuracy panel: one line per run, the authors' curve in black, a legend.
fn draw_accuracy(
    area: &Panel,
    accuracy: &[(String, Curve)],
    authors: &[(f64, f64)],
    last_epoch: f64,
) -> Result<()> {
    let (lo, hi) = accuracy_range(accuracy, authors);
    let mut chart = ChartBuilder::on(area)
        .caption("test accuracy", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5..last_epoch + 0.5, lo..hi)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("test accuracy (%)")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(draw_error)?;
    for (k, (label, points)) in accuracy.iter().enumerate() {
        let color = Palette99::pick(k);
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(3),
            ))
            .map_err(draw_error)?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 20, y)],
                    Palette99::pick(k).stroke_width(3),
                )
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(draw_error)?;
    }
    if !authors.is_empty() {
        chart
            .draw_series(LineSeries::new(
                authors.iter().copied(),
                BLACK.stroke_width(2),
            ))
            .map_err(draw_error)?
            .label("authors' log (batch 1)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        chart
            .draw_series(
                authors
                    .iter()
                    .map(|&p| Cross::new(p, 5, BLACK.stroke_width(2))),
            )
            .map_err(draw_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(draw_error)?;
    Ok(())
}

/// The training-loss panel (log scale): one line per run.
fn draw_loss(area: &Panel, loss: &[Curve], last_epoch: f64) -> Result<()> {
    let max_loss = loss
        .iter()
        .flatten()
        .map(|(_, l)| *l)
        .fold(1.0f64, f64::max);
    let min_loss = loss
        .iter()
        .flatten()
        .map(|(_, l)| *l)
        .fold(max_loss, f64::min);
    let mut chart = ChartBuilder::on(area)
        .caption("training loss (log scale)", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            0.5..last_epoch + 0.5,
            (min_loss * 0.8..max_loss * 1.25).log_scale(),
        )
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("mean count loss")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(draw_error)?;
    for (k, points) in loss.iter().enumerate() {
        let color = Palette99::pick(k);
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(3),
            ))
            .map_err(draw_error)?;
    }
    Ok(())
}
