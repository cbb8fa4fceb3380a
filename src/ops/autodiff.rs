//! The hand-written autodiff implementation of [`Hm2bpBackend`]: the forward simulates the
//! layer (keeping the spike rasters) and records a [`Backward`] step on the output counts
//! whose gradient is the HM2-BP rule.

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, TensorMetadata};

use std::sync::Arc;

use super::{ForwardRasters, Hm2bpBackend, KernelPath, host_backward, host_forward, host_kernels};
use crate::rule::LayerSpec;

/// What the forward pass keeps of the spike trains for the backward.
#[derive(Debug, Clone)]
enum Saved<B: Backend> {
    /// Per-sample event lists (event-driven host kernels).
    Rasters(Arc<ForwardRasters>),
    /// The bit-packed input and output trains (device kernels or generic path, on the
    /// device).
    Words {
        input: IntTensor<B>,
        output: IntTensor<B>,
        kernels: KernelPath,
    },
}

/// State kept from the forward pass for the HM2-BP backward.
#[derive(Debug, Clone)]
struct LayerState<B: Backend> {
    saved: Saved<B>,
    /// Input neurons.
    n_in: usize,
    weight: FloatTensor<B>,
    labels: IntTensor<B>,
    spec: LayerSpec,
}

#[derive(Debug)]
struct SpikingLayerBackward;

impl<B: Hm2bpBackend> Backward<B, 2> for SpikingLayerBackward {
    type State = LayerState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [input_parent, weight_parent] = ops.parents;
        // ∂E/∂o of the output counts [B, n_out].
        let d_post = grads.consume::<B>(&ops.node);
        let st = ops.state;
        let (grad_w, d_pre) = match st.saved {
            Saved::Rasters(rasters) => host_backward::<B>(
                &rasters,
                st.weight,
                d_post,
                st.labels,
                st.spec,
                weight_parent.is_some(),
                input_parent.is_some(),
            ),
            Saved::Words {
                input,
                output,
                kernels,
            } => match st.spec {
                LayerSpec::Dense(spec) => B::dense_backward(
                    input,
                    output,
                    st.weight,
                    d_post,
                    st.labels,
                    spec,
                    kernels,
                    st.n_in,
                    weight_parent.is_some(),
                    input_parent.is_some(),
                ),
                LayerSpec::Local(spec) => B::local_backward(
                    input,
                    output,
                    st.weight,
                    d_post,
                    spec,
                    st.n_in,
                    weight_parent.is_some(),
                    input_parent.is_some(),
                ),
            },
        };
        if let (Some(node), Some(grad_w)) = (weight_parent, grad_w) {
            grads.register::<B>(node.id, grad_w);
        }
        if let (Some(node), Some(d_pre)) = (input_parent, d_pre) {
            grads.register::<B>(node.id, d_pre);
        }
    }
}

impl<B: Hm2bpBackend, C: CheckpointStrategy> Hm2bpBackend for Autodiff<B, C> {
    fn spiking_layer(
        counts: FloatTensor<Self>,
        words: IntTensor<Self>,
        weight: FloatTensor<Self>,
        labels: IntTensor<Self>,
        spec: LayerSpec,
        kernels: KernelPath,
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        match SpikingLayerBackward
            .prepare::<C>([counts.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let counts = counts.into_primitive();
                let n_in = counts.shape()[1];
                let w = weight.into_primitive();
                let (out_counts, out_words, saved) = match spec {
                    _ if !host_kernels::<B>(&spec, kernels) => {
                        let (c, ow) = B::spiking_layer(
                            counts,
                            words.clone(),
                            w.clone(),
                            labels.clone(),
                            spec,
                            kernels,
                        );
                        let saved = Saved::Words {
                            input: words,
                            output: ow.clone(),
                            kernels,
                        };
                        (c, ow, saved)
                    }
                    _ => {
                        let (c, ow, rasters) = host_forward::<B>(words, n_in, w.clone(), spec);
                        (c, ow, Saved::Rasters(Arc::new(rasters)))
                    }
                };
                let state = LayerState {
                    saved,
                    n_in,
                    weight: w,
                    labels,
                    spec,
                };
                (prep.finish(state, out_counts), out_words)
            }
            OpsKind::UnTracked(prep) => {
                let (c, ow) = B::spiking_layer(
                    counts.into_primitive(),
                    words,
                    weight.into_primitive(),
                    labels,
                    spec,
                    kernels,
                );
                (prep.finish(c), ow)
            }
        }
    }

    fn weight_penalty(
        weight: FloatTensor<Self>,
        regularizer: crate::rule::regularizer::WeightRegularizer,
    ) -> FloatTensor<Self> {
        super::penalty::autodiff_penalty::<B, C>(weight, regularizer)
    }
}
