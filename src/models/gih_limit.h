#pragma once
// The limiting generalized induction head (docs/models/gih.md#the-limiting-model): p_{S*} = 1 and exact
// copiers, so for the query x_{L+1} and keys j = 1..L
//   y  proportional to  sum_j exp(a * 1{x_{j+s} = x_{L+1+s} for all s in S*}) onehot(x_j),
// S* given as parent offsets (negative). A key whose parent x_{j+s} does not exist (j + s < 1)
// does not match (its copier has no key and outputs 0); if some x_{L+1+s} does not exist no key
// matches. With S* = {} every key matches and y is the in-context unigram.
// Built directly from (vocab, S*, a, loss): no parameters, no training. Used to check that a
// trained GihModel approaches it and to find the best a of the family.
#include <cstdint>
#include <vector>

#include "models/gih_kernel.h"
#include "tasks/batch.h"

namespace ihlab {

class GihLimitModel {
 public:
  // loss/guard as in GihConfig (nll: -log(y[t] + guard); ce_on_probs: softmax CE applied to y).
  GihLimitModel(int64_t vocab, std::vector<int> parents, GihLoss loss = GihLoss::Nll, double guard = 1e-12);

  // y for every sequence of the batch (rows of L+1 tokens, the last one the target): [n, d].
  std::vector<double> predict(const Batch& b, double a) const;
  std::vector<double> sequence_losses(const Batch& b, double a) const;  // [n]
  double loss(const Batch& b, double a) const;                          // mean over sequences

  struct Best {
    double a = 0, loss = 0;
  };
  // The a in [a_lo, a_hi] minimizing loss(b, a): golden-section search on ln a down to a relative
  // bracket of rel_tol. (The nll loss has a finite best a; ce_on_probs usually keeps falling, and
  // then the answer is a_hi.) Per sequence the match counts are computed once, so one evaluation
  // costs O(n d).
  Best best_a(const Batch& b, double a_lo = 1e-3, double a_hi = 1e3, double rel_tol = 1e-8) const;

  const std::vector<int>& parents() const { return parents_; }

 private:
  struct Counts {
    int64_t n = 0, d = 0;
    std::vector<double> hit, miss;  // [n, d]: keys with token x that match / do not match
    std::vector<int32_t> target;    // [n]
  };
  Counts count(const Batch& b) const;
  void predict_one(const Counts& c, int64_t i, double a, double* y) const;
  double loss_one(const Counts& c, int64_t i, double a) const;
  double mean_loss(const Counts& c, double a) const;

  int64_t vocab_;
  std::vector<int> parents_;
  GihLoss loss_;
  double guard_;
};

}  // namespace ihlab
