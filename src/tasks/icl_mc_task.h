#pragma once
// ICL-MC (tasks/icl_mc.h) as a Task: "icl-mc".
//
// Layout of a Batch (length() = `length` = T + 1):
//   tokens  [n, length]: x_0 .. x_T of one chain per sequence (its own kernel).
//   targets [n, length]: next-token targets at every position, targets[i] = x_{i+1}; the last -1.
//
// Reference predictors (tasks/icl_mc_predictors.h), column names:
//   ref.uniform, ref.unigram, ref.bigram (order 2) or ref.ngram (order > 2), ref.oracle.
// reference_losses(b) gives their means over the targets of b. uniform, unigram and n-gram are
// measured on b itself; the oracle needs the kernels, which a Batch does not carry, so its
// column is the EXPECTED oracle loss under the prior (the mean entropy rate; exact for the
// unigram variant, otherwise averaged over 4096 kernels of a fixed stream, standard error
// ~0.002 nats at the defaults, computed once per task).
//
// Expected per-position losses (expected_position_losses), what is exact and what is Monte Carlo:
//   uniform                    exact (ln k).
//   oracle                     unigram variant: exact (psi(k alpha + 1) - psi(alpha + 1)); otherwise
//                              the exact per-kernel entropy rate averaged over sampled kernels
//                              (Monte Carlo over kernels only, no token noise).
//   unigram                    unigram variant: exact (Beta-binomial sum); otherwise Monte Carlo.
//   bigram / ngram             Monte Carlo (mean over sampled sequences, standard error per position).
#include <memory>
#include <mutex>
#include <vector>

#include "tasks/icl_mc.h"
#include "tasks/reference.h"
#include "tasks/task.h"

namespace ihlab {

class IclMcTask : public Task {
 public:
  explicit IclMcTask(IclMcConfig cfg);  // validates
  std::string name() const override { return "icl-mc"; }
  int64_t vocab() const override { return cfg_.states; }
  int64_t length() const override { return cfg_.length; }
  // Sequence r is RandomStream(seed, kind, index, r): its chain is drawn first, then its tokens,
  // so the batch never depends on the thread count or the batch size.
  Batch sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const override;
  // The chains behind sample(n, seed, kind, index), row by row (only the chain draws are redone).
  std::vector<IclMcChain> chains(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const;
  Scalars reference_losses(const Batch& b) const override;
  // uniform, unigram and bigram/n-gram (no oracle: a batch does not carry its kernels).
  std::vector<ReferencePrediction> reference_predictions(const Batch& b) const override {
    return predictions(b, nullptr);
  }

  std::vector<std::string> reference_names() const;  // in the order below
  // (c) [size, length, states] per reference; the oracle is included when `chains` is given.
  std::vector<ReferencePrediction> predictions(const Batch& b, const std::vector<IclMcChain>* chains) const;
  // (b) per-position mean loss (and standard error over sequences) of each reference on b.
  std::vector<PositionLosses> position_losses(const Batch& b, const std::vector<IclMcChain>* chains) const;
  // Expected per-position losses under the prior, exact where marked (see the header comment);
  // Monte Carlo over `sequences` draws of RandomStream(seed, Eval, kExpectationIndex, r).
  std::vector<PositionLosses> expected_position_losses(int64_t sequences = 20000,
                                                       uint64_t seed = kExpectationSeed) const;
  const IclMcConfig& config() const { return cfg_; }

  static constexpr uint64_t kExpectationSeed = 0x1C1AC;             // the fixed stream of ref.oracle
  static constexpr uint64_t kExpectationIndex = uint64_t(1) << 62;  // never a training step

 private:
  // Rows [begin, end) of sample(end, ...) and/or their chains.
  void generate(int64_t begin, int64_t end, uint64_t seed, StreamKind kind, uint64_t index, Batch* b,
                std::vector<IclMcChain>* chains) const;
  double expected_oracle_mean() const;  // over the target positions, computed once
  IclMcConfig cfg_;
  mutable std::once_flag oracle_once_;
  mutable double oracle_mean_ = 0;
};

}  // namespace ihlab
