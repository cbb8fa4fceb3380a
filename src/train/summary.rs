//! `summary.json` of a run: the configuration, the backend, and one record per epoch, written
//! by a burn-train metric logger at the end of every epoch (so an interrupted run keeps it).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, NumericEntry};
use serde::{Deserialize, Serialize};

/// One epoch of a run (accuracies are fractions in 0..1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Training accuracy (training-time forward passes).
    pub train_accuracy: f64,
    /// Test accuracy after the epoch.
    pub test_accuracy: f64,
    /// Mean training count loss.
    pub loss: f64,
    /// Mean test count loss.
    pub test_loss: f64,
    /// Wall-clock seconds of the epoch's training (without the test pass).
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
    /// Learning rate of the epoch.
    pub lr: f64,
    /// Mean spikes per test sample, all layers together.
    #[serde(default)]
    pub spikes_per_sample: f64,
    /// Mean per training sample of the cost the authors log ([`crate::loss::logged_cost`]).
    #[serde(default)]
    pub authors_cost: f64,
    /// Per layer, bottom-up: neurons that fired on no training sample of the epoch.
    #[serde(default)]
    pub dead_neurons: Vec<usize>,
    /// Tensor reads hm2bp made during the epoch's training, on every thread
    /// ([`crate::device_reads`]): on a device, blocking device→host reads (the fault watch's,
    /// boosting's and the metrics', every `--read-every` steps); on a CPU backend also the host
    /// kernels' copies of their inputs. Counted from the epoch's start until burn-train's
    /// metric thread logs its training as over, so a read of the test pass may land in it.
    #[serde(default)]
    pub reads: u64,
}

/// The whole summary file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    /// Experiment (after command-line overrides), network and run facts.
    pub config: serde_json::Value,
    /// Backend and device.
    pub backend: String,
    /// Per epoch.
    pub epochs: Vec<EpochRecord>,
    /// Best test accuracy so far.
    pub best_test_accuracy: f64,
    /// Epoch of the best test accuracy.
    pub best_epoch: usize,
    /// Peak resident memory of the training process in MiB (written when the run ends).
    #[serde(default)]
    pub peak_memory_mib: Option<f64>,
    /// The mean parameters of the last epochs (`average_last`), written when the run ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average: Option<super::average::AverageRecord>,
}

impl RunSummary {
    /// The summary of a run starting afresh.
    pub fn new(config: serde_json::Value, backend: String) -> Self {
        Self {
            config,
            backend,
            epochs: Vec::new(),
            best_test_accuracy: 0.0,
            best_epoch: 0,
            peak_memory_mib: None,
            average: None,
        }
    }

    /// The summary of a run resumed after 0-based `finished` epochs: the records of later
    /// epochs (trained before the checkpoint it resumes from was lost) are dropped.
    pub fn resumed_after(mut self, finished: usize) -> Self {
        self.epochs.retain(|r| r.epoch <= finished);
        self.update_best();
        self
    }

    /// Writes it to `path` (atomically).
    pub fn save(&self, path: &std::path::Path) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let text = serde_json::to_string_pretty(self)?;
        super::checkpoint::write_atomically(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Adds an epoch, replacing a record of the same epoch (a resumed run redoes it).
    pub fn push(&mut self, record: EpochRecord) {
        self.epochs.retain(|r| r.epoch != record.epoch);
        self.epochs.push(record);
        self.epochs.sort_by_key(|r| r.epoch);
        self.update_best();
    }

    fn update_best(&mut self) {
        let best = self
            .epochs
            .iter()
            .max_by(|a, b| a.test_accuracy.total_cmp(&b.test_accuracy));
        (self.best_test_accuracy, self.best_epoch) =
            best.map_or((0.0, 0), |b| (b.test_accuracy, b.epoch));
    }
}

/// Peak resident memory of this process in MiB (Linux), if known.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Name of the authors' cost metric ([`super::metrics::AuthorsCost`]).
pub const COST_METRIC: &str = "Cost (authors)";

/// Shared between the logger (inside the learner) and the caller.
pub type SharedSummary = Arc<Mutex<RunSummary>>;

/// The metric logger that maintains `summary.json`.
pub struct SummaryLogger {
    path: PathBuf,
    summary: SharedSummary,
    names: HashMap<String, String>,
    values: HashMap<(usize, bool, String), f64>,
    train_samples: usize,
    lr_of_epoch: Box<dyn Fn(usize) -> f64 + Send>,
    epoch_start: Instant,
    train_seconds: HashMap<usize, f64>,
    /// Reads counted when the epoch began, and the epochs' training reads.
    reads_at_start: u64,
    train_reads: HashMap<usize, u64>,
    echo: bool,
    /// What the echoed line calls the evaluated split ("test", or "held-out").
    evaluated: &'static str,
    layers: Vec<(String, usize)>,
    /// The 1-based epoch a mid-epoch resume continued and the samples of it trained before.
    resumed: Option<(usize, usize)>,
}

impl SummaryLogger {
    /// A logger writing `path`; `echo` prints one line per epoch to stdout (plain mode).
    pub fn new(
        path: PathBuf,
        summary: SharedSummary,
        train_samples: usize,
        lr_of_epoch: Box<dyn Fn(usize) -> f64 + Send>,
        echo: bool,
    ) -> Self {
        Self {
            path,
            summary,
            names: HashMap::new(),
            values: HashMap::new(),
            train_samples,
            lr_of_epoch,
            epoch_start: Instant::now(),
            train_seconds: HashMap::new(),
            reads_at_start: crate::device_reads::reads_so_far(),
            train_reads: HashMap::new(),
            echo,
            evaluated: "test",
            layers: Vec::new(),
            resumed: None,
        }
    }

