//! `experiment`: train, evaluate, trace and benchmark HM2-BP spiking networks.
//!
//! With no arguments it trains the default experiment (the paper's MNIST 784-800-10 MLP),
//! fetching MNIST first if it is not in the data folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use hm2bp::datasets::fetch::{FetchOptions, fetch_datasets};
use hm2bp::datasets::{DatasetKind, ImageDatasetKind, Split, load_image_set};
use hm2bp::experiment::{ExperimentDef, ExperimentPatch};
use hm2bp::ops::KernelPath;
use hm2bp::train::launcher::Ranks;
use hm2bp::train::sharded::Workers;
use hm2bp::train::{RunOptions, evaluate, train};

/// Large, short-lived tensors (spike trains of a batch) are allocated every step: mimalloc
/// reuses their pages instead of faulting fresh ones in from the kernel each time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (libmimalloc-sys does not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed pages mapped: every training step frees and reallocates the same large buffers,
/// and returning them to the kernel made it zero fresh (huge) pages on every step (~17 % of a
/// step's time in `experiment bench`).
fn keep_freed_memory() {
    // SAFETY: sets a plain integer option of the allocator; valid at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// Builds rayon's global pool with each worker pinned to its own CPU (worker `i` on the
/// `i`-th CPU this process may use, round robin when there are more workers than CPUs).
/// Unpinned, the kernel at times woke a worker on the CPU of the worker that woke it and left
/// the two time-slicing one CPU (4 ms turns) while the other CPU idled: ~20 % of a 2-core
/// training step. `HM2BP_PIN_THREADS=0` leaves the workers unpinned.
///
/// The ranks of an MPI job on one machine (`local` = (rank on this machine, ranks on it))
/// share its CPUs: without `RAYON_NUM_THREADS` each gets `CPUs / ranks` workers (at least
/// one), pinned from CPU `rank × workers` on.
fn pin_workers(local: Option<(usize, usize)>) {
    let Some(cpus) = core_affinity::get_core_ids().filter(|c| c.len() > 1) else {
        return;
    };
    let (local_rank, local_ranks) = local.unwrap_or((0, 1));
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&t| t > 0)
        .unwrap_or((cpus.len() / local_ranks).max(1));
    let first = local_rank * threads;
    let pin = !std::env::var("HM2BP_PIN_THREADS").is_ok_and(|v| v == "0");
    // Fails only if the pool already exists; the default pool then runs unpinned.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(move |i| {
            if pin {
                core_affinity::set_for_current(cpus[(first + i) % cpus.len()]);
            }
        })
        .build_global();
}

/// Experiment that runs when no subcommand is given.
const DEFAULT_EXPERIMENT: &str = "mnist-mlp";

#[derive(Parser, Debug)]
#[command(
    name = "experiment",
    version,
    about = "Train and evaluate spiking neural networks with HM2-BP (Jin, Zhang & Li, NeurIPS 2018)",
    long_about = "Train and evaluate spiking neural networks with HM2-BP.\n\n\
        Without a subcommand, trains the default experiment (mnist-mlp: the paper's MNIST \
        784-800-10 network, T = 400), fetching MNIST first if needed."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train an experiment (experiments/NAME/experiment.toml).
    Train(TrainArgs),
    /// Evaluate a trained model on the experiment's test split.
    Eval(EvalArgs),
    /// Fetch the datasets into the data folder (idempotent, md5-checked).
    FetchData(FetchArgs),
    /// One faithful HM2-BP training step on a JSON case, every intermediate quantity as JSON.
    Trace(TraceArgs),
    /// Time forward+backward of a spiking dense layer stack on real or synthetic spikes.
    Bench(hm2bp::bench::BenchArgs),
    /// Train one experiment with several methods (HM2-BP, BPTT baselines) and write the
    /// comparison table (compare.md/.csv/.json) and plot (compare.png).
    Compare(CompareArgs),
    /// Draw figures: learning curves of runs, or the spikes of a trained network.
    #[command(subcommand)]
    Plot(PlotCommand),
    /// Export a trained HM2-BP model to NIR (needs a build with `--features nir`).
    Export(ExportArgs),
    /// Import a NIR graph as a network definition (OUT.json) and model file (OUT.bpk) (needs a
    /// build with `--features nir`).
    Import(ImportArgs),
}

