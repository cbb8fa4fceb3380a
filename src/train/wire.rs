//! What a shard of a data-parallel step tells the other workers, and its bytes on the wire:
//! little-endian, a header of sizes, then the arrays.

use burn::prelude::*;

use super::classifier::Forward;
use super::data::SpikeBatch;

/// A shard's forward pass, on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardRecord {
    /// Output classes.
    pub classes: usize,
    /// The samples' positions in their split.
    pub indices: Vec<u64>,
    /// Their classes.
    pub labels: Vec<i64>,
    /// Output counts `[b, classes]`, row-major.
    pub counts: Vec<f32>,
    /// `Σ_b loss_b` over the shard (sequential `f32` sum of the per-sample losses).
    pub loss_sum: f32,
    /// Per layer: `[Σ counts, Σ silent, counts summed over the shard per neuron…]`.
    pub layers: Vec<Vec<f32>>,
}

/// Reads a tensor's values as `f32`.
fn host<const D: usize>(t: Tensor<D>, what: &str) -> Vec<f32> {
    crate::device_reads::data(t, what)
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_else(|e| panic!("hm2bp: reading {what}: {e:?}"))
}

impl ShardRecord {
    /// The record of `shard`'s forward pass.
    pub fn of(shard: &SpikeBatch, forward: &Forward) -> Self {
        let classes = forward.counts.dims()[1];
        let per_sample = host(forward.loss.clone(), "the per-sample loss");
        let layers = forward
            .layers
            .iter()
            .map(|counts| {
                let n = counts.dims()[1];
                let mut sums = host(counts.clone().sum().reshape([1]), "a layer's spike count");
                let silent = counts.clone().equal_elem(0.0).float().sum().reshape([1]);
                sums.extend(host(silent, "a layer's silent neurons"));
                sums.extend(host(
                    counts.clone().sum_dim(0).reshape([n]),
                    "spikes per neuron",
                ));
                sums
            })
            .collect();
        let labels = crate::device_reads::data(shard.labels.clone(), "labels")
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap_or_else(|e| panic!("hm2bp: reading labels: {e:?}"));
        Self {
            classes,
            indices: shard.indices.clone(),
            labels,
            counts: host(forward.counts.clone().detach(), "output counts"),
            loss_sum: per_sample.iter().sum(),
            layers,
        }
    }

    /// Samples in the shard.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the shard is empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// `records` as bytes.
    pub fn encode_all(records: &[ShardRecord]) -> Vec<u8> {
        let mut out = Vec::new();
        put(&mut out, records.len() as u64);
        for r in records {
            put(&mut out, r.classes as u64);
            put(&mut out, r.len() as u64);
            put(&mut out, r.layers.len() as u64);
            for l in &r.layers {
                put(&mut out, l.len() as u64);
            }
            for &i in &r.indices {
                put(&mut out, i);
            }
            for &l in &r.labels {
                put(&mut out, l as u64);
            }
            out.extend(r.loss_sum.to_le_bytes());
            for v in r.counts.iter().chain(r.layers.iter().flatten()) {
                out.extend(v.to_le_bytes());
            }
        }
        out
    }

    /// The records in `bytes` (from [`Self::encode_all`]).
    pub fn decode_all(bytes: &[u8]) -> Result<Vec<ShardRecord>, String> {
        let mut r = Reader { bytes, at: 0 };
        let n = r.u64()? as usize;
        (0..n).map(|_| Self::decode(&mut r)).collect()
    }

    fn decode(r: &mut Reader<'_>) -> Result<ShardRecord, String> {
        let classes = r.u64()? as usize;
        let b = r.u64()? as usize;
        let layer_count = r.u64()? as usize;
        let sizes: Vec<usize> = (0..layer_count)
            .map(|_| r.u64().map(|v| v as usize))
            .collect::<Result<_, _>>()?;
        let indices = (0..b).map(|_| r.u64()).collect::<Result<_, _>>()?;
        let labels = (0..b)
            .map(|_| r.u64().map(|v| v as i64))
            .collect::<Result<_, _>>()?;
        let loss_sum = r.f32s(1)?[0];
        let counts = r.f32s(b * classes)?;
        let layers = sizes
            .into_iter()
            .map(|n| r.f32s(n))
            .collect::<Result<_, _>>()?;
        Ok(ShardRecord {
            classes,
            indices,
            labels,
            counts,
            loss_sum,
            layers,
        })
    }
}

fn put(out: &mut Vec<u8>, v: u64) {
    out.extend(v.to_le_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end =
            end.ok_or_else(|| format!("truncated at byte {} of {}", self.at, self.bytes.len()))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, String> {
        let bytes = self.take(n.checked_mul(4).ok_or("size overflow")?)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_the_wire_and_truncation_is_an_error() {
        let rec = ShardRecord {
            classes: 2,
            indices: vec![7, 3],
            labels: vec![1, 0],
            counts: vec![1.0, 2.0, f32::NAN, -0.0],
            loss_sum: f32::INFINITY,
            layers: vec![vec![3.0, 1.0, 2.0, 1.0], vec![1.0, 0.0]],
        };
        let bytes = ShardRecord::encode_all(&[rec.clone(), rec.clone()]);
        let back = ShardRecord::decode_all(&bytes).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].indices, rec.indices);
        assert!(back[0].counts[2].is_nan() && back[0].loss_sum.is_infinite());
        assert_eq!(back[0].layers, rec.layers);
        assert!(ShardRecord::decode_all(&bytes[..bytes.len() - 3]).is_err());
    }
}
