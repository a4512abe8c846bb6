#pragma once
// Reference predictors for the in-context n-gram task: the floors and baselines every model's loss
// is compared against.
//
// All of them are add-alpha estimators over the sequence itself: for an ASSUMED parent set pa,
// the prediction for the token after x_1..x_L is
//   p(x) = (count(z, x) + alpha) / (count(z) + d * alpha),   z = (x_{L+1+pa_k})_k,
// counting the in-context occurrences i (max|pa| < i <= L, 1-based) whose context x_{i+pa} equals
// z. With the true parents and the prior's alpha this is the Bayes-optimal posterior predictive
// (the rows of pi are independent Dirichlet draws, so the row of z has posterior
// Dirichlet(alpha + counts)). With pa = {} it is the in-context unigram; with wrong parents it is
// the "wrong parents" baseline.
// When the final context does not exist (L < max|pa|) the prediction is uniform, which is also
// Bayes-optimal there because the first max|pa| tokens are i.i.d. uniform.
#include <cstdint>
#include <span>
#include <vector>

#include "tasks/ngram_markov.h"

namespace ihlab {

struct AddAlphaPredictor {
  int vocab = 0;
  std::vector<int> parents;  // assumed parent offsets (negative, distinct); empty = unigram
  double alpha = 0;

  // `context` = x_1..x_L; returns [vocab], the predictive distribution of x_{L+1}.
  std::vector<double> predict(std::span<const int32_t> context) const;
  int max_lag() const;
  void validate() const;  // throws ihlab::Error naming the bad field
};

// Knows the true parents and the prior's alpha.
AddAlphaPredictor bayes_predictor(const NgramMarkovConfig& cfg);
AddAlphaPredictor unigram_predictor(int vocab, double alpha);
AddAlphaPredictor ngram_predictor(int vocab, std::vector<int> parents, double alpha);

// Mean over sequences of -log p(x_{L+1} | x_1..x_L), in nats. Deterministic for any thread count.
double mean_cross_entropy(const AddAlphaPredictor& pred, const NgramBatch& batch);

// [length]: entry t-1 (t = 1..L) is the mean over sequences of -log p(x_{t+1} | x_1..x_t), the
// loss at every target position when all_positions is set. The last entry equals
// mean_cross_entropy. Counts are updated incrementally, so the cost is O(L) per sequence.
std::vector<double> per_position_cross_entropy(const AddAlphaPredictor& pred, const NgramBatch& batch);

}  // namespace ihlab
