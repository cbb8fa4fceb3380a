//! Helpers shared by the integration tests: where their real data comes from.
//!
//! No test passes by skipping. Data the project fetches itself (MNIST, Fashion-MNIST) is
//! taken from the shared data folder when it holds it, else from the project's own `data/`
//! folder, fetched there when missing (as `experiment fetch-data` does). Data a user cannot
//! fetch (the authors' golden step, the N-MNIST subset, FSDD) is read from the shared folder
//! only; the tests that need it are `#[ignore = "needs …"]` and fail, naming the folder, when
//! run with `--include-ignored` without it.
// Each test binary includes this module and uses part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Mutex;

use hm2bp::datasets::{FetchOptions, ImageDatasetKind, fetch_datasets};

/// The shared read-only data folder: `$HM2BP_SHARED_DATA`, else `../shared/data`.
fn shared_root() -> PathBuf {
    std::env::var_os("HM2BP_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// `sub` of the shared data folder, for data a user cannot fetch; fails the test, naming the
/// folder, when it is missing.
pub fn unfetchable_data(sub: &str) -> PathBuf {
    let dir = shared_root().join(sub);
    assert!(
        dir.is_dir(),
        "{} not found: this test needs data the project cannot fetch (set HM2BP_SHARED_DATA \
         to a folder holding {sub}/)",
        dir.display()
    );
    dir
}

/// The datasets this test binary has fetched or checked (`fetch-data` skips a dataset whose
/// files are present and pass their checksums), held while fetching so that parallel tests
/// fetch once.
static CHECKED: Mutex<Vec<ImageDatasetKind>> = Mutex::new(Vec::new());

/// A data folder (the parent of `<dir_name>/`) that holds `kind`: the shared data folder when
/// it does, else the project's `data/`, fetched there when missing. A failed fetch fails the
/// test with the fetch's error.
pub fn fetchable_data(kind: ImageDatasetKind) -> PathBuf {
    let shared = shared_root();
    if shared.join(kind.dir_name()).is_dir() {
        return shared;
    }
    let own = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data");
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if !checked.contains(&kind) {
        let opts = FetchOptions {
            data_dir: own.clone(),
            from: None,
            datasets: vec![kind],
        };
        fetch_datasets(&opts, &mut |line| eprintln!("{line}")).unwrap_or_else(|e| {
            panic!(
                "{} could not be fetched into {} ({e:#}); fetch it with `cargo run --release \
                 --bin experiment -- fetch-data`, or set HM2BP_SHARED_DATA to a folder \
                 holding {}/",
                kind.dir_name(),
                own.display(),
                kind.dir_name()
            )
        });
        checked.push(kind);
    }
    own
}

/// [`fetchable_data`] for MNIST, as a string for the command line.
pub fn mnist_root() -> String {
    fetchable_data(ImageDatasetKind::Mnist)
        .to_str()
        .expect("a UTF-8 data path")
        .to_string()
}
