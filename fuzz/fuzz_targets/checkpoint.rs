//! Checkpoint / model files (burnpack): any bytes load into the tiny model or give an error.
#![no_main]
use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use hm2bp::layers::SpikingDenseConfig;
use hm2bp::neuron::LifSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(record) = ModuleRecord::from_bytes(Bytes::from_bytes_vec(data.to_vec())) else {
        return;
    };
    let layer = SpikingDenseConfig::new(4, 3, LifSpec::paper(1.0)).init(&Device::flex());
    let _ = layer.try_load_record(record);
});
