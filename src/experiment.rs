//! Experiment definitions (`experiments/NAME/experiment.toml`): dataset, model, method, T,
//! epochs, batch size, learning-rate schedule, seed and the HM2-BP settings of spec §5.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::datasets::{AugmentConfig, EncodingMode, ImageDatasetKind};
use crate::definition::{DefinitionError, read_definition};
use crate::hm2bp::output::CountTargets;
use crate::hm2bp::regularizer::WeightRegularizer;

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
    pub dataset: ImageDatasetKind,
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
    /// Distortion of the training images (the authors' CNN run; none if absent).
    #[serde(default)]
    pub augmentation: Option<AugmentConfig>,
    /// Learning rate.
    pub lr: LrDef,
    /// Output targets.
    #[serde(default)]
    pub targets: CountTargets,
    /// Weight regulariser.
    pub regularizer: WeightRegularizer,
    /// Effect ratio ρ (S8) on.
    #[serde(default = "yes")]
    pub effect_ratio: bool,
    /// Per-sample boosting weights (spec §3.5.4, on in the authors' best configs).
    #[serde(default)]
    pub boosting: bool,
    /// Use only the first N training samples.
    #[serde(default)]
    pub train_samples: Option<usize>,
    /// Use only the first N test samples.
    #[serde(default)]
    pub test_samples: Option<usize>,
}

fn yes() -> bool {
    true
}

/// Errors of loading an experiment definition.
pub type ExperimentError = DefinitionError;

impl ExperimentDef {
    /// Loads `dir/NAME/experiment.toml`, or `name` itself if it is a path to a file.
    pub fn load(name: &str, dir: &Path) -> Result<Self, ExperimentError> {
        let default = dir.join(name).join("experiment.toml");
        let (path, text) = read_definition("experiment", name, default, || list_experiments(dir))?;
        let def: ExperimentDef = toml::from_str(&text).map_err(|e| ExperimentError::Malformed {
            path: path.clone(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        def.validate()
            .map_err(|message| ExperimentError::Malformed { path, message })?;
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
        if !(self.lr.base.is_finite() && self.lr.base > 0.0) {
            return Err("lr.base: must be a positive number".into());
        }
        let r = &self.regularizer;
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
        if let Some(a) = &self.augmentation {
            a.validate()?;
        }
        Ok(())
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
    fn committed_experiments_load_and_the_cnn_is_augmented() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
        let names = list_experiments(&dir);
        assert!(names.iter().any(|n| n == "mnist-cnn"));
        for name in &names {
            let exp = ExperimentDef::load(name, &dir).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(exp.augmentation.is_some(), name == "mnist-cnn", "{name}");
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
