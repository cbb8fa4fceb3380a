//! N-MNIST event recordings (the original binary format, also used by the `.bs2` files of the
//! small subset) and their conversion to binned spike trains.
//!
//! Each event is 5 bytes: `x`, `y` (0-based sensor address), then a 23-bit timestamp in µs
//! whose top byte also carries the polarity in bit 7:
//! `polarity = byte2 >> 7`, `ts = (byte2 & 0x7f) << 16 | byte3 << 8 | byte4`.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::datasets::error::{DataError, Result};
use crate::datasets::{SpikeSet, Split};
use crate::spikes::SpikeRaster;

/// Side of the N-MNIST sensor patch (34×34 pixels).
pub const NMNIST_SIDE: usize = 34;
/// Input channels: 34·34 addresses × 2 polarities.
pub const NMNIST_CHANNELS: usize = NMNIST_SIDE * NMNIST_SIDE * 2;
/// Default time bin in µs (the authors' setting).
pub const DEFAULT_NMNIST_BIN_US: u32 = 600;
/// Default number of time steps (the authors' setting: 540 bins of 600 µs).
pub const DEFAULT_NMNIST_STEPS: usize = 540;

/// One address event of an N-MNIST recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NmnistEvent {
    /// Column address, 0-based.
    pub x: u8,
    /// Row address, 0-based.
    pub y: u8,
    /// Polarity bit as stored in the file (0 or 1).
    pub polarity: u8,
    /// Timestamp in µs from the start of the recording.
    pub timestamp_us: u32,
}

/// Reads all events of an N-MNIST binary recording.
///
/// A file whose length is not a multiple of 5 bytes is rejected.
pub fn read_nmnist_events(path: &Path) -> Result<Vec<NmnistEvent>> {
    parse_nmnist_events(path, &read_file(path)?)
}

/// Parses the content of an N-MNIST recording; `path` names it in errors.
pub fn parse_nmnist_events(path: &Path, bytes: &[u8]) -> Result<Vec<NmnistEvent>> {
    if !bytes.len().is_multiple_of(5) {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            detail: format!(
                "file length {} is not a multiple of 5 (N-MNIST events are 5 bytes each)",
                bytes.len()
            ),
        });
    }
    Ok(bytes
        .chunks_exact(5)
        .map(|e| NmnistEvent {
            x: e[0],
            y: e[1],
            polarity: e[2] >> 7,
            timestamp_us: (u32::from(e[2] & 0x7f) << 16) | (u32::from(e[3]) << 8) | u32::from(e[4]),
        })
        .collect())
}

/// Compensates the sensor motion of N-MNIST's three saccades (Orchard's `stabilize.m`, which
/// the authors' converter applies first): in 1-based addresses, `x −= 3.5·t/105 ms`,
/// `y −= 7·t/105 ms` up to 105 ms, then `x −= 3.5 + 3.5·(t − 105)/105`, `y −= 7 − 7·(t − 105)/105`
/// up to 210 ms, then `x −= 7 − 7·(t − 210)/105`; rounded half away from zero; events that land
/// left of or above the sensor are dropped (those right of or below it drop when binning).
pub fn stabilize(events: &[NmnistEvent]) -> Vec<NmnistEvent> {
    const SACCADE_US: f64 = 105e3;
    events
        .iter()
        .filter_map(|e| {
            let t = f64::from(e.timestamp_us);
            let (dx, dy) = if t <= SACCADE_US {
                (3.5 * t / SACCADE_US, 7.0 * t / SACCADE_US)
            } else if t <= 2.0 * SACCADE_US {
                let f = (t - SACCADE_US) / SACCADE_US;
                (3.5 + 3.5 * f, 7.0 - 7.0 * f)
            } else {
                (7.0 - 7.0 * (t - 2.0 * SACCADE_US) / SACCADE_US, 0.0)
            };
            // 1-based as in MATLAB, back to 0-based after rounding.
            let x = (f64::from(e.x) + 1.0 - dx).round();
            let y = (f64::from(e.y) + 1.0 - dy).round();
            (x >= 1.0 && y >= 1.0 && x <= 256.0 && y <= 256.0).then_some(NmnistEvent {
                x: (x - 1.0) as u8,
                y: (y - 1.0) as u8,
                ..*e
            })
        })
        .collect()
}

