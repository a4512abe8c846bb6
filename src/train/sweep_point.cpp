#include "train/sweep_point.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "core/error.h"
#include "io/run_summary.h"
#include "report/report.h"
#include "train/run.h"
#include "train/run_schema.h"

namespace ihlab {
namespace fs = std::filesystem;

PointOutcome outcome_of_run(const RunSummary& s, double wall_s) {
  PointOutcome o;
  o.wall_s = wall_s;
  nlohmann::json j = summary_to_json(s);
  o.final_metrics = j.value("final", nlohmann::json::object());
  o.claims = j.value("claims", nlohmann::json::array());
  switch (s.status) {
    case RunStatus::Finished: o.status = PointStatus::Done; break;
    case RunStatus::Diverged:
      o.status = PointStatus::Failed;
      o.exit_status = 3;
      o.error = "diverged: " + s.message;
      break;
    default:
      o.status = PointStatus::Pending;
      o.exit_status = 130;
      o.error = s.message;
      break;
  }
  return o;
}

namespace {

struct Runners {
  std::mutex mutex;
  std::map<std::string, PointRunner> by_kind;
};
Runners& runners() {
  static Runners r;
  return r;
}

// The runner for a point whose config is {"<kind>": ...} (a copy: a registration may replace it
// meanwhile), or an empty function for a training config.
PointRunner special_runner(const nlohmann::json& config, std::string& kind) {
  if (!config.is_object() || config.size() != 1) return {};
  kind = config.begin().key();
  Runners& r = runners();
  std::lock_guard lock(r.mutex);
  auto it = r.by_kind.find(kind);
  return it == r.by_kind.end() ? PointRunner{} : it->second;
}

}  // namespace

void register_point_runner(const std::string& kind, PointRunner runner) {
  Runners& r = runners();
  std::lock_guard lock(r.mutex);
  r.by_kind[kind] = std::move(runner);
}

PointOutcome execute_point(const StorePoint& p, const std::string& sweep_dir, const PointRunOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  PointOutcome out;
  if (p.config.is_null()) {
    out.status = PointStatus::Failed;
    out.exit_status = 2;
    out.error = p.error.empty() ? "the point's configuration did not resolve" : p.error;
    return out;
  }
  const std::string dir = (fs::path(sweep_dir) / p.dir).string();
  try {
    std::string kind;
    if (PointRunner runner = special_runner(p.config, kind)) {
      out = runner(p.config[kind], dir, o);
      if (out.wall_s == 0) out.wall_s = seconds();
      return out;
    }
    if (fs::exists(dir + "/summary.json")) {
      RunSummary s = read_summary(dir);
      if (s.finished()) return outcome_of_run(s, s.wall_seconds);  // finished before: read back, not rerun
      if (s.status == RunStatus::Diverged) fs::remove_all(dir);    // a retry starts afresh
    }
    nlohmann::json resolved = p.config;
    if (o.threads >= 0) resolved["threads"] = o.threads;
    resolved = run_schema().resolve(resolved);
    TrainOptions t;
    t.quiet = o.quiet;
    t.resume = fs::exists(dir + "/checkpoints/latest.json");
    RunResult r = run_config(resolved, dir, t);
    out = outcome_of_run(r.summary, seconds());
    if (o.report && r.summary.status != RunStatus::Interrupted) {
      try {
        write_report(dir, {.figures = false, .quiet = true}, {&r.summary, &r.metrics});
      } catch (const std::exception& e) {
        fmt::print(stderr, "ihlab: warning: no report for {}: {}\n", dir, e.what());
      }
    }
  } catch (const Error& e) {
    out = {};
    out.status = PointStatus::Failed;
    out.exit_status = 2;
    out.error = e.what();
    out.wall_s = seconds();
  } catch (const std::exception& e) {
    out = {};
    out.status = PointStatus::Failed;
    out.exit_status = 1;
    out.error = fmt::format("internal error: {}", e.what());
    out.wall_s = seconds();
  }
  return out;
}

}  // namespace ihlab
