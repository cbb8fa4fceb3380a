//! Mid-epoch checkpoints. burn-train checkpoints at the end of every epoch; this adds a record
//! every N minutes (or N batches) inside an epoch, written from the training step, so that a
//! killed run loses at most N minutes of a long epoch. A record is a folder
//! `checkpoint/mid-epoch-STEP/` holding what the next step depends on: the model, the
//! optimizer state, the learning-rate schedule's position (burn-train's formats, so burn-train
//! restores them), the boosting state and the [`Position`] (written last). It is written
//! under a temporary name and renamed into place, so a kill never leaves a partial record.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::train::checkpoint::CheckpointerError;

use super::boosting::Boosting;
use super::checkpoint::{RecordKind, save_record, write_atomically};
use super::position::{Position, StepClock};
use super::schedule::EpochLrScheduler;

const PREFIX: &str = "mid-epoch-";
const POSITION_FILE: &str = "position.json";
const BOOSTING_FILE: &str = "boosting.json";

/// How often a mid-epoch record is written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Every {
    /// After the first step that ends this long after the last record (or the run's start).
    Time(Duration),
    /// After every N-th batch of an epoch (for tests: no wall-clock waits).
    Batches(usize),
}

impl Every {
    /// From the run's settings: `batches` if given, else `minutes` (`None` when 0: off).
    pub fn new(minutes: f64, batches: Option<usize>) -> Option<Self> {
        match batches {
            Some(0) => None,
            Some(n) => Some(Self::Batches(n)),
            None if minutes > 0.0 => Some(Self::Time(Duration::from_secs_f64(minutes * 60.0))),
            None => None,
        }
    }
}

/// A mid-epoch record found in a run folder.
#[derive(Clone, Debug, PartialEq)]
pub struct MidEpochRecord {
    /// Its folder.
    pub dir: PathBuf,
    /// Where training stood when it was written.
    pub position: Position,
}

impl MidEpochRecord {
    /// The newest complete record in `checkpoint_dir`.
    pub fn latest(checkpoint_dir: &Path) -> Option<Self> {
        let (_, dir) = records(checkpoint_dir)
            .into_iter()
            .max_by_key(|(step, _)| *step)?;
        let text = std::fs::read_to_string(dir.join(POSITION_FILE)).ok()?;
        let position = serde_json::from_str(&text).ok()?;
        Some(Self { dir, position })
    }

    /// The file of its record of `kind`.
    pub fn record_file(&self, kind: RecordKind) -> PathBuf {
        self.dir.join(kind.file())
    }

    /// The boosting state's file.
    pub fn boosting_file(&self) -> PathBuf {
        self.dir.join(BOOSTING_FILE)
    }
}

/// Removes every mid-epoch record in `checkpoint_dir` (a fresh run in an old folder).
pub fn remove_all(checkpoint_dir: &Path) -> std::io::Result<()> {
    for (_, dir) in records(checkpoint_dir) {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}

/// `(step, folder)` of the complete records in `checkpoint_dir`.
fn records(checkpoint_dir: &Path) -> Vec<(u64, PathBuf)> {
    std::fs::read_dir(checkpoint_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix(PREFIX)?.parse::<u64>().ok()?;
            Some((step, e.path()))
        })
        .collect()
}

/// Writes mid-epoch records from the training step (see [`MidEpochWriter::after_step`]).
#[derive(Clone)]
pub struct MidEpochWriter {
    checkpoint_dir: PathBuf,
    every: Every,
    clock: StepClock,
    scheduler: EpochLrScheduler,
    boosting: Option<Arc<Boosting>>,
    last_write: Arc<Mutex<Instant>>,
}

impl MidEpochWriter {
    /// A writer into `checkpoint_dir` of the position of `clock`; `scheduler` is the run's
    /// schedule (on the same clock).
    pub fn new(
        checkpoint_dir: PathBuf,
        every: Every,
        clock: StepClock,
        scheduler: EpochLrScheduler,
    ) -> Self {
        Self {
            checkpoint_dir,
            every,
            clock,
            scheduler,
            boosting: None,
            last_write: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Also saves the boosting state.
    pub fn with_boosting(self, boosting: Arc<Boosting>) -> Self {
        Self {
            boosting: Some(boosting),
            ..self
        }
    }

    /// After a finished step (its update applied to `model`, the clock ticked), writes a
    /// record when one is due. Never at an epoch's end: burn-train's epoch checkpoint follows.
    pub fn after_step<M: Module>(&self, model: &M, optim: &ModuleOptimizer) {
        let position = self.clock.position();
        let mut last_write = self.last_write.lock().unwrap_or_else(|e| e.into_inner());
        let due = position.batch > 0
            && match self.every {
                Every::Time(interval) => last_write.elapsed() >= interval,
                Every::Batches(n) => position.batch.is_multiple_of(n),
            };
        if !due {
            return;
        }
        if let Err(e) = self.write(self.clock.steps(), position, model, optim) {
            eprintln!(
                "warning: cannot write the mid-epoch checkpoint in {}: {e}",
                self.checkpoint_dir.display()
            );
        }
        *last_write = Instant::now();
    }

    fn write<M: Module>(
        &self,
        steps: u64,
        position: Position,
        model: &M,
        optim: &ModuleOptimizer,
    ) -> Result<(), String> {
        let name = format!("{PREFIX}{steps}");
        let tmp = self.checkpoint_dir.join(format!("{name}.tmp"));
        let io = |e: std::io::Error| e.to_string();
        let record = |e: CheckpointerError| e.to_string();
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io)?;
        }
        std::fs::create_dir_all(&tmp).map_err(io)?;
        let file = |kind: RecordKind| tmp.join(kind.file());
        save_record(model.clone().into_record(), &file(RecordKind::Model)).map_err(record)?;
        save_record(optim.to_record(), &file(RecordKind::Optimizer)).map_err(record)?;
        let scheduler = ModuleLrScheduler::from(self.scheduler.clone());
        save_record(scheduler.to_record(), &file(RecordKind::Scheduler)).map_err(record)?;
        if let Some(boosting) = &self.boosting {
            boosting.save(&tmp.join(BOOSTING_FILE)).map_err(io)?;
        }
        let text = serde_json::to_string(&position).map_err(|e| e.to_string())?;
        write_atomically(&tmp.join(POSITION_FILE), text.as_bytes()).map_err(io)?;
        std::fs::rename(&tmp, self.checkpoint_dir.join(&name)).map_err(io)?;
        for (old, dir) in records(&self.checkpoint_dir) {
            if old != steps {
                std::fs::remove_dir_all(dir).map_err(io)?;
            }
        }
        Ok(())
    }
}
