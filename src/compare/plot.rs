//! The comparison plot: test accuracy against cumulative training time, one line per method.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use super::MethodRun;
use crate::plot::register_bundled_font;

/// Draws `runs` into a 1000×650 PNG at `path`.
pub fn accuracy_over_time(runs: &[MethodRun], title: &str, path: &Path) -> Result<()> {
    register_bundled_font();
    let series: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|r| {
            let points = r
                .accuracy_over_time()
                .into_iter()
                .map(|(t, a)| (t, 100.0 * a))
                .collect();
            (r.method.clone(), points)
        })
        .collect();
    let max_t = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(t, _)| *t))
        .fold(1.0f64, f64::max);
    let (min_a, max_a) = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, a)| *a))
        .fold((100.0f64, 0.0f64), |(lo, hi), a| (lo.min(a), hi.max(a)));
    let (lo, hi) = if min_a > max_a {
        (0.0, 100.0)
    } else {
        (
            (min_a - 2.0).max(0.0).floor(),
            (max_a + 2.0).min(100.0).ceil(),
        )
    };
    let err = |e: &dyn std::fmt::Display| anyhow!("{e}");
    let root = BitMapBackend::new(path, (1000, 650)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{title}: test accuracy vs training time"),
            ("sans-serif", 24),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_t * 1.05, lo..hi)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("cumulative training time (s)")
        .y_desc("test accuracy (%)")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|e| err(&e))?;
    for (k, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba().stroke_width(3);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color))
            .map_err(|e| err(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 20, y)],
                    Palette99::pick(k).stroke_width(3),
                )
            });
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 4, Palette99::pick(k).filled())),
            )
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
