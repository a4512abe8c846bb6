// Loss-curve, KL and phase-transition helpers of induction_metrics.h.
#include <cmath>

#include "analysis/induction_metrics.h"
#include "core/error.h"

namespace ihlab {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

template <typename T>
std::vector<double> mean_per_position_impl(std::span<const T> losses, int64_t B, int64_t L) {
  IHLAB_CHECK(B >= 1 && L >= 1 && int64_t(losses.size()) == B * L,
              "mean_per_position: {} values given for [B, L] = [{}, {}]", losses.size(), B, L);
  std::vector<double> sum(size_t(L), 0.0);
  std::vector<int64_t> n(size_t(L), 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < L; ++i) {
      const double v = double(losses[b * L + i]);
      if (std::isfinite(v)) sum[i] += v, ++n[i];
    }
  for (int64_t i = 0; i < L; ++i) sum[i] = n[i] > 0 ? sum[i] / double(n[i]) : kNaN;
  return sum;
}

// p log(p / q) with 0 log(0 / q) = 0 and p log(p / 0) = +inf.
double kl_term(double p, double q) {
  if (p == 0) return 0;
  if (q == 0) return kInf;
  return p * std::log(p / q);
}

template <typename P, typename Q>
KlResult kl_impl(std::span<const P> p, std::span<const Q> q, int64_t V) {
  IHLAB_CHECK(V >= 1 && !p.empty() && p.size() == q.size() && int64_t(p.size()) % V == 0,
              "kl_divergences: model ({}) and reference ({}) must both hold N*V values, V = {}", p.size(), q.size(), V);
  const int64_t N = int64_t(p.size()) / V;
  KlResult r;
  r.per_row_model_ref.assign(size_t(N), 0.0);
  r.per_row_ref_model.assign(size_t(N), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    double a = 0, b = 0;
    for (int64_t t = 0; t < V; ++t) {
      const double pv = double(p[n * V + t]), qv = double(q[n * V + t]);
      IHLAB_CHECK(pv >= 0 && qv >= 0, "kl_divergences: row {} token {}: probabilities must be >= 0 (model {}, ref {})",
                  n, t, pv, qv);
      a += kl_term(pv, qv);
      b += kl_term(qv, pv);
    }
    r.per_row_model_ref[n] = a;
    r.per_row_ref_model[n] = b;
    r.model_ref += a;
    r.ref_model += b;
  }
  r.model_ref /= double(N);
  r.ref_model /= double(N);
  return r;
}

void check_steps(const char* fn, std::span<const double> steps, size_t n) {
  IHLAB_CHECK(steps.size() == n, "{}: {} steps for {} values", fn, steps.size(), n);
  for (size_t i = 0; i < steps.size(); ++i) {
    IHLAB_CHECK(std::isfinite(steps[i]), "{}: step {} is not finite", fn, i);
    IHLAB_CHECK(i == 0 || steps[i] > steps[i - 1], "{}: steps must be strictly increasing (step[{}] = {} after {})", fn,
                i, steps[i], steps[i - 1]);
  }
}

// First i starting a run of `persistence` consecutive points that satisfy ok(j).
template <typename F>
SeriesEvent first_persistent_run(const char* fn, std::span<const double> steps, size_t n, int persistence, F&& ok) {
  IHLAB_CHECK(persistence >= 1, "{}: persistence must be >= 1, got {}", fn, persistence);
  SeriesEvent e;
  int64_t run = 0;
  for (size_t j = 0; j < n; ++j) {
    run = ok(j) ? run + 1 : 0;
    if (run == persistence) {
      e.found = true;
      e.index = int64_t(j) - persistence + 1;
      e.step = steps[e.index];
      return e;
    }
  }
  return e;
}

}  // namespace

std::vector<double> mean_per_position(std::span<const float> l, int64_t B, int64_t L) {
  return mean_per_position_impl(l, B, L);
}
std::vector<double> mean_per_position(std::span<const double> l, int64_t B, int64_t L) {
  return mean_per_position_impl(l, B, L);
}

