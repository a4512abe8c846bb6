#pragma once
// GihFullModel: the "full" variant of the TF(M, H, d, D) model of Chen, Sheen, Wang, Yang (2024)
// (docs/models/gih.md#the-full-variant-gih-full), "gih-full" in the
// model registry. Everything of "gih" (windows, subsets, selector, classifier, losses) plus, per
// head, content-based attention and a value projection, and an affine LayerNorm in place of the
// L2 normalization. All groups train jointly.
//
// Notation (0-based): a sequence row holds L+1 tokens x[0..L]; x[L] is the target and is never
// read (the query slot's input is the zero vector, so its own token cannot leak). tok(i) = x[i]
// for i < L, "none" (a zero row of X) for i = L.
//
// Layer 1, head h. B_h = Q_h K_h^T (d x d), so (X Q_h K_h^T X^T)[i, j] = B_h[tok(i), tok(j)]
// (0 when either is none). Row i attends to the slots
//   self:  key i (offset 0), logit B_h[tok(i), tok(i)]; no RPE on the diagonal (decision: the
//          paper's "RPE band" is read as the band of gih, offsets o_h+1..o_h+M, and its diagonal
//          logit is about 0, which is what Q K^T gives at init, proj_init^2 = 1e-6). The
//          self slot can be switched off (self_attention = false).
//   k = 0..M-1: key i - (o_h + 1 + k) if it exists, logit w[h][k] + B_h[tok(i), tok(key)];
//          o_h = 0 (paper mode) or h (code mode), as in gih.
// A = softmax over the row's slots (a row with no slot, possible only without self attention,
// gives v = 0); v_i^h = sum_slots A OV_h[tok(key), :] (row tok of OV_h: value = A X OV_h; none
// contributes 0; the query row's self slot therefore only dilutes).
// LayerNorm shared by heads: u_i^h = gamma * (v - mean v) / sqrt(var v + eps) + beta (biased var).
// Layer 2 as gih with u in place of vbar: g_h(j) = <u_L^h, u_j^h>, kappa_S(j) = prod_{h in S}
// ReLU(g_h(j)), score_j = a sum_S p_S kappa_S(j), p_S = c_S^2 / sum c^2, keys j = 0..L-1,
// y = sum_j softmax(score)_j onehot(x[j]); loss -log(y[t] + guard) or softmax-CE on y (gih).
//
// Parameters (name / group / shape), init:
//   "w" / "W" [H, M]              w_minus, w[h][offset h+1] = w_plus (authors: 1, 0.01)
//   "q", "k" / "QK" [H, d, d]     proj_init * I (0.001)
//   "ov" / "OV" [H, d, d]         proj_init * I
//   "ln_gamma", "ln_beta" / "LN" [d]   1, 0
//   "c" / "C" [num subsets]       c_init;  "a" / "a" []  a_init
//
// Kernel: a layer-1 row depends on the data only through its "pattern": the digit of tok(i)
// (d = none) and of each window key (d = no such key), (d+1)^(M+1) patterns per head (256 for
// d = 3, M = 3). Every pattern's u is computed once per call; a sequence only looks its patterns
// up, and the backward pass accumulates dL/du per pattern, pushed through LayerNorm, the value
// projection and the row softmax once per call. Sequences run in parallel in fixed chunks added
// in chunk order: results do not depend on the thread count. Internally float64 for any T.
// Limit: (d+1)^(M+1) <= 2^20 patterns (validate() says so otherwise).
#include <cstdint>
#include <string>
#include <vector>

#include "models/gih_kernel.h"
#include "models/model.h"

namespace ihlab {

struct GihFullConfig {
  GihConfig base;              // vocab, heads, window, max_subset, mode, loss, guard, inits (kernel unused)
  double proj_init = 0.001;    // Q_h = K_h = OV_h = proj_init * I at init
  double ln_eps = 1e-5;        // LayerNorm epsilon (torch's default)
  bool self_attention = true;  // the diagonal slot (offset 0, no RPE)
  GihFullConfig() {
    base.w_plus = 1.0;  // the authors' init for this variant
    base.w_minus = 0.01;
  }

