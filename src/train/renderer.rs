//! A quiet renderer for logs and non-terminals: a progress line every 10 % of a split (the
//! summary logger prints one line per epoch). The TUI dashboard is the default on a terminal.

use std::time::Instant;

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::MetricDefinition;
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};

/// Plain-text progress.
pub struct PlainRenderer {
    epoch: usize,
    epochs: usize,
    split: String,
    total: usize,
    next_report: usize,
    started: Instant,
    quiet: bool,
    /// Ranks of a data-parallel run: rank 0 reads its share of the data, and its counts are
    /// scaled to the whole run's.
    ranks: usize,
}

impl PlainRenderer {
    /// A new renderer.
    pub fn new() -> Self {
        Self {
            epoch: 0,
            epochs: 0,
            split: String::new(),
            total: 0,
            next_report: 0,
            started: Instant::now(),
            quiet: false,
            ranks: 1,
        }
    }

    /// Progress of a data-parallel run of `ranks` ranks, seen from rank 0 (its share of the
    /// samples scaled by the ranks: exact when the batch divides evenly among them).
    pub fn for_ranks(self, ranks: usize) -> Self {
        Self {
            ranks: ranks.max(1),
            ..self
        }
    }

    /// A renderer that prints nothing (the ranks of a data-parallel run other than 0).
    pub fn quiet() -> Self {
        Self {
            quiet: true,
            ..Self::new()
        }
    }
}

impl Default for PlainRenderer {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRendererTraining for PlainRenderer {
    fn update_train(&mut self, _state: MetricState) {}
    fn update_valid(&mut self, _state: MetricState) {}
}

impl TrainingProgressLogger for PlainRenderer {
    fn start(&mut self, total: usize, starting: usize, _items: Option<usize>, _l: Option<&str>) {
        self.epochs = total;
        self.epoch = starting;
    }

    fn start_split(&mut self, split_name: &str, total_items: usize) {
        self.split = split_name.to_string();
        self.total = total_items * self.ranks;
        self.next_report = total_items.div_ceil(10);
        self.started = Instant::now();
    }

    fn update_split(&mut self, items_processed: usize) {
        let items_processed = items_processed * self.ranks;
        if items_processed >= self.next_report && self.total > 0 && !self.quiet {
            let secs = self.started.elapsed().as_secs_f64();
            println!(
                "  epoch {}/{} {}: {}/{} ({:.0}%) {:.0} samples/s",
                self.epoch,
                self.epochs,
                self.split,
                items_processed,
                self.total,
                100.0 * items_processed as f64 / self.total as f64,
                items_processed as f64 / secs.max(1e-9)
            );
            self.next_report = items_processed + self.total.div_ceil(10);
        }
    }

    fn update_epoch(&mut self, ended: usize) {
        self.epoch = ended + 1;
    }

    fn end_split(&mut self) {}
    fn end(&mut self) {}
    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for PlainRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}
    fn start_test(&mut self, name: &str, total_items: usize) {
        self.start_split(name, total_items);
    }
    fn update_test_progress(&mut self, items_processed: usize) {
        self.update_split(items_processed);
    }
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRendererEvaluation for PlainRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
}

impl MetricsRenderer for PlainRenderer {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _definition: MetricDefinition) {}
}
