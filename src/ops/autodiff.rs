//! The hand-written autodiff implementation of [`Hm2bpBackend`]: the forward simulates the
//! layer (keeping the spike rasters) and records a [`Backward`] step whose gradient is the
//! HM2-BP rule.

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, TensorMetadata};

use std::sync::Arc;

use super::{
    ForwardRasters, Hm2bpBackend, dims3, event_driven, host_backward, host_forward, shape3,
};
use crate::hm2bp::LayerSpec;

/// What the forward pass keeps of the spike trains for the backward.
#[derive(Debug, Clone)]
enum Saved<B: Backend> {
    /// Per-sample event lists (event-driven host kernels).
    Rasters(Arc<ForwardRasters>),
    /// The dense input and output spike trains (generic path, on the device).
    Tensors {
        input: FloatTensor<B>,
        output: FloatTensor<B>,
    },
}

/// State kept from the forward pass for the HM2-BP backward.
#[derive(Debug, Clone)]
struct DenseState<B: Backend> {
    saved: Saved<B>,
    /// `[B, T, n_in]` of the input.
    input_shape: [usize; 3],
    weight: FloatTensor<B>,
    labels: IntTensor<B>,
    spec: LayerSpec,
}

#[derive(Debug)]
struct SpikingLayerBackward;

impl<B: Hm2bpBackend> Backward<B, 2> for SpikingLayerBackward {
    type State = DenseState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [input_parent, weight_parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let st = ops.state;
        let [b, t, n_in] = st.input_shape;
        let n_out = st.spec.n_out(&st.weight.shape());
        // ∂E/∂o: the spike-train gradient is the count gradient repeated over time.
        let d_post = B::float_reshape(B::float_mean_dim(grad, 1), [b, n_out].into());
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
            Saved::Tensors { input, output } => B::spiking_layer_backward(
                input,
                output,
                st.weight,
                d_post,
                st.labels,
                st.spec,
                input_parent.is_some(),
            ),
        };
        if let (Some(node), Some(grad_w)) = (weight_parent, grad_w) {
            grads.register::<B>(node.id, grad_w);
        }
        if let (Some(node), Some(d_pre)) = (input_parent, d_pre) {
            let d = B::float_reshape(d_pre, shape3(b, 1, n_in));
            grads.register::<B>(node.id, B::float_expand(d, shape3(b, t, n_in)));
        }
    }
}

impl<B: Hm2bpBackend, C: CheckpointStrategy> Hm2bpBackend for Autodiff<B, C> {
    fn spiking_layer(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        labels: IntTensor<Self>,
        spec: LayerSpec,
    ) -> FloatTensor<Self> {
        match SpikingLayerBackward
            .prepare::<C>([input.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let x = input.into_primitive();
                let input_shape = dims3(&x);
                let w = weight.into_primitive();
                let (out, saved) = if event_driven::<B>(&spec) {
                    let (out, rasters) = host_forward::<B>(x, w.clone(), spec);
                    (out, Saved::Rasters(Arc::new(rasters)))
                } else {
                    let out = B::spiking_layer(x.clone(), w.clone(), labels.clone(), spec);
                    let saved = Saved::Tensors {
                        input: x,
                        output: out.clone(),
                    };
                    (out, saved)
                };
                let state = DenseState {
                    saved,
                    input_shape,
                    weight: w,
                    labels,
                    spec,
                };
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::spiking_layer(
                input.into_primitive(),
                weight.into_primitive(),
                labels,
                spec,
            )),
        }
    }
}
