//! The weight regulariser's penalty (spec S12) as CubeCL kernels, the device form of
//! [`crate::ops::penalty::device_penalty`] in three launches instead of a dozen tensor
//! operations: each row's barrier `exp(β (S_i − 1))` by one cube per row (a shared-memory
//! tree reduction of `(w/L)²`), the penalty `λ (N_in L / 2) Σ_i barrier_i` by one cube, and
//! on the backward `g · R_ij = g λ β (w_ij/L) barrier_i` by one thread per weight.

use burn::backend::TensorMetadata;
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::reduce::{UNITS, tree_sum};
use super::{elementwise, empty_like};
use crate::rule::regularizer::WeightRegularizer;

/// One cube per row of `weight [rows, row_len]`: `barriers[row] = exp(β (mean_l (w/L)² − 1))`.
#[cube(launch)]
pub fn barrier_kernel(
    weight: &Tensor<f32>,
    barriers: &mut Tensor<f32>,
    row_len: u32,
    inv_limit: f32,
    beta: f32,
) {
    let row = CUBE_POS;
    let i = UNIT_POS as usize;
    let n = row_len as usize;
    let mut shared = Shared::<[f32]>::new_slice(UNITS as usize);
    let mut sum = 0.0f32;
    let mut k = i;
    while k < n {
        let w = weight[row * n + k] * inv_limit;
        sum += w * w;
        k += UNITS as usize;
    }
    shared[i] = sum;
    sync_cube();
    tree_sum(&mut shared);
    if i == 0 {
        barriers[row] = f32::exp(beta * (shared[0] / f32::cast_from(row_len) - 1.0));
    }
}

/// One cube: `value[0] = scale · Σ barriers`.
#[cube(launch)]
pub fn penalty_sum_kernel(barriers: &Tensor<f32>, value: &mut Tensor<f32>, scale: f32) {
    let i = UNIT_POS as usize;
    let mut shared = Shared::<[f32]>::new_slice(UNITS as usize);
    let mut sum = 0.0f32;
    let mut k = i;
    while k < barriers.len() {
        sum += barriers[k];
        k += UNITS as usize;
    }
    shared[i] = sum;
    sync_cube();
    tree_sum(&mut shared);
    if i == 0 {
        value[0] = scale * shared[0];
    }
}

/// Thread per weight: `grad = g[0] · scale · w · barriers[row]`.
#[cube(launch)]
pub fn penalty_grad_kernel(
    weight: &Tensor<f32>,
    barriers: &Tensor<f32>,
    g: &Tensor<f32>,
    grad: &mut Tensor<f32>,
    row_len: u32,
    scale: f32,
) {
    if ABSOLUTE_POS >= weight.len() {
        terminate!();
    }
    let row = ABSOLUTE_POS / row_len as usize;
    grad[ABSOLUTE_POS] = g[0] * (scale * weight[ABSOLUTE_POS] * barriers[row]);
}

/// Whether the kernels take this weight (`f32`; others go the tensor-operation way).
pub(super) fn fits(weight: &CubeTensor) -> bool {
    weight.dtype == DType::F32 && weight.shape().num_dims() == 2
}

/// The penalty `[1]` and the rows' barriers `[rows, 1]` of `weight [rows, row_len]`.
pub(super) fn forward(weight: CubeTensor, r: &WeightRegularizer) -> (CubeTensor, CubeTensor) {
    let [rows, row_len] = [weight.shape()[0], weight.shape()[1]];
    let weight = into_contiguous(weight);
    let client = weight.client.clone();
    let barriers = empty_like(&weight, vec![rows, 1], DType::F32);
    barrier_kernel::launch(
        &client,
        CubeCount::Static(rows as u32, 1, 1),
        CubeDim::new_1d(UNITS),
        weight.into_tensor_arg(),
        barriers.clone().into_tensor_arg(),
        row_len as u32,
        (1.0 / r.limit) as f32,
        r.beta as f32,
    );
    let value = empty_like(&barriers, vec![1], DType::F32);
    penalty_sum_kernel::launch(
        &client,
        CubeCount::Static(1, 1, 1),
        CubeDim::new_1d(UNITS),
        barriers.clone().into_tensor_arg(),
        value.clone().into_tensor_arg(),
        (r.lambda * row_len as f64 * r.limit / 2.0) as f32,
    );
    (value, barriers)
}

/// `g · R` `[rows, row_len]` from the weight, its rows' barriers and the penalty's gradient
/// `g [1]`.
pub(super) fn gradient(
    weight: CubeTensor,
    barriers: CubeTensor,
    g: CubeTensor,
    r: &WeightRegularizer,
) -> CubeTensor {
    let [rows, row_len] = [weight.shape()[0], weight.shape()[1]];
    let weight = into_contiguous(weight);
    let client = weight.client.clone();
    let grad = empty_like(&weight, vec![rows, row_len], DType::F32);
    let (count, dim) = elementwise(&client, rows * row_len);
    penalty_grad_kernel::launch(
        &client,
        count,
        dim,
        weight.into_tensor_arg(),
        into_contiguous(barriers).into_tensor_arg(),
        into_contiguous(g).into_tensor_arg(),
        grad.clone().into_tensor_arg(),
        row_len as u32,
        (r.lambda * r.beta / r.limit) as f32,
    );
    grad
}
