//! `experiment bench`: times HM2-BP training steps (forward + custom backward + Adam) of
//! networks on real MNIST spike trains and extrapolates to a 60k-sample epoch. A trained
//! network spikes more than a fresh one (about twice the work per sample for the CNN), so by
//! default each network starts from its newest trained checkpoint committed under
//! `experiments/*/checkpoint/` (`--weights trained`), which makes the figure comparable to
//! `experiment train`'s samples/s; a network with no such checkpoint is timed fresh, and the
//! table says which. Every
//! configuration is compared in the same run with what it replaces: the event-driven kernels
//! with the generic tensor-op path (when both are timed) and, with `--baseline BIN`, with
//! another `experiment` binary (e.g. the previous release) timed on the same configuration
//! right before it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};

use crate::datasets::{
    EncodingMode, ImageDatasetKind, RateEncoder, Samples, Split, load_image_set,
};
use crate::device_counts::LaunchCounts;
use crate::model::{NetworkDef, RuleOptions, SpikingNet};
use crate::ops::KernelPath;
use crate::rule::output::CountTargets;
use crate::rule::regularizer::WeightRegularizer;
use crate::train::checkpoint::{RecordKind, RunFiles};
use crate::train::classifier::{CountLoss, Network, SpikingClassifier, load_model};
use crate::train::data::{SampleDataset, SpikeBatcher};

/// Options of `experiment bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Network definitions to time.
    #[arg(
        long,
        alias = "model",
        value_delimiter = ',',
        default_value = "mnist-784-800-10,mnist-cnn-15c5-p2-40c5-p2-300-10"
    )]
    pub models: Vec<String>,
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
    #[arg(long, value_delimiter = ',', default_value = "16")]
    pub batch_sizes: Vec<usize>,
    /// Samples per timed run.
    #[arg(long, default_value_t = 256)]
    pub samples: usize,
    /// Untimed batches before each timed run (first-touch page faults, thread start-up and,
    /// on wgpu, kernel compilation are not steady-state training). Passed on to `--baseline`,
    /// which must know the option (use 0 against binaries from before 2026-12-03).
    #[arg(long, default_value_t = 1)]
    pub warmup_batches: usize,
    /// Backends to time, in order (default: the first CPU backend compiled in); the tables of
    /// the later ones show each configuration's ratio to the first one's, measured in the same
    /// run (`--backends flex,wgpu`).
    #[arg(long, alias = "backend", env = "HM2BP_BACKEND", value_delimiter = ',')]
    pub backends: Vec<String>,
    /// Let wgpu run on a software adapter (lavapipe, llvmpipe), which is refused otherwise.
    #[arg(long)]
    pub allow_software_gpu: bool,
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
    /// Start from each network's newest committed trained checkpoint (`trained`, fresh where
    /// there is none) or from fresh weights (`fresh`; what binaries before 2026-12-07 timed).
    #[arg(long, value_enum, default_value_t = Weights::Trained)]
    pub weights: Weights,
    /// Folder of the experiments whose `checkpoint/` folders `--weights trained` searches.
    #[arg(long, default_value = "experiments")]
    pub experiments_dir: PathBuf,
    /// Another `experiment` binary to time on every configuration too (its `bench` with
    /// `--model M --batch-sizes B --kernels K`), right before this one.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// On a CubeCL device, also list each configuration's launches per step by kernel.
    #[arg(long)]
    pub launches_by_kernel: bool,
}

/// Runs the benchmark and prints a table per backend.
pub fn run(a: BenchArgs) -> Result<()> {
    let set = load_image_set(ImageDatasetKind::Mnist, &a.data_dir, Split::Train)?;
    let dataset = SampleDataset::new(Samples::Images(set));
    let encoder = RateEncoder::new(a.steps, 1, EncodingMode::FixedPerSample);
    let batcher = SpikeBatcher::new(encoder);
    let backends: Vec<Option<&str>> = if a.backends.is_empty() {
        vec![None]
    } else {
        a.backends.iter().map(|b| Some(b.as_str())).collect()
    };
    let mut first: Option<(String, Rates)> = None;
    for name in backends {
        let (device, backend) =
            crate::backend::device(name, a.allow_software_gpu).map_err(|m| anyhow::anyhow!(m))?;
        let rates = bench_backend(&a, &device, &backend, &dataset, &batcher, first.as_ref())?;
        let short = name.unwrap_or_else(|| backend.split(' ').next().unwrap_or("default"));
        first.get_or_insert((short.to_string(), rates));
    }
    if let Some(mib) = crate::train::summary::peak_memory_mib() {
        println!("peak resident memory: {mib:.0} MiB");
    }
    Ok(())
}

