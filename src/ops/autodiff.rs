//! The hand-written autodiff implementation of [`Hm2bpBackend`]: the forward runs the inner
//! backend's op and records a [`Backward`] step whose gradient is the HM2-BP rule.

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, TensorMetadata};

use super::{Hm2bpBackend, shape3};
use crate::hm2bp::DenseSpec;

/// State kept from the forward pass for the HM2-BP backward.
#[derive(Debug, Clone)]
struct DenseState<B: Backend> {
    input: FloatTensor<B>,
    output: FloatTensor<B>,
    weight: FloatTensor<B>,
    labels: IntTensor<B>,
    spec: DenseSpec,
}

#[derive(Debug)]
struct SpikingDenseBackward;

impl<B: Hm2bpBackend> Backward<B, 2> for SpikingDenseBackward {
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
        let in_shape = st.input.shape();
        let (b, t, n_in) = (in_shape[0], in_shape[1], in_shape[2]);
        let n_out = st.weight.shape()[0];
        // ∂E/∂o: the spike-train gradient is the count gradient repeated over time.
        let d_post = B::float_reshape(B::float_mean_dim(grad, 1), [b, n_out].into());
        let (grad_w, d_pre) = B::spiking_dense_backward(
            st.input,
            st.output,
            st.weight,
            d_post,
            st.labels,
            st.spec,
            input_parent.is_some(),
        );
        if let Some(node) = weight_parent {
            grads.register::<B>(node.id, grad_w);
        }
        if let (Some(node), Some(d_pre)) = (input_parent, d_pre) {
            let d = B::float_reshape(d_pre, shape3(b, 1, n_in));
            grads.register::<B>(node.id, B::float_expand(d, shape3(b, t, n_in)));
        }
    }
}

impl<B: Hm2bpBackend, C: CheckpointStrategy> Hm2bpBackend for Autodiff<B, C> {
    fn spiking_dense(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        labels: IntTensor<Self>,
        spec: DenseSpec,
    ) -> FloatTensor<Self> {
        match SpikingDenseBackward
            .prepare::<C>([input.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let x = input.into_primitive();
                let w = weight.into_primitive();
                let out = B::spiking_dense(x.clone(), w.clone(), labels.clone(), spec);
                let state = DenseState {
                    input: x,
                    output: out.clone(),
                    weight: w,
                    labels,
                    spec,
                };
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::spiking_dense(
                input.into_primitive(),
                weight.into_primitive(),
                labels,
                spec,
            )),
        }
    }
}
