//! The authors' per-epoch learning-rate schedule as a burn-train scheduler, read off the run's
//! [`StepClock`]: burn-train asks for the rate just before each optimizer step, when the clock
//! holds the steps done before it, so a resumed run (whose clock starts at the checkpoint)
//! continues the schedule without a counter of its own.

use burn::optim::LearningRate;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};

use super::position::StepClock;
use crate::experiment::LrDef;

/// Learning rate of the clock's epoch by [`LrDef::at_epoch`].
#[derive(Clone, Debug)]
pub struct EpochLrScheduler {
    lr: LrDef,
    clock: StepClock,
}

impl EpochLrScheduler {
    /// The schedule `lr` on the run's `clock`.
    pub fn new(lr: LrDef, clock: StepClock) -> Self {
        Self { lr, clock }
    }
}

/// The record's key of the steps done (written for inspection; the clock is the position).
const ITERATION_KEY: &str = "iteration";

impl LrScheduler for EpochLrScheduler {
    fn step(&mut self) -> LearningRate {
        self.lr.at_epoch(self.clock.position().epoch)
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar(ITERATION_KEY, self.clock.steps() as f64)
    }

    /// Nothing to restore: the clock of a resumed run starts at its checkpoint's position.
    fn load_record(&mut self, _record: LrSchedulerRecord) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::LrSchedule;
    use crate::train::position::Position;

    #[test]
    fn follows_the_clock_through_epochs_and_resumes() {
        let lr = LrDef {
            base: 1e-3,
            schedule: LrSchedule::InvSqrtEpoch,
        };
        let clock = StepClock::starting_at(Position::default(), 2);
        let mut s = EpochLrScheduler::new(lr, clock.clone());
        let got: Vec<f64> = (0..6)
            .map(|_| {
                let rate = s.step();
                clock.tick();
                rate
            })
            .collect();
        assert_eq!(got[..4], [1e-3; 4]);
        assert!((got[4] - 1e-3 / 2f64.sqrt()).abs() < 1e-12);
        let resumed = StepClock::starting_at(Position::epoch_start(3), 2);
        assert!((EpochLrScheduler::new(lr, resumed).step() - 1e-3 / 3f64.sqrt()).abs() < 1e-12);
    }
}
