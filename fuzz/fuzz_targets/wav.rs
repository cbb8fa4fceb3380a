//! WAV files, through the auditory front end and the spike codes.
#![no_main]
use hm2bp::datasets::audio::{FrontEndDef, mel_spectrogram, parse_wav};
use hm2bp::datasets::audio_code::{AudioCode, AudioCodeDef};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = parse_wav(Path::new("fuzz.wav"), data) {
        // Bound the work per input: the front end is linear in the samples.
        if rec.samples.len() > 1 << 16 {
            return;
        }
        let spec = mel_spectrogram(&rec, &FrontEndDef::default());
        for code in [AudioCode::Bsa, AudioCode::Delta] {
            let opts = AudioCodeDef {
                code,
                slices: 2,
                ..AudioCodeDef::default()
            };
            let raster = opts.encode(&spec, 100);
            assert_eq!(raster.neurons(), opts.channels(32));
        }
    }
});
