//! The ranks of an `mpirun` (or `srun`) job as a [`Collective`], through rsmpi.
//!
//! The gradient sum is an ordered all-reduce: a reduce-scatter by `MPI_Alltoallv` (rank `c`
//! receives chunk `c` of every rank's values), each rank folds its chunk from ranks `0..N` in
//! order, then `MPI_Allgatherv` hands every rank every folded chunk. Same traffic as a ring
//! all-reduce, and the same bits on every rank.

use mpi::Threading;
use mpi::datatype::{Partition, PartitionMut};
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use super::collective::{Collective, fold_in_order};
use super::shards::part_range;

/// The world of an MPI job.
#[derive(Clone, Copy, Debug)]
pub struct MpiWorld {
    rank: usize,
    ranks: usize,
}

impl MpiWorld {
    /// Initialises MPI; the [`Universe`] finalises it when dropped (keep it to the end).
    pub fn init() -> Result<(Universe, Self), String> {
        let (universe, _) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or("MPI was already initialised")?;
        let world = universe.world();
        let me = Self {
            rank: world.rank() as usize,
            ranks: world.size() as usize,
        };
        Ok((universe, me))
    }

    /// Ends the whole job with `code` (every rank), as a failed rank must: the others would
    /// otherwise wait for it in their next collective.
    pub fn abort(code: i32) -> ! {
        SimpleCommunicator::world().abort(code)
    }
}

fn counts_and_displs(n: usize, parts: usize) -> (Vec<i32>, Vec<i32>) {
    (0..parts)
        .map(|p| {
            let r = part_range(n, parts, p);
            (r.len() as i32, r.start as i32)
        })
        .unzip()
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.ranks
    }

    fn all_gather(&self, local: &[u8]) -> Vec<Vec<u8>> {
        let world = SimpleCommunicator::world();
        let mut lens = vec![0_i32; self.ranks];
        world.all_gather_into(&(local.len() as i32), &mut lens[..]);
        let displs: Vec<i32> = lens
            .iter()
            .scan(0, |at, &l| {
                let d = *at;
                *at += l;
                Some(d)
            })
            .collect();
        let mut all = vec![0_u8; lens.iter().map(|&l| l as usize).sum()];
        let mut recv = PartitionMut::new(&mut all[..], &lens[..], &displs[..]);
        world.all_gather_varcount_into(local, &mut recv);
        lens.iter()
            .zip(&displs)
            .map(|(&l, &d)| all[d as usize..(d + l) as usize].to_vec())
            .collect()
    }

    fn ordered_sum(&self, values: &mut [f32]) {
        if self.ranks == 1 {
            return;
        }
        let world = SimpleCommunicator::world();
        let (counts, displs) = counts_and_displs(values.len(), self.ranks);
        let mine = counts[self.rank] as usize;
        // Reduce-scatter: chunk `rank` of every rank, in rank order.
        let mut received = vec![0.0_f32; mine * self.ranks];
        {
            let send = Partition::new(&values[..], &counts[..], &displs[..]);
            let recv_counts = vec![mine as i32; self.ranks];
            let recv_displs: Vec<i32> = (0..self.ranks).map(|r| (r * mine) as i32).collect();
            let mut recv = PartitionMut::new(&mut received[..], recv_counts, recv_displs);
            world.all_to_all_varcount_into(&send, &mut recv);
        }
        let mut chunk = vec![0.0_f32; mine];
        fold_in_order(
            &mut chunk,
            received.chunks_exact(mine.max(1)).take(self.ranks),
        );
        let mut recv = PartitionMut::new(values, &counts[..], &displs[..]);
        world.all_gather_varcount_into(&chunk[..], &mut recv);
    }

    fn barrier(&self) {
        SimpleCommunicator::world().barrier();
    }
}
