//! How a process joins its job: alone, or as one rank of an `mpirun` / `srun` job (feature
//! `mpi`). A rank that fails ends the whole job (`MPI_Abort`), naming itself, rather than
//! leaving the others waiting in their next exchange.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;

use super::collective::{Collective, Solo};

/// Variables an MPI launcher sets in every rank (OpenMPI, MPICH/Hydra, PMI, PMIx).
const LAUNCHER_VARS: [&str; 4] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK"];

/// Whether an MPI launcher started this process.
pub fn launched_by_mpirun() -> bool {
    LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some())
}

fn env_usize(names: &[&str]) -> Option<usize> {
    names
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// Ranks of the job, as the launcher says.
fn launcher_ranks() -> Option<usize> {
    env_usize(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"])
}

/// This process's job.
pub struct Ranks {
    collective: Arc<dyn Collective>,
    /// Keeps MPI initialised until the process ends (finalised when dropped).
    #[cfg(feature = "mpi")]
    _universe: Option<mpi::environment::Universe>,
}

impl Ranks {
    /// Joins the job: initialises MPI when an MPI launcher started this process.
    pub fn start() -> Result<Self> {
        #[cfg(feature = "mpi")]
        if launched_by_mpirun() {
            let (universe, world) = super::mpi::MpiWorld::init().map_err(anyhow::Error::msg)?;
            if world.ranks() > 1 {
                abort_job_on_panic(world.rank());
            }
            return Ok(Self {
                collective: Arc::new(world),
                _universe: Some(universe),
            });
        }
        if launcher_ranks().is_some_and(|n| n > 1) {
            anyhow::bail!(
                "started by mpirun with several ranks, but this binary was built without the \
                 `mpi` feature (cargo build --release --features mpi); every rank would train alone"
            );
        }
        Ok(Self {
            collective: Arc::new(Solo),
            #[cfg(feature = "mpi")]
            _universe: None,
        })
    }

    /// The exchange between the ranks.
    pub fn collective(&self) -> Arc<dyn Collective> {
        self.collective.clone()
    }

    /// (rank on this machine, ranks on this machine), when the launcher says.
    pub fn local(&self) -> Option<(usize, usize)> {
        let rank = env_usize(&["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"])?;
        let ranks = env_usize(&["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"])?;
        Some((rank, ranks.max(1)))
    }

    /// Reports `error` and ends the process, and with several ranks the whole job.
    pub fn fail(&self, error: &anyhow::Error) -> ExitCode {
        let ranks = self.collective.ranks();
        if ranks == 1 {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
        eprintln!(
            "error: rank {} of {ranks}: {error:#}",
            self.collective.rank()
        );
        #[cfg(feature = "mpi")]
        super::mpi::MpiWorld::abort(1);
        #[cfg(not(feature = "mpi"))]
        ExitCode::FAILURE
    }
}

/// A panic in any thread of this rank ends the job, naming the rank.
#[cfg(feature = "mpi")]
fn abort_job_on_panic(rank: usize) {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("error: rank {rank} panicked; ending the job");
        report(info);
        super::mpi::MpiWorld::abort(1);
    }));
}
