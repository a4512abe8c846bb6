#pragma once
// Sweep files: a base configuration, axes, seeds and scaling fits, expanded into a plan of points.
//
//   base = "smoke.toml"            # a run config, relative to this file ... or an inline [base] table
//   overrides = ["stages.0.steps=600"]   # applied to the base before the axes (optional)
//   seeds = 3                      # each point at seed = base seed + 0, 1, 2 (optional)
//   combine = "grid"               # "grid" (cartesian product, first axis slowest) or "zip"
//
//   [[axis]]
//   key = "task.vocab"
//   values = [4, 8, 16]            # exactly one of values, linspace, logspace, random
//   [[axis]]
//   key = "stages.0.lr"
//   logspace = { from = 1e-3, to = 1e-1, num = 3 }     # also linspace = {from, to, num}
//   [[axis]]
//   key = "model.width"
//   random = { distribution = "int-uniform", low = 8, high = 32, count = 4, seed = 7 }
//                                  # uniform | log-uniform | normal (low = mean, high = sd) | int-uniform
//   [[fit]]                        # least squares of ln y on ln x over the finished points
//   x = "task.vocab"
//   y = "val_loss"
//
// A point's name is p<id>_<key>=<value>_..., its run directory DIR/runs/<name>. Every point is
// resolved against the run schema when the sweep is planned: a point whose overrides do not
// resolve is kept, with its error, and recorded as failed (exit status 2) without running.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ihlab {

struct SweepAxisSpec {
  std::string key;                     // dotted config key, e.g. "task.vocab" or "seed"
  std::vector<nlohmann::json> values;  // the values, expanded (ranges and samples drawn)
  nlohmann::json source;               // as written in the file (for the stored definition)
};

struct SweepFitSpec {
  std::string x, y;  // a swept key, and a final metric (or summary field) of each run
};

struct SweepDefinition {
  nlohmann::json base = nlohmann::json::object();  // the base run config, raw (before overrides)
  std::string base_source;                         // the base file, or "inline"
  std::vector<std::string> overrides;
  std::vector<SweepAxisSpec> axes;
  bool zip = false;
  int seeds = 0;  // 0: no seed axis
  std::vector<SweepFitSpec> fits;

  nlohmann::json to_json() const;  // what the store keeps as the sweep's definition
};

// Reads a sweep file. Errors name the key (axis[1].logspace.num), the value and what is allowed.
SweepDefinition parse_sweep_file(const std::string& path);
// The same from parsed TOML (tests); `dir` resolves a relative base path.
SweepDefinition parse_sweep_json(const nlohmann::json& file, const std::string& source, const std::string& dir);
// The command-line form: CONFIG --vary KEY=V1,V2 ... --fit X:Y key=value ...
SweepDefinition sweep_from_vary(const std::string& config_path, const std::vector<std::string>& vary,
                                const std::vector<std::string>& fits, const std::vector<std::string>& overrides);

struct PlannedPoint {
  int64_t id = 0;
  std::string name;
  nlohmann::json values = nlohmann::json::object();  // swept key -> value
  int64_t seed = 0;
  nlohmann::json resolved;  // the resolved run config (null when it did not resolve)
  std::string error;        // why it did not resolve
};

struct SweepPlan {
  nlohmann::json definition;
  std::string hash;  // of every point's name and resolved config: a rerun must plan the same
  std::vector<PlannedPoint> points;
};

SweepPlan plan_sweep(const SweepDefinition& d);

// A plan from points a caller built (a reproduction's variants): name and resolved config each.
SweepPlan plan_from_points(const nlohmann::json& definition, std::vector<PlannedPoint> points);

}  // namespace ihlab
