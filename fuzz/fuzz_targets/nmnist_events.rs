//! N-MNIST recordings, through stabilisation and both binnings into rasters.
#![no_main]
use hm2bp::datasets::nmnist::{NmnistBinning, NmnistDef, nmnist_raster, parse_nmnist_events};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = parse_nmnist_events(Path::new("fuzz.bs2"), data) {
        for binning in [NmnistBinning::Authors, NmnistBinning::Tonic] {
            let opts = NmnistDef {
                binning,
                ..NmnistDef::default()
            };
            let raster = nmnist_raster(&events, 540, &opts);
            assert!(raster.num_spikes() <= events.len());
        }
    }
});
