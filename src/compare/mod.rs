//! `experiment compare`: trains one experiment with several methods (HM2-BP and BPTT
//! baselines) and writes the side-by-side table (`compare.md`, `compare.csv`,
//! `compare.json`) and a plot of test accuracy against training wall-clock time
//! (`compare.png`).
//!
//! Each method is trained in its own process (so that its peak memory is its own) through the
//! ordinary `train` path; its exact configuration is written to
//! `OUT/METHOD/experiment.toml` and its results to `OUT/METHOD/summary.json`.

pub mod plot;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::experiment::{ExperimentDef, Method, MethodOptions};
use crate::train::summary::RunSummary;

/// One method's run.
#[derive(Clone, Debug, Serialize)]
pub struct MethodRun {
    /// Method as given on the command line.
    pub method: String,
    /// The experiment it ran (after the method was applied).
    pub experiment: ExperimentDef,
    /// Its summary.
    pub summary: RunSummary,
}

impl MethodRun {
    /// Mean training seconds per epoch.
    pub fn seconds_per_epoch(&self) -> f64 {
        mean(self.summary.epochs.iter().map(|e| e.seconds))
    }

    /// Mean training samples per second.
    pub fn samples_per_second(&self) -> f64 {
        mean(self.summary.epochs.iter().map(|e| e.samples_per_second))
    }

    /// (cumulative training seconds, test accuracy) after every epoch.
    pub fn accuracy_over_time(&self) -> Vec<(f64, f64)> {
        let mut t = 0.0;
        self.summary
            .epochs
            .iter()
            .map(|e| {
                t += e.seconds;
                (t, e.test_accuracy)
            })
            .collect()
    }

    /// Training seconds (summed over epochs, test passes excluded) until the end of the first
    /// epoch whose test accuracy reaches `accuracy` (a fraction); `None` if none does.
    pub fn seconds_to(&self, accuracy: f64) -> Option<f64> {
        self.accuracy_over_time()
            .into_iter()
            .find(|&(_, a)| a >= accuracy)
            .map(|(t, _)| t)
    }

