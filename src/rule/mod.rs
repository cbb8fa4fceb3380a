//! The HM2-BP learning rule (spec §2–§3) as plain functions over host memory.
//!
//! - [`dense`]: event-driven forward and backward of one sample of a spiking dense layer.
//! - [`output`]: output error (S6), lateral factor γ, label-spike insertion.
//! - [`regularizer`]: the exponential weight regulariser (S12).
//! - [`sparse`]: locally connected layers (convolution, sum pooling) with shared weights;
//!   [`conv`]: the convolution's forward pass as a convolution.
//! - [`reference`](mod@reference): the same rule pair by pair in `f64`, for tests and the `trace` mode.
//!
//! [`dense_forward_batch`] and [`dense_backward_batch`] run a batch on all cores (one sample per
//! task); a batch of one is the authors' faithful batch-size-1 step.

pub mod conv;
pub mod dense;
pub mod output;
pub mod reference;
pub mod regularizer;
pub mod sparse;
pub mod terms;

use rayon::prelude::*;

use crate::spikes::SpikeRaster;
pub use dense::DenseSpec;

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
    let n = shape.steps * crate::spikes::words_per_step(shape.neurons);
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
    let n = rasters.first().map_or(0, |r| {
        r.steps() * crate::spikes::words_per_step(r.neurons())
    });
    let mut out = vec![0u32; rasters.len() * n];
    out.par_chunks_mut(n.max(1))
        .zip(rasters)
        .for_each(|(chunk, r)| r.write_words(chunk));
    out.into_iter().map(|w| w as i32).collect()
}

/// Forward pass of a batch of rasters through a layer with weight `[n_out][n_in]`.
pub fn dense_forward_rasters(
    inputs: &[SpikeRaster],
    weight: &[f32],
    n_out: usize,
    spec: &DenseSpec,
) -> Vec<SpikeRaster> {
    let n_in = inputs.first().map_or(0, SpikeRaster::neurons);
    dense_forward_prepared(inputs, &dense::LayerWeights::new(weight, n_out, n_in), spec)
}

/// [`dense_forward_rasters`] with the weights already in the kernels' layouts.
fn dense_forward_prepared(
    inputs: &[SpikeRaster],
    weights: &dense::LayerWeights,
    spec: &DenseSpec,
) -> Vec<SpikeRaster> {
    inputs
        .par_iter()
        .with_max_len(1)
        .map(|r| dense::forward_sample(r, weights, spec))
        .collect()
}

/// Forward pass of a dense batch: input `[B][T][n_in]`, weight `[n_out][n_in]` → output
/// `[B][T][n_out]`.
pub fn dense_forward_batch(
    input: &[f32],
    shape: BatchShape,
    weight: &[f32],
    n_out: usize,
    spec: &DenseSpec,
) -> Vec<f32> {
    let inputs = rasters_from_dense(input, shape);
    rasters_to_dense(&dense_forward_rasters(&inputs, weight, n_out, spec))
}

/// Result of the batched backward pass.
pub struct BatchGrad {
    /// `Σ_b δ (1+s) γ e` (S12 main term, summed over the batch; the batch mean comes from the
    /// loss), `[n_out][n_in]`.
    pub weight: Vec<f32>,
    /// `∂E/∂o` of the input neurons `[B][n_in]` (S10), when requested.
    pub input: Option<Vec<f32>>,
}

/// Backward pass of a batch given its input and output rasters. `d_post` is `[B][n_out]`;
/// `labels` (one per sample) are needed by the output layer's rule.
pub fn dense_backward_rasters(
    inputs: &[SpikeRaster],
    outputs: &[SpikeRaster],
    weight: &[f32],
    d_post: &[f32],
    labels: Option<&[usize]>,
    spec: &DenseSpec,
    need_d_pre: bool,
) -> BatchGrad {
    let n_in = inputs.first().map_or(0, SpikeRaster::neurons);
    let n_out = outputs.first().map_or(0, SpikeRaster::neurons);
    let weights = dense::LayerWeights::new(weight, n_out, n_in);
    dense_backward_prepared(inputs, outputs, &weights, d_post, labels, spec, need_d_pre)
}

thread_local! {
    /// The S-PSP row buffers of the last batch's samples, reused by the next batch that this
    /// thread runs (fresh buffers of ~0.5 MB per sample would cost page faults every step).
    static ROW_BUFFERS: std::cell::Cell<Vec<Vec<f32>>> = const { std::cell::Cell::new(Vec::new()) };
}

