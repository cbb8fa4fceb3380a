//! Experiment files: any text is an experiment that validates, or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(exp) = hm2bp::experiment::ExperimentDef::parse(Path::new("fuzz.toml"), text)
    {
        assert!(exp.validate().is_ok());
    }
});
