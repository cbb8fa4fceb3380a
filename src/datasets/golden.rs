//! Loader for the golden test data of the authors' HM2-BP implementation: one MNIST sample
//! (label 5) pushed through a small spiking CNN before and after one training update
//! (`hm2bp-golden/cnn-mnist`, formats described in its README).
//!
//! All spike rasters are returned as per-neuron ascending spike steps (`Vec<Vec<u32>>`).

use std::path::Path;

use crate::datasets::error::{DataError, Result};

/// Time steps of the golden case.
pub const GOLDEN_STEPS: usize = 450;
/// Label of the golden sample.
pub const GOLDEN_LABEL: usize = 5;
/// Input neurons (28×28, row-major pixel index).
pub const GOLDEN_INPUTS: usize = 784;

/// Spike rasters of every layer of the golden network for one forward pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoldenRasters {
    /// conv1: 5×24×24 neurons, index `c·576 + x·24 + y`.
    pub conv1: Vec<Vec<u32>>,
    /// pool1: 5×12×12 neurons, index `c·144 + x·12 + y`.
    pub pool1: Vec<Vec<u32>>,
    /// conv2: 3×8×8 neurons, index `c·64 + x·8 + y`.
    pub conv2: Vec<Vec<u32>>,
    /// pool2: 3×4×4 neurons, index `c·16 + x·4 + y` (also the hidden layer's input order).
    pub pool2: Vec<Vec<u32>>,
    /// hidden: 100 neurons.
    pub hidden: Vec<Vec<u32>>,
    /// output: 10 neurons (all silent in this case).
    pub output: Vec<Vec<u32>>,
}

/// Weights of the golden network.
#[derive(Clone, Debug, PartialEq)]
pub struct GoldenWeights {
    /// conv1 kernels, `[out 5][in 1][p 5][q 5]` row-major.
    pub conv1: Vec<f64>,
    /// conv2 kernels, `[out 3][in 5][p 5][q 5]` row-major.
    pub conv2: Vec<f64>,
    /// hidden layer, `W[post 100][pre 48]` row-major.
    pub hidden: Vec<f64>,
    /// output layer, `W[post 10][pre 100]` row-major.
    pub output: Vec<f64>,
}

/// The whole golden case.
#[derive(Clone, Debug, PartialEq)]
pub struct GoldenCnn {
    /// Input spike trains: 784 neurons, steps `< 450`.
    pub input: Vec<Vec<u32>>,
    /// Forward pass with the initial weights (`spikes/*/train/`).
    pub rasters_before: GoldenRasters,
    /// Forward pass with the updated weights (`spikes/*/test/`).
    pub rasters_after: GoldenRasters,
    /// Initial weights (`weights/*_info.txt`).
    pub weights_before: GoldenWeights,
    /// Weights after one HM2-BP update (`weights/*_info_trained.txt`).
    pub weights_after: GoldenWeights,
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    String::from_utf8(bytes).map_err(|_| DataError::Format {
        path: path.to_path_buf(),
        detail: "not valid UTF-8 text".to_string(),
    })
}

/// Sorts and deduplicates every train.
fn normalise(mut trains: Vec<Vec<u32>>) -> Vec<Vec<u32>> {
    for t in &mut trains {
        t.sort_unstable();
        t.dedup();
    }
    trains
}

/// Reads an `index time` spike file (one pair per line; `-1 -1` lines separate blocks) and
/// returns the FIRST non-empty block: leading separators are skipped, reading stops at the
/// next separator. Times `≥ steps` are dropped; an index `≥ neurons` is an error. Returns per
/// neuron the ascending, deduplicated spike steps.
pub fn read_index_time_spikes(path: &Path, neurons: usize, steps: usize) -> Result<Vec<Vec<u32>>> {
    let text = read_text(path)?;
    let mut trains = vec![Vec::new(); neurons];
    let mut in_block = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let err = |detail: String| DataError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            detail,
        };
        let mut f = line.split_whitespace();
        let (Some(a), Some(b), None) = (f.next(), f.next(), f.next()) else {
            return Err(err(format!("expected `index time`, found `{line}`")));
        };
        if a == "-1" && b == "-1" {
            if in_block {
                break;
            }
            continue;
        }
        in_block = true;
        let index = a
            .parse::<usize>()
            .map_err(|_| err(format!("bad neuron index `{a}`")))?;
        let time = b
            .parse::<u32>()
            .map_err(|_| err(format!("bad spike time `{b}`")))?;
        if index >= neurons {
            return Err(err(format!(
                "neuron index {index} out of range (layer has {neurons} neurons)"
            )));
        }
        if (time as usize) < steps {
            trains[index].push(time);
        }
    }
    Ok(normalise(trains))
}

