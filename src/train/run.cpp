#include "train/run.h"

#include <fmt/format.h>

#include "core/parallel.h"
#include "io/config.h"
#include "models/registry.h"
#include "train/run_schema.h"

namespace ihlab {

namespace {
template <typename T>
RunResult run_typed(const RunSpec& spec, const RunData& data, const std::string& out, const TrainOptions& o) {
  auto model = make_model<T>(spec.config.at("model"), *data.task, spec.seed);
  return train<T>(spec, data, *model, out, o);
}
}  // namespace

RunResult run_spec(const RunSpec& spec, const RunData& data, const std::string& out_dir, const TrainOptions& options) {
  set_threads(spec.threads);
  return spec.dtype == Dtype::Float64 ? run_typed<double>(spec, data, out_dir, options)
                                      : run_typed<float>(spec, data, out_dir, options);
}

RunResult run_config(const nlohmann::json& resolved, const std::string& out_dir, const TrainOptions& options) {
  RunSpec spec = run_spec_from_config(resolved);
  set_threads(spec.threads);  // before sampling: a task may sample in parallel
  return run_spec(spec, make_run_data(spec), out_dir, options);
}

RunResult read_run(const std::string& dir) {
  RunResult r;
  r.summary = read_summary(dir);
  r.metrics = read_metrics(dir + "/metrics.csv");
  r.spec = run_spec_from_config(load_config(dir + "/config.toml", {}, run_schema()));
  return r;
}

void print_run_summary(const RunSummary& s, const std::string& out_dir) {
  fmt::print("run {} after {} steps in {:.2f} s\n", to_string(s.status), s.steps, s.wall_seconds);
  if (!s.message.empty()) fmt::print("{}\n", s.message);
  for (auto& [k, v] : s.final_metrics)
    if (k.find("loss") != std::string::npos || k.rfind("val_", 0) == 0 || k.rfind("ref.", 0) == 0)
      fmt::print("  {:<16} {:.6g}\n", k, v);
  fmt::print("run directory: {} (metrics.csv, summary.json, checkpoints/)\n", out_dir);
}

}  // namespace ihlab
