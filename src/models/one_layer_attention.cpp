#include "models/one_layer_attention.h"

#include <cmath>

#include "core/ops.h"

namespace ihlab {

namespace {
template <typename T>
Tensor<T> gaussian(Shape s, double std, RandomStream& rng) {
  Tensor<T> t(std::move(s));
  for (auto& x : t.span()) x = T(std * rng.normal());
  return t;
}
}  // namespace

template <typename T>
OneLayerAttention<T>::OneLayerAttention(const OneLayerAttentionConfig& cfg, uint64_t seed) : cfg_(cfg) {
  IHLAB_CHECK(cfg.window >= 1 && cfg.window <= cfg.length, "model.window = {} is out of range (allowed: 1..{})",
              cfg.window, cfg.length);
  RandomStream rng(seed, StreamKind::Init);
  const int64_t V = cfg.vocab, D = cfg.width;
  auto& p = this->params_;
  E_ = p.add("embed.E", "embed", gaussian<T>({V, D}, cfg.init_std, rng));
  U_ = p.add("embed.U", "embed", gaussian<T>({D, V}, cfg.init_std, rng));
  Wq_ = p.add("attn.Wq", "attn", gaussian<T>({D, D}, cfg.init_std, rng));
  Wk_ = p.add("attn.Wk", "attn", gaussian<T>({D, D}, cfg.init_std, rng));
  Wv_ = p.add("attn.Wv", "attn", gaussian<T>({D, D}, cfg.init_std, rng));
  Wo_ = p.add("attn.Wo", "attn", gaussian<T>({D, D}, cfg.init_std, rng));
  rpe_ = p.add("rpe.w", "rpe", Tensor<T>(Shape{1, cfg.window}, T(0)));
  mask_ = ops::band_mask(cfg.length, 0, cfg.window - 1);
}

template <typename T>
Var<T> OneLayerAttention<T>::logits(const Batch& b, Var<T>* attention_out) {
  using namespace ops;
  const int64_t B = b.size, L = b.length, D = cfg_.width;
  IHLAB_CHECK(L == cfg_.length, "attn1: batch length {} but model.length = {}", L, cfg_.length);
  Var<T> x = embedding(E_, b.tokens, {B, L});                                 // [B, L, D]
  Var<T> q = linear(x, Wq_), k = linear(x, Wk_), v = linear(x, Wv_);          // [B, L, D]
  Var<T> scores = scale(bmm(q, k, false, true), 1.0 / std::sqrt(double(D)));  // [B, L, L]
  Var<T> bias = reshape(relative_bias(rpe_, L), {L, L});                      // [L, L]
  Var<T> att = masked_softmax(scores, bias, mask_, {L, L});                   // [B, L, L]
  if (attention_out) *attention_out = att;
  Var<T> h = add(x, linear(bmm(att, v), Wo_));  // [B, L, D]
  return linear(h, U_);                         // [B, L, V]
}

template <typename T>
Var<T> OneLayerAttention<T>::loss(const Batch& b) {
  return ops::cross_entropy(logits(b, nullptr), b.targets);
}

template <typename T>
Scalars OneLayerAttention<T>::evaluate(const Batch& b) {
  Var<T> z = logits(b, nullptr);
  const int64_t V = cfg_.vocab, N = b.size * b.length;
  int64_t correct = 0, total = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (b.targets[r] < 0) continue;
    const T* row = z.value().data() + r * V;
    correct += int64_t(std::max_element(row, row + V) - row) == b.targets[r];
    ++total;
  }
  return {{"acc", double(correct) / double(std::max<int64_t>(total, 1))}};
}

template <typename T>
Scalars OneLayerAttention<T>::probes() const {
  Scalars s;
  for (int64_t k = 0; k < cfg_.window; ++k) s.push_back({"rpe.o" + std::to_string(k), double(rpe_.value()[k])});
  return s;
}

template <typename T>
Tensor<T> OneLayerAttention<T>::attention(const Batch& b) {
  Var<T> att;
  logits(b, &att);
  return att.value();
}

template <typename T>
std::vector<AttentionMap> OneLayerAttention<T>::attention(const Batch& b, int64_t example) {
  Batch one = b.slice(example, example + 1);
  Tensor<T> att = attention(one);  // [1, L, L]
  const int64_t L = b.length;
  return {AttentionMap{0, 0, L, L, std::vector<double>(att.span().begin(), att.span().end())}};
}

template class OneLayerAttention<float>;
template class OneLayerAttention<double>;

}  // namespace ihlab
