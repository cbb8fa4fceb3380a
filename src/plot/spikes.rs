//! What a trained network does with test samples: the spike raster of every layer (input
//! included) for chosen samples, and per layer the distribution over neurons of the firing
//! rate and of the fraction of samples on which a neuron stays silent.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use plotters::prelude::*;

use super::{draw_error, register_bundled_font};
use crate::datasets::Split;
use crate::experiment::ExperimentDef;
use crate::spikes::SpikeRaster;
use crate::train::classifier::Network;
use crate::train::{RunOptions, load_split, test_batches, trained_classifier};

/// Per-neuron activity of one layer over many samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerActivity {
    /// Spikes of every neuron, summed over the samples.
    pub spikes: Vec<f64>,
    /// Samples on which each neuron did not fire.
    pub silent: Vec<f64>,
    /// Samples seen.
    pub samples: usize,
}

impl LayerActivity {
    /// Adds one sample's raster.
    pub fn add(&mut self, raster: &SpikeRaster) {
        let counts = raster.counts();
        if self.spikes.is_empty() {
            self.spikes = vec![0.0; counts.len()];
            self.silent = vec![0.0; counts.len()];
        }
        for (k, &c) in counts.iter().enumerate() {
            self.spikes[k] += f64::from(c);
            self.silent[k] += f64::from(u8::from(c == 0));
        }
        self.samples += 1;
    }
}

/// Rasters of the chosen samples and activity over the first `activity_samples` test samples.
pub struct NetworkActivity {
    /// Layer names, "input" first.
    pub layers: Vec<String>,
    /// Per chosen sample (index, label): one raster per layer.
    pub rasters: Vec<(usize, u8, Vec<SpikeRaster>)>,
    /// Per layer.
    pub activity: Vec<LayerActivity>,
}

/// Runs the trained model on test samples (HM2-BP networks).
pub fn record_activity(
    exp: &ExperimentDef,
    opts: &RunOptions,
    model_file: &Path,
    chosen: &[usize],
    activity_samples: usize,
) -> Result<NetworkActivity> {
    let model = trained_classifier(exp, opts, model_file)?;
    let Network::Hm2bp(net) = &model.net else {
        bail!(
            "plot spikes: {} is a BPTT network; only HM2-BP networks are drawn",
            exp.name
        );
    };
    let mut set = load_split(exp, &opts.data_dir, Split::Test)?;
    let needed = chosen
        .iter()
        .map(|&k| k + 1)
        .max()
        .unwrap_or(0)
        .max(activity_samples);
    if let Some(&bad) = chosen.iter().find(|&&k| k >= set.len()) {
        bail!(
            "--samples: test sample {bad} does not exist ({} test samples)",
            set.len()
        );
    }
    set.truncate(needed);
    let labels = set.labels().to_vec();
    let layer_count = net.layers.len() + 1;
    let mut layers = vec!["input".to_string()];
    layers.extend((1..layer_count).map(|k| {
        if k + 1 == layer_count {
            "output".to_string()
        } else {
            format!("layer {k}")
        }
    }));
    let mut activity = vec![LayerActivity::default(); layer_count];
    let mut rasters = Vec::new();
    let mut first = 0usize;
    for batch in test_batches(exp, set, &opts.device).iter() {
        let batch = batch.map_err(|e| anyhow::anyhow!("loading a test batch: {e:?}"))?;
        let input = batch.spikes.to_trains(&opts.device);
        let b = input.dims()[0];
        let mut per_layer = vec![input.to_rasters()];
        net.forward_inspecting(input, None, |s| per_layer.push(s.to_rasters()));
        for sample in 0..b {
            let index = first + sample;
            if index < activity_samples {
                for (a, layer) in activity.iter_mut().zip(&per_layer) {
                    a.add(&layer[sample]);
                }
            }
            if chosen.contains(&index) {
                let of_sample = per_layer.iter().map(|l| l[sample].clone()).collect();
                rasters.push((index, labels[index], of_sample));
            }
        }
        first += b;
    }
    Ok(NetworkActivity {
        layers,
        rasters,
        activity,
    })
}

/// Draws one sample's rasters, one panel per layer, into a PNG at `path`.
pub fn raster_figure(
    layers: &[String],
    rasters: &[SpikeRaster],
    title: &str,
    path: &Path,
) -> Result<()> {
    register_bundled_font();
    let panel_height = 260u32;
    let height = 60 + panel_height * layers.len() as u32;
    let root = BitMapBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let root = root.titled(title, ("sans-serif", 24)).map_err(draw_error)?;
    let panels = root.split_evenly((layers.len(), 1));
    for ((panel, name), raster) in panels.iter().zip(layers).zip(rasters) {
        let (steps, neurons) = (raster.steps(), raster.neurons().max(1));
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!(
                    "{name}: {} spikes, {} neurons",
                    raster.num_spikes(),
                    raster.neurons()
                ),
                ("sans-serif", 16),
            )
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0..steps, 0..neurons)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("time step")
            .y_desc("neuron")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(draw_error)?;
        let dots = (0..steps).flat_map(|t| raster.at(t).iter().map(move |&n| (t, n as usize)));
        chart
            .draw_series(dots.map(|p| Rectangle::new([p, (p.0 + 1, p.1 + 1)], BLACK.filled())))
            .map_err(draw_error)?;
    }
    root.present().map_err(draw_error)?;
    Ok(())
}

