//! Experiment definitions (`experiments/NAME/experiment.toml`): dataset, model, method, T,
//! epochs, batch size, learning-rate schedule, seed and the HM2-BP settings of spec §5.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bptt::Surrogate;
use crate::datasets::DataOrder;
use crate::datasets::DataOrderKind;
use crate::datasets::{
    AudioDef, AugmentDef, DatasetKind, EncodingMode, InputOptions, NmnistDef, SpikeProcess,
};
use crate::definition::{DefinitionError, read_definition};
use crate::rule::output::CountTargets;
use crate::rule::regularizer::{RegularizerDef, RegularizerPreset};

/// Learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// `base` throughout.
    Constant,
    /// The authors' `base / √max(e, 1)` for 0-based epoch `e` (spec §5.1).
    InvSqrtEpoch,
}

/// Learning rate settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrDef {
    /// Base learning rate (1e-3).
    pub base: f64,
    /// Schedule.
    pub schedule: LrSchedule,
}

impl LrDef {
    /// Learning rate of 0-based epoch `epoch`.
    pub fn at_epoch(&self, epoch: usize) -> f64 {
        match self.schedule {
            LrSchedule::Constant => self.base,
            LrSchedule::InvSqrtEpoch => self.base / (epoch.max(1) as f64).sqrt(),
        }
    }
}

/// Training method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Hybrid Macro/Micro level backpropagation.
    Hm2bp,
    /// Backpropagation through time with a surrogate spike derivative (the `[bptt]` table).
    Bptt,
}

/// Loss on the output spike counts of a BPTT run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CountLossKind {
    /// HM2-BP's masked squared error to the count targets (`[targets]`).
    CountMse,
    /// Cross-entropy of `softmax(logit_scale · counts / steps)` (of the firing rates).
    CrossEntropy,
}

/// Settings of BPTT training (`[bptt]`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BpttDef {
    /// Surrogate derivative of the spike step, e.g. `{ kind = "arctan", alpha = 2.0 }`.
    #[serde(default = "default_surrogate")]
    pub surrogate: Surrogate,
    /// Loss on the output counts.
    #[serde(default = "default_loss")]
    pub loss: CountLossKind,
    /// The cross-entropy logits are `logit_scale · counts / steps`: the output firing rates
    /// times this, so one value fits every simulation length.
    #[serde(default = "default_logit_scale")]
    pub logit_scale: f32,
    /// Truncated BPTT: detach the neuron state every `window` steps (0: full BPTT).
    #[serde(default)]
    pub window: usize,
    /// Base learning rate of BPTT runs (default: `lr.base`; the schedule is `lr.schedule`).
    #[serde(default)]
    pub lr: Option<f64>,
}

fn default_surrogate() -> Surrogate {
    Surrogate::Arctan { alpha: 2.0 }
}
fn default_loss() -> CountLossKind {
    CountLossKind::CountMse
}
fn default_logit_scale() -> f32 {
    25.0
}

impl Default for BpttDef {
    fn default() -> Self {
        Self {
            surrogate: default_surrogate(),
            loss: default_loss(),
            logit_scale: default_logit_scale(),
            window: 0,
            lr: None,
        }
    }
}

