#pragma once
// Sweeps split over Slurm job-array tasks: each task runs one share into its own store
// (DIR/shard-K-of-N.db, see train/sweep.h); `ihlab sweep merge` combines them into DIR/sweep.db;
// `ihlab sweep sbatch` writes the job-array script.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/sweep_store.h"

namespace ihlab {

// Every point of a sweep directory, from DIR/sweep.db and any shard stores in DIR: for each point
// the most advanced row (done > failed > running > pending), with the stores read.
struct SweepContents {
  nlohmann::json definition;
  std::string plan_hash;
  std::vector<StorePoint> points;
  std::vector<std::string> stores;
};
// Throws ihlab::Error when DIR holds no store or stores of different sweeps.
SweepContents read_sweep_contents(const std::string& dir);

// Combines the stores found in `sources` (sweep directories or .db files) into out_dir/sweep.db,
// copying the run directories of points finished elsewhere into out_dir/runs/. Points no shard
// ran stay pending: `ihlab sweep` on out_dir finishes them. Returns the merged counts.
StoreCounts merge_sweeps(const std::vector<std::string>& sources, const std::string& out_dir);

struct SbatchOptions {
  std::string sweep_file, out_dir;
  int array = 1;          // job-array tasks
  int cpus = 1;           // --cpus-per-task (and threads per point)
  std::string time;       // --time, e.g. 02:00:00 ("" = the cluster's default)
  std::string partition;  // "" = the default partition
  std::string ihlab;      // the ihlab executable (absolute)
};
// The text of a job-array script: each task runs `ihlab sweep SWEEP --out DIR` (the shard comes
// from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT); a merge job is chained by the printed hint.
std::string sbatch_script(const SbatchOptions& o);

}  // namespace ihlab
