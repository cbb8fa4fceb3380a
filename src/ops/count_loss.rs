//! The count loss (spec §3.1, [`crate::loss::count_loss_per_sample`]) as one op for device
//! backends: the loss of every sample and, kept for the backward, the gradient of each sample's
//! loss with respect to its counts, so that a device runs the loss in one kernel and its
//! gradient in one more instead of a chain of tensor operations and their derivatives. The CPU
//! backends keep the tensor formula of [`crate::loss`] (the op's host form here is the
//! reference its kernel is tested against).
//!
//! Per sample `b` with label `l_b`, weight `β_b`, targets `y_bi` (desired for `i = l_b`, else
//! undesired), `d_bi = o_bi − y_bi`, `m_bi = 1[|d_bi| > margin]`: the loss
//! `E_b = β_b · ½ Σ_i m_bi d_bi²` and `∂E_b/∂o_bi = β_b m_bi d_bi`.

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, TensorMetadata};
use burn::tensor::{Shape, TensorData};

use super::SpikingOps;
use super::host::{f32s, host_f32};
use crate::device_reads;
use crate::rule::output::CountTargets;

/// What the count-loss op returns: every sample's loss `[B]`, or their mean `[1]` (on a device
/// taken in the loss kernel, its `1/B` already in the kept gradient, so that the backward is
/// one multiply instead of the launches of a separate mean and its derivative; the same
/// gradients bit for bit in a training step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossReduce {
    /// `[B]`.
    PerSample,
    /// `[1]`: the mean over the batch.
    Mean,
}

impl LossReduce {
    /// `per_sample [B]` reduced.
    pub(super) fn apply<B: Backend>(self, per_sample: FloatTensor<B>) -> FloatTensor<B> {
        match self {
            LossReduce::PerSample => per_sample,
            LossReduce::Mean => B::float_mean(per_sample),
        }
    }

    /// The factor of every sample's gradient in the reduced loss's: 1, or `1/B` for the mean
    /// (an `f32`, as Burn turns the scalar of its mean's derivative into one).
    pub(super) fn grad_scale(self, batch: usize) -> f32 {
        match self {
            LossReduce::PerSample => 1.0,
            LossReduce::Mean => (1.0 / batch.max(1) as f64) as f32,
        }
    }

    /// The reduced loss and its gradient with respect to the counts (for an upstream
    /// gradient of 1) from `per_sample [B]` losses and their gradients `grad [B, C]`.
    pub(super) fn finish<B: Backend>(
        self,
        per_sample: FloatTensor<B>,
        grad: FloatTensor<B>,
    ) -> (FloatTensor<B>, FloatTensor<B>) {
        match self {
            LossReduce::PerSample => (per_sample, grad),
            LossReduce::Mean => {
                let scale = self.grad_scale(per_sample.shape()[0]);
                let grad = B::float_mul_scalar(grad, f64::from(scale).into());
                (self.apply::<B>(per_sample), grad)
            }
        }
    }

    /// `per_sample [B]` reduced, as a tensor (losses computed without the op).
    pub fn of(self, per_sample: burn::tensor::Tensor<1>) -> burn::tensor::Tensor<1> {
        match self {
            LossReduce::PerSample => per_sample,
            LossReduce::Mean => per_sample.mean(),
        }
    }
}

/// `(E_b [B], ∂E_b/∂o [B, C])` of `counts [B, C]`, `labels [B]` and `weight [B]`, on the host.
pub fn host_count_loss<B: Backend>(
    [counts, weight]: [FloatTensor<B>; 2],
    labels: IntTensor<B>,
    t: CountTargets,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let device = counts.device();
    let [b, c] = [counts.shape()[0], counts.shape()[1]];
    let counts = host_f32::<B>("counts", counts);
    let weight = host_f32::<B>("sample weights", weight);
    let labels: Vec<i64> = device_reads::primitive("labels", B::int_into_data(labels))
        .iter::<i64>()
        .collect();
    let (mut loss, mut grad) = (vec![0.0f32; b], vec![0.0f32; b * c]);
    for (s, row) in f32s(&counts).chunks(c.max(1)).enumerate() {
        let w = f32s(&weight)[s];
        let mut sum = 0.0f32;
        for (i, &o) in row.iter().enumerate() {
            let y = if labels[s] == i as i64 {
                t.desired
            } else {
                t.undesired
            };
            let d = o - y;
            if d.abs() > t.margin {
                sum += d * d;
                grad[s * c + i] = w * d;
            }
        }
        loss[s] = 0.5 * sum * w;
    }
    (
        B::float_from_data(TensorData::new(loss, [b]), &device),
        B::float_from_data(TensorData::new(grad, [b, c]), &device),
    )
}

#[derive(Debug)]
struct CountLossBackward;

impl<B: Backend> Backward<B, 1> for CountLossBackward {
    /// The reduced loss's gradient with respect to the counts `[B, C]` (the forward's, for an
    /// upstream gradient of 1), and how the loss was reduced.
    type State = (FloatTensor<B>, LossReduce);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let upstream = grads.consume::<B>(&ops.node);
        let [parent] = ops.parents;
        let (grad, reduce) = ops.state;
        if let Some(node) = parent {
            // The upstream gradient of the mean `[1]` or of each sample's loss `[B]`, broadcast
            // over the classes. The mean's `1/B` is already in `grad`: with the upstream 1 of a
            // training step the product has the bits of Burn's `(1/B · upstream) · grad`
            // (otherwise it agrees to one `f32` rounding).
            let rows = match reduce {
                LossReduce::Mean => 1,
                LossReduce::PerSample => upstream.shape()[0],
            };
            let upstream = B::float_reshape(upstream, Shape::new([rows, 1]));
            grads.register::<B>(node.id, B::float_mul(grad, upstream));
        }
    }
}

/// [`Hm2bpBackend::count_loss`](super::Hm2bpBackend::count_loss) on an autodiff backend: the
/// inner backend's [`SpikingOps::count_loss_forward`], its gradient kept for the backward.
pub(super) fn autodiff_count_loss<B: SpikingOps, C: CheckpointStrategy>(
    counts: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    labels: IntTensor<Autodiff<B, C>>,
    targets: CountTargets,
    reduce: LossReduce,
) -> FloatTensor<Autodiff<B, C>> {
    let prepared = CountLossBackward
        .prepare::<C>([counts.node()])
        .compute_bound()
        .stateful();
    let inputs = [counts.into_primitive(), weight.into_primitive()];
    let (loss, grad) = B::count_loss_forward(inputs, labels, targets, reduce);
    match prepared {
        OpsKind::Tracked(prep) => prep.finish((grad, reduce), loss),
        OpsKind::UnTracked(prep) => prep.finish(loss),
    }
}
