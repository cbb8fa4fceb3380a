//! Training and evaluation with burn-train's `SupervisedTraining`: the TUI dashboard on a
//! terminal (plain progress lines otherwise), test evaluation every epoch, checkpoints every
//! epoch and every few minutes inside one ([`midepoch`]) with `--resume`, and `summary.json`
//! in the output folder.

pub mod adam;
pub mod average;
pub mod boosting;
pub mod classifier;
pub mod data;
pub mod fault;
pub mod metrics;
pub mod midepoch;
pub mod order;
pub mod position;
pub mod renderer;
pub mod resumed_loader;
pub mod schedule;
pub mod started_with;
pub mod summary;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::module::Module;
use burn::prelude::*;
use burn::train::checkpoint::{
    ComposedCheckpointingStrategy, KeepLastNCheckpoints, MetricCheckpointingStrategy,
};
use burn::train::logger::FileMetricLogger;
use burn::train::metric::store::{Aggregate, Direction, Split as MetricSplit};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};

use crate::bptt::{BpttNet, SpikeFunction};
use crate::datasets::{AugmentConfig, RateEncoder, Samples, Split, augment, load_samples};
use crate::experiment::{CountLossKind, ExperimentDef, Method};
use crate::model::{NetworkDef, RuleOptions, SpikingNet};
use crate::ops::KernelPath;
use boosting::Boosting;
use classifier::{CountLoss, Network, SpikingClassifier};
use data::{SampleDataset, SpikeBatch, SpikeBatcher};
use fault::FaultWatch;
use metrics::{Activity, ActivityFigure, AuthorsCost, DeadNeuronMetric};
use midepoch::{Every, MidEpochRecord, MidEpochWriter, ResumingCheckpointer};
use order::{DataOrder, OrderedDataset};
use position::Position;
use renderer::PlainRenderer;
use resumed_loader::ResumedLoader;
use schedule::EpochLrScheduler;
use started_with::StartedWith;
use summary::{RunSummary, SummaryLogger};

/// Where a run reads and writes, and how it shows progress.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Dataset root.
    pub data_dir: PathBuf,
    /// Network definitions.
    pub models_dir: PathBuf,
    /// Output folder (checkpoints, logs, `summary.json`).
    pub out_dir: PathBuf,
    /// Continue from the last checkpoint in `out_dir`.
    pub resume: bool,
    /// With `resume`: continue although the settings differ from those the run was started
    /// with (see [`started_with`]).
    pub accept_changed_settings: bool,
    /// Plain progress lines instead of the dashboard.
    pub plain: bool,
    /// Device to train on (without autodiff).
    pub device: Device,
    /// Human-readable backend/device name.
    pub backend: String,
    /// Kernels of the spiking dense layers.
    pub kernels: KernelPath,
    /// Mid-epoch checkpoints every N batches instead of every `checkpoint_minutes` of the
    /// experiment (tests; 0 = off).
    pub checkpoint_every_batches: Option<usize>,
}

/// Loads a split and keeps the first `limit` samples.
pub fn load_split(exp: &ExperimentDef, data_dir: &Path, split: Split) -> Result<Samples> {
    let mut set = load_samples(
        exp.dataset,
        data_dir,
        split,
        exp.steps,
        &exp.input_options(),
    )?;
    let limit = match split {
        Split::Train => exp.train_samples,
        Split::Test => exp.test_samples,
    };
    if let Some(n) = limit {
        set.truncate(n);
    }
    if set.is_empty() {
        bail!("{} split of {} is empty", split_name(split), exp.dataset);
    }
    Ok(set)
}

fn split_name(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Test => "test",
    }
}

/// How a split is loaded: the training split is shuffled, may be augmented and boosted.
struct SplitLoading {
    /// Where the first pass starts (after `--resume`: where the checkpoint left off).
    start: Position,
    order: DataOrder,
    augmentation: Option<AugmentConfig>,
    boosting: Option<Arc<Boosting>>,
}

impl SplitLoading {
    /// The test split from 0-based epoch `first_epoch` on: in order, as it is.
    fn test(first_epoch: usize) -> Self {
        Self {
            start: Position::epoch_start(first_epoch),
            order: DataOrder::IN_ORDER,
            augmentation: None,
            boosting: None,
        }
    }
}

