// Reductions. Sums run in double over fixed chunks (parallel_sum) so the result is the same for
// any thread count and float32 sums do not lose the small terms of long sequences.
#include "core/ops.h"
#include "core/ops_common.h"

namespace ihlab::ops {

template <typename T>
Var<T> sum(const Var<T>& a) {
  const T* p = a.value().data();
  int64_t n = a.value().numel();
  double s = parallel_sum<double>(n, detail::kGrain, [&](int64_t lo, int64_t hi) {
    double acc = 0;
    for (int64_t i = lo; i < hi; ++i) acc += p[i];
    return acc;
  });
  return make_result<T>("sum", Tensor<T>::scalar(T(s)), {a}, [n](Node<T>& node) {
    T g = node.grad[0];
    T* ga = node.parents[0]->grad_buffer().data();
    for (int64_t i = 0; i < n; ++i) ga[i] += g;
  });
}

template <typename T>
Var<T> mean(const Var<T>& a) {
  IHLAB_CHECK(a.value().numel() > 0, "mean: empty tensor {}", shape_str(a.shape()));
  return scale(sum(a), 1.0 / double(a.value().numel()));
}

template <typename T>
Var<T> sum_last(const Var<T>& a) {
  IHLAB_CHECK(a.value().ndim() >= 1, "sum_last: need rank >= 1");
  Shape s(a.shape().begin(), a.shape().end() - 1);
  int64_t k = a.shape().back(), rows = numel_of(s);
  Tensor<T> out(s);
  const T* p = a.value().data();
  parallel_for(rows, std::max<int64_t>(1, detail::kGrain / std::max<int64_t>(k, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      T acc = 0;
      for (int64_t j = 0; j < k; ++j) acc += p[r * k + j];
      out[r] = acc;
    }
  });
  return make_result<T>("sum_last", std::move(out), {a}, [rows, k](Node<T>& node) {
    T* ga = node.parents[0]->grad_buffer().data();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < k; ++j) ga[r * k + j] += node.grad[r];
  });
}

#define INST(T)                        \
  template Var<T> sum(const Var<T>&);  \
  template Var<T> mean(const Var<T>&); \
  template Var<T> sum_last(const Var<T>&);
IHLAB_INSTANTIATE_OPS(INST)

}  // namespace ihlab::ops
