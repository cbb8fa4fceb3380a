//! Network definitions: a definition that parses can be built into a network, or the build
//! says why not; neither panics.
#![no_main]
use burn::prelude::*;
use hm2bp::model::{LayerDef, NetworkDef, RuleOptions, SpikingNet};
use hm2bp::rule::regularizer::WeightRegularizer;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(def) = NetworkDef::parse(Path::new("fuzz.json"), text) else {
        return;
    };
    // Keep the networks small enough to build quickly and inside the fuzzer's malloc limit
    // (the layers' own size bound, 2^30 weights, is tested in the layer modules).
    let layer_size = |l: &LayerDef| match *l {
        LayerDef::Dense { size, .. } | LayerDef::Pool { size, .. } => size,
        LayerDef::Conv { maps, .. } => maps,
    };
    if def.input_size() > 4096
        || def.layers.len() > 6
        || def.layers.iter().any(|l| layer_size(l) > 4096)
    {
        return;
    }
    let rule = RuleOptions {
        effect_ratio: true,
        regularizer: WeightRegularizer::OFF,
        label_spike_level: 35,
    };
    let _ = SpikingNet::new(&def, &rule, &Device::flex());
});
