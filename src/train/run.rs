//! One training run, as five phases:
//!
//! 1. **plan** ([`Plan::new`]): configuration errors first, the data, the model on its device
//!    (seeded), checks of the data against the model; nothing in the output folder yet.
//! 2. **resume** ([`Plan::resume`]): a new run records its settings and clears an earlier
//!    run's mid-epoch records; `--resume` finds the newest complete checkpoint
//!    ([`super::resume`]) and the summary so far. Either way the run has one start
//!    [`Position`], from which its clocks start.
//! 3. **wire** ([`Plan::wire`]): data loaders, the step clock and its hooks, the learning-rate
//!    schedule, metrics and loggers, checkpointers: burn-train's `SupervisedTraining`.
//! 4. **launch** ([`Wired::launch`]): burn-train trains; a numerical fault or an error stops
//!    the run with a message that names the last good checkpoint.
//! 5. **finish** ([`Trained::finish`]): the final model, checkpoint averaging, `summary.json`.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::train::checkpoint::{
    ComposedCheckpointingStrategy, KeepLastNCheckpoints, MetricCheckpointingStrategy,
};
use burn::train::logger::FileMetricLogger;
use burn::train::metric::store::{Aggregate, Direction, Split as MetricSplit};
use burn::train::{Learner, SupervisedTraining};

use super::RunOptions;
use super::adam::FusedAdam;
use super::average::average_last_epochs;
use super::boosting::Boosting;
use super::checkpoint::{RunCheckpointer, RunFiles, save_record};
use super::classifier::{SpikingClassifier, build_classifier};
use super::fault::FaultWatch;
use super::hooks::StepHooks;
use super::loading::{SplitLoading, load_split, split_loader};
use super::metrics::{
    AccuracyFigure, Activity, ActivityFigure, AuthorsCost, DeadNeuronMetric, LossFigure,
};
use super::midepoch::{self, Every, MidEpochWriter};
use super::position::{Position, StepClock};
use super::ranks;
use super::renderer::PlainRenderer;
use super::resume::ResumePoint;
use super::schedule::EpochLrScheduler;
use super::shards::check_split;
use super::started_with::StartedWith;
use super::summary::{RunSummary, SharedSummary, SummaryLogger, peak_memory_mib};
use crate::datasets::{Samples, Split, augment};
use crate::experiment::ExperimentDef;
use crate::model::NetworkDef;

/// Trains an experiment; returns its summary (also in `opts.out_dir/summary.json`).
pub fn train(exp: &ExperimentDef, opts: &RunOptions) -> Result<RunSummary> {
    let plan = Plan::new(exp, opts)?;
    let start = plan.resume()?;
    plan.wire(start)?.launch()?.finish()
}

/// A run decided: its data and its model, before it touches the output folder's checkpoints.
struct Plan<'a> {
    exp: &'a ExperimentDef,
    opts: &'a RunOptions,
    files: RunFiles,
    /// Where this process writes: `files`, or a scratch folder on ranks other than 0.
    writes: RunFiles,
    train_set: Samples,
    test_set: Samples,
    model: SpikingClassifier,
    def: NetworkDef,
    /// Optimizer steps (batches) per epoch.
    per_epoch: usize,
}

/// Where the run starts: its position, the checkpoint it resumes (if any), its summary so far.
struct Start {
    position: Position,
    resume: Option<ResumePoint>,
    summary: RunSummary,
}

