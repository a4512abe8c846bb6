#pragma once
// The typed view of a resolved run configuration: data, logging and the list of stages.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/flow.h"
#include "train/optimizer.h"
#include "train/schedule.h"

namespace ihlab {

struct StageSpec {
  std::string name;
  std::vector<std::string> train;  // parameter groups trained in this stage ("all" = every group)
  std::string method = "optimizer";  // "optimizer": discrete steps; "flow": gradient flow ODE
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  double lr = 1e-3;     // optimizer: step size; flow: time scale of dθ/dt = -lr ∇L(θ)
  int64_t steps = 0;    // optimizer steps
  double clip = 0;      // max gradient norm; 0 = no clipping
  double time = 0;      // flow: integrate t from 0 to `time`
  FlowConfig flow;
  std::string objective = "loss";       // what the model minimizes in this stage (Model::set_objective)
  std::string integrator = "dopri5";    // flow: "dopri5" or "cvode-bdf" (train/flow_cvode.h)
  double segment_first = 0.01;          // cvode-bdf: end of the first segment [0, segment_first]
  double segments_per_decade = 10;      // cvode-bdf: segment ends segment_first * 10^(k / this)
  double stop_loss = 0;                 // end the stage once the training loss is <= this (0 = off)
};

struct DataSpec {
  std::string mode = "fresh";  // "fresh": a new batch every step; "fixed": one training set
  int64_t train_size = 0;      // fixed mode: sequences in the training set
  int64_t val_size = 256;      // validation sequences (fixed mode: a held-out split)
  int64_t batch_size = 32;     // fresh mode: per step; fixed mode: 0 = full batch
};

struct LogSpec {
  int64_t every = 10;             // steps between metric rows (and progress lines)
  int64_t checkpoint_every = 0;   // steps between checkpoints; 0 = only at stage ends
  int64_t keep_checkpoints = 3;   // periodic checkpoints kept on disk (stage ends always kept)
  bool geometric = false;         // also log ~20 rows per decade of steps (for log-x plots)
  int64_t attention_snapshots = 16;  // attention.jsonl snapshots, geometric in the step (0 = none)
  int64_t attention_tokens = 64;     // last positions kept per pattern
  int64_t head_scores = 16;          // validation sequences scored per head at each log row (0 = off)
};

struct RunSpec {
  std::string name;
  uint64_t seed = 0;
  std::string dtype = "float32";
  int threads = 0;
  DataSpec data;
  LogSpec log;
  std::vector<StageSpec> stages;
  nlohmann::json config;  // the resolved configuration it came from
};

RunSpec run_spec_from_config(const nlohmann::json& resolved);

}  // namespace ihlab
