//! The count loss as one CubeCL kernel (see [`crate::ops::count_loss`]): one cube whose units
//! take the samples, the host form's `f32` operations in its order, the batch mean by a tree
//! over the units' shares.

use burn::backend::Cube;
use burn::backend::TensorMetadata;
use burn::backend::tensor::IntTensor;
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::empty_like;
use super::reduce::{UNITS, tree_sum};
use crate::ops::LossReduce;
use crate::rule::output::CountTargets;

/// One cube; its units take the samples in turn (unit `u`: samples `u`, `u + UNITS`, …). Per
/// sample `b`: `loss[b] = β_b ½ Σ_i m_bi d_bi²` and `grad[b, i] = (β_b m_bi d_bi) · grad_scale`
/// (labels that are no class get the undesired target everywhere); then the units' shares of
/// the losses summed over a tree, `mean[0] = Σ_b loss[b] / B`.
#[cube(launch)]
pub fn count_loss_kernel(
    counts: &Tensor<f32>,
    weight: &Tensor<f32>,
    labels: &Tensor<u32>,
    loss: &mut Tensor<f32>,
    grad: &mut Tensor<f32>,
    mean: &mut Tensor<f32>,
    classes: u32,
    grad_scale: f32,
    targets: CountTargetsArgs,
) {
    let u = UNIT_POS as usize;
    let c = classes as usize;
    let mut share = 0.0f32;
    let mut s = u;
    while s < loss.len() {
        let label = labels[s] as usize;
        let w = weight[s];
        let mut sum = 0.0f32;
        for i in 0..c {
            let mut y = targets.undesired;
            if i == label {
                y = targets.desired;
            }
            let d = counts[s * c + i] - y;
            let mut g = 0.0f32;
            if f32::abs(d) > targets.margin {
                sum += d * d;
                g = w * d;
            }
            grad[s * c + i] = g * grad_scale;
        }
        let l = 0.5 * sum * w;
        loss[s] = l;
        share += l;
        s += UNITS as usize;
    }
    let mut shared = Shared::<[f32]>::new_slice(UNITS as usize);
    shared[u] = share;
    sync_cube();
    tree_sum(&mut shared);
    if u == 0 {
        mean[0] = shared[0] / f32::cast_from(loss.len());
    }
}

/// The targets as the kernel takes them.
#[derive(CubeType, CubeLaunch, Clone, Copy)]
pub struct CountTargetsArgs {
    pub desired: f32,
    pub undesired: f32,
    pub margin: f32,
}

/// Whether the kernel takes these tensors (`f32` counts and weights).
pub(super) fn fits(counts: &CubeTensor, weight: &CubeTensor) -> bool {
    counts.dtype == DType::F32 && weight.dtype == DType::F32
}

/// `(loss, grad [B, C])` in one launch: the loss of every sample `[B]` or their mean `[1]`
/// (`reduce`), and its gradient with respect to the counts for an upstream gradient of 1.
pub(super) fn forward(
    [counts, weight]: [CubeTensor; 2],
    labels: IntTensor<Cube>,
    t: CountTargets,
    reduce: LossReduce,
) -> (CubeTensor, CubeTensor) {
    let [b, c] = [counts.shape()[0], counts.shape()[1]];
    let client = counts.client.clone();
    let labels = super::labels_u32(labels);
    let (counts, weight) = (into_contiguous(counts), into_contiguous(weight));
    let loss = empty_like(&counts, vec![b], DType::F32);
    let grad = empty_like(&counts, vec![b, c], DType::F32);
    let mean = empty_like(&counts, vec![1], DType::F32);
    count_loss_kernel::launch(
        &client,
        CubeCount::Static(1, 1, 1),
        CubeDim::new_1d(UNITS),
        counts.into_tensor_arg(),
        weight.into_tensor_arg(),
        labels.into_tensor_arg(),
        loss.clone().into_tensor_arg(),
        grad.clone().into_tensor_arg(),
        mean.clone().into_tensor_arg(),
        c as u32,
        reduce.grad_scale(b),
        CountTargetsArgsLaunch::new(t.desired, t.undesired, t.margin),
    );
    match reduce {
        LossReduce::PerSample => (loss, grad),
        LossReduce::Mean => (mean, grad),
    }
}
