//! What the workers of a data-parallel run exchange, behind one trait: [`Solo`] for a single
//! process, `super::mpi::MpiWorld` (feature `mpi`) for the ranks of an `mpirun` job.
//!
//! Every operation gives every rank the same bits: gathers concatenate in rank order, and the
//! gradient sum folds the ranks' values in rank order (`MPI_Allreduce` promises no order).

use std::fmt::Debug;

/// The collective operations of a data-parallel run.
pub trait Collective: Send + Sync + Debug {
    /// This worker, `0..ranks()`.
    fn rank(&self) -> usize;
    /// Workers in the run.
    fn ranks(&self) -> usize;
    /// Every rank's `local` bytes, in rank order.
    fn all_gather(&self, local: &[u8]) -> Vec<Vec<u8>>;
    /// Replaces `values` (the same length on every rank) by their sum over the ranks,
    /// `((v_0 + v_1) + v_2) + …`, the same bits on every rank.
    fn ordered_sum(&self, values: &mut [f32]);
    /// Waits until every rank has arrived.
    fn barrier(&self);
}

/// A run of one process: nothing to exchange.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }

    fn ranks(&self) -> usize {
        1
    }

    fn all_gather(&self, local: &[u8]) -> Vec<Vec<u8>> {
        vec![local.to_vec()]
    }

    fn ordered_sum(&self, _values: &mut [f32]) {}

    fn barrier(&self) {}
}

/// Sums `parts` (equal lengths) into `into` in order: `into = ((p_0 + p_1) + p_2) + …`.
pub fn fold_in_order<'a>(into: &mut [f32], parts: impl IntoIterator<Item = &'a [f32]>) {
    let mut parts = parts.into_iter();
    if let Some(first) = parts.next() {
        into.copy_from_slice(first);
    }
    for part in parts {
        for (acc, v) in into.iter_mut().zip(part) {
            *acc += v;
        }
    }
}

/// `values` as little-endian bytes.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Little-endian bytes as `f32` values.
pub fn bytes_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The ranks whose `local` bytes differ from rank 0's (every rank learns the same list).
pub fn ranks_differing(collective: &dyn Collective, local: &[u8]) -> Vec<usize> {
    let all = collective.all_gather(local);
    (1..all.len()).filter(|&r| all[r] != all[0]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_is_left_to_right() {
        let a = [1e8_f32, 1.0];
        let b = [1.0_f32, 1e8];
        let c = [-1e8_f32, -1e8];
        let mut out = [0.0; 2];
        fold_in_order(&mut out, [&a[..], &b[..], &c[..]]);
        // (1e8 + 1) + -1e8 = 0 in f32; (1 + 1e8) - 1e8 = 0 too; order fixed, so reproducible.
        assert_eq!(out, [(a[0] + b[0]) + c[0], (a[1] + b[1]) + c[1]]);
        assert_eq!(bytes_f32(&f32_bytes(&[1.5, -0.0])), vec![1.5, -0.0]);
    }
}