  template <class V>
  void fields(V& v) {
    base.shared_fields(v, {"M: RPE offsets per head (paper: 1..M; code: h+1..h+M), plus offset 0",
                           "init RPE logit of head h on offset h+1 (authors, full variant: 1)",
                           "init of every other RPE logit (authors, full variant: 0.01)"});
    v("proj_init", proj_init, "Q_h, K_h, OV_h start at proj_init * identity", in(-1e6, 1e6));
    v("ln_eps", ln_eps, "LayerNorm epsilon", in(1e-30, 1));
    v("self_attention", self_attention,
      "layer-1 rows also attend to their own position (logit from Q K^T only, no RPE)");
  }
  void validate() const;  // throws ihlab::Error naming the bad field
};

struct GihFullRequest {
  bool grad = false;      // gradients of the mean loss w.r.t. every parameter
  bool y = false;         // the predictions [n, d]
  bool seq_loss = false;  // the loss of every sequence [n]
};

struct GihFullGrads {
  std::vector<double> w, q, k, ov, gamma, beta, c;  // shapes as the parameters, row-major
  double a = 0;
};

template <typename T>
struct GihFullResult {
  double loss = 0;               // mean over sequences
  GihFullGrads grad;             // when requested
  std::vector<T> y;              // [n, d]
  std::vector<double> seq_loss;  // [n]
};

// Parameter pointers (row-major, shapes as listed above).
template <typename T>
struct GihFullParams {
  const T *w, *q, *k, *ov, *gamma, *beta, *c;
  T a;
};

template <typename T>
GihFullResult<T> gih_full_compute(const GihFullConfig& cfg, const GihFullParams<T>& p, const int32_t* tokens, int64_t n,
                                  int64_t row_len, const GihFullRequest& req);

// The fused op: the batch's mean loss, differentiable in every parameter.
template <typename T>
Var<T> gih_full_loss(const Var<T>& w, const Var<T>& q, const Var<T>& k, const Var<T>& ov, const Var<T>& gamma,
                     const Var<T>& beta, const Var<T>& c, const Var<T>& a, const Batch& b, const GihFullConfig& cfg);

template <typename T>
class GihFullModel : public Model<T> {
 public:
  explicit GihFullModel(const GihFullConfig& cfg);  // validates
  std::string name() const override { return "gih-full"; }

  Var<T> loss(const Batch& b) override;
  // acc, loss_excl_unseen, unseen_frac: as GihModel::evaluate.
  Scalars evaluate(const Batch& b) override;
  // As GihModel: a, p.<bits>, logp.<bits>, rpe.h<h>.o<offset>; plus qk_norm.h<h> = ||Q_h K_h^T||_F
  // and ov_norm.h<h> = ||OV_h||_F.
  Scalars probes() const override;

  Tensor<T> predict(const Batch& b);                    // y: [n, d]
  std::vector<double> sequence_losses(const Batch& b);  // [n]

  const GihFullConfig& config() const { return cfg_; }
  const std::vector<GihSubset>& subsets() const { return subsets_; }
  std::vector<double> log_p() const;  // ln p_S in subset order (from ln|c_S|)

  Var<T>& w() { return w_; }
  Var<T>& q() { return q_; }
  Var<T>& k() { return k_; }
  Var<T>& ov() { return ov_; }
  Var<T>& gamma() { return gamma_; }
  Var<T>& beta() { return beta_; }
  Var<T>& c() { return c_; }
  Var<T>& a() { return a_; }

 private:
  GihFullResult<T> run(const Batch& b, const GihFullRequest& req);
  GihFullConfig cfg_;
  std::vector<GihSubset> subsets_;
  Var<T> w_, q_, k_, ov_, gamma_, beta_, c_, a_;
};

}  // namespace ihlab
