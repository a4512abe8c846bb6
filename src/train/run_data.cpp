#include "train/run_data.h"

#include <numeric>
#include <utility>

#include "tasks/registry.h"

namespace ihlab {

RunData make_run_data(const RunSpec& spec, std::shared_ptr<const Task> task) {
  const DataSpec& d = spec.data;
  RunData r;
  if (d.mode == DataMode::Fixed) {
    // One pool from the data stream, split into training and validation sequences.
    Batch pool = task->sample(d.train_size + d.val_size, spec.seed, StreamKind::Data, 0);
    r.train = pool.slice(0, d.train_size);
    r.val = pool.slice(d.train_size, d.train_size + d.val_size);
    r.train.reused = whole_train_batch(spec, r) != nullptr;  // every step trains on all of it
  } else {
    r.val = task->sample(d.val_size, spec.seed, StreamKind::Eval, 0);
  }
  r.val.reused = true;
  r.task = std::move(task);
  return r;
}

RunData make_run_data(const RunSpec& spec) { return make_run_data(spec, make_task(spec.config.at("task"))); }

Batch train_batch(const RunSpec& spec, const RunData& data, int64_t step) {
  const DataSpec& d = spec.data;
  if (d.mode == DataMode::Fresh)
    return data.task->sample(d.batch_size, spec.seed, StreamKind::Data, uint64_t(step) + 1);
  if (d.batch_size == 0 || d.batch_size >= d.train_size) return data.train;
  // A mini-batch without replacement: partial Fisher-Yates driven by a stream keyed on the step.
  RandomStream rng(spec.seed, StreamKind::Data, uint64_t(1) << 40, uint64_t(step));
  std::vector<int64_t> idx(d.train_size);
  std::iota(idx.begin(), idx.end(), 0);
  for (int64_t i = 0; i < d.batch_size; ++i) std::swap(idx[i], idx[i + rng.randint(d.train_size - i)]);
  idx.resize(d.batch_size);
  return data.train.select(idx);
}

const Batch* whole_train_batch(const RunSpec& spec, const RunData& data) {
  const DataSpec& d = spec.data;
  return d.mode == DataMode::Fixed && (d.batch_size == 0 || d.batch_size >= d.train_size) ? &data.train : nullptr;
}

int64_t train_batch_size(const RunSpec& spec) {
  const DataSpec& d = spec.data;
  if (d.mode == DataMode::Fresh) return d.batch_size;
  return d.batch_size == 0 || d.batch_size >= d.train_size ? d.train_size : d.batch_size;
}

Batch train_batch_rows(const RunSpec& spec, const RunData& data, int64_t step, int64_t begin, int64_t end) {
  const DataSpec& d = spec.data;
  if (d.mode == DataMode::Fresh)
    return data.task->sample_rows(d.batch_size, begin, end, spec.seed, StreamKind::Data, uint64_t(step) + 1);
  Batch b = train_batch(spec, data, step).slice(begin, end);  // an index selection: cheap next to a step
  b.reused = data.train.reused;                               // the same rows at every step
  return b;
}

}  // namespace ihlab
