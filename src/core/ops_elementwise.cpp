// Elementwise ops. Binary ops broadcast the smaller operand along leading dims (see ops.h).
#include <algorithm>
#include <cmath>

#include "core/ops.h"
#include "core/ops_common.h"

namespace ihlab::ops {
namespace {

using detail::kGrain;

enum class Bin { Add, Sub, Mul, Div };

// body(i, ia, ib, len) over [lo, hi) cut where either operand wraps: element i + t pairs a[ia + t]
// with b[ib + t] for t < len (a[i % na], b[i % nb]), so the inner loops run without a division
// per element (two integer divisions per element were 10% of a small transformer's step).
template <typename F>
void broadcast_segments(int64_t lo, int64_t hi, int64_t na, int64_t nb, F body) {
  for (int64_t i = lo; i < hi;) {
    const int64_t ia = i % na, ib = i % nb, len = std::min({hi - i, na - ia, nb - ib});
    body(i, ia, ib, len);
    i += len;
  }
}

// out[i] = f(a[i % na], b[i % nb]) for i < n, in parallel.
template <typename T, typename F>
void binary_map(const T* pa, int64_t na, const T* pb, int64_t nb, T* po, int64_t n, F f) {
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    broadcast_segments(lo, hi, na, nb, [&](int64_t i, int64_t ia, int64_t ib, int64_t len) {
      T* o = po + i;
      const T *x = pa + ia, *y = pb + ib;
      for (int64_t t = 0; t < len; ++t) o[t] = f(x[t], y[t]);
    });
  });
}

template <typename T>
Var<T> binary(const char* op, Bin kind, const Var<T>& a, const Var<T>& b) {
  // out has the larger shape; `small` is repeated `reps` times along leading dims.
  // The output takes the operand with more elements, or on a tie the higher rank ([1, 4] + [4]).
  int64_t ea = a.value().numel(), eb = b.value().numel();
  bool a_big = ea > eb || (ea == eb && a.value().ndim() >= b.value().ndim());
  const Shape& big = a_big ? a.shape() : b.shape();
  detail::suffix_repeats(op, big, a_big ? b.shape() : a.shape());
  int64_t na = a.value().numel(), nb = b.value().numel(), n = numel_of(big);
  Tensor<T> out(big);
  const T *pa = a.value().data(), *pb = b.value().data();
  T* po = out.data();
  switch (kind) {
    case Bin::Add: binary_map(pa, na, pb, nb, po, n, [](T x, T y) { return x + y; }); break;
    case Bin::Sub: binary_map(pa, na, pb, nb, po, n, [](T x, T y) { return x - y; }); break;
    case Bin::Mul: binary_map(pa, na, pb, nb, po, n, [](T x, T y) { return x * y; }); break;
    case Bin::Div: binary_map(pa, na, pb, nb, po, n, [](T x, T y) { return x / y; }); break;
  }
  return make_result<T>(op, std::move(out), {a, b}, [kind, na, nb, n](Node<T>& node) {
    const T* g = node.grad.data();
    const T* pa = node.parents[0]->value.data();
    const T* pb = node.parents[1]->value.data();
    // Per-element local derivative times g, then summed into the (possibly smaller) operand.
    auto accumulate = [&](Tensor<T>* dst, auto local) {
      if (!dst) return;
      std::vector<T> tmp(n);
      parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
        broadcast_segments(lo, hi, na, nb, [&](int64_t i, int64_t ia, int64_t ib, int64_t len) {
          const T *x = pa + ia, *y = pb + ib, *gi = g + i;
          T* o = tmp.data() + i;
          for (int64_t t = 0; t < len; ++t) o[t] = gi[t] * local(x[t], y[t]);
        });
      });
      detail::reduce_into(*dst, tmp.data(), n);
    };
    Tensor<T>* ga = detail::grad_of(node, 0);
    Tensor<T>* gb = detail::grad_of(node, 1);
    switch (kind) {
      case Bin::Add:
        accumulate(ga, [](T, T) { return T(1); });
        accumulate(gb, [](T, T) { return T(1); });
        break;
      case Bin::Sub:
        accumulate(ga, [](T, T) { return T(1); });
        accumulate(gb, [](T, T) { return T(-1); });
        break;
      case Bin::Mul:
        accumulate(ga, [](T, T y) { return y; });
        accumulate(gb, [](T x, T) { return x; });
        break;
      case Bin::Div:
        accumulate(ga, [](T, T y) { return T(1) / y; });
        accumulate(gb, [](T x, T y) { return -x / (y * y); });
        break;
    }
  });
}

