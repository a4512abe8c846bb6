#include "tasks/batch.h"

#include <algorithm>

#include "core/error.h"

namespace ihlab {

Batch Batch::select(const std::vector<int64_t>& rows) const {
  Batch b;
  b.size = int64_t(rows.size());
  b.length = length;
  b.tokens.reserve(b.size * length);
  b.targets.reserve(b.size * length);
  b.feature_dim = feature_dim;
  const int64_t row_features = length * feature_dim;  // floats per sequence
  IHLAB_CHECK(int64_t(features.size()) == size * row_features,
              "batch: {} features for {} sequences of {} x {} (expected size * length * feature_dim)", features.size(),
              size, length, feature_dim);
  b.features.reserve(b.size * row_features);
  b.value_dim = value_dim;
  IHLAB_CHECK(int64_t(values.size()) == size * value_dim,
              "batch: {} target values for {} sequences (expected size * value_dim = {} * {})", values.size(), size,
              size, value_dim);
  b.values.reserve(b.size * value_dim);
  b.part_names = part_names;
  const int64_t row_parts = int64_t(part_names.size()) * std::max<int64_t>(value_dim, 1);
  IHLAB_CHECK(int64_t(parts.size()) == size * row_parts,
              "batch: {} target-component values for {} sequences of {} components x {}", parts.size(), size,
              part_names.size(), value_dim);
  b.parts.reserve(b.size * row_parts);
  b.num_candidates = num_candidates;
  const int64_t row_candidates = num_candidates * value_dim;
  IHLAB_CHECK(int64_t(candidates.size()) == size * row_candidates &&
                  int64_t(candidate_target.size()) == (num_candidates > 0 ? size : 0),
              "batch: {} candidate values and {} candidate targets for {} sequences of {} candidates x {}",
              candidates.size(), candidate_target.size(), size, num_candidates, value_dim);
  for (int64_t r : rows) {
    IHLAB_CHECK(r >= 0 && r < size, "batch: row {} out of range [0, {})", r, size);
    b.tokens.insert(b.tokens.end(), tokens.begin() + r * length, tokens.begin() + (r + 1) * length);
    b.targets.insert(b.targets.end(), targets.begin() + r * length, targets.begin() + (r + 1) * length);
    b.features.insert(b.features.end(), features.begin() + r * row_features, features.begin() + (r + 1) * row_features);
    b.values.insert(b.values.end(), values.begin() + r * value_dim, values.begin() + (r + 1) * value_dim);
    b.parts.insert(b.parts.end(), parts.begin() + r * row_parts, parts.begin() + (r + 1) * row_parts);
    b.candidates.insert(b.candidates.end(), candidates.begin() + r * row_candidates,
                        candidates.begin() + (r + 1) * row_candidates);
    if (num_candidates > 0) b.candidate_target.push_back(candidate_target[r]);
  }
  return b;
}

Batch Batch::slice(int64_t begin, int64_t end) const {
  std::vector<int64_t> rows;
  for (int64_t r = begin; r < end; ++r) rows.push_back(r);
  return select(rows);
}

int64_t Batch::num_targets() const {
  int64_t n = 0;
  for (auto t : targets) n += t >= 0;
  return n;
}

}  // namespace ihlab
