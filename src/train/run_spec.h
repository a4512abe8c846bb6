#pragma once
// The typed run configuration: top-level keys, [data], [log] and the list of [[stages]], each
// declared once (io/fields.h). run_schema() (train/run_schema.h) is built from these declarations
// plus the task and model registries, which give the keys of [task] and [model] by their name.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/fields.h"
#include "train/flow.h"
#include "train/optimizer.h"
#include "train/schedule.h"

namespace ihlab {

enum class StageMethod { Optimizer, Flow };
constexpr auto enum_choices(StageMethod) {
  return std::array<EnumChoice<StageMethod>, 2>{{{StageMethod::Optimizer, "optimizer"}, {StageMethod::Flow, "flow"}}};
}
enum class Integrator { Dopri5, CvodeBdf };
constexpr auto enum_choices(Integrator) {
  return std::array<EnumChoice<Integrator>, 2>{{{Integrator::Dopri5, "dopri5"}, {Integrator::CvodeBdf, "cvode-bdf"}}};
}
enum class DataMode { Fresh, Fixed };
constexpr auto enum_choices(DataMode) {
  return std::array<EnumChoice<DataMode>, 2>{{{DataMode::Fresh, "fresh"}, {DataMode::Fixed, "fixed"}}};
}
enum class Dtype { Float32, Float64 };
constexpr auto enum_choices(Dtype) {
  return std::array<EnumChoice<Dtype>, 2>{{{Dtype::Float32, "float32"}, {Dtype::Float64, "float64"}}};
}

struct StageSpec {
  std::string name = "train";
  std::vector<std::string> train{"all"};  // parameter groups trained in this stage ("all" = every group)
  StageMethod method = StageMethod::Optimizer;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  double lr = 1e-3;                // optimizer: step size; flow: time scale of dθ/dt = -lr ∇L(θ)
  int64_t steps = 0;               // optimizer steps
  double clip = 0;                 // max gradient norm; 0 = no clipping
  double time = 0;                 // flow: integrate t from 0 to `time`
  FlowConfig flow;                 // rtol, atol
  std::string objective = "loss";  // what the model minimizes in this stage (Model::set_objective)
  Integrator integrator = Integrator::Dopri5;
  double segment_first = 0.01;      // cvode-bdf: end of the first segment [0, segment_first]
  double segments_per_decade = 10;  // cvode-bdf: segment ends segment_first * 10^(k / this)
  double stop_loss = 0;             // end the stage once the training loss is <= this (0 = off)

  template <class V>
  void fields(V& v) {
    v("name", name, "stage name (used in checkpoint names and reports)");
    v("train", train, "parameter groups trained in this stage; the rest are frozen");
    v("method", method, "discrete optimizer steps, or gradient flow integrated by Dormand-Prince 5(4)");
    v("lr", lr, "learning rate (flow: time scale of dθ/dt = -lr ∇L)", in(0, 1e12));
    v("steps", steps, "optimizer steps in this stage (optimizer stages)", in(0, 1e12));
    v("time", time, "integration time (flow stages)", in(0, 1e12));
    optimizer.fields(v);
    v("clip", clip, "clip the global gradient norm to this value; 0 = off", in(0, 1e12));
    schedule.fields(v);
    v("rtol", flow.rtol, "flow: relative tolerance of the integrator", in(1e-15, 1));
    v("atol", flow.atol, "flow: absolute tolerance of the integrator", in(0, 1));
    v("integrator", integrator,
      "flow: dopri5 (explicit Dormand-Prince 5(4), one trainer step per accepted step) or cvode-bdf (SUNDIALS "
      "CVODE, implicit BDF for stiff flows, one trainer step per segment; a fresh solver per segment, so "
      "a resume is bit-identical)");
    v("segment_first", segment_first, "cvode-bdf: the first segment is [0, segment_first]", in(1e-12, 1e12));
    v("segments_per_decade", segments_per_decade,
      "cvode-bdf: segment k ends at segment_first * 10^(k / this) (capped at time)", in(0.01, 1e6));
    v("stop_loss", stop_loss,
      "end the stage early once the training loss after a step (flow: at the accepted step's end; optimizer: "
      "the step's batch loss) is at or below this; 0 = run the stage to its steps or time",
      in(0, 1e300));
    v("objective", objective,
      "what the model minimizes in this stage: loss (the task's), or an objective the model offers "
      "(attention-circuit: copy-previous, layer 1 fitting the previous token)");
  }
};

struct DataSpec {
  DataMode mode = DataMode::Fresh;  // fresh: a new batch every step; fixed: one training set
  int64_t train_size = 1024;        // fixed mode: sequences in the training set
  int64_t val_size = 256;           // validation sequences (fixed mode: a held-out split)
  int64_t batch_size = 32;          // fresh mode: per step; fixed mode: 0 = full batch
  int64_t shards = 1;  // a step's gradient as the mean of this many shard gradients (train/data_parallel.h)

