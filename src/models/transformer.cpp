// The transformer's parameters and its forward graph (see transformer.h).
#include "models/transformer.h"

#include <cmath>

#include "core/ops.h"
#include "models/transformer_detail.h"

namespace ihlab {

namespace td = transformer_detail;
using td::kAttnOut;
using td::kAttnProbs;
using td::kMlpOut;
using td::site_id;

namespace {

template <typename T>
Tensor<T> gaussian(Shape s, double std, RandomStream& rng) {
  Tensor<T> t(std::move(s));
  for (auto& x : t.span()) x = T(std * rng.normal());
  return t;
}

}  // namespace

template <typename T>
Transformer<T>::Transformer(const TransformerConfig& cfg, uint64_t seed) : cfg_(cfg), seed_(seed) {
  cfg_.validate();
  td::keep_freed_memory();
  RandomStream rng(seed, StreamKind::Init);
  const int64_t V = cfg.vocab, D = cfg.width, H = cfg.heads, M = cfg.mlp_hidden();
  const double sd = cfg.init_std;
  const bool pre = cfg.norm == TransformerNorm::Pre;
  auto& p = this->params_;
  auto ones = [](int64_t n) { return Tensor<T>(Shape{n}, T(1)); };
  auto zeros = [](Shape s) { return Tensor<T>(std::move(s), T(0)); };

  E_ = p.add("embed.E", "embed", gaussian<T>({V, D}, sd, rng));
  if (cfg.feature_dim > 0) W_in_ = p.add("embed.W_in", "embed", gaussian<T>({cfg.feature_dim, D}, sd, rng));
  if (cfg.positional == TransformerPositional::Learned)
    pos_ = p.add("pos.P", "pos", gaussian<T>({cfg.max_len, D}, sd, rng));
  for (int64_t l = 0; l < cfg.layers; ++l) {
    Layer y;
    const std::string a = fmt::format("layer{}.attn", l), r = fmt::format("layer{}.rpe", l),
                      m = fmt::format("layer{}.mlp", l);
    if (pre) {
      y.ln1_g = p.add(a + ".ln_g", a, ones(D));
      y.ln1_b = p.add(a + ".ln_b", a, zeros({D}));
    }
    y.Wq = p.add(a + ".Wq", a, gaussian<T>({D, D}, sd, rng));
    y.Wk = p.add(a + ".Wk", a, gaussian<T>({D, D}, sd, rng));
    y.Wv = p.add(a + ".Wv", a, gaussian<T>({D, D}, sd, rng));
    y.Wo = p.add(a + ".Wo", a, gaussian<T>({D, D}, sd, rng));
    if (cfg.attn_bias) {
      y.bq = p.add(a + ".bq", a, zeros({D}));
      y.bk = p.add(a + ".bk", a, zeros({D}));
      y.bv = p.add(a + ".bv", a, zeros({D}));
      y.bo = p.add(a + ".bo", a, zeros({D}));
    }
    if (cfg.positional == TransformerPositional::Relative) y.rpe = p.add(r + ".w", r, zeros({H, cfg.rpe_size()}));
    if (!cfg.attention_only) {
      if (pre) {
        y.ln2_g = p.add(m + ".ln_g", m, ones(D));
        y.ln2_b = p.add(m + ".ln_b", m, zeros({D}));
      }
      y.W1 = p.add(m + ".W1", m, gaussian<T>({D, M}, sd, rng));
      y.b1 = p.add(m + ".b1", m, zeros({M}));
      y.W2 = p.add(m + ".W2", m, gaussian<T>({M, D}, sd, rng));
      y.b2 = p.add(m + ".b2", m, zeros({D}));
    }
    layers_.push_back(y);
  }
  if (pre) {
    lnf_g_ = p.add("unembed.ln_g", "unembed", ones(D));
    lnf_b_ = p.add("unembed.ln_b", "unembed", zeros({D}));
  }
  const int64_t out = cfg.value_dim > 0 ? cfg.value_dim : V;  // regression readout or logits
  if (!cfg.tied_unembedding) U_ = p.add("unembed.U", "unembed", gaussian<T>({D, out}, sd, rng));
}

template <typename T>
void Transformer<T>::check_batch(const Batch& b) const {
  IHLAB_CHECK(b.size >= 1 && b.length >= 1, "transformer: empty batch ({} sequences of length {})", b.size, b.length);
  IHLAB_CHECK(int64_t(b.tokens.size()) == b.size * b.length && b.targets.size() == b.tokens.size(),
              "transformer: batch of {} x {} has {} tokens and {} targets", b.size, b.length, b.tokens.size(),
              b.targets.size());
  IHLAB_CHECK(cfg_.positional != TransformerPositional::Learned || b.length <= cfg_.max_len,
              "transformer: batch length {} exceeds the {} positions of the learned table (positional = \"learned\")",
              b.length, cfg_.max_len);
  IHLAB_CHECK(b.feature_dim == cfg_.feature_dim,
              "transformer: batch has feature_dim = {} but the model was built for feature_dim = {} (the task's)",
              b.feature_dim, cfg_.feature_dim);
  if (regression()) {
    IHLAB_CHECK(b.value_dim == cfg_.value_dim && int64_t(b.values.size()) == b.size * b.value_dim,
                "transformer: batch has {} target values of dimension {} for {} sequences, but the model predicts "
                "value_dim = {} (the task's)",
                b.values.size(), b.value_dim, b.size, cfg_.value_dim);
    IHLAB_CHECK(cfg_.regression_loss != TransformerRegressionLoss::Candidates || b.num_candidates > 0,
                "transformer: model.regression_loss = \"candidates\" needs a task that provides candidate answers, "
                "and this batch has none (allowed: regression_loss = \"mse\")");
    return;
  }
  for (int32_t t : b.targets)
    IHLAB_CHECK(t < cfg_.vocab, "transformer: target {} is out of range (allowed: -1 = none, 0..{})", t,
                cfg_.vocab - 1);
}

template <typename T>
Tensor<T> Transformer<T>::residual_mask(const Shape& shape, int64_t layer, int site, uint64_t hash, bool train) const {
  if (!train) return Tensor<T>();
  return td::dropout_multipliers<T>(shape, cfg_.dropout, seed_, hash, site_id(layer, site));
}

template <typename T>
Var<T> Transformer<T>::block_attention(const Var<T>& x, const Layer& p, int64_t layer, int64_t B, int64_t L,
                                       uint64_t hash, bool train, std::vector<Tensor<T>>* probs) {
  using namespace ops;
  const int64_t H = cfg_.heads, D = cfg_.width;
  const bool pre = cfg_.norm == TransformerNorm::Pre;
  // [q | k | v] = LN(x) [Wq | Wk | Wv] (+ biases), one fused op.               [B, L, 3D]
  Var<T> qkv = norm_linear(x, pre, p.ln1_g, p.ln1_b, cfg_.ln_eps, {p.Wq, p.Wk, p.Wv},
                           cfg_.attn_bias ? std::vector<Var<T>>{p.bq, p.bk, p.bv} : std::vector<Var<T>>{});
  BandedAttention spec;
  spec.heads = H;
  spec.lo = cfg_.min_offset();
  spec.hi = std::max(L - 1, spec.lo);
  spec.scale = 1.0 / std::sqrt(double(cfg_.head_dim()));
  Var<T> bias;  // [H, L, L]
  switch (cfg_.positional) {
    case TransformerPositional::Relative: {
      // Table column c is offset lo + c; with lo = 1 a zero column for offset 0 goes in front.
      Var<T> w = p.rpe;
      if (spec.lo == 1) w = concat_last<T>({Var<T>::leaf(Tensor<T>(Shape{H, 1}, T(0))), w});
      bias = relative_bias(w, L);
      spec.hi = std::min(spec.hi, spec.lo + cfg_.rpe_size() - 1);  // the window (or the table's end)
      break;
    }
    case TransformerPositional::Alibi: bias = Var<T>::leaf(td::alibi_bias<T>(H, L)); break;
    case TransformerPositional::Rotary: qkv = rotary(qkv, cfg_.head_dim(), cfg_.rope_base, 2 * D); break;
    default: break;
  }
  Tensor<T> drop;
  if (train) drop = td::dropout_multipliers<T>({B, H, L, L}, cfg_.dropout, seed_, hash, site_id(layer, kAttnProbs));
  Tensor<T> P;
  Var<T> a = banded_attention(qkv, bias, spec, drop, probs ? &P : nullptr);  // [B, L, D]
  if (probs) probs->push_back(P);
  // x + drop(a Wo + bo)
  return linear_residual(x, a, p.Wo, p.bo, residual_mask(x.shape(), layer, kAttnOut, hash, train));
}

template <typename T>
Var<T> Transformer<T>::block_mlp(const Var<T>& x, const Layer& p, int64_t layer, uint64_t hash, bool train) {
  using namespace ops;
  const bool pre = cfg_.norm == TransformerNorm::Pre;
  Var<T> u = norm_linear(x, pre, p.ln2_g, p.ln2_b, cfg_.ln_eps, {p.W1}, {p.b1}, /*gelu=*/true);  // [B, L, M]
  return linear_residual(x, u, p.W2, p.b2, residual_mask(x.shape(), layer, kMlpOut, hash, train));
}

template <typename T>
Var<T> Transformer<T>::trunk(const Batch& b, bool train, std::vector<Tensor<T>>* probs) {
  using namespace ops;
  check_batch(b);
  const int64_t B = b.size, L = b.length;
  train = train && cfg_.dropout > 0;
  const uint64_t hash = train ? td::batch_hash(b) : 0;
  Var<T> x = embedding(E_, b.tokens, {B, L});  // [B, L, D]
  if (cfg_.feature_dim > 0) x = add(x, linear(Var<T>::leaf(td::features_tensor<T>(b)), W_in_));
  if (cfg_.positional == TransformerPositional::Learned) {
    std::vector<int32_t> positions(L);
    for (int64_t i = 0; i < L; ++i) positions[i] = int32_t(i);
    x = add(x, embedding(pos_, positions, {L}));  // + [L, D]
  }
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    x = block_attention(x, layers_[l], l, B, L, hash, train, probs);
    if (!cfg_.attention_only) x = block_mlp(x, layers_[l], l, hash, train);
  }
  return x;
}

