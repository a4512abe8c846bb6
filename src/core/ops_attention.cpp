// Attention building blocks: softmax with additive bias and mask, relative-position bias.
#include <cmath>
#include <limits>

#include "core/ops.h"
#include "core/ops_common.h"

namespace ihlab::ops {

template <typename T>
Var<T> masked_softmax(const Var<T>& logits, const Var<T>& bias, const std::vector<uint8_t>& mask,
                      const Shape& mask_shape) {
  const Shape& s = logits.shape();
  IHLAB_CHECK(!s.empty(), "masked_softmax: logits must have rank >= 1");
  int64_t n = s.back(), total = logits.value().numel(), rows = total / std::max<int64_t>(n, 1);
  int64_t nb = 0, nm = 0;
  if (bias.defined()) {
    detail::suffix_repeats("masked_softmax(bias)", s, bias.shape());
    nb = bias.value().numel();
  }
  if (!mask.empty()) {
    detail::suffix_repeats("masked_softmax(mask)", s, mask_shape);
    IHLAB_CHECK(int64_t(mask.size()) == numel_of(mask_shape), "masked_softmax: mask has {} entries for shape {}",
                mask.size(), shape_str(mask_shape));
    nm = int64_t(mask.size());
  }
  Tensor<T> out(s);
  const T* z = logits.value().data();
  const T* b = bias.defined() ? bias.value().data() : nullptr;
  T* y = out.data();
  parallel_for(rows, std::max<int64_t>(1, detail::kGrain / std::max<int64_t>(n, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      int64_t base = r * n;
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        int64_t i = base + j;
        if (nm && !mask[i % nm]) continue;
        T v = z[i] + (b ? b[i % nb] : T(0));
        y[i] = v;
        mx = std::max(mx, v);
      }
      if (mx == -std::numeric_limits<T>::infinity()) {  // no valid key: the row outputs zero
        for (int64_t j = 0; j < n; ++j) y[base + j] = 0;
        continue;
      }
      T total_exp = 0;
      for (int64_t j = 0; j < n; ++j) {
        int64_t i = base + j;
        if (nm && !mask[i % nm]) {
          y[i] = 0;
          continue;
        }
        y[i] = std::exp(y[i] - mx);
        total_exp += y[i];
      }
      T inv = T(1) / total_exp;
      for (int64_t j = 0; j < n; ++j) y[base + j] *= inv;
    }
  });
  return make_result<T>("masked_softmax", std::move(out), {logits, bias}, [n, rows, total](Node<T>& node) {
    // dz_j = y_j (g_j - sum_k y_k g_k); masked entries have y = 0 and so get no gradient.
    const T* y = node.value.data();
    const T* g = node.grad.data();
    std::vector<T> dz(total);
    parallel_for(rows, std::max<int64_t>(1, detail::kGrain / std::max<int64_t>(n, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const T *yr = y + r * n, *gr = g + r * n;
        T dot = 0;
        for (int64_t j = 0; j < n; ++j) dot += yr[j] * gr[j];
        for (int64_t j = 0; j < n; ++j) dz[r * n + j] = yr[j] * (gr[j] - dot);
      }
    });
    if (Tensor<T>* gl = detail::grad_of(node, 0)) detail::reduce_into(*gl, dz.data(), total);
    if (Tensor<T>* gb = detail::grad_of(node, 1)) detail::reduce_into(*gb, dz.data(), total);
  });
}

template <typename T>
Var<T> relative_bias(const Var<T>& w, int64_t length) {
  IHLAB_CHECK(w.value().ndim() == 2, "relative_bias: w must be [heads, window], got {}", shape_str(w.shape()));
  int64_t H = w.dim(0), K = w.dim(1), L = length;
  Tensor<T> out(Shape{H, L, L});  // out[h, i, j] = w[h, i - j] inside the window
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < L; ++i)
      for (int64_t k = 0; k < K && k <= i; ++k) out[(h * L + i) * L + (i - k)] = w.value()[h * K + k];
  return make_result<T>("relative_bias", std::move(out), {w}, [H, K, L](Node<T>& node) {
    T* gw = node.parents[0]->grad_buffer().data();
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i)
        for (int64_t k = 0; k < K && k <= i; ++k) gw[h * K + k] += node.grad[(h * L + i) * L + (i - k)];
  });
}

std::vector<uint8_t> band_mask(int64_t length, int64_t lo, int64_t hi) {
  std::vector<uint8_t> m(length * length, 0);
  for (int64_t i = 0; i < length; ++i)
    for (int64_t j = 0; j < length; ++j) m[i * length + j] = (i - j >= lo && i - j <= hi) ? 1 : 0;
  return m;
}

#define INST(T)                                                                                            \
  template Var<T> masked_softmax(const Var<T>&, const Var<T>&, const std::vector<uint8_t>&, const Shape&); \
  template Var<T> relative_bias(const Var<T>&, int64_t);
IHLAB_INSTANTIATE_OPS(INST)

}  // namespace ihlab::ops
