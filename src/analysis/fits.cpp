#include "analysis/fits.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace ihlab {

namespace {
void finite_pairs(const std::vector<double>& x, const std::vector<double>& y, std::vector<double>& fx,
                  std::vector<double>& fy) {
  for (size_t i = 0; i < std::min(x.size(), y.size()); ++i)
    if (std::isfinite(x[i]) && std::isfinite(y[i])) fx.push_back(x[i]), fy.push_back(y[i]);
}

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = 0.5 * double(i + j);  // average rank of the tie
    i = j + 1;
  }
  return r;
}
}  // namespace

LineFit fit_line(const std::vector<double>& x0, const std::vector<double>& y0) {
  std::vector<double> x, y;
  finite_pairs(x0, y0, x, y);
  LineFit f;
  f.n = int(x.size());
  if (f.n < 2) return f;
  double mx = std::accumulate(x.begin(), x.end(), 0.0) / f.n, my = std::accumulate(y.begin(), y.end(), 0.0) / f.n;
  double sxx = 0, sxy = 0, syy = 0;
  for (int i = 0; i < f.n; ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx == 0) return f;
  f.slope = sxy / sxx;
  f.intercept = my - f.slope * mx;
  f.r2 = syy > 0 ? sxy * sxy / (sxx * syy) : 1.0;
  return f;
}

double spearman(const std::vector<double>& x0, const std::vector<double>& y0) {
  std::vector<double> x, y;
  finite_pairs(x0, y0, x, y);
  if (x.size() < 2) return 0;
  auto rx = ranks(x), ry = ranks(y);
  LineFit f = fit_line(rx, ry);
  return (f.slope >= 0 ? 1 : -1) * std::sqrt(f.r2);
}

namespace {
// CDF of Student's t through the regularized incomplete beta, by its continued fraction
// (Lentz's method): P(T <= t) = 1 - I_{dof/(dof+t^2)}(dof/2, 1/2) / 2 for t >= 0.
double incomplete_beta_cf(double a, double b, double x) {
  const double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  d = 1 / (std::abs(d) < tiny ? tiny : d);
  double h = d;
  for (int m = 1; m < 500; ++m) {
    for (int pass = 0; pass < 2; ++pass) {
      double num = pass == 0 ? m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
                             : -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
      d = 1 + num * d;
      d = 1 / (std::abs(d) < tiny ? tiny : d);
      c = 1 + num / c;
      if (std::abs(c) < tiny) c = tiny;
      h *= d * c;
      if (pass == 1 && std::abs(d * c - 1) < 1e-15) return h;
    }
  }
  return h;
}

double regularized_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return front * incomplete_beta_cf(a, b, x) / a;
  return 1 - front * incomplete_beta_cf(b, a, 1 - x) / b;
}

double student_t_two_sided(double t, int dof) {  // P(|T| <= t)
  return 1 - regularized_beta(dof / 2.0, 0.5, dof / (dof + t * t));
}
}  // namespace

double student_t_quantile(double level, int dof) {
  if (dof < 1 || !(level > 0 && level < 1)) return NAN;
  double lo = 0, hi = 1;
  while (student_t_two_sided(hi, dof) < level) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; ++i) {
    double mid = 0.5 * (lo + hi);
    (student_t_two_sided(mid, dof) < level ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

LineFitCI fit_line_ci(const std::vector<double>& x0, const std::vector<double>& y0, double level) {
  LineFitCI r;
  r.level = level;
  r.fit = fit_line(x0, y0);
  std::vector<double> x, y;
  finite_pairs(x0, y0, x, y);
  const int n = int(x.size());
  if (n < 3) return r;
  r.mean_x = std::accumulate(x.begin(), x.end(), 0.0) / n;
  double sse = 0;
  for (int i = 0; i < n; ++i) {
    r.sxx += (x[i] - r.mean_x) * (x[i] - r.mean_x);
    double e = y[i] - (r.fit.intercept + r.fit.slope * x[i]);
    sse += e * e;
  }
  if (r.sxx == 0) return r;
  r.resid_sd = std::sqrt(sse / (n - 2));
  r.t = student_t_quantile(level, n - 2);
  double half = r.t * r.resid_sd / std::sqrt(r.sxx);
  r.slope_lo = r.fit.slope - half;
  r.slope_hi = r.fit.slope + half;
  return r;
}

std::pair<double, double> LineFitCI::band(double x) const {
  double y = fit.intercept + fit.slope * x;
  if (!std::isfinite(t)) return {NAN, NAN};
  double half = t * resid_sd * std::sqrt(1.0 / fit.n + (x - mean_x) * (x - mean_x) / sxx);
  return {y - half, y + half};
}

}  // namespace ihlab