/// An experiment definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentDef {
    /// Name (the folder name).
    pub name: String,
    /// One line on what it is.
    #[serde(default)]
    pub description: String,
    /// Dataset.
    pub dataset: DatasetKind,
    /// N-MNIST preprocessing (`dataset = "nmnist"`): stabilisation, bin width, binning.
    #[serde(default)]
    pub events: NmnistDef,
    /// Audio front end and spike code (`dataset = "fsdd"`).
    #[serde(default)]
    pub audio: AudioDef,
    /// Network definition name (`models/NAME.json`).
    pub model: String,
    /// Training method.
    pub method: Method,
    /// Simulation length T.
    pub steps: usize,
    /// Epochs.
    pub epochs: usize,
    /// Batch size (the authors: 1).
    pub batch_size: usize,
    /// Seed of weights, spike encoding and data order.
    pub seed: u64,
    /// When input spike trains are drawn. With `augmentation`, training trains are redrawn
    /// every epoch from the distorted images and this governs the test split only.
    pub encoding: EncodingMode,
    /// How input spikes are placed at their rate: `"bernoulli"` (the paper's, default) or
    /// `"regular"` (evenly spaced, random phase per pixel).
    #[serde(default)]
    pub spike_process: SpikeProcess,
    /// Distortion of the training images (the authors' CNN run; none if absent).
    #[serde(default)]
    pub augmentation: Option<AugmentDef>,
    /// Learning rate.
    pub lr: LrDef,
    /// Output targets.
    #[serde(default)]
    pub targets: CountTargets,
    /// Weight regulariser: a named setting or explicit values.
    pub regularizer: RegularizerDef,
    /// Effect ratio ρ (S8) on.
    #[serde(default = "yes")]
    pub effect_ratio: bool,
    /// Order of the training samples in each epoch (default: a fresh shuffle per epoch).
    #[serde(default)]
    pub order: DataOrder,
    /// Per-sample boosting weights (spec §3.5.4, on in the authors' best configs).
    #[serde(default)]
    pub boosting: bool,
    /// Use only the first N training samples.
    #[serde(default)]
    pub train_samples: Option<usize>,
    /// Use only the first N test samples.
    #[serde(default)]
    pub test_samples: Option<usize>,
    /// Hold out the last N training samples and test on them instead of the test split
    /// (to choose settings without the test set); training uses the samples before them.
    #[serde(default)]
    pub validation_samples: Option<usize>,
    /// BPTT settings (used when `method = "bptt"`).
    #[serde(default)]
    pub bptt: BpttDef,
    /// Also test the mean of the parameters after each of the last N epochs (checkpoint
    /// averaging, not in the paper; 0: off). The run keeps those epochs' checkpoints, writes
    /// `model-average.bpk` and records its accuracy in `summary.json`.
    #[serde(default)]
    pub average_last: usize,
    /// Minutes between mid-epoch checkpoints (0: only at the end of every epoch).
    #[serde(default = "default_checkpoint_minutes")]
    pub checkpoint_minutes: f64,
}

fn yes() -> bool {
    true
}

/// At most this many minutes of a long epoch are lost to a kill.
fn default_checkpoint_minutes() -> f64 {
    10.0
}

/// Errors of loading an experiment definition.
pub type ExperimentError = DefinitionError;

impl ExperimentDef {
    /// Loads `dir/NAME/experiment.toml`, or `name` itself if it is a path to a file.
    pub fn load(name: &str, dir: &Path) -> Result<Self, ExperimentError> {
        let default = dir.join(name).join("experiment.toml");
        let (path, text) = read_definition("experiment", name, default, || list_experiments(dir))?;
        Self::parse(&path, &text)
    }

