//! Data-parallel training under `mpirun` (feature `mpi`; needs an MPI launcher, OpenMPI's
//! `mpirun`, on the PATH), on loopback with one thread per rank: N ranks give the weights,
//! boosting weights and metrics of `--virtual-workers N` bit for bit; a rank killed mid-run
//! ends the job and `--resume` continues as if uninterrupted; ranks started with different
//! settings, and a rank that fails, end the job with a message naming the rank.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hm2bp::datasets::ImageDatasetKind;
use hm2bp::train::midepoch::MidEpochRecord;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn data() -> String {
    common::fetchable_data(ImageDatasetKind::Mnist)
        .to_string_lossy()
        .into_owned()
}

/// `experiment train EXP --plain --no-fetch --data-dir DATA --out OUT EXTRA…` as arguments.
fn train_args(exp: &str, data: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let base = [
        "train",
        exp,
        "--plain",
        "--no-fetch",
        "--data-dir",
        data,
        "--out",
    ];
    base.iter()
        .map(|s| s.to_string())
        .chain([out.to_string_lossy().into_owned()])
        .chain(extra.iter().map(|s| s.to_string()))
        .collect()
}

/// `mpirun` with the settings a container's root and a 2-core machine need (the notes in
/// docs/distributed.md), one thread per rank, running `programs` (MPMD: `(ranks, args)`).
fn mpirun(programs: &[(usize, Vec<String>)]) -> Command {
    let mut cmd = Command::new("mpirun");
    for (k, (ranks, args)) in programs.iter().enumerate() {
        if k > 0 {
            cmd.arg(":");
        }
        cmd.args(["-n", &ranks.to_string(), "--bind-to", "none"])
            .args(["-x", "RAYON_NUM_THREADS=1"])
            .arg(env!("CARGO_BIN_EXE_experiment"))
            .args(args);
    }
    cmd.current_dir(root())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("OMPI_MCA_mpi_yield_when_idle", "1")
        .env_remove("HM2BP_BACKEND");
    cmd
}

fn single(args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_experiment"));
    cmd.args(args)
        .current_dir(root())
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("HM2BP_BACKEND");
    cmd
}

fn succeeds(mut cmd: Command) -> Output {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The tensor data of a burnpack file (after its header, whose parameter ids are random).
fn burnpack_data(file: &[u8]) -> Vec<u8> {
    assert_eq!(&file[..4], b"NRUB", "a burnpack file");
    let metadata = u32::from_le_bytes(file[6..10].try_into().unwrap()) as usize;
    file[10 + metadata..].to_vec()
}

/// Every epoch's metrics without its timings.
fn metrics(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read(run.join("summary.json")).unwrap();
    let s: serde_json::Value = serde_json::from_slice(&text).unwrap();
    s["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut e = e.clone();
            let fields = e.as_object_mut().unwrap();
            fields.remove("seconds");
            fields.remove("samples_per_second");
            // A count taken on two threads as they run, like the times.
            fields.remove("reads");
            e
        })
        .collect()
}

/// The same weights, boosting weights and metrics (`whole`: train metrics of every epoch too).
fn assert_same_run(a: &Path, b: &Path, whole: bool) {
    let read = |run: &Path, f: &str| std::fs::read(run.join(f)).unwrap();
    assert!(
        burnpack_data(&read(a, "model.bpk")) == burnpack_data(&read(b, "model.bpk")),
        "weights differ: {} {}",
        a.display(),
        b.display()
    );
    assert_eq!(read(a, "boosting.json"), read(b, "boosting.json"));
    let (ma, mb) = (metrics(a), metrics(b));
    assert_eq!(ma.len(), mb.len());
    for (x, y) in ma.iter().zip(&mb) {
        if whole {
            assert_eq!(x, y);
        } else {
            for f in [
                "epoch",
                "test_accuracy",
                "test_loss",
                "spikes_per_sample",
                "lr",
            ] {
                assert_eq!(x[f], y[f], "{f} of epoch {}", x["epoch"]);
            }
        }
    }
}