template <typename T>
Var<T> Transformer<T>::forward(const Batch& b, bool train, std::vector<Tensor<T>>* probs) {
  using namespace ops;
  IHLAB_CHECK(!regression(),
              "transformer: this model has a regression output (the task's value_dim = {}); "
              "token logits do not exist",
              cfg_.value_dim);
  Var<T> x = trunk(b, train, probs);  // [B, L, D]
  // Final LayerNorm and unembedding in one op: LN(x) W_U, W_U = E^T when tied.     [B, L, V]
  Var<T> WU = cfg_.tied_unembedding ? transpose_last2(E_) : U_;
  return norm_linear(x, cfg_.norm == TransformerNorm::Pre, lnf_g_, lnf_b_, cfg_.ln_eps, {WU});
}

template <typename T>
Var<T> Transformer<T>::forward_regression(const Batch& b, bool train) {
  using namespace ops;
  Var<T> x = trunk(b, train, nullptr);  // [B, L, D]
  const int64_t B = b.size, L = b.length;
  // The last position of each sequence, as a product with a constant one-hot row: [B, 1, L] x
  // [B, L, D] -> [B, 1, D] (bmm's backward scatters the gradient back to that position).
  Tensor<T> pick(Shape{B, 1, L}, T(0));
  for (int64_t r = 0; r < B; ++r) pick[r * L + L - 1] = T(1);
  Var<T> last = bmm(Var<T>::leaf(pick), x);
  Var<T> y = norm_linear(last, cfg_.norm == TransformerNorm::Pre, lnf_g_, lnf_b_, cfg_.ln_eps, {U_});
  return reshape(y, Shape{B, cfg_.value_dim});  // [B, Dv]
}

