#pragma once
// Checkpoints of a training run in DIR/checkpoints/: save, rotation of the periodic ones, the
// latest.json pointer, and resume.
//
//   stage<i>-<name>-step<%08d>.safetensors   at the end of stage i (always kept)
//   step<%08d>.safetensors                   periodic (log.checkpoint_every), on Ctrl-C and before
//                                            a divergence; the newest log.keep_checkpoints are kept
//   latest.json                              {"file", "step"} of the newest checkpoint
//
// The checkpoint's meta JSON (io/checkpoint.h) holds: step, stage, stage_step, stage_done,
// rng {seed, data_index}, optimizer {kind, steps_taken}, flow_evals, wall_seconds, config (the
// resolved configuration; a resume with another one is refused), extra_references {column: value}
// (constants a caller added, e.g. a reproduction's limiting model), and for a flow stage
// flow {t, h, accepted, rejected} with the tensors extra.flow.y and extra.flow.k_last.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/params.h"
#include "tasks/task.h"
#include "train/flow.h"
#include "train/optimizer.h"
#include "train/run_spec.h"

namespace ihlab {

// Where a run stands between two updates: what a checkpoint records besides the tensors.
struct TrainPosition {
  int64_t step = 0;         // updates done, over all stages
  size_t stage = 0;         // current stage index
  int64_t stage_step = 0;   // updates done within the current stage
  bool stage_done = false;  // the checkpoint closed stage `stage`
  int64_t flow_evals = 0;   // gradient evaluations of every flow stage so far
};

// What resume() restores besides the parameters.
template <typename T>
struct Resumed {
  TrainPosition position;
  double wall_seconds = 0;                  // of the earlier sessions
  std::unique_ptr<Optimizer<T>> optimizer;  // the stage's optimizer with its state
  std::optional<FlowState> flow;            // the integrator's state inside a flow stage
  Scalars extra_references;                 // the extra reference columns of the first session
};

template <typename T>
class Checkpointer {
 public:
  Checkpointer(std::string dir, const RunSpec& spec, Scalars extra_references);

  // True when DIR/checkpoints/latest.json exists (the directory holds a run).
  bool has_run() const;
  // Writes a checkpoint of the current state and points latest.json at it; periodic ones beyond
  // log.keep_checkpoints are deleted, oldest first. Returns its path.
  std::string save(const TrainPosition& pos, bool stage_end, double wall_seconds, const ParamStore<T>& params,
                   const Optimizer<T>* optimizer, const FlowState* flow);
  // Loads the checkpoint latest.json names into `params`. Throws ihlab::Error when there is none,
  // when it was written with another configuration, or when it is malformed. The periodic
  // checkpoints of the earlier session keep rotating with the new ones.
  Resumed<T> resume(ParamStore<T>& params);
  // Path of the newest checkpoint written or resumed from; empty if none.
  const std::string& last() const { return last_; }

 private:
  std::string dir_;  // the run directory
  const RunSpec& spec_;
  Scalars extra_references_;
  std::vector<std::string> periodic_;  // paths, oldest first
  std::string last_;
};

}  // namespace ihlab
