//! IDX label files, plain or gzip'd.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.idx");
    if let Ok(raw) = hm2bp::datasets::idx::decode_maybe_gz(path, data.to_vec()) {
        let _ = hm2bp::datasets::idx::parse_idx_labels(path, raw);
    }
});
