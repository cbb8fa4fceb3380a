//! The HM2-BP learning rule (spec §2–§3) as plain functions over host memory.
//!
//! - [`dense`]: event-driven forward and backward of one sample of a spiking dense layer.
//! - [`output`]: output error (S6), lateral factor γ, label-spike insertion.
//! - [`regularizer`]: the exponential weight regulariser (S12).
//! - [`local`]: locally connected layers (convolution, sum pooling) with shared weights;
//!   [`conv`]: the convolution's forward pass as a convolution.
//! - [`reference`](mod@reference): the same rule pair by pair in `f64`, for tests and the `trace` mode.
//!
//! [`dense_forward_batch`] and [`dense_backward_rasters`] run a batch on all cores (one sample per
//! task); a batch of one is the authors' faithful batch-size-1 step. [`LayerSpec::prepare`] →
//! [`PreparedLayer::forward`] → [`RasterTape::backward`] is the host kernels' side of the
//! spiking layer's op ([`crate::ops`]). The spike-format codecs (rasters ↔ words, dense
//! batches) live beside [`SpikeRaster`] in [`crate::spikes`].
//!
//! ## Global state: per-thread scratch
//!
//! The kernels reuse buffers per worker thread (`thread_local!`), so that a training step does
//! not allocate (and page-fault) fresh megabytes per sample. Each holds only scratch that the
//! next call overwrites; no result depends on what it held before:
//!
//! - `ROW_BUFFERS` (this module): the S-PSP row buffers of the last dense batch's samples.
//! - `SCRATCH` in [`dense`]: one sample's dense backward scratch and kernel tables.
//! - `SCRATCH` in [`conv`]: one sample's convolution backward scratch and kernel tables.

pub mod conv;
pub mod dense;
pub mod local;
pub mod output;
pub mod reference;
pub mod regularizer;
pub mod terms;

use rayon::prelude::*;

use crate::spikes::{BatchShape, SpikeRaster, rasters_from_dense, rasters_to_dense};
pub use dense::DenseSpec;

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

/// Which gradients a backward pass computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    /// The weight gradient.
    pub weight: bool,
    /// `∂E/∂o_pre` of the input neurons.
    pub input: bool,
}

/// A backward pass's results, each computed only when asked for ([`Needs`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerGrads<T> {
    /// The weight gradient, shaped as the weights.
    pub weight: Option<T>,
    /// `∂E/∂o_pre [B, n_in]`.
    pub input: Option<T>,
}

/// Any spiking layer the custom op runs: fully connected or locally connected.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerSpec {
    /// Fully connected, weight `[n_out][n_in]`.
    Dense(DenseSpec),
    /// Convolution or pooling, shared weights `[n_weights]`.
    Local(local::LocalSpec),
}

impl LayerSpec {
    /// Output neurons, given the weight tensor's shape.
    pub fn n_out(&self, weight_shape: &[usize]) -> usize {
        match self {
            LayerSpec::Dense(_) => weight_shape[0],
            LayerSpec::Local(l) => l.topology.n_out(),
        }
    }

    /// The layer with its weights (`[n_out][n_in]` for a dense layer, the shared weights
    /// otherwise) in the layouts the kernels read, built once per training step and used by
    /// the forward and the backward pass.
    pub fn prepare(&self, weight: &[f32], n_in: usize, n_out: usize) -> PreparedLayer {
        match *self {
            LayerSpec::Dense(d) => {
                PreparedLayer::Dense(d, dense::LayerWeights::new(weight, n_out, n_in))
            }
            LayerSpec::Local(l) => PreparedLayer::Local(l, weight.to_vec()),
        }
    }

    /// Whether the rule needs the labels (output layer).
    pub fn needs_labels(&self) -> bool {
        matches!(self, LayerSpec::Dense(d) if d.output.is_some())
    }
}

/// A layer and its weights in the layouts its kernels read ([`LayerSpec::prepare`]).
#[derive(Clone, Debug)]
pub enum PreparedLayer {
    /// A dense layer; its weights transposed and blocked.
    Dense(DenseSpec, dense::LayerWeights),
    /// A convolution or pooling layer; its shared weights as they are.
    Local(local::LocalSpec, Vec<f32>),
}

impl PreparedLayer {
    /// The forward pass of a batch of rasters, kept with its weights for the backward.
    pub fn forward(self, input: Vec<SpikeRaster>) -> RasterTape {
        let output = match &self {
            PreparedLayer::Dense(d, w) => dense_forward_prepared(&input, w, d),
            PreparedLayer::Local(l, w) => local::local_forward_rasters(&input, w, l),
        };
        self.with_trains(input, output)
    }

    /// The tape of a forward pass from its input and output rasters (read back from a pass
    /// that ran elsewhere, or just computed).
    pub fn with_trains(self, input: Vec<SpikeRaster>, output: Vec<SpikeRaster>) -> RasterTape {
        RasterTape {
            input,
            output,
            layer: self,
        }
    }
}

/// A batch's forward pass on the host kernels, kept for its backward: the per-sample input and
/// output rasters and the layer with the weights it ran with (the backward's pre-update
/// weights), so that trains and weights are read from their tensors only once.
#[derive(Debug)]
pub struct RasterTape {
    /// Input trains, one raster per sample.
    pub input: Vec<SpikeRaster>,
    /// Output trains, one raster per sample.
    pub output: Vec<SpikeRaster>,
    /// The layer and its prepared weights.
    pub layer: PreparedLayer,
}

impl RasterTape {
    /// Samples in the batch.
    pub fn batch(&self) -> usize {
        self.input.len()
    }

    /// Input neurons of the layer.
    pub fn input_neurons(&self) -> usize {
        self.input.first().map_or(0, SpikeRaster::neurons)
    }

    /// The HM2-BP backward of the batch from `d_post [B][n_out]` (`labels`: one class per
    /// sample, for an output layer).
    pub fn backward(
        &self,
        d_post: &[f32],
        labels: Option<&[usize]>,
        needs: Needs,
    ) -> LayerGrads<Vec<f32>> {
        let (input, output) = (&self.input, &self.output);
        match &self.layer {
            PreparedLayer::Dense(d, w) => {
                let g = dense_backward_prepared(input, output, w, d_post, labels, d, needs.input);
                LayerGrads {
                    weight: needs.weight.then_some(g.weight),
                    input: g.input,
                }
            }
            PreparedLayer::Local(l, w) => {
                local::local_backward_rasters(input, output, w, d_post, l, needs)
            }
        }
    }
}
