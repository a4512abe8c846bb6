// Dormand–Prince 5(4) with FSAL and a standard (elementary, non-PI) step-size controller.
#include "train/flow.h"

#include <algorithm>
#include <cmath>

namespace ihlab {

namespace {

// Butcher tableau (Dormand & Prince 1980). Node c_i is where stage i evaluates f: t + c_i * h.
constexpr double c2 = 1.0 / 5, c3 = 3.0 / 10, c4 = 4.0 / 5, c5 = 8.0 / 9;
constexpr double a21 = 1.0 / 5;
constexpr double a31 = 3.0 / 40, a32 = 9.0 / 40;
constexpr double a41 = 44.0 / 45, a42 = -56.0 / 15, a43 = 32.0 / 9;
constexpr double a51 = 19372.0 / 6561, a52 = -25360.0 / 2187, a53 = 64448.0 / 6561, a54 = -212.0 / 729;
constexpr double a61 = 9017.0 / 3168, a62 = -355.0 / 33, a63 = 46732.0 / 5247, a64 = 49.0 / 176, a65 = -5103.0 / 18656;
// 5th-order weights (also row 7 of the tableau, which is why k7 = f(t + h, y_new): FSAL).
constexpr double b1 = 35.0 / 384, b3 = 500.0 / 1113, b4 = 125.0 / 192, b5 = -2187.0 / 6784, b6 = 11.0 / 84;
// e = b(5th) − b*(4th); b* = (5179/57600, 0, 7571/16695, 393/640, −92097/339200, 187/2100, 1/40).
constexpr double e1 = 71.0 / 57600, e3 = -71.0 / 16695, e4 = 71.0 / 1920, e5 = -17253.0 / 339200, e6 = 22.0 / 525,
                 e7 = -1.0 / 40;

constexpr double kSafety = 0.9, kFacMin = 0.2, kFacMax = 5.0;

bool all_finite(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

}  // namespace

DormandPrince::DormandPrince(Derivative f, FlowConfig cfg) : f_(std::move(f)), cfg_(cfg) {
  IHLAB_CHECK(bool(f_), "flow: no derivative function given");
  IHLAB_CHECK(cfg_.rtol >= 0, "flow: rtol must be >= 0, got {}", cfg_.rtol);
  IHLAB_CHECK(cfg_.atol > 0, "flow: atol must be > 0, got {}", cfg_.atol);
  IHLAB_CHECK(cfg_.h_min > 0 && cfg_.h_min <= cfg_.h_max, "flow: need 0 < h_min <= h_max, got h_min {} h_max {}",
              cfg_.h_min, cfg_.h_max);
  IHLAB_CHECK(cfg_.h_init >= cfg_.h_min, "flow: h_init {} is below h_min {}", cfg_.h_init, cfg_.h_min);
}

double DormandPrince::step(FlowState& s, double t_end) {
  IHLAB_CHECK(t_end > s.t, "flow: t_end {} is not after t {}", t_end, s.t);
  const size_t n = s.y.size();
  IHLAB_CHECK(all_finite(s.y), "flow: state y is non-finite at t = {}", s.t);
  if (s.k_last.size() != n) {
    IHLAB_CHECK(s.k_last.empty(), "flow: k_last has {} entries but y has {}", s.k_last.size(), n);
    s.k_last.resize(n);
    f_(s.t, s.y, s.k_last);
  }
  IHLAB_CHECK(all_finite(s.k_last), "flow: derivative is non-finite at t = {}", s.t);
  for (auto* v : {&k2_, &k3_, &k4_, &k5_, &k6_, &k7_, &ytmp_, &ynew_}) v->resize(n);

  const std::vector<double>& y = s.y;                                 // [n]
  const std::vector<double>& k1 = s.k_last;                           // [n] f(t, y), from the previous step (FSAL)
  double h_prop = std::min(s.h > 0 ? s.h : cfg_.h_init, cfg_.h_max);  // unclipped proposal
  bool rejected_here = false;
  for (;;) {
    IHLAB_CHECK(h_prop >= cfg_.h_min,
                "flow: step size {} fell below h_min {} at t = {} (stiff or non-finite derivative?)", h_prop,
                cfg_.h_min, s.t);
    // Cut the step to land exactly on t_end; t_new is then t_end itself, not s.t + h rounded.
    const double remaining = t_end - s.t;
    const bool clipped = h_prop >= remaining;
    const double h = clipped ? remaining : h_prop;
    const double t_new = clipped ? t_end : s.t + h;
    IHLAB_CHECK(t_new > s.t, "flow: step size {} is too small to advance t = {}", h, s.t);

    for (size_t i = 0; i < n; ++i) ytmp_[i] = y[i] + h * (a21 * k1[i]);
    f_(s.t + c2 * h, ytmp_, k2_);
    for (size_t i = 0; i < n; ++i) ytmp_[i] = y[i] + h * (a31 * k1[i] + a32 * k2_[i]);
    f_(s.t + c3 * h, ytmp_, k3_);
    for (size_t i = 0; i < n; ++i) ytmp_[i] = y[i] + h * (a41 * k1[i] + a42 * k2_[i] + a43 * k3_[i]);
    f_(s.t + c4 * h, ytmp_, k4_);
    for (size_t i = 0; i < n; ++i) ytmp_[i] = y[i] + h * (a51 * k1[i] + a52 * k2_[i] + a53 * k3_[i] + a54 * k4_[i]);
    f_(s.t + c5 * h, ytmp_, k5_);
    for (size_t i = 0; i < n; ++i)
      ytmp_[i] = y[i] + h * (a61 * k1[i] + a62 * k2_[i] + a63 * k3_[i] + a64 * k4_[i] + a65 * k5_[i]);
    f_(t_new, ytmp_, k6_);
    for (size_t i = 0; i < n; ++i)
      ynew_[i] = y[i] + h * (b1 * k1[i] + b3 * k3_[i] + b4 * k4_[i] + b5 * k5_[i] + b6 * k6_[i]);
    f_(t_new, ynew_, k7_);

    // RMS of the scaled local error estimate, summed in index order.
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      const double e = h * (e1 * k1[i] + e3 * k3_[i] + e4 * k4_[i] + e5 * k5_[i] + e6 * k6_[i] + e7 * k7_[i]);
      const double scale = cfg_.atol + cfg_.rtol * std::max(std::abs(y[i]), std::abs(ynew_[i]));
      sum += (e / scale) * (e / scale);
    }
    const double err = n == 0 ? 0.0 : std::sqrt(sum / double(n));

    if (err <= 1) {
      double factor = err == 0 ? kFacMax : std::clamp(kSafety * std::pow(err, -0.2), kFacMin, kFacMax);
      if (rejected_here) factor = std::min(factor, 1.0);  // just failed bigger: don't grow again yet
      double next = std::min(h * factor, cfg_.h_max);
      // A cut step says little about the scale of the dynamics; keep the larger proposal.
      if (clipped) next = std::max(next, h_prop);
      s.t = t_new;
      s.y.swap(ynew_);
      s.k_last.swap(k7_);  // f(t_new, y_new): the next step's first stage
      s.h = next;
      ++s.accepted;
      return h;
    }
    ++s.rejected;
    rejected_here = true;
    // NaN/inf error (overflow in a too-long step) gets the strongest cut.
    h_prop = h * (std::isfinite(err) ? std::max(kFacMin, kSafety * std::pow(err, -0.2)) : kFacMin);
  }
}

void DormandPrince::integrate(FlowState& s, double t_end, const std::function<void(const FlowState&)>& on_step) {
  IHLAB_CHECK(t_end >= s.t, "flow: cannot integrate backwards from t {} to t_end {}", s.t, t_end);
  while (s.t < t_end) {
    step(s, t_end);
    if (on_step) on_step(s);
  }
}

// ---- parameter packing ----

template <typename T>
std::vector<double> pack_values(const std::vector<Param<T>*>& params) {
  std::vector<double> y;
  for (Param<T>* p : params)
    for (T x : p->var.value().span()) y.push_back(double(x));
  return y;
}

template <typename T>
void unpack_values(const std::vector<double>& y, const std::vector<Param<T>*>& params) {
  size_t total = 0;
  for (Param<T>* p : params) total += size_t(p->var.value().numel());
  IHLAB_CHECK(y.size() == total, "flow: unpack of {} values into parameters holding {}", y.size(), total);
  size_t at = 0;
  for (Param<T>* p : params)
    for (T& x : p->var.value().span()) x = T(y[at++]);
}

template <typename T>
std::vector<double> pack_grads(const std::vector<Param<T>*>& params) {
  std::vector<double> g;
  for (Param<T>* p : params) {
    if (!p->var.has_grad()) {
      g.insert(g.end(), size_t(p->var.value().numel()), 0.0);
      continue;
    }
    for (T x : p->var.grad().span()) g.push_back(double(x));
  }
  return g;
}

template std::vector<double> pack_values(const std::vector<Param<float>*>&);
template std::vector<double> pack_values(const std::vector<Param<double>*>&);
template void unpack_values(const std::vector<double>&, const std::vector<Param<float>*>&);
template void unpack_values(const std::vector<double>&, const std::vector<Param<double>*>&);
template std::vector<double> pack_grads(const std::vector<Param<float>*>&);
template std::vector<double> pack_grads(const std::vector<Param<double>*>&);

}  // namespace ihlab
