//! Spike trains of one sample in the two layouts the kernels need.
//!
//! A [`SpikeRaster`] stores the events of one sample sorted by time step (a CSR layout:
//! `offsets[t]..offsets[t + 1]` indexes the neurons that fired at step `t`, ascending). The
//! event-driven forward pass walks it step by step; [`SpikeRaster::times`] gives the per-neuron
//! view (ascending spike steps) that the S-PSP kernels use.
//!
//! Between layers, and across the Burn boundary, trains travel **bit-packed**: per sample and
//! time step, [`words_per_step`] 32-bit words whose bit `k` of word `w` says whether neuron
//! `32·w + k` fired ([`SpikeRaster::from_words`], [`SpikeRaster::write_words`]). That is 32×
//! smaller than a dense `f32` tensor and is read back in `O(words + spikes)`.
//!
//! A batch is a slice of rasters, one per sample; its codecs ([`BatchShape`],
//! [`rasters_from_words`] / [`rasters_to_words`], [`rasters_from_dense`] /
//! [`rasters_to_dense`], [`rasters_counts`]) convert it from and to the flat layouts of a
//! batch's tensors, samples in parallel.

use multiversion::multiversion;
use rayon::prelude::*;

/// Number of 32-bit words that hold one time step of `neurons` neurons, bit-packed.
pub fn words_per_step(neurons: usize) -> usize {
    neurons.div_ceil(32)
}

/// Events of one sample, grouped by time step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpikeRaster {
    steps: usize,
    neurons: usize,
    offsets: Vec<u32>,
    ids: Vec<u32>,
}

impl SpikeRaster {
    /// An empty raster of `steps` time steps over `neurons` neurons.
    pub fn empty(steps: usize, neurons: usize) -> Self {
        Self {
            steps,
            neurons,
            offsets: vec![0; steps + 1],
            ids: Vec::new(),
        }
    }

    /// Reads a dense time-major raster (`dense[t * neurons + n]`, any value `> 0.5` is a spike).
    /// Each run of 16 values becomes a bit mask with one vectorisable comparison; only its set
    /// bits are visited (rasters are mostly zeros, so there are no per-value branches).
    pub fn from_dense(dense: &[f32], steps: usize, neurons: usize) -> Self {
        debug_assert_eq!(dense.len(), steps * neurons);
        let mut offsets = Vec::with_capacity(steps + 1);
        let mut ids = Vec::new();
        offsets.push(0);
        let push_mask = |ids: &mut Vec<u32>, base: u32, mut mask: u32| {
            while mask != 0 {
                ids.push(base + mask.trailing_zeros());
                mask &= mask - 1;
            }
        };
        for row in dense.chunks_exact(neurons.max(1)).take(steps) {
            let mut base = 0u32;
            let mut chunks = row.chunks_exact(16);
            for chunk in &mut chunks {
                push_mask(&mut ids, base, spike_mask(chunk));
                base += 16;
            }
            push_mask(&mut ids, base, spike_mask(chunks.remainder()));
            offsets.push(ids.len() as u32);
        }
        offsets.resize(steps + 1, ids.len() as u32);
        Self {
            steps,
            neurons,
            offsets,
            ids,
        }
    }

