#pragma once
// A one-layer, one-head attention-only transformer with a learned relative-position bias:
//   x = E[tokens]                                   [B, L, D]
//   A = softmax(x Wq (x Wk)^T / sqrt(D) + rpe, band)  [B, L, L]   (causal window of K offsets)
//   y = (x + A x Wv Wo) U                           [B, L, V]
// Groups: "embed" (E, U), "attn" (Wq, Wk, Wv, Wo), "rpe" (relative bias per offset).
// The smallest model that has to form a real attention circuit; the smoke experiment trains it.
#include "models/model.h"

namespace ihlab {

struct OneLayerAttentionConfig {
  int64_t vocab = 8, length = 16, width = 16, window = 4;
  double init_std = 0.3;

  template <class V>
  void fields(V& v) {  // vocab and length come from the task
    v("width", width, "residual width D", in(1, 4096));
    v("window", window, "attention window: offsets 0..window-1", in(1, 65536));
    v("init_std", init_std, "standard deviation of the Gaussian initialization", in(0, 10));
  }
};

template <typename T>
class OneLayerAttention : public Model<T> {
 public:
  OneLayerAttention(const OneLayerAttentionConfig& cfg, uint64_t seed);
  std::string name() const override { return "attn1"; }
  Var<T> loss(const Batch& b) override;
  Scalars evaluate(const Batch& b) override;  // accuracy
  Scalars probes() const override;            // rpe.o<k>
  // Attention probabilities for a batch: [B, L, L].
  Tensor<T> attention(const Batch& b);  // [B, L, L]
  std::vector<AttentionMap> attention(const Batch& b, int64_t example) override;

 private:
  Var<T> logits(const Batch& b, Var<T>* attention_out);
  OneLayerAttentionConfig cfg_;
  Var<T> E_, U_, Wq_, Wk_, Wv_, Wo_, rpe_;
  std::vector<uint8_t> mask_;
};

}  // namespace ihlab