    /// Parses and validates the TOML text of an experiment; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ExperimentError> {
        let def: ExperimentDef = toml::from_str(text).map_err(|e| ExperimentError::Malformed {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        def.validate()
            .map_err(|message| ExperimentError::Malformed {
                path: path.to_path_buf(),
                message,
            })?;
        Ok(def)
    }

    /// Checks value ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.steps < 2 {
            return Err("steps: must be at least 2".into());
        }
        if self.epochs == 0 {
            return Err("epochs: must be at least 1".into());
        }
        if self.batch_size == 0 {
            return Err("batch_size: must be at least 1".into());
        }
        if self.validation_samples == Some(0) {
            return Err("validation_samples: must be at least 1 (or absent)".into());
        }
        if !(self.lr.base.is_finite() && self.lr.base > 0.0) {
            return Err("lr.base: must be a positive number".into());
        }
        let r = self.regularizer.params();
        if !(r.lambda.is_finite() && r.beta.is_finite() && r.limit.is_finite() && r.limit > 0.0) {
            return Err("regularizer: lambda, beta must be finite and limit > 0".into());
        }
        let t = &self.targets;
        if !(t.desired.is_finite() && t.undesired.is_finite() && t.margin.is_finite()) {
            return Err("targets: desired, undesired and margin must be finite".into());
        }
        if t.desired < 1.0 {
            return Err("targets.desired: must be at least 1".into());
        }
        let b = &self.bptt;
        b.surrogate
            .validate()
            .map_err(|m| format!("bptt.surrogate: {m}"))?;
        if !(b.logit_scale.is_finite() && b.logit_scale > 0.0) {
            return Err("bptt.logit_scale: must be a positive number".into());
        }
        if let Some(lr) = b.lr
            && !(lr.is_finite() && lr > 0.0)
        {
            return Err("bptt.lr: must be a positive number".into());
        }
        if let Some(a) = &self.augmentation {
            a.validate()?;
            if self.dataset.images().is_none() {
                return Err(format!(
                    "augmentation: distorts images, dataset {} is spike trains",
                    self.dataset
                ));
            }
        }
        if !(self.checkpoint_minutes.is_finite() && self.checkpoint_minutes >= 0.0) {
            return Err("checkpoint_minutes: must be a number ≥ 0 (0: off)".into());
        }
        if self.events.bin_us == 0 {
            return Err("events.bin_us: must be at least 1".into());
        }
        self.audio.validate()
    }

    /// How the dataset's samples become spike trains (beyond `steps`).
    pub fn input_options(&self) -> InputOptions {
        InputOptions {
            events: self.events,
            audio: self.audio,
        }
    }

    /// The learning rate of this experiment's method (`bptt.lr` for BPTT runs when set).
    pub fn learning_rate(&self) -> LrDef {
        match (self.method, self.bptt.lr) {
            (Method::Bptt, Some(base)) => LrDef { base, ..self.lr },
            _ => self.lr,
        }
    }

    /// This experiment run with `method` instead (see [`MethodOptions`]).
    pub fn with_method(&self, method: &MethodOptions) -> Result<Self, String> {
        let mut exp = self.clone();
        exp.set_method(method);
        exp.validate()?;
        Ok(exp)
    }

    /// Runs this experiment with `method` (its surrogate and simulation length, if it names
    /// them).
    fn set_method(&mut self, method: &MethodOptions) {
        self.method = method.method;
        if let Some(s) = method.surrogate {
            self.bptt.surrogate = s;
        }
        if let Some(steps) = method.steps {
            self.steps = steps;
        }
    }

    /// This experiment with the settings `patch` gives replaced, validated once, after every
    /// change: the method first (with its `:STEPS`), then the other settings (`steps` wins
    /// over the method's).
    ///
    /// # Errors
    /// A method that does not parse, or a result that [`validate`](Self::validate) refuses;
    /// the message names the setting.
    pub fn apply(&self, patch: &ExperimentPatch) -> Result<Self, String> {
        let mut exp = self.clone();
        if let Some(m) = &patch.method {
            exp.set_method(
                &MethodOptions::parse(m, &exp.bptt).map_err(|e| format!("method: {e}"))?,
            );
        }
        exp.epochs = patch.epochs.unwrap_or(exp.epochs);
        exp.batch_size = patch.batch_size.unwrap_or(exp.batch_size);
        exp.steps = patch.steps.unwrap_or(exp.steps);
        exp.average_last = patch.average_last.unwrap_or(exp.average_last);
        exp.train_samples = patch.train_samples.or(exp.train_samples);
        exp.test_samples = patch.test_samples.or(exp.test_samples);
        exp.validation_samples = patch.validation_samples.or(exp.validation_samples);
        exp.seed = patch.seed.unwrap_or(exp.seed);
        if let Some(setting) = patch.regularizer {
            exp.regularizer = RegularizerDef::Named(setting);
        }
        exp.order.kind = patch.order.unwrap_or(exp.order.kind);
        if let Some(lr) = patch.lr {
            exp.lr.base = lr;
            exp.bptt.lr = exp.bptt.lr.map(|_| lr);
        }
        exp.checkpoint_minutes = patch.checkpoint_minutes.unwrap_or(exp.checkpoint_minutes);
        exp.validate()?;
        Ok(exp)
    }
}

