#pragma once
// The mixed 4-gram / in-context 2-gram regression target of Wang, Yu, E & Wu (2024), "How
// Transformers Implement Induction Heads" (docs/tasks.md#mixed-target): "mixed-target".
//
// A sequence is L real tokens x_1..x_L ~ N(0, I_d) (d = task.dim; d = 1 is the paper's scalar case).
// With 1-based positions, the target at the last position is
//   y = alpha* x_{L-2} + (1 - alpha*) IH_2(X),
//   IH_2(X) = sum_{s=2}^{L-1} x_s softmax_s(w* <x_L, x_{s-1}>)   (no 1/(L-1) factor; the key of s is
//                                                               the token before it)
// Layout of a Batch (vocab() = 1: token ids carry nothing, every target is -1):
//   features [n, L, slots * d]: token s occupies coordinates [0, d) of position s; the other
//            slots - 1 blocks of d coordinates are zero (room that attention heads write into, e.g.
//            the previous token in the paper's two-layer construction: slots = 2 for d = 1 is the
//            "scalar embedded in 2 dimensions").
//   values   [n, d]: y.
//   parts    "4gram" = alpha* x_{L-2} and "induction" = (1 - alpha*) IH_2(X), summing to y, so a
//            model's error can be split into the two components.
// Tokens are drawn in double and rounded to float (Batch::features is float); targets are
// computed from the rounded tokens, so they are exact functions of what a model sees.
//
// Reference losses (1/2 mean squared error, on the validation set):
//   ref.zero        predict 0.
//   ref.4gram_only  predict exactly the 4-gram part: the error is the whole induction part.
//   ref.lazy        least squares on x_{L-2} and the mean of the keys' tokens x_2..x_{L-1}, fitted
//                   on the batch itself: the best "lazy" predictor, which is the plateau level of
//                   the four-phase dynamics (the induction head's mean-token part is captured by a
//                   uniform attention; only the variance beyond it needs the rich head).
#include "tasks/task.h"
#include "io/fields.h"

namespace ihlab {

struct MixedTargetConfig {
  int64_t length = 20;      // L >= 4
  int64_t dim = 1;          // d: token dimension
  int64_t slots = 2;        // blocks of d feature coordinates per position (>= 1)
  double w_star = 2.0;      // inverse temperature of the target induction head
  double alpha_star = 0.5;  // weight of the 4-gram component, in [0, 1]

  template <class V>
  void fields(V& v) {
    v("length", length, "L: tokens per sequence", in(4, 1 << 20));
    v("dim", dim, "d: token dimension (1 = the paper's scalar tokens)", in(1, 4096));
    v("slots", slots,
      "blocks of d feature coordinates per position; the token fills the first, the rest are zero room for "
      "attention heads to write into",
      in(1, 64));
    v("w_star", w_star, "w*: inverse temperature of the target induction head IH_2", in(-1e6, 1e6));
    v("alpha_star", alpha_star, "alpha*: weight of the 4-gram component x_{L-2}", in(0, 1));
  }
};

class MixedTargetTask : public Task {
 public:
  explicit MixedTargetTask(MixedTargetConfig cfg);  // validates, naming the offending key
  std::string name() const override { return "mixed-target"; }
  int64_t vocab() const override { return 1; }
  int64_t length() const override { return cfg_.length; }
  int64_t feature_dim() const override { return cfg_.slots * cfg_.dim; }
  int64_t value_dim() const override { return cfg_.dim; }
  // Sequence r is RandomStream(seed, kind, index, r).
  Batch sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const override;
  Scalars reference_losses(const Batch& b) const override;
  const MixedTargetConfig& config() const { return cfg_; }

  // IH_2 of one sequence; x = [L, d] row-major, out = [d].
  static void induction_head(const double* x, int64_t L, int64_t d, double w, double* out);

 private:
  MixedTargetConfig cfg_;
};

}  // namespace ihlab