    /// 0-based epoch `epoch` continues a killed run after `done_samples` of its samples: its
    /// throughput counts the samples trained after the resume only.
    pub fn resumed_mid_epoch(self, epoch: usize, done_samples: usize) -> Self {
        Self {
            resumed: Some((epoch + 1, done_samples)),
            ..self
        }
    }

    /// Samples trained in 1-based epoch `epoch` by this process.
    fn trained_samples(&self, epoch: usize) -> usize {
        match self.resumed {
            Some((e, done)) if e == epoch => self.train_samples.saturating_sub(done),
            _ => self.train_samples,
        }
    }

    /// Names the split each epoch is evaluated on in the echoed lines: `"held-out"` when the
    /// run tests on held-out training samples (`--validation-samples`), not the test split.
    pub fn evaluated_on(self, evaluated: &'static str) -> Self {
        Self { evaluated, ..self }
    }

    /// The network's layers (label of their activity metrics, neurons), to sum spikes per
    /// sample.
    pub fn with_layers(self, layers: Vec<(String, usize)>) -> Self {
        Self { layers, ..self }
    }

    fn value(&self, epoch: usize, valid: bool, name: &str) -> f64 {
        self.values
            .get(&(epoch, valid, name.to_string()))
            .copied()
            .unwrap_or(f64::NAN)
    }

    fn finish_epoch(&mut self, epoch: usize) {
        let seconds = self.train_seconds.get(&epoch).copied().unwrap_or(f64::NAN);
        let record = EpochRecord {
            epoch,
            train_accuracy: self.value(epoch, false, "Accuracy") / 100.0,
            test_accuracy: self.value(epoch, true, "Accuracy") / 100.0,
            loss: self.value(epoch, false, "Loss"),
            test_loss: self.value(epoch, true, "Loss"),
            seconds,
            samples_per_second: self.trained_samples(epoch) as f64 / seconds,
            lr: (self.lr_of_epoch)(epoch - 1),
            spikes_per_sample: self
                .layers
                .iter()
                .map(|(label, size)| {
                    let per_neuron = format!("Spikes per neuron {label}");
                    self.value(epoch, true, &per_neuron) * *size as f64
                })
                .sum(),
            authors_cost: self.value(epoch, false, COST_METRIC),
            dead_neurons: self
                .layers
                .iter()
                .map(|(label, _)| {
                    let dead = self.value(epoch, false, &format!("Dead neurons {label}"));
                    if dead.is_finite() { dead as usize } else { 0 }
                })
                .collect(),
            reads: self.train_reads.get(&epoch).copied().unwrap_or_default(),
        };
        if self.echo {
            println!(
                "epoch {:>3}: train acc {:.2}%  {} acc {:.2}%  loss {:.3}  cost (authors) {:.3}  \
                 dead {:?}  {:.1} s ({:.0} samples/s)",
                record.epoch,
                100.0 * record.train_accuracy,
                self.evaluated,
                100.0 * record.test_accuracy,
                record.loss,
                record.authors_cost,
                record.dead_neurons,
                record.seconds,
                record.samples_per_second
            );
        }
        let mut s = self.summary.lock().unwrap_or_else(|e| e.into_inner());
        s.push(record);
        if let Err(e) = s.save(&self.path) {
            eprintln!("warning: {e:#}");
        }
    }
}

impl MetricLogger for SummaryLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let valid = match split {
            Split::Train => false,
            Split::Valid => true,
            Split::Test(_) => return,
        };
        for u in update.entries_numeric {
            let id = format!("{:?}", u.entry.metric_id);
            let Some(name) = self.names.get(&id).cloned() else {
                continue;
            };
            let v = match (&u.numeric_entry, &u.running_entry) {
                (Some(NumericEntry::Final(v)), _) => *v,
                (_, Some(r)) => r.current(),
                (Some(n), None) => n.current(),
                (None, None) => continue,
            };
            self.values.insert((epoch, valid, name), v);
        }
    }

    fn read_numeric(
        &mut self,
        _name: &str,
        _epoch: usize,
        _split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        Err("the summary logger keeps epoch aggregates only".into())
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names.insert(
            format!("{:?}", definition.metric_id),
            definition.name.to_string(),
        );
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        match summary.split {
            Split::Train => {
                self.train_seconds.insert(
                    summary.epoch_number,
                    self.epoch_start.elapsed().as_secs_f64(),
                );
                let reads = crate::device_reads::reads_so_far() - self.reads_at_start;
                self.train_reads.insert(summary.epoch_number, reads);
            }
            Split::Valid => {
                self.finish_epoch(summary.epoch_number);
                self.epoch_start = Instant::now();
                self.reads_at_start = crate::device_reads::reads_so_far();
            }
            Split::Test(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_epoch_counts_the_samples_trained_after_the_resume() {
        let summary = Arc::new(Mutex::new(RunSummary {
            config: serde_json::Value::Null,
            backend: String::new(),
            epochs: Vec::new(),
            best_test_accuracy: 0.0,
            best_epoch: 0,
            peak_memory_mib: None,
            average: None,
        }));
        let logger = SummaryLogger::new(PathBuf::new(), summary, 100, Box::new(|_| 0.1), false)
            .resumed_mid_epoch(1, 30);
        assert_eq!(logger.trained_samples(2), 70);
        assert_eq!(logger.trained_samples(3), 100);
        assert_eq!(logger.trained_samples(1), 100);
    }
}
