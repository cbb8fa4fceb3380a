//! The inputs that crashed a fuzz target (`fuzz/`), kept in `tests/fixtures/fuzz/TARGET/`:
//! each is replayed through the same parser as its target and must give an error, not a panic
//! or an unbounded allocation.

use std::path::{Path, PathBuf};

/// Every kept input of `target`, with its path (at least one).
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "{}: no inputs", dir.display());
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Target `wav`: a header claiming a huge sample rate would size the front end's FFT.
#[test]
fn wav_inputs_are_refused() {
    for (path, bytes) in inputs("wav") {
        let e = hm2bp::datasets::audio::parse_wav(&path, bytes.as_slice())
            .expect_err("refused")
            .to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
    }
}

/// Target `trace_case`: a case claiming a huge `T` would allocate per step.
#[test]
fn trace_cases_are_refused() {
    for (path, bytes) in inputs("trace_case") {
        let text = std::str::from_utf8(&bytes).unwrap();
        let e = hm2bp::trace::Case::from_json(text).expect_err("refused");
        assert!(
            e.to_string().contains("params.T"),
            "{}: {e}",
            path.display()
        );
    }
}

/// Target `model_json`: an input shape whose size overflows.
#[test]
fn model_definitions_are_refused() {
    for (path, bytes) in inputs("model_json") {
        let text = std::str::from_utf8(&bytes).unwrap();
        let e = hm2bp::model::NetworkDef::parse(&path, text)
            .expect_err("refused")
            .to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
    }
}

/// Target `idx_labels`: a gzip footer claiming 4 GiB (ISIZE 2³²−1) reserved that much before
/// decompressing (out of memory under the fuzzer's limit).
#[test]
fn gzip_footers_do_not_size_the_buffer() {
    use hm2bp::datasets::idx::{MAX_DECOMPRESSED_BYTES, capacity_hint, decode_maybe_gz};
    for (path, bytes) in inputs("idx_labels") {
        let hint = capacity_hint(&bytes, MAX_DECOMPRESSED_BYTES);
        assert!(hint <= bytes.len() * 1100, "{}: {hint}", path.display());
        let e = decode_maybe_gz(&path, bytes)
            .expect_err("refused")
            .to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
    }
}

/// Target `nmnist_list`: malformed sample lists (a class above 9, a sample number above
/// `u32`, too few or too many fields, bytes that are not UTF-8) are refused, naming the file.
#[test]
fn nmnist_lists_are_refused() {
    for (path, _) in inputs("nmnist_list") {
        let e = hm2bp::datasets::nmnist::read_nmnist_list(&path)
            .expect_err("refused")
            .to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
    }
}

/// Target `nir_import`: files that are not NIR graphs (not HDF5, a truncated graph) are
/// refused by the reader, naming the file.
#[cfg(feature = "nir")]
#[test]
fn nir_files_are_refused() {
    for (path, _) in inputs("nir_import") {
        let e = hm2bp::nir::read(&path).expect_err("refused").to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
    }
}