/// Settings of an experiment replaced for one run, as given on the command line (the
/// `experiment` flags parse straight into it; ripgrep's low-level arguments): every `Some`
/// replaces one setting when [`ExperimentDef::apply`] applies the patch.
#[derive(Clone, Debug, Default, PartialEq, clap::Args)]
pub struct ExperimentPatch {
    /// Number of epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Train on the first N training samples only.
    #[arg(long)]
    pub train_samples: Option<usize>,
    /// Test on the first N test samples only.
    #[arg(long)]
    pub test_samples: Option<usize>,
    /// Hold out the last N training samples and test on them instead of the test split
    /// (choosing settings without the test set).
    #[arg(long)]
    pub validation_samples: Option<usize>,
    /// Batch size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Simulation length T.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Base learning rate of every method (the schedule stays the experiment's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Weight regulariser setting (replaces the experiment's `[regularizer]`).
    #[arg(long, value_enum)]
    pub regularizer: Option<RegularizerPreset>,
    /// Order of the training samples in each epoch.
    #[arg(long, value_enum)]
    pub order: Option<DataOrderKind>,
    /// Training method: hm2bp, bptt (the experiment's [bptt] surrogate) or bptt-SURROGATE
    /// (arctan, fast-sigmoid, triangle, super-spike, exponential), optionally with :STEPS.
    #[arg(long)]
    pub method: Option<String>,
    /// Minutes between mid-epoch checkpoints (a flag of `train` only).
    #[arg(skip)]
    pub checkpoint_minutes: Option<f64>,
    /// Epochs whose mean parameters are also tested (a flag of `train` only).
    #[arg(skip)]
    pub average_last: Option<usize>,
}

/// A training method as named on the command line: `hm2bp`, `bptt` (the experiment's
/// surrogate) or `bptt-SURROGATE` (that surrogate; its parameters from `[bptt]` when the
/// experiment uses the same kind, else the defaults), optionally with `:T` for another
/// simulation length, e.g. `bptt-arctan:25`.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodOptions {
    /// As written.
    pub label: String,
    /// Method.
    pub method: Method,
    /// Surrogate named by the spec (`None`: the experiment's).
    pub surrogate: Option<Surrogate>,
    /// Simulation length (`None`: the experiment's).
    pub steps: Option<usize>,
}

impl MethodOptions {
    /// Parses `spec` for an experiment whose BPTT settings are `bptt`.
    pub fn parse(spec: &str, bptt: &BpttDef) -> Result<Self, String> {
        let (name, steps) = match spec.split_once(':') {
            Some((name, t)) => {
                let steps = t.parse::<usize>().map_err(|_| {
                    format!("method '{spec}': `{t}` after ':' is not a number of steps")
                })?;
                (name, Some(steps))
            }
            None => (spec, None),
        };
        let (method, surrogate) = match name {
            "hm2bp" => (Method::Hm2bp, None),
            "bptt" => (Method::Bptt, None),
            other => match other.strip_prefix("bptt-") {
                Some(kind) if kind == bptt.surrogate.name() => (Method::Bptt, None),
                Some(kind) => (
                    Method::Bptt,
                    Some(
                        Surrogate::with_defaults(kind)
                            .map_err(|m| format!("method '{spec}': {m}"))?,
                    ),
                ),
                None => {
                    return Err(format!(
                        "unknown method '{spec}' (known: hm2bp, bptt, bptt-SURROGATE with \
                         SURROGATE one of {}; optionally followed by :STEPS)",
                        Surrogate::NAMES.join(", ")
                    ));
                }
            },
        };
        Ok(Self {
            label: spec.to_string(),
            method,
            surrogate,
            steps,
        })
    }
}

