// theory_curve_json (train/theory_curve.h): the "theory" entries of summary.json that the report
// draws as a formula over the measured points with their relative residuals.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "train/theory_curve.h"

namespace ihlab {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

double quadratic(double n) { return 3 * n * n + 2 * n; }

nlohmann::json entry(const std::vector<double>& x, const std::vector<double>& y, bool xlog = true, bool ylog = true) {
  return theory_curve_json("t vs N", "N", "t", xlog, ylog, "t = 3 N^2 + 2 N", "test", x, y, quadratic);
}

TEST(TheoryCurve, FieldsAreWritten) {
  const nlohmann::json j = entry({1, 2}, {5, 16});
  EXPECT_EQ(j["name"], "t vs N");
  EXPECT_EQ(j["x"], "N");
  EXPECT_EQ(j["y"], "t");
  EXPECT_EQ(j["xlog"], true);
  EXPECT_EQ(j["ylog"], true);
  EXPECT_EQ(j["form"], "t = 3 N^2 + 2 N");
  EXPECT_EQ(j["source"], "test");
}

TEST(TheoryCurve, ResidualsVanishOnTheFormula) {
  const std::vector<double> x = {4, 8, 16, 32};
  std::vector<double> y;
  for (double v : x) y.push_back(quadratic(v));
  const nlohmann::json j = entry(x, y);
  ASSERT_EQ(j["measured"].size(), 4u);
  ASSERT_EQ(j["residuals"].size(), 4u);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(j["residuals"][i][0].get<double>(), x[i]);
    EXPECT_EQ(j["residuals"][i][1].get<double>(), 0.0);
  }
}

TEST(TheoryCurve, ResidualIsRelative) {
  const nlohmann::json j = entry({10}, {1.1 * quadratic(10)});
  ASSERT_EQ(j["residuals"].size(), 1u);
  EXPECT_NEAR(j["residuals"][0][1].get<double>(), 0.1, 1e-12);
  const nlohmann::json below = entry({10}, {0.8 * quadratic(10)});
  EXPECT_NEAR(below["residuals"][0][1].get<double>(), -0.2, 1e-12);
}

TEST(TheoryCurve, NonFinitePointsAreSkipped) {
  const nlohmann::json j = entry({1, 2, kNaN, 4, 5, 6}, {5, kNaN, 33, kInf, quadratic(5), quadratic(6)});
  ASSERT_EQ(j["measured"].size(), 3u);
  EXPECT_EQ(j["measured"][0][0].get<double>(), 1);
  EXPECT_EQ(j["measured"][1][0].get<double>(), 5);
  EXPECT_EQ(j["measured"][2][0].get<double>(), 6);
  EXPECT_EQ(j["residuals"].size(), 3u);
  for (auto& p : j["curve"]) EXPECT_TRUE(std::isfinite(p[1].get<double>()));
}

TEST(TheoryCurve, NonPositivePointsAreSkippedOnLogAxes) {
  EXPECT_EQ(entry({0, 1, 2}, {1, -1, 16})["measured"].size(), 1u);
  EXPECT_EQ(entry({0, 1, 2}, {1, -1, 16}, false, false)["measured"].size(), 3u);
}

TEST(TheoryCurve, CurveSpansTheMeasuredRange) {
  for (bool xlog : {true, false}) {
    const nlohmann::json j = entry({16, 2, 64, 4}, {1, 2, 3, 4}, xlog);
    const auto& c = j["curve"];
    ASSERT_EQ(c.size(), size_t(kCurvePoints));
    EXPECT_DOUBLE_EQ(c.front()[0].get<double>(), 2);
    EXPECT_DOUBLE_EQ(c.back()[0].get<double>(), 64);
    for (size_t i = 0; i < c.size(); ++i) {
      EXPECT_DOUBLE_EQ(c[i][1].get<double>(), quadratic(c[i][0].get<double>()));
      if (i > 0) {
        EXPECT_GT(c[i][0].get<double>(), c[i - 1][0].get<double>());
      }
    }
    // Log-spaced: equal ratios between neighbours; linear: equal steps.
    const double x0 = c[0][0], x1 = c[1][0], x2 = c[2][0];
    if (xlog) {
      EXPECT_NEAR(x1 / x0, x2 / x1, 1e-9);
    } else {
      EXPECT_NEAR(x1 - x0, x2 - x1, 1e-9);
    }
  }
}

TEST(TheoryCurve, EmptyOrDegenerateInput) {
  const nlohmann::json none = entry({}, {});
  EXPECT_TRUE(none["measured"].empty());
  EXPECT_TRUE(none["curve"].empty());
  EXPECT_TRUE(none["residuals"].empty());
  const nlohmann::json one = entry({3}, {quadratic(3)});
  ASSERT_EQ(one["curve"].size(), 1u);
  EXPECT_EQ(one["curve"][0][0].get<double>(), 3);
}

}  // namespace
}  // namespace ihlab
