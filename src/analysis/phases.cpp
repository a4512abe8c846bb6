// Phase segmentation on log-log axes; the steps are numbered as in phases.h.
#include "analysis/phases.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"

namespace ihlab {

std::string PhaseSegmentation::summary() const {
  if (!found) return "no plateau followed by a transition";
  std::string s = fmt::format("initial drop to t={:.4g} (x{:.3g})", initial_drop_end, initial_drop);
  for (size_t i = 0; i < plateaus.size(); ++i)
    s += fmt::format(
        "; plateau {:.4g}..{:.4g} at {:.4g}; transition {:.4g}..{:.4g}, steepest t={:.4g} "
        "(slope {:.3g}, x{:.3g})",
        plateaus[i].start, plateaus[i].end, plateaus[i].level, transitions[i].start, transitions[i].end,
        transitions[i].steepest, transitions[i].slope, transitions[i].drop);
  return s + fmt::format("; convergence from t={:.4g}", convergence_start);
}

PhaseSegmentation segment_phases(const std::vector<double>& t, const std::vector<double>& loss,
                                 const PhaseOptions& opt) {
  IHLAB_CHECK(t.size() == loss.size(), "phases: {} times but {} losses", t.size(), loss.size());
  // 1. usable points on log-log axes, in time order, outliers clipped by a running median of 5.
  std::vector<std::pair<double, double>> pts;
  for (size_t i = 0; i < t.size(); ++i)
    if (std::isfinite(t[i]) && std::isfinite(loss[i]) && t[i] > 0 && loss[i] > 0)
      pts.push_back({std::log(t[i]), std::log(loss[i])});
  std::stable_sort(pts.begin(), pts.end(), [](auto& a, auto& b) { return a.first < b.first; });
  IHLAB_CHECK(pts.size() >= 8, "phases: {} usable points (t > 0, loss > 0, finite); need at least 8", pts.size());
  const size_t n = pts.size();
  std::vector<double> u(n), v(n);
  for (size_t i = 0; i < n; ++i) {
    u[i] = pts[i].first;
    std::vector<double> w;
    for (size_t j = i >= 2 ? i - 2 : 0; j <= std::min(n - 1, i + 2); ++j) w.push_back(pts[j].second);
    std::nth_element(w.begin(), w.begin() + w.size() / 2, w.end());
    v[i] = w[w.size() / 2];
  }
  // 2. uniform grid in u, linear interpolation, Gaussian smoothing (normalized at the edges).
  const double sigma = opt.smooth_decades * std::log(10.0), du = sigma / 4;
  const int64_t m = std::max<int64_t>(8, int64_t((u.back() - u.front()) / du) + 1);
  const size_t ms = static_cast<size_t>(m);
  std::vector<double> gu(ms), gv(ms), sv(ms), slope(ms);
  size_t k = 0;
  for (int64_t i = 0; i < m; ++i) {
    gu[i] = u.front() + (u.back() - u.front()) * double(i) / double(m - 1);
    while (k + 2 < n && u[k + 1] < gu[i]) ++k;
    const double span = u[k + 1] - u[k];
    const double a = span > 0 ? std::clamp((gu[i] - u[k]) / span, 0.0, 1.0) : 0.0;
    gv[i] = v[k] + a * (v[k + 1] - v[k]);
  }
  const double step = gu.size() > 1 ? gu[1] - gu[0] : 1.0;
  const int64_t reach = int64_t(std::ceil(3 * sigma / step));
  for (int64_t i = 0; i < m; ++i) {
    double sw = 0, s = 0;
    for (int64_t j = std::max<int64_t>(0, i - reach); j <= std::min(m - 1, i + reach); ++j) {
      const double w = std::exp(-0.5 * std::pow((gu[j] - gu[i]) / sigma, 2));
      sw += w, s += w * gv[j];
    }
    sv[i] = s / sw;
  }
  for (int64_t i = 0; i < m; ++i) {
    const int64_t a = std::max<int64_t>(0, i - 1), b = std::min(m - 1, i + 1);
    slope[i] = (sv[b] - sv[a]) / (gu[b] - gu[a]);
  }
  auto T = [&](int64_t i) { return std::exp(gu[i]); };

  // 3. flat runs of sufficient length.
  struct Run {
    int64_t a, b;
  };
  std::vector<Run> flats;
  const double min_len = opt.min_plateau_decades * std::log(10.0);
  for (int64_t i = 0; i < m;) {
    if (std::abs(slope[i]) > opt.flat_slope) {
      ++i;
      continue;
    }
    int64_t j = i;
    while (j + 1 < m && std::abs(slope[j + 1]) <= opt.flat_slope) ++j;
    if (gu[j] - gu[i] >= min_len) flats.push_back({i, j});
    i = j + 1;
  }
  PhaseSegmentation out;
  for (size_t f = 0; f < flats.size(); ++f) {
    const Run r = flats[f];
    if (r.a == 0 && !opt.count_initial) continue;
    const int64_t next = f + 1 < flats.size() ? flats[f + 1].a : m - 1;
    if (sv[r.b] - sv[next] < std::log(opt.min_drop)) continue;
    // 4. the transition after it.
    int64_t steep = r.b;
    for (int64_t i = r.b; i <= next; ++i)
      if (slope[i] < slope[steep]) steep = i;
    int64_t end = steep;
    while (end < next && slope[end] < opt.end_fraction * slope[steep]) ++end;
    // Smoothing rounds the corners (a steep drop leans into the plateau by ~2 sigma), so each
    // boundary is placed where two straight lines meet: the plateau's least-squares line, the
    // tangent at the steepest point, and the tangents 2 sigma outside the flat run (the initial
    // drop's) and past the transition's end (the convergence's). On a piecewise-linear curve in
    // log-log these are exactly its corners. A boundary stays at its grid point if the lines are
    // parallel or meet outside the interval they bound.
    double pa = 0, pb = 0;  // plateau line: v = pa + pb u
    {
      double su = 0, sv2 = 0, suu = 0, suv = 0, c = 0;
      for (int64_t i = r.a; i <= r.b; ++i) su += gu[i], sv2 += sv[i], suu += gu[i] * gu[i], suv += gu[i] * sv[i], ++c;
      const double den = c * suu - su * su;
      pb = den > 0 ? (c * suv - su * sv2) / den : 0.0;
      pa = (sv2 - pb * su) / c;
    }
    const int64_t off = int64_t(std::ceil(2 * sigma / step));
    auto meet = [&](double a1, double b1, int64_t i, double lo, double hi, double fallback) {
      const double b2 = slope[i], a2 = sv[i] - b2 * gu[i];  // tangent at grid point i
      if (std::abs(b1 - b2) < 1e-12) return fallback;
      const double x = (a2 - a1) / (b1 - b2);
      return x >= lo && x <= hi ? x : fallback;
    };
    const double tangent_a = sv[steep] - slope[steep] * gu[steep], tangent_b = slope[steep];
    const double u_start = r.a - off >= 0 ? meet(pa, pb, r.a - off, gu[r.a - off], gu[r.b], gu[r.a]) : gu[r.a];
    const double u_end = meet(pa, pb, steep, gu[r.a], gu[steep], gu[r.b]);
    const int64_t after = std::min(m - 1, end + off);
    const double u_conv = after > steep ? meet(tangent_a, tangent_b, after, gu[steep], gu[after], gu[end]) : gu[end];
    auto smooth_at = [&](double x) {  // smoothed ln loss at x (linear between grid points)
      const double pos = std::clamp((x - gu[0]) / step, 0.0, double(m - 1));
      const int64_t i = std::min<int64_t>(int64_t(pos), m - 2);
      return sv[i] + (pos - double(i)) * (sv[i + 1] - sv[i]);
    };
    const int64_t mid = (r.a + r.b) / 2;
    out.plateaus.push_back({std::exp(u_start), std::exp(u_end), std::exp(sv[mid])});
    out.transitions.push_back(
        {std::exp(u_end), T(steep), std::exp(u_conv), slope[steep], std::exp(smooth_at(u_end) - smooth_at(u_conv))});
    if (out.plateaus.size() == 1) {
      out.initial_drop_end = std::exp(u_start);
      out.initial_drop = std::exp(sv[0] - smooth_at(u_start));
    }
    out.convergence_start = std::exp(u_conv);
  }
  out.found = !out.plateaus.empty();
  return out;
}

}  // namespace ihlab
