//! Trace cases: a case that parses and validates runs its step.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(case) = hm2bp::trace::Case::from_json(text)
    {
        let _ = hm2bp::trace::run_trace(&case);
    }
});