fn loader(
    exp: &ExperimentDef,
    set: Samples,
    device: &Device,
    how: SplitLoading,
) -> Arc<dyn DataLoader<SpikeBatch>> {
    let encoder =
        RateEncoder::new(exp.steps, exp.seed, exp.encoding).with_process(exp.spike_process);
    let mut batcher = SpikeBatcher::new(encoder)
        .with_epochs(set.len().div_ceil(exp.batch_size), how.start.epoch)
        .skipping(how.start.batch);
    if let Some(a) = how.augmentation {
        batcher = batcher.with_augmentation(a);
    }
    if let Some(b) = how.boosting {
        batcher = batcher.with_boosting(b);
    }
    // One worker: `OrderedDataset` relies on the items being read in turn.
    let done_items = how.start.batch * exp.batch_size;
    let dataset = OrderedDataset::new(
        SampleDataset::new(set),
        how.order,
        exp.seed,
        how.start.epoch,
    )
    .skipping(done_items);
    let full = DataLoaderBuilder::new(batcher)
        .batch_size(exp.batch_size)
        .num_workers(1)
        .set_device(device.clone())
        .build(dataset);
    if done_items == 0 {
        full
    } else {
        Arc::new(ResumedLoader::new(full, done_items))
    }
}

/// Builds the classifier of an experiment on `device`.
pub fn build_classifier(
    exp: &ExperimentDef,
    models_dir: &Path,
    device: &Device,
    kernels: KernelPath,
) -> Result<(SpikingClassifier, NetworkDef)> {
    let def = NetworkDef::load(&exp.model, models_dir)?;
    let classifier = match exp.method {
        Method::Hm2bp => {
            let rule = RuleOptions {
                effect_ratio: exp.effect_ratio,
                regularizer: exp.regularizer.params(),
                label_spike_level: exp.targets.desired as u32,
            };
            let net = SpikingNet::new(&def, &rule, device)?.with_kernels(kernels);
            SpikingClassifier::new(Network::Hm2bp(net), CountLoss::Mse(exp.targets))
        }
        Method::Bptt => {
            let b = &exp.bptt;
            let spike = SpikeFunction::Surrogate(b.surrogate);
            let net = BpttNet::new(&def, spike, b.window, device)?;
            let loss = match b.loss {
                CountLossKind::CountMse => CountLoss::Mse(exp.targets),
                CountLossKind::CrossEntropy => CountLoss::CrossEntropy {
                    logit_scale: b.logit_scale / exp.steps as f32,
                },
            };
            SpikingClassifier::new(Network::Bptt(net), loss)
        }
    };
    Ok((classifier, def))
}

/// Where a resumed run continues: after its last epoch-end checkpoint, or at a mid-epoch
/// record of a later epoch (burn-train writes epoch checkpoints in the background, so the
/// last one may be missing after a kill).
struct ResumePoint {
    start: Position,
    mid_epoch: Option<MidEpochRecord>,
}

impl ResumePoint {
    /// The newest checkpoint in `out_dir`, if any.
    fn find(out_dir: &Path) -> Option<Self> {
        let finished = last_checkpoint(out_dir);
        let mid_epoch = MidEpochRecord::latest(&out_dir.join("checkpoint"))
            .filter(|r| r.position.epoch >= finished.unwrap_or(0));
        match (mid_epoch, finished) {
            (Some(record), _) => Some(Self {
                start: record.position,
                mid_epoch: Some(record),
            }),
            (None, Some(epoch)) => Some(Self {
                start: Position::epoch_start(epoch),
                mid_epoch: None,
            }),
            (None, None) => None,
        }
    }

    /// The model record it continues from.
    fn model_file(&self, checkpoint_dir: &Path) -> PathBuf {
        match &self.mid_epoch {
            Some(record) => record.model_file(),
            None => epoch_model_file(checkpoint_dir, self.start.epoch),
        }
    }
}

/// burn-train's model checkpoint of the end of 1-based `epoch`.
fn epoch_model_file(checkpoint_dir: &Path, epoch: usize) -> PathBuf {
    checkpoint_dir.join(format!("model-{epoch}.bpk"))
}

/// The last epoch with a model checkpoint in `out_dir/checkpoint`.
fn last_checkpoint(out_dir: &Path) -> Option<usize> {
    std::fs::read_dir(out_dir.join("checkpoint"))
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("model-")?
                .strip_suffix(".bpk")?
                .parse::<usize>()
                .ok()
        })
        .max()
}

