// Reproductions made of many runs of the six-parameter model (wang2024-plateau-scaling,
// wang2024-length-strength): their shared configuration and the run that trains the points.
#include <filesystem>

#include "core/error.h"
#include "reproduce/wang2024.h"
#include "reproduce/wang2024_common.h"

namespace ihlab {

std::string wang_points_config(const std::string& name) {
  std::string toml = kWang2024MixedTargetConfig;
  auto replace = [&](const std::string& from, const std::string& to) {
    const size_t at = toml.find(from);
    IHLAB_CHECK(at != std::string::npos, "{}: '{}' not in the base configuration", name, from);
    toml.replace(at, from.size(), to);
  };
  replace("train_size = 20000", "train_size = 5000");
  replace("name = \"wang2024-mixed-target\"", "name = \"" + name + "\"");
  return toml;
}

const std::vector<std::string> kWangPointsQuick = {"data.train_size=1000",           "data.val_size=200",
                                                   "stages.0.time=1000.0",           "stages.1.time=3000.0",
                                                   "stages.0.segments_per_decade=5", "stages.1.segments_per_decade=20"};

RunResult run_wang_points(ReproContext& c, const TrainOptions& o, const std::vector<Variant>& points,
                          const std::string& ref, const std::string& note) {
  RunResult r;
  r.spec = c.spec;
  r.summary.name = c.spec.name;
  r.summary.status = RunStatus::Interrupted;
  if (!run_variants(c, c.spec.config, points, !o.quiet)) return r;
  std::filesystem::copy_file(c.variant_dir(ref) + "/metrics.csv", c.out_dir + "/metrics.csv",
                             std::filesystem::copy_options::overwrite_existing);
  const std::string name = c.spec.name;
  r = c.variant(ref);
  r.summary.name = name;
  r.summary.sections["note"] = note;
  return r;
}

}  // namespace ihlab
