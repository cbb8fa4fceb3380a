//! The HM2-BP learning rule (spec §2–§3) as plain functions over host memory.
//!
//! - [`dense`]: event-driven forward and backward of one sample of a spiking dense layer.
//! - [`output`]: output error (S6), lateral factor γ, label-spike insertion.
//! - [`regularizer`]: the exponential weight regulariser (S12).
//! - [`reference`]: the same rule pair by pair in `f64`, for tests and the `trace` mode.
//!
//! [`dense_forward_batch`] and [`dense_backward_batch`] run a batch on all cores (one sample per
//! task); a batch of one is the authors' faithful batch-size-1 step.

pub mod dense;
pub mod output;
pub mod reference;
pub mod regularizer;

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

impl BatchShape {
    fn sample_len(&self) -> usize {
        self.steps * self.neurons
    }

    fn raster(&self, dense: &[f32], b: usize) -> SpikeRaster {
        let n = self.sample_len();
        SpikeRaster::from_dense(&dense[b * n..(b + 1) * n], self.steps, self.neurons)
    }
}

/// Forward pass of a batch: dense input `[B][T][n_in]`, weight `[n_out][n_in]` → dense output
/// `[B][T][n_out]`.
pub fn dense_forward_batch(
    input: &[f32],
    shape: BatchShape,
    weight: &[f32],
    n_out: usize,
    spec: &DenseSpec,
) -> Vec<f32> {
    let weight_t = dense::transpose(weight, n_out, shape.neurons);
    let mut out = vec![0.0f32; shape.batch * shape.steps * n_out];
    out.par_chunks_mut(shape.steps * n_out.max(1))
        .enumerate()
        .for_each(|(b, chunk)| {
            let raster = shape.raster(input, b);
            dense::forward_sample(&raster, &weight_t, n_out, spec).write_dense(chunk);
        });
    out
}

/// Result of [`dense_backward_batch`].
pub struct BatchGrad {
    /// `Σ_b δ (1+s) γ e` (S12 main term, summed over the batch; the batch mean comes from the
    /// loss), `[n_out][n_in]`.
    pub weight: Vec<f32>,
    /// `∂E/∂o` of the input neurons `[B][n_in]` (S10), when requested.
    pub input: Option<Vec<f32>>,
}

/// Backward pass of a batch. `d_post` is `[B][n_out]`; `labels` (one per sample) are needed by
/// the output layer's rule.
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
    let n_in = shape.neurons;
    let out_shape = BatchShape {
        neurons: n_out,
        ..shape
    };
    let mut d_pre = need_d_pre.then(|| vec![0.0f32; shape.batch * n_in]);
    let per_sample = |b: usize, grad: &mut Vec<f32>, d: Option<&mut [f32]>| {
        let pre = shape.raster(input, b);
        let post = out_shape.raster(output, b);
        let args = dense::SampleGrad {
            input: &pre,
            output: &post,
            d_post: &d_post[b * n_out..(b + 1) * n_out],
            label: labels.map(|l| l[b]),
        };
        dense::backward_sample(&args, weight, spec, grad, d);
    };
    let zero = || vec![0.0f32; n_out * n_in];
    let add = |mut a: Vec<f32>, b: Vec<f32>| {
        a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
        a
    };
    let grad = match d_pre.as_mut() {
        Some(d) => d
            .par_chunks_mut(n_in.max(1))
            .enumerate()
            .fold(zero, |mut g, (b, d)| {
                per_sample(b, &mut g, Some(d));
                g
            })
            .reduce(zero, add),
        None => (0..shape.batch)
            .into_par_iter()
            .fold(zero, |mut g, b| {
                per_sample(b, &mut g, None);
                g
            })
            .reduce(zero, add),
    };
    BatchGrad {
        weight: grad,
        input: d_pre,
    }
}
