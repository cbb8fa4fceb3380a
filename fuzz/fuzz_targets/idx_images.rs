//! IDX image files, plain or gzip'd: any bytes give images or an error, never a panic, and
//! never an allocation beyond what the bytes (decompressed) hold.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.idx");
    if let Ok(raw) = hm2bp::datasets::idx::decode_maybe_gz(path, data.to_vec())
        && let Ok(images) = hm2bp::datasets::idx::parse_idx_images(path, raw)
    {
        assert_eq!(
            images.pixels.len(),
            images.count * images.rows * images.cols
        );
    }
});
