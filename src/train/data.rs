//! Dataset splits as Burn datasets, and the batcher that turns their samples into input spike
//! trains (images through the rate encoder, spike-train datasets as they are).

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::prelude::*;
use rayon::prelude::*;

use super::boosting::Boosting;
use crate::datasets::{AugmentDef, EncodingMode, RateEncoder, Samples};
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
    /// 0-based epoch it is read in (stamped by [`super::ordered::OrderedDataset`]; seeds
    /// fresh trains and augmentation fields).
    pub epoch: u64,
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
            epoch: 0,
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
    /// The trains already on a device: uploaded with the batch on a loader thread (CubeCL
    /// devices), so that the training step uploads nothing.
    on_device: Option<SpikeTrains>,
}

impl InputSpikes {
    /// Wraps per-sample rasters (all with the same steps and neurons).
    pub fn new(rasters: Vec<SpikeRaster>) -> Self {
        Self {
            rasters: Arc::new(rasters),
            on_device: None,
        }
    }

    /// The same trains, uploaded to `device` now unless it is a CPU device (where the
    /// event lists are the smaller form to queue).
    pub fn uploaded_to(self, device: &Device) -> Self {
        if crate::backend::on_host(device) {
            return self;
        }
        let trains = SpikeTrains::from_rasters(&self.rasters, device);
        Self {
            on_device: Some(trains),
            ..self
        }
    }

    /// The trains as [`SpikeTrains`] (counts and bit-packed words) on `device` (the uploaded
    /// ones when they are there).
    pub fn to_trains(&self, device: &Device) -> SpikeTrains {
        match &self.on_device {
            Some(trains) if trains.device() == *device => trains.clone(),
            _ => SpikeTrains::from_rasters(&self.rasters, device),
        }
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

impl SpikeBatch {
    /// The batch cut into consecutive shards of `sizes` samples (summing to its size).
    pub fn split(self, sizes: &[usize]) -> Vec<SpikeBatch> {
        if sizes.len() == 1 {
            return vec![self];
        }
        let mut start = 0;
        sizes
            .iter()
            .map(|&n| {
                let range = start..start + n;
                start += n;
                SpikeBatch {
                    spikes: InputSpikes::new(self.spikes.rasters[range.clone()].to_vec()),
                    labels: self.labels.clone().slice(range.clone()),
                    indices: self.indices[range.clone()].to_vec(),
                    sample_weight: self.sample_weight.clone().map(|w| w.slice(range)),
                }
            })
            .collect()
    }
}

/// Encodes images into spike-train batches (event lists) with the rate encoder, optionally
/// distorting them first.
///
/// A batch's epoch is the one its items are stamped with ([`super::ordered::OrderedDataset`]),
/// so everything drawn per epoch is reproducible from (seed, epoch), after `--resume` too.
///
/// With [`EncodingMode::FixedPerSample`] a sample always gets the same trains (the authors'
/// choice, realised by seeding from the sample index: nothing is stored). With
/// [`EncodingMode::FreshPerEpoch`] every epoch gets new trains. With augmentation (training
/// split only) every image is distorted by its epoch's (or its own) field and then encoded
/// afresh in every epoch, as the authors' CNN run did (spec §1.2).
#[derive(Clone, Debug)]
pub struct SpikeBatcher {
    encoder: RateEncoder,
    augment: Option<AugmentDef>,
    boosting: Option<Arc<Boosting>>,
}

impl SpikeBatcher {
    /// A batcher with the given encoder.
    pub fn new(encoder: RateEncoder) -> Self {
        Self {
            encoder,
            augment: None,
            boosting: None,
        }
    }

    /// Distorts every image before encoding it, and encodes afresh every epoch.
    pub fn with_augmentation(self, augment: AugmentDef) -> Self {
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
        // Burn's loader never mixes epochs in a batch: its epoch is that of its items.
        let epoch = items.first().map_or(0, |i| i.epoch);
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
        // On a device the step's inputs are all uploaded here: sample weights of 1 too.
        let on_host = crate::backend::on_host(device);
        let sample_weight = match &self.boosting {
            Some(boost) => Some(boost.weights_of(&indices)),
            None => (!on_host).then(|| vec![1.0f32; b]),
        }
        .map(|w| Tensor::from_data(TensorData::new(w, [b]), device));
        SpikeBatch {
            spikes: InputSpikes::new(rasters).uploaded_to(device),
            labels: Tensor::from_data(TensorData::new(labels, [b]), device),
            indices,
            sample_weight,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests read tensors directly")]
mod tests {
    use super::*;
    use crate::datasets::FieldMode;

    fn items(epoch: u64) -> Vec<SampleItem> {
        (0..2)
            .map(|k| SampleItem {
                input: SampleInput::Pixels(
                    (0..784).map(|i| ((i * 37 + k * 11) % 256) as u8).collect(),
                ),
                label: k as u8,
                index: k as u64,
                epoch,
            })
            .collect()
    }

    fn spikes(batcher: &SpikeBatcher, epoch: u64) -> Vec<f32> {
        let batch = batcher.batch(items(epoch), &Device::flex());
        batch
            .spikes
            .to_tensor(&Device::flex())
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 spikes")
    }

    #[test]
    fn the_items_epoch_draws_the_distortion_and_spikes() {
        let encoder = RateEncoder::new(20, 4, EncodingMode::FixedPerSample);
        let run = SpikeBatcher::new(encoder).with_augmentation(AugmentDef {
            scale: 0.12,
            rotation_deg: 12.0,
            elastic_alpha: 3.4,
            elastic_sigma: 4.0,
            field: FieldMode::PerEpoch,
        });
        // Same items in the same epoch: same distortion and spikes; a new epoch: new ones.
        assert_eq!(spikes(&run, 0), spikes(&run, 0));
        assert_ne!(spikes(&run, 0), spikes(&run, 1));
    }
}
