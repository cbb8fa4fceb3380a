//! The count loss as one CubeCL kernel (see [`crate::ops::count_loss`]): thread per sample,
//! the host form's `f32` operations in its order.

use burn::backend::Cube;
use burn::backend::TensorMetadata;
use burn::backend::tensor::IntTensor;
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::{elementwise, empty_like};
use crate::rule::output::CountTargets;

/// Thread per sample `b`: `loss[b] = β_b ½ Σ_i m_bi d_bi²` and `grad[b, i] = β_b m_bi d_bi`
/// (labels that are no class get the undesired target everywhere).
#[cube(launch)]
pub fn count_loss_kernel(
    counts: &Tensor<f32>,
    weight: &Tensor<f32>,
    labels: &Tensor<u32>,
    loss: &mut Tensor<f32>,
    grad: &mut Tensor<f32>,
    classes: u32,
    targets: CountTargetsArgs,
) {
    if ABSOLUTE_POS >= loss.len() {
        terminate!();
    }
    let c = classes as usize;
    let label = labels[ABSOLUTE_POS] as usize;
    let w = weight[ABSOLUTE_POS];
    let mut sum = 0.0f32;
    for i in 0..c {
        let mut y = targets.undesired;
        if i == label {
            y = targets.desired;
        }
        let d = counts[ABSOLUTE_POS * c + i] - y;
        let mut g = 0.0f32;
        if f32::abs(d) > targets.margin {
            sum += d * d;
            g = w * d;
        }
        grad[ABSOLUTE_POS * c + i] = g;
    }
    loss[ABSOLUTE_POS] = 0.5 * sum * w;
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

/// `(loss [B], grad [B, C])` in one launch.
pub(super) fn forward(
    [counts, weight]: [CubeTensor; 2],
    labels: IntTensor<Cube>,
    t: CountTargets,
) -> (CubeTensor, CubeTensor) {
    let [b, c] = [counts.shape()[0], counts.shape()[1]];
    let client = counts.client.clone();
    let labels = super::labels_u32(labels);
    let (counts, weight) = (into_contiguous(counts), into_contiguous(weight));
    let loss = empty_like(&counts, vec![b], DType::F32);
    let grad = empty_like(&counts, vec![b, c], DType::F32);
    let (count, dim) = elementwise(&client, b);
    count_loss_kernel::launch(
        &client,
        count,
        dim,
        counts.into_tensor_arg(),
        weight.into_tensor_arg(),
        labels.into_tensor_arg(),
        loss.clone().into_tensor_arg(),
        grad.clone().into_tensor_arg(),
        c as u32,
        CountTargetsArgsLaunch::new(t.desired, t.undesired, t.margin),
    );
    (loss, grad)
}
