//! Dataset splits as Burn datasets, and the batcher that turns their samples into input spike
//! trains (images through the rate encoder, spike-train datasets as they are).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::prelude::*;
use rayon::prelude::*;

use super::boosting::Boosting;
use crate::datasets::{AugmentConfig, EncodingMode, RateEncoder, Samples};
use crate::spike_trains::SpikeTrains;
use crate::spikes::SpikeRaster;

/// The input of one sample.
#[derive(Clone, Debug)]
pub enum SampleInput {
    /// Pixels, row-major (rate-encoded by the batcher).
    Pixels(Vec<u8>),
    /// Spike trains as they are.
    Spikes(SpikeRaster),
}

/// One sample of a dataset split.
#[derive(Clone, Debug)]
pub struct SampleItem {
    /// Its input.
    pub input: SampleInput,
    /// Class.
    pub label: u8,
    /// Position in the split (seeds the sample's spike trains).
    pub index: u64,
}

/// A loaded split as a Burn [`Dataset`].
#[derive(Clone, Debug)]
pub struct SampleDataset {
    set: Arc<Samples>,
}

impl SampleDataset {
    /// Wraps a loaded split.
    pub fn new(set: Samples) -> Self {
        Self { set: Arc::new(set) }
    }
}

impl Dataset<SampleItem> for SampleDataset {
    fn get(&self, index: usize) -> Result<SampleItem, DatasetError> {
        if index >= self.set.len() {
            return Err(DatasetError::new(std::io::Error::other(format!(
                "index {index} out of bounds for {} samples",
                self.set.len()
            ))));
        }
        let input = match &*self.set {
            Samples::Images(s) => SampleInput::Pixels(s.images.image(index).to_vec()),
            Samples::Spikes(s) => SampleInput::Spikes(s.rasters[index].clone()),
        };
        Ok(SampleItem {
            input,
            label: self.set.labels()[index],
            index: index as u64,
        })
    }

    fn len(&self) -> usize {
        self.set.len()
    }
}

/// The input spike trains of a batch as per-sample event lists: a batch of 16 MNIST samples
/// at T = 400 holds ~0.5 MB of events instead of a 20 MB dense tensor, which matters because
/// Burn's data loader queues up to 100 batches ahead of training.
#[derive(Clone, Debug)]
pub struct InputSpikes {
    rasters: Arc<Vec<SpikeRaster>>,
}

impl InputSpikes {
    /// Wraps per-sample rasters (all with the same steps and neurons).
    pub fn new(rasters: Vec<SpikeRaster>) -> Self {
        Self {
            rasters: Arc::new(rasters),
        }
    }

    /// The trains as [`SpikeTrains`] (counts and bit-packed words) on `device`.
    pub fn to_trains(&self, device: &Device) -> SpikeTrains {
        SpikeTrains::from_rasters(&self.rasters, device)
    }

    /// The dense spike trains `[B, T, N]` (0/1) on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<3> {
        let (steps, neurons) = self
            .rasters
            .first()
            .map_or((0, 0), |r| (r.steps(), r.neurons()));
        let dense = crate::spikes::rasters_to_dense(&self.rasters);
        Tensor::from_data(
            TensorData::new(dense, [self.rasters.len(), steps, neurons]),
            device,
        )
    }
}

/// A batch of input spike trains `[B, T, N]` with labels `[B]`.
#[derive(Clone, Debug)]
pub struct SpikeBatch {
    /// Input spike trains.
    pub spikes: InputSpikes,
    /// Classes.
    pub labels: Tensor<1, Int>,
    /// Positions of the samples in their split.
    pub indices: Vec<u64>,
    /// Boosting weights `[B]` of training samples (`None`: all 1).
    pub sample_weight: Option<Tensor<1>>,
}

/// Encodes images into spike-train batches (event lists) with the rate encoder, optionally
/// distorting them first.
///
/// The batcher counts the batches it makes; with [`SpikeBatcher::with_epochs`] (the number of
/// batches of one pass and the 0-based epoch of the first one, nonzero after `--resume`) the
/// count gives the epoch, so everything drawn per epoch is reproducible from (seed, epoch).
/// Without it every batch counts as a new epoch.
///
/// With [`EncodingMode::FixedPerSample`] a sample always gets the same trains (the authors'
/// choice, realised by seeding from the sample index: nothing is stored). With
/// [`EncodingMode::FreshPerEpoch`] every epoch gets new trains. With augmentation (training
/// split only) every image is distorted by its epoch's (or its own) field and then encoded
/// afresh in every epoch, as the authors' CNN run did (spec §1.2).
#[derive(Clone, Debug)]
pub struct SpikeBatcher {
    encoder: RateEncoder,
    batches: Arc<AtomicU64>,
    batches_per_epoch: u64,
    first_epoch: u64,
    augment: Option<AugmentConfig>,
    boosting: Option<Arc<Boosting>>,
}

