#pragma once
// One command per paper claim: a reproduction is an embedded configuration plus a function that
// reads the finished run and says, claim by claim, whether the paper's statement held.
//
//   ihlab reproduce NAME --out DIR [--quick] [--compat code] [key=value ...]
//
// The run directory is the trainer's (config.toml, metrics.csv, checkpoints/) and summary.json
// gains `reproduction` (name, options, the exact command) and `claims`.
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/run_dir.h"
#include "train/trainer.h"

namespace ihlab {

struct ReproContext {
  std::string out_dir;
  nlohmann::json config;  // resolved configuration the run used
  bool quick = false;
  std::string compat;     // "paper" or "code"
  RunResult result;
  MetricsTable metrics;
  nlohmann::json extra = nlohmann::json::object();  // evaluations merged into summary.json
};

struct Reproduction {
  std::string name, paper, description;
  std::string config_toml;                     // the embedded default configuration
  std::vector<std::string> quick_overrides;    // --quick: a reduced run that takes seconds
  std::map<std::string, std::vector<std::string>> compat_overrides;  // --compat NAME
  std::string runtime;                         // measured runtime on 2 cores, for `ihlab list`
  // Optional: replaces the plain training run (e.g. train, then evaluate on many lengths).
  // It gets the context before training (config, out_dir, quick, compat are set).
  std::function<RunResult(const ReproContext& ctx, const TrainOptions&)> run;
  std::function<std::vector<Claim>(ReproContext&)> evaluate;
};

const std::vector<Reproduction>& reproduction_registry();
const Reproduction& find_reproduction(const std::string& name);

struct ReproduceOptions {
  bool quick = false;
  std::string compat = "paper";
  std::vector<std::string> overrides;
  bool quiet = false;
  // Re-check the claims of a reproduction that already ran in out_dir (e.g. after its claim code
  // changed) without training: the run and its variants are read back as they are.
  bool evaluate_only = false;
};

// The configuration a reproduction runs with: embedded TOML, then compat, quick and user overrides.
nlohmann::json reproduction_config(const Reproduction& r, const ReproduceOptions& o);

struct ReproResult {
  RunResult run;
  std::vector<Claim> claims;
  bool all_pass() const;
};
ReproResult run_reproduction(const std::string& name, const std::string& out_dir, const ReproduceOptions& o);

// A fixed-width claims table for the terminal.
std::string claims_table(const std::vector<Claim>& claims);

}  // namespace ihlab
