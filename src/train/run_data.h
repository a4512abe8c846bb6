#pragma once
// The task and the data sets of a run, built once from its spec and shared by everything in the
// process that needs them: the trainer, a reproduction's reference model, its claims.
#include <cstdint>
#include <memory>

#include "tasks/task.h"
#include "train/run_spec.h"

namespace ihlab {

struct RunData {
  std::shared_ptr<const Task> task;
  Batch train;  // data.mode = "fixed": the training set; "fresh": empty
  Batch val;    // the validation set
};

// Samples the data sets of `spec` from `task`: fixed mode draws one pool from the data stream and
// splits it into training and validation sequences; fresh mode draws the validation set from the
// evaluation stream.
RunData make_run_data(const RunSpec& spec, std::shared_ptr<const Task> task);
// Builds the task of the resolved [task] table, then samples as above.
RunData make_run_data(const RunSpec& spec);

// The batch of update `step`: a fresh draw keyed on the step, the whole training set, or a
// mini-batch of it drawn without replacement by a stream keyed on the step. A pure function of
// (seed, step), so a resumed run sees the batches an uninterrupted one would.
Batch train_batch(const RunSpec& spec, const RunData& data, int64_t step);
// The batch every step trains on, when it is the whole fixed training set (data.train itself, not
// a copy); nullptr when the batches change from step to step.
const Batch* whole_train_batch(const RunSpec& spec, const RunData& data);
// The number of sequences in train_batch's batches.
int64_t train_batch_size(const RunSpec& spec);
// Rows begin .. end - 1 of train_batch(spec, data, step), bit for bit; a fresh draw samples only
// those rows (Task::sample_rows), so each rank of a data-parallel run draws only its share.
Batch train_batch_rows(const RunSpec& spec, const RunData& data, int64_t step, int64_t begin, int64_t end);

}  // namespace ihlab
