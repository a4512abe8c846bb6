#pragma once
// Instruments: what a run measures at each log step besides the trainer's own columns (stage, t,
// lr, loss, grad_norm), and files it keeps beside metrics.csv. The list is assembled once per run
// from the spec, the task's and the model's capabilities (make_instruments); the trainer only
// iterates it. A new instrument is a class here and one line in make_instruments.
//
// Column order of a metrics row (make_instruments keeps it, so metrics.csv keeps its layout):
//   val_loss, val_<evaluate>        validation          the model's loss and evaluate() on val
//   kl.<ref>                        validation          tasks with reference predictions
//   val_<set>_loss, val_<set>_<k>   eval-sets           tasks with named evaluation sets
//   <probes>                        probes              the model's probes()
//   prev.*, ind.*, pm.*             head-scores         log.head_scores > 0
//   flow_evals                      flow-evals          runs with a flow stage
//   ref.*, target.*                 references          constants: the task's reference losses
//                                                       and a caller's extra references
// and attention.jsonl (attention-snapshots, log.attention_snapshots > 0), written after the row.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"
#include "train/run_data.h"
#include "train/run_spec.h"

namespace ihlab {

// What an instrument sees at a log step. Gradients are off (NoGradScope) while instruments run.
template <typename T>
struct LogPoint {
  Model<T>& model;
  const Batch& val;    // the validation set
  int64_t step;        // updates done over all stages
  int64_t stage;       // index of the current stage
  bool stage_end;      // the row closes a stage
  int64_t flow_evals;  // gradient evaluations of every flow stage so far
};

template <typename T>
class Instrument {
 public:
  virtual ~Instrument() = default;
  virtual std::string name() const = 0;
  // Appends this instrument's columns to the metrics row of `p.step`. The set of columns must be
  // the same at every row (metrics.csv fixes its header at the first one).
  virtual void measure(const LogPoint<T>& p, Scalars& row) {}
  // After the row was written: an instrument that keeps a file of its own writes it here.
  virtual void after_row(const LogPoint<T>& p) {}
};

template <typename T>
using Instruments = std::vector<std::unique_ptr<Instrument<T>>>;

struct InstrumentSetup {
  std::string out_dir;
  int64_t resume_step = -1;  // >= 0: the run resumes after this step (files keep what came before)
  int64_t total_steps = 0;   // optimizer steps over all stages (spreads the attention snapshots)
  Scalars extra_references;  // constant columns logged after the task's ref.* (a caller's)
};

// The instruments of a run, in the column order above.
template <typename T>
Instruments<T> make_instruments(const RunSpec& spec, const RunData& data, const InstrumentSetup& setup);

}  // namespace ihlab
