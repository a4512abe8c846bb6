#pragma once
// In-context n-gram regression targets of Wang, Yu, E & Wu (2024), the approximation half of "How
// Transformers Implement Induction Heads" (docs/wang2024-approximation.md): "ngram-induction".
//
// A sequence is L real tokens x_1..x_L ~ N(0, I_d) (d = task.dim). With 1-based positions, the
// target at the last position compares the window of the n - 1 tokens ending at L with the window of
// the n - 1 tokens before each candidate s, and averages the candidates' tokens:
//   IH_n(X)  = sum_{s=n}^{L-1} x_s softmax_s(w* g(W_L, W_{s-1})),   W_t = (x_t, x_{t-1}, ..., x_{t-n+2})
//   dot       g(a, b) = <a, b> = sum_{k=0}^{n-2} <x_{L-k}, x_{s-1-k}>            (IH_n; n = 2 is IH_2)
//   distance  g(a, b) = -||a - b||^2 / (n - 1)                                    (GIH_n)
// The distance is a general, non-bilinear similarity: -||a - b||^2 = 2 <a, b> - ||a||^2 - ||b||^2,
// and while ||a||^2 (the query window's) is the same for every s and cancels in the softmax, the
// key window's squared norm ||W_{s-1}||^2 does not. A dot-product attention head over what
// attention alone can write into the residual stream (weighted sums of tokens) cannot form that
// term; an FFN can (the paper's reason for FFNs in GIH_n).
//
// Layout of a Batch (vocab() = 1: token ids carry nothing, every target is -1):
//   features [B, L, slots * d]: token s occupies coordinates [0, d) of position s; the other
//            slots - 1 blocks of d coordinates are zero (as mixed-target's; slots = 1 for the
//            standard transformer, which brings its own residual width).
//   values   [B, d]: y.
// Tokens are drawn exactly as mixed-target draws them (RandomStream(seed, kind, index, r), L * d
// normals in order, rounded to float), so for n = 2 and the dot similarity the two tasks give the
// same sequences and targets (mixed-target with alpha* = 0).
//
// Reference losses (1/2 mean squared error, on the validation set):
//   ref.zero   predict 0.
//   ref.mean   predict the batch's mean target: 1/2 the target's total variance, the denominator of
//              the relative error val_mse / ref.mean of the wang2024-approximation reproduction.
//   ref.lazy   least squares y ~ c m, m = mean of the candidates' tokens x_n..x_{L-1}, fitted on the
//              batch itself: what a uniform second-layer attention reaches without comparing windows.
#include "tasks/task.h"
#include "io/fields.h"

namespace ihlab {

enum class NgramSimilarity { Dot, Distance };
constexpr auto enum_choices(NgramSimilarity) {
  return std::array<EnumChoice<NgramSimilarity>, 2>{
      {{NgramSimilarity::Dot, "dot"}, {NgramSimilarity::Distance, "distance"}}};
}

struct NgramInductionConfig {
  int64_t n = 3;        // the n of IH_n: windows of n - 1 tokens
  int64_t length = 12;  // L >= n + 2
  int64_t dim = 1;      // d: token dimension
  int64_t slots = 1;    // blocks of d feature coordinates per position (>= 1)
  double w_star = 1.0;  // inverse temperature of the target
  NgramSimilarity similarity = NgramSimilarity::Dot;

  template <class V>
  void fields(V& v) {
    v("n", n, "n of IH_n: the query window x_L..x_{L-n+2} is compared with the n - 1 tokens before each s", in(2, 64));
    v("length", length, "L: tokens per sequence (>= n + 2: at least two candidates s = n..L-1)", in(4, 1 << 20));
    v("dim", dim, "d: token dimension (1 = scalar tokens)", in(1, 4096));
    v("slots", slots,
      "blocks of d feature coordinates per position; the token fills the first, the rest are zero room for "
      "attention heads to write into",
      in(1, 64));
    v("w_star", w_star, "w*: inverse temperature of the target's softmax", in(-1e6, 1e6));
    v("similarity", similarity,
      "dot: IH_n, score w* <window_L, window_{s-1}>; distance: GIH_n, score -w* ||window_L - window_{s-1}||^2 / "
      "(n - 1)");
  }
};

class NgramInductionTask : public Task {
 public:
  explicit NgramInductionTask(NgramInductionConfig cfg);  // validates, naming the offending key
  std::string name() const override { return "ngram-induction"; }
  int64_t vocab() const override { return 1; }
  int64_t length() const override { return cfg_.length; }
  int64_t feature_dim() const override { return cfg_.slots * cfg_.dim; }
  int64_t value_dim() const override { return cfg_.dim; }
  // Sequence r is RandomStream(seed, kind, index, r).
  Batch sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const override;
  Scalars reference_losses(const Batch& b) const override;
  const NgramInductionConfig& config() const { return cfg_; }

  // IH_n (or GIH_n) of one sequence; x = [L, d] row-major, out = [d].
  static void target(const double* x, int64_t L, int64_t d, int64_t n, double w, NgramSimilarity sim, double* out);

 private:
  NgramInductionConfig cfg_;
};

}  // namespace ihlab
