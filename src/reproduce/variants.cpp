#include "reproduce/variants.h"

#include <filesystem>

#include <fmt/format.h>

#include "io/config.h"
#include "train/run.h"
#include "train/run_schema.h"

namespace ihlab {
namespace fs = std::filesystem;

namespace {
std::string variant_dir(const std::string& out_dir, const std::string& name) {
  return (fs::path(out_dir) / "runs" / name).string();
}

bool finished(const std::string& dir) {
  return fs::exists(dir + "/summary.json") && read_json(dir + "/summary.json").value("status", "") == "finished";
}
}  // namespace

bool run_variants(const nlohmann::json& config, const std::string& out_dir, const std::vector<Variant>& variants,
                  bool verbose) {
  for (size_t i = 0; i < variants.size(); ++i) {
    const Variant& v = variants[i];
    std::string dir = variant_dir(out_dir, v.name);
    if (finished(dir)) continue;
    nlohmann::json raw = config;
    for (auto& o : v.overrides) apply_override(raw, o);
    nlohmann::json resolved = run_schema().resolve(raw);
    if (verbose) fmt::print("variant {} of {}: {}\n", i + 1, variants.size(), dir);
    TrainOptions t;
    t.quiet = true;
    t.resume = fs::exists(dir + "/checkpoints/latest.json");
    RunResult r = run_config(resolved, dir, t);
    if (r.status != "finished") {
      fmt::print(stderr, "variant {}: {} {}\n", v.name, r.status, r.message);
      return false;
    }
  }
  return true;
}

RunResult run_main_then_variants(const ReproContext& ctx, const TrainOptions& options,
                                 const std::vector<Variant>& variants) {
  RunResult main = run_config(ctx.config, ctx.out_dir, options);
  if (main.status != "finished") return main;
  if (!run_variants(ctx.config, ctx.out_dir, variants, !options.quiet)) main.status = "interrupted";
  return main;
}

MetricsTable variant_metrics(const std::string& out_dir, const std::string& name) {
  return read_metrics(variant_dir(out_dir, name) + "/metrics.csv");
}

nlohmann::json variants_json(const std::string& out_dir, const std::vector<Variant>& variants) {
  nlohmann::json runs = nlohmann::json::array();
  for (auto& v : variants) {
    std::string dir = variant_dir(out_dir, v.name);
    nlohmann::json s = fs::exists(dir + "/summary.json") ? read_json(dir + "/summary.json") : nlohmann::json::object();
    nlohmann::json overrides = nlohmann::json::object();
    for (auto& o : v.overrides) {
      size_t eq = o.find('=');
      overrides[o.substr(0, eq)] = o.substr(eq + 1);
    }
    runs.push_back({{"dir", "runs/" + v.name}, {"overrides", overrides}, {"status", s.value("status", "missing")},
                    {"final", s.value("final", nlohmann::json::object())}});
  }
  return runs;
}

}  // namespace ihlab