    fn method_description(&self) -> String {
        let e = &self.experiment;
        match e.method {
            Method::Hm2bp => "HM2-BP".to_string(),
            Method::Bptt => format!(
                "BPTT, {} surrogate, {} loss{}",
                e.bptt.surrogate.name(),
                match e.bptt.loss {
                    crate::experiment::CountLossKind::CountMse => "count-MSE",
                    crate::experiment::CountLossKind::CrossEntropy => "cross-entropy",
                },
                if e.bptt.window > 0 {
                    format!(", window {}", e.bptt.window)
                } else {
                    String::new()
                }
            ),
        }
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// The folder name of a method's run (`bptt-arctan:25` → `bptt-arctan-T25`).
pub fn run_folder(method: &str) -> String {
    method.replace(':', "-T")
}

/// Trains `exp` with every method of `methods`; `train_one(experiment_toml, out_dir)` runs one
/// training (in a child process). Writes the reports into `out_dir` and returns the runs.
pub fn compare(
    exp: &ExperimentDef,
    methods: &[String],
    out_dir: &Path,
    train_one: &mut dyn FnMut(&Path, &Path) -> Result<()>,
) -> Result<Vec<MethodRun>> {
    // Every method is checked before anything runs.
    let specs = methods
        .iter()
        .map(|m| {
            MethodOptions::parse(m, &exp.bptt).and_then(|s| Ok((s.clone(), exp.with_method(&s)?)))
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(|m| anyhow::anyhow!("--methods: {m}"))?;
    let mut runs = Vec::with_capacity(specs.len());
    for (spec, method_exp) in specs {
        let dir = out_dir.join(run_folder(&spec.label));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let toml_path = dir.join("experiment.toml");
        std::fs::write(&toml_path, toml::to_string(&method_exp)?)
            .with_context(|| format!("cannot write {}", toml_path.display()))?;
        println!("=== {}: {}", spec.label, dir.display());
        train_one(&toml_path, &dir).with_context(|| format!("method {}", spec.label))?;
        let summary = read_summary(&dir.join("summary.json"))?;
        runs.push(MethodRun {
            method: spec.label,
            experiment: method_exp,
            summary,
        });
    }
    write_reports(exp, &runs, out_dir)?;
    Ok(runs)
}

fn read_summary(path: &Path) -> Result<RunSummary> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: malformed summary", path.display()))
}

/// Writes `compare.md`, `compare.csv`, `compare.json` and `compare.png` into `out_dir`.
pub fn write_reports(exp: &ExperimentDef, runs: &[MethodRun], out_dir: &Path) -> Result<()> {
    let files: [(PathBuf, String); 3] = [
        (out_dir.join("compare.md"), markdown(exp, runs)),
        (out_dir.join("compare.csv"), csv(runs)),
        (
            out_dir.join("compare.json"),
            serde_json::to_string_pretty(runs)?,
        ),
    ];
    for (path, text) in files {
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let png = out_dir.join("compare.png");
    plot::accuracy_over_time(runs, &exp.name, &png)
        .with_context(|| format!("cannot draw {}", png.display()))?;
    Ok(())
}

/// The test accuracies whose time to reach `compare.md` reports.
pub const ACCURACY_TARGETS: [f64; 3] = [0.97, 0.975, 0.98];

fn pct(v: f64) -> String {
    format!("{:.2}", 100.0 * v)
}

fn markdown(exp: &ExperimentDef, runs: &[MethodRun]) -> String {
    let mut s = String::new();
    let samples = |n: Option<usize>| n.map_or("all".to_string(), |n| n.to_string());
    let _ = writeln!(
        s,
        "# {}: method comparison\n\n{} on {}, batch {}, {} training / {} test samples.\n",
        exp.name,
        exp.model,
        exp.dataset,
        exp.batch_size,
        samples(exp.train_samples),
        samples(exp.test_samples)
    );
    let _ = writeln!(
        s,
        "| method | T | epochs | final test acc % | best test acc % | s / epoch | samples/s | \
         peak memory MiB | spikes / test sample | lr |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for r in runs {
        let last = r.summary.epochs.last();
        let _ = writeln!(
            s,
            "| {} ({}) | {} | {} | {} | {} | {:.1} | {:.1} | {} | {:.0} | {} |",
            r.method,
            r.method_description(),
            r.experiment.steps,
            r.summary.epochs.len(),
            last.map_or("-".into(), |e| pct(e.test_accuracy)),
            pct(r.summary.best_test_accuracy),
            r.seconds_per_epoch(),
            r.samples_per_second(),
            r.summary
                .peak_memory_mib
                .map_or("-".into(), |m| format!("{m:.0}")),
            last.map_or(f64::NAN, |e| e.spikes_per_sample),
            r.experiment.learning_rate().base,
        );
    }
    time_to_accuracy(&mut s, runs);
    let _ = writeln!(s, "\nTest accuracy (%) per epoch:\n");
    let epochs = runs
        .iter()
        .map(|r| r.summary.epochs.len())
        .max()
        .unwrap_or(0);
    let _ = write!(s, "| method |");
    for e in 1..=epochs {
        let _ = write!(s, " {e} |");
    }
    let _ = writeln!(s, "\n|---|{}", "---|".repeat(epochs));
    for r in runs {
        let _ = write!(s, "| {} |", r.method);
        for e in &r.summary.epochs {
            let _ = write!(s, " {} |", pct(e.test_accuracy));
        }
        let _ = writeln!(s);
    }
    s
}

/// The table of training seconds until each of [`ACCURACY_TARGETS`] is reached (at an
/// epoch's end; "—" where the run never reached it).
fn time_to_accuracy(s: &mut String, runs: &[MethodRun]) {
    let _ = write!(
        s,
        "\nTraining seconds to reach a test accuracy (at the end of the epoch that reaches it):\n\n| method |"
    );
    for target in ACCURACY_TARGETS {
        let _ = write!(s, " {} % |", pct(target));
    }
    let _ = writeln!(s, "\n|---|{}", "---|".repeat(ACCURACY_TARGETS.len()));
    for r in runs {
        let _ = write!(s, "| {} |", r.method);
        for target in ACCURACY_TARGETS {
            let cell = r
                .seconds_to(target)
                .map_or("—".into(), |t| format!("{t:.0}"));
            let _ = write!(s, " {cell} |");
        }
        let _ = writeln!(s);
    }
}

fn csv(runs: &[MethodRun]) -> String {
    let mut s = String::from(
        "method,steps,epoch,train_accuracy,test_accuracy,loss,seconds,cumulative_seconds,\
         samples_per_second,spikes_per_sample,peak_memory_mib\n",
    );
    for r in runs {
        let mut cumulative = 0.0;
        for e in &r.summary.epochs {
            cumulative += e.seconds;
            let _ = writeln!(
                s,
                "{},{},{},{:.6},{:.6},{:.6},{:.3},{:.3},{:.3},{:.2},{}",
                r.method,
                r.experiment.steps,
                e.epoch,
                e.train_accuracy,
                e.test_accuracy,
                e.loss,
                e.seconds,
                cumulative,
                e.samples_per_second,
                e.spikes_per_sample,
                r.summary
                    .peak_memory_mib
                    .map_or(String::new(), |m| format!("{m:.1}")),
            );
        }
    }
    s
}
