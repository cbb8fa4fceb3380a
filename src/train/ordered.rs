//! The data side of a run's clock: a split read in its epoch order
//! ([`crate::datasets::DataOrder`]), every item stamped with the 0-based epoch it belongs to.
//!
//! Burn's data loader (one worker) reads `0..len` in turn every epoch and may run ahead of the
//! training steps, so the data side counts its own reads: the epoch of a read is the number of
//! items read so far divided by `len`, counted from the run's start position (the checkpoint
//! after `--resume`). Everything downstream (encoding, augmentation) takes the epoch from the
//! item; the step side of the clock is [`super::hooks::StepClock`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataset::{Dataset, DatasetError};

use super::data::SampleItem;
use super::shards::RankSlice;
use crate::datasets::DataOrder;

/// A dataset visited in a [`DataOrder`]: the `k`-th `get` of an epoch returns sample
/// `order[k]` of that epoch, stamped with that epoch.
pub struct OrderedDataset<D> {
    inner: D,
    order: DataOrder,
    seed: u64,
    first_epoch: u64,
    slice: Option<RankSlice>,
    reads: AtomicU64,
    current: Mutex<Option<(u64, Vec<usize>)>>,
}

impl<D> OrderedDataset<D> {
    /// `inner` in `order`, the first pass being 0-based epoch `first_epoch`.
    pub fn new(inner: D, order: DataOrder, seed: u64, first_epoch: usize) -> Self {
        Self {
            inner,
            order,
            seed,
            first_epoch: first_epoch as u64,
            slice: None,
            reads: AtomicU64::new(0),
            current: Mutex::new(None),
        }
    }

    /// Only `slice`'s part of every global batch (a rank of a data-parallel run): its `k`-th
    /// read of an epoch is position `slice.position(k)` of the epoch's order.
    pub fn sliced(self, slice: RankSlice) -> Self {
        Self {
            slice: Some(slice),
            ..self
        }
    }

    /// The same dataset with the first `items` reads of its first epoch done (a run resumed
    /// mid-epoch reads the rest of that epoch through a slice starting at `items`).
    pub fn skipping(self, items: usize) -> Self {
        Self {
            reads: AtomicU64::new(items as u64),
            ..self
        }
    }

    /// The epoch of the next read and the sample it reads at `index` (of `len` per epoch in
    /// the epoch's order of all `len` samples; a slice reads its part of it).
    fn next_read(&self, index: usize, len: usize) -> (u64, usize) {
        let read = self.reads.fetch_add(1, Ordering::Relaxed);
        let (reads_per_epoch, index) = match &self.slice {
            Some(s) => (s.len(), s.position(index)),
            None => (len, index),
        };
        let epoch = self.first_epoch + read / reads_per_epoch as u64;
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let sample = match current.as_ref() {
            Some((e, order)) if *e == epoch => order[index],
            _ => {
                let previous = current
                    .take()
                    .filter(|(e, _)| *e + 1 == epoch)
                    .map(|(_, o)| o);
                let order = self.order.permutation(len, self.seed, epoch, previous);
                let sample = order[index];
                *current = Some((epoch, order));
                sample
            }
        };
        (epoch, sample)
    }
}

impl<D: Dataset<SampleItem>> Dataset<SampleItem> for OrderedDataset<D> {
    fn get(&self, index: usize) -> Result<SampleItem, DatasetError> {
        let len = self.inner.len();
        if index >= self.len() {
            return Err(DatasetError::new(std::io::Error::other(format!(
                "index {index} out of bounds for {len} samples"
            ))));
        }
        let (epoch, sample) = self.next_read(index, len);
        let item = self.inner.get(sample)?;
        Ok(SampleItem { epoch, ..item })
    }

    fn len(&self) -> usize {
        self.slice.map_or(self.inner.len(), |s| s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::DataOrderKind;
    use crate::train::data::SampleInput;

    /// `len` empty samples whose index is their identity.
    struct Indices(usize);

    impl Dataset<SampleItem> for Indices {
        fn get(&self, index: usize) -> Result<SampleItem, DatasetError> {
            Ok(SampleItem {
                input: SampleInput::Pixels(Vec::new()),
                label: 0,
                index: index as u64,
                epoch: 0,
            })
        }

        fn len(&self) -> usize {
            self.0
        }
    }

    /// (sample, epoch) of reads `range` of a pass.
    fn read(d: &OrderedDataset<Indices>, range: std::ops::Range<usize>) -> Vec<(usize, u64)> {
        range
            .map(|k| {
                let item = d.get(k).unwrap();
                (item.index as usize, item.epoch)
            })
            .collect()
    }

    /// Reading epoch after epoch gives each epoch's order, stamped with its epoch; a dataset
    /// that starts at a later epoch (a resumed run) reads what the first one read there.
    #[test]
    fn the_dataset_follows_the_epochs_and_resumes() {
        let order = DataOrder {
            kind: DataOrderKind::PairSwaps,
            swaps: 7,
        };
        let run = OrderedDataset::new(Indices(20), order, 5, 0);
        let epochs: Vec<Vec<(usize, u64)>> = (0..3).map(|_| read(&run, 0..20)).collect();
        for (e, got) in epochs.iter().enumerate() {
            let expected = order.permutation(20, 5, e as u64, None);
            assert_eq!(
                got,
                &expected
                    .into_iter()
                    .map(|s| (s, e as u64))
                    .collect::<Vec<_>>(),
                "epoch {e}"
            );
        }
        let resumed = OrderedDataset::new(Indices(20), order, 5, 2);
        assert_eq!(read(&resumed, 0..20), epochs[2]);
        assert!(resumed.get(20).is_err());
        // Resumed mid-epoch: the rest of epoch 1, then epoch 2.
        let mid = OrderedDataset::new(Indices(20), order, 5, 1).skipping(8);
        assert_eq!(read(&mid, 8..20), epochs[1][8..]);
        assert_eq!(read(&mid, 0..20), epochs[2]);
        // Two ranks, global batch 6 (20 = 3 × 6 + 2): rank 1 reads positions 3–5, 9–11,
        // 15–17 and 19 of every epoch's order.
        let slice = RankSlice {
            n: 20,
            batch: 6,
            parts: 2,
            rank: 1,
        };
        let rank = OrderedDataset::new(Indices(20), order, 5, 0).sliced(slice);
        assert_eq!(rank.len(), 10);
        for epoch in &epochs {
            let expected: Vec<(usize, u64)> = [3, 4, 5, 9, 10, 11, 15, 16, 17, 19]
                .map(|p| epoch[p])
                .to_vec();
            assert_eq!(read(&rank, 0..10), expected);
        }
    }
}
