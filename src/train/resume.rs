//! Where `--resume` continues a run: the newest complete checkpoint in its folder, either a
//! mid-epoch record ([`super::midepoch`]) or burn-train's records of an epoch's end.
//!
//! Checkpoints are written atomically ([`super::checkpoint`]), but a folder may still hold a
//! damaged one (written by an older version straight into place, or damaged on disk). A
//! checkpoint whose files do not read is set aside (renamed `*.damaged`) with a warning that
//! names it and why, and the run continues from the one before; one that reads but does not
//! fit the model is refused (another network definition: a new run needs another `--out`).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::module::Module;
use burn::optim::OptimizerRecord;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::store::ModuleRecord;

use super::checkpoint::{RecordKind, RunFiles};
use super::classifier::SpikingClassifier;
use super::midepoch::MidEpochRecord;
use super::position::Position;

/// The checkpoint a resumed run continues from.
#[derive(Clone, Debug)]
pub struct ResumePoint {
    /// The position after its last step.
    pub start: Position,
    /// The mid-epoch record, when it is one (else the end of epoch `start.epoch`).
    pub mid_epoch: Option<MidEpochRecord>,
}

/// One checkpoint found in the folder, before it is checked.
struct Candidate {
    point: ResumePoint,
    files: [PathBuf; 3],
}

impl Candidate {
    fn epoch_end(files: &RunFiles, epoch: usize) -> Self {
        Self {
            point: ResumePoint {
                start: Position::epoch_start(epoch),
                mid_epoch: None,
            },
            files: RecordKind::ALL.map(|kind| files.epoch_record(kind, epoch)),
        }
    }

    fn mid_epoch(record: MidEpochRecord) -> Self {
        Self {
            files: RecordKind::ALL.map(|kind| record.record_file(kind)),
            point: ResumePoint {
                start: record.position,
                mid_epoch: Some(record),
            },
        }
    }

    /// Why its files do not read, if they do not; an error if the model record reads but
    /// does not fit `model`.
    fn damage(&self, model: &SpikingClassifier, name: &str) -> Result<Option<String>> {
        let [model_file, optim_file, scheduler_file] = &self.files;
        let record = match ModuleRecord::load(model_file) {
            Ok(record) => record,
            Err(e) => return Ok(Some(format!("{}: {e:?}", model_file.display()))),
        };
        if let Err(e) = model.clone().try_load_record(record) {
            bail!(
                "--resume: {} does not fit model {} ({e:?}): written by another network \
                 definition or an older version; start a new run with another --out",
                model_file.display(),
                name
            );
        }
        if let Err(e) = OptimizerRecord::load(optim_file) {
            return Ok(Some(format!("{}: {e:?}", optim_file.display())));
        }
        if let Err(e) = LrSchedulerRecord::load(scheduler_file) {
            return Ok(Some(format!("{}: {e:?}", scheduler_file.display())));
        }
        Ok(None)
    }

    /// Renames its files `*.damaged` (a mid-epoch record: its folder).
    fn set_aside(&self) -> std::io::Result<()> {
        let paths: Vec<&Path> = match &self.point.mid_epoch {
            Some(record) => vec![&record.dir],
            None => self.files.iter().map(PathBuf::as_path).collect(),
        };
        for path in paths.into_iter().filter(|p| p.exists()) {
            let mut aside = path.as_os_str().to_owned();
            aside.push(".damaged");
            std::fs::rename(path, aside)?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let s = self.point.start;
        match self.point.mid_epoch {
            Some(_) => format!("the mid-epoch checkpoint of epoch {}", s.epoch + 1),
            None => format!("the checkpoint of epoch {}", s.epoch),
        }
    }
}

impl ResumePoint {
    /// The newest complete checkpoint in `files` for `model` (named `name`), setting damaged
    /// ones aside.
    pub fn find(files: &RunFiles, model: &SpikingClassifier, name: &str) -> Result<Self> {
        let mut candidates: Vec<Candidate> = files
            .epochs_with_model()
            .into_iter()
            .map(|epoch| Candidate::epoch_end(files, epoch))
            .collect();
        if let Some(record) = MidEpochRecord::latest(&files.checkpoint_dir()) {
            candidates.push(Candidate::mid_epoch(record));
        }
        // Newest first; at the same position the mid-epoch record comes first.
        candidates.sort_by_key(|c| {
            let s = c.point.start;
            std::cmp::Reverse((s.epoch, s.batch, c.point.mid_epoch.is_some()))
        });
        for candidate in candidates {
            let Some(why) = candidate.damage(model, name)? else {
                return Ok(candidate.point);
            };
            candidate.set_aside()?;
            eprintln!(
                "warning: --resume: {} does not read ({why}); set aside as *.damaged, \
                 trying the one before",
                candidate.describe()
            );
        }
        bail!(
            "--resume: no complete checkpoint in {}",
            files.checkpoint_dir().display()
        )
    }

    /// The boosting state it continues with: the mid-epoch record's, the epoch's, or (runs
    /// written before the epoch's was kept) the run folder's last one.
    pub fn boosting_file(&self, files: &RunFiles) -> Option<PathBuf> {
        let file = match &self.mid_epoch {
            Some(record) => record.boosting_file(),
            None => Some(files.epoch_boosting(self.start.epoch))
                .filter(|f| f.is_file())
                .unwrap_or_else(|| files.boosting()),
        };
        file.is_file().then_some(file)
    }

    /// "resuming from …", as the run prints it.
    pub fn announce(&self) -> String {
        match &self.mid_epoch {
            Some(_) => format!(
                "resuming from the mid-epoch checkpoint of epoch {}, after batch {}",
                self.start.epoch + 1,
                self.start.batch
            ),
            None => format!("resuming from the checkpoint of epoch {}", self.start.epoch),
        }
    }
}
