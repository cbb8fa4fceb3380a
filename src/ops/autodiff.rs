//! The hand-written autodiff implementation of [`Hm2bpBackend`], as in Burn's custom-kernel
//! example: both branches run the inner backend's op ([`SpikingOps::spiking_forward`]); a
//! tracked forward records a [`Backward`] step on the output counts whose state is the op's
//! [`Tape`], and whose gradient is the HM2-BP rule ([`SpikingOps::spiking_backward`]).

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, TensorMetadata};

use super::{
    Hm2bpBackend, KernelPath, LayerInput, LossReduce, SpikingOps, Tape, no_times, times_if_known,
};
use crate::rule::output::CountTargets;
use crate::rule::regularizer::WeightRegularizer;
use crate::rule::{LayerSpec, Needs};

#[derive(Debug)]
struct SpikingLayerBackward;

impl<B: SpikingOps> Backward<B, 2> for SpikingLayerBackward {
    type State = Tape<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [input_parent, weight_parent] = ops.parents;
        // ∂E/∂o of the output counts [B, n_out].
        let d_post = grads.consume::<B>(&ops.node);
        let needs = Needs {
            weight: weight_parent.is_some(),
            input: input_parent.is_some(),
        };
        let g = B::spiking_backward(ops.state, d_post, needs);
        if let (Some(node), Some(grad_w)) = (weight_parent, g.weight) {
            grads.register::<B>(node.id, grad_w);
        }
        if let (Some(node), Some(d_pre)) = (input_parent, g.input) {
            grads.register::<B>(node.id, d_pre);
        }
    }
}

impl<B: SpikingOps, C: CheckpointStrategy> Hm2bpBackend for Autodiff<B, C> {
    fn spiking_layer(
        counts: FloatTensor<Self>,
        words: IntTensor<Self>,
        times: IntTensor<Self>,
        weight: FloatTensor<Self>,
        labels: IntTensor<Self>,
        spec: LayerSpec,
        kernels: KernelPath,
    ) -> (FloatTensor<Self>, IntTensor<Self>, IntTensor<Self>) {
        let prepared = SpikingLayerBackward
            .prepare::<C>([counts.node(), weight.node()])
            .compute_bound()
            .stateful();
        let input = LayerInput {
            n_in: counts.shape()[1],
            words,
            // The layer below's spike steps go with its output counts, which are this input's.
            times: times_if_known::<B>(times).map(|t| (t, counts.into_primitive())),
            weight: weight.into_primitive(),
            labels,
            spec,
            kernels,
        };
        let (counts, words, tape) = B::spiking_forward(input);
        let none = no_times::<B>(&words);
        match prepared {
            OpsKind::Tracked(prep) => {
                let times = tape.output_times().unwrap_or(none);
                (prep.finish(tape, counts), words, times)
            }
            OpsKind::UnTracked(prep) => (prep.finish(counts), words, none),
        }
    }

    fn add_weight_penalty(
        total: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        regularizer: WeightRegularizer,
    ) -> FloatTensor<Self> {
        super::penalty::autodiff_penalty::<B, C>(total, weight, regularizer)
    }

    fn count_loss(
        counts: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        labels: IntTensor<Self>,
        targets: CountTargets,
        reduce: LossReduce,
    ) -> FloatTensor<Self> {
        super::count_loss::autodiff_count_loss::<B, C>(counts, weight, labels, targets, reduce)
    }
}
