#include "models/gih_model.h"

#include "core/error.h"
#include "models/gih_attention.h"
#include "models/gih_readout.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace ihlab {

template <typename T>
GihModel<T>::GihModel(const GihConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  subsets_ = gih_subsets(cfg_.heads, cfg_.max_subset);
  const int H = cfg_.heads, M = cfg_.window;
  Tensor<T> w(Shape{H, M}, T(cfg_.w_minus));
  for (int h = 0; h < H; ++h) {
    const int k = h + 1 - cfg_.offset(h) - 1;  // window index of offset h + 1
    if (k >= 0 && k < M) w[h * M + k] = T(cfg_.w_plus);
  }
  auto& p = this->params_;
  w_ = p.add("w", "W", std::move(w));
  c_ = p.add("c", "C", Tensor<T>(Shape{int64_t(subsets_.size())}, T(cfg_.c_init)));
  a_ = p.add("a", "a", Tensor<T>::scalar(T(cfg_.a_init)));
}

template <typename T>
Var<T> GihModel<T>::loss(const Batch& b) {
  return gih_loss(w_, c_, a_, b, cfg_);
}

template <typename T>
GihResult<T> GihModel<T>::run(const Batch& b, GihRequest req) {
  IHLAB_CHECK(int64_t(b.tokens.size()) == b.size * b.length, "gih: batch holds {} tokens, expected {} x {}",
              b.tokens.size(), b.size, b.length);
  req.reused_batch = b.reused;
  return gih_compute(cfg_, w_.value().data(), c_.value().data(), a_.value()[0], b.tokens.data(), b.size, b.length, req);
}

template <typename T>
Tensor<T> GihModel<T>::predict(const Batch& b) {
  GihRequest req;
  req.y = true;
  auto r = run(b, req);
  return Tensor<T>(Shape{b.size, cfg_.vocab}, std::move(r.y));
}

template <typename T>
std::vector<double> GihModel<T>::sequence_losses(const Batch& b) {
  GihRequest req;
  req.seq_loss = true;
  return run(b, req).seq_loss;
}

template <typename T>
Scalars GihModel<T>::evaluate(const Batch& b) {
  if (b.size == 0) return {};
  GihRequest req;
  req.y = true;
  req.seq_loss = true;
  auto r = run(b, req);
  return gih_eval_scalars<T>(b, r.y.data(), r.seq_loss, cfg_.vocab);
}

template <typename T>
std::vector<double> GihModel<T>::log_p() const {
  return gih_log_p(c_.value());
}

template <typename T>
Scalars GihModel<T>::probes() const {
  return gih_probes(cfg_, subsets_, w_.value(), c_.value(), a_.value()[0]);
}

template <typename T>
std::vector<AttentionMap> GihModel<T>::attention(const Batch& b, int64_t example) {
  IHLAB_CHECK(example >= 0 && example < b.size, "attention: example {} is not in a batch of {}", example, b.size);
  auto to_double = [](const Tensor<T>& t) { return std::vector<double>(t.span().begin(), t.span().end()); };
  return gih_attention_maps(cfg_, subsets_, to_double(w_.value()), to_double(c_.value()), double(a_.value()[0]),
                            b.tokens.data() + example * b.length, b.length);
}

template class GihModel<float>;
template class GihModel<double>;

}  // namespace ihlab
