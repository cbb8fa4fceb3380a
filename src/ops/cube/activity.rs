//! A layer's activity statistics as one CubeCL kernel (see
//! [`crate::ops::activity`]): one cube sums every neuron's counts over the batch and, through
//! a tree over shared memory, the counts and the silent cells of the whole layer.

use burn::backend::TensorMetadata;
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::empty_like;
use super::reduce::{UNITS, tree_sum};

/// One cube over `counts [B, n]`: `out = [mean count, fraction of zero cells, Σ_b counts of
/// each neuron…]`.
#[cube(launch)]
pub fn activity_kernel(counts: &Tensor<f32>, out: &mut Tensor<f32>, batch: u32, n: u32) {
    let i = UNIT_POS as usize;
    let (b_len, n) = (batch as usize, n as usize);
    let mut sums = Shared::<[f32]>::new_slice(UNITS as usize);
    let mut zeros = Shared::<[f32]>::new_slice(UNITS as usize);
    let mut total = 0.0f32;
    let mut silent = 0.0f32;
    let mut j = i;
    while j < n {
        let mut s = 0.0f32;
        for b in 0..b_len {
            let c = counts[b * n + j];
            s += c;
            if c == 0.0 {
                silent += 1.0;
            }
        }
        out[2 + j] = s;
        total += s;
        j += UNITS as usize;
    }
    sums[i] = total;
    zeros[i] = silent;
    sync_cube();
    tree_sum(&mut sums);
    tree_sum(&mut zeros);
    if i == 0 {
        let cells = f32::cast_from(batch * (n as u32));
        out[0] = sums[0] / cells;
        out[1] = zeros[0] / cells;
    }
}

/// Whether the kernel takes these counts (`f32`).
pub(super) fn fits(counts: &CubeTensor) -> bool {
    counts.dtype == DType::F32
}

/// `[2 + n]` statistics of `counts [B, n]`, in one launch.
pub(super) fn statistics(counts: CubeTensor) -> CubeTensor {
    let [b, n] = [counts.shape()[0], counts.shape()[1]];
    let counts = into_contiguous(counts);
    let client = counts.client.clone();
    let out = empty_like(&counts, vec![2 + n], DType::F32);
    activity_kernel::launch(
        &client,
        CubeCount::Static(1, 1, 1),
        CubeDim::new_1d(UNITS),
        counts.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        b as u32,
        n as u32,
    );
    out
}
