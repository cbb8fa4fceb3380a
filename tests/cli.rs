//! The `experiment` binary end to end: bad input gets one clear message and a non-zero exit
//! (never a panic), `trace` works on a hand-written case, and a tiny training run writes its
//! summary, resumes (also after a kill mid-epoch), and evaluates.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use hm2bp::train::midepoch::MidEpochRecord;

/// The binary with `args`, run in `cwd`, without the environment's data and backend choice.
fn command(args: &[&str], cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_experiment"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("HM2BP_DATA_DIR")
        .env_remove("HM2BP_BACKEND");
    cmd
}

fn experiment(args: &[&str], cwd: &Path) -> Output {
    command(args, cwd).output().expect("the binary runs")
}

/// `experiment train tiny --plain --no-fetch --data-dir DATA --out OUT EXTRA…`.
fn tiny_command(data: &str, out: &Path, extra: &[&str]) -> Command {
    let out = out.to_str().unwrap();
    let args = [
        "train",
        "tiny",
        "--plain",
        "--no-fetch",
        "--data-dir",
        data,
        "--out",
        out,
    ];
    command(&[&args[..], extra].concat(), root())
}

fn train_tiny(data: &str, out: &Path, extra: &[&str]) -> Output {
    tiny_command(data, out, extra)
        .output()
        .expect("the binary runs")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails unless the run failed with a one-line `error:` message containing `needle`.
fn assert_clean_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(
        err.contains("error:") && err.contains(needle),
        "stderr: {err}"
    );
}

#[test]
fn unknown_experiment_and_model_are_named() {
    let out = experiment(&["train", "no-such-experiment", "--no-fetch"], root());
    assert_clean_error(&out, "unknown experiment 'no-such-experiment'");

    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("experiments/tiny/experiment.toml")).unwrap();
    let bad = dir.path().join("bad-model.toml");
    std::fs::write(&bad, text.replace("tiny-784-40-10", "no-such-model")).unwrap();
    let data = dir.path().join("data");
    let out = experiment(
        &[
            "train",
            bad.to_str().unwrap(),
            "--no-fetch",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        root(),
    );
    assert_clean_error(&out, "unknown model 'no-such-model'");
}

#[test]
fn malformed_experiment_names_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("experiment.toml");
    std::fs::write(&path, "name = \"x\"\nsteps = \"many\"\n").unwrap();
    let out = experiment(&["train", path.to_str().unwrap(), "--no-fetch"], root());
    assert_clean_error(&out, "experiment.toml");

    let text = std::fs::read_to_string(root().join("experiments/tiny/experiment.toml")).unwrap();
    std::fs::write(&path, text.replace("batch_size = 10", "batch_size = 0")).unwrap();
    let out = experiment(&["train", path.to_str().unwrap(), "--no-fetch"], root());
    assert_clean_error(&out, "batch_size");

    let augmented = format!(
        "{text}\n[augmentation]\nscale = 0.12\nrotation_deg = 12.0\nelastic_alpha = 3.4\n\
         elastic_sigma = 0.0\nfield = \"per-epoch\"\n"
    );
    std::fs::write(&path, &augmented).unwrap();
    let out = experiment(&["train", path.to_str().unwrap(), "--no-fetch"], root());
    assert_clean_error(&out, "augmentation.elastic_sigma");
    std::fs::write(&path, augmented.replace("per-epoch", "per-batch")).unwrap();
    let out = experiment(&["train", path.to_str().unwrap(), "--no-fetch"], root());
    assert_clean_error(&out, "per-batch");
}

#[test]
fn missing_data_folder_says_how_to_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nowhere");
    let out = experiment(
        &[
            "train",
            "tiny",
            "--no-fetch",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        root(),
    );
    assert_clean_error(&out, "fetch-data");
}

#[test]
fn unknown_backend_is_named() {
    let out = experiment(&["eval", "tiny", "--backend", "quantum"], root());
    assert_clean_error(&out, "backend 'quantum'");
}

