//! The weight regulariser's penalty (spec S12) as CubeCL kernels, the device form of
//! [`crate::ops::penalty::device_penalty`] in two or three launches instead of a dozen tensor
//! operations: each row's barrier `exp(β (S_i − 1))` by one cube per row (a shared-memory
//! tree reduction of `(w/L)²`), the running total plus the penalty `λ (N_in L / 2) Σ_i
//! barrier_i` by one cube (a loss collects its layers' penalties without additions) — both in
//! one cube for a weight of few rows — and on the backward `g · R_ij = g λ β (w_ij/L)
//! barrier_i` by one thread per weight.

use burn::backend::TensorMetadata;
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::reduce::{UNITS, tree_sum, tree_sum_groups};
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

/// One cube: `value[0] = total[0] + scale · Σ barriers`.
#[cube(launch)]
pub fn penalty_sum_kernel(
    barriers: &Tensor<f32>,
    total: &Tensor<f32>,
    value: &mut Tensor<f32>,
    scale: f32,
) {
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
        value[0] = total[0] + scale * shared[0];
    }
}

/// Rows of a weight small enough for [`small_penalty_kernel`] (at most eight rounds of its
/// groups).
pub const MAX_SMALL_ROWS: u32 = 64;
/// Units per row in [`small_penalty_kernel`] (a cube holds `UNITS / LANES` groups).
const LANES: u32 = 32;
/// `log2(LANES)`.
const LANE_LEVELS: u32 = 5;

/// [`barrier_kernel`] and [`penalty_sum_kernel`] in one cube, for a weight of at most
/// [`MAX_SMALL_ROWS`] rows: groups of [`LANES`] units take a row each, round after round (a
/// tree over the group's lanes), then unit 0 adds the barriers in row order.
#[cube(launch)]
pub fn small_penalty_kernel(
    weight: &Tensor<f32>,
    total: &Tensor<f32>,
    barriers: &mut Tensor<f32>,
    value: &mut Tensor<f32>,
    shape: PenaltyShape,
    consts: PenaltyConsts,
) {
    let i = UNIT_POS as usize;
    let (lane, group) = (i % LANES as usize, i / LANES as usize);
    let groups = (UNITS / LANES) as usize;
    let n = shape.row_len as usize;
    let rows = shape.rows as usize;
    let mut shared = Shared::<[f32]>::new_slice(UNITS as usize);
    let mut rows_barrier = Shared::<[f32]>::new_slice(MAX_SMALL_ROWS as usize);
    let rounds = rows.div_ceil(groups);
    for round in 0..rounds {
        let row = round * groups + group;
        let mut sum = 0.0f32;
        if row < rows {
            let mut k = lane;
            while k < n {
                let w = weight[row * n + k] * consts.inv_limit;
                sum += w * w;
                k += LANES as usize;
            }
        }
        shared[i] = sum;
        sync_cube();
        tree_sum_groups(&mut shared, LANES, LANE_LEVELS);
        if lane == 0 && row < rows {
            let b = f32::exp(consts.beta * (shared[i] / f32::cast_from(shape.row_len) - 1.0));
            barriers[row] = b;
            rows_barrier[row] = b;
        }
        sync_cube();
    }
    if i == 0 {
        let mut sum = 0.0f32;
        for row in 0..rows {
            sum += rows_barrier[row];
        }
        value[0] = total[0] + consts.scale * sum;
    }
}

/// A weight's shape as [`small_penalty_kernel`] takes it.
#[derive(CubeType, CubeLaunch, Clone, Copy)]
pub struct PenaltyShape {
    pub rows: u32,
    pub row_len: u32,
}

/// The regulariser's constants as [`small_penalty_kernel`] takes them: `1/L`, β and the
/// penalty's factor `λ N_in L / 2`.
#[derive(CubeType, CubeLaunch, Clone, Copy)]
pub struct PenaltyConsts {
    pub inv_limit: f32,
    pub beta: f32,
    pub scale: f32,
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

/// Whether the kernels take this weight and the total or gradient beside it (`f32`; others go
/// the tensor-operation way).
pub(super) fn fits(weight: &CubeTensor, other: &CubeTensor) -> bool {
    weight.dtype == DType::F32 && other.dtype == DType::F32 && weight.shape().num_dims() == 2
}

/// `total [1]` plus the penalty of `weight [rows, row_len]`, and the rows' barriers
/// `[rows, 1]`.
pub(super) fn forward(
    total: CubeTensor,
    weight: CubeTensor,
    r: &WeightRegularizer,
) -> (CubeTensor, CubeTensor) {
    let [rows, row_len] = [weight.shape()[0], weight.shape()[1]];
    let weight = into_contiguous(weight);
    let client = weight.client.clone();
    let barriers = empty_like(&weight, vec![rows, 1], DType::F32);
    let value = empty_like(&barriers, vec![1], DType::F32);
    let scale = (r.lambda * row_len as f64 * r.limit / 2.0) as f32;
    if rows <= MAX_SMALL_ROWS as usize {
        small_penalty_kernel::launch(
            &client,
            CubeCount::Static(1, 1, 1),
            CubeDim::new_1d(UNITS),
            weight.into_tensor_arg(),
            into_contiguous(total).into_tensor_arg(),
            barriers.clone().into_tensor_arg(),
            value.clone().into_tensor_arg(),
            PenaltyShapeLaunch::new(rows as u32, row_len as u32),
            PenaltyConstsLaunch::new((1.0 / r.limit) as f32, r.beta as f32, scale),
        );
        return (value, barriers);
    }
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
    penalty_sum_kernel::launch(
        &client,
        CubeCount::Static(1, 1, 1),
        CubeDim::new_1d(UNITS),
        barriers.clone().into_tensor_arg(),
        into_contiguous(total).into_tensor_arg(),
        value.clone().into_tensor_arg(),
        scale,
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
