// Dormand–Prince integrator on problems with closed forms, exact landing, bit-identical resume and
// gradient flow over parameters.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "train/flow.h"

namespace ihlab {
namespace {

// dy/dt = -A y with A = diag(rates): y_i(t) = y_i(0) * exp(-rates_i * t).
Derivative linear_decay(std::vector<double> rates, int64_t* evals = nullptr) {
  return [rates, evals](double, const std::vector<double>& y, std::vector<double>& dydt) {
    if (evals) ++*evals;
    for (size_t i = 0; i < y.size(); ++i) dydt[i] = -rates[i] * y[i];
  };
}

// y1' = -y2, y2' = y1: (cos t, sin t) from (1, 0).
void rotation(double, const std::vector<double>& y, std::vector<double>& dydt) {
  dydt[0] = -y[1];
  dydt[1] = y[0];
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

TEST(Flow, LinearDecayMatchesClosedForm) {
  FlowConfig cfg;
  cfg.rtol = 1e-9;
  cfg.atol = 1e-14;
  int64_t evals = 0;
  DormandPrince dp(linear_decay({1.0, 10.0}, &evals), cfg);
  FlowState s;
  s.y = {1.0, 2.0};
  double worst = 0;
  dp.integrate(s, 1.0, [&](const FlowState& st) {
    worst = std::max(worst, std::abs(st.y[0] / std::exp(-st.t) - 1));
    worst = std::max(worst, std::abs(st.y[1] / (2 * std::exp(-10 * st.t)) - 1));
  });
  EXPECT_EQ(s.t, 1.0);
  EXPECT_NEAR(s.y[0], std::exp(-1.0), 1e-7 * std::exp(-1.0));
  EXPECT_NEAR(s.y[1], 2 * std::exp(-10.0), 1e-7 * 2 * std::exp(-10.0));
  EXPECT_LT(worst, 1e-7);  // every accepted point, not just the end
  // FSAL: one evaluation to start, then 6 per try (accepted or rejected), never 7.
  EXPECT_EQ(evals, 1 + 6 * (s.accepted + s.rejected));
}

TEST(Flow, RejectsTooLongStepsAndStillConverges) {
  FlowConfig cfg;
  cfg.rtol = 1e-9;
  cfg.atol = 1e-14;
  cfg.h_init = 1.0;  // far too long for rate 10
  DormandPrince dp(linear_decay({1.0, 10.0}), cfg);
  FlowState s;
  s.y = {1.0, 2.0};
  dp.integrate(s, 1.0);
  EXPECT_GT(s.rejected, 0);
  EXPECT_NEAR(s.y[1], 2 * std::exp(-10.0), 1e-7 * 2 * std::exp(-10.0));
}

TEST(Flow, RotationStaysOnTheCircle) {
  FlowConfig cfg;
  cfg.rtol = 1e-9;
  cfg.atol = 1e-12;
  DormandPrince dp(rotation, cfg);
  FlowState s;
  s.y = {1.0, 0.0};
  double worst_radius = 0;
  dp.integrate(s, 10.0, [&](const FlowState& st) {
    worst_radius = std::max(worst_radius, std::abs(std::hypot(st.y[0], st.y[1]) - 1));
  });
  EXPECT_LT(worst_radius, 1e-7);
  EXPECT_NEAR(s.y[0], std::cos(10.0), 1e-7);
  EXPECT_NEAR(s.y[1], std::sin(10.0), 1e-7);
}

TEST(Flow, LandsExactlyOnEachEndTime) {
  DormandPrince dp(rotation, FlowConfig{});
  FlowState s;
  s.y = {1.0, 0.0};
  // Sums of 0.1 are not representable: a solver that accumulated t += h would miss these.
  for (int k = 1; k <= 7; ++k) {
    const double t_end = 0.1 * k;
    dp.integrate(s, t_end, [&](const FlowState& st) { EXPECT_LE(st.t, t_end); });
    EXPECT_EQ(s.t, t_end);
  }
  const double t_last = s.t;
  dp.integrate(s, t_last);  // already there: nothing happens
  EXPECT_EQ(s.t, 0.1 * 7);
  EXPECT_GT(s.h, 0);
}

// Copy the state after an accepted step in the middle of a run; a fresh solver continuing from
// the copy ends bit-identical to the uninterrupted run.
TEST(Flow, ResumeFromCopiedStateIsBitIdentical) {
  FlowConfig cfg;
  cfg.rtol = 1e-8;
  cfg.h_init = 0.5;  // provoke rejections, so the controller state matters
  auto f = linear_decay({1.0, 10.0, 0.3});
  FlowState start;
  start.y = {1.0, -2.0, 0.5};

  FlowState full = start, saved;
  DormandPrince a(f, cfg);
  a.integrate(full, 3.0, [&](const FlowState& st) {
    if (st.accepted == 5) saved = st;
  });
  ASSERT_EQ(saved.accepted, 5);
  ASSERT_LT(saved.t, 3.0);

  DormandPrince b(f, cfg);
  FlowState resumed = saved;
  b.integrate(resumed, 3.0);
  EXPECT_TRUE(same_bits(resumed.y, full.y));
  EXPECT_TRUE(same_bits(resumed.k_last, full.k_last));
  EXPECT_EQ(resumed.h, full.h);
  EXPECT_EQ(resumed.accepted, full.accepted);
  EXPECT_EQ(resumed.rejected, full.rejected);

  // Same when the stop is a t_end (a checkpoint boundary): both continue from the clipped step.
  FlowState c = start;
  a.integrate(c, 1.3);
  FlowState d = c;
  a.integrate(c, 3.0);
  b.integrate(d, 3.0);
  EXPECT_TRUE(same_bits(c.y, d.y));
}

TEST(Flow, Errors) {
  EXPECT_THROW(DormandPrince(rotation, FlowConfig{.rtol = 1e-6, .atol = 0}), Error);
  EXPECT_THROW(DormandPrince(rotation, FlowConfig{.h_init = 1e-20}), Error);
  EXPECT_THROW(DormandPrince(Derivative{}, FlowConfig{}), Error);

  DormandPrince dp(rotation, FlowConfig{});
  FlowState s;
  s.y = {1.0, 0.0};
  EXPECT_THROW(dp.step(s, 0.0), Error);  // t_end must be ahead
  EXPECT_THROW(dp.integrate(s, -1.0), Error);

  // y' = y^2 from y = 1 blows up at t = 1: the controller shrinks h below h_min and gives up.
  DormandPrince blowup([](double, const std::vector<double>& y, std::vector<double>& dydt) { dydt[0] = y[0] * y[0]; },
                       FlowConfig{});
  FlowState b;
  b.y = {1.0};
  EXPECT_THROW(blowup.integrate(b, 2.0), Error);

  DormandPrince nan_f([](double, const std::vector<double>&, std::vector<double>& dydt) { dydt[0] = NAN; },
                      FlowConfig{});
  FlowState n;
  n.y = {1.0};
  EXPECT_THROW(nan_f.step(n, 1.0), Error);
}

// ---- gradient flow over parameters ----
// L(w) = 1/2 * sum_i c_i w_i^2 over params a: [2] and b: [1] (c = 1, 2, 3): ∇L = c ⊙ w, so the
// flow dw/dt = -∇L gives w_i(t) = w_i(0) * exp(-c_i t).
template <typename T>
class FlowTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(FlowTyped, Scalars);

TYPED_TEST(FlowTyped, GradientFlowOnQuadratic) {
  using T = TypeParam;
  ParamStore<T> store;
  store.add("a", "W", Tensor<T>({2}, std::vector<T>{T(1.0), T(-0.5)}));
  store.add("b", "C", Tensor<T>({1}, std::vector<T>{T(2.0)}));
  auto params = store.trainable();
  const std::vector<double> c = {1.0, 2.0, 3.0};

  // What a training step would do: write θ into the params, "backward", read -∇L.
  Derivative f = [&](double, const std::vector<double>& y, std::vector<double>& dydt) {
    unpack_values(y, params);
    store.zero_grad();
    int64_t i = 0;
    for (Param<T>* p : params) {
      Tensor<T>& g = p->var.grad();         // [param shape]
      const Tensor<T>& w = p->var.value();  // [param shape]
      for (int64_t j = 0; j < w.numel(); ++j, ++i) g[j] = T(c[i]) * w[j];
    }
    auto g = pack_grads(params);
    for (size_t k = 0; k < y.size(); ++k) dydt[k] = -g[k];
  };
  FlowConfig cfg;
  cfg.rtol = 1e-9;
  cfg.atol = 1e-12;
  DormandPrince dp(f, cfg);
  FlowState s;
  s.y = pack_values(params);
  EXPECT_EQ(s.y, (std::vector<double>{1.0, -0.5, 2.0}));  // params in order, elements in order
  dp.integrate(s, 1.5);
  unpack_values(s.y, params);

  // float params round θ to float inside f, which bounds the agreement to float precision.
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-8;
  const std::vector<double> w0 = {1.0, -0.5, 2.0};
  auto after = pack_values(params);
  for (size_t i = 0; i < 3; ++i) {
    const double want = w0[i] * std::exp(-c[i] * 1.5);
    EXPECT_NEAR(after[i], want, tol * std::abs(want)) << i;
  }
}

TEST(FlowPack, GradsOfUntouchedParamsAreZeroAndSizesAreChecked) {
  ParamStore<double> store;
  store.add("a", "W", Tensor<double>({2}, 1.0));
  store.add("b", "W", Tensor<double>({2, 2}, 2.0));
  auto params = store.trainable();
  store.find("b")->var.grad().fill(5.0);  // "a" never got a gradient
  EXPECT_EQ(pack_grads(params), (std::vector<double>{0, 0, 5, 5, 5, 5}));
  EXPECT_FALSE(store.find("a")->var.has_grad());  // reading did not allocate one
  EXPECT_THROW(unpack_values(std::vector<double>(5, 0.0), params), Error);
  unpack_values(std::vector<double>{1, 2, 3, 4, 5, 6}, params);
  EXPECT_EQ(store.find("b")->var.value()[3], 6.0);
}

}  // namespace
}  // namespace ihlab
