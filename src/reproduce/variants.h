#pragma once
// Reproductions whose claims compare several runs (seeds, a task variant, a smaller model): the
// main run goes in DIR as usual; each variant is an ordinary run directory DIR/runs/<name>/ made
// from the same resolved configuration plus a few overrides. A variant that already finished is
// not run again, so an interrupted reproduction loses no finished run.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reproduce/reproduction.h"

namespace ihlab {

struct Variant {
  std::string name;                    // directory name under DIR/runs/
  std::vector<std::string> overrides;  // applied to `config`, a resolved configuration
};

// Runs every variant in order (quietly unless `verbose`), recording each result in `ctx`; stops
// early, returning false, when one is interrupted or diverges. Returns true when all finished.
bool run_variants(ReproContext& ctx, const nlohmann::json& config, const std::vector<Variant>& variants, bool verbose);

// A Reproduction::run for multi-run claims: the main run in ctx.out_dir, then the variants of
// its configuration. The main run's result is returned; its status becomes interrupted if a
// variant did not finish.
RunResult run_main_then_variants(ReproContext& ctx, const TrainOptions& options, const std::vector<Variant>& variants);

// summary.json "runs" entries (the report draws them as a table linking each run's directory).
nlohmann::json variants_json(ReproContext& ctx, const std::vector<Variant>& variants);

}  // namespace ihlab
