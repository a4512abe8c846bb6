#include "cli/sweep_cmd.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "report/report.h"
#include "train/interrupt.h"
#include "train/sweep.h"
#include "train/sweep_mpi.h"
#include "train/sweep_shards.h"

namespace ihlab {
namespace fs = std::filesystem;

struct SweepCli {
  CLI::App *sweep = nullptr, *merge = nullptr, *status = nullptr, *sbatch = nullptr, *worker = nullptr;
  std::string file, out;
  std::vector<std::string> vary, fits, overrides;
  SweepRunOptions run;
  std::string shard;
  // merge
  std::vector<std::string> merge_sources;
  std::string merge_out;
  // status
  std::string status_dir;
  // sbatch
  SbatchOptions sb;
  // worker
  std::string worker_dir, worker_store;
  int worker_threads = -1;
};

namespace {

void write_sweep_report(const std::string& out, const RunSummary& s) {
  try {
    ReportResult r = write_report(out, {.figures = true, .quiet = true}, {&s, nullptr});
    for (auto& w : r.warnings) fmt::print(stderr, "ihlab: warning: {}\n", w);
    fmt::print("report: {}\n", r.html);
  } catch (const std::exception& e) {
    fmt::print(stderr, "ihlab: warning: the report was not written: {}\n", e.what());
  }
}

void print_fits(const RunSummary& s) {
  for (auto& f : s.sections["scaling"]) {
    if (!f.contains("fit")) continue;
    fmt::print("  {}: slope {:.4g} [{}, {}], R^2 {:.4f}, n = {}\n", f["name"].get<std::string>(),
               f["fit"]["slope"].get<double>(), f["fit"]["slope_lo"].dump(), f["fit"]["slope_hi"].dump(),
               f["fit"]["r2"].get<double>(), f["fit"]["n"].get<int>());
  }
}

int cmd_sweep(const SweepCli& c, const std::string& command) {
  IHLAB_CHECK(!c.file.empty(), "sweep: give a sweep file (or a run config with --vary KEY=V1,V2,...)");
  IHLAB_CHECK(!c.out.empty(), "sweep: --out DIR is required");
  SweepDefinition d = c.vary.empty() ? parse_sweep_file(c.file) : sweep_from_vary(c.file, c.vary, c.fits, c.overrides);
  if (c.vary.empty()) {
    IHLAB_CHECK(c.fits.empty(), "sweep: --fit goes with --vary; a sweep file declares its fits in [[fit]] tables");
    for (auto& o : c.overrides) d.overrides.push_back(o);
  }
  SweepPlan plan = plan_sweep(d);
  SweepRunOptions o = c.run;
  o.command = command;
  o.shard = resolve_shard(c.shard);
  install_interrupt_handler();
  SweepRunResult r;
  if (mpi_launched()) {
    IHLAB_CHECK(o.workers == 1, "sweep: under mpirun the ranks are the workers; leave out --workers");
    IHLAB_CHECK(o.shard.empty(), "sweep: give either MPI ranks or a shard, not both");
    MpiSweepResult m = run_sweep_mpi(plan, c.out, o);
    if (!m.coordinator) return 0;
    r = m.run;
  } else {
    r = run_sweep(plan, c.out, o);
  }
  fmt::print("sweep: {} of {} points done, {} failed, {} pending; store {}\n", r.counts.done, r.counts.total(),
             r.counts.failed, r.counts.pending + r.counts.running, r.store);
  if (!o.shard.empty()) {
    fmt::print("sweep: shard {} ended; combine the shards with `ihlab sweep merge {}`\n", o.shard, c.out);
  } else {
    RunSummary s = write_sweep_summary(c.out, command);
    print_fits(s);
    write_sweep_report(c.out, s);
  }
  if (r.interrupted) return 130;
  return r.all_done() ? 0 : 3;
}

int cmd_merge(const SweepCli& c, const std::string& command) {
  const std::string out = !c.merge_out.empty() ? c.merge_out : c.merge_sources.size() == 1 ? c.merge_sources[0] : "";
  IHLAB_CHECK(!out.empty(), "sweep merge: give --out DIR when merging several directories");
  StoreCounts n = merge_sweeps(c.merge_sources, out);
  fmt::print("sweep merge: {}/sweep.db: {} points: {} done, {} failed, {} pending\n", out, n.total(), n.done, n.failed,
             n.pending);
  RunSummary s = write_sweep_summary(out, command);
  print_fits(s);
  write_sweep_report(out, s);
  return n.done == n.total() ? 0 : 3;
}

}  // namespace

std::shared_ptr<SweepCli> add_sweep_cli(CLI::App& app) {
  auto c = std::make_shared<SweepCli>();
  auto* s = app.add_subcommand(
      "sweep", "Run many trainings of one config (grid, ranges, random samples, seeds) into a crash-safe store");
  c->sweep = s;
  s->add_option("file", c->file, "sweep file (see examples/sweep-*.toml), or a run config with --vary");
  s->add_option("overrides", c->overrides, "key=value overrides applied to every point");
  s->add_option("--out", c->out, "sweep directory (sweep.db, runs/, sweep.csv, summary.json, report.html)");
  s->add_option("--vary", c->vary, "KEY=V1,V2,...: one grid axis over a run config (repeat for more axes)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  s->add_option("--fit", c->fits, "X_KEY:Y_METRIC: fit ln Y = a + b ln X over the points (with --vary)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  s->add_option("--workers", c->run.workers, "local worker processes (default 1: this process)")
      ->check(CLI::Range(1, 4096));
  s->add_option("--threads", c->run.threads, "threads per point (default: the config's; 1 with --workers > 1)")
      ->check(CLI::Range(0, 4096));
  s->add_option("--shard", c->shard,
                "K/N: run the K-th of N shares into DIR/shard-K-of-N.db (default from SLURM_ARRAY_TASK_ID and "
                "SLURM_ARRAY_TASK_COUNT when set)");
  s->add_flag("--retry-failed", c->run.retry_failed, "run the failed points again");
  s->add_flag("--quiet", c->run.quiet, "no progress line");
  s->footer(
      "Rerunning the same command finishes an interrupted or killed sweep: finished points are kept, interrupted\n"
      "ones resume from their checkpoints. Under `mpirun -np P` rank 0 hands out points to ranks 1..P-1.\n"
      "Exit status: 0 every point done, 2 bad input, 3 some point failed or is pending, 130 interrupted.");

  c->merge = s->add_subcommand("merge", "Combine shard stores (DIR/shard-K-of-N.db, or several DIRs) into one");
  c->merge->add_option("sources", c->merge_sources, "sweep directories or .db stores")->required();
  c->merge->add_option("--out", c->merge_out, "where the merged sweep.db goes (default: the one source DIR)");

  c->status = s->add_subcommand("status", "Counts, rate and ETA of a sweep (running or not)");
  c->status->add_option("dir", c->status_dir, "sweep directory")->required();

  c->sbatch = s->add_subcommand("sbatch", "Write a Slurm job-array script that runs the sweep in N shards");
  c->sbatch->add_option("file", c->sb.sweep_file, "sweep file")->required();
  c->sbatch->add_option("--out", c->sb.out_dir, "sweep directory (on a shared file system)")->required();
  c->sbatch->add_option("--array", c->sb.array, "job-array tasks (shards)")->required()->check(CLI::Range(1, 100000));
  c->sbatch->add_option("--cpus", c->sb.cpus, "CPUs per task (threads per point)")->check(CLI::Range(1, 4096));
  c->sbatch->add_option("--time", c->sb.time, "time limit per task, e.g. 02:00:00");
  c->sbatch->add_option("--partition", c->sb.partition, "Slurm partition");

  // Internal: what --workers starts, one per process.
  c->worker = s->add_subcommand("worker", "");
  c->worker->group("");
  c->worker->add_option("dir", c->worker_dir)->required();
  c->worker->add_option("--store", c->worker_store)->required();
  c->worker->add_option("--threads", c->worker_threads);
  return c;
}

bool sweep_cli_parsed(const SweepCli& c) { return c.sweep->parsed(); }

int run_sweep_cli(const SweepCli& c, const std::string& command) {
  if (c.merge->parsed()) return cmd_merge(c, command);
  if (c.status->parsed()) {
    fmt::print("{}", sweep_status_text(c.status_dir));
    return 0;
  }
  if (c.sbatch->parsed()) {
    SbatchOptions o = c.sb;
    o.ihlab = sweep_worker_executable();
    IHLAB_CHECK(fs::exists(o.sweep_file), "sweep sbatch: no sweep file {}", o.sweep_file);
    parse_sweep_file(o.sweep_file);  // a bad file fails here, not in a thousand array tasks
    fs::create_directories(o.out_dir);
    const std::string path = (fs::path(o.out_dir) / "sweep.sbatch").string();
    std::ofstream(path) << sbatch_script(o);
    fmt::print(
        "wrote {}\nsubmit: jobid=$(sbatch --parsable {}) && sbatch --dependency=afterany:$jobid --wrap '{} sweep "
        "merge {}'\n",
        path, path, o.ihlab, fs::absolute(o.out_dir).lexically_normal().string());
    return 0;
  }
  if (c.worker->parsed()) {
    install_interrupt_handler();
    return run_sweep_worker(c.worker_dir, c.worker_store, c.worker_threads);
  }
  return cmd_sweep(c, command);
}

}  // namespace ihlab
