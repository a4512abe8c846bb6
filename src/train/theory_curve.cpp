// Theory entries of summary.json (train/theory_curve.h): measured points, the formula sampled over
// their x range, and the relative residuals.
#include "train/theory_curve.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace ihlab {

namespace {

// A value that a chart with this axis type can place.
bool drawable(double v, bool log) { return std::isfinite(v) && (!log || v > 0); }

// kCurvePoints x values from lo to hi (both included), evenly in ln x when log.
std::vector<double> sample_range(double lo, double hi, bool log) {
  std::vector<double> xs;
  if (!(hi > lo)) return {lo};
  for (int i = 0; i < kCurvePoints; ++i) {
    const double u = double(i) / (kCurvePoints - 1);
    xs.push_back(log ? std::exp(std::log(lo) + u * (std::log(hi) - std::log(lo))) : lo + u * (hi - lo));
  }
  xs.front() = lo, xs.back() = hi;  // exactly the measured ends, not exp(ln x)
  return xs;
}

}  // namespace

nlohmann::json theory_curve_json(const TheoryAxes& a, const std::vector<double>& x, const std::vector<double>& y,
                                 const std::function<double(double)>& f) {
  nlohmann::json measured = nlohmann::json::array(), curve = nlohmann::json::array(),
                 residuals = nlohmann::json::array();
  std::vector<double> xs;  // the kept measured x
  for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
    if (!drawable(x[i], a.xlog) || !drawable(y[i], a.ylog)) continue;
    measured.push_back({x[i], y[i]});
    xs.push_back(x[i]);
    const double t = f(x[i]);
    if (std::isfinite(t) && t != 0) residuals.push_back({x[i], (y[i] - t) / t});
  }
  if (!xs.empty()) {
    const auto [lo, hi] = std::minmax_element(xs.begin(), xs.end());
    for (double u : sample_range(*lo, *hi, a.xlog)) {
      const double t = f(u);
      if (drawable(t, a.ylog)) curve.push_back({u, t});
    }
  }
  return {{"name", a.name}, {"x", a.x_label},     {"y", a.y_label},       {"xlog", a.xlog}, {"ylog", a.ylog},
          {"form", a.form}, {"source", a.source}, {"measured", measured}, {"curve", curve}, {"residuals", residuals}};
}

nlohmann::json theory_curve_json(std::string name, std::string x_label, std::string y_label, bool xlog, bool ylog,
                                 std::string form, std::string source, const std::vector<double>& x,
                                 const std::vector<double>& y, const std::function<double(double)>& f) {
  return theory_curve_json(TheoryAxes{std::move(name), std::move(x_label), std::move(y_label), xlog, ylog,
                                      std::move(form), std::move(source)},
                           x, y, f);
}

}  // namespace ihlab
