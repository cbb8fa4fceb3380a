//! Training and evaluation with burn-train's `SupervisedTraining`: the TUI dashboard on a
//! terminal (plain progress lines otherwise), test evaluation every epoch, checkpoints every
//! epoch and every few minutes inside one, `--resume`, and `summary.json` in the output folder.
//!
//! A run ([`run`]) is five phases: plan, resume, wire, launch, finish. Around them:
//!
//! | module | what it holds |
//! |---|---|
//! | [`loading`], [`data`], [`ordered`], [`resumed_loader`] | splits as burn-train reads them: ordered per epoch (items stamped with their epoch), batched into spike trains, a resumed epoch's rest |
//! | [`classifier`] | the network with its count loss as a burn-train model; building one, loading parameters |
//! | [`position`], [`hooks`] | the run's position and its one step clock; the step services on it |
//! | [`fault`], [`boosting`], [`midepoch`] | the services: numerical faults, boosting weights, mid-epoch records |
//! | [`schedule`], [`adam`] | the learning-rate schedule (on the clock) and the fused Adam optimizer |
//! | [`checkpoint`], [`resume`], [`started_with`] | the output folder's files (written atomically), where `--resume` continues, the settings a run started with |
//! | [`metrics`], [`pending`], [`summary`], [`renderer`] | step metrics (read back every few steps on a device), `summary.json`, plain progress lines |
//! | [`eval`], [`average`] | trained models on the test split, checkpoint averaging |
//! | [`shards`], [`sharded`], [`wire`], [`collective`], `mpi`, [`launcher`], [`ranks`] | data-parallel training: the split of a global batch, the sharded step and its ordered gradient sum, what shards exchange, the ranks of an MPI job (feature `mpi`), joining it, rank agreement |

pub mod adam;
pub mod average;
pub mod boosting;
pub mod checkpoint;
pub mod classifier;
pub mod collective;
pub mod data;
pub mod eval;
pub mod fault;
pub mod hooks;
pub mod launcher;
pub mod loading;
pub mod metrics;
pub mod midepoch;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod ordered;
pub mod pending;
pub mod position;
pub mod ranks;
pub mod renderer;
pub mod resume;
pub mod resumed_loader;
pub mod run;
pub mod schedule;
pub mod sharded;
pub mod shards;
pub mod started_with;
pub mod summary;
pub mod wire;

use std::path::PathBuf;

use burn::prelude::*;

use crate::ops::KernelPath;

pub use eval::{evaluate, test_batches, trained_classifier};
pub use loading::load_split;
pub use run::train;

/// Where a run reads and writes, and how it shows progress.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Dataset root.
    pub data_dir: PathBuf,
    /// Network definitions.
    pub models_dir: PathBuf,
    /// Output folder (checkpoints, logs, `summary.json`).
    pub out_dir: PathBuf,
    /// Continue from the last checkpoint in `out_dir`.
    pub resume: bool,
    /// With `resume`: continue although the settings differ from those the run was started
    /// with (see [`started_with`]).
    pub accept_changed_settings: bool,
    /// Plain progress lines instead of the dashboard.
    pub plain: bool,
    /// Device to train on (without autodiff).
    pub device: Device,
    /// Human-readable backend/device name.
    pub backend: String,
    /// Kernels of the spiking dense layers.
    pub kernels: KernelPath,
    /// Mid-epoch checkpoints every N batches instead of every `checkpoint_minutes` of the
    /// experiment (tests; 0 = off).
    pub checkpoint_every_batches: Option<usize>,
    /// Who trains: the ranks of an `mpirun` job, virtual workers (one process by default).
    pub workers: sharded::Workers,
    /// Steps between reads of the fault watch, boosting's verdicts and the metrics (`None`:
    /// every step on the CPU backends, every [`DEVICE_READ_EVERY`] on devices).
    pub read_every: Option<usize>,
}

/// Steps between the training thread's reads from a device (see [`hooks`]) by default.
pub const DEVICE_READ_EVERY: usize = 25;
