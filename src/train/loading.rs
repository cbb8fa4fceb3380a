//! A split as burn-train reads it: loaded, ordered per epoch, batched into spike trains.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail};
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::prelude::*;

use super::boosting::Boosting;
use super::data::{SampleDataset, SpikeBatch, SpikeBatcher};
use super::ordered::OrderedDataset;
use super::position::Position;
use super::resumed_loader::ResumedLoader;
use super::shards::RankSlice;
use crate::datasets::{AugmentDef, DataOrder, RateEncoder, Samples, Split, load_samples};
use crate::experiment::ExperimentDef;

/// Loads a split and keeps the first `limit` samples. With `validation_samples = N` the last
/// N training samples are the test split, and the training split is the samples before them.
pub fn load_split(exp: &ExperimentDef, data_dir: &Path, split: Split) -> Result<Samples> {
    let source = match exp.validation_samples {
        Some(_) => Split::Train,
        None => split,
    };
    let mut set = load_samples(
        exp.dataset,
        data_dir,
        source,
        exp.steps,
        &exp.input_options(),
    )?;
    if let Some(held) = exp.validation_samples {
        if held >= set.len() {
            bail!(
                "validation_samples: {held} of the {} training samples of {} would leave none \
                 to train on",
                set.len(),
                exp.dataset
            );
        }
        let validation = set.split_off(set.len() - held);
        if split == Split::Test {
            set = validation;
        }
    }
    let limit = match split {
        Split::Train => exp.train_samples,
        Split::Test => exp.test_samples,
    };
    if let Some(n) = limit {
        set.truncate(n);
    }
    if set.is_empty() {
        let name = match split {
            Split::Train => "train",
            Split::Test => "test",
        };
        bail!("{name} split of {} is empty", exp.dataset);
    }
    Ok(set)
}

/// How a split is loaded: the training split is shuffled, may be augmented and boosted.
pub struct SplitLoading {
    /// Where the first pass starts (after `--resume`: where the checkpoint left off).
    pub start: Position,
    /// The order of every epoch.
    pub order: DataOrder,
    /// Distortion of the images before encoding.
    pub augmentation: Option<AugmentDef>,
    /// Sample weights.
    pub boosting: Option<Arc<Boosting>>,
    /// `(rank, ranks)`: this rank reads its part of every global batch.
    pub rank: (usize, usize),
}

impl SplitLoading {
    /// The test split from 0-based epoch `first_epoch` on: in order, as it is.
    pub fn test(first_epoch: usize) -> Self {
        Self {
            start: Position::epoch_start(first_epoch),
            order: DataOrder::IN_ORDER,
            augmentation: None,
            boosting: None,
            rank: (0, 1),
        }
    }

    /// Rank `rank` of `ranks` reads its part of every global batch.
    pub fn on_rank(self, rank: usize, ranks: usize) -> Self {
        Self {
            rank: (rank, ranks),
            ..self
        }
    }
}

/// The data loader of `set` encoded as the experiment says.
pub fn split_loader(
    exp: &ExperimentDef,
    set: Samples,
    device: &Device,
    how: SplitLoading,
) -> Arc<dyn DataLoader<SpikeBatch>> {
    let encoder =
        RateEncoder::new(exp.steps, exp.seed, exp.encoding).with_process(exp.spike_process);
    let mut batcher = SpikeBatcher::new(encoder);
    if let Some(a) = how.augmentation {
        batcher = batcher.with_augmentation(a);
    }
    if let Some(b) = how.boosting {
        batcher = batcher.with_boosting(b);
    }
    let (rank, ranks) = how.rank;
    let slice = RankSlice {
        n: set.len(),
        batch: exp.batch_size,
        parts: ranks,
        rank,
    };
    // One worker: `OrderedDataset` relies on the items being read in turn.
    let done_items = how.start.batch * slice.local_batch();
    let mut dataset = OrderedDataset::new(
        SampleDataset::new(set),
        how.order,
        exp.seed,
        how.start.epoch,
    );
    if ranks > 1 {
        dataset = dataset.sliced(slice);
    }
    let full = DataLoaderBuilder::new(batcher)
        .batch_size(slice.local_batch())
        .num_workers(1)
        .set_device(device.clone())
        .build(dataset.skipping(done_items));
    if done_items == 0 {
        full
    } else {
        Arc::new(ResumedLoader::new(full, done_items))
    }
}
