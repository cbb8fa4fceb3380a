//! Image datasets as Burn datasets, and the batcher that turns images into spike trains.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::prelude::*;

use super::boosting::Boosting;
use crate::datasets::{EncodingMode, ImageSet, RateEncoder};

/// One image of a dataset split.
#[derive(Clone, Debug)]
pub struct ImageItem {
    /// Pixels, row-major.
    pub pixels: Vec<u8>,
    /// Class.
    pub label: u8,
    /// Position in the split (seeds the sample's spike trains).
    pub index: u64,
}

/// A loaded image split as a Burn [`Dataset`].
#[derive(Clone, Debug)]
pub struct ImageDataset {
    set: Arc<ImageSet>,
}

impl ImageDataset {
    /// Wraps a loaded split.
    pub fn new(set: ImageSet) -> Self {
        Self { set: Arc::new(set) }
    }
}

impl Dataset<ImageItem> for ImageDataset {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        if index >= self.set.len() {
            return Err(DatasetError::new(std::io::Error::other(format!(
                "index {index} out of bounds for {} samples",
                self.set.len()
            ))));
        }
        Ok(ImageItem {
            pixels: self.set.images.image(index).to_vec(),
            label: self.set.labels[index],
            index: index as u64,
        })
    }

    fn len(&self) -> usize {
        self.set.len()
    }
}

/// A batch of input spike trains `[B, T, N]` (0/1) with labels `[B]`.
#[derive(Clone, Debug)]
pub struct SpikeBatch {
    /// Input spike trains.
    pub spikes: Tensor<3>,
    /// Classes.
    pub labels: Tensor<1, Int>,
    /// Positions of the samples in their split.
    pub indices: Vec<u64>,
    /// Boosting weights `[B]` of training samples (`None`: all 1).
    pub sample_weight: Option<Tensor<1>>,
}

/// Encodes images into dense spike-train batches with the rate encoder.
///
/// With [`EncodingMode::FixedPerSample`] a sample always gets the same trains (the authors'
/// choice, realised by seeding from the sample index: nothing is stored). With
/// [`EncodingMode::FreshPerEpoch`] every draw of a sample gets new trains.
#[derive(Clone, Debug)]
pub struct SpikeBatcher {
    encoder: RateEncoder,
    draws: Arc<AtomicU64>,
    boosting: Option<Arc<Boosting>>,
}

impl SpikeBatcher {
    /// A batcher with the given encoder.
    pub fn new(encoder: RateEncoder) -> Self {
        Self {
            encoder,
            draws: Arc::new(AtomicU64::new(0)),
            boosting: None,
        }
    }

    /// Attaches boosting weights to every batch (training split only).
    pub fn with_boosting(self, boosting: Arc<Boosting>) -> Self {
        Self {
            boosting: Some(boosting),
            ..self
        }
    }
}

impl Batcher<ImageItem, SpikeBatch> for SpikeBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> SpikeBatch {
        let b = items.len();
        let steps = self.encoder.steps;
        let n = items.first().map_or(0, |i| i.pixels.len());
        let draw = match self.encoder.mode {
            EncodingMode::FixedPerSample => 0,
            EncodingMode::FreshPerEpoch => self.draws.fetch_add(1, Ordering::Relaxed),
        };
        let mut dense = vec![0.0f32; b * steps * n];
        for (item, out) in items.iter().zip(dense.chunks_exact_mut(steps * n.max(1))) {
            self.encoder
                .encode_into(&item.pixels, item.index, draw, out);
        }
        let labels: Vec<i64> = items.iter().map(|i| i.label as i64).collect();
        let indices: Vec<u64> = items.iter().map(|i| i.index).collect();
        let sample_weight = self.boosting.as_ref().map(|boost| {
            Tensor::from_data(TensorData::new(boost.weights_of(&indices), [b]), device)
        });
        SpikeBatch {
            spikes: Tensor::from_data(TensorData::new(dense, [b, steps, n]), device),
            labels: Tensor::from_data(TensorData::new(labels, [b]), device),
            indices,
            sample_weight,
        }
    }
}
