//! The weight regulariser's penalty (spec S12) as an op: its value on the forward pass, and on
//! autodiff devices a backward that writes `R` (the formula of
//! [`WeightRegularizer::gradient`]) straight into the weight's gradient, instead of a chain of
//! element-wise tensor ops and their derivatives. On the CPU backends both run on the host, rows
//! in parallel, in `f64` ([`host_penalty`]); on the device backends they run on the device in
//! `f32` ([`device_penalty`]: no weight read back, no scalar gradient read, no upload), which
//! agrees with the host to `f32` rounding.

use std::sync::Arc;

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, TensorMetadata};
use burn::tensor::{Scalar, Shape, TensorData};

use super::SpikingOps;
use super::host::{f32s, host_f32};
use crate::rule::regularizer::WeightRegularizer;

/// The penalty `[1]` of `weight [rows, row_len]`, and what its backward needs.
pub(super) fn host_penalty<B: Backend>(
    weight: FloatTensor<B>,
    regularizer: WeightRegularizer,
) -> (FloatTensor<B>, PenaltyState<B>) {
    let device = weight.device();
    let row_len = weight.shape()[1];
    let weights = host_f32::<B>("weights", weight);
    let barriers = regularizer.barriers(f32s(&weights), row_len);
    let p = regularizer.penalty(&barriers, row_len);
    let value = B::float_from_data(TensorData::new(vec![p as f32], [1]), &device);
    let state = PenaltyState::Host {
        weights: Arc::new(weights),
        barriers: Arc::new(barriers),
        regularizer,
    };
    (value, state)
}

/// [`host_penalty`] with the backend's tensor operations, on its device, in `f32`:
/// `S_i = mean_l (w_il/L)²`, barrier `exp(β (S_i − 1))` `[rows, 1]`, `P = λ (N_in L / 2) Σ_i
/// barrier_i`. (Used by the CubeCL backends; on the CPU ones by its test against the host.)
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
pub(super) fn device_penalty<B: Backend>(
    weight: FloatTensor<B>,
    regularizer: WeightRegularizer,
) -> (FloatTensor<B>, PenaltyState<B>) {
    let r = regularizer;
    let row_len = weight.shape()[1] as f64;
    let scaled = B::float_mul_scalar(weight.clone(), Scalar::Float(1.0 / r.limit));
    let s = B::float_mean_dim(B::float_mul(scaled.clone(), scaled), 1);
    let exponent = B::float_mul_scalar(
        B::float_sub_scalar(s, Scalar::Float(1.0)),
        Scalar::Float(r.beta),
    );
    let barriers = B::float_exp(exponent);
    let value = B::float_mul_scalar(
        B::float_sum(barriers.clone()),
        Scalar::Float(r.lambda * row_len * r.limit / 2.0),
    );
    let state = PenaltyState::Device {
        weight,
        barriers,
        regularizer,
    };
    (value, state)
}

/// What the backward needs: the weights (pre-update), their rows' barriers and the
/// regulariser, on the host or on the device.
#[derive(Debug, Clone)]
pub enum PenaltyState<B: Backend> {
    /// From [`host_penalty`].
    Host {
        /// The weights, read back.
        weights: Arc<TensorData>,
        /// Each row's barrier `exp(β (S_i − 1))`, in `f64`.
        barriers: Arc<Vec<f64>>,
        /// λ, β, L.
        regularizer: WeightRegularizer,
    },
    /// From [`device_penalty`]: `weight [rows, row_len]`, `barriers [rows, 1]`.
    Device {
        /// The weights.
        weight: FloatTensor<B>,
        /// Each row's barrier.
        barriers: FloatTensor<B>,
        /// λ, β, L.
        regularizer: WeightRegularizer,
    },
}

