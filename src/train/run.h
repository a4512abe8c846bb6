#pragma once
// From a resolved configuration to a finished run directory: builds the task, samples the data
// sets, builds the model in the configured dtype, sets the thread count and calls train().
#include <string>

#include <nlohmann/json.hpp>

#include "train/trainer.h"

namespace ihlab {

RunResult run_config(const nlohmann::json& resolved, const std::string& out_dir, const TrainOptions& options = {});
// The same with the spec and data already built (a caller that also uses the validation set).
RunResult run_spec(const RunSpec& spec, const RunData& data, const std::string& out_dir,
                   const TrainOptions& options = {});

// A run directory left by another process (or an earlier session): its config.toml, metrics.csv
// and summary.json read back. Throws ihlab::Error naming a missing or malformed file.
RunResult read_run(const std::string& dir);

// Prints a short human summary of a finished run (final metrics, status, where things are).
void print_run_summary(const RunSummary& s, const std::string& out_dir);

}  // namespace ihlab