#[test]
fn trace_on_a_hand_written_case() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("trace.json");
    let case = root().join("tests/fixtures/trace-case.json");
    let out = experiment(
        &[
            "trace",
            "--case",
            case.to_str().unwrap(),
            "--out",
            out_path.to_str().unwrap(),
        ],
        root(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    assert_eq!(t["schema"], "hm2bp-trace/1");
    let layers = t["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert!(layers[0]["d_pre"].is_null());
    assert_eq!(layers[1]["d_pre"].as_array().unwrap().len(), 3);
    assert_eq!(layers[0]["e"].as_array().unwrap().len(), 3);
    assert_eq!(layers[0]["e"][0].as_array().unwrap().len(), 4);
    // The silent input neuron 3 gets e = 0, so only the regulariser moves its weights.
    assert_eq!(layers[0]["grad_main"][0][3], 0.0);
    assert!(
        t["forward"]["counts"][0]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c != 0)
    );
}

#[test]
fn trace_rejects_bad_cases_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(root().join("tests/fixtures/trace-case.json")).unwrap();
    let cases = [
        (good.replace("\"margin\": 1.0,", ""), "params.margin"),
        (
            good.replace("[2, 11, 19,", "[11, 2, 19,"),
            "inputs.spikes[1]",
        ),
        (good.replace("67, 75]", "67, 80]"), "inputs.spikes[0]"),
        (good.replace("[0.2, 0.1, 0.9]", "[0.2, 0.1]"), "weights[1]"),
        (good.replace("\"label\": 1", "\"label\": 7"), "params.label"),
        (good.replace("hm2bp-case/1", "hm2bp-case/9"), "schema"),
        ("{ not json".to_string(), "trace-case"),
    ];
    for (k, (text, field)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("trace-case-{k}.json"));
        std::fs::write(&path, text).unwrap();
        let out = experiment(&["trace", "--case", path.to_str().unwrap()], root());
        assert_clean_error(&out, field);
    }
}

