// Phase segmentation on synthetic loss curves whose phase boundaries are known by construction:
// piecewise-linear in log-log coordinates (corners at the boundaries), sampled log-spaced or
// irregularly, with and without multiplicative noise.
#include <gtest/gtest.h>

#include <cmath>

#include "analysis/phases.h"
#include "core/error.h"
#include "core/rng.h"

namespace ihlab {
namespace {

// ln loss as a continuous piecewise-linear function of log10 t through the given corners.
double piecewise(const std::vector<std::pair<double, double>>& corners, double x) {
  if (x <= corners.front().first) return corners.front().second;
  for (size_t i = 1; i < corners.size(); ++i)
    if (x <= corners[i].first) {
      auto [x0, y0] = corners[i - 1];
      auto [x1, y1] = corners[i];
      return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
    }
  return corners.back().second;
}

struct Curve {
  std::vector<double> t, loss;
};

// Four phases: drop 1e-2..1e1 (slope -0.6 per ln t... in ln loss per decade: -1.4), plateau
// 1e1..10^2.4, transition 10^2.4..10^2.8 (-12 per decade), convergence slope -1 per decade (that is
// d ln L / d ln t = -0.43).
const std::vector<std::pair<double, double>> kFour = {{-2.0, std::log(0.2)},
                                                      {1.0, std::log(0.02)},
                                                      {2.4, std::log(0.018)},
                                                      {2.8, std::log(0.018) - 4.8},
                                                      {4.0, std::log(0.018) - 4.8 - 1.0}};

Curve sample(const std::vector<std::pair<double, double>>& corners, double per_decade, double noise, uint64_t seed,
             bool jitter) {
  Curve c;
  RandomStream rng(seed, StreamKind::Test);
  const double lo = corners.front().first, hi = corners.back().first;
  for (double x = lo; x <= hi + 1e-12; x += 1.0 / per_decade) {
    const double xj = jitter ? std::min(hi, x + 0.8 / per_decade * rng.uniform()) : x;
    c.t.push_back(std::pow(10.0, xj));
    c.loss.push_back(std::exp(piecewise(corners, xj) + noise * rng.normal()));
  }
  return c;
}

void expect_decades_near(double t, double expected, double tol_decades, const char* what) {
  EXPECT_NEAR(std::log10(t), std::log10(expected), tol_decades) << what << ": t = " << t << ", expected " << expected;
}

void expect_four_phases(const PhaseSegmentation& p, double tol) {
  ASSERT_TRUE(p.found) << p.summary();
  ASSERT_EQ(p.plateaus.size(), 1u) << p.summary();
  expect_decades_near(p.plateaus[0].start, 10.0, tol, "plateau start");
  expect_decades_near(p.plateaus[0].end, std::pow(10.0, 2.4), tol, "plateau end");
  expect_decades_near(p.transitions[0].steepest, std::pow(10.0, 2.6), 0.2, "steepest descent");
  expect_decades_near(p.convergence_start, std::pow(10.0, 2.8), tol, "convergence start");
  EXPECT_NEAR(p.plateaus[0].level, 0.019, 0.003);
  EXPECT_GT(p.transitions[0].drop, 20.0);
  EXPECT_LT(p.transitions[0].slope, -2.0);  // 4.8 nats over 0.4 decades: -5.2 in ln-ln, smoothed
}

TEST(Phases, FourPhasesOnACleanLogSpacedCurve) {
  expect_four_phases(segment_phases(sample(kFour, 20, 0.0, 1, false).t, sample(kFour, 20, 0.0, 1, false).loss), 0.08);
}

TEST(Phases, FourPhasesOnNoisyIrregularlySampledCurves) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    Curve c = sample(kFour, 40, 0.05, seed, true);  // 5% multiplicative noise
    expect_four_phases(segment_phases(c.t, c.loss), 0.2);
  }
  // An outlier spike on the plateau does not split it.
  Curve c = sample(kFour, 40, 0.02, 9, false);
  for (size_t i = 0; i < c.t.size(); ++i)
    if (std::abs(std::log10(c.t[i]) - 1.7) < 0.01) c.loss[i] *= 20;
  expect_four_phases(segment_phases(c.t, c.loss), 0.2);
}

TEST(Phases, TwoPlateausAndAnInitialOne) {
  // Flat 1..10 (initial), drop, plateau 10^1.5..10^2.5, drop, plateau 10^3..10^3.6, drop, tail.
  const std::vector<std::pair<double, double>> corners = {{0.0, 0.0},  {1.0, 0.0},  {1.5, -2.0}, {2.5, -2.1},
                                                          {2.8, -4.5}, {3.6, -4.6}, {3.9, -7.0}, {4.5, -7.1}};
  Curve c = sample(corners, 30, 0.03, 4, false);
  PhaseSegmentation p = segment_phases(c.t, c.loss);
  ASSERT_EQ(p.plateaus.size(), 2u) << p.summary();
  expect_decades_near(p.plateaus[0].start, std::pow(10.0, 1.5), 0.2, "first plateau start");
  expect_decades_near(p.plateaus[1].end, std::pow(10.0, 3.6), 0.2, "second plateau end");
  PhaseOptions initial;
  initial.count_initial = true;
  PhaseSegmentation q = segment_phases(c.t, c.loss, initial);
  ASSERT_EQ(q.plateaus.size(), 3u) << q.summary();
  expect_decades_near(q.plateaus[0].end, 10.0, 0.2, "initial plateau end");
}

TEST(Phases, PowerLawHasNoPlateau) {
  const std::vector<std::pair<double, double>> corners = {{0.0, 0.0}, {4.0, -6.0}};  // slope -0.65 in ln-ln
  Curve c = sample(corners, 20, 0.05, 2, false);
  PhaseSegmentation p = segment_phases(c.t, c.loss);
  EXPECT_FALSE(p.found) << p.summary();
  // A plateau without a large enough drop after it is not a plateau either.
  const std::vector<std::pair<double, double>> shallow = {
      {0.0, 0.0}, {1.0, -2.0}, {2.0, -2.0}, {2.5, -2.5}, {3.0, -2.5}};
  Curve s = sample(shallow, 20, 0.0, 2, false);
  EXPECT_FALSE(segment_phases(s.t, s.loss).found);
}

TEST(Phases, RejectsTooFewPoints) {
  EXPECT_THROW(segment_phases({1, 2, 3}, {1, 1, 1}), Error);
  EXPECT_THROW(segment_phases({1, 2}, {1}), Error);
}

}  // namespace
}  // namespace ihlab
