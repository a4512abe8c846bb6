#pragma once
// One command per paper claim: a reproduction is an embedded configuration plus a function that
// reads the finished run and says, claim by claim, whether the paper's statement held.
//
//   ihlab reproduce NAME --out DIR [--quick] [--compat code] [key=value ...]
//
// The run directory is the trainer's (config.toml, metrics.csv, checkpoints/) and summary.json
// gains `reproduction` (name, options, the exact command), `claims` and the reproduction's own
// sections (io/run_summary.h). Claims read the runs' results in memory: the main run's and each
// variant's as training returned them; only runs left by an earlier process (--evaluate-only, a
// variant that finished before a restart) are read from their directories.
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/run_summary.h"
#include "reproduce/claims.h"
#include "train/trainer.h"

namespace ihlab {

struct Reproduction;

struct ReproContext {
  std::string out_dir;
  RunSpec spec;  // the resolved configuration the run uses (spec.config: the JSON)
  bool quick = false;
  int workers = 1;                                  // processes for variant runs (--workers)
  std::string compat;                               // "paper" or "code"
  RunResult main;                                   // the main run (set before the claims are evaluated)
  nlohmann::json extra = nlohmann::json::object();  // sections merged into summary.json

  // The main run's task and data sets: the ones training used, built once (on first use).
  const RunData& data();
  // A variant run (DIR/runs/<name>/): as run_variants returned it, or read from its directory.
  // Throws ihlab::Error when it has no finished run there.
  const RunResult& variant(const std::string& name);
  void add_variant(const std::string& name, RunResult r) { variants_[name] = std::move(r); }
  std::string variant_dir(const std::string& name) const;
  std::map<std::string, RunResult>& variants() { return variants_; }

  // The claims: `repro` declares them; evaluate measures each with claim(). In a --quick run a
  // claim declared with a quick_skip reason is reported as not evaluated without measuring it.
  const Reproduction* repro = nullptr;
  // A negative control's run (DIR/runs/control-<name>/): a claim whose measurement throws (it
  // needs another run, or a quantity this variant does not log) is reported as not evaluated.
  bool control = false;
  void claim(const std::string& name, const std::function<Measured()>& measure);
  // Every declared claim, in declaration order, judged (not evaluated when never measured).
  std::vector<Claim> judged_claims() const;
  // What each claim measured, by name (the input of judge_runs over seeds).
  const std::map<std::string, Measured>& measured() const { return measured_; }

 private:
  std::map<std::string, Measured> measured_;
  std::optional<RunData> data_;
  std::map<std::string, RunResult> variants_;
};

struct Reproduction {
  std::string name, paper, description;
  std::string config_toml;                                           // the embedded default configuration
  std::vector<std::string> quick_overrides;                          // --quick: a reduced run that takes seconds
  std::map<std::string, std::vector<std::string>> compat_overrides;  // --compat NAME
  std::string runtime;                                               // measured runtime on 2 cores, for `ihlab list`
  // Seeds of a full run when --seeds is not given (--quick: 1). Reproductions whose outcome depends
  // on fresh batches or SGD noise judge their claims over several seeds.
  int default_seeds = 1;
  // Optional: replaces the plain training run (e.g. train, then evaluate on many lengths). It
  // gets the context before training (spec, out_dir, quick, compat are set) and may record
  // variant runs in it; it returns the main run.
  std::function<RunResult(ReproContext& ctx, const TrainOptions&)> run;
  std::vector<ClaimDef> claims;  // declared once; evaluate measures them (ReproContext::claim)
  std::function<void(ReproContext&)> evaluate;
  std::vector<Control> controls;  // run by --controls after the main run
  // The claim declared under `name` for a --compat mode; throws ihlab::Error naming the known ones.
  const ClaimDef& claim(const std::string& name, const std::string& compat) const;
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
  // Variant runs (seeds, grid points, controls) in this many worker processes (train/sweep.h);
  // 0: one per core, at most one per run (auto_workers; the command line's default). Worker
  // processes run the ihlab executable, so a program that links the library keeps 1 unless it
  // set_sweep_worker_executable()s the ihlab binary.
  int workers = 1;
  // Run the reproduction's negative controls after the main run (each must fail its claims).
  bool controls = false;
  // Run the whole reproduction at this many seeds (main seed + 0, 1, ...; reproduce/seeds.h) and
  // judge each claim over them; 0: the reproduction's default_seeds (1 with --quick).
  int seeds = 0;
  // Continue a main run left in out_dir by an earlier process even when its config.toml is not
  // byte-identical to this one's (a seed point resumed by a sweep); without it only an identical
  // configuration is continued (rerunning the same command) and another one is refused.
  bool resume = false;
};

// The configuration a reproduction runs with: embedded TOML, then compat, quick and user overrides.
nlohmann::json reproduction_config(const Reproduction& r, const ReproduceOptions& o);

struct ReproResult {
  RunResult run;  // the main run; run.summary as written to summary.json, claims included
  std::vector<Claim> claims;
  std::map<std::string, RunResult> variants;  // the variant runs the claims read, by name
  std::vector<ControlResult> controls;        // --controls only
  std::map<std::string, Measured> measured;   // what the main run measured, per claim
  int seeds = 1;                              // the claims were judged over this many seeds
  bool seeds_complete = true;                 // every seed ran to the end
  bool quick = false;
  // Every evaluated claim holds (a full run must also evaluate every claim), and every control
  // failed what it must fail.
  bool all_pass() const;
};
ReproResult run_reproduction(const std::string& name, const std::string& out_dir, const ReproduceOptions& o);

// The claims of a reproduction run over several seeds: `seeds` holds what each seed's run measured
// (ReproContext::measured() after evaluate); every declared claim of the --compat mode is judged
// over the seeds by judge_runs (per-seed values, fraction holding, 95% interval, the claim's rule).
// A claim a seed did not measure counts as not evaluated for that seed.
std::vector<Claim> judge_seeds(const Reproduction& r, const std::string& compat,
                               const std::vector<std::map<std::string, Measured>>& seeds);

// A fixed-width claims table for the terminal.
std::string claims_table(const std::vector<Claim>& claims);
// One line per control: its verdict and the claims it failed, held or could not judge.
std::string controls_table(const std::vector<ControlResult>& controls);

}  // namespace ihlab
