//! Where a run is in its training: the epoch and the batches of it already trained, as a
//! function of the number of optimizer steps done.

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
}