impl<'a> Plan<'a> {
    fn new(exp: &'a ExperimentDef, opts: &'a RunOptions) -> Result<Self> {
        // Configuration errors first, before any data is read.
        NetworkDef::load(&exp.model, &opts.models_dir)?;
        ranks::check_same_run(exp, opts)?;
        let train_set = load_split(exp, &opts.data_dir, Split::Train)?;
        let test_set = load_split(exp, &opts.data_dir, Split::Test)?;
        let parts = opts.workers.parts();
        for (what, set) in [("train", &train_set), ("test", &test_set)] {
            check_split(what, set.len(), exp.batch_size, parts)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        // Seeds in this order: the device's (dropout-free, but Burn's), then the parameters'.
        opts.device.seed(exp.seed);
        let autodiff = opts.device.clone().autodiff();
        let init = crate::backend::init_device(&opts.device);
        init.seed(exp.seed);
        let (model, def) = build_classifier(exp, &opts.models_dir, &init.autodiff(), opts.kernels)?;
        let plan = Self {
            exp,
            opts,
            files: RunFiles::new(&opts.out_dir),
            writes: RunFiles::new(&ranks::write_dir(opts)),
            per_epoch: train_set.len().div_ceil(exp.batch_size),
            train_set,
            test_set,
            model: model.fork(&autodiff),
            def,
        };
        plan.check_data()?;
        for dir in [&plan.files.out, &plan.writes.checkpoint_dir()] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(plan)
    }

    /// The data fits the network (inputs) and the augmentation (image size).
    fn check_data(&self) -> Result<()> {
        let (def, exp) = (&self.def, self.exp);
        if def.input_size() != self.train_set.input_size() {
            bail!(
                "model '{}' expects {} inputs, dataset {} has {} input channels per sample",
                def.name,
                def.input_size(),
                exp.dataset,
                self.train_set.input_size()
            );
        }
        if let (Some(_), Samples::Images(images)) = (&exp.augmentation, &self.train_set) {
            let (rows, cols) = (images.images.rows, images.images.cols);
            if (rows, cols) != (augment::SIDE, augment::SIDE) {
                bail!(
                    "augmentation: works on {0}×{0} images, dataset {1} has {rows}×{cols}",
                    augment::SIDE,
                    exp.dataset
                );
            }
        }
        Ok(())
    }

    /// The start of the run, found by rank 0 first (it may set damaged checkpoints aside),
    /// then by the other ranks, which must agree.
    fn resume(&self) -> Result<Start> {
        let workers = &self.opts.workers;
        if !workers.is_writer() {
            workers.collective().barrier();
        }
        let start = self.find_start()?;
        if workers.is_writer() {
            workers.collective().barrier();
        }
        ranks::check_same_start(workers, start.position)?;
        Ok(start)
    }

    fn find_start(&self) -> Result<Start> {
        let writer = self.opts.workers.is_writer();
        let started_with = StartedWith::new(self.exp, &self.def)?;
        let checkpoint_dir = self.files.checkpoint_dir();
        let fresh = RunSummary::new(
            serde_json::json!({ "experiment": self.exp, "model": self.def }),
            self.opts.backend.clone(),
        );
        if !self.opts.resume {
            if writer {
                // Records of an earlier run in this folder must not be resumed later.
                midepoch::remove_all(&checkpoint_dir)
                    .with_context(|| format!("cannot clear {}", checkpoint_dir.display()))?;
                started_with.save(&checkpoint_dir)?;
            }
            return Ok(Start {
                position: Position::default(),
                resume: None,
                summary: fresh,
            });
        }
        if writer {
            started_with.check_resumes(&checkpoint_dir, self.opts.accept_changed_settings)?;
        }
        let point = ResumePoint::find(&self.files, &self.model, &self.exp.model)?;
        if point.start.batch >= self.per_epoch {
            bail!(
                "--resume: the mid-epoch checkpoint is at batch {} but an epoch now has {} \
                 batches (another batch size or sample count?); start a new run with another --out",
                point.start.batch,
                self.per_epoch
            );
        }
        let summary = std::fs::read_to_string(self.files.summary())
            .ok()
            .and_then(|t| serde_json::from_str::<RunSummary>(&t).ok())
            .map_or(fresh, |s| s.resumed_after(point.start.epoch));
        Ok(Start {
            position: point.start,
            resume: Some(point),
            summary,
        })
    }
}

/// The run wired into burn-train, ready to launch.
struct Wired<'a> {
    exp: &'a ExperimentDef,
    opts: &'a RunOptions,
    files: RunFiles,
    writes: RunFiles,
    training: SupervisedTraining<SpikingClassifier>,
    learner: Learner<SpikingClassifier>,
    faults: FaultWatch,
    summary: SharedSummary,
}

