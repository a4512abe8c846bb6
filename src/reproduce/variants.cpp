#include "reproduce/variants.h"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "core/parallel.h"
#include "io/config.h"
#include "train/interrupt.h"
#include "train/run.h"
#include "train/run_schema.h"
#include "train/sweep.h"

namespace ihlab {
namespace fs = std::filesystem;

bool run_variants(ReproContext& ctx, const nlohmann::json& config, const std::vector<Variant>& variants, bool verbose,
                  bool in_workers) {
  // The variants are points of the reproduction's growing sweep store (DIR/variants.db): run by
  // the sweep machinery, so --workers N trains them in N processes, a killed reproduction resumes
  // them, and a variant that finished is never run again.
  std::vector<PlannedPoint> points;
  for (auto& v : variants) {
    PlannedPoint p;
    p.name = v.name;
    for (auto& o : v.overrides) {
      const size_t eq = o.find('=');
      p.values[o.substr(0, eq)] = o.substr(eq + 1);
    }
    nlohmann::json raw = v.config.is_null() ? config : v.config;
    for (auto& o : v.overrides) apply_override(raw, o);
    p.resolved = run_schema().resolve(raw);
    p.seed = p.resolved.value("seed", int64_t(0));
    points.push_back(std::move(p));
  }
  SweepPlan plan = plan_from_points({{"reproduction", ctx.spec.name}}, std::move(points));
  SweepRunOptions o;
  o.workers = auto_workers(ctx.workers, variants.size());
  // A pool of one worker trains its point in this process; in_workers wants a worker process.
  if (in_workers) o.workers = std::max(o.workers, 2);
  o.quiet = !verbose;
  o.label = "variants";
  o.growing_store = "variants.db";
  SweepRunResult r = run_sweep(plan, ctx.out_dir, o);
  for (auto& v : variants) {
    const std::string dir = ctx.variant_dir(v.name);
    if (!fs::exists(dir + "/summary.json")) continue;
    RunResult run = read_run(dir);
    if (!run.finished())
      fmt::print(stderr, "variant {}: {} {}\n", v.name, to_string(run.summary.status), run.summary.message);
    ctx.add_variant(v.name, std::move(run));
  }
  if (r.interrupted) return false;
  for (auto& v : variants) {
    auto it = ctx.variants().find(v.name);
    if (it == ctx.variants().end() || !it->second.finished()) return false;
  }
  return true;
}

RunResult run_beside_variants(ReproContext& ctx, const TrainOptions& options, const std::vector<Variant>& variants,
                              const std::function<RunResult(const RunSpec&)>& main_run) {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  if (variants.empty() || cores < 2 || ctx.workers == 1) {  // one after the other, each with the config's threads
    RunResult main = main_run(ctx.spec);
    if (!main.finished()) return main;
    if (!run_variants(ctx, ctx.spec.config, variants, !options.quiet)) main.summary.status = RunStatus::Interrupted;
    return main;
  }
  // The main run and the variants are independent runs: they train at the same time, the main run
  // in this process on one thread beside the variants' worker processes (one thread each; never in
  // this process, where two runs would share its global state). Run one after the other, the main
  // run's threads wait on each other at every parallel region (2 threads gave the --quick main runs
  // 1.25-1.5x, not 2x) and a core idles while the pool trains its last variant. No run's numbers
  // depend on its thread count, so the results are the same either way.
  ctx.data();  // built before the pool's thread starts: the pool reads ctx but never builds in it
  if (!options.quiet)
    fmt::print("variants: {} run{} in {}/runs/, training beside the main run\n", variants.size(),
               variants.size() == 1 ? "" : "s", ctx.out_dir);
  // Work-conserving threads (core/parallel.h): while the main run goes, the pool shares the other
  // cores among its workers once nothing is left to start; the main run takes every core when
  // the pool is done, the pool's workers take its core when it is done.
  bool variants_done = false;
  std::exception_ptr variants_error;
  reserve_pool_cores(1);
  std::thread pool([&] {
    try {
      variants_done = run_variants(ctx, ctx.spec.config, variants, false, /*in_workers=*/true);
    } catch (...) {
      variants_error = std::current_exception();
    }
    offer_threads(cores);
  });
  struct Reset {
    ~Reset() { reserve_pool_cores(0), offer_threads(0); }
  } reset;
  RunSpec spec = ctx.spec;
  spec.threads = 1;
  RunResult main;
  try {
    main = main_run(spec);
  } catch (...) {
    request_interrupt();  // the pool stops its workers at their next checkpoint
    pool.join();
    throw;
  }
  reserve_pool_cores(0);
  pool.join();
  if (variants_error) std::rethrow_exception(variants_error);
  if (main.finished() && !variants_done) main.summary.status = RunStatus::Interrupted;
  return main;
}

RunResult run_main_then_variants(ReproContext& ctx, const TrainOptions& options, const std::vector<Variant>& variants) {
  return run_beside_variants(ctx, options, variants,
                             [&](const RunSpec& spec) { return run_spec(spec, ctx.data(), ctx.out_dir, options); });
}

nlohmann::json variants_json(ReproContext& ctx, const std::vector<Variant>& variants) {
  nlohmann::json runs = nlohmann::json::array();
  for (auto& v : variants) {
    nlohmann::json status = "missing", final_metrics = nlohmann::json::object();
    std::optional<RunSummary> summary;
    if (auto it = ctx.variants().find(v.name); it != ctx.variants().end())
      summary = it->second.summary;
    else if (fs::exists(ctx.variant_dir(v.name) + "/summary.json"))
      summary = read_summary(ctx.variant_dir(v.name));
    if (summary) {
      nlohmann::json s = summary_to_json(*summary);
      status = s["status"];
      final_metrics = s["final"];
    }
    nlohmann::json overrides = nlohmann::json::object();
    for (auto& o : v.overrides) {
      size_t eq = o.find('=');
      overrides[o.substr(0, eq)] = o.substr(eq + 1);
    }
    runs.push_back({{"dir", "runs/" + v.name}, {"overrides", overrides}, {"status", status}, {"final", final_metrics}});
  }
  return runs;
}

}  // namespace ihlab
