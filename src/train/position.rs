//! Where a run is in its training: the epoch and the batches of it already trained, as a
//! function of the number of optimizer steps done, and the run's one step clock.
//!
//! A run's position is set once, from its start (`Position::default()`, or the checkpoint
//! `--resume` continues), and then counted in two places only: the data side counts the items
//! it reads ([`super::ordered::OrderedDataset`], which may run ahead of training) and stamps
//! their epoch on them; the step side is the [`StepClock`] here, advanced once per optimizer
//! step by the model's [`super::hooks::StepHooks`] and read by everything that needs the
//! training position (learning-rate schedule, fault messages, mid-epoch checkpoints,
//! boosting's epoch update).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// A point between two training steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// 0-based epoch in progress (the number of finished epochs).
    pub epoch: usize,
    /// Batches of that epoch already trained.
    pub batch: usize,
}

impl Position {
    /// The start of 0-based epoch `epoch`.
    pub fn epoch_start(epoch: usize) -> Self {
        Self { epoch, batch: 0 }
    }

    /// The position after `steps` steps of epochs of `per_epoch` batches.
    pub fn after_steps(steps: u64, per_epoch: usize) -> Self {
        let per_epoch = per_epoch.max(1) as u64;
        Self {
            epoch: (steps / per_epoch) as usize,
            batch: (steps % per_epoch) as usize,
        }
    }

    /// The steps done before this position, with epochs of `per_epoch` batches.
    pub fn steps(&self, per_epoch: usize) -> u64 {
        (self.epoch * per_epoch.max(1) + self.batch) as u64
    }
}

/// The optimizer steps a run has done, shared by everything that reads its position.
#[derive(Clone, Debug)]
pub struct StepClock {
    done: Arc<AtomicU64>,
    per_epoch: usize,
}

impl StepClock {
    /// A clock at `start`, in epochs of `per_epoch` steps.
    pub fn starting_at(start: Position, per_epoch: usize) -> Self {
        let per_epoch = per_epoch.max(1);
        Self {
            done: Arc::new(AtomicU64::new(start.steps(per_epoch))),
            per_epoch,
        }
    }

    /// Steps done so far.
    pub fn steps(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// The position between the steps done and the next one.
    pub fn position(&self) -> Position {
        Position::after_steps(self.steps(), self.per_epoch)
    }

    /// Whether the next step is the last of its epoch.
    pub fn next_ends_epoch(&self) -> bool {
        self.position().batch + 1 == self.per_epoch
    }

    /// Counts one more step done; returns the position after it.
    pub fn tick(&self) -> Position {
        let steps = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        Position::after_steps(steps, self.per_epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_positions_round_trip() {
        let p = Position::after_steps(47, 20);
        assert_eq!(p, Position { epoch: 2, batch: 7 });
        assert_eq!(p.steps(20), 47);
        assert_eq!(Position::after_steps(40, 20), Position::epoch_start(2));
    }

    #[test]
    fn the_clock_starts_at_its_position_and_ticks_through_epochs() {
        let clock = StepClock::starting_at(Position { epoch: 1, batch: 3 }, 4);
        let shared = clock.clone();
        assert_eq!(clock.steps(), 7);
        assert_eq!(shared.tick(), Position::epoch_start(2));
        assert_eq!(clock.position(), Position::epoch_start(2));
    }
}
