#pragma once
// Runs a list of stages on a model and a task, writing a run directory:
//   DIR/config.toml        the resolved configuration
//   DIR/metrics.csv        step, then one column per logged scalar
//   DIR/summary.json       status, final metrics, wall time, claims (filled by reproductions)
//   DIR/checkpoints/       safetensors checkpoints; latest.json names the newest
// A run resumed from its latest checkpoint continues bit-identically: data is a pure function of
// (seed, step), and parameters, optimizer and integrator state are restored exactly.
#include <memory>
#include <string>

#include "models/model.h"
#include "tasks/task.h"
#include "train/run_spec.h"

namespace ihlab {

struct RunResult {
  std::string status;  // "finished", "interrupted" or "diverged"
  std::string message;
  int64_t steps = 0;
  double wall_seconds = 0;
  Scalars final_metrics;  // the last metrics row
  std::string checkpoint;  // newest checkpoint written
};

struct TrainOptions {
  bool resume = false;  // continue from DIR/checkpoints/latest.json
  bool quiet = false;   // no progress output (tests)
  // Stop after this many global steps as if interrupted (tests of resume); -1 = never.
  int64_t stop_after = -1;
  // Extra reference losses (e.g. a limiting model's) appended to every metrics row as constants.
  Scalars extra_references;
  // The command line that made the run, recorded in summary.json for the report.
  std::string command;
};

// The training set (fixed mode; empty in fresh mode) and validation set a run uses.
std::pair<Batch, Batch> run_datasets(const RunSpec& spec, const Task& task);

template <typename T>
RunResult train(const RunSpec& spec, const Task& task, Model<T>& model, const std::string& out_dir,
                const TrainOptions& options = {});

}  // namespace ihlab
