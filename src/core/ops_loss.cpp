// Embedding lookup and the losses. Loss means run in double over rows in a fixed order.
#include <cmath>
#include <limits>

#include "core/ops.h"
#include "core/ops_common.h"

namespace ihlab::ops {

template <typename T>
Var<T> embedding(const Var<T>& table, const std::vector<int32_t>& ids, const Shape& ids_shape) {
  IHLAB_CHECK(table.value().ndim() == 2, "embedding: table must be [V, D], got {}", shape_str(table.shape()));
  IHLAB_CHECK(int64_t(ids.size()) == numel_of(ids_shape), "embedding: {} ids for shape {}", ids.size(),
              shape_str(ids_shape));
  int64_t V = table.dim(0), D = table.dim(1);
  for (auto id : ids) IHLAB_CHECK(id >= 0 && id < V, "embedding: id {} out of range [0, {})", id, V);
  Shape s = ids_shape;
  s.push_back(D);
  Tensor<T> out(s);
  for (size_t r = 0; r < ids.size(); ++r) std::copy_n(table.value().data() + ids[r] * D, D, out.data() + r * D);
  return make_result<T>("embedding", std::move(out), {table}, [ids, D](Node<T>& node) {
    // Rows are scattered in id order of appearance: repeated ids accumulate deterministically.
    T* gt = node.parents[0]->grad_buffer().data();
    for (size_t r = 0; r < ids.size(); ++r)
      for (int64_t j = 0; j < D; ++j) gt[ids[r] * D + j] += node.grad[r * D + j];
  });
}

template <typename T>
Tensor<T> one_hot(const std::vector<int32_t>& ids, const Shape& ids_shape, int64_t vocab) {
  IHLAB_CHECK(int64_t(ids.size()) == numel_of(ids_shape), "one_hot: {} ids for shape {}", ids.size(),
              shape_str(ids_shape));
  Shape s = ids_shape;
  s.push_back(vocab);
  Tensor<T> out(s);
  for (size_t r = 0; r < ids.size(); ++r) {
    IHLAB_CHECK(ids[r] < vocab, "one_hot: id {} out of range [0, {})", ids[r], vocab);
    if (ids[r] >= 0) out[r * vocab + ids[r]] = T(1);
  }
  return out;
}

namespace {
// Rows x classes view of a [..., V] tensor with one target per row.
template <typename T>
std::pair<int64_t, int64_t> rows_classes(const char* op, const Var<T>& x, const std::vector<int32_t>& targets) {
  int64_t V = x.shape().back(), N = x.value().numel() / std::max<int64_t>(V, 1);
  IHLAB_CHECK(int64_t(targets.size()) == N, "{}: {} targets for {} rows of {}", op, targets.size(), N,
              shape_str(x.shape()));
  for (auto t : targets) IHLAB_CHECK(t < V, "{}: target {} out of range [0, {})", op, t, V);
  return {N, V};
}
}  // namespace

template <typename T>
Var<T> cross_entropy(const Var<T>& logits, const std::vector<int32_t>& targets) {
  // Not a structured binding: the lambdas below capture N and V, which clang 14 (the fuzz build,
  // tests/fuzz/fuzz.cmake) does not allow for bindings.
  const std::pair<int64_t, int64_t> rows = rows_classes("cross_entropy", logits, targets);
  const int64_t N = rows.first, V = rows.second;
  const T* z = logits.value().data();
  std::vector<T> probs(N * V);  // softmax, kept for backward
  std::vector<double> row_loss(N, 0.0);
  int64_t count = 0;
  for (auto t : targets) count += t >= 0;
  IHLAB_CHECK(count > 0, "cross_entropy: every target is ignored (-1)");
  parallel_for(N, std::max<int64_t>(1, detail::kGrain / V), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* zr = z + r * V;
      T mx = *std::max_element(zr, zr + V), s = 0;
      for (int64_t j = 0; j < V; ++j) s += (probs[r * V + j] = std::exp(zr[j] - mx));
      for (int64_t j = 0; j < V; ++j) probs[r * V + j] /= s;
      if (targets[r] >= 0) row_loss[r] = double(mx) + std::log(double(s)) - double(zr[targets[r]]);
    }
  });
  double total = 0;
  for (double l : row_loss) total += l;
  return make_result<T>("cross_entropy", Tensor<T>::scalar(T(total / count)), {logits},
                        [targets, N, V, count, probs = std::move(probs)](Node<T>& node) {
                          T g = node.grad[0] / T(count);
                          T* gz = node.parents[0]->grad_buffer().data();
                          for (int64_t r = 0; r < N; ++r) {
                            if (targets[r] < 0) continue;
                            for (int64_t j = 0; j < V; ++j)
                              gz[r * V + j] += g * (probs[r * V + j] - (j == targets[r] ? T(1) : T(0)));
                          }
                        });
}

template <typename T>
Var<T> nll_prob(const Var<T>& probs, const std::vector<int32_t>& targets, double guard) {
  // Not a structured binding: see cross_entropy.
  const std::pair<int64_t, int64_t> rows = rows_classes("nll_prob", probs, targets);
  const int64_t N = rows.first, V = rows.second;
  const T* p = probs.value().data();
  double total = 0;
  int64_t count = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (targets[r] < 0) continue;
    total -= std::log(double(p[r * V + targets[r]]) + guard);
    ++count;
  }
  IHLAB_CHECK(count > 0, "nll_prob: every target is ignored (-1)");
  return make_result<T>("nll_prob", Tensor<T>::scalar(T(total / count)), {probs},
                        [targets, V, count, guard](Node<T>& node) {
                          T g = node.grad[0] / T(count);
                          const T* p = node.parents[0]->value.data();
                          T* gp = node.parents[0]->grad_buffer().data();
                          for (size_t r = 0; r < targets.size(); ++r)
                            if (targets[r] >= 0) gp[r * V + targets[r]] -= g / (p[r * V + targets[r]] + T(guard));
                        });
}

template <typename T>
Var<T> mse(const Var<T>& a, const Tensor<T>& b) {
  check_same_shape("mse", a.shape(), b.shape());
  int64_t n = b.numel();
  IHLAB_CHECK(n > 0, "mse: empty tensors");
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    double e = double(a.value()[i]) - double(b[i]);
    total += e * e;
  }
  return make_result<T>("mse", Tensor<T>::scalar(T(total / n)), {a}, [b, n](Node<T>& node) {
    T g = node.grad[0] * T(2) / T(n);
    const T* pa = node.parents[0]->value.data();
    T* ga = node.parents[0]->grad_buffer().data();
    for (int64_t i = 0; i < n; ++i) ga[i] += g * (pa[i] - b[i]);
  });
}

#define INST(T)                                                                        \
  template Var<T> embedding(const Var<T>&, const std::vector<int32_t>&, const Shape&); \
  template Tensor<T> one_hot(const std::vector<int32_t>&, const Shape&, int64_t);      \
  template Var<T> cross_entropy(const Var<T>&, const std::vector<int32_t>&);           \
  template Var<T> nll_prob(const Var<T>&, const std::vector<int32_t>&, double);        \
  template Var<T> mse(const Var<T>&, const Tensor<T>&);
IHLAB_INSTANTIATE_OPS(INST)

}  // namespace ihlab::ops
