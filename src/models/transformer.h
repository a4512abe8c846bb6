#pragma once
// A configurable decoder-only transformer ("transformer" in the model registry). Defaults are the
// ICL-MC model of Edelman et al. 2024: 2 layers, 1 head, width 16, attention-only, pre-LayerNorm,
// learned relative position bias.
//
//   x = E[tokens] (+ features W_in) (+ P[0:L] if positional = learned)          [B, L, D]
//   per layer:
//     x = x + drop(MHA(LN(x)) W_O (+ b_O))                                      [B, L, D]
//     x = x + drop(GELU(LN(x) W_1 + b_1) W_2 + b_2)     (unless attention_only; exact erf GELU)
//   logits = LN(x) W_U,   W_U = E^T when tied_unembedding                      [B, L, V]
// LN is an affine LayerNorm (each block's own, and a final one) with norm = "pre", the identity with
// norm = "none". Row-vector convention: activations are rows, weights are [in, out], y = x W.
//
// MHA: head h owns columns h*dh .. h*dh+dh-1 of W_Q, W_K, W_V and the same rows of W_O
// (dh = D / H). Query i attends with weights softmax_j(q_i . k_j / sqrt(dh) + bias_h(i - j)) over
// keys j <= i (self_attention = true) or j < i (false: row 0 then attends nowhere and its head
// output is zero). `positional` chooses where position information enters:
//   learned   absolute table P [max_len, D] added to the input embedding; no bias
//   relative  learned bias_h(o) per head and offset o ([H, K] table, column c = offset lo + c with
//             lo = 0 or 1 per self_attention); keys beyond the table are masked, so rel_window
//             = K > 0 is a window of K keys, and 0 makes the table cover every offset of max_len
//             (a batch longer than max_len then sees max_len - lo positions back at most)
//   alibi     bias_h(o) = -m_h o with the fixed slopes of Press et al. 2022: m_h = 2^(-8 (h+1) / H)
//             for H a power of two, else those of the nearest lower power of two followed by every
//             other slope of the next one
//   rotary    q and k rotated per position (RoPE, half-split "rotate_half" layout: ops::rotary)
//   none      no position information beyond the causal mask
//
// Token loss (token_loss): cross-entropy of softmax(logits[i]) against targets[i] (the default), or
// mse = 1/2 mean over target positions of ||logits[i] - onehot(targets[i])||^2, the squared error
// on the same unembedding output (the logits are the readout W_o h, the one-hot vector the target
// token), so the two losses differ only in the link between readout and target.
//
// Targets: the logits at position i are scored against targets[i] and depend on tokens 0..i (the
// token at i is in i's residual stream whatever self_attention says), so a task must put at i what
// is to be predicted from positions <= i (next-token tasks: targets[i] = tokens[i + 1]).
//
// Continuous inputs: with feature_dim F > 0 (Task::feature_dim()), every batch carries features
// [B, L, F] and the input at a position is E[token] + features W_in.
//
// Regression output: with value_dim Dv > 0 (Task::value_dim(), e.g. item-label retrieval or the
// mixed 4-gram/induction target) the model predicts one vector per sequence from the last position,
//   yhat = LN(x[:, L-1]) U,   U = unembed.U [D, Dv]                                   [B, Dv]
// and regression_loss chooses the objective:
//   mse         1/2 mean_b ||yhat_b - values_b||^2 (the convention of Task::value_dim)
//   candidates  cross-entropy of softmax_j(yhat_b . c_bj) against candidate_target_b, over the
//               batch's candidate answers c_bj (Batch::candidates; the task must provide them)
// evaluate() then reports "mse" (the first objective, whatever the loss) and, with candidates,
// "acc" = fraction of sequences whose best-scoring candidate is the right one. Token instruments
// (logits, next-token distributions, per-position losses, OV circuits) do not apply.
//
// Parameter groups (what stages freeze and train):
//   "embed"          embed.E [V, D], embed.W_in [F, D] (F > 0)
//   "pos"            pos.P [max_len, D] (learned)
//   "layer<l>.attn"  layer<l>.attn.{ln_g, ln_b (norm = pre), Wq, Wk, Wv, Wo [D, D], bq, bk, bv, bo [D]
//                    (attn_bias)}
//   "layer<l>.rpe"   layer<l>.rpe.w [H, K] (relative)
//   "layer<l>.mlp"   layer<l>.mlp.{ln_g, ln_b (norm = pre), W1 [D, M], b1 [M], W2 [M, D], b2 [D]}
//   "unembed"        unembed.{ln_g, ln_b (norm = pre), U [D, V] (untied; [D, Dv] for regression)}
// Init: weights and tables ~ N(0, init_std^2); biases, the RPE table and LN betas 0; LN gains 1.
//
// Dropout (rate p on the attention probabilities and on each block's residual output) is applied
// only by loss() while some parameter is trainable, i.e. in training steps; the trainer's
// validation loss (under NoGradScope), evaluate(), attention() and the instruments run without
// it. Masks are pure functions of (seed, batch contents, layer, site): RandomStream(seed, Data,
// FNV-1a hash of the batch's tokens and features, site), so a resumed run draws the same masks and
// results do not depend on the thread count. (A batch seen twice, as in full-batch training, gets
// the same masks both times.)
//
// Performance: one step is a handful of fused ops (ops::norm_linear for LN + q|k|v, LN + W_1 +
// GELU and the final LN + unembedding; ops::banded_attention; ops::linear_residual for each
// block's output and residual add), and the first model built tunes glibc malloc to keep freed
// memory (transformer_detail::keep_freed_memory: process-wide, numerically neutral), which saves
// the page faults of re-allocating every step's graph.
#include <string>
#include <vector>

