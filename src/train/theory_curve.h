// "Theory over measurement": a formula drawn over the measured points it describes, with the
// relative residual at each measured point. One entry of summary.json's optional `theory` array,
// rendered by theoryCharts() in src/report/report.js:
//   {"name", "x", "y" (axis labels), "xlog", "ylog", "form" (the formula as text, with its
//    constants), "source" (paper / spec / fitted here),
//    "measured":  [[x, y], ...]                       the finite measured points,
//    "curve":     [[x, f(x)], ...]                    kCurvePoints points over the measured x range,
//                                                     log-spaced when xlog,
//    "residuals": [[x, (y - f(x)) / f(x)], ...]}      at the measured x (where f(x) is finite, != 0)
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ihlab {

// What a theory entry says about its axes and where its formula comes from.
struct TheoryAxes {
  std::string name, x_label, y_label;
  bool xlog = false, ylog = false;
  std::string form, source;
};

inline constexpr int kCurvePoints = 80;

// The entry for the measured pairs (x, y) and the formula f. Pairs with a non-finite x or y (or a
// non-positive one on a log axis) are skipped; so are curve points where f is not finite.
nlohmann::json theory_curve_json(const TheoryAxes& axes, const std::vector<double>& x, const std::vector<double>& y,
                                 const std::function<double(double)>& f);

// The same, with the axes spelled out one by one.
nlohmann::json theory_curve_json(std::string name, std::string x_label, std::string y_label, bool xlog, bool ylog,
                                 std::string form, std::string source, const std::vector<double>& x,
                                 const std::vector<double>& y, const std::function<double(double)>& f);

}  // namespace ihlab
