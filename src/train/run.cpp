#include "train/run.h"

#include <fmt/format.h>

#include "core/parallel.h"
#include "models/registry.h"
#include "tasks/registry.h"

namespace ihlab {

namespace {
template <typename T>
RunResult run_typed(const RunSpec& spec, const Task& task, const std::string& out, const TrainOptions& o) {
  auto model = make_model<T>(spec.config.at("model"), task, spec.seed);
  return train<T>(spec, task, *model, out, o);
}
}  // namespace

RunResult run_config(const nlohmann::json& resolved, const std::string& out_dir, const TrainOptions& options) {
  RunSpec spec = run_spec_from_config(resolved);
  set_threads(spec.threads);
  auto task = make_task(resolved.at("task"));
  return spec.dtype == Dtype::Float64 ? run_typed<double>(spec, *task, out_dir, options)
                                 : run_typed<float>(spec, *task, out_dir, options);
}

void print_run_summary(const RunResult& r, const std::string& out_dir) {
  fmt::print("run {} after {} steps in {:.2f} s\n", r.status, r.steps, r.wall_seconds);
  if (!r.message.empty()) fmt::print("{}\n", r.message);
  for (auto& [k, v] : r.final_metrics)
    if (k.find("loss") != std::string::npos || k.rfind("val_", 0) == 0 || k.rfind("ref.", 0) == 0)
      fmt::print("  {:<16} {:.6g}\n", k, v);
  fmt::print("run directory: {} (metrics.csv, summary.json, checkpoints/)\n", out_dir);
}

}  // namespace ihlab