/// The weights a timed network starts from.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// The newest committed trained checkpoint of the network, if any.
    Trained,
    /// Freshly initialised.
    Fresh,
}

/// The newest trained model checkpoint of network `name` among the committed run checkpoints
/// `experiments_dir/*/checkpoint/checkpoint/` (their `started-with.json` names the network),
/// with its epoch.
pub fn trained_checkpoint(experiments_dir: &Path, name: &str) -> Option<(PathBuf, usize)> {
    std::fs::read_dir(experiments_dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let files = RunFiles::new(&e.path().join("checkpoint"));
            let started = files.checkpoint_dir().join("started-with.json");
            let json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(started).ok()?).ok()?;
            (json["model"]["name"] == name).then_some(())?;
            let epoch = *files.epochs_with_model().first()?;
            Some((files.epoch_record(RecordKind::Model, epoch), epoch))
        })
        .max_by_key(|(_, epoch)| *epoch)
}

/// The network to time: fresh, or with the weights of its trained checkpoint; and which.
fn timed_network(
    a: &BenchArgs,
    fresh: SpikingClassifier,
    name: &str,
) -> Result<(SpikingClassifier, String)> {
    let found = match a.weights {
        Weights::Trained => trained_checkpoint(&a.experiments_dir, name),
        Weights::Fresh => None,
    };
    match found {
        Some((path, epoch)) => Ok((
            load_model(fresh, &path)?,
            format!("trained ({epoch} epochs)"),
        )),
        None => Ok((fresh, "fresh".into())),
    }
}

/// Samples/s per (model, kernel path, batch size).
type Rates = HashMap<(String, KernelPath, usize), f64>;

/// Times every configuration on `device` and prints its table, with each row's ratio to the
/// same configuration on the `first` backend of the run when there is one.
fn bench_backend(
    a: &BenchArgs,
    device: &burn::prelude::Device,
    backend: &str,
    dataset: &SampleDataset,
    batcher: &SpikeBatcher,
    first: Option<&(String, Rates)>,
) -> Result<Rates> {
    let rule = RuleOptions {
        effect_ratio: true,
        regularizer: WeightRegularizer::CODE_FAITHFUL,
        label_spike_level: 35,
    };
    print_table_header(a, device, backend, first);
    let ad = device.clone().autodiff();
    let init = crate::backend::init_device(device).autodiff();
    let mut rates = Rates::new();
    let mut by_kernel = Vec::new();
    for name in &a.models {
        let def = NetworkDef::load(name, &a.models_dir)?;
        // The generic path first, so that the event-driven rows can show their ratio to it.
        let mut paths = a.kernels.clone();
        paths.sort_by_key(|p| *p != KernelPath::Generic);
        for &path in &paths {
            for &bs in &a.batch_sizes {
                let base = match &a.baseline {
                    Some(bin) => Some(baseline_rate(bin, a, name, bs, path)?),
                    None => None,
                };
                init.seed(1);
                let fresh = SpikingClassifier::new(
                    Network::Hm2bp(SpikingNet::new(&def, &rule, &init)?.with_kernels(path)),
                    CountLoss::Mse(CountTargets::default()),
                );
                let (model, weights) = timed_network(a, fresh, name)?;
                let model = model.fork(&ad);
                let batches = Batches {
                    size: bs,
                    warmup: a.warmup_batches,
                    timed: a.samples.div_ceil(bs),
                };
                let timing = time_steps(model, (dataset, batcher), batches, &ad)?;
                let rate = timing.samples as f64 / (timing.encode + timing.step);
                rates.insert((name.clone(), path, bs), rate);
                let vs_generic = match (path, rates.get(&(name.clone(), KernelPath::Generic, bs))) {
                    (KernelPath::EventDriven, Some(g)) => format!("{:.2}", rate / g),
                    _ => "–".into(),
                };
                let mut extra = match base {
                    Some(b) => format!(" {b:.0} | {:.2} |", rate / b),
                    None => String::new(),
                };
                if let Some((_, first)) = first {
                    extra += &match first.get(&(name.clone(), path, bs)) {
                        Some(f) => format!(" {:.4} |", rate / f),
                        None => " – |".into(),
                    };
                }
                if let Some(n) = &timing.launches {
                    extra += &format!(
                        " {:.0} | {} | {:.2} | {} |",
                        n.total() as f64 / batches.timed as f64,
                        timing.reads as f64 / batches.timed as f64,
                        timing.upload_bytes as f64 / 1e6,
                        device_mib()
                    );
                    if a.launches_by_kernel {
                        let label = format!("{name}, {}, batch {bs}", path.name());
                        by_kernel.push((label, n.clone(), batches.timed));
                    }
                }
                // Whole samples/s, but two significant digits for slow devices.
                let prec = if rate < 10.0 { 1 } else { 0 };
                println!(
                    "| {name} | {weights} | {} | {bs} | {:.2} | {:.2} | {rate:.prec$} | {:.0} | {vs_generic} |{extra}",
                    path.name(),
                    timing.encode,
                    timing.step,
                    a.epoch_samples as f64 / rate
                );
            }
        }
    }
    for (label, counts, steps) in by_kernel {
        print_launches_by_kernel(&label, &counts, steps);
    }
    Ok(rates)
}