/// Formats `export` writes.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum ExportFormat {
    /// Neuromorphic Intermediate Representation (HDF5 `.nir`).
    Nir,
}

#[derive(Args, Debug)]
#[cfg_attr(not(feature = "nir"), allow(dead_code))]
struct ExportArgs {
    /// Trained model file (.bpk).
    model: PathBuf,
    /// Output file.
    out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "nir")]
    format: ExportFormat,
    /// Experiment the model was trained with (name or path; it names the network definition).
    #[arg(long, default_value = DEFAULT_EXPERIMENT)]
    experiment: String,
    /// Store the refractory period, which NIR's CubaLIF cannot express, as node metadata
    /// `hm2bp_t_ref` (read back by `import`, ignored by other NIR tools); without it a model
    /// with a refractory period is refused.
    #[arg(long)]
    refractory_metadata: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
#[cfg_attr(not(feature = "nir"), allow(dead_code))]
struct ImportArgs {
    /// NIR file.
    input: PathBuf,
    /// Output model file (.bpk); the network definition is written beside it (.json, named
    /// after the file stem: copy it into the models folder to use it in an experiment).
    out: PathBuf,
}

#[derive(Subcommand, Debug)]
enum PlotCommand {
    /// Test accuracy and training loss per epoch of one or more runs (summary.json files),
    /// beside the authors' logged curve.
    Curves(CurvesArgs),
    /// Spike rasters of every layer for chosen test samples (rasters-sample-K.png) and per-layer
    /// histograms of firing rates and silent neurons (activity.png), from a trained model.
    Spikes(Box<SpikesArgs>),
}

#[derive(Args, Debug)]
struct CurvesArgs {
    /// summary.json files (or run folders holding one).
    #[arg(required = true)]
    summaries: Vec<PathBuf>,
    /// Legend labels, comma-separated (default: the folder names).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// The authors' curve to draw beside them.
    #[arg(long, value_enum, default_value = "none")]
    authors: hm2bp::plot::curves::AuthorsCurve,
    /// Figure title.
    #[arg(long, default_value = "learning curves")]
    title: String,
    /// Output PNG.
    #[arg(long, default_value = "curves.png")]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct SpikesArgs {
    /// Experiment name or path.
    #[arg(default_value = DEFAULT_EXPERIMENT)]
    experiment: String,
    /// Trained model file (default: runs/EXPERIMENT/model.bpk).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Test samples whose rasters to draw, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    samples: Vec<usize>,
    /// Test samples the activity histograms average over.
    #[arg(long, default_value_t = 500)]
    activity_samples: usize,
    /// Output folder.
    #[arg(long, default_value = "plots")]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    patch: ExperimentPatch,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Dataset folder.
    #[arg(long, env = "HM2BP_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Folder of experiment definitions.
    #[arg(long, default_value = "experiments")]
    experiments_dir: PathBuf,
    /// Folder of network definitions.
    #[arg(long, default_value = "models")]
    models_dir: PathBuf,
    /// Backend: flex, ndarray or wgpu (those compiled in; default: the first CPU one).
    #[arg(long, env = "HM2BP_BACKEND")]
    backend: Option<String>,
    /// Spiking dense layers: event-driven host kernels (CPU backends) or the backend's
    /// tensor operations (generic; what GPU backends always run).
    #[arg(long, value_enum, default_value = "event-driven")]
    kernels: KernelPath,
    /// Let --backend wgpu run on a software adapter (lavapipe, llvmpipe: the CPU, slower than
    /// flex), which is refused otherwise.
    #[arg(long)]
    allow_software_gpu: bool,
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// Experiment name (a folder of experiments/) or path to an experiment.toml.
    #[arg(default_value = DEFAULT_EXPERIMENT)]
    experiment: String,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    patch: ExperimentPatch,
    /// Output folder (default: runs/EXPERIMENT).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from the last checkpoint in the output folder (of an epoch's end, or a
    /// mid-epoch one).
    #[arg(long)]
    resume: bool,
    /// With --resume: continue although the experiment's settings (other than epochs,
    /// checkpoint_minutes, average_last, description) differ from those the run was started with, e.g. a
    /// lower learning rate; the differences are printed and the new settings recorded.
    #[arg(long, requires = "resume")]
    accept_changed_settings: bool,
    /// Minutes between mid-epoch checkpoints (default: the experiment's `checkpoint_minutes`,
    /// 10; 0: only at the end of every epoch).
    #[arg(long)]
    checkpoint_minutes: Option<f64>,
    /// Also test the mean parameters of the last N epochs (default: the experiment's
    /// `average_last`; 0: off), written to OUT/model-average.bpk.
    #[arg(long)]
    average_last: Option<usize>,
    /// Mid-epoch checkpoints every N batches instead (for tests; 0: off).
    #[arg(long, hide = true)]
    checkpoint_every_batches: Option<usize>,
    /// Plain progress lines instead of the dashboard (automatic when stdout is not a terminal).
    #[arg(long)]
    plain: bool,
    /// Do not fetch missing datasets automatically.
    #[arg(long)]
    no_fetch: bool,
    /// Split every global batch into N shards whose gradients are summed in order, as N
    /// ranks of `mpirun` do (the same weights); 1: the single-process step.
    #[arg(long, default_value_t = 1)]
    virtual_workers: usize,
    /// Read the numerical-fault checks, boosting's verdicts and the dashboard's metrics back
    /// from the device every N steps (and at every epoch's last step) instead of every step
    /// (default: 1 on the CPU backends, 25 on wgpu).
    #[arg(long)]
    read_every: Option<usize>,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// Experiment name or path.
    #[arg(default_value = DEFAULT_EXPERIMENT)]
    experiment: String,
    /// Methods, comma-separated: hm2bp, bptt, bptt-SURROGATE (arctan, fast-sigmoid, triangle,
    /// super-spike, exponential), each optionally with :STEPS (e.g. bptt-arctan:25).
    #[arg(long, value_delimiter = ',', default_value = "hm2bp,bptt-arctan")]
    methods: Vec<String>,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    patch: ExperimentPatch,
    /// Output folder (default: runs/EXPERIMENT-compare).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Do not fetch missing datasets automatically.
    #[arg(long)]
    no_fetch: bool,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// Experiment name or path.
    #[arg(default_value = DEFAULT_EXPERIMENT)]
    experiment: String,
    /// Trained model file (default: runs/EXPERIMENT/model.bpk).
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    patch: ExperimentPatch,
}