template <typename T>
bool Transformer<T>::any_trainable() const {
  for (auto& p : this->params_.all())
    if (p.var.requires_grad()) return true;
  return false;
}

template <typename T>
Var<T> Transformer<T>::loss(const Batch& b) {
  const bool training = any_trainable();
  if (!regression()) return token_loss(forward(b, training, nullptr), b);
  check_batch(b);
  return regression_loss(forward_regression(b, training), b);
}

template <typename T>
Var<T> Transformer<T>::regression_loss(const Var<T>& y, const Batch& b) const {
  const int64_t B = b.size, Dv = cfg_.value_dim;
  if (cfg_.regression_loss == TransformerRegressionLoss::Mse)
    // ops::mse averages over all B * Dv entries; the convention sums over the Dv dims, halved.
    return ops::scale(ops::mse(y, Tensor<T>(Shape{B, Dv}, std::vector<T>(b.values.begin(), b.values.end()))),
                      0.5 * double(Dv));
  const int64_t C = b.num_candidates;
  Var<T> cand = Var<T>::leaf(Tensor<T>(Shape{B, C, Dv}, std::vector<T>(b.candidates.begin(), b.candidates.end())));
  Var<T> scores = ops::bmm(ops::reshape(y, Shape{B, 1, Dv}), cand, false, true);  // [B, 1, C]
  return ops::cross_entropy(ops::reshape(scores, Shape{B, C}), b.candidate_target);
}

