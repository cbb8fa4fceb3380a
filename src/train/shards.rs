//! How a global batch is split among workers (ranks of an `mpirun` job, or the virtual
//! workers of one process): into parts as even as possible, the first `n % parts` one sample
//! larger, in batch order. A rank reads its part of every global batch of an epoch through a
//! [`RankSlice`].

use std::ops::Range;

/// The sizes of `parts` parts of `n` items: as even as possible, the larger ones first.
pub fn part_sizes(n: usize, parts: usize) -> Vec<usize> {
    (0..parts).map(|p| part_range(n, parts, p).len()).collect()
}

/// The items of part `p` of `n` items split into `parts`.
pub fn part_range(n: usize, parts: usize, p: usize) -> Range<usize> {
    let (base, extra) = (n / parts, n % parts);
    let start = p * base + p.min(extra);
    start..start + base + usize::from(p < extra)
}

/// Why `n` samples in global batches of `batch` cannot be split among `parts` workers
/// (every worker must get at least one sample of every batch, or the ranks would run
/// different numbers of steps).
pub fn check_split(what: &str, n: usize, batch: usize, parts: usize) -> Result<(), String> {
    if parts == 0 {
        return Err("the number of workers must be at least 1".into());
    }
    if batch < parts {
        return Err(format!(
            "batch_size {batch} cannot be split among {parts} workers (every worker needs at \
             least one sample of every batch)"
        ));
    }
    let last = n % batch;
    if last != 0 && last < parts {
        return Err(format!(
            "the last batch of the {what} split ({n} samples, batch_size {batch}) has {last} \
             samples, fewer than the {parts} workers; choose another batch_size or sample count"
        ));
    }
    Ok(())
}

/// Rank `rank`'s part of every global batch of an epoch of `n` samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RankSlice {
    /// Samples in an epoch.
    pub n: usize,
    /// The global batch size.
    pub batch: usize,
    /// Workers.
    pub parts: usize,
    /// This worker.
    pub rank: usize,
}

impl RankSlice {
    /// The whole epoch (one worker).
    pub fn whole(n: usize, batch: usize) -> Self {
        Self {
            n,
            batch,
            parts: 1,
            rank: 0,
        }
    }

    /// This rank's samples of a full global batch (its local batch size).
    pub fn local_batch(&self) -> usize {
        part_range(self.batch, self.parts, self.rank).len()
    }

    /// This rank's samples in an epoch.
    pub fn len(&self) -> usize {
        let full = self.n / self.batch;
        full * self.local_batch() + part_range(self.n % self.batch, self.parts, self.rank).len()
    }

    /// Whether this rank reads nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position in the epoch's order of this rank's `k`-th sample.
    pub fn position(&self, k: usize) -> usize {
        let (local, full) = (self.local_batch(), self.n / self.batch);
        let (batch, offset) = (k / local, k % local);
        if batch < full {
            batch * self.batch + part_range(self.batch, self.parts, self.rank).start + offset
        } else {
            let last = self.n % self.batch;
            full * self.batch + part_range(last, self.parts, self.rank).start + (k - full * local)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_even_and_in_order() {
        assert_eq!(part_sizes(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(part_sizes(16, 4), vec![4, 4, 4, 4]);
        assert_eq!(part_range(10, 4, 2), 6..8);
        assert_eq!(part_sizes(5, 1), vec![5]);
    }

    /// Every rank's reads, batch by batch, are exactly its part of every global batch, and
    /// the ranks together read every position once.
    #[test]
    fn rank_slices_cover_the_epoch_batch_by_batch() {
        for (n, batch, parts) in [(23, 10, 3), (20, 10, 4), (64, 16, 4), (7, 7, 1), (30, 8, 3)] {
            check_split("train", n, batch, parts).unwrap();
            let mut seen = vec![0; n];
            for rank in 0..parts {
                let s = RankSlice {
                    n,
                    batch,
                    parts,
                    rank,
                };
                let reads: Vec<usize> = (0..s.len()).map(|k| s.position(k)).collect();
                for (g, chunk) in reads.chunks(s.local_batch()).enumerate() {
                    let size = batch.min(n - g * batch);
                    let part = part_range(size, parts, rank);
                    let expected: Vec<usize> = part.map(|i| g * batch + i).collect();
                    assert_eq!(
                        chunk, expected,
                        "n {n} batch {batch} parts {parts} rank {rank}"
                    );
                }
                for p in reads {
                    seen[p] += 1;
                }
            }
            assert!(seen.iter().all(|&c| c == 1));
        }
    }

    #[test]
    fn splits_that_would_leave_a_worker_idle_are_refused() {
        assert!(check_split("train", 100, 2, 4).is_err());
        let e = check_split("test", 66, 16, 4).unwrap_err();
        assert!(e.contains("2 samples"), "{e}");
        assert!(check_split("test", 68, 16, 4).is_ok());
        assert!(check_split("test", 64, 16, 4).is_ok());
    }
}
