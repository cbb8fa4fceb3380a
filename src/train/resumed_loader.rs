//! The training data loader of a run resumed mid-epoch: its first pass yields only the batches
//! of that epoch not yet trained, every later pass the whole split.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::data::dataloader::{DataLoader, DataLoaderIterator};
use burn::prelude::Device;

/// A loader whose first [`DataLoader::iter`] is `rest`'s, the following ones `full`'s.
///
/// `rest` is a slice of `full` (the same dataset and batcher), so everything they count
/// across passes (the epoch of the data order and of the encoding) runs on.
pub struct ResumedLoader<O> {
    full: Arc<dyn DataLoader<O>>,
    rest: Arc<dyn DataLoader<O>>,
    rest_done: AtomicBool,
}

impl<O> ResumedLoader<O> {
    /// `full`, whose first pass skips the first `skip_items` items.
    pub fn new(full: Arc<dyn DataLoader<O>>, skip_items: usize) -> Self {
        let rest = full.slice(skip_items, full.num_items());
        Self {
            full,
            rest,
            rest_done: AtomicBool::new(false),
        }
    }
}

impl<O: 'static> DataLoader<O> for ResumedLoader<O> {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<O> + 'a> {
        if self.rest_done.swap(true, Ordering::Relaxed) {
            self.full.iter()
        } else {
            self.rest.iter()
        }
    }

    fn num_items(&self) -> usize {
        self.full.num_items()
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<O>> {
        Arc::new(Self {
            full: self.full.to_device(device),
            rest: self.rest.to_device(device),
            rest_done: AtomicBool::new(self.rest_done.load(Ordering::Relaxed)),
        })
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<O>> {
        self.full.slice(start, end)
    }
}