/// How event timestamps become time steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NmnistBinning {
    /// The authors' converter and reader: step `⌈ts / bin⌉ + 1`.
    #[default]
    Authors,
    /// Frames as tonic's `ToFrame(time_window = bin)`: step `⌊(ts − ts₀) / bin⌋` from the
    /// recording's first event `ts₀`.
    Tonic,
}

/// How N-MNIST recordings become input spike trains (experiment table `[events]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NmnistDef {
    /// Saccade-stabilise the events first ([`stabilize`]), as the authors.
    #[serde(default = "yes")]
    pub stabilize: bool,
    /// Bin width in µs (the authors: 600).
    #[serde(default = "default_bin")]
    pub bin_us: u32,
    /// Binning rule.
    #[serde(default)]
    pub binning: NmnistBinning,
}

fn yes() -> bool {
    true
}
fn default_bin() -> u32 {
    DEFAULT_NMNIST_BIN_US
}

impl Default for NmnistDef {
    fn default() -> Self {
        Self {
            stabilize: true,
            bin_us: DEFAULT_NMNIST_BIN_US,
            binning: NmnistBinning::Authors,
        }
    }
}

/// One recording as a `steps`-step raster of [`NMNIST_CHANNELS`] inputs.
pub fn nmnist_raster(events: &[NmnistEvent], steps: usize, opts: &NmnistDef) -> SpikeRaster {
    let stabilized;
    let events = if opts.stabilize {
        stabilized = stabilize(events);
        &stabilized
    } else {
        events
    };
    SpikeRaster::from_times(
        &nmnist_to_spikes(events, steps, opts.bin_us, opts.binning),
        steps,
    )
}

/// The N-MNIST folder under `data_dir`: `nmnist/` (the full set or any subset), else
/// `nmnist-small/` (the 1,000 / 100 subset).
pub fn nmnist_dir(data_dir: &Path) -> Result<PathBuf> {
    ["nmnist", "nmnist-small"]
        .iter()
        .map(|name| data_dir.join(name))
        .find(|d| d.is_dir())
        .ok_or_else(|| DataError::MissingFile {
            path: data_dir.join("nmnist"),
            hint: NMNIST_HINT.to_string(),
        })
}

/// How to obtain N-MNIST (quoted in errors and the README).
pub const NMNIST_HINT: &str = "N-MNIST is in no package registry: download it from its \
    authors (Orchard et al. 2015, ~1 GB) and unpack `Train/` and `Test/` (folders 0–9 of \
    `.bin` recordings) into data/nmnist/, or put a subset there as `N.bs2` files with \
    `train*.txt` / `test*.txt` lists of `sample class` lines (also read from data/nmnist-small/)";

/// The recordings of one split and their classes: `Train/<c>/*.bin` (`Test/…`) of the full
/// release, in class then file-name order, or the `<sample>.bs2` files named by the split's
/// list (`train*.txt` / `test*.txt`).
pub fn nmnist_files(dir: &Path, split: Split) -> Result<Vec<(PathBuf, u8)>> {
    let (folder, prefix) = match split {
        Split::Train => ("Train", "train"),
        Split::Test => ("Test", "test"),
    };
    let full = dir.join(folder);
    if full.is_dir() {
        let mut files = Vec::new();
        for class in 0..10u8 {
            let class_dir = full.join(class.to_string());
            let mut names: Vec<PathBuf> = std::fs::read_dir(&class_dir)
                .map_err(|e| DataError::io(&class_dir, e))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "bin"))
                .collect();
            names.sort();
            files.extend(names.into_iter().map(|p| (p, class)));
        }
        return Ok(files);
    }
    let lists: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_lowercase());
            name.is_some_and(|n| n.starts_with(prefix) && n.ends_with(".txt"))
        })
        .collect();
    let list = match lists.as_slice() {
        [one] => one,
        [] => {
            return Err(DataError::MissingFile {
                path: full,
                hint: format!("no {folder}/ folder and no {prefix}*.txt list; {NMNIST_HINT}"),
            });
        }
        many => {
            return Err(DataError::Format {
                path: dir.to_path_buf(),
                detail: format!("{} lists match {prefix}*.txt; keep one", many.len()),
            });
        }
    };
    Ok(read_nmnist_list(list)?
        .into_iter()
        .map(|(sample, class)| (dir.join(format!("{sample}.bs2")), class))
        .collect())
}