#include "models/model.h"

namespace ihlab {

enum class TransformerNorm { Pre, None };
enum class TransformerPositional { Learned, Relative, Alibi, Rotary, None };
enum class TransformerRegressionLoss { Mse, Candidates };
enum class TransformerTokenLoss { CrossEntropy, Mse };
constexpr auto enum_choices(TransformerNorm) {
  return std::array<EnumChoice<TransformerNorm>, 2>{{{TransformerNorm::Pre, "pre"}, {TransformerNorm::None, "none"}}};
}
constexpr auto enum_choices(TransformerPositional) {
  using P = TransformerPositional;
  return std::array<EnumChoice<P>, 5>{{{P::Learned, "learned"},
                                       {P::Relative, "relative"},
                                       {P::Alibi, "alibi"},
                                       {P::Rotary, "rotary"},
                                       {P::None, "none"}}};
}
constexpr auto enum_choices(TransformerRegressionLoss) {
  using L = TransformerRegressionLoss;
  return std::array<EnumChoice<L>, 2>{{{L::Mse, "mse"}, {L::Candidates, "candidates"}}};
}
constexpr auto enum_choices(TransformerTokenLoss) {
  using L = TransformerTokenLoss;
  return std::array<EnumChoice<L>, 2>{{{L::CrossEntropy, "cross-entropy"}, {L::Mse, "mse"}}};
}

// Throw "model.norm = "x" is not allowed (choose one of: ...)" for unknown names.
TransformerNorm parse_transformer_norm(const std::string& s);
TransformerPositional parse_transformer_positional(const std::string& s);
const char* transformer_norm_name(TransformerNorm n);
const char* transformer_positional_name(TransformerPositional p);
TransformerRegressionLoss parse_transformer_regression_loss(const std::string& s);

struct TransformerConfig {
  int64_t vocab = 3, max_len = 100, feature_dim = 0, value_dim = 0;            // from the task
  TransformerRegressionLoss regression_loss = TransformerRegressionLoss::Mse;  // value_dim > 0 only
  TransformerTokenLoss token_loss = TransformerTokenLoss::CrossEntropy;        // value_dim = 0 only
  int64_t layers = 2, heads = 1, width = 16;
  bool attention_only = true;
  int64_t mlp_width = 0;  // 0 = 4 * width
  TransformerNorm norm = TransformerNorm::Pre;
  TransformerPositional positional = TransformerPositional::Relative;
  int64_t rel_window = 0;  // relative only; 0 = every offset
  bool self_attention = true;
  bool tied_unembedding = false;
  double dropout = 0.0;
  double init_std = 0.02;
  bool attn_bias = false;
  double rope_base = 10000.0;
  double ln_eps = 1e-5;

