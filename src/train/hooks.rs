//! What a training step does besides forward, backward and update, in one place: the run's
//! [`StepClock`] advances once per optimizer step, and the services that depend on the step
//! read it: the numerical-fault watch (before the update), boosting (records misclassified
//! samples in the step, updates the sample weights when the clock crosses an epoch's end), and
//! the mid-epoch checkpoint writer (after the update).
//!
//! On a device the fault watch and boosting's verdicts are read back every `read_every` steps
//! (and at the last step of every epoch), so that the training thread does not wait for the
//! device at every step; boosting's verdicts wait on the device until then and are recorded in
//! order, and mid-epoch checkpoints are written only after such a step. With `read_every` 1
//! (the CPU backends' default) every step reads, as before.
//!
//! The model carries the hooks ([`super::classifier::SpikingClassifier::with_hooks`]) because
//! burn-train calls the model's `step` and `optimize` and nothing else in between.

use std::sync::{Arc, Mutex};

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

/// A step's samples and their verdicts (1: misclassified), still on the device.
type Verdicts = (Vec<u64>, Tensor<1, Int>);

/// Boosting's state, where its epoch updates are saved, and the verdicts not yet read back.
#[derive(Clone)]
struct BoostingHook {
    boosting: Arc<Boosting>,
    files: RunFiles,
    pending: Arc<Mutex<Vec<Verdicts>>>,
}

impl BoostingHook {
    /// Reads the verdicts kept on the device back (one read) and records them in step order.
    fn flush(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if pending.is_empty() {
            return;
        }
        let (indices, verdicts): (Vec<Vec<u64>>, Vec<Tensor<1, Int>>) = pending.into_iter().unzip();
        let all = crate::device_reads::data(Tensor::cat(verdicts, 0), "boosting's verdicts");
        let mut wrong = all.iter::<i64>().map(|w| w != 0);
        for indices in indices {
            let step: Vec<bool> = wrong.by_ref().take(indices.len()).collect();
            self.boosting.record(&indices, &step);
        }
    }

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
    read_every: u64,
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
            read_every: 1,
        }
    }

    /// Reads the fault watch and boosting's verdicts back every `n` steps (and at the last
    /// step of every epoch) instead of every step.
    pub fn with_read_every(self, n: usize) -> Self {
        Self {
            read_every: n.max(1) as u64,
            ..self
        }
    }

    /// Whether the next step reads back from the device.
    fn reads_now(&self) -> bool {
        self.read_every == 1
            || (self.clock.steps() + 1).is_multiple_of(self.read_every)
            || self.clock.next_ends_epoch()
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
            boosting: Some(BoostingHook {
                boosting,
                files,
                pending: Arc::default(),
            }),
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
        let read = self.reads_now();
        if let Some(hook) = &self.boosting {
            let pred = out.output.clone().argmax(1).reshape([indices.len()]);
            let wrong = pred.not_equal(out.targets.clone()).int();
            let mut pending = hook.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.push((indices.to_vec(), wrong));
            drop(pending);
            if read {
                hook.flush();
            }
        }
        if read {
            self.faults.check_loss(loss, model);
        }
    }

    /// Before the update: whether every parameter and gradient is finite (else the run stops
    /// and the update must not be applied); `true` without a look on a step that does not
    /// read back.
    pub fn before_update<M: Module>(&self, model: &M, grads: &GradientsParams) -> bool {
        !self.reads_now() || self.faults.check_update(model, grads)
    }

    /// After the update of `model`: the clock advances; at an epoch's end boosting updates its
    /// weights, inside an epoch a mid-epoch checkpoint may be written (after a step that read
    /// back: its faults checked, boosting's verdicts recorded).
    pub fn after_update<M: Module>(&self, model: &M, optim: &ModuleOptimizer) {
        let read = self.reads_now();
        let position = self.clock.tick();
        if position.batch == 0 {
            if let Some(hook) = &self.boosting {
                hook.flush();
                hook.end_epoch(position.epoch);
            }
        } else if let Some(writer) = self.mid_epoch.as_ref().filter(|_| read) {
            writer.after_step(model, optim);
        }
    }
}