/// Loads one split of N-MNIST from `data_dir` (see [`nmnist_dir`]) as `steps`-step rasters.
pub fn load_nmnist(
    data_dir: &Path,
    split: Split,
    steps: usize,
    opts: &NmnistDef,
) -> Result<SpikeSet> {
    let dir = nmnist_dir(data_dir)?;
    let files = nmnist_files(&dir, split)?;
    let rasters = files
        .par_iter()
        .map(|(path, _)| Ok(nmnist_raster(&read_nmnist_events(path)?, steps, opts)))
        .collect::<Result<Vec<_>>>()?;
    Ok(SpikeSet {
        rasters,
        labels: files.iter().map(|(_, c)| *c).collect(),
        num_classes: 10,
    })
}

/// Bins events into per-channel spike steps (ascending, without duplicates), following the
/// authors' converter (`NMNIST_Converter.m`) and reader:
///
/// - channel = `x · 34 + y` (0-based; their `(x − 1) · 34 + y` with 1-based MATLAB addresses,
///   minus one), plus 1156 for polarity bit 1 (their MATLAB `p == 2`, with `p = bit + 1`,
///   which the converter treats as the OFF events);
///   events with `x ≥ 34` or `y ≥ 34` are dropped;
/// - step = `⌈ts / bin_us⌉ + 1`; steps `≥ steps` are dropped; several events of one channel in
///   one bin collapse into one spike. A `bin_us` of 0 is treated as 1.
///
/// With [`NmnistBinning::Tonic`] the step is `⌊(ts − ts₀) / bin⌋` instead. Stabilisation, if
/// wanted, comes first ([`stabilize`], [`nmnist_raster`]).
pub fn nmnist_to_spikes(
    events: &[NmnistEvent],
    steps: usize,
    bin_us: u32,
    binning: NmnistBinning,
) -> Vec<Vec<u32>> {
    let bin = u64::from(bin_us.max(1));
    let first = events.iter().map(|e| e.timestamp_us).min().unwrap_or(0);
    let plane = NMNIST_SIDE * NMNIST_SIDE;
    let mut trains = vec![Vec::new(); NMNIST_CHANNELS];
    for e in events {
        let (x, y) = (usize::from(e.x), usize::from(e.y));
        if x >= NMNIST_SIDE || y >= NMNIST_SIDE {
            continue;
        }
        let channel = x * NMNIST_SIDE + y + if e.polarity != 0 { plane } else { 0 };
        let step = match binning {
            NmnistBinning::Authors => u64::from(e.timestamp_us).div_ceil(bin) + 1,
            NmnistBinning::Tonic => u64::from(e.timestamp_us - first) / bin,
        };
        if step >= steps as u64 {
            continue;
        }
        // `step < steps` and timestamps have 23 bits, so it fits.
        trains[channel].push(u32::try_from(step).unwrap_or(u32::MAX));
    }
    for t in &mut trains {
        t.sort_unstable();
        t.dedup();
    }
    trains
}