/// Reads a dense 0/1 raster: for each channel `c` in turn, `steps·h·w` whitespace-separated
/// values in `[t][x][y]` order. Neuron index = `c·h·w + x·w + y`. Returns per neuron the
/// ascending spike steps. The value count must match exactly.
pub fn read_dense_raster(
    path: &Path,
    channels: usize,
    steps: usize,
    h: usize,
    w: usize,
) -> Result<Vec<Vec<u32>>> {
    let text = read_text(path)?;
    let plane = h * w;
    let per_channel = steps * plane;
    let expected = channels * per_channel;
    let mut trains = vec![Vec::new(); channels * plane];
    let mut count = 0usize;
    for tok in text.split_ascii_whitespace() {
        if count < expected {
            match tok {
                "0" => {}
                "1" => {
                    let (c, rest) = (count / per_channel, count % per_channel);
                    let (t, xy) = (rest / plane, rest % plane);
                    // t < steps; rasters longer than u32::MAX steps are not meaningful.
                    trains[c * plane + xy].push(u32::try_from(t).unwrap_or(u32::MAX));
                }
                _ => {
                    return Err(DataError::Format {
                        path: path.to_path_buf(),
                        detail: format!("value #{} is `{tok}`, expected 0 or 1", count + 1),
                    });
                }
            }
        }
        count += 1;
    }
    if count != expected {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            detail: format!(
                "expected {channels}×{steps}×{h}×{w} = {expected} values, found {count}"
            ),
        });
    }
    Ok(trains)
}

/// Reads whitespace-separated convolution weights, shape `[out_maps][in_maps][k][k]`.
pub fn read_conv_weights(
    path: &Path,
    out_maps: usize,
    in_maps: usize,
    k: usize,
) -> Result<Vec<f64>> {
    let text = read_text(path)?;
    let expected = out_maps * in_maps * k * k;
    let values = text
        .split_ascii_whitespace()
        .enumerate()
        .map(|(i, tok)| {
            tok.parse::<f64>().map_err(|_| DataError::Format {
                path: path.to_path_buf(),
                detail: format!("value #{} `{tok}` is not a number", i + 1),
            })
        })
        .collect::<Result<Vec<f64>>>()?;
    if values.len() != expected {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            detail: format!(
                "expected {out_maps}×{in_maps}×{k}×{k} = {expected} weights, found {}",
                values.len()
            ),
        });
    }
    Ok(values)
}

/// The neuron index of a name like `hidden_12` (the number after the last `_`).
fn name_index(name: &str) -> Option<usize> {
    name.rsplit_once('_')?.1.parse().ok()
}

/// Reads fully connected weights from lines `idx pre_name post_name w` and returns
/// `W[post][pre]` row-major (`n_post · n_pre` values). Lines whose pre index equals `n_pre`
/// are bias lines and are skipped. Every other entry must appear exactly once.
pub fn read_fc_weights(path: &Path, n_pre: usize, n_post: usize) -> Result<Vec<f64>> {
    let text = read_text(path)?;
    let mut w = vec![0.0f64; n_pre * n_post];
    let mut seen = vec![false; n_pre * n_post];
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let err = |detail: String| DataError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            detail,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, pre_name, post_name, value] = fields[..] else {
            return Err(err(format!(
                "expected `idx pre_name post_name w`, found `{line}`"
            )));
        };
        let pre =
            name_index(pre_name).ok_or_else(|| err(format!("no neuron index in `{pre_name}`")))?;
        let post = name_index(post_name)
            .ok_or_else(|| err(format!("no neuron index in `{post_name}`")))?;
        let value = value
            .parse::<f64>()
            .map_err(|_| err(format!("bad weight `{value}`")))?;
        if pre == n_pre {
            continue; // bias line
        }
        if pre > n_pre || post >= n_post {
            return Err(err(format!(
                "entry post {post} pre {pre} out of range ({n_post}×{n_pre})"
            )));
        }
        let k = post * n_pre + pre;
        if std::mem::replace(&mut seen[k], true) {
            return Err(err(format!("duplicate entry post {post} pre {pre}")));
        }
        w[k] = value;
    }
    if let Some(k) = seen.iter().position(|&s| !s) {
        let missing = seen.iter().filter(|&&s| !s).count();
        return Err(DataError::Format {
            path: path.to_path_buf(),
            detail: format!(
                "{missing} of {n_post}×{n_pre} weights missing, first: post {} pre {}",
                k / n_pre,
                k % n_pre
            ),
        });
    }
    Ok(w)
}

