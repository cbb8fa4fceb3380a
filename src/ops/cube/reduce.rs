//! Cube-level reductions shared by the kernels, each in a fixed order (no float atomics): one
//! cube of [`UNITS`] units, each summing a strided share, then a tree over shared memory
//! ([`tree_sum`]); or cubes of `lanes × slices` units whose slices' sums are added in slice
//! order ([`sum_slices`]).

use cubecl::prelude::*;

/// Units of a reducing cube (a power of two, at most WebGPU's default 256 per cube).
pub const UNITS: u32 = 256;
/// `log2(UNITS)`: the levels of the tree reduction.
const LEVELS: u32 = 8;

/// Sums `shared[0..UNITS]` into `shared[0]` (every unit of the cube calls it, after writing its
/// own slot and a `sync_cube`).
#[cube]
pub fn tree_sum(shared: &mut Shared<[f32]>) {
    tree_sum_groups(shared, UNITS, LEVELS);
}

/// Sums each group of `width = 2^levels` consecutive slots of `shared[0..UNITS]` into the
/// group's first slot, over a tree (every unit of the cube calls it, after writing its own slot
/// and a `sync_cube`).
#[cube]
pub fn tree_sum_groups(
    shared: &mut Shared<[f32]>,
    #[comptime] width: u32,
    #[comptime] levels: u32,
) {
    let i = UNIT_POS as usize;
    let lane = i % width as usize;
    for level in 0..levels {
        let stride = (width >> (level + 1u32)) as usize;
        if lane < stride {
            let other = shared[i + stride];
            shared[i] += other;
        }
        sync_cube();
    }
}

/// `Σ_k parts[k · lanes + lane]` over `k < slices`, in ascending `k`: the total of one lane
/// whose slices each wrote their partial sum (after a `sync_cube`).
#[cube]
pub fn sum_slices(parts: &Shared<[f32]>, lanes: usize, slices: usize, lane: usize) -> f32 {
    let mut total = 0.0f32;
    for k in 0..slices {
        total += parts[k * lanes + lane];
    }
    total
}
