#include "reproduce/seeds.h"

#include <filesystem>

#include <fmt/format.h>

#include "io/run_dir.h"
#include "report/report.h"
#include "train/sweep.h"
#include "train/sweep_point.h"

namespace ihlab {
namespace fs = std::filesystem;

namespace {

// One seed of a reproduction, run to its end in this process (or read back when its summary.json
// already holds the reproduction's claims: written last, so a seed killed before the end resumes).
PointOutcome run_seed_point(const nlohmann::json& spec, const std::string& dir, const PointRunOptions& po) {
  if (fs::exists(dir + "/summary.json")) {
    RunSummary s = read_summary(dir);
    if (s.reproduction) return outcome_of_run(s, s.wall_seconds);
  }
  ReproduceOptions o;
  o.quick = spec.at("quick").get<bool>();
  o.compat = spec.at("compat").get<std::string>();
  o.overrides = spec.at("overrides").get<std::vector<std::string>>();
  if (po.threads >= 0) o.overrides.push_back(fmt::format("threads={}", po.threads));
  o.quiet = true;
  o.resume = true;
  o.seeds = 1;    // a seed is one reproduction, judged over the seeds by the main directory
  o.workers = 1;  // its variants in this process: the seeds themselves are the parallel points
  ReproResult r = run_reproduction(spec.at("name").get<std::string>(), dir, o);
  PointOutcome out = outcome_of_run(r.run.summary, 0);  // execute_point fills in the wall time
  if (out.status == PointStatus::Pending) return out;   // interrupted: no report yet
  if (po.report) {
    try {
      write_report(dir, {.figures = false, .quiet = true}, {&r.run.summary, &r.run.metrics});
    } catch (const std::exception& e) {
      fmt::print(stderr, "ihlab: warning: no report for {}: {}\n", dir, e.what());
    }
  }
  return out;
}

}  // namespace

void register_reproduction_points() { register_point_runner("reproduction", run_seed_point); }

SeedRuns run_seed_reproductions(const Reproduction& r, const std::string& out_dir, int64_t main_seed, int seeds,
                                const ReproduceOptions& o) {
  register_reproduction_points();
  std::vector<PlannedPoint> points;
  for (int i = 1; i < seeds; ++i) {
    PlannedPoint p;
    p.seed = main_seed + i;
    p.name = fmt::format("seed-{}", p.seed);
    p.values = {{"seed", p.seed}};
    std::vector<std::string> overrides = o.overrides;
    overrides.push_back(fmt::format("seed={}", p.seed));
    p.resolved = {
        {"reproduction", {{"name", r.name}, {"quick", o.quick}, {"compat", o.compat}, {"overrides", overrides}}}};
    points.push_back(std::move(p));
  }
  SeedRuns out;
  if (!o.evaluate_only) {
    SweepRunOptions so;
    so.workers = auto_workers(o.workers, points.size());
    so.quiet = o.quiet;
    so.label = r.name + " seeds";
    so.growing_store = "seeds.db";
    SweepRunResult res = run_sweep(plan_from_points({{"reproduction", r.name}, {"seeds", seeds}}, points), out_dir, so);
    out.interrupted = res.interrupted;
    if (out.interrupted) return out;
  }
  for (auto& p : points) {
    const std::string rel = "runs/" + p.name, dir = (fs::path(out_dir) / rel).string();
    nlohmann::json entry = {{"seed", p.seed}, {"dir", rel}, {"status", "missing"}};
    std::map<std::string, Measured> measured;
    if (fs::exists(dir + "/summary.json")) {
      nlohmann::json s = read_json(dir + "/summary.json");
      entry["status"] = s.value("status", "missing");
      if (s.contains("reproduction")) {
        entry["all_pass"] = s["reproduction"].value("all_pass", false);
        measured = measured_from_json(s.value("measured", nlohmann::json::object()));
      }
    }
    if (!entry.contains("all_pass")) out.complete = false;
    out.measured.push_back(std::move(measured));
    out.runs.push_back(std::move(entry));
  }
  return out;
}

}  // namespace ihlab
