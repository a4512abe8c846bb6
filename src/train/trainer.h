#pragma once
// Runs a list of stages on a model and a task, writing a run directory:
//   DIR/config.toml        the resolved configuration
//   DIR/metrics.csv        step, then one column per logged scalar (train/instruments.h)
//   DIR/attention.jsonl    attention snapshots (io/attention_log.h)
//   DIR/summary.json       status, final metrics, wall time, claims (io/run_summary.h)
//   DIR/checkpoints/       safetensors checkpoints; latest.json names the newest (train/checkpointing.h)
// A run resumed from its latest checkpoint continues bit-identically: data is a pure function of
// (seed, step), and parameters, optimizer and integrator state are restored exactly.
//
// train() also returns what it wrote, so the caller (a reproduction's claims, the report) reads
// nothing back from the directory.
#include <functional>
#include <string>

#include "io/run_dir.h"
#include "io/run_summary.h"
#include "models/model.h"
#include "train/data_parallel.h"
#include "train/run_data.h"
#include "train/run_spec.h"

namespace ihlab {

struct RunResult {
  RunSpec spec;          // the resolved specification the run used
  MetricsTable metrics;  // every row of metrics.csv, earlier sessions' included on resume
  RunSummary summary;    // what summary.json holds
  bool finished() const { return summary.finished(); }
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
  // Called after every update step (the Python module's training callbacks) with the step, and
  // either that step's metrics row (logged = true) or its stage, lr, loss and grad_norm. Returning
  // false stops the run as Ctrl-C does (checkpoint, status interrupted). It must not touch the
  // model: the run stays bit-identical to one without it.
  std::function<bool(int64_t step, const Scalars& row, bool logged)> on_step;
  // This process's place among MPI ranks that share each step's shards (train/data_parallel.h).
  DataParallel data_parallel;
};

template <typename T>
RunResult train(const RunSpec& spec, const RunData& data, Model<T>& model, const std::string& out_dir,
                const TrainOptions& options = {});

}  // namespace ihlab
