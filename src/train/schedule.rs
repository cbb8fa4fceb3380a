//! The authors' per-epoch learning-rate schedule as a burn-train scheduler (stepped every
//! iteration; its iteration count is checkpointed, so a resumed run continues the schedule).

use burn::optim::LearningRate;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};

use crate::experiment::LrDef;

/// Learning rate of epoch `⌊iteration / iterations_per_epoch⌋` by [`LrDef::at_epoch`].
#[derive(Clone, Debug)]
pub struct EpochLrScheduler {
    lr: LrDef,
    iterations_per_epoch: usize,
    iteration: usize,
}

impl EpochLrScheduler {
    /// A scheduler for epochs of `iterations_per_epoch` optimizer steps.
    pub fn new(lr: LrDef, iterations_per_epoch: usize) -> Self {
        Self {
            lr,
            iterations_per_epoch: iterations_per_epoch.max(1),
            iteration: 0,
        }
    }

    /// The same scheduler after `iterations` steps (a run resumed mid-epoch).
    pub fn after(self, iterations: u64) -> Self {
        Self {
            iteration: iterations as usize,
            ..self
        }
    }
}

const ITERATION_KEY: &str = "iteration";

impl LrScheduler for EpochLrScheduler {
    fn step(&mut self) -> LearningRate {
        let lr = self.lr.at_epoch(self.iteration / self.iterations_per_epoch);
        self.iteration += 1;
        lr
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar(ITERATION_KEY, self.iteration as f64)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(iteration) = record.scalar::<f64>(ITERATION_KEY) {
            self.iteration = iteration as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::LrSchedule;

    #[test]
    fn steps_through_epochs_and_resumes() {
        let lr = LrDef {
            base: 1e-3,
            schedule: LrSchedule::InvSqrtEpoch,
        };
        let mut s = EpochLrScheduler::new(lr, 2);
        let got: Vec<f64> = (0..6).map(|_| s.step()).collect();
        assert_eq!(got[..4], [1e-3; 4]);
        assert!((got[4] - 1e-3 / 2f64.sqrt()).abs() < 1e-12);
        let mut resumed = EpochLrScheduler::new(lr, 2);
        resumed.load_record(s.to_record());
        assert!((resumed.step() - 1e-3 / 3f64.sqrt()).abs() < 1e-12);
    }
}