fn load_rasters(dir: &Path, phase: &str) -> Result<GoldenRasters> {
    let s = dir.join("spikes");
    let dense = |layer: &str, c, h, w| {
        read_dense_raster(
            &s.join(layer).join(phase).join(format!("{layer}_1.dat")),
            c,
            GOLDEN_STEPS,
            h,
            w,
        )
    };
    let sparse = |layer: &str, n| {
        read_index_time_spikes(
            &s.join(layer).join(phase).join(format!("{layer}.dat")),
            n,
            GOLDEN_STEPS,
        )
    };
    Ok(GoldenRasters {
        conv1: dense("conv1", 5, 24, 24)?,
        pool1: dense("pool1", 5, 12, 12)?,
        conv2: dense("conv2", 3, 8, 8)?,
        pool2: dense("pool2", 3, 4, 4)?,
        hidden: sparse("hidden", 100)?,
        output: sparse("output", 10)?,
    })
}

fn load_weights(dir: &Path, suffix: &str) -> Result<GoldenWeights> {
    let file = |layer: &str| {
        dir.join("weights")
            .join(format!("{layer}_info{suffix}.txt"))
    };
    Ok(GoldenWeights {
        conv1: read_conv_weights(&file("conv1"), 5, 1, 5)?,
        conv2: read_conv_weights(&file("conv2"), 3, 5, 5)?,
        hidden: read_fc_weights(&file("hidden"), 48, 100)?,
        output: read_fc_weights(&file("output"), 100, 10)?,
    })
}

