#pragma once
// Small regression helpers used by claims: least-squares lines and rank correlation.
#include <cmath>
#include <utility>
#include <vector>

namespace ihlab {

struct LineFit {
  double slope = 0, intercept = 0, r2 = 0;
  int n = 0;
};
// Least squares y = slope * x + intercept over the finite pairs.
LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y);
// Least squares with its uncertainty: the slope's two-sided confidence interval (Student t with
// n - 2 degrees of freedom) and the confidence band of the fitted mean at any x.
struct LineFitCI {
  LineFit fit;
  double level = 0.95;
  double slope_lo = NAN, slope_hi = NAN;  // NaN when n < 3
  double mean_x = 0, sxx = 0, resid_sd = 0, t = NAN;
  // Band of the fitted line at x: {lo, hi} = fit(x) -/+ t * s * sqrt(1/n + (x - mean_x)^2 / sxx).
  std::pair<double, double> band(double x) const;
};
LineFitCI fit_line_ci(const std::vector<double>& x, const std::vector<double>& y, double level = 0.95);
// Two-sided quantile: P(|T| <= q) = level for Student's t with `dof` degrees of freedom.
double student_t_quantile(double level, int dof);

// Spearman rank correlation (average ranks for ties) over the finite pairs.
double spearman(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace ihlab