  template <class V>
  void fields(V& v) {
    v("mode", mode, "fresh: a new batch every step; fixed: one training set");
    v("train_size", train_size, "fixed mode: training sequences", in(1, 1e9));
    v("val_size", val_size, "validation sequences", in(1, 1e9));
    v("batch_size", batch_size, "sequences per step; fixed mode: 0 = full batch", in(0, 1e9));
    v("shards", shards,
      "optimizer stages: a step's gradient is the mean of this many equal shards' gradients, added in shard "
      "order; `mpirun -np P` (P dividing it) computes the shards on P ranks with bit-identical results",
      in(1, 65536));
  }
};

struct LogSpec {
  int64_t every = 10;                // steps between metric rows (and progress lines)
  int64_t checkpoint_every = 0;      // steps between checkpoints; 0 = only at stage ends
  int64_t keep_checkpoints = 3;      // periodic checkpoints kept on disk (stage ends always kept)
  bool geometric = false;            // also log ~20 rows per decade of steps (for log-x plots)
  int64_t attention_snapshots = 16;  // attention.jsonl snapshots, geometric in the step (0 = none)
  int64_t attention_tokens = 64;     // last positions kept per pattern
  int64_t head_scores = 16;          // validation sequences scored per head at each log row (0 = off)

  template <class V>
  void fields(V& v) {
    v("every", every, "steps between metric rows", in(1, 1e12));
    v("checkpoint_every", checkpoint_every, "steps between checkpoints; 0 = only at stage ends", in(0, 1e12));
    v("keep_checkpoints", keep_checkpoints, "periodic checkpoints kept on disk", in(1, 1e6));
    v("geometric", geometric, "also log ~20 rows per decade of steps (log-x plots)");
    v("attention_snapshots", attention_snapshots,
      "attention patterns of one validation sequence saved to attention.jsonl at about this many logged steps, "
      "spread geometrically, plus stage ends (0 = none)",
      in(0, 1e6));
    v("attention_tokens", attention_tokens, "the last N query and key positions kept per pattern", in(1, 4096));
    v("head_scores", head_scores,
      "validation sequences on which every attention head's previous-token, induction (TransformerLens) and "
      "prefix-matching scores are logged (prev.*, ind.*, pm.*; 0 = off)",
      in(0, 1 << 20));
  }
};

// Keys of [task] and [model] for each name, from the registries (train/run_schema.cpp).
std::map<std::string, Schema> task_variant_schemas();
std::map<std::string, Schema> model_variant_schemas();

struct RunSpec {
  std::string name = "run";
  uint64_t seed = 0;
  Dtype dtype = Dtype::Float32;
  int threads = 0;
  nlohmann::json task;   // the resolved [task] table; typed by the task registry (tasks/registry.h)
  nlohmann::json model;  // the resolved [model] table; typed by the model registry (models/registry.h)
  DataSpec data;
  LogSpec log;
  std::vector<StageSpec> stages;
  nlohmann::json config;  // the whole resolved configuration it came from

  template <class V>
  void fields(V& v) {
    v("name", name, "run name");
    v("seed", seed, "seed of every random stream (init, data, eval)", in(0, 9.007199254740992e15));
    v("dtype", dtype, "number type of parameters and activations");
    v("threads", threads, "worker threads; 0 = all cores (results do not depend on it)", in(0, 4096));
    v.variants("task", task, "name", task_variant_schemas(), "the data");
    v.variants("model", model, "name", model_variant_schemas(), "the model");
    v.table("data", data, "");
    v.table("log", log, "");
    v.table_array("stages", stages, 1, "training stages, run in order");
  }
};

// Reads a resolved configuration (run_schema().resolve) and checks what one key's range cannot:
// steps > 0 for optimizer stages, time > 0 for flow stages, flow needs a fixed full batch.
RunSpec run_spec_from_config(const nlohmann::json& resolved);

}  // namespace ihlab
