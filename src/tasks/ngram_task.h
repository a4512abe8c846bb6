#pragma once
// The in-context n-gram Markov chain (tasks/ngram_markov.h) as a Task: "ngram-markov".
//
// Layout of a Batch (length() = L + 1 columns; column c holds x_{c+1}, 1-based tokens):
//   tokens [n, L+1]: x_1 .. x_L, then x_{L+1} in the last column (the query slot).
//   targets [n, L+1]: -1 except the last column, which holds x_{L+1}.
// The target of a column is the token OF THAT column, to be predicted from the columns before it,
// so a model must not read a column's own token when it predicts it: the GIH model's input at the
// query slot is a zero vector (docs/models/gih.md#indexing-conventions).
// With all_positions, every column c >= 1 is a target (x_{c+1} predicted from x_1..x_c); column 0
// has nothing before it and stays -1. The last column is the same target in both modes.
//
// Reference losses (mean -log p of the targets, nats), from tasks/ngram_predictors.h:
//   ref.uniform          ln d
//   ref.bayes            posterior predictive with the true parents and the prior's alpha
//   ref.unigram          in-context unigram (add-alpha, no parents)
//   ref.ngram.<subset>   add-alpha with only a proper, non-empty subset of the true parents
//                        ("wrong parents" baselines), e.g. ref.ngram.m1 = parents {-1},
//                        ref.ngram.m2 = {-2}; one per subset when there are at most 3 parents.
#include "tasks/ngram_markov.h"
#include "tasks/task.h"

namespace ihlab {

class NgramMarkovTask : public Task {
 public:
  explicit NgramMarkovTask(NgramMarkovConfig cfg);  // validates
  std::string name() const override { return "ngram-markov"; }
  int64_t vocab() const override { return cfg_.vocab; }
  int64_t length() const override { return int64_t(cfg_.length) + 1; }
  // Sequence r is RandomStream(seed, kind, index, r): the same for any thread count or batch size.
  Batch sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const override;
  Scalars reference_losses(const Batch& b) const override;
  const NgramMarkovConfig& config() const { return cfg_; }

  // The tokens of a Batch of this task as an NgramBatch (for the predictors and analyses).
  static NgramBatch as_ngram_batch(const Batch& b);

 private:
  NgramMarkovConfig cfg_;
};

}  // namespace ihlab
