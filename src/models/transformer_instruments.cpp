// Transformer instruments: attention maps, per-position losses, OV circuits, probes. All run
// without dropout and without building backward closures.
#include <cmath>
#include <limits>

#include "analysis/induction_metrics.h"
#include "models/transformer.h"
#include "models/transformer_detail.h"

namespace ihlab {

template <typename T>
std::vector<Tensor<T>> Transformer<T>::attention_probs(const Batch& b) {
  NoGradScope<T> no_grad(this->params_);
  check_batch(b);
  std::vector<Tensor<T>> probs;
  trunk(b, false, &probs);
  return probs;
}

template <typename T>
std::vector<AttentionMap> Transformer<T>::attention(const Batch& b, int64_t example) {
  const Batch one = transformer_detail::one_example(b, example);
  const std::vector<Tensor<T>> probs = attention_probs(one);  // [1, H, L, L] per layer
  const int64_t L = one.length, H = cfg_.heads;
  std::vector<AttentionMap> maps;
  for (int64_t l = 0; l < cfg_.layers; ++l)
    for (int64_t h = 0; h < H; ++h) {
      AttentionMap m;
      m.layer = int(l), m.head = int(h), m.queries = L, m.keys = L;
      const T* src = probs[l].data() + h * L * L;
      m.weights.assign(src, src + L * L);
      maps.push_back(std::move(m));
    }
  return maps;
}

template <typename T>
std::vector<double> Transformer<T>::per_position_losses(const Batch& b) {
  NoGradScope<T> no_grad(this->params_);
  Var<T> z = forward(b, false, nullptr);  // [B, L, V]
  const int64_t V = cfg_.vocab, N = b.size * b.length;
  std::vector<double> out(N, std::numeric_limits<double>::quiet_NaN());
  for (int64_t r = 0; r < N; ++r) {
    if (b.targets[r] < 0) continue;
    const T* row = z.value().data() + r * V;
    double mx = -std::numeric_limits<double>::infinity(), s = 0;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, double(row[j]));
    for (int64_t j = 0; j < V; ++j) s += std::exp(double(row[j]) - mx);
    out[r] = mx + std::log(s) - double(row[b.targets[r]]);
  }
  return out;
}

template <typename T>
std::vector<double> Transformer<T>::ov_circuit(int64_t layer, int64_t head) const {
  IHLAB_CHECK(layer >= 0 && layer < cfg_.layers, "transformer: ov_circuit layer {} is out of range [0, {})", layer,
              cfg_.layers);
  IHLAB_CHECK(head >= 0 && head < cfg_.heads, "transformer: ov_circuit head {} is out of range [0, {})", head,
              cfg_.heads);
  IHLAB_CHECK(!regression(), "transformer: the OV circuit maps tokens to logits; this model has a regression output");
  const int64_t V = cfg_.vocab, D = cfg_.width, dh = cfg_.head_dim(), c0 = head * dh;
  const Layer& p = layers_[layer];
  const bool pre = cfg_.norm == TransformerNorm::Pre;
  const Tensor<T>& E = E_.value();
  const Tensor<T>& Wv = p.Wv.value();
  const Tensor<T>& Wo = p.Wo.value();
  // Row-vector chain, in double: A = W_E diag(g1) W_V^h [V, dh]; C = A W_O^h diag(gf) [V, D]; M = C W_U.
  std::vector<double> A(V * dh, 0.0), C(V * D, 0.0), M(V * V, 0.0);
  for (int64_t s = 0; s < V; ++s)
    for (int64_t d = 0; d < D; ++d) {
      const double e = double(E[s * D + d]) * (pre ? double(p.ln1_g.value()[d]) : 1.0);
      for (int64_t c = 0; c < dh; ++c) A[s * dh + c] += e * double(Wv[d * D + c0 + c]);
    }
  for (int64_t s = 0; s < V; ++s)
    for (int64_t c = 0; c < dh; ++c)
      for (int64_t d = 0; d < D; ++d) C[s * D + d] += A[s * dh + c] * double(Wo[(c0 + c) * D + d]);
  if (pre)
    for (int64_t s = 0; s < V; ++s)
      for (int64_t d = 0; d < D; ++d) C[s * D + d] *= double(lnf_g_.value()[d]);
  for (int64_t s = 0; s < V; ++s)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t t = 0; t < V; ++t) {
        // W_U[d, t] = U[d, t], or E[t, d] when tied.
        const double u = cfg_.tied_unembedding ? double(E[t * D + d]) : double(U_.value()[d * V + t]);
        M[s * V + t] += C[s * D + d] * u;
      }
  return M;
}

template <typename T>
Scalars Transformer<T>::probes() const {
  Scalars s;
  // Weight-only OV-circuit scores per head (induction_metrics.h): eigenvalue positivity and the
  // fraction of tokens mapped to themselves. Cheap for small vocabularies; skipped above 512.
  if (cfg_.vocab <= 512 && !regression())
    for (int64_t l = 0; l < cfg_.layers; ++l)
      for (int64_t h = 0; h < cfg_.heads; ++h) {
        const std::vector<double> M = ov_circuit(l, h);
        s.push_back({fmt::format("ov_pos.l{}.h{}", l, h), ov_eigenvalue_positivity(M, cfg_.vocab)});
        s.push_back({fmt::format("ov_self.l{}.h{}", l, h), ov_self_map_fraction(M, cfg_.vocab)});
      }
  if (cfg_.positional != TransformerPositional::Relative || cfg_.rpe_size() > 16) return s;
  const int64_t K = cfg_.rpe_size(), lo = cfg_.min_offset();
  for (int64_t l = 0; l < cfg_.layers; ++l)
    for (int64_t h = 0; h < cfg_.heads; ++h)
      for (int64_t c = 0; c < K; ++c)
        s.push_back({fmt::format("layer{}.rpe.h{}.o{}", l, h, lo + c), double(layers_[l].rpe.value()[h * K + c])});
  return s;
}

// The class itself is instantiated in transformer.cpp; these are the members defined here.
#define INST(T)                                                                        \
  template std::vector<Tensor<T>> Transformer<T>::attention_probs(const Batch&);       \
  template std::vector<AttentionMap> Transformer<T>::attention(const Batch&, int64_t); \
  template std::vector<double> Transformer<T>::per_position_losses(const Batch&);      \
  template std::vector<double> Transformer<T>::ov_circuit(int64_t, int64_t) const;     \
  template Scalars Transformer<T>::probes() const;
INST(float)
INST(double)
#undef INST

}  // namespace ihlab