/// [`dense_backward_rasters`] with the weights already in the kernels' layouts.
fn dense_backward_prepared(
    inputs: &[SpikeRaster],
    outputs: &[SpikeRaster],
    weights: &dense::LayerWeights,
    d_post: &[f32],
    labels: Option<&[usize]>,
    spec: &DenseSpec,
    need_d_pre: bool,
) -> BatchGrad {
    let (n_in, n_out) = (weights.n_in, weights.n_out);
    let mut d_pre = need_d_pre.then(|| vec![0.0f32; inputs.len() * n_in]);
    let sample = |b: usize, d: Option<&mut [f32]>, buffer: Vec<f32>| {
        let args = dense::SampleGrad {
            input: &inputs[b],
            output: &outputs[b],
            d_post: &d_post[b * n_out..(b + 1) * n_out],
            label: labels.map(|l| l[b]),
        };
        dense::sample_rows(&args, weights, spec, d, buffer)
    };
    let mut buffers = ROW_BUFFERS.take();
    buffers.resize_with(inputs.len(), Vec::new);
    // Samples in parallel, as many tasks as samples (balanced by work stealing).
    let rows: Vec<dense::SampleRows> = match d_pre.as_mut() {
        Some(d) => d
            .par_chunks_mut(n_in.max(1))
            .zip(buffers)
            .enumerate()
            .with_max_len(1)
            .map(|(b, (d, buffer))| sample(b, Some(d), buffer))
            .collect(),
        None => buffers
            .into_par_iter()
            .enumerate()
            .with_max_len(1)
            .map(|(b, buffer)| sample(b, None, buffer))
            .collect(),
    };
    // The weight gradient in bands of input neurons, in parallel; each element sums the
    // samples in batch order, so the result does not depend on the number of threads.
    const BAND: usize = 16;
    let mut grad = vec![0.0f32; n_in * n_out];
    grad.par_chunks_mut((BAND * n_out).max(1))
        .enumerate()
        .for_each(|(k, g)| {
            let lo = k * BAND;
            let hi = (lo + BAND).min(n_in);
            for r in &rows {
                r.add_weight_grad(lo..hi, g);
            }
        });
    ROW_BUFFERS.set(
        rows.into_iter()
            .map(dense::SampleRows::into_buffer)
            .collect(),
    );
    BatchGrad {
        weight: dense::transpose(&grad, n_in, n_out),
        input: d_pre,
    }
}

/// Backward pass of a dense batch (input `[B][T][n_in]`, output `[B][T][n_out]`).
#[allow(clippy::too_many_arguments)]
pub fn dense_backward_batch(
    input: &[f32],
    output: &[f32],
    shape: BatchShape,
    weight: &[f32],
    n_out: usize,
    d_post: &[f32],
    labels: Option<&[usize]>,
    spec: &DenseSpec,
    need_d_pre: bool,
) -> BatchGrad {
    let out_shape = BatchShape {
        neurons: n_out,
        ..shape
    };
    dense_backward_rasters(
        &rasters_from_dense(input, shape),
        &rasters_from_dense(output, out_shape),
        weight,
        d_post,
        labels,
        spec,
        need_d_pre,
    )
}

/// A layer's weights in the layouts its kernels read ([`LayerSpec::prepare`]).
#[derive(Clone, Debug)]
pub enum PreparedWeights {
    /// A dense layer's weights, transposed and blocked.
    Dense(dense::LayerWeights),
    /// The shared weights of a convolution or pooling layer, as they are.
    Local(Vec<f32>),
}

/// Any spiking layer the custom op runs: fully connected or locally connected.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerSpec {
    /// Fully connected, weight `[n_out][n_in]`.
    Dense(DenseSpec),
    /// Convolution or pooling, shared weights `[n_weights]`.
    Local(sparse::LocalSpec),
}

impl LayerSpec {
    /// Output neurons, given the weight tensor's shape.
    pub fn n_out(&self, weight_shape: &[usize]) -> usize {
        match self {
            LayerSpec::Dense(_) => weight_shape[0],
            LayerSpec::Local(l) => l.topology.n_out(),
        }
    }

    /// The weights (`[n_out][n_in]` for a dense layer, the shared weights otherwise) in the
    /// layouts the kernels read, built once per training step and used by the forward and
    /// the backward pass.
    pub fn prepare(&self, weight: &[f32], n_in: usize, n_out: usize) -> PreparedWeights {
        match self {
            LayerSpec::Dense(_) => {
                PreparedWeights::Dense(dense::LayerWeights::new(weight, n_out, n_in))
            }
            LayerSpec::Local(_) => PreparedWeights::Local(weight.to_vec()),
        }
    }

    /// Forward of a batch of rasters.
    pub fn forward_rasters(
        &self,
        inputs: &[SpikeRaster],
        weights: &PreparedWeights,
    ) -> Vec<SpikeRaster> {
        match (self, weights) {
            (LayerSpec::Dense(d), PreparedWeights::Dense(w)) => {
                dense_forward_prepared(inputs, w, d)
            }
            (LayerSpec::Local(l), PreparedWeights::Local(w)) => {
                sparse::local_forward_rasters(inputs, w, l)
            }
            _ => panic!("hm2bp: weights prepared for another kind of layer"),
        }
    }

    /// Backward of a batch: (weight gradient when `need_grad`, `∂E/∂o_pre` when `need_d_pre`).
    #[allow(clippy::too_many_arguments)]
    pub fn backward_rasters(
        &self,
        inputs: &[SpikeRaster],
        outputs: &[SpikeRaster],
        weights: &PreparedWeights,
        d_post: &[f32],
        labels: Option<&[usize]>,
        need_grad: bool,
        need_d_pre: bool,
    ) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
        match (self, weights) {
            (LayerSpec::Dense(d), PreparedWeights::Dense(w)) => {
                let g = dense_backward_prepared(inputs, outputs, w, d_post, labels, d, need_d_pre);
                (need_grad.then_some(g.weight), g.input)
            }
            (LayerSpec::Local(l), PreparedWeights::Local(w)) => {
                sparse::local_backward_rasters(inputs, outputs, w, d_post, l, need_grad, need_d_pre)
            }
            _ => panic!("hm2bp: weights prepared for another kind of layer"),
        }
    }

    /// Whether the rule needs the labels (output layer).
    pub fn needs_labels(&self) -> bool {
        matches!(self, LayerSpec::Dense(d) if d.output.is_some())
    }
}
