//! One split of a dataset that arrives as spike trains: recorded events (N-MNIST) or audio
//! encoded by the auditory front end (spoken digits).

use crate::spikes::SpikeRaster;

/// Spike trains and labels of one split.
#[derive(Clone, Debug, PartialEq)]
pub struct SpikeSet {
    /// One raster per sample, all with the same steps and input channels.
    pub rasters: Vec<SpikeRaster>,
    /// One label per sample, each `< num_classes`.
    pub labels: Vec<u8>,
    /// Number of classes.
    pub num_classes: usize,
}

impl SpikeSet {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Input channels of every sample (0 for an empty set).
    pub fn channels(&self) -> usize {
        self.rasters.first().map_or(0, SpikeRaster::neurons)
    }

    /// Keeps only the first `n` samples (no-op when `n >= len`).
    pub fn truncate(&mut self, n: usize) {
        self.rasters.truncate(n);
        self.labels.truncate(n);
    }

    /// Splits the set at `at` (clamped to its length): keeps the samples before it, returns
    /// the rest.
    pub fn split_off(&mut self, at: usize) -> Self {
        let at = at.min(self.rasters.len());
        Self {
            rasters: self.rasters.split_off(at),
            labels: self.labels.split_off(at),
            num_classes: self.num_classes,
        }
    }
}