/// Trains an experiment; returns its summary (also in `out_dir/summary.json`).
pub fn train(exp: &ExperimentDef, opts: &RunOptions) -> Result<RunSummary> {
    // Configuration errors first, before any data is read.
    NetworkDef::load(&exp.model, &opts.models_dir)?;
    let train_set = load_split(exp, &opts.data_dir, Split::Train)?;
    let test_set = load_split(exp, &opts.data_dir, Split::Test)?;
    let train_len = train_set.len();
    let device = opts.device.clone();
    device.seed(exp.seed);
    let ad = device.clone().autodiff();
    let init = crate::backend::init_device(&device);
    init.seed(exp.seed);
    let (model, def) = build_classifier(exp, &opts.models_dir, &init.autodiff(), opts.kernels)?;
    let mut model = model.fork(&ad);
    if def.input_size() != train_set.input_size() {
        bail!(
            "model '{}' expects {} inputs, dataset {} has {} input channels per sample",
            def.name,
            def.input_size(),
            exp.dataset,
            train_set.input_size()
        );
    }
    if let (Some(_), Samples::Images(images)) = (&exp.augmentation, &train_set) {
        let (rows, cols) = (images.images.rows, images.images.cols);
        if (rows, cols) != (augment::SIDE, augment::SIDE) {
            bail!(
                "augmentation: works on {0}×{0} images, dataset {1} has {rows}×{cols}",
                augment::SIDE,
                exp.dataset
            );
        }
    }
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("cannot create {}", opts.out_dir.display()))?;

    let summary_path = opts.out_dir.join("summary.json");
    let checkpoint_dir = opts.out_dir.join("checkpoint");
    let iterations = train_len.div_ceil(exp.batch_size);
    let started_with = StartedWith::new(exp, &def)?;
    let resume = if opts.resume {
        let point = ResumePoint::find(&opts.out_dir)
            .with_context(|| format!("--resume: no checkpoint in {}", checkpoint_dir.display()))?;
        started_with.check_resumes(&checkpoint_dir, opts.accept_changed_settings)?;
        if point.start.batch >= iterations {
            bail!(
                "--resume: the mid-epoch checkpoint is at batch {} but an epoch now has {iterations} \
                 batches (another batch size or sample count?); start a new run with another --out",
                point.start.batch
            );
        }
        // burn-train panics on a checkpoint that does not fit the model: check it first.
        load_model(model.clone(), &point.model_file(&checkpoint_dir)).with_context(|| {
            format!(
                "--resume: the checkpoint does not fit model {} (written by another \
                 network definition or an older version); start a new run with another --out",
                exp.model
            )
        })?;
        Some(point)
    } else {
        // Records of an earlier run in this folder must not be resumed later.
        midepoch::remove_all(&checkpoint_dir)
            .with_context(|| format!("cannot clear {}", checkpoint_dir.display()))?;
        started_with.save(&checkpoint_dir)?;
        None
    };
    let start = resume.as_ref().map_or_else(Position::default, |r| r.start);
    let previous: Option<RunSummary> = resume
        .as_ref()
        .and_then(|_| std::fs::read_to_string(&summary_path).ok())
        .and_then(|t| serde_json::from_str(&t).ok());
    let summary = Arc::new(Mutex::new(previous.unwrap_or(RunSummary {
        config: serde_json::json!({ "experiment": exp, "model": def }),
        backend: opts.backend.clone(),
        epochs: Vec::new(),
        best_test_accuracy: 0.0,
        best_epoch: 0,
        peak_memory_mib: None,
        average: None,
    })));

    let plain = opts.plain || !std::io::stdout().is_terminal();
    let lr = exp.learning_rate();
    let labels = layer_labels(model.net.layer_count());
    let layer_sizes = model.net.layer_sizes();
    let mut logger = SummaryLogger::new(
        summary_path.clone(),
        summary.clone(),
        train_len,
        Box::new(move |e| lr.at_epoch(e)),
        plain,
    )
    .with_layers(labels.iter().cloned().zip(layer_sizes).collect());
    if start.batch > 0 {
        logger = logger.resumed_mid_epoch(start.epoch, start.batch * exp.batch_size);
    }
    // Boosting weights (spec §3.5.4) when the experiment asks for them.
    let boosting = exp.boosting.then(|| {
        Arc::new(Boosting::new(
            train_set.labels().to_vec(),
            train_set.num_classes(),
        ))
    });
    if let Some(boosting) = &boosting {
        let path = opts.out_dir.join("boosting.json");
        let saved = match resume.as_ref().and_then(|r| r.mid_epoch.as_ref()) {
            Some(record) => record.boosting_file(),
            None => path.clone(),
        };
        if resume.is_some() && saved.is_file() {
            boosting
                .load(&saved)
                .with_context(|| format!("{}: cannot load", saved.display()))?;
        }
        model = model.with_boosting(boosting.clone());
        let b = boosting.clone();
        logger = logger.on_train_epoch_end(Box::new(move || {
            b.end_epoch();
            if let Err(e) = b.save(&path) {
                eprintln!("warning: cannot write {}: {e}", path.display());
            }
        }));
    }
    let scheduler = EpochLrScheduler::new(lr, iterations);
    if let Some(every) = Every::new(exp.checkpoint_minutes, opts.checkpoint_every_batches) {
        let writer = MidEpochWriter::new(
            checkpoint_dir.clone(),
            every,
            scheduler.clone(),
            iterations,
            start,
        );
        let writer = match &boosting {
            Some(b) => writer.with_boosting(b.clone()),
            None => writer,
        };
        model = model.with_mid_epoch_checkpoints(writer);
    }
    let train_how = SplitLoading {
        start,
        order: exp.order,
        augmentation: exp.augmentation,
        boosting,
    };
    let train_loader = loader(exp, train_set, &device, train_how);
    let test_loader = loader(exp, test_set, &device, SplitLoading::test(start.epoch));
    let [model_files, optim_files, scheduler_files] = ResumingCheckpointer::triple(
        &checkpoint_dir,
        resume.as_ref().and_then(|r| r.mid_epoch.clone()),
    );

    let mut training = SupervisedTraining::new(&opts.out_dir, train_loader, test_loader)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        // The file logger first: burn-train reads epoch values back from the first logger
        // that has them (checkpoint selection); the summary logger only writes.
        .with_metric_logger(FileMetricLogger::new(&opts.out_dir))
        .with_metric_logger(logger)
        .with_application_logger(None)
        .with_custom_checkpointers(model_files, optim_files, scheduler_files)
        .with_checkpointing_strategy(checkpoints_kept(exp.average_last))
        .num_epochs(exp.epochs)
        .summary();
    let label_level = exp.targets.desired as u32;
    training =
        training.metric_train_numeric(AuthorsCost::metric(exp.targets, exp.steps, label_level));
    for (k, label) in labels.iter().enumerate() {
        for kind in [Activity::SpikesPerNeuron, Activity::SilentPercent] {
            training = training
                .metric_train_numeric(ActivityFigure::metric(k, label, kind))
                .metric_valid_numeric(ActivityFigure::metric(k, label, kind));
        }
        training = training.metric_train_numeric(DeadNeuronMetric::new(k, label));
    }
    if plain {
        training = training.renderer(Box::new(PlainRenderer::new()));
    }
    if let Some(point) = &resume {
        match &point.mid_epoch {
            Some(_) => println!(
                "resuming from the mid-epoch checkpoint of epoch {}, after batch {}",
                start.epoch + 1,
                start.batch
            ),
            None => println!("resuming from the checkpoint of epoch {}", start.epoch),
        }
        // burn-train restores the records of this many finished epochs (a mid-epoch record's
        // through `ResumingCheckpointer`) and goes on with the next epoch.
        training = training.checkpoint(start.epoch);
    }
    let faults = FaultWatch::new(training.interrupter(), iterations, start);
    let model = model.with_fault_watch(faults.clone());
    let optimizer = adam::FusedAdam::module_optimizer();
    let result = training.launch(Learner::new(model, optimizer, scheduler));
    if let Some(fault) = faults.fault() {
        let kept = match last_checkpoint(&opts.out_dir) {
            Some(e) => format!(
                "the checkpoint of epoch {e} in {} is the last good one",
                opts.out_dir.join("checkpoint").display()
            ),
            None => "no epoch finished, so there is no checkpoint".into(),
        };
        bail!(
            "training stopped: {fault}; {kept} (a learning rate too high for this \
             setting diverges like this)"
        );
    }
    if let Some(error) = &result.error {
        bail!("training stopped: {error}");
    }
    result
        .model
        .into_record()
        .save(opts.out_dir.join("model"))
        .map_err(|e| anyhow::anyhow!("saving the final model: {e:?}"))?;
    let mut s = summary.lock().unwrap_or_else(|e| e.into_inner()).clone();
    s.peak_memory_mib = crate::bench::peak_memory_mib();
    if exp.average_last > 0 {
        s.average = Some(average_last_epochs(exp, opts)?);
    }
    std::fs::write(&summary_path, serde_json::to_string_pretty(&s)?)
        .with_context(|| format!("cannot write {}", summary_path.display()))?;
    Ok(s)
}

