#pragma once
// A task generates batches deterministically: sample(n, seed, kind, index) is a pure function, so
// data never depends on the thread count and a resumed run sees exactly the batches it would have.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "core/scalars.h"
#include "tasks/batch.h"
#include "tasks/reference.h"

namespace ihlab {

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  virtual int64_t vocab() const = 0;
  virtual int64_t length() const = 0;  // tokens per sequence as the model sees them
  // `index` separates independent draws of one stream kind (the step, or 0 for a fixed set).
  virtual Batch sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const = 0;
  // Rows begin .. end - 1 of sample(n, seed, kind, index), bit for bit: what one MPI rank of a
  // data-parallel run trains on (train/data_parallel.h). Tasks whose rows come from per-row
  // streams override it to draw only those rows; the default draws all n and slices.
  virtual Batch sample_rows(int64_t n, int64_t begin, int64_t end, uint64_t seed, StreamKind kind,
                            uint64_t index) const {
    return sample(n, seed, kind, index).slice(begin, end);
  }
  // Losses of reference predictors (uniform, Bayes-optimal, ...) on a batch, logged beside the
  // model's loss so every curve has its floors. Names are column names, e.g. "ref.uniform".
  virtual Scalars reference_losses(const Batch& b) const { return {}; }
  // Reference predictors' next-token distributions on a batch ([size, length, vocab] each, named
  // like their ref.* loss column). The trainer logs kl.<name> = mean over targets of
  // KL(reference || model) for models that expose their distributions. Empty = none.
  virtual std::vector<ReferencePrediction> reference_predictions(const Batch& b) const { return {}; }
  // Length of the vectors in Batch::features (0 = token-only task).
  virtual int64_t feature_dim() const { return 0; }
  // Length of Batch::values, the real target vector of each sequence (0 = token targets only).
  // Regression tasks are scored by the squared error 1/2 mean_b ||yhat_b - y_b||^2 of a prediction
  // made at the last position, the convention every regression model in ihlab uses.
  virtual int64_t value_dim() const { return 0; }
  // Retrieval tasks (item-label): the fixed rotation M [value_dim, value_dim], row-major, that maps
  // an item to the label it retrieves; models of retrieval (disentangled) read D and M from here.
  // Empty for every other task.
  virtual std::vector<double> label_rotation() const { return {}; }
  // Named evaluation sets whose distribution differs from training (e.g. "in-context" and
  // "in-weights" for bursty), sampled from their own Eval substreams so they never coincide with
  // the validation set: sample_eval is a pure function of (set, n, seed) like sample.
  virtual std::vector<std::string> eval_sets() const { return {}; }
  virtual Batch sample_eval(const std::string& set, int64_t n, uint64_t seed) const {
    fail("task '{}' has no evaluation set '{}' (it has none)", name(), set);
  }
};

}  // namespace ihlab