#[derive(Args, Debug)]
struct FetchArgs {
    /// Dataset folder.
    #[arg(long, env = "HM2BP_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Copy the datasets from this folder (laid out like the data folder) instead of
    /// downloading them, e.g. `--from ../shared/data`.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Datasets to fetch (default: mnist and fashion-mnist).
    #[arg(long, value_delimiter = ',')]
    dataset: Vec<ImageDatasetKind>,
}

#[derive(Args, Debug)]
struct TraceArgs {
    /// Case file (schema hm2bp-case/1).
    #[arg(long)]
    case: PathBuf,
    /// Output file (schema hm2bp-trace/1); `-` for stdout.
    #[arg(long, default_value = "-")]
    out: PathBuf,
}

fn main() -> ExitCode {
    keep_freed_memory();
    let ranks = match Ranks::start() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    pin_workers(ranks.local());
    let cli = Cli::parse();
    let result = match cli.command {
        None => run_train(default_train_args(), &ranks),
        Some(Command::Train(a)) => run_train(a, &ranks),
        Some(Command::Eval(a)) => run_eval(a),
        Some(Command::FetchData(a)) => run_fetch(a),
        Some(Command::Trace(a)) => run_trace(a),
        Some(Command::Bench(a)) => hm2bp::bench::run(a),
        Some(Command::Compare(a)) => run_compare(a),
        Some(Command::Plot(PlotCommand::Curves(a))) => run_curves(a),
        Some(Command::Plot(PlotCommand::Spikes(a))) => run_spikes(*a),
        Some(Command::Export(a)) => run_export(a),
        Some(Command::Import(a)) => run_import(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ranks.fail(&e),
    }
}

/// `train` with every option at its default (what a bare `experiment` runs).
fn default_train_args() -> TrainArgs {
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: TrainArgs,
    }
    Wrapper::parse_from(["experiment"]).args
}

