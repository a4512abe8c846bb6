#include "reproduce/variants.h"

#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "io/config.h"
#include "train/run.h"
#include "train/run_schema.h"

namespace ihlab {
namespace fs = std::filesystem;

bool run_variants(ReproContext& ctx, const nlohmann::json& config, const std::vector<Variant>& variants, bool verbose) {
  for (size_t i = 0; i < variants.size(); ++i) {
    const Variant& v = variants[i];
    std::string dir = ctx.variant_dir(v.name);
    // Finished by an earlier process: ctx.variant() reads it when a claim asks.
    if (fs::exists(dir + "/summary.json") && read_summary(dir).finished()) continue;
    nlohmann::json raw = config;
    for (auto& o : v.overrides) apply_override(raw, o);
    nlohmann::json resolved = run_schema().resolve(raw);
    if (verbose) fmt::print("variant {} of {}: {}\n", i + 1, variants.size(), dir);
    TrainOptions t;
    t.quiet = true;
    t.resume = fs::exists(dir + "/checkpoints/latest.json");
    RunResult r = run_config(resolved, dir, t);
    const bool finished = r.finished();
    if (!finished) fmt::print(stderr, "variant {}: {} {}\n", v.name, to_string(r.summary.status), r.summary.message);
    ctx.add_variant(v.name, std::move(r));
    if (!finished) return false;
  }
  return true;
}

RunResult run_main_then_variants(ReproContext& ctx, const TrainOptions& options, const std::vector<Variant>& variants) {
  RunResult main = run_spec(ctx.spec, ctx.data(), ctx.out_dir, options);
  if (!main.finished()) return main;
  if (!run_variants(ctx, ctx.spec.config, variants, !options.quiet)) main.summary.status = RunStatus::Interrupted;
  return main;
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