impl<'a> Plan<'a> {
    fn wire(self, start: Start) -> Result<Wired<'a>> {
        let (exp, opts) = (self.exp, self.opts);
        let workers = &opts.workers;
        let clock = StepClock::starting_at(start.position, self.per_epoch);
        let scheduler = EpochLrScheduler::new(exp.learning_rate(), clock.clone());
        let boosting = self.boosting(start.resume.as_ref())?;
        let summary = Arc::new(Mutex::new(start.summary));
        let plain = opts.plain || !std::io::stdout().is_terminal();
        let logger = self.summary_logger(
            summary.clone(),
            start.position,
            plain && workers.is_writer(),
        );
        let train_how = SplitLoading {
            start: start.position,
            order: exp.order,
            augmentation: exp.augmentation,
            boosting: boosting.clone(),
            rank: (workers.rank(), workers.ranks()),
        };
        let device = &opts.device;
        let train_loader = split_loader(exp, self.train_set, device, train_how);
        let test_how =
            SplitLoading::test(start.position.epoch).on_rank(workers.rank(), workers.ranks());
        let test_loader = split_loader(exp, self.test_set, device, test_how);
        let [model_files, optim_files, scheduler_files] = RunCheckpointer::triple(
            &self.files,
            &self.writes,
            start.resume.as_ref().and_then(|r| r.mid_epoch.clone()),
        );
        let read_every = opts
            .read_every
            .unwrap_or(if crate::backend::on_host(&opts.device) {
                1
            } else {
                super::DEVICE_READ_EVERY
            });
        let mut training = SupervisedTraining::new(&self.writes.out, train_loader, test_loader)
            .metrics((
                AccuracyFigure::metric(read_every),
                LossFigure::metric(read_every),
            ))
            // The file logger first: burn-train reads epoch values back from the first logger
            // that has them (checkpoint selection); the summary logger only writes.
            .with_metric_logger(FileMetricLogger::new(&self.writes.out))
            .with_metric_logger(logger)
            .with_application_logger(None)
            .with_custom_checkpointers(model_files, optim_files, scheduler_files)
            .with_checkpointing_strategy(checkpoints_kept(exp.average_last))
            .num_epochs(exp.epochs)
            .summary();
        training = with_step_metrics(training, exp, self.model.net.layer_count(), read_every);
        if !workers.is_writer() {
            training = training.renderer(Box::new(PlainRenderer::quiet()));
        } else if plain {
            let renderer = PlainRenderer::new().for_ranks(workers.ranks());
            training = training.renderer(Box::new(renderer));
        }
        if let Some(point) = &start.resume {
            if workers.is_writer() {
                println!("{}", point.announce());
            }
            // burn-train restores the records of this many finished epochs (a mid-epoch
            // record's through `RunCheckpointer`) and goes on with the next epoch.
            training = training.checkpoint(start.position.epoch);
        }
        let faults =
            FaultWatch::new(training.interrupter(), clock.clone()).checked_every(read_every);
        let mut hooks = StepHooks::new(clock.clone(), faults.clone())
            .with_workers(workers.clone())
            .with_read_every(read_every);
        if let Some(b) = &boosting {
            hooks = hooks.with_boosting(b.clone(), self.writes.clone());
        }
        let every = Every::new(exp.checkpoint_minutes, opts.checkpoint_every_batches);
        if let Some(every) = every.filter(|_| workers.is_writer()) {
            let writer =
                MidEpochWriter::new(self.files.checkpoint_dir(), every, clock, scheduler.clone());
            hooks = hooks.with_mid_epoch_checkpoints(match &boosting {
                Some(b) => writer.with_boosting(b.clone()),
                None => writer,
            });
        }
        let model = self.model.with_hooks(hooks);
        let learner = Learner::new(model, FusedAdam::module_optimizer(), scheduler);
        Ok(Wired {
            exp,
            opts,
            files: self.files,
            writes: self.writes,
            training,
            learner,
            faults,
            summary,
        })
    }

    /// Boosting weights (spec §3.5.4) when the experiment asks for them, as the resumed
    /// checkpoint left them.
    fn boosting(&self, resume: Option<&ResumePoint>) -> Result<Option<Arc<Boosting>>> {
        if !self.exp.boosting {
            return Ok(None);
        }
        let boosting = Boosting::new(
            self.train_set.labels().to_vec(),
            self.train_set.num_classes(),
        );
        if let Some(saved) = resume.and_then(|r| r.boosting_file(&self.files)) {
            boosting
                .load(&saved)
                .with_context(|| format!("{}: cannot load", saved.display()))?;
        }
        Ok(Some(Arc::new(boosting)))
    }

    /// The logger of `summary.json` (and, in plain mode, of one line per epoch).
    fn summary_logger(
        &self,
        summary: SharedSummary,
        start: Position,
        plain: bool,
    ) -> SummaryLogger {
        let lr = self.exp.learning_rate();
        let labels = layer_labels(self.model.net.layer_count());
        let layers = labels
            .into_iter()
            .zip(self.model.net.layer_sizes())
            .collect();
        let logger = SummaryLogger::new(
            self.writes.summary(),
            summary,
            self.train_set.len(),
            Box::new(move |e| lr.at_epoch(e)),
            plain,
        )
        .with_layers(layers)
        .evaluated_on(evaluated_split(self.exp));
        if start.batch > 0 {
            logger.resumed_mid_epoch(start.epoch, start.batch * self.exp.batch_size)
        } else {
            logger
        }
    }
}