fn device(common: &Common, say: bool) -> Result<(burn::prelude::Device, String)> {
    let (device, name) =
        hm2bp::backend::device(common.backend.as_deref(), common.allow_software_gpu)
            .map_err(|m| anyhow::anyhow!(m))?;
    let name = match common.kernels {
        KernelPath::EventDriven => name,
        KernelPath::Generic => format!("{name}, generic tensor-op kernels"),
    };
    if say {
        println!("backend: {name}");
    }
    Ok((device, name))
}

/// The experiment `name` with the settings `patch` gives replaced.
fn load_experiment(name: &str, common: &Common, patch: &ExperimentPatch) -> Result<ExperimentDef> {
    ExperimentDef::load(name, &common.experiments_dir)?
        .apply(patch)
        .map_err(|m| anyhow::anyhow!("invalid option: {m}"))
}

/// Fetches the experiment's dataset if it is missing (the default run gets its own data);
/// datasets that no registry ships are explained instead.
fn ensure_data(kind: DatasetKind, data_dir: &Path) -> Result<()> {
    let Some(kind) = kind.images() else {
        return kind
            .check_present(data_dir)
            .map_err(|hint| anyhow::anyhow!("{kind} not found in {}: {hint}", data_dir.display()));
    };
    if load_image_set(kind, data_dir, Split::Test).is_ok() {
        return Ok(());
    }
    println!("{kind} not found in {}: fetching it", data_dir.display());
    let opts = FetchOptions {
        data_dir: data_dir.to_path_buf(),
        from: None,
        datasets: vec![kind],
    };
    fetch_datasets(&opts, &mut |line| println!("  {line}")).with_context(|| {
        format!(
            "could not fetch {kind}; get it with `cargo run --release --bin experiment -- \
             fetch-data --data-dir {}` (or `--from DIR` with a local copy)",
            data_dir.display()
        )
    })
}

fn run_train(a: TrainArgs, ranks: &Ranks) -> Result<()> {
    let workers = Workers::new(a.virtual_workers, ranks.collective())
        .map_err(|m| anyhow::anyhow!("invalid option: {m}"))?;
    // Rank 0 speaks and fetches; the others wait for it in the run's first exchange.
    let say = workers.is_writer();
    let patch = ExperimentPatch {
        checkpoint_minutes: a.checkpoint_minutes,
        average_last: a.average_last,
        ..a.patch
    };
    let exp = load_experiment(&a.experiment, &a.common, &patch)?;
    // A bad model name fails before any download.
    hm2bp::model::NetworkDef::load(&exp.model, &a.common.models_dir)?;
    if !a.no_fetch && say {
        ensure_data(exp.dataset, &a.common.data_dir)?;
    }
    let (device, backend) = device(&a.common, say)?;
    let out_dir = a
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(&exp.name));
    if say {
        println!(
            "experiment {}: {} on {}, T = {}, {} epochs, batch {}{}; output in {}",
            exp.name,
            exp.model,
            exp.dataset,
            exp.steps,
            exp.epochs,
            exp.batch_size,
            workers.describe(),
            out_dir.display()
        );
    }
    let opts = RunOptions {
        data_dir: a.common.data_dir,
        models_dir: a.common.models_dir,
        out_dir: out_dir.clone(),
        resume: a.resume,
        accept_changed_settings: a.accept_changed_settings,
        plain: a.plain,
        device,
        backend,
        kernels: a.common.kernels,
        checkpoint_every_batches: a.checkpoint_every_batches,
        read_every: a.read_every,
        workers,
    };
    let summary = train(&exp, &opts)?;
    if !say {
        return Ok(());
    }
    let split = hm2bp::train::run::evaluated_split(&exp);
    println!(
        "best {split} accuracy {:.2}% (epoch {}); summary in {}",
        100.0 * summary.best_test_accuracy,
        summary.best_epoch,
        out_dir.join("summary.json").display()
    );
    if let Some(a) = &summary.average {
        println!(
            "mean parameters of epochs {:?}: {split} accuracy {:.2}% ({})",
            a.epochs,
            100.0 * a.test_accuracy,
            out_dir.join("model-average.bpk").display()
        );
    }
    Ok(())
}

