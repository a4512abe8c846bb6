#pragma once
// One point of a sweep, run to its end in the calling process: the same run directory, checkpoints
// and determinism as `ihlab train`. Shared by every way a sweep runs (serial, --workers, MPI ranks,
// Slurm shards), so a point's result never depends on how it was scheduled.
#include <functional>
#include <string>

#include "io/run_summary.h"
#include "io/sweep_store.h"

namespace ihlab {

struct PointRunOptions {
  int threads = -1;    // >= 0 replaces the config's `threads` (results do not depend on it)
  bool report = true;  // write the run's report.html (without figures: fast)
  bool quiet = true;   // no training progress lines
};

// Runs (or resumes, or reads back) the point whose run directory is sweep_dir/p.dir:
//  - a run directory whose summary.json says finished is read back, never trained again, so a
//    point that finished just before its process was killed is recorded without a rerun;
//  - a checkpoint is resumed from (bit-identical continuation);
//  - a diverged run left by an earlier attempt is started afresh (--retry-failed).
// Outcomes: Done (exit 0); Failed with the error and exit status 2 (configuration: the point did not
// resolve, or training rejected it), 3 (diverged) or 1 (internal error); Pending (exit 130) when
// the run was interrupted (Ctrl-C): it resumes on the next attempt.
PointOutcome execute_point(const StorePoint& p, const std::string& sweep_dir, const PointRunOptions& o = {});

// What a run's summary means for its point: finished -> Done; diverged -> Failed (exit 3);
// interrupted -> Pending (exit 130, resumed on the next attempt). Final metrics and claims copied.
PointOutcome outcome_of_run(const RunSummary& s, double wall_s);

// Points that are not one training run: a point whose config is {"<kind>": {...}} runs through
// the runner registered for that kind (the reproduce layer registers "reproduction": one seed of a
// reproduction, `ihlab reproduce --seeds K`), which gets the config's value and the point's run
// directory and must read back a point it finished before. A process that runs such points (the
// CLI, a sweep worker) registers the runners first; an unregistered kind fails the point.
using PointRunner =
    std::function<PointOutcome(const nlohmann::json& spec, const std::string& dir, const PointRunOptions& o)>;
void register_point_runner(const std::string& kind, PointRunner runner);

}  // namespace ihlab
