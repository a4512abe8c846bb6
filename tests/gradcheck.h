#pragma once
// Test harness: analytic gradients (ihlab::backward) against central finite differences in float64,
// plus helpers for random inputs, non-constant scalar aggregates and float32/float64 agreement.
//
// The aggregate node (weighted_sum) is built directly on make_result rather than on ops::mul and
// ops::sum, so a failure always points at the op under test, never at the harness.
#include "core/autograd.h"
#include "core/parallel.h"
#include "core/rng.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ihlab::gc {

using VarD = Var<double>;
using TensorD = Tensor<double>;
using ScalarFn = std::function<VarD(const std::vector<VarD>&)>;

// ---------------------------------------------------------------------------------------------
// Random inputs (all randomness comes from RandomStream, StreamKind::Test).

inline RandomStream test_stream(uint64_t seed) { return RandomStream(seed, StreamKind::Test); }

inline TensorD randn(RandomStream& rs, const Shape& s, double sd = 1.0) {
  TensorD t(s);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = sd * rs.normal();
  return t;
}

inline TensorD uniform(RandomStream& rs, const Shape& s, double lo, double hi) {
  TensorD t(s);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = lo + (hi - lo) * rs.uniform();
  return t;
}

// Pushes every element with |x| < margin out to +-margin (keeps FD probes off kinks at 0).
inline TensorD away_from_zero(TensorD t, double margin) {
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (std::abs(t[i]) < margin) t[i] = t[i] < 0 ? -margin : margin;
  }
  return t;
}

// Rounds through float32 so that float and double runs see bit-identical inputs.
inline TensorD round_to_float(const TensorD& t) { return t.cast<float>().template cast<double>(); }

// "[i, j, k]" for flat index `flat` of shape `s`.
inline std::string index_str(const Shape& s, int64_t flat) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = s[d] ? flat % s[d] : 0;
    flat = s[d] ? flat / s[d] : 0;
  }
  return fmt::format("[{}]", fmt::join(idx, ", "));
}

// ---------------------------------------------------------------------------------------------
// sum(x * r) for a constant r of x's shape: a non-constant scalar aggregate of a tensor output.
template <typename T>
Var<T> weighted_sum(const Var<T>& x, const Tensor<T>& r) {
  IHLAB_CHECK(x.shape() == r.shape(), "weighted_sum: output shape {} but weights {}", shape_str(x.shape()),
              shape_str(r.shape()));
  const T* xv = x.value().data();
  double acc = 0;
  for (int64_t i = 0; i < r.numel(); ++i) acc += double(xv[i]) * double(r[i]);
  return make_result<T>("test_weighted_sum", Tensor<T>::scalar(T(acc)), {x}, [r](Node<T>& n) {
    auto& p = n.parents[0];
    if (!p || !p->requires_grad) return;
    T g = n.grad[0];
    Tensor<T>& gb = p->grad_buffer();
    for (int64_t i = 0; i < r.numel(); ++i) gb[i] += g * r[i];
  });
}

// Wraps a tensor-valued fn into sum(fn(x) * R), R ~ N(0, 1) drawn once (on the first call, from
// the output's shape) and then fixed for every later call.
inline ScalarFn aggregate(std::function<VarD(const std::vector<VarD>&)> f, uint64_t seed = 7) {
  auto R = std::make_shared<TensorD>();
  return [f = std::move(f), R, seed](const std::vector<VarD>& in) {
    VarD y = f(in);
    if (!R->defined()) {
      RandomStream rs(seed, StreamKind::Test, 1000);
      *R = randn(rs, y.shape());
    }
    return weighted_sum(y, *R);
  };
}

// ---------------------------------------------------------------------------------------------
struct Options {
  double h = 1e-6;
  double rtol = 1e-5;
  double atol = 1e-7;
  // Which inputs get requires_grad and are checked; empty = all. The rest are constants.
  std::vector<bool> wrt;
  // Elements left out of the finite-difference comparison (e.g. points on a kink).
  std::function<bool(size_t input, int64_t elem)> skip;
};