/// burn-train's checkpoint selection (the last two epochs and the one of the lowest test
/// loss), keeping the last `average_last` epochs when more.
fn checkpoints_kept(average_last: usize) -> ComposedCheckpointingStrategy {
    ComposedCheckpointingStrategy::builder()
        .add(KeepLastNCheckpoints::new(average_last.max(2)))
        .add(MetricCheckpointingStrategy::new(
            &LossMetric::new(),
            Aggregate::Mean,
            Direction::Lowest,
            MetricSplit::Valid,
        ))
        .build()
}

/// Averages the parameters of the run's last `exp.average_last` epochs (those whose
/// checkpoints are in `opts.out_dir`), writes `model-average.bpk` and tests it.
fn average_last_epochs(exp: &ExperimentDef, opts: &RunOptions) -> Result<average::AverageRecord> {
    let checkpoint_dir = opts.out_dir.join("checkpoint");
    let last = last_checkpoint(&opts.out_dir).context("averaging: no epoch checkpoint")?;
    let epochs: Vec<usize> = (last.saturating_sub(exp.average_last) + 1..=last)
        .filter(|&e| epoch_model_file(&checkpoint_dir, e).is_file())
        .collect();
    let (model, _) = build_classifier(exp, &opts.models_dir, &opts.device, opts.kernels)?;
    let models = epochs
        .iter()
        .map(|&e| load_model(model.clone(), &epoch_model_file(&checkpoint_dir, e)))
        .collect::<Result<Vec<_>>>()?;
    let mean = average::mean_parameters(models);
    let path = opts.out_dir.join("model-average");
    mean.clone()
        .into_record()
        .save(path.clone())
        .map_err(|e| anyhow::anyhow!("saving {}: {e:?}", path.display()))?;
    let test_set = load_split(exp, &opts.data_dir, Split::Test)?;
    let test_accuracy = accuracy(exp, &mean, test_set, &opts.device)?;
    Ok(average::AverageRecord {
        epochs,
        test_accuracy,
    })
}

