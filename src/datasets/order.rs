//! The order in which an epoch visits the training samples, as a function of (seed, epoch)
//! only: a resumed run sees the same order as an uninterrupted one.
//!
//! - `shuffle`: a fresh uniform permutation every epoch (Fisher–Yates).
//! - `pair-swaps`: the authors' partial shuffle (spec S12 note): before every epoch, the
//!   current order gets `swaps` (5,000) swaps of two uniformly drawn positions; the order
//!   carries over from epoch to epoch, starting from the file order.
//! - `in-order`: the file order.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How the samples of an epoch are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum DataOrderKind {
    /// A new random permutation every epoch.
    #[default]
    Shuffle,
    /// The authors' partial shuffle: random pair swaps per epoch, cumulative.
    PairSwaps,
    /// The order of the files.
    InOrder,
}

/// The authors' number of pair swaps per epoch.
pub const AUTHORS_PAIR_SWAPS: usize = 5000;

fn authors_pair_swaps() -> usize {
    AUTHORS_PAIR_SWAPS
}

/// The `[order]` table of an experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataOrder {
    /// Kind of order.
    #[serde(default)]
    pub kind: DataOrderKind,
    /// Pair swaps per epoch (`pair-swaps` only; default 5,000 as the authors).
    #[serde(default = "authors_pair_swaps")]
    pub swaps: usize,
}

impl Default for DataOrder {
    fn default() -> Self {
        Self {
            kind: DataOrderKind::default(),
            swaps: AUTHORS_PAIR_SWAPS,
        }
    }
}

impl DataOrder {
    /// The file order.
    pub const IN_ORDER: Self = Self {
        kind: DataOrderKind::InOrder,
        swaps: AUTHORS_PAIR_SWAPS,
    };

    /// The order of `len` samples in 0-based epoch `epoch`: `order[k]` is the sample visited
    /// `k`-th. `previous` may hold the order of epoch `epoch − 1` (pair swaps build on it).
    pub fn permutation(
        &self,
        len: usize,
        seed: u64,
        epoch: u64,
        previous: Option<Vec<usize>>,
    ) -> Vec<usize> {
        match self.kind {
            DataOrderKind::InOrder => (0..len).collect(),
            DataOrderKind::Shuffle => {
                let mut order: Vec<usize> = (0..len).collect();
                let mut rng = epoch_rng(seed, epoch, 0);
                for k in (1..len).rev() {
                    order.swap(k, rng.random_range(0..=k));
                }
                order
            }
            DataOrderKind::PairSwaps => {
                let (mut order, from) = match previous {
                    Some(p) if p.len() == len && epoch > 0 => (p, epoch),
                    _ => ((0..len).collect(), 0),
                };
                for e in from..=epoch {
                    let mut rng = epoch_rng(seed, e, 1);
                    for _ in 0..self.swaps {
                        if len > 1 {
                            order.swap(rng.random_range(0..len), rng.random_range(0..len));
                        }
                    }
                }
                order
            }
        }
    }
}

/// The random stream of one epoch's order (`tag` separates the kinds).
fn epoch_rng(seed: u64, epoch: u64, tag: u64) -> ChaCha8Rng {
    let mut bytes = [0u8; 32];
    for (chunk, word) in bytes
        .chunks_exact_mut(8)
        .zip([seed, epoch, tag, 0x006f_7264_6572_u64])
    {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_permutation(order: &[usize]) -> bool {
        let mut sorted = order.to_vec();
        sorted.sort_unstable();
        sorted.iter().enumerate().all(|(k, &v)| k == v)
    }

    #[test]
    fn orders_are_permutations_and_pair_swaps_accumulate() {
        let shuffle = DataOrder::default();
        let a = shuffle.permutation(1000, 3, 0, None);
        let b = shuffle.permutation(1000, 3, 1, None);
        assert!(is_permutation(&a) && is_permutation(&b) && a != b);
        assert_eq!(a, shuffle.permutation(1000, 3, 0, None));

        let swaps = DataOrder {
            kind: DataOrderKind::PairSwaps,
            swaps: 50,
        };
        let e0 = swaps.permutation(1000, 3, 0, None);
        let e1 = swaps.permutation(1000, 3, 1, Some(e0.clone()));
        // Building on the previous epoch equals replaying every epoch from the start.
        assert_eq!(e1, swaps.permutation(1000, 3, 1, None));
        assert!(is_permutation(&e1));
        // 50 swaps move at most 100 samples.
        let moved = |o: &[usize]| o.iter().enumerate().filter(|(k, v)| k != *v).count();
        assert!((1..=100).contains(&moved(&e0)), "{}", moved(&e0));
        assert!(moved(&e1) > moved(&e0) / 2);
        assert_eq!(DataOrder::IN_ORDER.permutation(4, 3, 9, None), [0, 1, 2, 3]);
    }
}
