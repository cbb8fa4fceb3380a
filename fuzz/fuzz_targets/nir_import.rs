//! NIR graphs (`.nir`, HDF5): any bytes read as a graph and import into a network, or give an
//! error. The reader takes a path, so each input goes through a file of this process. Needs
//! the fuzz crate's feature `nir` (libhdf5): `cargo +nightly fuzz run --features nir nir_import`.
#![no_main]
use burn::prelude::*;
use hm2bp::model::RuleOptions;
use hm2bp::rule::regularizer::WeightRegularizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("hm2bp-fuzz-{}.nir", std::process::id()));
    std::fs::write(&path, data).expect("the temporary file is writable");
    let Ok(graph) = hm2bp::nir::read(&path) else {
        return;
    };
    // As `experiment import`: the learning rule is not part of a NIR graph.
    let rule = RuleOptions {
        effect_ratio: true,
        regularizer: WeightRegularizer::OFF,
        label_spike_level: 35,
    };
    let _ = hm2bp::nir::import(&graph, "fuzz", &rule, &Device::flex());
});