impl<B: Backend> PenaltyState<B> {
    /// `g · R`, the weight's gradient, from the penalty's gradient `g [1]`.
    pub(super) fn gradient(self, g: FloatTensor<B>) -> FloatTensor<B> {
        match self {
            Self::Host {
                weights,
                barriers,
                regularizer,
            } => {
                let device = g.device();
                let g = f32s(&host_f32::<B>("the penalty's gradient", g))[0];
                let grad = regularizer.gradient(f32s(&weights), &barriers, f64::from(g));
                B::float_from_data(TensorData::new(grad, weights.shape().clone()), &device)
            }
            Self::Device {
                weight,
                barriers,
                regularizer: r,
            } => {
                // R_ij = λ β (w_ij/L) barrier_i, times g (broadcast from [1, 1]).
                let r_ij = B::float_mul_scalar(
                    B::float_mul(weight, barriers),
                    Scalar::Float(r.lambda * r.beta / r.limit),
                );
                B::float_mul(r_ij, B::float_reshape(g, Shape::new([1, 1])))
            }
        }
    }
}

#[derive(Debug)]
struct PenaltyBackward;

impl<B: SpikingOps> Backward<B, 2> for PenaltyBackward {
    type State = PenaltyState<B>;

    /// The gradient `g` flows on to the total unchanged, and to the weight as `g · R`.
    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let g = grads.consume::<B>(&ops.node);
        let [total, weight] = ops.parents;
        if let Some(node) = weight {
            grads.register::<B>(node.id, B::penalty_gradient(ops.state, g.clone()));
        }
        if let Some(node) = total {
            grads.register::<B>(node.id, g);
        }
    }
}

/// [`Hm2bpBackend::add_weight_penalty`](super::Hm2bpBackend::add_weight_penalty) on an
/// autodiff backend: the inner backend's [`SpikingOps::penalty_forward`].
pub(super) fn autodiff_penalty<B: SpikingOps, C: CheckpointStrategy>(
    total: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    regularizer: WeightRegularizer,
) -> FloatTensor<Autodiff<B, C>> {
    let prepared = PenaltyBackward
        .prepare::<C>([total.node(), weight.node()])
        .compute_bound()
        .stateful();
    let (total, weight) = (total.into_primitive(), weight.into_primitive());
    match prepared {
        OpsKind::Tracked(prep) => {
            let (value, state) = B::penalty_forward(total, weight, regularizer);
            prep.finish(state, value)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::add_weight_penalty(total, weight, regularizer)),
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::backend::ops::FloatTensorOps;

    /// The device formula (tensor operations in `f32`) agrees with the host's (`f64`) on the
    /// penalty and on `g · R`, for both regulariser presets.
    #[test]
    fn device_penalty_matches_the_host() {
        let device = Default::default();
        let (rows, row_len) = (7, 33);
        let values: Vec<f32> = (0..rows * row_len)
            .map(|k| ((k * 37 % 101) as f32 - 50.0) * 0.09)
            .collect();
        let weight =
            || Flex::float_from_data(TensorData::new(values.clone(), [rows, row_len]), &device);
        let g = || Flex::float_from_data(TensorData::new(vec![0.75f32], [1]), &device);
        let close = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 2e-6 * y.abs().max(1e-3))
        };
        for r in [
            WeightRegularizer::LOG_FAITHFUL,
            WeightRegularizer::CODE_FAITHFUL,
        ] {
            let (hv, hs) = host_penalty::<Flex>(weight(), r);
            let (dv, ds) = device_penalty::<Flex>(weight(), r);
            let read = |t| host_f32::<Flex>("test", t).try_to_vec::<f32>().unwrap();
            let (hv, dv) = (read(hv), read(dv));
            assert!(close(&dv, &hv), "{r:?}: penalty {dv:?} vs host {hv:?}");
            let (hg, dg) = (read(hs.gradient(g())), read(ds.gradient(g())));
            assert!(close(&dg, &hg), "{r:?}: gradients differ");
            assert!(hg.iter().any(|&x| x != 0.0));
        }
    }
}
