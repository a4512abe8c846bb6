// Normalizations along the last axis.
#include <cmath>

#include "core/ops.h"
#include "core/ops_common.h"

namespace ihlab::ops {

template <typename T>
Var<T> l2_normalize(const Var<T>& x, double eps) {
  int64_t d = x.shape().back(), rows = x.value().numel() / std::max<int64_t>(d, 1);
  Tensor<T> out(x.shape());
  std::vector<T> norms(rows);
  const T* px = x.value().data();
  parallel_for(rows, std::max<int64_t>(1, detail::kGrain / std::max<int64_t>(d, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      T ss = 0;
      for (int64_t j = 0; j < d; ++j) ss += px[r * d + j] * px[r * d + j];
      norms[r] = std::sqrt(ss);
      T inv = T(1) / (norms[r] + T(eps));
      for (int64_t j = 0; j < d; ++j) out[r * d + j] = px[r * d + j] * inv;
    }
  });
  return make_result<T>("l2_normalize", std::move(out), {x}, [d, rows, eps, norms = std::move(norms)](Node<T>& node) {
    // y = x / (n + eps), n = |x|:  dx = g / (n + eps) - x (x.g) / (n (n + eps)^2); at n = 0 the
    // second term vanishes (x = 0), which keeps zero rows finite.
    const T* px = node.parents[0]->value.data();
    const T* g = node.grad.data();
    T* gx = node.parents[0]->grad_buffer().data();
    for (int64_t r = 0; r < rows; ++r) {
      T n = norms[r], den = n + T(eps), xg = 0;
      for (int64_t j = 0; j < d; ++j) xg += px[r * d + j] * g[r * d + j];
      T c = n > 0 ? xg / (n * den * den) : T(0);
      for (int64_t j = 0; j < d; ++j) gx[r * d + j] += g[r * d + j] / den - px[r * d + j] * c;
    }
  });
}

template <typename T>
Var<T> layer_norm(const Var<T>& x, const Var<T>& gamma, const Var<T>& beta, double eps) {
  int64_t d = x.shape().back(), rows = x.value().numel() / std::max<int64_t>(d, 1);
  if (gamma.defined()) check_same_shape("layer_norm(gamma)", gamma.shape(), Shape{d});
  if (beta.defined()) check_same_shape("layer_norm(beta)", beta.shape(), Shape{d});
  Tensor<T> out(x.shape());
  std::vector<T> xhat(x.value().numel()), rstd(rows);
  const T* px = x.value().data();
  const T* pg = gamma.defined() ? gamma.value().data() : nullptr;
  const T* pb = beta.defined() ? beta.value().data() : nullptr;
  for (int64_t r = 0; r < rows; ++r) {
    T mu = 0, var = 0;
    for (int64_t j = 0; j < d; ++j) mu += px[r * d + j];
    mu /= T(d);
    for (int64_t j = 0; j < d; ++j) var += (px[r * d + j] - mu) * (px[r * d + j] - mu);
    var /= T(d);  // biased variance, as torch.nn.LayerNorm
    rstd[r] = T(1) / std::sqrt(var + T(eps));
    for (int64_t j = 0; j < d; ++j) {
      T h = (px[r * d + j] - mu) * rstd[r];
      xhat[r * d + j] = h;
      out[r * d + j] = h * (pg ? pg[j] : T(1)) + (pb ? pb[j] : T(0));
    }
  }
  return make_result<T>("layer_norm", std::move(out), {x, gamma, beta},
                        [d, rows, xhat = std::move(xhat), rstd = std::move(rstd)](Node<T>& node) {
                          const T* g = node.grad.data();
                          const T* pg = node.parents[1] ? node.parents[1]->value.data() : nullptr;
                          Tensor<T>* gx = detail::grad_of(node, 0);
                          Tensor<T>* gg = detail::grad_of(node, 1);
                          Tensor<T>* gb = detail::grad_of(node, 2);
                          for (int64_t r = 0; r < rows; ++r) {
                            // With dh = g * gamma: dx = rstd * (dh - mean(dh) - xhat * mean(dh * xhat)).
                            T m1 = 0, m2 = 0;
                            for (int64_t j = 0; j < d; ++j) {
                              T dh = g[r * d + j] * (pg ? pg[j] : T(1));
                              m1 += dh;
                              m2 += dh * xhat[r * d + j];
                            }
                            m1 /= T(d);
                            m2 /= T(d);
                            for (int64_t j = 0; j < d; ++j) {
                              T dh = g[r * d + j] * (pg ? pg[j] : T(1));
                              if (gx) (*gx)[r * d + j] += rstd[r] * (dh - m1 - xhat[r * d + j] * m2);
                              if (gg) (*gg)[j] += g[r * d + j] * xhat[r * d + j];
                              if (gb) (*gb)[j] += g[r * d + j];
                            }
                          }
                        });
}

#define INST(T)                                        \
  template Var<T> l2_normalize(const Var<T>&, double); \
  template Var<T> layer_norm(const Var<T>&, const Var<T>&, const Var<T>&, double);
IHLAB_INSTANTIATE_OPS(INST)

}  // namespace ihlab::ops
