#pragma once
// Sweeps under MPI (OpenMPI from Debian): `mpirun -np P ihlab sweep SWEEP.toml --out DIR`.
//
// Rank 0 owns the store (it alone opens DIR/sweep.db: SQLite is not safe over network file
// systems) and hands out one point at a time as ranks free up; ranks 1..P-1 train. The run
// directories are written by the ranks straight into the shared --out directory (a cluster's
// shared file system), so checkpoints are where a rerun, on any node, resumes from; each rank
// sends its point's outcome (status, final metrics, claims, error) back to rank 0, which records
// it. Without a shared directory the runs stay on the nodes that trained them; the store still
// holds every result.
#include <string>

#include "train/sweep.h"

namespace ihlab {

// True when this process was started by an MPI launcher with more than one rank
// (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX size variables).
bool mpi_launched();
// True when this build has MPI support.
bool mpi_available();

struct MpiSweepResult {
  bool coordinator = false;  // rank 0: the result below is meaningful, write the summary
  SweepRunResult run;
};
// Initializes MPI, runs the sweep as described above and finalizes MPI. Every rank calls it with
// the same arguments; only rank 0 needs the plan's points to resolve (workers get each point's
// resolved configuration from rank 0). Throws ihlab::Error in a build without MPI.
MpiSweepResult run_sweep_mpi(const SweepPlan& plan, const std::string& out_dir, const SweepRunOptions& o);

}  // namespace ihlab