#[test]
fn tiny_training_run_resumes_and_evaluates() {
    let data = common::mnist_root();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let run = |extra: &[&str]| train_tiny(&data, &out_dir, extra);
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p.join("summary.json")).unwrap()).unwrap()
    };
    let s = summary(&out_dir);
    let epochs = s["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    for e in epochs {
        let acc = e["test_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
        assert!(e["samples_per_second"].as_f64().unwrap() > 0.0);
    }
    assert!(s["backend"].as_str().unwrap().contains("flex"));
    // Boosting (on in `tiny`): weights saved every epoch, some grown above 1.
    let boost: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("boosting.json")).unwrap())
            .unwrap();
    let weights = boost["weights"].as_array().unwrap();
    assert_eq!(weights.len(), 200);
    assert!(weights.iter().any(|w| w.as_f64().unwrap() > 1.0));

    let out = run(&["--resume", "--epochs", "4", "--average-last", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("resuming from the checkpoint of epoch 2")
    );
    let s = summary(&out_dir);
    assert_eq!(s["epochs"].as_array().unwrap().len(), 4);
    // The mean parameters of the last three epochs, tested as any model file.
    let average = &s["average"];
    assert_eq!(average["epochs"], serde_json::json!([2, 3, 4]));
    // Resuming with settings that change what is trained is refused, naming the field.
    let out = run(&["--resume", "--epochs", "5", "--batch-size", "7"]);
    assert_clean_error(
        &out,
        "--resume: the run was started with experiment.batch_size = ",
    );

    let eval = |model: &Path| {
        let args = ["eval", "tiny", "--data-dir", &data, "--model"];
        let model = model.to_str().unwrap();
        experiment(&[&args[..], &[model]].concat(), root())
    };
    let out = eval(&out_dir.join("model.bpk"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test accuracy"),
        "{stdout}"
    );
    let out = eval(&out_dir.join("model-average.bpk"));
    let percent = 100.0 * average["test_accuracy"].as_f64().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("test accuracy {percent:.2}%")),
        "{stdout}"
    );

    // Figures of the run: learning curves and the spikes of the trained model.
    let png = |p: &Path| {
        std::fs::read(p)
            .map(|b| b[1..4] == *b"PNG")
            .unwrap_or(false)
    };
    let curves = dir.path().join("curves.png");
    let out = experiment(
        &[
            "plot",
            "curves",
            out_dir.to_str().unwrap(),
            "--authors",
            "mlp",
            "--out",
            curves.to_str().unwrap(),
        ],
        root(),
    );
    assert!(
        out.status.success() && png(&curves),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plots = dir.path().join("plots");
    let model = out_dir.join("model.bpk");
    let spikes = |samples: &str| {
        let (model, plots) = (model.to_str().unwrap(), plots.to_str().unwrap());
        let args = [
            "plot",
            "spikes",
            "tiny",
            "--data-dir",
            &data,
            "--model",
            model,
        ];
        let rest = [
            "--samples",
            samples,
            "--activity-samples",
            "20",
            "--out",
            plots,
        ];
        experiment(&[&args[..], &rest[..]].concat(), root())
    };
    let out = spikes("0,3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "rasters-sample-0.png",
        "rasters-sample-3.png",
        "activity.png",
    ] {
        assert!(png(&plots.join(name)), "{name}");
    }
    let out = spikes("100");
    assert_clean_error(&out, "--samples: test sample 100 does not exist");

    // A checkpoint or model file that does not fit: a one-line error, no panic.
    let other = dir.path().join("other.bpk");
    std::fs::write(&other, b"not a burnpack file").unwrap();
    assert_clean_error(&eval(&other), "other.bpk");

    // A last checkpoint cut short (a kill or a full disk while an older version wrote it):
    // set aside with a warning, the run continues from the epoch before.
    let checkpoints = out_dir.join("checkpoint");
    let last = checkpoints.join("model-4.bpk");
    let bytes = std::fs::read(&last).unwrap();
    std::fs::write(&last, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(&["--resume", "--epochs", "5"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the checkpoint of epoch 4 does not read"),
        "{stderr}"
    );
    assert!(
        stdout.contains("resuming from the checkpoint of epoch 3"),
        "{stdout}"
    );
    assert!(checkpoints.join("model-4.bpk.damaged").is_file());
    let epochs: Vec<u64> = summary(&out_dir)["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2, 3, 4, 5]);

    // A checkpoint that reads but belongs to another network is refused, not set aside.
    std::fs::copy(
        checkpoints.join("optim-5.bpk"),
        checkpoints.join("model-5.bpk"),
    )
    .unwrap();
    let out = run(&["--resume", "--epochs", "6"]);
    assert_clean_error(&out, "does not fit model tiny-784-40-10");
    assert!(checkpoints.join("model-5.bpk").is_file());
}

/// `--virtual-workers N` sums N shards' gradients in order (the same weights as N ranks
/// under `mpirun`, tests/mpi.rs): it trains, and only the summation order differs from one
/// worker, so the first epoch's test metrics agree; a batch too small to split is refused.
#[test]
fn virtual_workers_train_and_refuse_batches_they_cannot_split() {
    let data = common::mnist_root();
    let dir = tempfile::tempdir().unwrap();
    let (one, four) = (dir.path().join("one"), dir.path().join("four"));
    for (out, workers) in [(&one, "1"), (&four, "4")] {
        let run = train_tiny(&data, out, &["--epochs", "1", "--virtual-workers", workers]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let accuracy = |out: &Path| {
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        s["epochs"][0]["test_accuracy"].as_f64().unwrap()
    };
    assert_eq!(accuracy(&one), accuracy(&four));
    let out = train_tiny(
        &data,
        &dir.path().join("bad"),
        &["--virtual-workers", "4", "--batch-size", "2"],
    );
    assert_clean_error(&out, "batch_size 2 cannot be split among 4 workers");
    let out = train_tiny(&data, &dir.path().join("bad"), &["--virtual-workers", "0"]);
    assert_clean_error(&out, "--virtual-workers must be at least 1");
}

/// `--validation-samples N` tests on the last N training samples (choosing settings without
/// the test set) and says so; holding out all of them is refused.
#[test]
fn a_validation_split_is_held_out_of_the_training_split() {
    let data = common::mnist_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("val");
    let run = train_tiny(
        &data,
        &out,
        &["--epochs", "1", "--validation-samples", "50"],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["config"]["experiment"]["validation_samples"], 50, "{s}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("held-out acc"), "{stdout}");
    assert!(stdout.contains("best held-out accuracy"), "{stdout}");
    assert!(!stdout.contains("test acc"), "{stdout}");
    let out = train_tiny(&data, &out, &["--validation-samples", "60000"]);
    assert_clean_error(
        &out,
        "validation_samples: 60000 of the 60000 training samples",
    );
}

#[test]
fn bad_methods_are_named() {
    let out = experiment(
        &["train", "tiny", "--no-fetch", "--method", "bptt-foo"],
        root(),
    );
    assert_clean_error(&out, "unknown surrogate 'foo'");
    let out = experiment(
        &["train", "tiny", "--no-fetch", "--method", "bptt:x"],
        root(),
    );
    assert_clean_error(&out, "not a number of steps");
    let out = experiment(
        &["compare", "tiny", "--no-fetch", "--methods", "hm2bp,sgd"],
        root(),
    );
    assert_clean_error(&out, "unknown method 'sgd'");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("experiment.toml");
    let text = std::fs::read_to_string(root().join("experiments/tiny/experiment.toml")).unwrap();
    let bad = format!("{text}\n[bptt]\nsurrogate = {{ kind = \"triangle\", width = -1.0 }}\n");
    std::fs::write(&path, bad).unwrap();
    let out = experiment(&["train", path.to_str().unwrap(), "--no-fetch"], root());
    assert_clean_error(&out, "bptt.surrogate: triangle surrogate: `width`");
}

#[test]
fn compare_writes_the_table_and_plot() {
    let data = common::mnist_root();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("compare");
    let out = experiment(
        &[
            "compare",
            "tiny",
            "--methods",
            "hm2bp,bptt-fast-sigmoid:20",
            "--epochs",
            "2",
            "--train-samples",
            "40",
            "--test-samples",
            "20",
            "--no-fetch",
            "--data-dir",
            &data,
            "--out",
            out_dir.to_str().unwrap(),
        ],
        root(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(out_dir.join("compare.md")).unwrap();
    assert!(md.contains("| hm2bp (HM2-BP) | 100 | 2 |"), "{md}");
    assert!(
        md.contains("| bptt-fast-sigmoid:20 (BPTT, fast-sigmoid surrogate"),
        "{md}"
    );
    // Time to accuracy: 40 training samples reach none of the targets.
    assert!(
        md.contains("| method | 97.00 % | 97.50 % | 98.00 % |")
            && md.contains("| hm2bp | — | — | — |"),
        "{md}"
    );
    let csv = std::fs::read_to_string(out_dir.join("compare.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(rows[2].starts_with("bptt-fast-sigmoid:20,20,1,"), "{csv}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("compare.json")).unwrap())
            .unwrap();
    for run in json.as_array().unwrap() {
        let s = &run["summary"];
        assert!(s["peak_memory_mib"].as_f64().unwrap() > 0.0);
        assert!(s["epochs"][0]["spikes_per_sample"].as_f64().unwrap() >= 0.0);
    }
    let png = std::fs::read(out_dir.join("compare.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(
        out_dir
            .join("bptt-fast-sigmoid-T20/experiment.toml")
            .is_file()
    );
}

/// Writes an IDX image file and its label file (EMNIST naming) with `n` random-ish images.
fn write_idx_pair(dir: &Path, prefix: &str, n: usize, classes: u8) {
    let mut images = vec![0, 0, 8, 3];
    for v in [n as u32, 28, 28] {
        images.extend(v.to_be_bytes());
    }
    images.extend((0..n * 784).map(|i| ((i * 7919) % 251) as u8));
    let mut labels = vec![0, 0, 8, 1];
    labels.extend((n as u32).to_be_bytes());
    labels.extend((0..n).map(|i| (i % classes as usize) as u8));
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
}

/// `experiment train NAME` on a few samples and steps, from the data folder `data`, must
/// succeed and record spikes and a cost.
fn train_briefly(name: &str, data: &Path, out_dir: &Path) {
    let out = experiment(
        &[
            "train",
            name,
            "--plain",
            "--no-fetch",
            "--epochs",
            "1",
            "--steps",
            "60",
            "--train-samples",
            "12",
            "--test-samples",
            "6",
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
        root(),
    );
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    let e = &s["epochs"][0];
    assert!(
        e["spikes_per_sample"].as_f64().unwrap() > 0.0,
        "{name}: {e}"
    );
    assert!(e["authors_cost"].as_f64().unwrap() > 0.0, "{name}: {e}");
}

/// EMNIST (synthetic IDX files: it cannot be fetched here) trains end to end with its
/// committed experiment, on a few samples and steps; N-MNIST, which no registry ships, is
/// explained, not fetched.
#[test]
fn emnist_experiment_trains() {
    let dir = tempfile::tempdir().unwrap();
    let emnist = dir.path().join("emnist-balanced");
    std::fs::create_dir(&emnist).unwrap();
    write_idx_pair(&emnist, "emnist-balanced-train", 12, 47);
    write_idx_pair(&emnist, "emnist-balanced-test", 6, 47);
    train_briefly("emnist-mlp", dir.path(), &dir.path().join("emnist-mlp"));
    // A dataset that is not there is explained, not fetched.
    let out = experiment(
        &[
            "train",
            "nmnist-mlp",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        root(),
    );
    assert_clean_error(&out, "N-MNIST is in no package registry");
}

/// N-MNIST (the shared 1,000/100-recording subset) trains end to end with its committed
/// experiment.
#[test]
#[ignore = "needs ../shared/data/nmnist-small (an N-MNIST subset; not fetchable)"]
fn nmnist_experiment_trains() {
    let data = common::unfetchable_data("nmnist-small");
    let dir = tempfile::tempdir().unwrap();
    train_briefly("nmnist-mlp", data.parent().unwrap(), dir.path());
}

/// Spoken digits (FSDD recordings) train end to end with their committed experiment.
#[test]
#[ignore = "needs ../shared/data/fsdd (the Free Spoken Digit Dataset's recordings; not fetched by the project)"]
fn fsdd_experiment_trains() {
    let data = common::unfetchable_data("fsdd");
    let dir = tempfile::tempdir().unwrap();
    train_briefly("fsdd-mlp", data.parent().unwrap(), dir.path());
}

/// The same experiment, seed and binary give bit-identical metrics and weights at 1, 2, 3
/// and 4 threads (more threads than this machine's cores, too), for an MLP, a convolutional
/// net and a BPTT run (timings aside).
#[test]
fn metrics_do_not_depend_on_the_thread_count() {
    let data = common::mnist_root();
    let dir = tempfile::tempdir().unwrap();
    let tiny = std::fs::read_to_string(root().join("experiments/tiny/experiment.toml")).unwrap();
    let cnn = dir.path().join("tiny-cnn.toml");
    std::fs::write(&cnn, tiny.replace("tiny-784-40-10", "tiny-cnn-4c5-p2-10")).unwrap();
    let cases = [
        ("mlp", "tiny", None),
        ("cnn", cnn.to_str().unwrap(), None),
        ("bptt", "tiny", Some("bptt-arctan:30")),
    ];
    for (label, exp, method) in cases {
        let metrics = |threads: &str| {
            let out_dir = dir.path().join(format!("{label}-{threads}"));
            let mut args = vec![
                "train",
                exp,
                "--plain",
                "--no-fetch",
                "--train-samples",
                "60",
                "--test-samples",
                "30",
                "--data-dir",
                &data,
                "--out",
                out_dir.to_str().unwrap(),
            ];
            if let Some(m) = method {
                args.extend(["--method", m]);
            }
            let out = Command::new(env!("CARGO_BIN_EXE_experiment"))
                .args(&args)
                .current_dir(root())
                .env("RAYON_NUM_THREADS", threads)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{label}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let s: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(out_dir.join("summary.json")).unwrap(),
            )
            .unwrap();
            let mut epochs = s["epochs"].as_array().unwrap().clone();
            for e in &mut epochs {
                let e = e.as_object_mut().unwrap();
                e.remove("seconds");
                e.remove("samples_per_second");
                // A count taken on two threads as they run, like the times.
                e.remove("reads");
            }
            // The trained weights too: the spike counts behind the metrics would hide
            // last-bit differences of the gradient sums.
            let model = std::fs::read(out_dir.join("model.bpk")).unwrap();
            (epochs, burnpack_data(&model).to_vec())
        };
        let one = metrics("1");
        assert_eq!(one.0.len(), 2, "{label}");
        for threads in ["2", "3", "4"] {
            assert!(
                one == metrics(threads),
                "{label}: 1 and {threads} threads differ"
            );
        }
        assert!(one == metrics("1"), "{label}: a second run differs");
    }
}

/// A diverging run stops at the first non-finite loss, weight or gradient, naming it and the
/// step, and keeps the last good checkpoint.
#[test]
fn numerical_faults_stop_the_run() {
    let data = common::mnist_root();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let run = |extra: &[&str]| train_tiny(&data, &out_dir, extra);
    let out = run(&["--epochs", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "--resume",
        "--epochs",
        "2",
        "--lr",
        "1e38",
        "--regularizer",
        "off",
        "--accept-changed-settings",
    ]);
    assert_clean_error(&out, "training stopped: a non-finite gradient of layer 1");
    assert_clean_error(&out, "at epoch 2, batch 2");
    assert_clean_error(&out, "the checkpoint of epoch 1");
    let out = run(&["--lr", "1e38"]);
    assert_clean_error(&out, "training stopped: the loss is inf at epoch 1");
}

/// NaN weights that reach training (here: a checkpoint whose weights are all NaN, resumed)
/// stop the run before its first update, naming the step (and the layer, when the loss
/// itself stays finite).
#[test]
fn nan_weights_stop_the_run() {
    let data = common::mnist_root();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let run = |extra: &[&str]| train_tiny(&data, &out_dir, extra);
    let out = run(&["--epochs", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checkpoint = out_dir.join("checkpoint/model-1.bpk");
    let mut file = std::fs::read(&checkpoint).unwrap();
    // All bits set: every four bytes read as an `f32` NaN, however the tensors are aligned.
    let start = file.len() - burnpack_data(&file).len();
    file[start..].fill(0xff);
    std::fs::write(&checkpoint, file).unwrap();
    // The regulariser's penalty on the weights makes the loss NaN: caught at the loss, and
    // named by the weights that made it so.
    let out = run(&["--resume", "--epochs", "2"]);
    assert_clean_error(
        &out,
        "training stopped: non-finite weights in layer 1 (net.layers.0.weight) at epoch 2, batch 1",
    );
    assert_clean_error(&out, "the checkpoint of epoch 1");
    // Without it the loss stays finite (NaN potentials never cross the threshold): caught at
    // the weights, before the update.
    let out = run(&[
        "--resume",
        "--epochs",
        "2",
        "--regularizer",
        "off",
        "--accept-changed-settings",
    ]);
    assert_clean_error(&out, "training stopped: non-finite weights in layer 1");
    assert_clean_error(&out, "at epoch 2, batch 1");
}

/// The tensor data of a burnpack file: what follows its header (magic `NRUB`, u16 version, u32
/// metadata length, metadata), whose metadata holds parameter ids that are random per run.
fn burnpack_data(file: &[u8]) -> &[u8] {
    assert_eq!(&file[..4], b"NRUB", "a burnpack file");
    let metadata = u32::from_le_bytes(file[6..10].try_into().unwrap()) as usize;
    &file[10 + metadata..]
}

/// The 0-based epoch of the newest mid-epoch checkpoint in `out_dir`, if there is one.
fn mid_epoch_checkpoint(out_dir: &Path) -> Option<usize> {
    MidEpochRecord::latest(&out_dir.join("checkpoint")).map(|r| r.position.epoch)
}

/// A run killed by SIGKILL in the middle of its first epoch, resumed, killed again in the middle
/// of its second and resumed again ends as an uninterrupted run: the same weights, boosting
/// weights and per-epoch test metrics, bit for bit (one thread count, one binary).
///
/// Not compared: timings, and the training-split metrics of an epoch resumed mid-way. Those are
/// burn-train's running aggregates of the epoch in progress, held in its event processor, which
/// offers no way to checkpoint them; a resumed epoch reports them over the batches after the
/// resume point. What they measure (the training steps) is covered by the weights being equal.
#[test]
fn killed_mid_epoch_resumes_as_if_uninterrupted() {
    let data = common::mnist_root();
    let dir = tempfile::tempdir().unwrap();
    let every = ["--checkpoint-every-batches", "3"];
    let run = |out_dir: &Path, extra: &[&str]| {
        let mut cmd = tiny_command(&data, out_dir, &[&every[..], extra].concat());
        cmd.env("RAYON_NUM_THREADS", "2");
        cmd
    };
    let succeeds = |mut cmd: Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let whole = dir.path().join("whole");
    succeeds(run(&whole, &[]));

    let cut = dir.path().join("cut");
    for (epoch, extra) in [(0, &[][..]), (1, &["--resume"][..])] {
        let mut child = run(&cut, extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while mid_epoch_checkpoint(&cut) != Some(epoch) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the run ended ({status}) before a mid-epoch checkpoint of epoch {epoch}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let stdout = succeeds(run(&cut, &["--resume"]));
    assert!(
        stdout.contains("resuming from the mid-epoch checkpoint of epoch 2"),
        "{stdout}"
    );

    let read = |run: &Path, file: &str| std::fs::read(run.join(file)).unwrap();
    let (a, b) = (read(&whole, "model.bpk"), read(&cut, "model.bpk"));
    assert!(burnpack_data(&a) == burnpack_data(&b), "weights differ");
    assert_eq!(read(&whole, "boosting.json"), read(&cut, "boosting.json"));
    let epochs = |run: &Path| -> Vec<serde_json::Value> {
        let s: serde_json::Value = serde_json::from_slice(&read(run, "summary.json")).unwrap();
        s["epochs"].as_array().unwrap().clone()
    };
    let (whole, cut) = (epochs(&whole), epochs(&cut));
    assert_eq!(whole.len(), 2);
    assert_eq!(cut.len(), 2);
    for (a, b) in whole.iter().zip(&cut) {
        for field in [
            "epoch",
            "test_accuracy",
            "test_loss",
            "spikes_per_sample",
            "lr",
        ] {
            assert_eq!(a[field], b[field], "{field} of epoch {}", a["epoch"]);
        }
    }
}

/// `--read-every N` (a device's default, here on the CPU: the fault watch, boosting's
/// verdicts and the metrics read back every N steps and at every epoch's end, mid-epoch
/// checkpoints only after such a step) trains as reading every step: the same weights,
/// boosting weights, training and test metrics; a fault is still caught, the message saying
/// how often it is looked for.
#[test]
fn reading_back_every_few_steps_trains_the_same() {
    let data = common::mnist_root();
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out_dir = dir.path().join(name);
        let args = [
            &["--epochs", "2", "--checkpoint-every-batches", "3"][..],
            extra,
        ]
        .concat();
        let out = train_tiny(&data, &out_dir, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out_dir
    };
    let (each, every_4) = (run("each", &[]), run("every-4", &["--read-every", "4"]));
    let read = |run: &Path, file: &str| std::fs::read(run.join(file)).unwrap();
    let (a, b) = (read(&each, "model.bpk"), read(&every_4, "model.bpk"));
    assert!(burnpack_data(&a) == burnpack_data(&b), "weights differ");
    assert_eq!(
        read(&each, "boosting.json"),
        read(&every_4, "boosting.json")
    );
    let tested = |run: &Path| -> Vec<Vec<serde_json::Value>> {
        let s: serde_json::Value = serde_json::from_slice(&read(run, "summary.json")).unwrap();
        let epochs = s["epochs"].as_array().unwrap().clone();
        let fields = [
            "test_accuracy",
            "test_loss",
            "train_accuracy",
            "loss",
            "authors_cost",
            "dead_neurons",
            "spikes_per_sample",
        ];
        epochs
            .iter()
            .map(|e| fields.iter().map(|f| e[f].clone()).collect())
            .collect()
    };
    assert_eq!(tested(&each), tested(&every_4));
    let out = train_tiny(
        &data,
        &dir.path().join("fault"),
        &["--lr", "1e38", "--read-every", "4"],
    );
    assert_clean_error(&out, "training stopped");
    assert_clean_error(&out, "checked every 4 steps");
}

/// Without the `nir` feature, `export` and `import` exist and say how to get them.
#[cfg(not(feature = "nir"))]
#[test]
fn nir_commands_name_the_feature() {
    for args in [
        &["export", "model.bpk", "--format", "nir", "out.nir"][..],
        &["import", "in.nir", "out.bpk"][..],
    ] {
        assert_clean_error(&experiment(args, root()), "--features nir");
    }
}

/// `experiment bench` on the tiny MLP (both kernel paths, one warm-up batch) prints a timing
/// row per path with a positive rate and the event-driven path's ratio to the generic one,
/// timing the network fresh when no trained checkpoint of it is committed and from its
/// newest trained checkpoint when one is.
#[test]
fn bench_times_both_kernel_paths() {
    let data = common::mnist_root();
    let dir = tempfile::tempdir().unwrap();
    let experiments = dir.path().join("experiments");
    let bench = |experiments: &Path| {
        let args = [
            "bench",
            "--models",
            "tiny-784-40-10",
            "--batch-sizes",
            "2",
            "--samples",
            "4",
            "--steps",
            "50",
            "--warmup-batches",
            "1",
            "--data-dir",
            &data,
            "--experiments-dir",
            experiments.to_str().unwrap(),
        ];
        let out = experiment(&args, root());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let rows = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .filter(|l| l.starts_with("| tiny-784-40-10 |"))
            .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
            .collect()
    };
    let text = bench(&experiments);
    assert!(text.contains("after 1 untimed batches"), "{text}");
    let fresh = rows(&text);
    assert_eq!(fresh.len(), 2, "{text}");
    for row in &fresh {
        assert_eq!(row[2], "fresh", "{row:?}");
        assert!(row[7].parse::<f64>().unwrap() > 0.0, "samples/s in {row:?}");
    }
    let event_driven = fresh.iter().find(|r| r[3] == "event-driven").unwrap();
    assert!(
        event_driven[9].parse::<f64>().is_ok(),
        "× vs generic: {event_driven:?}"
    );

    let run = experiments.join("tiny").join("checkpoint");
    let out = train_tiny(&data, &run, &["--epochs", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trained = rows(&bench(&experiments));
    assert!(
        trained.iter().all(|r| r[2] == "trained (1 epochs)"),
        "{trained:?}"
    );
}
