//! `experiment bench`: times HM2-BP training steps (forward + custom backward + Adam) of a
//! network on real MNIST spike trains and extrapolates to a 60k-sample epoch.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use burn::data::dataloader::batcher::Batcher;
use burn::optim::GradientsParams;

use crate::datasets::{EncodingMode, ImageDatasetKind, RateEncoder, Split, load_image_set};
use crate::hm2bp::output::CountTargets;
use crate::hm2bp::regularizer::WeightRegularizer;
use crate::model::{NetworkDef, RuleOptions, SpikingNet};
use crate::ops::KernelPath;
use crate::train::classifier::{CountLoss, Network, SpikingClassifier};
use crate::train::data::{ImageDataset, SpikeBatcher};

/// Options of `experiment bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Network definition.
    #[arg(long, default_value = "mnist-784-800-10")]
    pub model: String,
    /// Folder of network definitions.
    #[arg(long, default_value = "models")]
    pub models_dir: PathBuf,
    /// Dataset folder (MNIST).
    #[arg(long, env = "HM2BP_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Simulation length T.
    #[arg(long, default_value_t = 400)]
    pub steps: usize,
    /// Batch sizes to time.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub batch_sizes: Vec<usize>,
    /// Samples per timed run.
    #[arg(long, default_value_t = 256)]
    pub samples: usize,
    /// Backend (default: the first CPU backend compiled in).
    #[arg(long, env = "HM2BP_BACKEND")]
    pub backend: Option<String>,
    /// Samples of a full epoch, for the extrapolation.
    #[arg(long, default_value_t = 60000)]
    pub epoch_samples: usize,
    /// Kernel paths to time, each on every batch size (event-driven: host kernels of the CPU
    /// backends; generic: the backend's tensor operations).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "event-driven,generic"
    )]
    pub kernels: Vec<KernelPath>,
}

/// Peak resident memory of this process in MiB (Linux), if known.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs the benchmark and prints a table.
pub fn run(a: BenchArgs) -> Result<()> {
    let (device, backend) =
        crate::backend::device(a.backend.as_deref()).map_err(|m| anyhow::anyhow!(m))?;
    let def = NetworkDef::load(&a.model, &a.models_dir)?;
    let set = load_image_set(ImageDatasetKind::Mnist, &a.data_dir, Split::Train)?;
    let dataset = ImageDataset::new(set);
    let encoder = RateEncoder::new(a.steps, 1, EncodingMode::FixedPerSample);
    let batcher = SpikeBatcher::new(encoder);
    let rule = RuleOptions {
        effect_ratio: true,
        regularizer: WeightRegularizer {
            lambda: 10.0,
            beta: 0.04,
            limit: 8.0,
        },
        label_spike_level: 35,
    };
    let threads = rayon::current_num_threads();
    println!(
        "bench: {} at T = {}, backend {backend}, {threads} threads, {} samples per batch size",
        def.name, a.steps, a.samples
    );
    println!(
        "| kernels | batch | encode s | step s | samples/s | s / {}-sample epoch |",
        a.epoch_samples
    );
    println!("|---|---|---|---|---|---|");
    let ad = device.clone().autodiff();
    for &path in &a.kernels {
        for &bs in &a.batch_sizes {
            ad.seed(1);
            let model = SpikingClassifier::new(
                Network::Hm2bp(SpikingNet::new(&def, &rule, &ad)?.with_kernels(path)),
                CountLoss::Mse(CountTargets::default()),
            );
            let timing = time_steps(model, &dataset, &batcher, bs, a.samples.div_ceil(bs), &ad)?;
            let rate = timing.samples as f64 / (timing.encode + timing.step);
            println!(
                "| {} | {bs} | {:.2} | {:.2} | {rate:.0} | {:.0} |",
                path.name(),
                timing.encode,
                timing.step,
                a.epoch_samples as f64 / rate
            );
        }
    }
    if let Some(mib) = peak_memory_mib() {
        println!("peak resident memory: {mib:.0} MiB");
    }
    Ok(())
}

/// Seconds spent encoding and stepping `batches` training steps of batch size `bs`.
struct Timing {
    samples: usize,
    encode: f64,
    step: f64,
}

fn time_steps(
    mut model: SpikingClassifier,
    dataset: &ImageDataset,
    batcher: &SpikeBatcher,
    bs: usize,
    batches: usize,
    device: &burn::prelude::Device,
) -> Result<Timing> {
    let mut optim = crate::train::adam::FusedAdam::module_optimizer();
    let mut timing = Timing {
        samples: batches * bs,
        encode: 0.0,
        step: 0.0,
    };
    let mut index = 0usize;
    for _ in 0..batches {
        let t0 = Instant::now();
        let items: Vec<_> = (0..bs)
            .map(|k| burn::data::dataset::Dataset::get(dataset, (index + k) % dataset_len(dataset)))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        index += bs;
        let batch = batcher.batch(items, device);
        let t1 = Instant::now();
        let (_, loss) = model.run(batch);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
        timing.encode += (t1 - t0).as_secs_f64();
        timing.step += t1.elapsed().as_secs_f64();
    }
    Ok(timing)
}

fn dataset_len(dataset: &ImageDataset) -> usize {
    burn::data::dataset::Dataset::len(dataset)
}