/// The run's first line and the table's header: the columns of a baseline, of the ratio to
/// the run's first backend and of a device's counts where they apply.
fn print_table_header(
    a: &BenchArgs,
    device: &burn::prelude::Device,
    backend: &str,
    first: Option<&(String, Rates)>,
) {
    let threads = rayon::current_num_threads();
    println!(
        "bench: T = {}, backend {backend}, {threads} threads, {} samples per configuration after {} untimed batches",
        a.steps, a.samples, a.warmup_batches
    );
    let mut extra = String::new();
    if let Some(bin) = &a.baseline {
        extra += &format!(" {} samples/s | × vs baseline |", bin.display());
    }
    if let Some((name, _)) = first {
        extra += &format!(" × vs {name} |");
    }
    if !crate::backend::on_host(device) {
        extra += " launches/step | reads/step | upload MB/step | device MB |";
    }
    println!(
        "| model | weights | kernels | batch | encode s | step s | samples/s | s / {}-sample epoch | × vs generic |{extra}",
        a.epoch_samples
    );
    println!(
        "|---|---|---|---|---|---|---|---|---|{}",
        "---|".repeat(extra.matches('|').count())
    );
}

/// One configuration's launches per step, by kernel, most launched first.
fn print_launches_by_kernel(label: &str, counts: &LaunchCounts, steps: usize) {
    println!("launches per step by kernel ({label}):");
    for (n, kernel) in counts.by_short_name() {
        println!("  {:>6.2}  {kernel}", n as f64 / steps as f64);
    }
}

/// MiB the default wgpu device's memory pools hold, as a table cell.
fn device_mib() -> String {
    #[cfg(feature = "wgpu")]
    if let Some(mib) = crate::device_counts::wgpu_reserved_mib() {
        return format!("{mib:.0}");
    }
    "–".into()
}