double in_context_learning_score(std::span<const double> loss, int64_t late, int64_t early) {
  const int64_t L = int64_t(loss.size());
  IHLAB_CHECK(late >= 0 && late < L && early >= 0 && early < L,
              "in_context_learning_score: positions late = {} and early = {} must lie in [0, {})", late, early, L);
  return loss[late] - loss[early];
}

KlResult kl_divergences(std::span<const float> p, std::span<const float> q, int64_t V) { return kl_impl(p, q, V); }
KlResult kl_divergences(std::span<const float> p, std::span<const double> q, int64_t V) { return kl_impl(p, q, V); }
KlResult kl_divergences(std::span<const double> p, std::span<const double> q, int64_t V) { return kl_impl(p, q, V); }

SeriesEvent unigram_to_bigram_switch(std::span<const double> steps, std::span<const double> kl_uni,
                                     std::span<const double> kl_bi, int persistence) {
  IHLAB_CHECK(kl_uni.size() == kl_bi.size(), "unigram_to_bigram_switch: {} unigram KLs but {} bigram KLs",
              kl_uni.size(), kl_bi.size());
  check_steps("unigram_to_bigram_switch", steps, kl_uni.size());
  return first_persistent_run("unigram_to_bigram_switch", steps, kl_uni.size(), persistence,
                              [&](size_t j) { return kl_bi[j] < kl_uni[j]; });
}

SeriesEvent threshold_crossing(std::span<const double> steps, std::span<const double> values, double threshold,
                               Direction dir, int persistence) {
  check_steps("threshold_crossing", steps, values.size());
  return first_persistent_run("threshold_crossing", steps, values.size(), persistence, [&](size_t j) {
    return dir == Direction::Rise ? values[j] >= threshold : values[j] <= threshold;
  });
}

std::vector<double> smooth_series(std::span<const double> steps, std::span<const double> values,
                                  const SmoothingOptions& opt) {
  check_steps("smooth_series", steps, values.size());
  const bool by_steps = opt.window_steps > 0;
  IHLAB_CHECK(by_steps || (opt.window >= 1 && opt.window % 2 == 1),
              "smooth_series: window must be an odd number of logged points >= 1, got {}", opt.window);
  const int64_t n = int64_t(values.size()), half = opt.window / 2;
  std::vector<double> out(size_t(n), kNaN);
  for (int64_t i = 0; i < n; ++i) {
    int64_t lo = std::max<int64_t>(0, i - half), hi = std::min<int64_t>(n - 1, i + half);
    if (by_steps) {
      lo = i, hi = i;
      while (lo > 0 && steps[i] - steps[lo - 1] <= opt.window_steps / 2) --lo;
      while (hi + 1 < n && steps[hi + 1] - steps[i] <= opt.window_steps / 2) ++hi;
    }
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t j = lo; j <= hi; ++j)
      if (std::isfinite(values[j])) sum += values[j], ++cnt;
    if (cnt > 0) out[i] = sum / double(cnt);
  }
  return out;
}

SteepestChange steepest_change(std::span<const double> steps, std::span<const double> values,
                               const SmoothingOptions& smoothing, Direction dir) {
  SteepestChange r;
  r.smoothed = smooth_series(steps, values, smoothing);
  const auto& s = r.smoothed;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (!std::isfinite(s[i]) || !std::isfinite(s[i + 1])) continue;
    const double slope = (s[i + 1] - s[i]) / (steps[i + 1] - steps[i]);
    const bool better = !r.found || (dir == Direction::Rise ? slope > r.slope : slope < r.slope);
    if (better) {
      r.found = true;
      r.index = int64_t(i);
      r.slope = slope;
    }
  }
  if (r.found) {
    r.step_before = steps[r.index];
    r.step_after = steps[r.index + 1];
    r.step = 0.5 * (r.step_before + r.step_after);
  }
  return r;
}

}  // namespace ihlab
