//! Every dataset an experiment can name, and one loaded split of it: images (rate-encoded by
//! the training batcher) or spike trains (recorded events, encoded audio).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::datasets::error::Result;
use crate::datasets::fsdd::{AudioDef, FSDD_HINT, load_fsdd};
use crate::datasets::nmnist::{NMNIST_HINT, NmnistDef, load_nmnist, nmnist_dir};
use crate::datasets::{ImageDatasetKind, ImageSet, SpikeSet, Split, load_image_set};

/// A dataset of an experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// MNIST handwritten digits.
    Mnist,
    /// Fashion-MNIST clothing images.
    FashionMnist,
    /// EMNIST Balanced characters (47 classes).
    EmnistBalanced,
    /// N-MNIST event recordings (`data/nmnist/`, else `data/nmnist-small/`).
    Nmnist,
    /// Free Spoken Digit Dataset recordings (`data/fsdd/recordings/`).
    Fsdd,
}

impl DatasetKind {
    /// The IDX image dataset, if this is one.
    pub fn images(self) -> Option<ImageDatasetKind> {
        match self {
            Self::Mnist => Some(ImageDatasetKind::Mnist),
            Self::FashionMnist => Some(ImageDatasetKind::FashionMnist),
            Self::EmnistBalanced => Some(ImageDatasetKind::EmnistBalanced),
            Self::Nmnist | Self::Fsdd => None,
        }
    }

    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nmnist => "nmnist",
            Self::Fsdd => "fsdd",
            other => other.images().map_or("", ImageDatasetKind::dir_name),
        }
    }

    /// Whether the dataset's files are under `data_dir`, and if not, how to get them.
    pub fn check_present(self, data_dir: &Path) -> std::result::Result<(), String> {
        match self {
            Self::Nmnist => nmnist_dir(data_dir)
                .map(|_| ())
                .map_err(|_| NMNIST_HINT.into()),
            Self::Fsdd => {
                let dir = data_dir.join("fsdd").join("recordings");
                if dir.is_dir() {
                    Ok(())
                } else {
                    Err(format!("{}: not found; {FSDD_HINT}", dir.display()))
                }
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a split's samples become input spike trains, beyond the simulation length.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct InputOptions {
    /// N-MNIST preprocessing.
    pub events: NmnistDef,
    /// Audio front end and spike code.
    pub audio: AudioDef,
}

/// One loaded split.
#[derive(Clone, Debug, PartialEq)]
pub enum Samples {
    /// Images, rate-encoded while training.
    Images(ImageSet),
    /// Spike trains, as they are.
    Spikes(SpikeSet),
}

impl Samples {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels().len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Labels.
    pub fn labels(&self) -> &[u8] {
        match self {
            Self::Images(s) => &s.labels,
            Self::Spikes(s) => &s.labels,
        }
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        match self {
            Self::Images(s) => s.num_classes,
            Self::Spikes(s) => s.num_classes,
        }
    }

    /// Input channels of a sample (pixels of an image).
    pub fn input_size(&self) -> usize {
        match self {
            Self::Images(s) => s.images.image_len(),
            Self::Spikes(s) => s.channels(),
        }
    }

    /// Keeps the first `n` samples.
    pub fn truncate(&mut self, n: usize) {
        match self {
            Self::Images(s) => s.truncate(n),
            Self::Spikes(s) => s.truncate(n),
        }
    }

    /// Splits the samples at `at`: keeps those before it, returns the rest.
    pub fn split_off(&mut self, at: usize) -> Self {
        match self {
            Self::Images(s) => Self::Images(s.split_off(at)),
            Self::Spikes(s) => Self::Spikes(s.split_off(at)),
        }
    }
}

/// Loads a split of `kind` from `data_dir`; spike-train datasets are encoded at `steps` steps.
pub fn load_samples(
    kind: DatasetKind,
    data_dir: &Path,
    split: Split,
    steps: usize,
    input: &InputOptions,
) -> Result<Samples> {
    Ok(match (kind, kind.images()) {
        (_, Some(images)) => Samples::Images(load_image_set(images, data_dir, split)?),
        (DatasetKind::Nmnist, None) => {
            Samples::Spikes(load_nmnist(data_dir, split, steps, &input.events)?)
        }
        (_, None) => Samples::Spikes(load_fsdd(data_dir, split, steps, &input.audio)?),
    })
}
