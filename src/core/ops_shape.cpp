// Shape ops: reshape shares storage; transpose and concat copy (storage stays contiguous).
#include "core/ops.h"
#include "core/ops_common.h"

namespace ihlab::ops {

template <typename T>
Var<T> reshape(const Var<T>& a, Shape s) {
  Tensor<T> out = a.value().reshaped(std::move(s));
  return make_result<T>("reshape", std::move(out), {a}, [](Node<T>& n) {
    Tensor<T>& g = n.parents[0]->grad_buffer();
    const T* src = n.grad.data();
    T* dst = g.data();
    for (int64_t i = 0, e = g.numel(); i < e; ++i) dst[i] += src[i];
  });
}

template <typename T>
Var<T> transpose_last2(const Var<T>& a) {
  IHLAB_CHECK(a.value().ndim() >= 2, "transpose_last2: need rank >= 2, got {}", shape_str(a.shape()));
  Shape s = a.shape();
  int64_t m = s[s.size() - 2], k = s.back(), batch = a.value().numel() / std::max<int64_t>(m * k, 1);
  std::swap(s[s.size() - 2], s.back());
  Tensor<T> out(s);
  const T* src = a.value().data();
  T* dst = out.data();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < k; ++j) dst[b * m * k + j * m + i] = src[b * m * k + i * k + j];
  return make_result<T>("transpose_last2", std::move(out), {a}, [m, k, batch](Node<T>& n) {
    const T* g = n.grad.data();
    T* ga = n.parents[0]->grad_buffer().data();
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < k; ++j) ga[b * m * k + i * k + j] += g[b * m * k + j * m + i];
  });
}

template <typename T>
Var<T> concat_last(const std::vector<Var<T>>& parts) {
  IHLAB_CHECK(!parts.empty(), "concat_last: no inputs");
  Shape lead(parts[0].shape().begin(), parts[0].shape().end() - 1);
  std::vector<int64_t> widths;
  int64_t total = 0;
  for (auto& p : parts) {
    Shape l(p.shape().begin(), p.shape().end() - 1);
    IHLAB_CHECK(!p.shape().empty() && l == lead, "concat_last: leading dims differ: {} vs {}",
                shape_str(parts[0].shape()), shape_str(p.shape()));
    widths.push_back(p.shape().back());
    total += widths.back();
  }
  int64_t rows = numel_of(lead);
  Shape s = lead;
  s.push_back(total);
  Tensor<T> out(s);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t off = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      std::copy_n(parts[i].value().data() + r * widths[i], widths[i], out.data() + r * total + off);
      off += widths[i];
    }
  }
  return make_result<T>("concat_last", std::move(out), parts, [widths, rows, total](Node<T>& n) {
    int64_t off = 0;
    for (size_t i = 0; i < widths.size(); ++i) {
      if (Tensor<T>* g = detail::grad_of(n, i)) {
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < widths[i]; ++j) (*g)[r * widths[i] + j] += n.grad[r * total + off + j];
      }
      off += widths[i];
    }
  });
}

#define INST(T)                                   \
  template Var<T> reshape(const Var<T>&, Shape);  \
  template Var<T> transpose_last2(const Var<T>&); \
  template Var<T> concat_last(const std::vector<Var<T>>&);
IHLAB_INSTANTIATE_OPS(INST)

}  // namespace ihlab::ops