    /// Reads bit-packed trains (`words[t · W + w]`, `W =` [`words_per_step`]`(neurons)`): only
    /// set bits are visited, and bits of neurons `>= neurons` are ignored.
    // Compiled once more with the bit-counting instructions that every CPU of these vector
    // extensions has (`popcnt`, `tzcnt`, `blsr`), chosen at run time (see `crate::simd`).
    #[multiversion(targets(
        "x86_64+avx2+fma+popcnt+bmi1+bmi2+lzcnt",
        "x86_64+sse4.2+popcnt",
        "aarch64+neon"
    ))]
    pub fn from_words(words: &[u32], steps: usize, neurons: usize) -> SpikeRaster {
        /// Indices written for every word whatever its bits (most words of a sparse train
        /// have fewer); only a word with more set bits takes a data-dependent loop.
        const UNROLL: usize = 4;
        let per_step = words_per_step(neurons);
        debug_assert!(words.len() >= steps * per_step);
        let tail = match neurons % 32 {
            0 => u32::MAX,
            r => (1u32 << r) - 1,
        };
        let masked = |w: usize, word: u32| if w + 1 == per_step { word & tail } else { word };
        let rows = || words.chunks_exact(per_step.max(1)).take(steps);
        let spikes: usize = rows()
            .flat_map(|row| row.iter().enumerate())
            .map(|(w, &word)| masked(w, word).count_ones() as usize)
            .sum();
        // Room for the unconditional writes past the last spike.
        let mut ids = vec![0u32; spikes + UNROLL];
        let mut offsets = Vec::with_capacity(steps + 1);
        offsets.push(0u32);
        let mut len = 0usize;
        for row in rows() {
            for (w, &word) in row.iter().enumerate() {
                let mut mask = masked(w, word);
                let ones = mask.count_ones() as usize;
                let base = 32 * w as u32;
                // Every slot is written (a zero mask gives 32 + base, overwritten later or
                // cut off): no branch on the number of spikes of the word.
                let out: &mut [u32; UNROLL] = (&mut ids[len..len + UNROLL])
                    .try_into()
                    .expect("UNROLL slots of slack");
                for slot in out.iter_mut() {
                    *slot = base + mask.trailing_zeros();
                    mask &= mask.wrapping_sub(1);
                }
                let mut at = len + UNROLL;
                while mask != 0 {
                    ids[at] = base + mask.trailing_zeros();
                    mask &= mask - 1;
                    at += 1;
                }
                len += ones;
            }
            offsets.push(len as u32);
        }
        offsets.resize(steps + 1, len as u32);
        ids.truncate(len);
        SpikeRaster {
            steps,
            neurons,
            offsets,
            ids,
        }
    }

    /// Writes the raster bit-packed into `out` (`steps · W` words, overwritten).
    pub fn write_words(&self, out: &mut [u32]) {
        let per_step = words_per_step(self.neurons);
        out.fill(0);
        for t in 0..self.steps {
            let row = &mut out[t * per_step..(t + 1) * per_step];
            for &n in self.at(t) {
                row[n as usize / 32] |= 1 << (n % 32);
            }
        }
    }

    /// Builds a raster from `(step, neuron)` events; within a step, neurons keep the order
    /// of `events` (a counting sort by step). Events at `step >= steps` are dropped.
    pub fn from_events(steps: usize, neurons: usize, events: &[(u32, u32)]) -> Self {
        let mut offsets = vec![0u32; steps + 1];
        for &(t, _) in events {
            if (t as usize) < steps {
                offsets[t as usize + 1] += 1;
            }
        }
        for t in 0..steps {
            offsets[t + 1] += offsets[t];
        }
        let mut next = offsets.clone();
        let mut ids = vec![0u32; offsets[steps] as usize];
        for &(t, n) in events {
            if (t as usize) < steps {
                ids[next[t as usize] as usize] = n;
                next[t as usize] += 1;
            }
        }
        Self {
            steps,
            neurons,
            offsets,
            ids,
        }
    }

    /// Builds a raster from per-neuron ascending spike steps (steps `>= steps` are dropped).
    pub fn from_times(times: &[Vec<u32>], steps: usize) -> Self {
        let mut per_step: Vec<Vec<u32>> = vec![Vec::new(); steps];
        for (n, ts) in times.iter().enumerate() {
            for &t in ts {
                if (t as usize) < steps {
                    per_step[t as usize].push(n as u32);
                }
            }
        }
        let mut raster = Self::empty(steps, times.len());
        raster.ids.clear();
        for (t, ns) in per_step.iter().enumerate() {
            raster.ids.extend_from_slice(ns);
            raster.offsets[t + 1] = raster.ids.len() as u32;
        }
        raster
    }

    /// Appends the neurons that fired at the next time step (ascending ids).
    pub(crate) fn push_step(&mut self, fired: &[u32]) {
        self.ids.extend_from_slice(fired);
        self.offsets.push(self.ids.len() as u32);
    }

    /// Starts an incremental build with [`SpikeRaster::push_step`].
    pub(crate) fn building(steps: usize, neurons: usize) -> Self {
        let mut offsets = Vec::with_capacity(steps + 1);
        offsets.push(0);
        Self {
            steps,
            neurons,
            offsets,
            ids: Vec::new(),
        }
    }

    /// Number of time steps.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Number of neurons.
    pub fn neurons(&self) -> usize {
        self.neurons
    }

    /// Total number of spikes.
    pub fn num_spikes(&self) -> usize {
        self.ids.len()
    }

    /// Neurons that fired at step `t`, ascending.
    pub fn at(&self, t: usize) -> &[u32] {
        &self.ids[self.offsets[t] as usize..self.offsets[t + 1] as usize]
    }

    /// Per-neuron ascending spike steps.
    pub fn times(&self) -> Vec<Vec<u32>> {
        let mut times = vec![Vec::new(); self.neurons];
        for t in 0..self.steps {
            for &n in self.at(t) {
                times[n as usize].push(t as u32);
            }
        }
        times
    }

    /// The per-neuron view: for each neuron its ascending spike steps, as one CSR table.
    pub fn by_neuron(&self) -> NeuronTimes {
        let mut start = vec![0u32; self.neurons + 1];
        for &n in &self.ids {
            start[n as usize + 1] += 1;
        }
        for n in 0..self.neurons {
            start[n + 1] += start[n];
        }
        let mut next = start.clone();
        let mut times = vec![0u32; self.ids.len()];
        for t in 0..self.steps {
            for &n in self.at(t) {
                times[next[n as usize] as usize] = t as u32;
                next[n as usize] += 1;
            }
        }
        NeuronTimes { start, times }
    }

    /// Spike count of every neuron.
    pub fn counts(&self) -> Vec<u32> {
        let mut counts = vec![0; self.neurons];
        for &n in &self.ids {
            counts[n as usize] += 1;
        }
        counts
    }

    /// Writes the raster densely, time-major, into `out` (`steps * neurons` values).
    pub fn write_dense(&self, out: &mut [f32]) {
        out.fill(0.0);
        self.scatter_ones(out);
    }

    /// Sets the spikes of the raster to 1 in `out`, time-major (already zeroed elsewhere).
    pub(crate) fn scatter_ones(&self, out: &mut [f32]) {
        for t in 0..self.steps {
            for &n in self.at(t) {
                out[t * self.neurons + n as usize] = 1.0;
            }
        }
    }
}