/// Samples per second of `bin bench` on one configuration: the `samples/s` column of the first
/// table row it prints.
fn baseline_rate(
    bin: &std::path::Path,
    a: &BenchArgs,
    model: &str,
    bs: usize,
    path: KernelPath,
) -> Result<f64> {
    let out = std::process::Command::new(bin)
        .arg("bench")
        .args(["--model", model])
        .args(["--batch-sizes", &bs.to_string()])
        .args(["--kernels", path.name()])
        .args(["--samples", &a.samples.to_string()])
        .args(["--steps", &a.steps.to_string()])
        .args(["--warmup-batches", &a.warmup_batches.to_string()])
        // Binaries before 2026-12-07 time fresh networks and know no `--weights`: time them
        // against `--weights fresh`.
        .args(match a.weights {
            Weights::Trained => vec!["--weights", "trained", "--experiments-dir"],
            Weights::Fresh => vec![],
        })
        .args(match a.weights {
            Weights::Trained => vec![a.experiments_dir.as_os_str()],
            Weights::Fresh => vec![],
        })
        .arg("--data-dir")
        .arg(&a.data_dir)
        .arg("--models-dir")
        .arg(&a.models_dir)
        .output()
        .map_err(|e| anyhow::anyhow!("baseline {}: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    fn cells(l: &str) -> Vec<&str> {
        l.split('|').map(str::trim).collect()
    }
    let column = text
        .lines()
        .find(|l| l.starts_with('|') && l.contains("samples/s"))
        .and_then(|h| cells(h).iter().position(|c| *c == "samples/s"));
    column
        .and_then(|col| {
            text.lines()
                .filter(|l| l.starts_with('|') && !l.contains("---") && !l.contains("samples/s"))
                .find_map(|l| cells(l).get(col)?.parse::<f64>().ok())
        })
        .ok_or_else(|| {
            anyhow::anyhow!(
                "baseline {} printed no timing row for {model} (stderr: {})",
                bin.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
}

/// Seconds spent encoding and stepping `batches` training steps of batch size `bs`.
struct Timing {
    samples: usize,
    encode: f64,
    step: f64,
    /// Kernels launched by the timed steps (CubeCL devices).
    launches: Option<LaunchCounts>,
    /// Blocking device→host reads the timed steps made ([`crate::device_reads`]).
    reads: u64,
    /// Bytes a step's batch uploads to a device (trains, labels, sample weights).
    upload_bytes: usize,
}

/// Batches of a timed run: `warmup` untimed ones, then `timed` ones, of `size` samples.
#[derive(Clone, Copy)]
struct Batches {
    size: usize,
    warmup: usize,
    timed: usize,
}

fn time_steps(
    mut model: SpikingClassifier,
    data: (&SampleDataset, &SpikeBatcher),
    batches: Batches,
    device: &burn::prelude::Device,
) -> Result<Timing> {
    let mut optim = crate::train::adam::FusedAdam::module_optimizer();
    let bs = batches.size;
    let mut timing = Timing {
        samples: batches.timed * bs,
        encode: 0.0,
        step: 0.0,
        launches: None,
        reads: 0,
        upload_bytes: 0,
    };
    let mut index = 0usize;
    let mut last_loss = None;
    for k in 0..batches.warmup + batches.timed {
        let t0 = Instant::now();
        let batch = next_batch(data, &mut index, bs, device)?;
        let t1 = Instant::now();
        timing.upload_bytes = upload_bytes(&batch, device);
        let current = model;
        let step = || train_step(current, &mut optim, batch);
        let reads = crate::device_reads::reads_so_far();
        let ((next, loss), launches) = count_step_launches(device, step);
        model = next;
        if k >= batches.warmup {
            timing.reads += crate::device_reads::reads_so_far() - reads;
            timing.encode += (t1 - t0).as_secs_f64();
            timing.step += t1.elapsed().as_secs_f64();
            if let Some(n) = launches {
                timing.launches.get_or_insert_default().add(&n);
            }
            last_loss = Some(loss);
        }
    }
    // A device queues the steps: wait for the last one (one read per timed run).
    let t = Instant::now();
    if let Some(loss) = last_loss {
        crate::device_reads::scalar::<f32, 1, _>(loss, "the loss");
    }
    timing.step += t.elapsed().as_secs_f64();
    Ok(timing)
}

/// Bytes of the device tensors the batcher made for `batch` on a device (none on the host).
fn upload_bytes(batch: &crate::train::data::SpikeBatch, device: &burn::prelude::Device) -> usize {
    if crate::backend::on_host(device) {
        return 0;
    }
    let trains = batch.spikes.to_trains(device);
    let bytes = |shape: burn::tensor::Shape, dtype: burn::tensor::DType| {
        shape.num_elements() * dtype.size()
    };
    let weights = batch.sample_weight.iter();
    bytes(trains.words().shape(), trains.words().dtype())
        + bytes(trains.counts().shape(), trains.counts().dtype())
        + bytes(batch.labels.shape(), batch.labels.dtype())
        + weights.map(|w| bytes(w.shape(), w.dtype())).sum::<usize>()
}

/// The next `bs` samples of the dataset (cyclically from `index`) as a batch on `device`.
fn next_batch(
    (dataset, batcher): (&SampleDataset, &SpikeBatcher),
    index: &mut usize,
    bs: usize,
    device: &burn::prelude::Device,
) -> Result<crate::train::data::SpikeBatch> {
    let items: Vec<_> = (0..bs)
        .map(|k| burn::data::dataset::Dataset::get(dataset, (*index + k) % dataset_len(dataset)))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    *index += bs;
    Ok(batcher.batch(items, device))
}

/// One training step as `experiment train` takes it: forward, count loss and penalty,
/// HM2-BP backward, Adam; the next model and the loss.
fn train_step(
    model: SpikingClassifier,
    optim: &mut ModuleOptimizer,
    batch: crate::train::data::SpikeBatch,
) -> (SpikingClassifier, burn::tensor::Tensor<1>) {
    let (_, loss) = model.run(batch);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    (optim.step(1e-3, model, grads), loss)
}

/// `step`'s result and, on a CubeCL device, the kernels it launched.
fn count_step_launches<R>(
    device: &burn::prelude::Device,
    step: impl FnOnce() -> R,
) -> (R, Option<LaunchCounts>) {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if !crate::backend::on_host(device) {
        let (r, n) = crate::device_counts::count_launches(step);
        return (r, Some(n));
    }
    let _ = device;
    (step(), None)
}

fn dataset_len(dataset: &SampleDataset) -> usize {
    burn::data::dataset::Dataset::len(dataset)
}