  // The keys of [model] for name = "transformer"; defaults are the ICL-MC model of Edelman et al. 2024.
  template <class V>
  void fields(V& v) {
    v("layers", layers, "transformer blocks", in(1, 256));
    v("heads", heads, "attention heads per layer (must divide width)", in(1, 4096));
    v("width", width, "residual width d_model; head dim = width / heads", in(1, 65536));
    v("attention_only", attention_only, "blocks without MLPs");
    v("mlp_width", mlp_width, "hidden width of each GELU MLP; 0 = 4 * width (needs attention_only = false)",
      in(0, 1 << 20));
    v("norm", norm, "pre: LayerNorm before each block and before the unembedding; none");
    v("positional", positional,
      "learned (absolute table), relative (learned bias per head and offset), alibi (fixed slopes), rotary "
      "(RoPE, half-split), none");
    v("rel_window", rel_window, "relative: offsets per head, keys further back are masked; 0 = every offset",
      in(0, 1 << 20));
    v("self_attention", self_attention, "a position attends to itself (false: strictly earlier positions only)");
    v("tied_unembedding", tied_unembedding, "unembedding = embedding transposed");
    v("regression_loss", regression_loss,
      "regression tasks (value_dim > 0): mse = 1/2 ||yhat - y||^2; candidates = cross-entropy over yhat . c_j for "
      "the task's candidate answers");
    v("token_loss", token_loss,
      "token tasks (value_dim = 0): cross-entropy over the vocabulary, or mse = 1/2 ||logits - onehot(target)||^2 "
      "averaged over the target positions (the squared error of Musat et al. 2025's bridge on discrete tokens)");
    v("dropout", dropout, "dropout rate on attention probabilities and residual outputs (training steps only)",
      in(0, 1).below(1));
    v("init_std", init_std, "standard deviation of the Gaussian init of weights and tables", in(0, 10));
    v("attn_bias", attn_bias, "biases on the q, k, v and output projections");
    v("rope_base", rope_base, "rotary: angle of pair c at position i is i * rope_base^(-2c / head_dim)", above(0));
    v("ln_eps", ln_eps, "LayerNorm epsilon", above(0).at_most(1));
  }

  // Throws ihlab::Error naming the key ("model.heads = 3 does not divide model.width = 16 ...").
  void validate() const;
  int64_t head_dim() const { return width / heads; }
  int64_t mlp_hidden() const { return mlp_width > 0 ? mlp_width : 4 * width; }
  int64_t min_offset() const { return self_attention ? 0 : 1; }  // lo of the causal band
  int64_t rpe_size() const;                                      // K: columns of the relative-bias table
};

// ALiBi slopes m_0 .. m_{H-1} (see above).
std::vector<double> alibi_slopes(int64_t heads);

template <typename T>
class Transformer : public Model<T> {
 public:
  Transformer(const TransformerConfig& cfg, uint64_t seed);  // validates cfg
  std::string name() const override { return "transformer"; }
  const TransformerConfig& config() const { return cfg_; }

  // Mean cross-entropy over the positions with targets[i] >= 0 (dropout while training).
  Var<T> loss(const Batch& b) override;
  // Tokens: "acc" = argmax accuracy at target positions. Regression: "mse" (and "acc" over the
  // candidates when the batch has them).
  Scalars evaluate(const Batch& b) override;
  // ov_pos.l<l>.h<h> and ov_self.l<l>.h<h> (OV-circuit eigenvalue positivity and self-map fraction,
  // vocab <= 512), and the relative-bias weights "layer<l>.rpe.h<h>.o<offset>" when the table has
  // at most 16 offsets.
  Scalars probes() const override;
  // Every layer's and head's attention probabilities for sequence `example`, no dropout.
  std::vector<AttentionMap> attention(const Batch& b, int64_t example) override;
  // softmax(logits) at every position, [B, L, V] (transformer_probs.cpp), for the kl.* columns.
  std::vector<double> next_token_probs(const Batch& b) override;
  // loss, evaluate and next_token_probs from one forward pass (no parameter trainable; regression
  // outputs have no next-token distributions); otherwise Model's three calls.
  typename Model<T>::Validation validate(const Batch& b, bool with_probs) override;