/// Spike steps of every neuron of a raster, ascending (see [`SpikeRaster::by_neuron`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NeuronTimes {
    start: Vec<u32>,
    times: Vec<u32>,
}

impl NeuronTimes {
    /// The spike steps of neuron `n`.
    pub fn of(&self, n: usize) -> &[u32] {
        &self.times[self.start[n] as usize..self.start[n + 1] as usize]
    }

    /// Spike count of neuron `n`.
    pub fn count(&self, n: usize) -> u32 {
        self.start[n + 1] - self.start[n]
    }
}

// Batches: the codecs between per-sample rasters and the layouts of a batch's tensors.

/// Shape of a batch of spike trains, stored densely as `[batch][steps][neurons]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchShape {
    /// Samples.
    pub batch: usize,
    /// Time steps.
    pub steps: usize,
    /// Neurons.
    pub neurons: usize,
}

/// Reads every sample of a dense batch `[B][T][N]` into a raster (in parallel).
pub fn rasters_from_dense(dense: &[f32], shape: BatchShape) -> Vec<SpikeRaster> {
    let n = shape.steps * shape.neurons;
    (0..shape.batch)
        .into_par_iter()
        .map(|b| SpikeRaster::from_dense(&dense[b * n..(b + 1) * n], shape.steps, shape.neurons))
        .collect()
}

/// Writes rasters densely as `[B][T][N]`.
pub fn rasters_to_dense(rasters: &[SpikeRaster]) -> Vec<f32> {
    let n = rasters.first().map_or(0, |r| r.steps() * r.neurons());
    // Zeroed on all threads (a batch of hidden-layer trains is tens of MB).
    let mut out: Vec<f32> = (0..rasters.len() * n)
        .into_par_iter()
        .map(|_| 0.0)
        .collect();
    out.par_chunks_mut(n.max(1))
        .zip(rasters)
        .for_each(|(chunk, r)| r.scatter_ones(chunk));
    out
}

/// Reads every sample of bit-packed trains `[B][T][⌈N/32⌉]` into a raster (in parallel).
pub fn rasters_from_words(words: &[u32], shape: BatchShape) -> Vec<SpikeRaster> {
    let n = shape.steps * words_per_step(shape.neurons);
    (0..shape.batch)
        .into_par_iter()
        .with_max_len(1)
        .map(|b| SpikeRaster::from_words(&words[b * n..(b + 1) * n], shape.steps, shape.neurons))
        .collect()
}

/// Spike counts of every sample's neurons, `[B][N]`, as `f32`.
pub fn rasters_counts(rasters: &[SpikeRaster]) -> Vec<f32> {
    rasters
        .iter()
        .flat_map(|r| r.counts().into_iter().map(|c| c as f32))
        .collect()
}