impl SpikeBatcher {
    /// A batcher with the given encoder.
    pub fn new(encoder: RateEncoder) -> Self {
        Self {
            encoder,
            batches: Arc::new(AtomicU64::new(0)),
            batches_per_epoch: 1,
            first_epoch: 0,
            augment: None,
            boosting: None,
        }
    }

    /// Epochs of `batches_per_epoch` batches, the first being 0-based epoch `first_epoch`.
    pub fn with_epochs(self, batches_per_epoch: usize, first_epoch: usize) -> Self {
        Self {
            batches_per_epoch: batches_per_epoch.max(1) as u64,
            first_epoch: first_epoch as u64,
            ..self
        }
    }

    /// The same batcher with the first `batches` batches of its first epoch made (a run
    /// resumed mid-epoch).
    pub fn skipping(self, batches: usize) -> Self {
        Self {
            batches: Arc::new(AtomicU64::new(batches as u64)),
            ..self
        }
    }

    /// Distorts every image before encoding it, and encodes afresh every epoch.
    pub fn with_augmentation(self, augment: AugmentConfig) -> Self {
        Self {
            encoder: RateEncoder {
                mode: EncodingMode::FreshPerEpoch,
                ..self.encoder
            },
            augment: Some(augment),
            ..self
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

impl Batcher<SampleItem, SpikeBatch> for SpikeBatcher {
    fn batch(&self, items: Vec<SampleItem>, device: &Device) -> SpikeBatch {
        let b = items.len();
        let batch = self.batches.fetch_add(1, Ordering::Relaxed);
        let epoch = self.first_epoch + batch / self.batches_per_epoch;
        let labels: Vec<i64> = items.iter().map(|i| i.label as i64).collect();
        let indices: Vec<u64> = items.iter().map(|i| i.index).collect();
        // Items are consumed: recorded spike trains move into the batch without a copy.
        // Samples are encoded on all cores (each from its own seed: the same trains in any
        // order), in batch order.
        let rasters = items
            .into_par_iter()
            .with_max_len(1)
            .map(|item| match (item.input, &self.augment) {
                (SampleInput::Spikes(raster), _) => raster,
                (SampleInput::Pixels(pixels), Some(augment)) => {
                    let mut distorted = vec![0.0; pixels.len()];
                    augment
                        .field_for(self.encoder.seed, epoch, item.index)
                        .apply(&pixels, &mut distorted);
                    self.encoder
                        .encode_intensities_raster(&distorted, item.index, epoch)
                }
                (SampleInput::Pixels(pixels), None) => {
                    self.encoder.encode_raster(&pixels, item.index, epoch)
                }
            })
            .collect();
        let sample_weight = self.boosting.as_ref().map(|boost| {
            Tensor::from_data(TensorData::new(boost.weights_of(&indices), [b]), device)
        });
        SpikeBatch {
            spikes: InputSpikes::new(rasters),
            labels: Tensor::from_data(TensorData::new(labels, [b]), device),
            indices,
            sample_weight,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::FieldMode;

    fn items() -> Vec<SampleItem> {
        (0..2)
            .map(|k| SampleItem {
                input: SampleInput::Pixels(
                    (0..784).map(|i| ((i * 37 + k * 11) % 256) as u8).collect(),
                ),
                label: k as u8,
                index: k as u64,
            })
            .collect()
    }

    fn spikes(batcher: &SpikeBatcher) -> Vec<f32> {
        let batch = batcher.batch(items(), &Device::flex());
        batch
            .spikes
            .to_tensor(&Device::flex())
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 spikes")
    }

    fn augmented(first_epoch: usize) -> SpikeBatcher {
        let encoder = RateEncoder::new(20, 4, EncodingMode::FixedPerSample);
        SpikeBatcher::new(encoder)
            .with_epochs(2, first_epoch)
            .with_augmentation(AugmentConfig {
                scale: 0.12,
                rotation_deg: 12.0,
                elastic_alpha: 3.4,
                elastic_sigma: 4.0,
                field: FieldMode::PerEpoch,
            })
    }

    #[test]
    fn epochs_follow_the_batch_count_and_survive_a_resume() {
        let run = augmented(0);
        let epoch0 = [spikes(&run), spikes(&run)];
        let epoch1 = spikes(&run);
        // Same items in the same epoch: same distortion and spikes; a new epoch: new ones.
        assert_eq!(epoch0[0], epoch0[1]);
        assert_ne!(epoch0[0], epoch1);
        // A run resumed at epoch 1 draws what the first run drew in epoch 1, also when it
        // resumes after the first batch of epoch 0.
        assert_eq!(spikes(&augmented(1)), epoch1);
        let mid = augmented(0).skipping(1);
        assert_eq!(spikes(&mid), epoch0[1]);
        assert_eq!(spikes(&mid), epoch1);
    }
}