// y = f(x) elementwise; dfdx(x, y) gives the local derivative.
template <typename T, typename F, typename D>
Var<T> unary(const char* op, const Var<T>& a, F f, D dfdx) {
  Tensor<T> out(a.shape());
  const T* pa = a.value().data();
  T* po = out.data();
  int64_t n = out.numel();
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) po[i] = f(pa[i]);
  });
  return make_result<T>(op, std::move(out), {a}, [dfdx, n](Node<T>& node) {
    const T* g = node.grad.data();
    const T* x = node.parents[0]->value.data();
    const T* y = node.value.data();
    T* gx = node.parents[0]->grad_buffer().data();
    parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) gx[i] += g[i] * dfdx(x[i], y[i]);
    });
  });
}

}  // namespace

template <typename T>
Var<T> add(const Var<T>& a, const Var<T>& b) {
  return binary("add", Bin::Add, a, b);
}
template <typename T>
Var<T> sub(const Var<T>& a, const Var<T>& b) {
  return binary("sub", Bin::Sub, a, b);
}
template <typename T>
Var<T> mul(const Var<T>& a, const Var<T>& b) {
  return binary("mul", Bin::Mul, a, b);
}
template <typename T>
Var<T> div(const Var<T>& a, const Var<T>& b) {
  return binary("div", Bin::Div, a, b);
}

template <typename T>
Var<T> scale(const Var<T>& a, double s) {
  T c = T(s);
  return unary(
      "scale", a, [c](T x) { return c * x; }, [c](T, T) { return c; });
}
template <typename T>
Var<T> add_scalar(const Var<T>& a, double s) {
  T c = T(s);
  return unary(
      "add_scalar", a, [c](T x) { return x + c; }, [](T, T) { return T(1); });
}
template <typename T>
Var<T> square(const Var<T>& a) {
  return unary(
      "square", a, [](T x) { return x * x; }, [](T x, T) { return T(2) * x; });
}
template <typename T>
Var<T> exp(const Var<T>& a) {
  return unary(
      "exp", a, [](T x) { return std::exp(x); }, [](T, T y) { return y; });
}
template <typename T>
Var<T> log(const Var<T>& a) {
  return unary(
      "log", a, [](T x) { return std::log(x); }, [](T x, T) { return T(1) / x; });
}
template <typename T>
Var<T> relu(const Var<T>& a) {
  return unary(
      "relu", a, [](T x) { return x > 0 ? x : T(0); }, [](T x, T) { return x > 0 ? T(1) : T(0); });
}
template <typename T>
Var<T> gelu(const Var<T>& a) {
  // gelu(x) = x * Phi(x); d/dx = Phi(x) + x * phi(x).
  const T inv_sqrt2 = T(0.70710678118654752440), inv_sqrt2pi = T(0.39894228040143267794);
  return unary(
      "gelu", a, [=](T x) { return x * T(0.5) * (T(1) + std::erf(x * inv_sqrt2)); },
      [=](T x, T) { return T(0.5) * (T(1) + std::erf(x * inv_sqrt2)) + x * inv_sqrt2pi * std::exp(T(-0.5) * x * x); });
}

#define INST(T)                                      \
  template Var<T> add(const Var<T>&, const Var<T>&); \
  template Var<T> sub(const Var<T>&, const Var<T>&); \
  template Var<T> mul(const Var<T>&, const Var<T>&); \
  template Var<T> div(const Var<T>&, const Var<T>&); \
  template Var<T> scale(const Var<T>&, double);      \
  template Var<T> add_scalar(const Var<T>&, double); \
  template Var<T> square(const Var<T>&);             \
  template Var<T> exp(const Var<T>&);                \
  template Var<T> log(const Var<T>&);                \
  template Var<T> relu(const Var<T>&);               \
  template Var<T> gelu(const Var<T>&);
IHLAB_INSTANTIATE_OPS(INST)

}  // namespace ihlab::ops
