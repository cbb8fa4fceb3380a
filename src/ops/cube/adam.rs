//! Adam as one CubeCL kernel (see [`crate::ops::adam`]): thread per value, the host's `f32`
//! operations in the host's order ([`crate::train::adam`]).

use burn::backend::TensorMetadata;
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::{elementwise, empty_like};
use crate::ops::AdamUpdate;

/// The settings as the kernel takes them.
#[derive(CubeType, CubeLaunch, Clone, Copy)]
pub struct AdamConsts {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub bias_1: f32,
    pub bias_2: f32,
    pub lr: f32,
}

/// Thread per value: the new weight and moments.
#[cube(launch)]
pub fn adam_kernel(
    weight: &Tensor<f32>,
    grad: &Tensor<f32>,
    m: &Tensor<f32>,
    v: &Tensor<f32>,
    out_weight: &mut Tensor<f32>,
    out_m: &mut Tensor<f32>,
    out_v: &mut Tensor<f32>,
    c: AdamConsts,
) {
    if ABSOLUTE_POS >= weight.len() {
        terminate!();
    }
    let g = grad[ABSOLUTE_POS];
    let m_new = c.beta_1 * m[ABSOLUTE_POS] + (1.0 - c.beta_1) * g;
    let v_new = c.beta_2 * v[ABSOLUTE_POS] + (1.0 - c.beta_2) * g * g;
    let step = (m_new / c.bias_1) / (f32::sqrt(v_new / c.bias_2) + c.epsilon);
    out_weight[ABSOLUTE_POS] = weight[ABSOLUTE_POS] - c.lr * step;
    out_m[ABSOLUTE_POS] = m_new;
    out_v[ABSOLUTE_POS] = v_new;
}

/// Whether the fused kernel takes these tensors (all `f32`; others go the generic way).
pub(super) fn fits(tensors: &[&CubeTensor]) -> bool {
    tensors.iter().all(|t| t.dtype == DType::F32)
}

/// The fused update: new `(weight, m, v)`, in one launch.
pub(super) fn update(
    [weight, grad, m, v]: [CubeTensor; 4],
    s: AdamUpdate,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let shape: Vec<usize> = weight.shape().iter().copied().collect();
    let n: usize = shape.iter().product();
    let client = weight.client.clone();
    let [weight, grad, m, v] = [weight, grad, m, v].map(into_contiguous);
    let out = [(); 3].map(|_| empty_like(&weight, shape.clone(), DType::F32));
    let (count, dim) = elementwise(&client, n);
    adam_kernel::launch(
        &client,
        count,
        dim,
        weight.into_tensor_arg(),
        grad.into_tensor_arg(),
        m.into_tensor_arg(),
        v.into_tensor_arg(),
        out[0].clone().into_tensor_arg(),
        out[1].clone().into_tensor_arg(),
        out[2].clone().into_tensor_arg(),
        AdamConstsLaunch::new(s.beta_1, s.beta_2, s.epsilon, s.bias_1, s.bias_2, s.lr),
    );
    let [w, m, v] = out;
    (w, m, v)
}