// Checks d fn / d inputs from backward against (f(x + h e_j) - f(x - h e_j)) / (2h), elementwise
// with |analytic - numeric| <= atol + rtol * |numeric|. On failure, names the worst element.
inline ::testing::AssertionResult gradcheck(const ScalarFn& fn, const std::vector<TensorD>& inputs,
                                            const Options& opt = {}) {
  auto wants = [&](size_t i) { return opt.wrt.empty() || (i < opt.wrt.size() && opt.wrt[i]); };

  // Analytic.
  std::vector<VarD> vars;
  for (size_t i = 0; i < inputs.size(); ++i) vars.push_back(VarD::leaf(inputs[i].clone(), wants(i)));
  VarD y = fn(vars);
  if (!y.defined() || y.value().numel() != 1)
    return ::testing::AssertionFailure() << "gradcheck: fn must return a scalar";
  const double y0 = y.item();
  if (!std::isfinite(y0)) return ::testing::AssertionFailure() << "gradcheck: f(x) = " << y0;
  backward(y);
  std::vector<TensorD> analytic(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!wants(i)) continue;
    if (!vars[i].has_grad()) {
      analytic[i] = TensorD(inputs[i].shape(), 0.0);  // no gradient reached it: all zeros
      continue;
    }
    analytic[i] = vars[i].grad().clone();
    if (analytic[i].shape() != inputs[i].shape())
      return ::testing::AssertionFailure() << fmt::format("gradcheck: grad of input {} has shape {}, input has {}", i,
                                                          shape_str(analytic[i].shape()), shape_str(inputs[i].shape()));
  }

  // Numeric: fresh constant leaves per evaluation (no closures are built). Ops give bit-identical
  // results for any thread count, so the many tiny evaluations run on one thread: a fresh OpenMP
  // region per tiny op is pure overhead, and very slow on a loaded machine.
  struct ThreadGuard {
    int saved = num_threads();
    ThreadGuard() { set_threads(1); }
    ~ThreadGuard() { set_threads(saved); }
  } one_thread;
  auto eval = [&](size_t i, int64_t j, double xj) {
    std::vector<VarD> vs;
    for (size_t k = 0; k < inputs.size(); ++k) {
      TensorD t = inputs[k].clone();
      if (k == i) t[j] = xj;
      vs.push_back(VarD::leaf(t, false));
    }
    return fn(vs).item();
  };

  int64_t checked = 0, bad = 0;
  double worst_ratio = -1, max_abs_err = 0;
  std::string worst;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!wants(i)) continue;
    for (int64_t j = 0; j < inputs[i].numel(); ++j) {
      const double a = analytic[i][j];
      if (!std::isfinite(a))
        return ::testing::AssertionFailure() << fmt::format("gradcheck: analytic grad of input {} at {} is {}", i,
                                                            index_str(inputs[i].shape(), j), a);
      if (opt.skip && opt.skip(i, j)) continue;
      const double x = inputs[i][j];
      const double xp = x + opt.h, xm = x - opt.h;
      const double n = (eval(i, j, xp) - eval(i, j, xm)) / (xp - xm);
      const double err = std::abs(a - n);
      const double bound = opt.atol + opt.rtol * std::abs(n);
      ++checked;
      max_abs_err = std::max(max_abs_err, err);
      if (!(err <= bound)) ++bad;
      const double ratio = std::isfinite(err) ? err / bound : HUGE_VAL;
      if (ratio > worst_ratio) {
        worst_ratio = ratio;
        worst = fmt::format("input {} at {}: analytic {:.12g}, numeric {:.12g}, |diff| {:.3g}, bound {:.3g}", i,
                            index_str(inputs[i].shape(), j), a, n, err, bound);
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess() << checked << " elements, max |diff| " << max_abs_err;
  return ::testing::AssertionFailure() << fmt::format(
             "gradcheck: {} of {} elements out of tolerance (atol {}, rtol {}), max |diff| {:.3g}; "
             "worst: {}",
             bad, checked, opt.atol, opt.rtol, max_abs_err, worst);
}

// ---------------------------------------------------------------------------------------------
// float32 vs float64: `f` is a generic callable taking std::vector<Var<T>> for T = float and
// double. Inputs are rounded through float first so both runs see the same numbers. Outputs must
// agree to `rtol` relative to the largest magnitude of the float64 output (max-norm relative);
// gradients of sum(out * R) to `grad_rtol` likewise.
template <typename F>
::testing::AssertionResult f32_matches_f64(F&& f, std::vector<TensorD> inputs, double rtol = 1e-5,
                                           double grad_rtol = 1e-4, std::vector<bool> wrt = {}) {
  for (auto& t : inputs) t = round_to_float(t);
  auto wants = [&](size_t i) { return wrt.empty() || (i < wrt.size() && wrt[i]); };
  std::vector<Var<double>> vd;
  std::vector<Var<float>> vf;
  for (size_t i = 0; i < inputs.size(); ++i) {
    vd.push_back(Var<double>::leaf(inputs[i].clone(), wants(i)));
    vf.push_back(Var<float>::leaf(inputs[i].template cast<float>(), wants(i)));
  }
  Var<double> yd = f(vd);
  Var<float> yf = f(vf);
  if (yd.shape() != yf.shape())
    return ::testing::AssertionFailure() << fmt::format("f32 output shape {} vs f64 {}", shape_str(yf.shape()),
                                                        shape_str(yd.shape()));
  auto compare = [&](const char* what, const TensorD& d, const Tensor<float>& fl,
                     double tol) -> ::testing::AssertionResult {
    double scale = 0, worst = 0;
    int64_t wi = 0;
    for (int64_t j = 0; j < d.numel(); ++j) scale = std::max(scale, std::abs(d[j]));
    for (int64_t j = 0; j < d.numel(); ++j) {
      double e = std::abs(double(fl[j]) - d[j]);
      if (!std::isfinite(e)) e = HUGE_VAL;
      if (e > worst) {
        worst = e;
        wi = j;
      }
    }
    if (worst <= tol * std::max(scale, 1e-30)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << fmt::format(
               "{}: f32 vs f64 max |diff| {:.3g} at {} (f32 {:.9g}, f64 {:.12g}) > {} * max|f64| {:.3g}", what, worst,
               index_str(d.shape(), wi), double(fl[wi]), d[wi], tol, scale);
  };
  if (auto r = compare("output", yd.value(), yf.value(), rtol); !r) return r;

  // Gradients through the same aggregate.
  if (!yd.requires_grad()) return ::testing::AssertionSuccess();
  RandomStream rs(11, StreamKind::Test, 2000);
  TensorD R = randn(rs, yd.shape());
  Var<double> sd = yd.value().numel() == 1 ? yd : weighted_sum(yd, R);
  Var<float> sf = yd.value().numel() == 1 ? yf : weighted_sum(yf, R.template cast<float>());
  backward(sd);
  backward(sf);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!wants(i)) continue;
    TensorD gd = vd[i].has_grad() ? vd[i].grad() : TensorD(inputs[i].shape(), 0.0);
    Tensor<float> gf = vf[i].has_grad() ? vf[i].grad() : Tensor<float>(inputs[i].shape(), 0.f);
    std::string what = fmt::format("grad of input {}", i);
    if (auto r = compare(what.c_str(), gd, gf, grad_rtol); !r) return r;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace ihlab::gc