  // Logits [B, L, V] without dropout (a graph if some parameter is trainable). Token output only.
  Var<T> logits(const Batch& b);
  // Regression prediction yhat [B, Dv] without dropout (a graph if some parameter is trainable).
  Var<T> predict(const Batch& b);
  bool regression() const { return cfg_.value_dim > 0; }
  // Attention probabilities per layer, [B, H, L, L] each, no dropout, no gradients.
  std::vector<Tensor<T>> attention_probs(const Batch& b);
  // Cross-entropy of each position's prediction, [B, L] row-major; NaN where targets < 0 (the
  // layout analysis/induction_metrics' per-position functions read). No dropout, no gradients.
  std::vector<double> per_position_losses(const Batch& b);
  // OV circuit of one head: M = W_E W_V^h W_O^h W_U, [V, V] row-major, in the row-vector
  // convention of analysis/induction_metrics.h (M[s, t]: logit added to t when the head attends
  // to token s). LayerNorm gains are folded in as TransformerLens' fold_ln does (W_V^h rows scaled
  // by the block's ln_g, W_U rows by the final ln_g); LN centering/scaling and biases are left out.
  std::vector<double> ov_circuit(int64_t layer, int64_t head) const;

 private:
  struct Layer {
    Var<T> ln1_g, ln1_b, Wq, Wk, Wv, Wo, bq, bk, bv, bo, rpe;  // attention
    Var<T> ln2_g, ln2_b, W1, b1, W2, b2;                       // MLP
  };
  // The residual stream after the last block, [B, L, D]; probs collects attention probabilities.
  Var<T> trunk(const Batch& b, bool train, std::vector<Tensor<T>>* probs);
  Var<T> forward(const Batch& b, bool train, std::vector<Tensor<T>>* probs);  // logits [B, L, V]
  Var<T> forward_regression(const Batch& b, bool train);                      // yhat [B, Dv]
  Var<T> token_mse(const Var<T>& z, const Batch& b) const;                    // token_loss = mse, z [B, L, V]
  Var<T> token_loss(const Var<T>& z, const Batch& b) const;                   // the token_loss of logits z
  Scalars token_accuracy(const Tensor<T>& z, const Batch& b) const;           // evaluate()'s "acc" of z
  static std::vector<double> softmax_rows(const Tensor<T>& z);                // [B, L, V] in double
  Var<T> block_attention(const Var<T>& x, const Layer& p, int64_t layer, int64_t B, int64_t L, uint64_t hash,
                         bool train, std::vector<Tensor<T>>* probs);
  Var<T> block_mlp(const Var<T>& x, const Layer& p, int64_t layer, uint64_t hash, bool train);
  // Dropout multipliers of a residual branch (undefined when not training).
  Tensor<T> residual_mask(const Shape& shape, int64_t layer, int site, uint64_t hash, bool train) const;
  void check_batch(const Batch& b) const;
  bool any_trainable() const;  // some parameter requires a gradient: loss() trains (graph, dropout)
  Var<T> regression_loss(const Var<T>& y, const Batch& b) const;         // the regression_loss of yhat [B, Dv]
  Scalars regression_scalars(const Tensor<T>& y, const Batch& b) const;  // evaluate()'s scalars of yhat

  TransformerConfig cfg_;
  uint64_t seed_;
  Var<T> E_, W_in_, pos_, lnf_g_, lnf_b_, U_;
  std::vector<Layer> layers_;
};

}  // namespace ihlab
