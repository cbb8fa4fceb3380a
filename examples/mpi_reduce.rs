//! Times hm2bp's ordered all-reduce (the data-parallel gradient sum) and the step-record
//! gather on the gradient sizes of the MNIST MLP (635,200 floats) and CNN (210,375 floats).
//!
//! ```sh
//! cargo build --release --features mpi --example mpi_reduce
//! mpirun -n 2 --bind-to none target/release/examples/mpi_reduce 300
//! ```
//!
//! Rank 0 prints, per size: milliseconds per call (median of the iterations) and the bytes
//! each rank sends per call.

use std::time::Instant;

use hm2bp::train::launcher::Ranks;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let ranks = Ranks::start()?;
    let world = ranks.collective();
    let (rank, n) = (world.rank(), world.ranks());
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    for (what, floats, record_bytes) in [
        ("MLP 784-800-10", 635_200_usize, 3_700_usize),
        ("CNN 15C5-P2-40C5-P2-300-10", 210_375, 57_400),
    ] {
        let mut values: Vec<f32> = (0..floats).map(|i| (i % 97) as f32 * 1e-3).collect();
        let record = vec![rank as u8; record_bytes];
        let mut sum_ms = Vec::with_capacity(iterations);
        let mut gather_ms = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            world.barrier();
            let t = Instant::now();
            world.ordered_sum(&mut values);
            sum_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let all = world.all_gather(&record);
            gather_ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(all.len(), n);
        }
        // Reduce-scatter and all-gather each send (n − 1)/n of the values.
        let sent = 2 * floats * 4 * (n - 1) / n;
        if rank == 0 {
            println!(
                "{what}: {n} ranks, ordered all-reduce of {floats} floats: {:.3} ms (median of \
                 {iterations}), {sent} bytes sent per rank; step-record gather of {record_bytes} \
                 bytes per rank: {:.3} ms",
                median(sum_ms),
                median(gather_ms)
            );
        }
    }
    Ok(())
}
