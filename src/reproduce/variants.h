#pragma once
// Reproductions whose claims compare several runs (seeds, a task variant, a smaller model): the
// main run goes in DIR as usual; each variant is an ordinary run directory DIR/runs/<name>/ made
// from the same resolved configuration plus a few overrides. A variant that already finished is
// not run again, so an interrupted reproduction loses no finished run.
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reproduce/reproduction.h"

namespace ihlab {

struct Variant {
  std::string name;                    // directory name under DIR/runs/
  std::vector<std::string> overrides;  // applied to `config`, a resolved configuration
  nlohmann::json config;               // when set: this variant's own configuration instead of `config`
  Variant(std::string name_, std::vector<std::string> overrides_ = {}, nlohmann::json config_ = nullptr)
      : name(std::move(name_)), overrides(std::move(overrides_)), config(std::move(config_)) {}
};

// Runs every variant in order (quietly unless `verbose`), recording each result in `ctx`; stops
// early, returning false, when one is interrupted or diverges. Returns true when all finished.
// in_workers: in worker processes even when there is one variant (otherwise trained in this
// process with the config's threads).
bool run_variants(ReproContext& ctx, const nlohmann::json& config, const std::vector<Variant>& variants, bool verbose,
                  bool in_workers = false);

// Runs `main_run` (the main run, trained with the spec it is given) and the variants of ctx's
// configuration. With more than one core (and --workers other than 1) they train at the same
// time: main_run here with a spec of one thread, the variants in worker processes of one thread
// each; otherwise main_run(ctx.spec) first, then the variants, and only if the main run finished.
// Returns main_run's result; its status becomes interrupted if a variant did not finish.
RunResult run_beside_variants(ReproContext& ctx, const TrainOptions& options, const std::vector<Variant>& variants,
                              const std::function<RunResult(const RunSpec&)>& main_run);

// A Reproduction::run for multi-run claims: the main run in ctx.out_dir and the variants of its
// configuration. With more than one core (and --workers other than 1) they train at the same
// time: the main run here on one thread, the variants in worker processes; otherwise the main run
// first (with the config's threads), then the variants, and only if the main run finished. The
// main run's result is returned; its status becomes interrupted if a variant did not finish.
RunResult run_main_then_variants(ReproContext& ctx, const TrainOptions& options, const std::vector<Variant>& variants);

// summary.json "runs" entries (the report draws them as a table linking each run's directory).
nlohmann::json variants_json(ReproContext& ctx, const std::vector<Variant>& variants);

}  // namespace ihlab
