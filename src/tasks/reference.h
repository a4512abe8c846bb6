#pragma once
// What reference predictors produce, shared by the tasks that have them (icl-mc,
// repeated-tokens): next-token distributions on a batch, so that others can compute
// KL(model || reference) position by position, and per-position losses with standard errors.
//
// Convention: position i of a sequence predicts the token at i + 1 from tokens[0..i], which is
// what Batch::targets[i] holds; positions whose target is -1 have a prediction but no loss.
#include <cstdint>
#include <string>
#include <vector>

#include "tasks/batch.h"

namespace ihlab {

// One reference predictor's next-token distributions on a batch.
struct ReferencePrediction {
  std::string name;  // its column name, e.g. "ref.bigram"
  int64_t size = 0, length = 0, vocab = 0;
  std::vector<double> probs;  // [size, length, vocab]; rows sum to 1

  const double* at(int64_t r, int64_t i) const { return probs.data() + (r * length + i) * vocab; }
  double* at(int64_t r, int64_t i) { return probs.data() + (r * length + i) * vocab; }
};

// Per-position losses of one reference predictor.
struct PositionLosses {
  std::string name;               // column name, e.g. "ref.unigram"
  std::vector<double> mean;       // [length] nats; NaN where no sequence has a target there
  std::vector<double> std_error;  // [length]; 0 where exact
  bool exact = false;             // closed form (std_error 0) rather than a Monte Carlo average
};

// -log p(target) at every position of every sequence: [size, length], NaN where the target is -1.
// A target given probability 0 costs +inf: that is the reference's honest loss.
std::vector<double> target_losses(const ReferencePrediction& p, const Batch& b);

// Sums of per-position losses over sequences, added in sequence order (so chunked Monte Carlo
// gives the same numbers whatever the chunk size), turned into means and standard errors.
struct PositionAccumulator {
  std::vector<double> sum, sum_sq;  // [length]
  std::vector<int64_t> count;       // [length]: sequences with a target at the position

  explicit PositionAccumulator(int64_t length);
  void add(const std::vector<double>& losses, int64_t size, int64_t length);  // [size, length]
  // Standard error = sample standard deviation / sqrt(count) (0 when count < 2).
  PositionLosses finish(std::string name) const;
};

// Mean over the finite-or-infinite (non-NaN) entries of `losses`, i.e. over every target.
double mean_over_targets(const std::vector<double>& losses);

}  // namespace ihlab