/// Writes rasters bit-packed as `[B][T][⌈N/32⌉]` words (as `i32`, the type of Burn's int
/// tensors).
pub fn rasters_to_words(rasters: &[SpikeRaster]) -> Vec<i32> {
    let n = rasters
        .first()
        .map_or(0, |r| r.steps() * words_per_step(r.neurons()));
    let mut out = vec![0u32; rasters.len() * n];
    out.par_chunks_mut(n.max(1))
        .zip(rasters)
        .for_each(|(chunk, r)| r.write_words(chunk));
    out.into_iter().map(|w| w as i32).collect()
}

/// Bit `k` set where `values[k] > 0.5` (at most 32 values; one vector comparison for 16).
fn spike_mask(values: &[f32]) -> u32 {
    values
        .iter()
        .enumerate()
        .fold(0u32, |m, (k, &v)| m | (u32::from(v > 0.5) << k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_times_round_trip() {
        let times = vec![vec![1, 4], vec![], vec![0, 4, 5]];
        let r = SpikeRaster::from_times(&times, 6);
        assert_eq!(r.times(), times);
        let by = r.by_neuron();
        assert_eq!((0..3).map(|n| by.of(n).to_vec()).collect::<Vec<_>>(), times);
        assert_eq!(by.count(2), 3);
        assert_eq!(r.counts(), vec![2, 0, 3]);
        assert_eq!(r.at(4), &[0, 2]);
        let mut dense = vec![0.0; 18];
        r.write_dense(&mut dense);
        assert_eq!(SpikeRaster::from_dense(&dense, 6, 3), r);
    }

    /// Words of every density (sparse, dense, full, the masked tail) read as a bit-by-bit
    /// scan reads them.
    #[test]
    fn from_words_matches_a_bit_by_bit_scan() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u32
        };
        for (neurons, steps) in [(1, 3), (31, 5), (32, 7), (70, 50), (800, 40)] {
            let per_step = words_per_step(neurons);
            let words: Vec<u32> = (0..steps * per_step)
                .map(|k| match k % 5 {
                    0 => 0,
                    1 => next() & next() & next(),
                    2 => next(),
                    3 => u32::MAX,
                    _ => 1 << (next() % 32),
                })
                .collect();
            let scan: Vec<Vec<u32>> = (0..neurons)
                .map(|n| {
                    (0..steps as u32)
                        .filter(|&t| words[t as usize * per_step + n / 32] >> (n % 32) & 1 == 1)
                        .collect()
                })
                .collect();
            let got = SpikeRaster::from_words(&words, steps, neurons);
            assert_eq!(
                got,
                SpikeRaster::from_times(&scan, steps),
                "{neurons} neurons"
            );
        }
    }

    #[test]
    fn words_round_trip() {
        let pattern = [vec![1, 4], vec![], vec![0, 4, 5]];
        // 36 neurons: two words per step.
        let mut times: Vec<Vec<u32>> = (0..36).map(|n| pattern[n % 3].clone()).collect();
        times[33] = vec![2, 3];
        let r = SpikeRaster::from_times(&times, 6);
        let mut words = vec![7u32; 6 * 2];
        r.write_words(&mut words);
        assert_eq!(
            words[2 * 4],
            0b101
                | 0b101 << 3
                | 0b101 << 6
                | 0b101 << 9
                | 0b101 << 12
                | 0b101 << 15
                | 0b101 << 18
                | 0b101 << 21
                | 0b101 << 24
                | 0b101 << 27
                | 1 << 30
        );
        assert_eq!(SpikeRaster::from_words(&words, 6, 36), r);
        // Stray bits past the last neuron are not spikes.
        words[1] |= 1 << 31;
        assert_eq!(SpikeRaster::from_words(&words, 6, 36), r);
    }

    #[test]
    fn events_sort_into_steps() {
        let r = SpikeRaster::from_events(6, 3, &[(4, 0), (1, 0), (0, 2), (4, 2), (5, 2), (9, 1)]);
        assert_eq!(
            r,
            SpikeRaster::from_times(&[vec![1, 4], vec![], vec![0, 4, 5]], 6)
        );
    }

    #[test]
    fn incremental_build_matches() {
        let mut r = SpikeRaster::building(3, 2);
        r.push_step(&[]);
        r.push_step(&[0, 1]);
        r.push_step(&[1]);
        assert_eq!(r, SpikeRaster::from_times(&[vec![1], vec![1, 2]], 3));
    }
}