/// Bins `values` into `bins` equal bins over `0..=max`; returns (bin width, counts).
fn histogram(values: &[f64], bins: usize, max: f64) -> (f64, Vec<u32>) {
    let width = (max / bins as f64).max(f64::MIN_POSITIVE);
    let mut counts = vec![0u32; bins];
    for &v in values {
        let k = ((v / width) as usize).min(bins - 1);
        counts[k] += 1;
    }
    (width, counts)
}

/// Draws, per layer, the histograms of the firing rate (spikes per sample) and of the silent
/// fraction of every neuron into a PNG at `path`.
pub fn activity_figure(
    layers: &[String],
    activity: &[LayerActivity],
    title: &str,
    path: &Path,
) -> Result<()> {
    register_bundled_font();
    let rows = layers.len();
    let root = BitMapBackend::new(path, (1200, 60 + 240 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let root = root.titled(title, ("sans-serif", 24)).map_err(draw_error)?;
    let panels = root.split_evenly((rows, 2));
    for (k, (name, a)) in layers.iter().zip(activity).enumerate() {
        let n = a.samples.max(1) as f64;
        let rates: Vec<f64> = a.spikes.iter().map(|s| s / n).collect();
        let silent: Vec<f64> = a.silent.iter().map(|s| s / n).collect();
        let dead = silent.iter().filter(|&&s| s == 1.0).count();
        let max_rate = rates.iter().copied().fold(1.0f64, f64::max);
        let figures = [
            (
                format!("{name}: spikes per sample per neuron"),
                "spikes per sample",
                rates,
                max_rate,
            ),
            (
                format!(
                    "{name}: fraction of samples silent ({dead} of {} never fire)",
                    silent.len()
                ),
                "fraction of samples without a spike",
                silent,
                1.0,
            ),
        ];
        for (col, (caption, x_desc, values, max)) in figures.into_iter().enumerate() {
            let (width, counts) = histogram(&values, 40, max);
            let top = counts.iter().copied().max().unwrap_or(1).max(1);
            let mut chart = ChartBuilder::on(&panels[2 * k + col])
                .caption(caption, ("sans-serif", 15))
                .margin(8)
                .x_label_area_size(35)
                .y_label_area_size(55)
                .build_cartesian_2d(0.0..max * 1.0001, 0u32..top + top / 10 + 1)
                .map_err(draw_error)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_desc(x_desc)
                .y_desc("neurons")
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(draw_error)?;
            chart
                .draw_series(counts.iter().enumerate().map(|(b, &c)| {
                    let x0 = b as f64 * width;
                    Rectangle::new([(x0, 0), (x0 + width, c)], Palette99::pick(col).filled())
                }))
                .map_err(draw_error)?;
        }
    }
    root.present().map_err(draw_error)?;
    Ok(())
}

/// Records and draws: `rasters-sample-K.png` per chosen sample and `activity.png` in `out_dir`.
pub fn plot_spikes(
    exp: &ExperimentDef,
    opts: &RunOptions,
    model_file: &Path,
    chosen: &[usize],
    activity_samples: usize,
    out_dir: &Path,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", out_dir.display()))?;
    let rec = record_activity(exp, opts, model_file, chosen, activity_samples)?;
    let mut written = Vec::new();
    for (index, label, rasters) in &rec.rasters {
        let path = out_dir.join(format!("rasters-sample-{index}.png"));
        let title = format!("{}: test sample {index} (class {label})", exp.name);
        raster_figure(&rec.layers, rasters, &title, &path)?;
        written.push(path);
    }
    let path = out_dir.join("activity.png");
    let samples = rec.activity.first().map_or(0, |a| a.samples);
    let title = format!("{}: activity over {samples} test samples", exp.name);
    activity_figure(&rec.layers, &rec.activity, &title, &path)?;
    written.push(path);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_and_histograms() {
        let mut a = LayerActivity::default();
        a.add(&SpikeRaster::from_times(&[vec![1, 2], vec![], vec![3]], 5));
        a.add(&SpikeRaster::from_times(&[vec![1], vec![], vec![]], 5));
        assert_eq!(a.spikes, vec![3.0, 0.0, 1.0]);
        assert_eq!(a.silent, vec![0.0, 2.0, 1.0]);
        assert_eq!(a.samples, 2);
        let (w, c) = histogram(&[0.0, 0.24, 0.5, 1.0], 4, 1.0);
        assert_eq!((w, c), (0.25, vec![2, 0, 1, 1]));
    }
}
