// The transformer's next-token distributions, which the trainer compares with the task's
// reference predictors (kl.* columns).
#include <algorithm>
#include <cmath>

#include "core/params.h"
#include "models/transformer.h"

namespace ihlab {

template <typename T>
std::vector<double> Transformer<T>::next_token_probs(const Batch& b) {
  if (regression()) return {};  // one real vector per sequence: no next-token distributions
  NoGradScope<T> no_grad(this->params());
  return softmax_rows(logits(b).value());
}

template <typename T>
std::vector<double> Transformer<T>::softmax_rows(const Tensor<T>& z) {  // z [B, L, V]
  const int64_t V = z.shape().back(), rows = z.numel() / V;
  std::vector<double> p(size_t(z.numel()));
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = z.data() + r * V;
    double mx = -INFINITY, sum = 0;
    for (int64_t t = 0; t < V; ++t) mx = std::max(mx, double(x[t]));
    for (int64_t t = 0; t < V; ++t) sum += p[size_t(r * V + t)] = std::exp(double(x[t]) - mx);
    for (int64_t t = 0; t < V; ++t) p[size_t(r * V + t)] /= sum;
  }
  return p;
}

template <typename T>
typename Model<T>::Validation Transformer<T>::validate(const Batch& b, bool with_probs) {
  // loss() would then build a graph (and drop out): keep its semantics.
  if (any_trainable()) return Model<T>::validate(b, with_probs);
  check_batch(b);
  if (regression()) {                               // yhat, which loss() and evaluate() each compute
    const Var<T> y = forward_regression(b, false);  // [B, Dv]
    return {double(regression_loss(y, b).item()), regression_scalars(y.value(), b), {}};
  }
  // The logits loss(), evaluate() and next_token_probs() each compute (no dropout: not training).
  const Var<T> z = forward(b, false, nullptr);  // [B, L, V]
  typename Model<T>::Validation v{double(token_loss(z, b).item()), token_accuracy(z.value(), b), {}};
  if (with_probs) v.probs = softmax_rows(z.value());
  return v;
}

template std::vector<double> Transformer<float>::next_token_probs(const Batch&);
template std::vector<double> Transformer<double>::next_token_probs(const Batch&);
template Model<float>::Validation Transformer<float>::validate(const Batch&, bool);
template Model<double>::Validation Transformer<double>::validate(const Batch&, bool);

}  // namespace ihlab
