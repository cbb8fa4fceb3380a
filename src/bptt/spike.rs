//! The spike nonlinearity as a custom autodiff op: Heaviside step forward, surrogate
//! derivative backward.

// burn-ndarray is deprecated in Burn 0.22 but remains a supported backend of this crate.
#![cfg_attr(feature = "ndarray", allow(deprecated))]

use burn::backend::autodiff::{
    NodeId,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind, unary},
};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, Backend, Dispatch, TensorMetadata, backend_extension, get_or_init_device_settings,
};
use burn::tensor::Tensor;

use super::surrogate::Surrogate;

/// Backends that run the surrogate-gradient spike op.
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    Autodiff
)]
pub trait SpikeBackend: Backend {
    /// `H(x)`: 1 where `x > 0`, else 0. `surrogate` is the derivative the autodiff backend
    /// uses in its place.
    fn spike_step(x: FloatTensor<Self>, surrogate: Surrogate) -> FloatTensor<Self> {
        let _ = surrogate;
        let device = x.device();
        let bool_dtype = get_or_init_device_settings::<Self>(&device).bool_dtype;
        let zeros = Self::float_zeros(x.shape(), &device, x.dtype().into());
        let fired = Self::float_greater_elem(x, 0f32.into(), bool_dtype);
        Self::float_mask_fill(zeros, fired, 1f32.into())
    }
}

#[cfg(feature = "ndarray")]
impl SpikeBackend for burn::backend::NdArray {}
#[cfg(feature = "flex")]
impl SpikeBackend for burn::backend::Flex {}
#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl SpikeBackend for burn::backend::Cube {}

impl<B: SpikeBackend, C: CheckpointStrategy> SpikeBackend for Autodiff<B, C> {
    fn spike_step(x: FloatTensor<Self>, surrogate: Surrogate) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SpikeBackward;

        impl<B: Backend> Backward<B, 1> for SpikeBackward {
            type State = (NodeId, Surrogate);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let (x_id, surrogate) = ops.state;
                let x: FloatTensor<B> = checkpointer.retrieve_node_output(x_id);
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::float_mul(grad, surrogate.derivative::<B>(x))
                });
            }
        }

        match SpikeBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_id = prep.checkpoint(&x);
                let out = B::spike_step(x.into_primitive(), surrogate);
                prep.finish((x_id, surrogate), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::spike_step(x.into_primitive(), surrogate)),
        }
    }
}

/// Spikes `H(x)` of `x` (the scaled distance to threshold); on autodiff devices the gradient
/// is `surrogate`'s derivative.
pub fn spike<const D: usize>(x: Tensor<D>, surrogate: Surrogate) -> Tensor<D> {
    Tensor::from_dispatch(Dispatch::spike_step(x.into_dispatch(), surrogate))
}