/// Loads the golden case from its folder (`…/hm2bp-golden/cnn-mnist`).
pub fn load_golden_cnn(dir: &Path) -> Result<GoldenCnn> {
    if !dir.is_dir() {
        return Err(DataError::MissingDataDir {
            path: dir.to_path_buf(),
            hint: "expected the hm2bp-golden/cnn-mnist folder of the shared data".to_string(),
        });
    }
    Ok(GoldenCnn {
        input: read_index_time_spikes(
            &dir.join("input_spikes_0_5.dat"),
            GOLDEN_INPUTS,
            GOLDEN_STEPS,
        )?,
        rasters_before: load_rasters(dir, "train")?,
        rasters_after: load_rasters(dir, "test")?,
        weights_before: load_weights(dir, "")?,
        weights_after: load_weights(dir, "_trained")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::idx::tests::shared_path;

    fn file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn index_time_first_block_after_leading_separators() {
        let d = tempfile::tempdir().unwrap();
        let p = file(
            d.path(),
            "s.dat",
            "-1\t-1\n-1 -1\n2\t7\n0 3\n2 1\n2 7\n1 9\n-1\t-1\n0 4\n",
        );
        let s = read_index_time_spikes(&p, 3, 9).unwrap();
        assert_eq!(s, vec![vec![3], vec![], vec![1, 7]]);
        let p = file(d.path(), "empty.dat", "-1\t-1\n-1\t-1\n");
        assert_eq!(
            read_index_time_spikes(&p, 2, 9).unwrap(),
            vec![Vec::<u32>::new(); 2]
        );
        let p = file(d.path(), "oob.dat", "-1 -1\n3 1\n");
        let e = read_index_time_spikes(&p, 3, 9).unwrap_err().to_string();
        assert!(e.contains("oob.dat:2: neuron index 3 out of range"), "{e}");
        let p = file(d.path(), "bad.dat", "1 x\n");
        assert!(matches!(
            read_index_time_spikes(&p, 3, 9),
            Err(DataError::Parse { line: 1, .. })
        ));
    }

    #[test]
    fn dense_raster_order() {
        let d = tempfile::tempdir().unwrap();
        // 2 channels, T = 2, H = 1, W = 2: [c][t][x][y]
        let p = file(d.path(), "r.dat", "0 1\n1 0\n0 0 1 1\n");
        let s = read_dense_raster(&p, 2, 2, 1, 2).unwrap();
        assert_eq!(s, vec![vec![1], vec![0], vec![1], vec![1]]);
        let e = read_dense_raster(&p, 2, 3, 1, 2).unwrap_err().to_string();
        assert!(e.contains("= 12 values, found 8"), "{e}");
        let p = file(d.path(), "x.dat", "0 2");
        assert!(read_dense_raster(&p, 1, 1, 1, 2).is_err());
    }

    #[test]
    fn conv_and_fc_weights() {
        let d = tempfile::tempdir().unwrap();
        let p = file(d.path(), "c.txt", "1 -0 2.5 3\n");
        assert_eq!(
            read_conv_weights(&p, 1, 1, 2).unwrap(),
            vec![1.0, 0.0, 2.5, 3.0]
        );
        assert!(read_conv_weights(&p, 1, 2, 2).is_err());

        let text = "0\tin_0\tout_0\t0.1\n1\tin_0\tout_1\t0.2\n\
                    2\tin_1\tout_0\t0.3\n3\tin_1\tout_1\t0.4\n4\tin_2\tout_0\t0\n";
        let p = file(d.path(), "fc.txt", text);
        assert_eq!(read_fc_weights(&p, 2, 2).unwrap(), vec![0.1, 0.3, 0.2, 0.4]);
        let two_lines: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        let p = file(d.path(), "fc2.txt", &two_lines);
        let e = read_fc_weights(&p, 2, 2).unwrap_err().to_string();
        assert!(e.contains("weights missing"), "{e}");
        let p = file(d.path(), "fc3.txt", "0 in_0 out_5 1\n");
        assert!(matches!(
            read_fc_weights(&p, 2, 2),
            Err(DataError::Parse { line: 1, .. })
        ));
    }

    #[test]
    #[ignore = "needs ../shared/data/hm2bp-golden (the authors' golden step; not fetchable)"]
    fn real_golden_case() {
        let dir = shared_path("hm2bp-golden/cnn-mnist");
        let g = load_golden_cnn(&dir).unwrap();
        assert_eq!(g.input.len(), GOLDEN_INPUTS);
        let n_in: usize = g.input.iter().map(Vec::len).sum();
        assert!(n_in > 1000, "{n_in}");
        for r in [&g.rasters_before, &g.rasters_after] {
            assert_eq!(r.conv1.len(), 5 * 24 * 24);
            assert_eq!(r.pool1.len(), 5 * 12 * 12);
            assert_eq!(r.conv2.len(), 3 * 8 * 8);
            assert_eq!(r.pool2.len(), 3 * 4 * 4);
            assert_eq!(r.hidden.len(), 100);
            assert_eq!(r.output.len(), 10);
            assert!(r.output.iter().all(Vec::is_empty));
            assert!(r.hidden.iter().any(|t| !t.is_empty()));
            assert!(r.conv1.iter().any(|t| !t.is_empty()));
            let all = [&r.conv1, &r.pool1, &r.conv2, &r.pool2, &r.hidden];
            assert!(
                all.iter()
                    .flat_map(|l| l.iter().flatten())
                    .all(|&t| (t as usize) < GOLDEN_STEPS)
            );
        }
        assert_eq!(g.rasters_before.hidden[5][..2], [107, 159]);
        assert_eq!(g.rasters_after.hidden[5][..2], [97, 149]);
        let (b, a) = (&g.weights_before, &g.weights_after);
        assert_eq!(
            (b.conv1.len(), b.conv2.len(), b.hidden.len(), b.output.len()),
            (125, 375, 4800, 1000)
        );
        assert_eq!(b.hidden[0], -0.37); // hidden_0 ← stack2line_0
        assert_eq!(b.output[100], 0.51); // output_1 ← hidden_0
        // One Adam step moves each weight by ≈ ±lr = 0.001 or not at all.
        for (x, y) in [
            (&b.conv1, &a.conv1),
            (&b.conv2, &a.conv2),
            (&b.hidden, &a.hidden),
            (&b.output, &a.output),
        ] {
            assert_eq!(x.len(), y.len());
            assert!(x.iter().zip(y.iter()).all(|(p, q)| (p - q).abs() < 0.0011));
        }
    }
}