/// Reads a sample list such as `train1K.txt` / `test100.txt`: one `sample class` pair per
/// line (whitespace-separated); blank lines and lines starting with `#` (the header
/// `#sample #class`) are skipped. The sample number is the recording's file stem
/// (`<sample>.bs2`).
pub fn read_nmnist_list(path: &Path) -> Result<Vec<(u32, u8)>> {
    let bytes = read_file(path)?;
    let text = String::from_utf8(bytes).map_err(|_| DataError::Format {
        path: path.to_path_buf(),
        detail: "not valid UTF-8 text".to_string(),
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parse_err = |detail: String| DataError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            detail,
        };
        let mut fields = line.split_whitespace();
        let (Some(s), Some(c), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(parse_err(format!(
                "expected `sample class`, found `{line}`"
            )));
        };
        let sample = s
            .parse::<u32>()
            .map_err(|_| parse_err(format!("bad sample number `{s}`")))?;
        let class = c
            .parse::<u8>()
            .ok()
            .filter(|&c| c < 10)
            .ok_or_else(|| parse_err(format!("bad class `{c}` (expected 0..=9)")))?;
        out.push((sample, class));
    }
    Ok(out)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::idx::tests::shared_path;

    fn event_bytes(x: u8, y: u8, pol: u8, ts: u32) -> [u8; 5] {
        [
            x,
            y,
            (pol << 7) | ((ts >> 16) as u8 & 0x7f),
            (ts >> 8) as u8,
            ts as u8,
        ]
    }

    #[test]
    fn synthetic_two_events() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("1.bs2");
        let mut bytes = event_bytes(3, 5, 1, 0x12_3456).to_vec();
        bytes.extend(event_bytes(33, 0, 0, 600));
        std::fs::write(&p, &bytes).unwrap();
        let ev = read_nmnist_events(&p).unwrap();
        assert_eq!(
            ev,
            vec![
                NmnistEvent {
                    x: 3,
                    y: 5,
                    polarity: 1,
                    timestamp_us: 0x12_3456
                },
                NmnistEvent {
                    x: 33,
                    y: 0,
                    polarity: 0,
                    timestamp_us: 600
                },
            ]
        );
        let spikes = nmnist_to_spikes(&ev, 540, 600, NmnistBinning::Authors);
        assert_eq!(spikes.len(), NMNIST_CHANNELS);
        // ts = 1193046 µs → bin 1989 ≥ 540: dropped. ts = 600 → ⌈1⌉ + 1 = 2.
        assert_eq!(spikes[33 * 34], vec![2]);
        assert_eq!(spikes.iter().map(Vec::len).sum::<usize>(), 1);
        let long = nmnist_to_spikes(&ev, 4000, 600, NmnistBinning::Authors);
        assert_eq!(long[1156 + 3 * 34 + 5], vec![1990]);
    }

    #[test]
    fn binning_rules() {
        let e = |x, y, polarity, timestamp_us| NmnistEvent {
            x,
            y,
            polarity,
            timestamp_us,
        };
        let ev = [
            e(0, 0, 0, 0),    // bin 0 + 1 = 1
            e(0, 0, 0, 1),    // ⌈1/600⌉ + 1 = 2
            e(0, 0, 0, 600),  // 2 again: collapsed
            e(0, 0, 0, 601),  // 3
            e(34, 0, 0, 5),   // out of the patch
            e(0, 34, 1, 5),   // out of the patch
            e(1, 2, 1, 1200), // channel 1156 + 36, step 3
            e(0, 0, 0, 1800), // step 4 = steps: dropped
        ];
        let s = nmnist_to_spikes(&ev, 4, 600, NmnistBinning::Authors);
        assert_eq!(s[0], vec![1, 2, 3]);
        assert_eq!(s[1156 + 36], vec![3]);
        assert_eq!(s.iter().map(Vec::len).sum::<usize>(), 4);
        // bin 0 does not divide by zero
        assert_eq!(
            nmnist_to_spikes(&ev[..2], 10, 0, NmnistBinning::Authors)[0],
            vec![1, 2]
        );
    }

    #[test]
    fn tonic_binning_counts_from_the_first_event() {
        let e = |timestamp_us| NmnistEvent {
            x: 0,
            y: 0,
            polarity: 0,
            timestamp_us,
        };
        let s = nmnist_to_spikes(
            &[e(1000), e(1599), e(1600), e(3500)],
            10,
            600,
            NmnistBinning::Tonic,
        );
        assert_eq!(s[0], vec![0, 1, 4]);
    }

    /// Hand-computed with Orchard's `stabilize.m` (1-based MATLAB addresses).
    #[test]
    fn stabilisation_follows_the_three_saccades() {
        let e = |x, y, timestamp_us| NmnistEvent {
            x,
            y,
            polarity: 1,
            timestamp_us,
        };
        let out = stabilize(&[
            e(10, 10, 0),       // no motion yet
            e(10, 10, 52_500),  // x 11 − 1.75 = 9.25 → 9, y 11 − 3.5 = 7.5 → 8 (half away)
            e(10, 10, 157_500), // x 11 − 5.25 → 6 (5.75 → 6), y 11 − 3.5 → 8
            e(10, 10, 262_500), // x 11 − 3.5 = 7.5 → 8, y unchanged 11
            e(0, 0, 105_000),   // x 1 − 3.5 < 1: dropped
        ]);
        let xy: Vec<(u8, u8)> = out.iter().map(|e| (e.x, e.y)).collect();
        assert_eq!(xy, vec![(10, 10), (8, 7), (5, 7), (7, 10)]);
        assert!(out.iter().all(|e| e.polarity == 1));
    }

    #[test]
    fn bad_length_names_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bad.bs2");
        std::fs::write(&p, [0u8; 7]).unwrap();
        let e = read_nmnist_events(&p).unwrap_err().to_string();
        assert!(e.starts_with(&p.display().to_string()), "{e}");
        assert!(e.contains("file length 7 is not a multiple of 5"), "{e}");
        let e = read_nmnist_events(&d.path().join("none.bs2")).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }), "{e}");
    }

    #[test]
    fn list_parsing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("train.txt");
        std::fs::write(&p, "#sample #class\r\n1\t5\r\n2\t0\r\n\r\n").unwrap();
        assert_eq!(read_nmnist_list(&p).unwrap(), vec![(1, 5), (2, 0)]);
        std::fs::write(&p, "#sample #class\n1\t5\n2 x\n").unwrap();
        let e = read_nmnist_list(&p).unwrap_err().to_string();
        assert!(e.contains("train.txt:3: bad class `x`"), "{e}");
        std::fs::write(&p, "1 2 3\n").unwrap();
        assert!(matches!(
            read_nmnist_list(&p),
            Err(DataError::Parse { line: 1, .. })
        ));
    }

    #[test]
    #[ignore = "needs ../shared/data/nmnist-small (an N-MNIST subset; not fetchable)"]
    fn real_subset() {
        let rec = shared_path("nmnist-small/1.bs2");
        let dir = rec.parent().unwrap().to_path_buf();
        let root = dir.parent().unwrap().to_path_buf();
        let ev = read_nmnist_events(&rec).unwrap();
        assert_eq!(ev.len(), 23405 / 5);
        assert!(
            ev.iter()
                .all(|e| usize::from(e.x) < NMNIST_SIDE && usize::from(e.y) < NMNIST_SIDE)
        );
        assert!(ev.iter().all(|e| e.polarity <= 1));
        assert!(ev.iter().any(|e| e.polarity == 0) && ev.iter().any(|e| e.polarity == 1));
        // A recording lasts about 300 ms (three saccades).
        let last = ev.iter().map(|e| e.timestamp_us).max().unwrap_or(0);
        assert!((250_000..350_000).contains(&last), "{last}");
        let s = nmnist_to_spikes(
            &ev,
            DEFAULT_NMNIST_STEPS,
            DEFAULT_NMNIST_BIN_US,
            NmnistBinning::Authors,
        );
        let n: usize = s.iter().map(Vec::len).sum();
        assert!(n > ev.len() / 2 && n <= ev.len(), "{n} of {}", ev.len());

        let train = read_nmnist_list(&dir.join("train1K.txt")).unwrap();
        assert_eq!(train.len(), 1000);
        assert_eq!(&train[..4], &[(1, 5), (2, 0), (3, 4), (4, 1)]);
        let test = read_nmnist_list(&dir.join("test100.txt")).unwrap();
        assert_eq!(test.len(), 100);
        assert_eq!(test[0], (60001, 7));

        let set = load_nmnist(&root, Split::Test, 540, &NmnistDef::default()).unwrap();
        assert_eq!(
            (set.len(), set.channels(), set.labels[0]),
            (100, NMNIST_CHANNELS, 7)
        );
        assert!(set.rasters.iter().all(|r| r.num_spikes() > 500));
    }

    #[test]
    fn missing_and_truncated_recordings_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let e = load_nmnist(d.path(), Split::Train, 10, &NmnistDef::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("nmnist: file not found; N-MNIST is in no package"),
            "{e}"
        );
        let dir = d.path().join("nmnist");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("train10.txt"), "#sample #class\n1 3\n2 4\n").unwrap();
        std::fs::write(dir.join("1.bs2"), event_bytes(1, 2, 0, 700)).unwrap();
        std::fs::write(dir.join("2.bs2"), [0u8; 9]).unwrap();
        let e = load_nmnist(d.path(), Split::Train, 10, &NmnistDef::default()).unwrap_err();
        assert!(e.to_string().contains("2.bs2: file length 9"), "{e}");
        std::fs::write(dir.join("2.bs2"), event_bytes(33, 33, 1, 0)).unwrap();
        let set = load_nmnist(d.path(), Split::Train, 10, &NmnistDef::default()).unwrap();
        assert_eq!(set.labels, vec![3, 4]);
        assert_eq!(set.rasters[1].num_spikes(), 1);
        let e = load_nmnist(d.path(), Split::Test, 10, &NmnistDef::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("no Test/ folder and no test*.txt list"),
            "{e}"
        );
    }
}
