//! The ranks of a data-parallel run agree before they train: the same binary, the same
//! settings, the same start; and only rank 0 writes into the output folder.

use std::hash::{DefaultHasher, Hasher};
use std::path::PathBuf;

use anyhow::{Result, bail};

use super::RunOptions;
use super::collective::ranks_differing;
use super::position::Position;
use super::sharded::Workers;
use crate::experiment::ExperimentDef;

/// A hash of this process's executable (ranks running different builds would train
/// differently, or deadlock in a collective that one of them does not call).
fn executable_hash() -> Result<u64> {
    let exe = std::env::current_exe()?;
    let bytes = std::fs::read(&exe)
        .map_err(|e| anyhow::anyhow!("{}: cannot read this executable: {e}", exe.display()))?;
    let mut h = DefaultHasher::new();
    h.write(&bytes);
    Ok(h.finish())
}

/// Refuses a run whose ranks differ in their binary or settings, naming the ranks.
pub fn check_same_run(exp: &ExperimentDef, opts: &RunOptions) -> Result<()> {
    let workers = &opts.workers;
    if workers.ranks() == 1 {
        return Ok(());
    }
    let settings = serde_json::json!({
        "experiment": exp,
        "resume": opts.resume,
        "out": opts.out_dir,
        "backend": opts.backend,
    })
    .to_string();
    let checks = [
        ("binary", executable_hash()?.to_le_bytes().to_vec()),
        (
            "settings (experiment, options, output folder)",
            settings.into_bytes(),
        ),
    ];
    for (what, local) in checks {
        let differ = ranks_differing(workers.collective(), &local);
        if !differ.is_empty() {
            bail!(
                "rank(s) {differ:?} differ from rank 0 in their {what}; start every rank with \
                 the same binary and arguments"
            );
        }
    }
    Ok(())
}

/// Refuses a run whose ranks would start at different positions (a resumed run read
/// different checkpoints: the output folder must be one shared folder).
pub fn check_same_start(workers: &Workers, start: Position) -> Result<()> {
    if workers.ranks() == 1 {
        return Ok(());
    }
    let local = [start.epoch as u64, start.batch as u64]
        .map(u64::to_le_bytes)
        .concat();
    let differ = ranks_differing(workers.collective(), &local);
    if !differ.is_empty() {
        bail!(
            "rank(s) {differ:?} would resume elsewhere than rank 0 (epoch {}, batch {}); \
             every rank must see rank 0's output folder (a shared file system)",
            start.epoch + 1,
            start.batch
        );
    }
    Ok(())
}

/// Where this process writes its records: the output folder on rank 0, a scratch folder
/// (removed at the end) on the other ranks.
pub fn write_dir(opts: &RunOptions) -> PathBuf {
    let rank = opts.workers.rank();
    if rank == 0 {
        opts.out_dir.clone()
    } else {
        std::env::temp_dir().join(format!("hm2bp-rank{rank}-{}", std::process::id()))
    }
}