/// The metrics of every step beside accuracy and loss: the authors' cost, and per layer the
/// activity (spikes per neuron, silent neurons) and the dead neurons; all read back every
/// `read_every` steps.
fn with_step_metrics(
    mut training: SupervisedTraining<SpikingClassifier>,
    exp: &ExperimentDef,
    layers: usize,
    read_every: usize,
) -> SupervisedTraining<SpikingClassifier> {
    let label_spikes = (exp.steps, exp.targets.desired as u32);
    let cost = AuthorsCost::metric(exp.targets, label_spikes, read_every);
    training = training.metric_train_numeric(cost);
    for (k, label) in layer_labels(layers).iter().enumerate() {
        for kind in [Activity::SpikesPerNeuron, Activity::SilentPercent] {
            training = training
                .metric_train_numeric(ActivityFigure::metric(k, label, kind, read_every))
                .metric_valid_numeric(ActivityFigure::metric(k, label, kind, read_every));
        }
        training = training.metric_train_numeric(DeadNeuronMetric::new(k, label, read_every));
    }
    training
}

/// burn-train's checkpoint selection (the last two epochs and the one of the lowest test
/// loss), keeping the last `average_last` epochs when more.
fn checkpoints_kept(average_last: usize) -> ComposedCheckpointingStrategy {
    ComposedCheckpointingStrategy::builder()
        .add(KeepLastNCheckpoints::new(average_last.max(2)))
        .add(MetricCheckpointingStrategy::new(
            &LossFigure::metric(1),
            Aggregate::Mean,
            Direction::Lowest,
            MetricSplit::Valid,
        ))
        .build()
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

/// A run trained to its end.
struct Trained<'a> {
    exp: &'a ExperimentDef,
    opts: &'a RunOptions,
    writes: RunFiles,
    model: SpikingClassifier,
    summary: SharedSummary,
}

impl<'a> Wired<'a> {
    fn launch(self) -> Result<Trained<'a>> {
        let result = self.training.launch(self.learner);
        if let Some(fault) = self.faults.fault() {
            let kept = match self.files.epochs_with_model().first() {
                Some(e) => format!(
                    "the checkpoint of epoch {e} in {} is the last good one",
                    self.files.checkpoint_dir().display()
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
        Ok(Trained {
            exp: self.exp,
            opts: self.opts,
            writes: self.writes,
            model: result.model,
            summary: self.summary,
        })
    }
}

impl Trained<'_> {
    fn finish(self) -> Result<RunSummary> {
        let path = self.writes.out.join("model.bpk");
        save_record(self.model.into_record(), &path)
            .map_err(|e| anyhow::anyhow!("saving the final model {}: {e:?}", path.display()))?;
        let mut s = self
            .summary
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        s.peak_memory_mib = peak_memory_mib();
        if !self.opts.workers.is_writer() {
            // Rank 0 writes the run's files; this rank's scratch folder goes.
            let _ = std::fs::remove_dir_all(&self.writes.out);
            return Ok(s);
        }
        if self.exp.average_last > 0 {
            s.average = Some(average_last_epochs(self.exp, self.opts)?);
        }
        s.save(&self.writes.summary())?;
        Ok(s)
    }
}

/// What a run's evaluation split is called: `"held-out"` for the last training samples that
/// `validation_samples` keeps out of training, else `"test"`.
pub fn evaluated_split(exp: &ExperimentDef) -> &'static str {
    match exp.validation_samples {
        Some(_) => "held-out",
        None => "test",
    }
}
