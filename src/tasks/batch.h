#pragma once
// A batch of sequences as every task produces it and every model consumes it.
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ihlab {

struct Batch {
  int64_t size = 0;              // sequences
  int64_t length = 0;            // tokens per sequence
  std::vector<int32_t> tokens;   // [size, length]
  std::vector<int32_t> targets;  // [size, length]; -1 where a position has no target
  // Continuous inputs (tasks whose items are vectors, e.g. "bursty"): 0 and empty for token-only
  // tasks. A position holding an item has a special token id AND its vector here.
  int64_t feature_dim = 0;
  std::vector<float> features;  // [size, length, feature_dim], zeros where a position holds a token
  // Regression tasks (squared-error targets, e.g. item-label retrieval, the mixed 4-gram/induction
  // target): one real target vector per sequence, predicted at the last position. Kept in double so
  // gradient-flow runs in float64 see the exact target. 0 and empty for token tasks.
  int64_t value_dim = 0;
  std::vector<double> values;  // [size, value_dim]
  // Optional named additive components of the targets (e.g. "4gram" and "induction" for the mixed
  // target): parts[r, k, :] is component part_names[k] of sequence r, and the components sum to
  // values[r, :]. Models that attribute their output to components score each one separately.
  // Token tasks (value_dim = 0) keep one number per component: a 0/1 indicator of the component
  // that generated the sequence's target (e.g. mixed-tokens).
  std::vector<std::string> part_names;
  std::vector<double> parts;  // [size, part_names.size(), max(value_dim, 1)]
  // Candidate answers of a regression task (e.g. the N labels in context of item-label retrieval),
  // for models trained or scored by cross-entropy over yhat . c_j; 0 and empty when the task has none.
  int64_t num_candidates = 0;
  std::vector<double> candidates;         // [size, num_candidates, value_dim]
  std::vector<int32_t> candidate_target;  // [size] index of the right candidate

  // The same sequences are passed again in later calls (a fixed training set used whole, the
  // validation set): a model may keep work that depends only on the data between calls (the GIH
  // kernel's merged keys). Its results are then a function of the data and this flag. select and
  // slice return batches without it.
  bool reused = false;

  // The sequences at `rows`, in that order (mini-batches and train/validation splits).
  Batch select(const std::vector<int64_t>& rows) const;
  Batch slice(int64_t begin, int64_t end) const;
  int64_t num_targets() const;
};

}  // namespace ihlab
