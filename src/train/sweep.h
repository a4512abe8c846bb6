#pragma once
// Sweeps: one configuration, a grid of overrides (the cartesian product of the axes), one run
// directory per grid point, and optional scaling fits of a final metric against a swept key.
//
//   DIR/runs/r000_vocab=4_seed=0/   an ordinary run directory (its own report.html)
//   DIR/sweep.csv                   run, the swept keys, status, every final metric
//   DIR/summary.json                {"kind": "sweep", "runs": [...], "scaling": [...], "command"}
//
// A sweep restarted with the same arguments skips the runs that finished and resumes the ones a
// crash interrupted (from their latest checkpoint), so no finished work is lost.
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/run_summary.h"
#include "train/trainer.h"

namespace ihlab {

struct SweepAxis {
  std::string key;                  // dotted config key, e.g. "task.vocab" or "seed"
  std::vector<std::string> values;  // TOML values as written, e.g. "4", "\"adam\""
};
// "task.vocab=4,8,16" -> {task.vocab, [4, 8, 16]}; throws ihlab::Error naming the bad text.
SweepAxis parse_sweep_axis(const std::string& text);

struct SweepFit {
  std::string x, y;  // swept key, and a final metric (summary.json "final") or summary field
};
// "task.vocab:val_loss" -> {task.vocab, val_loss}
SweepFit parse_sweep_fit(const std::string& text);

struct SweepOptions {
  std::vector<SweepAxis> axes;
  std::vector<SweepFit> fits;
  std::vector<std::string> overrides;  // applied to every run before the axes
  bool quiet = false;
  std::string command;  // recorded in summary.json
  // Called after each run made by this sweep (not for runs it skips), e.g. to write its report.
  std::function<void(const std::string& run_dir, const RunResult& run)> after_run;
};

struct SweepResult {
  int runs = 0, finished = 0, skipped = 0;
  RunSummary summary;  // as written to DIR/summary.json (kind sweep)
};

SweepResult run_sweep(const std::string& config_path, const std::string& out_dir, const SweepOptions& options);

// A scaling entry of summary.json: least squares of ln y on ln x over the positive pairs, the
// slope's 95% interval and the band of the fitted line on 50 log-spaced points.
nlohmann::json scaling_fit_json(const std::string& name, const std::string& x_key, const std::string& y_key,
                                const std::vector<double>& x, const std::vector<double>& y);

}  // namespace ihlab