fn run_compare(a: CompareArgs) -> Result<()> {
    let exp = load_experiment(&a.experiment, &a.common, &a.patch)?;
    hm2bp::model::NetworkDef::load(&exp.model, &a.common.models_dir)?;
    if !a.no_fetch {
        ensure_data(exp.dataset, &a.common.data_dir)?;
    }
    let out_dir = a
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-compare", exp.name)));
    let exe = std::env::current_exe().context("cannot locate this program to run the methods")?;
    let common = a.common.clone();
    // Each method trains in its own process, so that its peak memory is its own.
    let mut train_one = |toml: &Path, out: &Path| -> Result<()> {
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("train")
            .arg(toml)
            .arg("--out")
            .arg(out)
            .args(["--plain", "--no-fetch"])
            .arg("--data-dir")
            .arg(&common.data_dir)
            .arg("--models-dir")
            .arg(&common.models_dir);
        if let Some(b) = &common.backend {
            cmd.args(["--backend", b]);
        }
        if common.allow_software_gpu {
            cmd.arg("--allow-software-gpu");
        }
        if let Some(kernels) = common.kernels.to_possible_value() {
            cmd.args(["--kernels", kernels.get_name()]);
        }
        let status = cmd
            .status()
            .with_context(|| format!("cannot run {}", exe.display()))?;
        anyhow::ensure!(status.success(), "training failed ({status})");
        Ok(())
    };
    let runs = hm2bp::compare::compare(&exp, &a.methods, &out_dir, &mut train_one)?;
    for r in &runs {
        println!(
            "{}: best test accuracy {:.2}%, {:.1} s/epoch",
            r.method,
            100.0 * r.summary.best_test_accuracy,
            r.seconds_per_epoch()
        );
    }
    println!(
        "comparison in {} (compare.md, compare.csv, compare.json, compare.png)",
        out_dir.display()
    );
    Ok(())
}

fn run_eval(a: EvalArgs) -> Result<()> {
    let (exp, opts, model) = trained_model(&a.experiment, a.common, &a.patch, a.model)?;
    let acc = evaluate(&exp, &opts, &model)?;
    println!("test accuracy {:.2}% ({})", 100.0 * acc, model.display());
    Ok(())
}

/// The experiment, run options and model file (default: runs/EXPERIMENT/model.bpk) of a
/// command that runs a trained model.
fn trained_model(
    name: &str,
    common: Common,
    patch: &ExperimentPatch,
    model: Option<PathBuf>,
) -> Result<(ExperimentDef, RunOptions, PathBuf)> {
    let exp = load_experiment(name, &common, patch)?;
    let (device, backend) = device(&common, true)?;
    let model = model.unwrap_or_else(|| PathBuf::from("runs").join(&exp.name).join("model.bpk"));
    let opts = RunOptions {
        data_dir: common.data_dir,
        models_dir: common.models_dir,
        out_dir: PathBuf::new(),
        resume: false,
        accept_changed_settings: false,
        plain: true,
        device,
        backend,
        kernels: common.kernels,
        checkpoint_every_batches: None,
        read_every: None,
        workers: Workers::default(),
    };
    Ok((exp, opts, model))
}

fn run_curves(a: CurvesArgs) -> Result<()> {
    use hm2bp::plot::curves::{learning_curves, read_summary};
    if !a.labels.is_empty() && a.labels.len() != a.summaries.len() {
        anyhow::bail!(
            "--labels: {} labels for {} summaries",
            a.labels.len(),
            a.summaries.len()
        );
    }
    let runs = a
        .summaries
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let file = if p.is_dir() {
                p.join("summary.json")
            } else {
                p.clone()
            };
            let label = a.labels.get(k).cloned().unwrap_or_else(|| {
                let dir = file.parent().and_then(|d| d.file_name());
                dir.map_or_else(
                    || file.display().to_string(),
                    |d| d.to_string_lossy().into(),
                )
            });
            Ok((label, read_summary(&file)?))
        })
        .collect::<Result<Vec<_>>>()?;
    learning_curves(&runs, a.authors, &a.title, &a.out)?;
    println!("wrote {}", a.out.display());
    Ok(())
}

fn run_spikes(a: SpikesArgs) -> Result<()> {
    let (exp, opts, model) = trained_model(&a.experiment, a.common, &a.patch, a.model)?;
    let written = hm2bp::plot::spikes::plot_spikes(
        &exp,
        &opts,
        &model,
        &a.samples,
        a.activity_samples,
        &a.out,
    )?;
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(())
}