#[test]
fn ranks_train_as_virtual_workers_bit_for_bit() {
    let data = data();
    let dir = tempfile::tempdir().unwrap();
    for exp in ["tiny", "tiny-cnn"] {
        for n in [2, 4] {
            let virt = dir.path().join(format!("{exp}-v{n}"));
            let ranks = dir.path().join(format!("{exp}-r{n}"));
            let workers = n.to_string();
            let v_args = train_args(exp, &data, &virt, &["--virtual-workers", &workers]);
            succeeds(single(&v_args));
            let out = succeeds(mpirun(&[(n, train_args(exp, &data, &ranks, &[]))]));
            let stdout = String::from_utf8_lossy(&out.stdout);
            // Rank 0 alone reports, once.
            assert_eq!(stdout.matches("best test accuracy").count(), 1, "{stdout}");
            assert_same_run(&virt, &ranks, true);
        }
    }
}

/// The pid of rank `rank` of a job whose command line mentions `marker`.
fn rank_pid(rank: usize, marker: &str) -> Option<u32> {
    let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let environ = std::fs::read(e.path().join("environ")).ok()?;
        let has = |bytes: &[u8], s: &str| bytes.split(|&b| b == 0).any(|w| w == s.as_bytes());
        let mentions = String::from_utf8_lossy(&cmdline).contains(marker);
        (mentions
            && has(&environ, &wanted)
            && !String::from_utf8_lossy(&cmdline).contains("mpirun"))
        .then_some(pid)
    })
}

fn mid_epoch_checkpoint(out_dir: &Path) -> Option<usize> {
    MidEpochRecord::latest(&out_dir.join("checkpoint")).map(|r| r.position.epoch)
}

/// Rank 1 killed (SIGKILL) in the middle of the first epoch: the job ends with an error
/// naming the rank; `--resume` under `mpirun` then ends as the uninterrupted job.
#[test]
fn a_killed_rank_ends_the_job_and_resume_continues_bit_for_bit() {
    let data = data();
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--checkpoint-every-batches", "3", "--train-samples", "600"];
    let whole = dir.path().join("whole");
    succeeds(mpirun(&[(2, train_args("tiny", &data, &whole, &extra))]));

    let cut: PathBuf = dir.path().join("cut");
    let marker = cut.to_string_lossy().into_owned();
    let mut job = mpirun(&[(2, train_args("tiny", &data, &cut, &extra))])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while mid_epoch_checkpoint(&cut) != Some(0) {
        assert!(
            job.try_wait().unwrap().is_none(),
            "the job ended before a checkpoint"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = rank_pid(1, &marker).expect("rank 1 is running");
    let killed = Instant::now();
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    let out = job.wait_with_output().unwrap();
    assert!(
        killed.elapsed() < Duration::from_secs(60),
        "the job outlived its rank"
    );
    assert!(!out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("rank 1"), "{said}");

    let resume = [&extra[..], &["--resume"]].concat();
    let out = succeeds(mpirun(&[(2, train_args("tiny", &data, &cut, &resume))]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("resuming from"), "{stdout}");
    assert_same_run(&whole, &cut, false);
}

/// Fails unless the job failed, within 60 s, saying `needle` (and never hung).
fn assert_job_fails(cmd: Command, needle: &str) {
    let started = Instant::now();
    let out = {
        let mut cmd = cmd;
        cmd.output().unwrap()
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(said.contains(needle), "{said}");
}

#[test]
fn ranks_with_other_settings_or_a_failing_rank_end_the_job_naming_it() {
    let data = data();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = train_args("tiny", &data, &out, &[]);
    let other = train_args("tiny", &data, &out, &["--epochs", "3"]);
    assert_job_fails(
        mpirun(&[(1, args.clone()), (1, other)]),
        "rank(s) [1] differ from rank 0 in their settings",
    );
    let no_data = train_args("tiny", "/nonexistent", &out, &[]);
    assert_job_fails(mpirun(&[(1, args.clone()), (1, no_data)]), "rank 1 of 2");
    let tiny_batch = train_args("tiny", &data, &out, &["--batch-size", "2"]);
    assert_job_fails(
        mpirun(&[(4, tiny_batch)]),
        "batch_size 2 cannot be split among 4 workers",
    );
}