/// Experiment folders (holding an `experiment.toml`) in `dir`, sorted.
pub fn list_experiments(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("experiment.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_schedule() {
        let lr = LrDef {
            base: 1e-3,
            schedule: LrSchedule::InvSqrtEpoch,
        };
        assert_eq!(lr.at_epoch(0), 1e-3);
        assert_eq!(lr.at_epoch(1), 1e-3);
        assert!((lr.at_epoch(2) - 7.071e-4).abs() < 1e-7);
        assert!((lr.at_epoch(199) - 7.089e-5).abs() < 1e-8);
    }

    #[test]
    fn method_specs() {
        let bptt = BpttDef {
            surrogate: Surrogate::Arctan { alpha: 5.0 },
            ..BpttDef::default()
        };
        let spec = |s: &str| MethodOptions::parse(s, &bptt);
        assert_eq!(spec("hm2bp").unwrap().method, Method::Hm2bp);
        // The experiment's own surrogate keeps its parameters; another kind gets defaults.
        let same = spec("bptt-arctan:25").unwrap();
        assert_eq!(
            (same.method, same.surrogate, same.steps),
            (Method::Bptt, None, Some(25))
        );
        let other = spec("bptt-triangle").unwrap();
        assert_eq!(other.surrogate, Some(Surrogate::Triangle { width: 1.0 }));
        assert!(
            spec("bptt-sine")
                .unwrap_err()
                .contains("unknown surrogate 'sine'")
        );
        assert!(spec("adam").unwrap_err().contains("unknown method 'adam'"));
        assert!(
            spec("bptt:0x")
                .unwrap_err()
                .contains("not a number of steps")
        );
    }

    /// A patch replaces exactly the settings it gives, the method first, and validates once.
    #[test]
    fn a_patch_replaces_what_it_gives() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
        let exp = ExperimentDef::load("tiny", &dir).unwrap();
        assert_eq!(exp.apply(&ExperimentPatch::default()).unwrap(), exp);
        let patch = ExperimentPatch {
            method: Some("bptt-triangle:7".into()),
            epochs: Some(3),
            lr: Some(0.5),
            regularizer: Some(RegularizerPreset::Off),
            average_last: Some(2),
            ..ExperimentPatch::default()
        };
        let got = exp.apply(&patch).unwrap();
        let want = ExperimentDef {
            method: Method::Bptt,
            steps: 7,
            epochs: 3,
            lr: LrDef {
                base: 0.5,
                ..exp.lr
            },
            regularizer: RegularizerDef::Named(RegularizerPreset::Off),
            average_last: 2,
            bptt: BpttDef {
                surrogate: Surrogate::Triangle { width: 1.0 },
                lr: exp.bptt.lr.map(|_| 0.5),
                ..exp.bptt
            },
            ..exp.clone()
        };
        assert_eq!(got, want);
        // `steps` wins over the method's `:STEPS`; the result is validated once.
        let steps = ExperimentPatch {
            method: Some("bptt:1".into()),
            steps: Some(5),
            ..ExperimentPatch::default()
        };
        assert_eq!(exp.apply(&steps).unwrap().steps, 5);
        let bad = |patch: ExperimentPatch| exp.apply(&patch).unwrap_err();
        let zero = bad(ExperimentPatch {
            batch_size: Some(0),
            ..ExperimentPatch::default()
        });
        assert_eq!(zero, "batch_size: must be at least 1");
        let minutes = bad(ExperimentPatch {
            checkpoint_minutes: Some(-1.0),
            ..ExperimentPatch::default()
        });
        assert!(minutes.starts_with("checkpoint_minutes:"), "{minutes}");
        let method = bad(ExperimentPatch {
            method: Some("sgd".into()),
            ..ExperimentPatch::default()
        });
        assert!(
            method.starts_with("method: unknown method 'sgd'"),
            "{method}"
        );
    }

    #[test]
    fn committed_experiments_load_and_the_cnn_is_augmented() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
        let names = list_experiments(&dir);
        assert!(names.iter().any(|n| n == "mnist-cnn"));
        for name in &names {
            let exp = ExperimentDef::load(name, &dir).unwrap_or_else(|e| panic!("{name}: {e}"));
            let augmented = ["mnist-cnn", "tiny-cnn"].contains(&name.as_str());
            assert_eq!(exp.augmentation.is_some(), augmented, "{name}");
        }
        let cnn = ExperimentDef::load("mnist-cnn", &dir).unwrap();
        let a = cnn.augmentation.unwrap();
        assert_eq!(
            (a.scale, a.rotation_deg, a.elastic_alpha, a.elastic_sigma),
            (0.12, 12.0, 3.4, 4.0)
        );
        assert_eq!(a.field, crate::datasets::FieldMode::PerEpoch);
    }
}