fn run_fetch(a: FetchArgs) -> Result<()> {
    let datasets = if a.dataset.is_empty() {
        vec![ImageDatasetKind::Mnist, ImageDatasetKind::FashionMnist]
    } else {
        a.dataset
    };
    let opts = FetchOptions {
        data_dir: a.data_dir,
        from: a.from,
        datasets,
    };
    fetch_datasets(&opts, &mut |line| println!("{line}"))?;
    Ok(())
}

fn run_trace(a: TraceArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.case)
        .with_context(|| format!("cannot read {}", a.case.display()))?;
    let case = hm2bp::trace::Case::from_json(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.case.display()))?;
    let trace = hm2bp::trace::run_trace(&case);
    let json = serde_json::to_string_pretty(&trace)?;
    if a.out == Path::new("-") {
        println!("{json}");
    } else {
        std::fs::write(&a.out, json)
            .with_context(|| format!("cannot write {}", a.out.display()))?;
    }
    Ok(())
}

#[cfg(feature = "nir")]
fn run_export(a: ExportArgs) -> Result<()> {
    use hm2bp::nir::Refractory;
    use hm2bp::train::classifier::Network;
    let ExportFormat::Nir = a.format;
    let (exp, opts, model) = trained_model(
        &a.experiment,
        a.common,
        &ExperimentPatch::default(),
        Some(a.model),
    )?;
    let def = hm2bp::model::NetworkDef::load(&exp.model, &opts.models_dir)?;
    let classifier = hm2bp::train::trained_classifier(&exp, &opts, &model)?;
    let Network::Hm2bp(net) = &classifier.net else {
        anyhow::bail!(
            "{}: a BPTT network; only HM2-BP networks are exported",
            model.display()
        );
    };
    let refractory = if a.refractory_metadata {
        Refractory::Metadata
    } else {
        Refractory::Refuse
    };
    let graph = hm2bp::nir::export(net, def.input, refractory)
        .with_context(|| format!("{} cannot be exported to NIR", model.display()))?;
    hm2bp::nir::write(&a.out, &graph)?;
    println!("wrote {}", a.out.display());
    Ok(())
}

#[cfg(feature = "nir")]
fn run_import(a: ImportArgs) -> Result<()> {
    use burn::module::Module;
    use hm2bp::model::RuleOptions;
    use hm2bp::rule::output::CountTargets;
    use hm2bp::rule::regularizer::WeightRegularizer;
    use hm2bp::train::classifier::{CountLoss, Network, SpikingClassifier};
    let graph = hm2bp::nir::read(&a.input)?;
    let name = a
        .out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .with_context(|| format!("{}: not a file name", a.out.display()))?;
    let (device, _) = hm2bp::backend::device(None, false).map_err(|m| anyhow::anyhow!(m))?;
    // The learning rule is not part of a NIR graph; the model file holds weights only.
    let rule = RuleOptions {
        effect_ratio: true,
        regularizer: WeightRegularizer::OFF,
        label_spike_level: 35,
    };
    let (def, net) = hm2bp::nir::import(&graph, &name, &rule, &device)
        .with_context(|| format!("{}: cannot import", a.input.display()))?;
    let def_path = a.out.with_extension("json");
    std::fs::write(&def_path, serde_json::to_string_pretty(&def)? + "\n")
        .with_context(|| format!("cannot write {}", def_path.display()))?;
    let classifier =
        SpikingClassifier::new(Network::Hm2bp(net), CountLoss::Mse(CountTargets::default()));
    classifier
        .into_record()
        .save(a.out.with_extension(""))
        .map_err(|e| anyhow::anyhow!("{}: cannot save the model: {e:?}", a.out.display()))?;
    println!(
        "wrote {} and {}",
        def_path.display(),
        a.out.with_extension("bpk").display()
    );
    Ok(())
}

/// Why `export` and `import` fail in a build without NIR.
#[cfg(not(feature = "nir"))]
fn nir_not_built() -> anyhow::Error {
    anyhow::anyhow!(
        "NIR support is not built in: rebuild with `--features nir` (needs the HDF5 library, \
         e.g. `apt-get install libhdf5-dev`)"
    )
}

#[cfg(not(feature = "nir"))]
fn run_export(_: ExportArgs) -> Result<()> {
    Err(nir_not_built())
}

#[cfg(not(feature = "nir"))]
fn run_import(_: ImportArgs) -> Result<()> {
    Err(nir_not_built())
}
