//! The files of a run's output folder, and how they are written: every record under a
//! temporary name, synced, then renamed into place, so a kill or a full disk during a write
//! leaves the previous file (or none), never a truncated one.
//!
//! ```text
//! OUT/summary.json                         per-epoch metrics (rewritten every epoch)
//! OUT/boosting.json                        boosting weights after the last finished epoch
//! OUT/model.bpk                            the final model
//! OUT/checkpoint/started-with.json         settings the run started with (super::started_with)
//! OUT/checkpoint/{model,optim,scheduler}-E.bpk   burn-train's records after epoch E
//! OUT/checkpoint/boosting-E.json           boosting weights after epoch E
//! OUT/checkpoint/mid-epoch-S/              a record after step S inside an epoch (super::midepoch)
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};

use burn::train::checkpoint::{Checkpoint, Checkpointer, CheckpointerError};

use super::midepoch::MidEpochRecord;

/// The three records burn-train keeps per epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// The model's parameters.
    Model,
    /// The optimizer's state.
    Optimizer,
    /// The learning-rate scheduler's state.
    Scheduler,
}

impl RecordKind {
    /// All three, in burn-train's order.
    pub const ALL: [RecordKind; 3] = [Self::Model, Self::Optimizer, Self::Scheduler];

    /// Its file name stem.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Model => "model",
            RecordKind::Optimizer => "optim",
            RecordKind::Scheduler => "scheduler",
        }
    }

    /// Its file name inside a mid-epoch record.
    pub fn file(self) -> String {
        format!("{}.bpk", self.name())
    }
}

/// The paths of one run's output folder.
#[derive(Clone, Debug)]
pub struct RunFiles {
    /// The output folder.
    pub out: PathBuf,
}

impl RunFiles {
    /// The files of the run in `out`.
    pub fn new(out: &Path) -> Self {
        Self {
            out: out.to_path_buf(),
        }
    }

    /// `OUT/checkpoint`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.out.join("checkpoint")
    }

    /// `OUT/summary.json`.
    pub fn summary(&self) -> PathBuf {
        self.out.join("summary.json")
    }

    /// `OUT/boosting.json`: the boosting weights after the last finished epoch.
    pub fn boosting(&self) -> PathBuf {
        self.out.join("boosting.json")
    }

    /// `OUT/checkpoint/boosting-E.json`: the boosting weights after 1-based `epoch`.
    pub fn epoch_boosting(&self, epoch: usize) -> PathBuf {
        self.checkpoint_dir().join(format!("boosting-{epoch}.json"))
    }

    /// burn-train's record of `kind` after 1-based `epoch`.
    pub fn epoch_record(&self, kind: RecordKind, epoch: usize) -> PathBuf {
        self.checkpoint_dir()
            .join(format!("{}-{epoch}.bpk", kind.name()))
    }

    /// The epochs with a model record, newest first.
    pub fn epochs_with_model(&self) -> Vec<usize> {
        let mut epochs: Vec<usize> = std::fs::read_dir(self.checkpoint_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix("model-")?
                    .strip_suffix(".bpk")?
                    .parse::<usize>()
                    .ok()
            })
            .collect();
        epochs.sort_unstable_by(|a, b| b.cmp(a));
        epochs
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder, synced before it is
/// renamed into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// Writes a burn record to `path` atomically ([`write_atomically`]).
pub fn save_record<R: Checkpoint>(record: R, path: &Path) -> Result<(), CheckpointerError> {
    let bytes = record
        .checkpoint_into_bytes()
        .map_err(CheckpointerError::Record)?;
    write_atomically(path, &bytes).map_err(CheckpointerError::IOError)
}

/// burn-train's checkpointer of one record kind: epoch records written atomically; when the
/// run resumes from a mid-epoch record, the restore of that epoch reads the record instead.
/// Records are restored from `files` and written to `writes` (the same folder, except on
/// the ranks of a data-parallel run other than 0, which write to a scratch folder).
pub struct RunCheckpointer {
    files: RunFiles,
    writes: RunFiles,
    kind: RecordKind,
    resume: Option<MidEpochRecord>,
}

impl RunCheckpointer {
    /// The model, optimizer and scheduler checkpointers of a run.
    pub fn triple(
        files: &RunFiles,
        writes: &RunFiles,
        resume: Option<MidEpochRecord>,
    ) -> [Self; 3] {
        RecordKind::ALL.map(|kind| Self {
            files: files.clone(),
            writes: writes.clone(),
            kind,
            resume: resume.clone(),
        })
    }
}

impl<R: Checkpoint> Checkpointer<R> for RunCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        save_record(record, &self.writes.epoch_record(self.kind, epoch))
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        let path = self.writes.epoch_record(self.kind, epoch);
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(CheckpointerError::IOError(e))
            }
            _ => Ok(()),
        }
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        match &self.resume {
            Some(record) if record.position.epoch == epoch => {
                R::load(record.dir.join(self.kind.file()))
            }
            _ => R::load(self.files.epoch_record(self.kind, epoch)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn epochs_with_a_model_record_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let files = RunFiles::new(dir.path());
        std::fs::create_dir_all(files.checkpoint_dir()).unwrap();
        for name in [
            "model-2.bpk",
            "model-10.bpk",
            "optim-11.bpk",
            "model-3.bpk.tmp",
        ] {
            std::fs::write(files.checkpoint_dir().join(name), b"").unwrap();
        }
        assert_eq!(files.epochs_with_model(), [10, 2]);
    }
}