/// "hidden 1", …, "output".
fn layer_labels(n: usize) -> Vec<String> {
    (0..n)
        .map(|k| {
            if k + 1 == n {
                "output".to_string()
            } else {
                format!("hidden {}", k + 1)
            }
        })
        .collect()
}

/// Loads the parameters of a model file into `model`, with an error (not a panic) when the
/// file is unreadable or does not fit the model.
fn load_model(model: SpikingClassifier, path: &Path) -> Result<SpikingClassifier> {
    let record = burn::store::ModuleRecord::load(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot load the model: {e:?}", path.display()))?;
    model
        .try_load_record(record)
        .map_err(|e| anyhow::anyhow!("{}: does not fit the model: {e:?}", path.display()))
}

/// The experiment's classifier with the parameters of a trained model file.
pub fn trained_classifier(
    exp: &ExperimentDef,
    opts: &RunOptions,
    model_file: &Path,
) -> Result<SpikingClassifier> {
    let (model, _) = build_classifier(exp, &opts.models_dir, &opts.device, opts.kernels)?;
    load_model(model, model_file)
}

/// Batches of a test split in order, encoded as in training (test trains are drawn once).
pub fn test_batches(
    exp: &ExperimentDef,
    set: Samples,
    device: &Device,
) -> Arc<dyn DataLoader<SpikeBatch>> {
    loader(exp, set, device, SplitLoading::test(0))
}

/// Test accuracy (fraction) of a trained model file on the experiment's test split.
pub fn evaluate(exp: &ExperimentDef, opts: &RunOptions, model_file: &Path) -> Result<f64> {
    let test_set = load_split(exp, &opts.data_dir, Split::Test)?;
    let model = trained_classifier(exp, opts, model_file)?;
    accuracy(exp, &model, test_set, &opts.device)
}

/// Accuracy (fraction) of `model` on `test_set`, encoded as the experiment's test split.
fn accuracy(
    exp: &ExperimentDef,
    model: &SpikingClassifier,
    test_set: Samples,
    device: &Device,
) -> Result<f64> {
    let n = test_set.len();
    let mut correct = 0usize;
    for batch in test_batches(exp, test_set, device).iter() {
        let batch = batch.map_err(|e| anyhow::anyhow!("loading a test batch: {e:?}"))?;
        let labels = batch.labels.clone();
        let out = model.run(batch).0.classification.output;
        let pred = out.argmax(1).reshape([labels.dims()[0]]);
        let hits = pred.equal(labels).int().sum().into_scalar::<i64>();
        correct += hits as usize;
    }
    Ok(correct as f64 / n as f64)
}
