#pragma once
// Sweeps: many runs of one configuration (a grid, ranges, random samples, seeds), recorded in a
// crash-safe store and run by whatever engine is at hand:
//
//   ihlab sweep SWEEP.toml --out DIR                 one process, one point after another
//   ihlab sweep SWEEP.toml --out DIR --workers 4     a local pool of 4 worker processes
//   mpirun -np 8 ihlab sweep SWEEP.toml --out DIR    rank 0 hands out points, ranks 1..7 train
//   ihlab sweep SWEEP.toml --out DIR --shard 3/16    one share of a Slurm job array (its own store)
//
//   DIR/sweep.db              the store (io/sweep_store.h): one row per point, the sweep's definition
//   DIR/shard-K-of-N.db       a shard's store, combined by `ihlab sweep merge DIR`
//   DIR/runs/<point name>/    an ordinary run directory (config.toml, metrics.csv, report.html, ...)
//   DIR/sweep.csv             the points and their final metrics, exported from the store
//   DIR/summary.json          kind sweep: runs, aggregates over seeds, scaling fits
//
// Crash safety: a point is marked done only after its run directory says finished; a process
// killed at any moment leaves the store consistent (every change is a transaction) and the run
// resumable from its checkpoint. Rerunning the same command takes the store over (one coordinator
// per store, held by a file lock), puts back the points that were running and finishes the rest:
// finished points are never rerun. A worker process that dies mid-point has that point put back
// (after 3 attempts it is recorded as failed) while the others go on.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/run_summary.h"
#include "io/sweep_store.h"
#include "train/sweep_spec.h"

namespace ihlab {

struct SweepRunOptions {
  int workers = 1;   // local worker processes; 1 = run in this process
  int threads = -1;  // per point; -1 = the config's own when workers == 1, else 1
  bool retry_failed = false;
  bool quiet = false;
  std::string shard;    // "K/N": run only the points with id % N == K, into DIR/shard-K-of-N.db
  std::string command;  // recorded in summary.json
  // The reproduction or sweep name shown in progress lines.
  std::string label = "sweep";
  // A growing store (a reproduction's variant runs): this file under DIR instead of sweep.db; the
  // plan's points are added to it (SweepStore::add_points) rather than fixed by the first run.
  std::string growing_store;
};

// Worker processes for `points` runs when `requested` were asked for: requested itself when > 0;
// 0 = one per core (std::thread::hardware_concurrency), never more than there are runs. Results are
// bit-identical whatever the count; 1 runs the points in this process with the config's threads.
int auto_workers(int requested, size_t points);

struct SweepRunResult {
  StoreCounts counts;  // this store's share after the run
  bool interrupted = false;
  std::string store;  // the store's path
  bool all_done() const { return counts.done == counts.total(); }
};

// The store file of a sweep directory, for a shard ("K/N") or the whole sweep ("").
std::string sweep_store_file(const std::string& out_dir, const std::string& shard);
// "3/16" -> {3, 16}; also reads SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN) and
// SLURM_ARRAY_TASK_COUNT when `text` is empty and they are set. Returns "" for no shard.
std::string resolve_shard(const std::string& text);

// The coordinator's lock on a store: an flock on <store>.lock, held for the life of the object and
// dropped by the kernel when the process dies (SIGKILL included), so a rerun can always take over.
// Throws ihlab::Error naming the holder when another live process has it.
class SweepLock {
 public:
  explicit SweepLock(const std::string& store_file);
  ~SweepLock();
  SweepLock(const SweepLock&) = delete;
  SweepLock& operator=(const SweepLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

// The store rows of a plan: pending, or failed (exit status 2) when the point did not resolve.
std::vector<StorePoint> plan_rows(const SweepPlan& plan);

// Records the plan in the store (or checks that the store holds the same plan) and runs the points
// this process's share has left: serially here, or with SweepRunOptions::workers processes.
SweepRunResult run_sweep(const SweepPlan& plan, const std::string& out_dir, const SweepRunOptions& o);

// The loop of one worker process (`ihlab sweep worker`): claims points from the store until none
// is pending, runs each and records it. Returns 0, or 130 when interrupted. Its thread offer
// (core/parallel.h) is the number in the file worker_thread_file(store_file, its pid).
int run_sweep_worker(const std::string& out_dir, const std::string& store_file, int threads);
std::string worker_thread_file(const std::string& store_file, long pid);

// Cores this process's own training uses beside its worker pools (a reproduction's main run beside
// its variants). Once nothing is left to start, a pool shares min(workers x threads, cores - these)
// among its running workers.
void reserve_pool_cores(int n);

// The program a worker process runs ("ihlab sweep worker ..."): this executable by default.
void set_sweep_worker_executable(const std::string& path);
const std::string& sweep_worker_executable();

// Writes DIR/summary.json (kind sweep: runs, aggregates over seeds, scaling fits) and DIR/sweep.csv
// from the store(s) in DIR. Returns the summary.
RunSummary write_sweep_summary(const std::string& out_dir, const std::string& command);

// A scaling entry of summary.json: least squares of ln y on ln x over the positive pairs, the
// slope's 95% interval and the band of the fitted line on 50 log-spaced points.
nlohmann::json scaling_fit_json(const std::string& name, const std::string& x_key, const std::string& y_key,
                                const std::vector<double>& x, const std::vector<double>& y);

// `ihlab sweep status DIR`: counts, rate and ETA of the store(s) in DIR, as text.
std::string sweep_status_text(const std::string& out_dir);

}  // namespace ihlab
