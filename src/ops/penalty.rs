//! The weight regulariser's penalty (spec S12) as an op: its value on the forward pass, and on
//! autodiff devices a backward that writes `R` (the formula of
//! [`WeightRegularizer::gradient`]) straight into the weight's gradient. Both run on the host,
//! rows in parallel: one pass over the weights each way, instead of a chain of element-wise
//! tensor ops and their derivatives.

use std::sync::Arc;

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, TensorMetadata};
use burn::tensor::TensorData;

use super::Hm2bpBackend;
use super::host::{f32s, host_f32};
use crate::rule::regularizer::WeightRegularizer;

/// The penalty `[1]` of `weight [rows, row_len]`, and what its backward needs.
pub(super) fn host_penalty<B: Backend>(
    weight: FloatTensor<B>,
    regularizer: WeightRegularizer,
) -> (FloatTensor<B>, PenaltyState) {
    let device = weight.device();
    let row_len = weight.shape()[1];
    let weights = host_f32::<B>("weights", weight);
    let barriers = regularizer.barriers(f32s(&weights), row_len);
    let p = regularizer.penalty(&barriers, row_len);
    let value = B::float_from_data(TensorData::new(vec![p as f32], [1]), &device);
    let state = PenaltyState {
        weights: Arc::new(weights),
        barriers: Arc::new(barriers),
        regularizer,
    };
    (value, state)
}

/// What the backward needs: the weights (pre-update, on the host), their rows' barriers and
/// the regulariser.
#[derive(Debug, Clone)]
pub(super) struct PenaltyState {
    weights: Arc<TensorData>,
    barriers: Arc<Vec<f64>>,
    regularizer: WeightRegularizer,
}

#[derive(Debug)]
struct PenaltyBackward;

impl<B: Backend> Backward<B, 1> for PenaltyBackward {
    type State = PenaltyState;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let g = grads.consume::<B>(&ops.node);
        let [parent] = ops.parents;
        let Some(node) = parent else {
            return;
        };
        let device = g.device();
        let g = f32s(&host_f32::<B>("the penalty's gradient", g))[0];
        let st = ops.state;
        let shape = st.weights.shape().clone();
        let grad = st
            .regularizer
            .gradient(f32s(&st.weights), &st.barriers, f64::from(g));
        grads.register::<B>(
            node.id,
            B::float_from_data(TensorData::new(grad, shape), &device),
        );
    }
}

/// [`Hm2bpBackend::weight_penalty`] on an autodiff backend.
pub(super) fn autodiff_penalty<B: Hm2bpBackend, C: CheckpointStrategy>(
    weight: FloatTensor<Autodiff<B, C>>,
    regularizer: WeightRegularizer,
) -> FloatTensor<Autodiff<B, C>> {
    match PenaltyBackward
        .prepare::<C>([weight.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (value, state) = host_penalty::<B>(weight.into_primitive(), regularizer);
            prep.finish(state, value)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(B::weight_penalty(weight.into_primitive(), regularizer))
        }
    }
}
