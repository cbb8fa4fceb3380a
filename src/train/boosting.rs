//! Per-sample boosting weights (spec §3.5.4, the authors' `BOOST_METHOD`): after every epoch,
//! each class `c` gets `err_c = Σ_{n ∈ c, wrong} β_n / Σ_{n ∈ c} β_n`, and every wrongly
//! classified training sample (judged by the training-time forward pass) gets
//! `β_n ← β_n · exp(err_c / 20)`. β multiplies the sample's output error; it is never
//! renormalised. The verdicts of the epoch in progress are saved with the weights, so a run
//! resumed mid-epoch updates the weights as an uninterrupted one.

use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The weights and this epoch's verdicts of every training sample.
pub struct Boosting {
    labels: Vec<u8>,
    num_classes: usize,
    state: Mutex<BoostingState>,
}

/// A summary, not the per-sample vectors (burn-train prints the model, boosting included).
impl std::fmt::Debug for Boosting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Boosting")
            .field("samples", &self.labels.len())
            .field("classes", &self.num_classes)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BoostingState {
    weights: Vec<f32>,
    /// Verdicts of the epoch in progress (all false at an epoch's end).
    #[serde(default)]
    wrong: Vec<bool>,
}

impl Boosting {
    /// All weights 1 for a training set with these labels.
    pub fn new(labels: Vec<u8>, num_classes: usize) -> Self {
        let n = labels.len();
        Self {
            labels,
            num_classes,
            state: Mutex::new(BoostingState {
                weights: vec![1.0; n],
                wrong: vec![false; n],
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoostingState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Current weights of the samples `indices`.
    pub fn weights_of(&self, indices: &[u64]) -> Vec<f32> {
        let s = self.lock();
        indices.iter().map(|&i| s.weights[i as usize]).collect()
    }

    /// Records which samples the training-time forward pass got wrong.
    pub fn record(&self, indices: &[u64], wrong: &[bool]) {
        let mut s = self.lock();
        for (&i, &w) in indices.iter().zip(wrong) {
            s.wrong[i as usize] = w;
        }
    }

    /// The end-of-epoch update; clears the verdicts.
    pub fn end_epoch(&self) {
        let mut s = self.lock();
        let mut total = vec![0.0f64; self.num_classes];
        let mut wrong = vec![0.0f64; self.num_classes];
        for (n, &c) in self.labels.iter().enumerate() {
            total[c as usize] += s.weights[n] as f64;
            if s.wrong[n] {
                wrong[c as usize] += s.weights[n] as f64;
            }
        }
        let factor: Vec<f32> = (0..self.num_classes)
            .map(|c| {
                let err = if total[c] > 0.0 {
                    wrong[c] / total[c]
                } else {
                    0.0
                };
                (err / 20.0).exp() as f32
            })
            .collect();
        let BoostingState { weights, wrong } = &mut *s;
        for (n, &c) in self.labels.iter().enumerate() {
            if wrong[n] {
                weights[n] *= factor[c as usize];
            }
        }
        wrong.fill(false);
    }

    /// Saves the weights and verdicts (a resumed run continues with them).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string(&*self.lock()).map_err(std::io::Error::other)?;
        super::checkpoint::write_atomically(path, text.as_bytes())
    }

    /// Loads weights (and verdicts, when saved) written by [`Boosting::save`]; an error when
    /// they are for another number of samples.
    pub fn load(&self, path: &Path) -> std::io::Result<()> {
        let text = std::fs::read_to_string(path)?;
        let loaded: BoostingState = serde_json::from_str(&text).map_err(std::io::Error::other)?;
        let mut s = self.lock();
        if loaded.weights.len() != s.weights.len() {
            return Err(std::io::Error::other(format!(
                "boosting weights of {} samples, the training split has {}",
                loaded.weights.len(),
                s.weights.len()
            )));
        }
        s.weights = loaded.weights;
        if loaded.wrong.len() == s.wrong.len() {
            s.wrong = loaded.wrong;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_samples_grow_by_class_error() {
        let b = Boosting::new(vec![0, 0, 0, 0, 1, 1], 2);
        b.record(&[0, 4], &[true, true]);
        b.end_epoch();
        let w = b.weights_of(&[0, 1, 4, 5]);
        assert!((w[0] - (0.25f64 / 20.0).exp() as f32).abs() < 1e-6);
        assert_eq!(w[1], 1.0);
        assert!((w[2] - (0.5f64 / 20.0).exp() as f32).abs() < 1e-6);
        assert_eq!(w[3], 1.0);
        // Verdicts are cleared: a second epoch with no errors changes nothing.
        b.end_epoch();
        assert_eq!(b.weights_of(&[0])[0], w[0]);
    }

    /// Weights and the verdicts of the epoch in progress survive a save and load.
    #[test]
    fn mid_epoch_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boosting.json");
        let b = Boosting::new(vec![0, 0, 1, 1], 2);
        b.record(&[0], &[true]);
        b.end_epoch();
        b.record(&[2], &[true]);
        b.save(&path).unwrap();
        let resumed = Boosting::new(vec![0, 0, 1, 1], 2);
        resumed.load(&path).unwrap();
        b.end_epoch();
        resumed.end_epoch();
        assert_eq!(
            resumed.weights_of(&[0, 1, 2, 3]),
            b.weights_of(&[0, 1, 2, 3])
        );
    }
}
