//! The Free Spoken Digit Dataset: `recordings/{digit}_{speaker}_{take}.wav`, 8 kHz mono; the
//! official split puts takes 0–4 of every speaker and digit into the test set.
//!
//! Each recording goes through the auditory front end ([`crate::datasets::audio`]) and a spike
//! code ([`crate::datasets::audio_code`]).

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::datasets::audio::{FrontEndDef, mel_spectrogram, read_wav};
use crate::datasets::audio_code::AudioCodeDef;
use crate::datasets::error::{DataError, Result};
use crate::datasets::{SpikeSet, Split};

/// Takes below this number are the test split.
pub const FSDD_TEST_TAKES: u32 = 5;

/// How to obtain FSDD (quoted in errors and the README).
pub const FSDD_HINT: &str = "get the Free Spoken Digit Dataset's `recordings/` folder \
    (github.com/Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0) into data/fsdd/";

/// Front end and spike code of an audio experiment (table `[audio]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioDef {
    /// Filter bank.
    #[serde(default)]
    pub front_end: FrontEndDef,
    /// Spike code.
    #[serde(default)]
    pub spikes: AudioCodeDef,
}

impl AudioDef {
    /// Checks the ranges; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.front_end.validate()?;
        self.spikes.validate()
    }

    /// Input channels of the encoded recordings.
    pub fn channels(&self) -> usize {
        self.spikes.channels(self.front_end.bands)
    }
}

/// Digit and take of an FSDD file name `{digit}_{speaker}_{take}.wav`.
pub fn parse_fsdd_name(path: &Path) -> Result<(u8, u32)> {
    let bad = |detail: &str| DataError::Format {
        path: path.to_path_buf(),
        detail: format!("{detail} (expected {{digit}}_{{speaker}}_{{take}}.wav)"),
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| bad("file name is not UTF-8"))?;
    let parts: Vec<&str> = stem.split('_').collect();
    let [digit, _speaker, take] = parts.as_slice() else {
        return Err(bad("not three `_`-separated fields"));
    };
    let digit = digit
        .parse::<u8>()
        .ok()
        .filter(|d| *d < 10)
        .ok_or_else(|| bad("the digit is not 0–9"))?;
    let take = take
        .parse::<u32>()
        .map_err(|_| bad("the take is not a number"))?;
    Ok((digit, take))
}

/// The recordings of one split with their digits, sorted by file name.
pub fn fsdd_files(data_dir: &Path, split: Split) -> Result<Vec<(PathBuf, u8)>> {
    let dir = data_dir.join("fsdd").join("recordings");
    let entries = std::fs::read_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::MissingFile {
            path: dir.clone(),
            hint: FSDD_HINT.to_string(),
        },
        _ => DataError::io(&dir, e),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let (digit, take) = parse_fsdd_name(&path)?;
        if (take < FSDD_TEST_TAKES) == (split == Split::Test) {
            files.push((path, digit));
        }
    }
    if files.is_empty() {
        return Err(DataError::MissingFile {
            path: dir,
            hint: format!("no recordings of this split; {FSDD_HINT}"),
        });
    }
    Ok(files)
}

/// Loads one split of FSDD from `data_dir/fsdd/` as `steps`-step rasters.
pub fn load_fsdd(data_dir: &Path, split: Split, steps: usize, opts: &AudioDef) -> Result<SpikeSet> {
    let files = fsdd_files(data_dir, split)?;
    let rasters = files
        .par_iter()
        .map(|(path, _)| {
            let spec = mel_spectrogram(&read_wav(path)?, &opts.front_end);
            Ok(opts.spikes.encode(&spec, steps))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SpikeSet {
        rasters,
        labels: files.iter().map(|(_, d)| *d).collect(),
        num_classes: 10,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::idx::tests::shared_path;

    #[test]
    fn names_and_split() {
        assert_eq!(
            parse_fsdd_name(Path::new("r/7_theo_12.wav")).unwrap(),
            (7, 12)
        );
        for bad in [
            "r/x_theo_1.wav",
            "r/12_theo_1.wav",
            "r/1_theo.wav",
            "r/1_a_b_c.wav",
        ] {
            let e = parse_fsdd_name(Path::new(bad)).unwrap_err().to_string();
            assert!(
                e.starts_with(bad) && e.contains("{digit}_{speaker}_{take}"),
                "{e}"
            );
        }
        let d = tempfile::tempdir().unwrap();
        let e = fsdd_files(d.path(), Split::Train).unwrap_err().to_string();
        assert!(
            e.contains("fsdd/recordings: file not found; get the Free Spoken"),
            "{e}"
        );
    }

    #[test]
    fn a_truncated_recording_is_named() {
        let d = tempfile::tempdir().unwrap();
        let rec = d.path().join("fsdd/recordings");
        std::fs::create_dir_all(&rec).unwrap();
        std::fs::write(rec.join("3_ann_9.wav"), b"RIFF\x24\x00\x00\x00WAVEfmt ").unwrap();
        let e = load_fsdd(d.path(), Split::Train, 100, &AudioDef::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("3_ann_9.wav") && e.contains("WAV"), "{e}");
    }

    #[test]
    #[ignore = "needs ../shared/data/fsdd (the Free Spoken Digit Dataset; not fetchable)"]
    fn real_recordings() {
        let root = shared_path("fsdd").parent().unwrap().to_path_buf();
        let train = fsdd_files(&root, Split::Train).unwrap();
        let test = fsdd_files(&root, Split::Test).unwrap();
        assert_eq!((train.len(), test.len()), (2700, 300));
        let opts = AudioDef::default();
        let set = load_fsdd(&root, Split::Test, 400, &opts).unwrap();
        assert_eq!((set.len(), set.channels()), (300, opts.channels()));
        let spikes: Vec<usize> = set.rasters.iter().map(|r| r.num_spikes()).collect();
        assert!(spikes.iter().all(|&n| n > 100), "{:?}", &spikes[..10]);
    }
}
