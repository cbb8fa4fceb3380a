//! What a training step does besides forward, backward and update, in one place: the run's
//! [`StepClock`] advances once per optimizer step, and the services that depend on the step
//! read it: the numerical-fault watch (before the update), boosting (records misclassified
//! samples in the step, updates the sample weights when the clock crosses an epoch's end), and
//! the mid-epoch checkpoint writer (after the update).
//!
//! The model carries the hooks ([`super::classifier::SpikingClassifier::with_hooks`]) because
//! burn-train calls the model's `step` and `optimize` and nothing else in between.

use std::sync::Arc;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::train::ClassificationOutput;

use super::boosting::Boosting;
use super::checkpoint::RunFiles;
use super::fault::FaultWatch;
use super::midepoch::MidEpochWriter;
use super::position::StepClock;
use super::sharded::Workers;

/// Boosting's state and where its epoch updates are saved.
#[derive(Clone)]
struct BoostingHook {
    boosting: Arc<Boosting>,
    files: RunFiles,
}

impl BoostingHook {
    /// Updates the weights after 1-based `epoch` and saves them (run folder and checkpoint).
    fn end_epoch(&self, epoch: usize) {
        self.boosting.end_epoch();
        for path in [self.files.boosting(), self.files.epoch_boosting(epoch)] {
            if let Err(e) = self.boosting.save(&path) {
                eprintln!("warning: cannot write {}: {e}", path.display());
            }
        }
        // Kept: this epoch's and the one before (a damaged last checkpoint falls back to it).
        if epoch > 2 {
            let _ = std::fs::remove_file(self.files.epoch_boosting(epoch - 2));
        }
    }
}

/// The step services of one run, on its step clock.
#[derive(Clone)]
pub struct StepHooks {
    clock: StepClock,
    faults: FaultWatch,
    boosting: Option<BoostingHook>,
    mid_epoch: Option<MidEpochWriter>,
    workers: Workers,
}

impl std::fmt::Debug for StepHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepHooks")
            .field("position", &self.clock.position())
            .finish_non_exhaustive()
    }
}

impl StepHooks {
    /// Hooks on `clock` with the fault watch `faults`.
    pub fn new(clock: StepClock, faults: FaultWatch) -> Self {
        Self {
            clock,
            faults,
            boosting: None,
            mid_epoch: None,
            workers: Workers::default(),
        }
    }

    /// Splits every step among `workers` (ranks, virtual workers).
    pub fn with_workers(self, workers: Workers) -> Self {
        Self { workers, ..self }
    }

    /// Who trains the run.
    pub fn workers(&self) -> &Workers {
        &self.workers
    }

    /// Records misclassified samples and updates their weights at every epoch's end, saving
    /// them into `files`.
    pub fn with_boosting(self, boosting: Arc<Boosting>, files: RunFiles) -> Self {
        Self {
            boosting: Some(BoostingHook { boosting, files }),
            ..self
        }
    }

    /// Writes mid-epoch checkpoints through `writer`.
    pub fn with_mid_epoch_checkpoints(self, writer: MidEpochWriter) -> Self {
        Self {
            mid_epoch: Some(writer),
            ..self
        }
    }

    /// After a step's forward pass of `model`: boosting's verdicts of samples `indices`, and
    /// the check of the loss to differentiate.
    pub fn after_forward<M: Module>(
        &self,
        model: &M,
        indices: &[u64],
        out: &ClassificationOutput,
        loss: &Tensor<1>,
    ) {
        if let Some(hook) = &self.boosting {
            let pred = out.output.clone().argmax(1).reshape([indices.len()]);
            let wrong = pred.not_equal(out.targets.clone()).int().into_data();
            let wrong: Vec<bool> = wrong.iter::<i64>().map(|w| w != 0).collect();
            hook.boosting.record(indices, &wrong);
        }
        self.faults.check_loss(loss, model);
    }

    /// Before the update: whether every parameter and gradient is finite (else the run stops
    /// and the update must not be applied).
    pub fn before_update<M: Module>(&self, model: &M, grads: &GradientsParams) -> bool {
        self.faults.check_update(model, grads)
    }

    /// After the update of `model`: the clock advances; at an epoch's end boosting updates its
    /// weights, inside an epoch a mid-epoch checkpoint may be written.
    pub fn after_update<M: Module>(&self, model: &M, optim: &ModuleOptimizer) {
        let position = self.clock.tick();
        if position.batch == 0 {
            if let Some(hook) = &self.boosting {
                hook.end_epoch(position.epoch);
            }
        } else if let Some(writer) = &self.mid_epoch {
            writer.after_step(model, optim);
        }
    }
}