template <typename T>
Var<T> Transformer<T>::token_loss(const Var<T>& z, const Batch& b) const {
  return cfg_.token_loss == TransformerTokenLoss::Mse ? token_mse(z, b) : ops::cross_entropy(z, b.targets);
}

template <typename T>
Var<T> Transformer<T>::token_mse(const Var<T>& z, const Batch& b) const {
  // 1/2 sum over target rows of ||z_i - onehot_i||^2, divided by their count. Rows without a
  // target are masked to 0 against a 0 target, so they add nothing (nor any gradient).
  const int64_t V = cfg_.vocab, rows = b.size * b.length;
  Tensor<T> mask(z.shape(), T(0)), onehot(z.shape(), T(0));  // [B, L, V]
  int64_t n = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (b.targets[r] < 0) continue;
    ++n;
    for (int64_t v = 0; v < V; ++v) mask[r * V + v] = T(1);
    onehot[r * V + b.targets[r]] = T(1);
  }
  IHLAB_CHECK(n > 0, "transformer: model.token_loss = \"mse\" needs a batch with at least one target (all are -1)");
  // ops::mse averages over all rows * V entries.
  return ops::scale(ops::mse(ops::mul(z, Var<T>::leaf(mask)), onehot), 0.5 * double(rows * V) / double(n));
}

template <typename T>
Var<T> Transformer<T>::predict(const Batch& b) {
  IHLAB_CHECK(regression(), "transformer: predict() needs a regression task (value_dim > 0); use logits()");
  check_batch(b);
  return forward_regression(b, false);
}

template <typename T>
Var<T> Transformer<T>::logits(const Batch& b) {
  return forward(b, false, nullptr);
}

template <typename T>
Scalars Transformer<T>::evaluate(const Batch& b) {
  NoGradScope<T> no_grad(this->params_);
  if (regression()) return regression_scalars(predict(b).value(), b);
  return token_accuracy(forward(b, false, nullptr).value(), b);
}

template <typename T>
Scalars Transformer<T>::token_accuracy(const Tensor<T>& z, const Batch& b) const {
  const int64_t V = cfg_.vocab, N = b.size * b.length;
  int64_t correct = 0, total = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (b.targets[r] < 0) continue;
    const T* row = z.data() + r * V;
    correct += int64_t(std::max_element(row, row + V) - row) == b.targets[r];
    ++total;
  }
  return {{"acc", double(correct) / double(std::max<int64_t>(total, 1))}};
}

template <typename T>
Scalars Transformer<T>::regression_scalars(const Tensor<T>& y, const Batch& b) const {  // y [B, Dv]
  const int64_t B = b.size, Dv = cfg_.value_dim, C = b.num_candidates;
  double se = 0;
  int64_t correct = 0;
  for (int64_t r = 0; r < B; ++r) {
    for (int64_t d = 0; d < Dv; ++d) {
      const double e = double(y[r * Dv + d]) - b.values[r * Dv + d];
      se += e * e;
    }
    if (C == 0) continue;
    int64_t best = 0;
    double best_score = -INFINITY;
    for (int64_t j = 0; j < C; ++j) {
      double s = 0;
      for (int64_t d = 0; d < Dv; ++d) s += double(y[r * Dv + d]) * b.candidates[(r * C + j) * Dv + d];
      if (s > best_score) best_score = s, best = j;
    }
    correct += best == b.candidate_target[r];
  }
  Scalars out{{"mse", 0.5 * se / double(B)}};
  if (C > 0) out.push_back({"acc", double(correct) / double(B)});
  return out;
}

template class Transformer<float>;
template class Transformer<double>;

}  // namespace ihlab
