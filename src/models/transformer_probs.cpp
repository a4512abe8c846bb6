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
  Tensor<T> z = logits(b).value();  // [B, L, V]
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

template std::vector<double> Transformer<float>::next_token_probs(const Batch&);
template std::vector<double> Transformer<double>::next_token_probs(const Batch&);

}  // namespace ihlab
