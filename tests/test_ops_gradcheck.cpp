// Every differentiable op in core/ops.h: analytic gradients against float64 central differences
// (through non-constant aggregates for tensor outputs), forward values against hand-computed or
// naive references, float32 against float64, and autograd accumulation / frozen leaves.
#include "core/ops.h"

#include "gradcheck.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

namespace ihlab {
namespace {

using namespace ihlab::gc;
namespace O = ihlab::ops;

// ---------------------------------------------------------------------------------------------
// Helpers

template <typename F>
::testing::AssertionResult check_agg(F f, const std::vector<TensorD>& in, Options opt = {}, uint64_t seed = 7) {
  return gradcheck(aggregate(ScalarFn(f), seed), in, opt);
}

// sum(log(x + c)), built on make_result so it does not depend on the ops under test.
template <typename T>
Var<T> sum_log_plus(const Var<T>& x, double c) {
  const Tensor<T>& v = x.value();
  double acc = 0;
  for (int64_t i = 0; i < v.numel(); ++i) acc += std::log(double(v[i]) + c);
  Tensor<T> xv = v;
  return make_result<T>("test_sum_log", Tensor<T>::scalar(T(acc)), {x}, [xv, c](Node<T>& n) {
    auto& p = n.parents[0];
    if (!p->requires_grad) return;
    T g = n.grad[0];
    auto& gb = p->grad_buffer();
    for (int64_t i = 0; i < xv.numel(); ++i) gb[i] += g / T(xv[i] + c);
  });
}

void expect_values(const Tensor<double>& got, const Shape& shape, const std::vector<double>& want, double tol = 1e-12) {
  ASSERT_EQ(got.shape(), shape) << "got " << shape_str(got.shape()) << ", want " << shape_str(shape);
  ASSERT_EQ(got.numel(), int64_t(want.size()));
  for (int64_t i = 0; i < got.numel(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "at " << index_str(shape, i);
}

std::vector<double> to_vec(const TensorD& t) { return std::vector<double>(t.data(), t.data() + t.numel()); }

// Naive reference matmul of one [m, k] x [k, n] block, honoring transposes.
std::vector<double> naive_mm(const double* a, const double* b, int64_t m, int64_t k, int64_t n, bool ta, bool tb) {
  std::vector<double> c(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
      c[i * n + j] = s;
    }
  return c;
}

Var<double> leafd(const TensorD& t, bool rg = true) { return Var<double>::leaf(t.clone(), rg); }

// Elementwise binary ops by name, for parameterized loops.
enum class Bin { Add, Sub, Mul, Div };
const char* bin_name(Bin b) {
  switch (b) {
    case Bin::Add: return "add";
    case Bin::Sub: return "sub";
    case Bin::Mul: return "mul";
    case Bin::Div: return "div";
  }
  return "?";
}
template <typename T>
Var<T> apply_bin(Bin op, const Var<T>& a, const Var<T>& b) {
  switch (op) {
    case Bin::Add: return O::add(a, b);
    case Bin::Sub: return O::sub(a, b);
    case Bin::Mul: return O::mul(a, b);
    case Bin::Div: return O::div(a, b);
  }
  return {};
}
double ref_bin(Bin op, double a, double b) {
  switch (op) {
    case Bin::Add: return a + b;
    case Bin::Sub: return a - b;
    case Bin::Mul: return a * b;
    case Bin::Div: return a / b;
  }
  return 0;
}

const std::vector<std::pair<Shape, Shape>> kBinShapes = {
    {{2, 3, 4}, {2, 3, 4}}, {{2, 3, 4}, {4}}, {{4}, {2, 3, 4}}, {{2, 3, 4}, {3, 4}}, {{3, 4}, {2, 3, 4}},
};

// Reference masked softmax over the last axis of logits [..., n]; bias/mask suffix-broadcast.
std::vector<double> ref_masked_softmax(const TensorD& logits, const TensorD* bias, const std::vector<uint8_t>& mask) {
  int64_t n = logits.dim(-1), rows = logits.numel() / n;
  std::vector<double> out(logits.numel(), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -HUGE_VAL;
    auto val = [&](int64_t j) {
      int64_t f = r * n + j;
      return logits[f] + (bias ? (*bias)[f % bias->numel()] : 0.0);
    };
    auto ok = [&](int64_t j) { return mask.empty() || mask[(r * n + j) % mask.size()] != 0; };
    for (int64_t j = 0; j < n; ++j)
      if (ok(j)) mx = std::max(mx, val(j));
    if (mx == -HUGE_VAL) continue;
    double s = 0;
    for (int64_t j = 0; j < n; ++j)
      if (ok(j)) s += std::exp(val(j) - mx);
    for (int64_t j = 0; j < n; ++j)
      if (ok(j)) out[r * n + j] = std::exp(val(j) - mx) / s;
  }
  return out;
}

double gelu_ref(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

// ---------------------------------------------------------------------------------------------
// The harness itself must catch a wrong sign, a missing term and name the worst element.

Var<double> custom_square_sum(const Var<double>& x, double extra_lin, double grad_sign, double grad_lin,
                              int64_t corrupt_at = -1) {
  TensorD xv = x.value();
  double acc = 0;
  for (int64_t i = 0; i < xv.numel(); ++i) acc += xv[i] * xv[i] + extra_lin * xv[i];
  return make_result<double>("custom", TensorD::scalar(acc), {x}, [=](Node<double>& n) {
    auto& gb = n.parents[0]->grad_buffer();
    for (int64_t i = 0; i < xv.numel(); ++i) {
      double g = grad_sign * 2 * xv[i] + grad_lin;
      if (i == corrupt_at) g *= 1.001;
      gb[i] += n.grad[0] * g;
    }
  });
}

TEST(GradcheckHarness, AcceptsCorrectGradient) {
  auto rs = test_stream(1);
  TensorD x = randn(rs, {3, 4});
  EXPECT_TRUE(gradcheck([](const auto& v) { return custom_square_sum(v[0], 1e-4, 1, 1e-4); }, {x}));
}

TEST(GradcheckHarness, CatchesWrongSign) {
  auto rs = test_stream(1);
  TensorD x = randn(rs, {3, 4});
  EXPECT_FALSE(gradcheck([](const auto& v) { return custom_square_sum(v[0], 0, -1, 0); }, {x}));
}

TEST(GradcheckHarness, CatchesSmallMissingTerm) {
  auto rs = test_stream(1);
  TensorD x = uniform(rs, {3, 4}, 0.5, 2.0);
  // d/dx (x^2 + 1e-4 x) = 2x + 1e-4; the backward leaves out the 1e-4.
  EXPECT_FALSE(gradcheck([](const auto& v) { return custom_square_sum(v[0], 1e-4, 1, 0); }, {x}));
}

TEST(GradcheckHarness, NamesWorstElement) {
  auto rs = test_stream(1);
  TensorD x = uniform(rs, {3, 4}, 0.5, 2.0);
  auto r = gradcheck([](const auto& v) { return custom_square_sum(v[0], 0, 1, 0, /*corrupt_at=*/6); }, {x});
  ASSERT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("[1, 2]"), std::string::npos) << r.message();
}

TEST(GradcheckHarness, AggregateIsNotConstantForSoftmax) {
  // sum(R * softmax) depends on the logits even though sum(softmax) per row is constant.
  auto rs = test_stream(2);
  TensorD x = randn(rs, {2, 5});
  auto f = aggregate([](const std::vector<VarD>& v) { return O::masked_softmax(v[0], VarD()); });
  double a = f({leafd(x, false)}).item();
  x[3] += 0.5;
  double b = f({leafd(x, false)}).item();
  EXPECT_GT(std::abs(a - b), 1e-3);
}

// ---------------------------------------------------------------------------------------------
// Matrix products

TEST(OpsForward, Matmul2x2) {
  TensorD a({2, 2}, {1, 2, 3, 4}), b({2, 2}, {5, 6, 7, 8});
  expect_values(O::matmul(leafd(a), leafd(b)).value(), {2, 2}, {19, 22, 43, 50});
  expect_values(O::matmul(leafd(a), leafd(b), true, false).value(), {2, 2}, {26, 30, 38, 44});
  expect_values(O::matmul(leafd(a), leafd(b), false, true).value(), {2, 2}, {17, 23, 39, 53});
  expect_values(O::matmul(leafd(a), leafd(b), true, true).value(), {2, 2}, {23, 31, 34, 46});
}

TEST(OpsGradcheck, Matmul) {
  const int64_t m = 3, k = 4, n = 5;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(fmt::format("trans_a={} trans_b={}", ta, tb));
      auto rs = test_stream(10 + 2 * ta + tb);
      TensorD a = randn(rs, ta ? Shape{k, m} : Shape{m, k});
      TensorD b = randn(rs, tb ? Shape{n, k} : Shape{k, n});
      auto out = O::matmul(leafd(a), leafd(b), ta, tb);
      EXPECT_EQ(out.shape(), (Shape{m, n}));
      expect_values(out.value(), {m, n}, naive_mm(a.data(), b.data(), m, k, n, ta, tb), 1e-12);
      EXPECT_TRUE(check_agg([=](const auto& v) { return O::matmul(v[0], v[1], ta, tb); }, {a, b}));
      // Square operands: a transposition slip in backward cannot hide behind a shape error.
      TensorD sa = randn(rs, {3, 3}), sb = randn(rs, {3, 3});
      expect_values(O::matmul(leafd(sa), leafd(sb), ta, tb).value(), {3, 3},
                    naive_mm(sa.data(), sb.data(), 3, 3, 3, ta, tb), 1e-12);
      EXPECT_TRUE(check_agg([=](const auto& v) { return O::matmul(v[0], v[1], ta, tb); }, {sa, sb}));
    }
}

TEST(OpsGradcheck, Bmm) {
  const int64_t m = 2, k = 3, n = 4;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(fmt::format("trans_a={} trans_b={}", ta, tb));
      auto rs = test_stream(20 + 2 * ta + tb);
      TensorD a = randn(rs, ta ? Shape{2, 3, k, m} : Shape{2, 3, m, k});
      TensorD b = randn(rs, tb ? Shape{2, 3, n, k} : Shape{2, 3, k, n});
      auto out = O::bmm(leafd(a), leafd(b), ta, tb);
      ASSERT_EQ(out.shape(), (Shape{2, 3, m, n}));
      for (int64_t bi = 0; bi < 6; ++bi) {
        auto ref = naive_mm(a.data() + bi * m * k, b.data() + bi * k * n, m, k, n, ta, tb);
        for (int64_t e = 0; e < m * n; ++e) EXPECT_NEAR(out.value()[bi * m * n + e], ref[e], 1e-12);
      }
      EXPECT_TRUE(check_agg([=](const auto& v) { return O::bmm(v[0], v[1], ta, tb); }, {a, b}));
      TensorD sa = randn(rs, {2, 3, 3, 3}), sb = randn(rs, {2, 3, 3, 3});
      EXPECT_TRUE(check_agg([=](const auto& v) { return O::bmm(v[0], v[1], ta, tb); }, {sa, sb}));
    }
}

TEST(OpsGradcheck, Linear) {
  auto rs = test_stream(30);
  TensorD w = randn(rs, {4, 5});
  for (Shape xs : {Shape{2, 3, 4}, Shape{6, 4}}) {
    SCOPED_TRACE(shape_str(xs));
    TensorD x = randn(rs, xs);
    auto out = O::linear(leafd(x), leafd(w));
    Shape want = xs;
    want.back() = 5;
    ASSERT_EQ(out.shape(), want);
    auto ref = naive_mm(x.data(), w.data(), 6, 4, 5, false, false);
    expect_values(out.value(), want, ref, 1e-12);
    EXPECT_TRUE(check_agg([](const auto& v) { return O::linear(v[0], v[1]); }, {x, w}));
  }
}

// ---------------------------------------------------------------------------------------------
// Elementwise

TEST(OpsGradcheck, BinaryBroadcast) {
  for (Bin op : {Bin::Add, Bin::Sub, Bin::Mul, Bin::Div})
    for (auto& [sa, sb] : kBinShapes) {
      SCOPED_TRACE(fmt::format("{} {} {}", bin_name(op), shape_str(sa), shape_str(sb)));
      auto rs = test_stream(40 + int(op));
      TensorD a = randn(rs, sa);
      // Denominators kept away from 0 for div.
      TensorD b = op == Bin::Div ? away_from_zero(uniform(rs, sb, -2, 2), 0.5) : randn(rs, sb);
      auto out = apply_bin(op, leafd(a), leafd(b));
      const Shape& big = sa.size() >= sb.size() ? sa : sb;
      ASSERT_EQ(out.shape(), big);
      for (int64_t i = 0; i < out.value().numel(); ++i)
        ASSERT_NEAR(out.value()[i], ref_bin(op, a[i % a.numel()], b[i % b.numel()]), 1e-12)
            << "at " << index_str(big, i);
      EXPECT_TRUE(check_agg([op](const auto& v) { return apply_bin(op, v[0], v[1]); }, {a, b}));
    }
}

TEST(OpsGradcheck, BinaryBroadcastUnitLeadingDim) {
  // Equal element counts, different ranks: [4] is a suffix of [1, 4], so both orders give [1, 4].
  for (Bin op : {Bin::Add, Bin::Sub, Bin::Mul, Bin::Div})
    for (auto& [sa, sb] : std::vector<std::pair<Shape, Shape>>{{{1, 4}, {4}}, {{4}, {1, 4}}, {{2, 3}, {1, 2, 3}}}) {
      SCOPED_TRACE(fmt::format("{} {} {}", bin_name(op), shape_str(sa), shape_str(sb)));
      auto rs = test_stream(44);
      TensorD a = away_from_zero(randn(rs, sa), 0.5), b = away_from_zero(randn(rs, sb), 0.5);
      VarD out;
      try {
        out = apply_bin(op, leafd(a), leafd(b));
      } catch (const Error& e) {
        ADD_FAILURE() << "threw: " << e.what();
        continue;
      }
      EXPECT_EQ(out.shape(), sa.size() > sb.size() ? sa : sb);
      EXPECT_TRUE(check_agg([op](const auto& v) { return apply_bin(op, v[0], v[1]); }, {a, b}));
    }
}

TEST(OpsGradcheck, BinarySameOperandBothSides) {
  // x op x: both slots alias one node, gradients must add.
  auto rs = test_stream(45);
  TensorD x = away_from_zero(randn(rs, {3, 4}), 0.5);
  for (Bin op : {Bin::Add, Bin::Sub, Bin::Mul, Bin::Div}) {
    SCOPED_TRACE(bin_name(op));
    EXPECT_TRUE(check_agg([op](const auto& v) { return apply_bin(op, v[0], v[0]); }, {x}));
  }
}

TEST(OpsGradcheck, BinaryShapeMismatchThrows) {
  auto a = leafd(TensorD({2, 3}), true), b = leafd(TensorD({2}), true);
  EXPECT_THROW(O::add(a, b), Error);
  EXPECT_THROW(O::mul(b, a), Error);
  EXPECT_THROW(O::matmul(leafd(TensorD({2, 3})), leafd(TensorD({2, 3}))), Error);
  EXPECT_THROW(O::bmm(leafd(TensorD({2, 3, 2, 2})), leafd(TensorD({3, 2, 2, 2}))), Error);
  EXPECT_THROW(O::bmm(leafd(TensorD({2, 2, 2})), leafd(TensorD({2, 2}))), Error);
  EXPECT_THROW(O::linear(leafd(TensorD({2, 3})), leafd(TensorD({4, 3}))), Error);
  EXPECT_THROW(O::masked_softmax(leafd(TensorD({2, 3, 3})), leafd(TensorD({2, 3}))), Error);
  EXPECT_THROW(O::masked_softmax(leafd(TensorD({2, 3, 3})), VarD(), std::vector<uint8_t>(6, 1), {2, 3}), Error);
}

TEST(OpsGradcheck, ScaleAndAddScalar) {
  auto rs = test_stream(50);
  TensorD x = randn(rs, {3, 4});
  auto s = O::scale(leafd(x), -2.5), t = O::add_scalar(leafd(x), 0.7);
  for (int64_t i = 0; i < x.numel(); ++i) {
    EXPECT_DOUBLE_EQ(s.value()[i], -2.5 * x[i]);
    EXPECT_DOUBLE_EQ(t.value()[i], x[i] + 0.7);
  }
  EXPECT_TRUE(check_agg([](const auto& v) { return O::scale(v[0], -2.5); }, {x}));
  EXPECT_TRUE(check_agg([](const auto& v) { return O::add_scalar(v[0], 0.7); }, {x}));
}

TEST(OpsGradcheck, Square) {
  auto rs = test_stream(51);
  TensorD x = randn(rs, {3, 4});
  auto y = O::square(leafd(x));
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_DOUBLE_EQ(y.value()[i], x[i] * x[i]);
  EXPECT_TRUE(check_agg([](const auto& v) { return O::square(v[0]); }, {x}));
}

TEST(OpsGradcheck, Exp) {
  auto rs = test_stream(52);
  TensorD x = randn(rs, {3, 4});
  auto y = O::exp(leafd(x));
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_NEAR(y.value()[i], std::exp(x[i]), 1e-14 * std::exp(x[i]));
  EXPECT_TRUE(check_agg([](const auto& v) { return O::exp(v[0]); }, {x}));
}

TEST(OpsGradcheck, Log) {
  auto rs = test_stream(53);
  TensorD x = uniform(rs, {3, 4}, 0.2, 3.0);
  auto y = O::log(leafd(x));
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_NEAR(y.value()[i], std::log(x[i]), 1e-14);
  EXPECT_TRUE(check_agg([](const auto& v) { return O::log(v[0]); }, {x}));
}

TEST(OpsGradcheck, Relu) {
  auto rs = test_stream(54);
  TensorD x = away_from_zero(randn(rs, {4, 5}), 1e-2);  // off the kink
  auto y = O::relu(leafd(x));
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(y.value()[i], x[i] > 0 ? x[i] : 0.0);
  EXPECT_TRUE(check_agg([](const auto& v) { return O::relu(v[0]); }, {x}));
}

TEST(OpsGradcheck, Gelu) {
  TensorD p({4}, {1, -1, 0.5, 2});
  expect_values(O::gelu(leafd(p)).value(), {4},
                {0.8413447460685429, -0.15865525393145707, 0.34573123063700656, 1.9544997361036416}, 1e-12);
  auto rs = test_stream(55);
  TensorD x = randn(rs, {3, 5}, 2.0);
  auto y = O::gelu(leafd(x));
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_NEAR(y.value()[i], gelu_ref(x[i]), 1e-12);
  EXPECT_TRUE(check_agg([](const auto& v) { return O::gelu(v[0]); }, {x}));
}

// ---------------------------------------------------------------------------------------------
// Shape

TEST(OpsGradcheck, Reshape) {
  auto rs = test_stream(60);
  TensorD x = randn(rs, {2, 3, 4});
  for (Shape s : {Shape{4, 6}, Shape{24}, Shape{2, 12}, Shape{1, 2, 3, 4}}) {
    SCOPED_TRACE(shape_str(s));
    auto y = O::reshape(leafd(x), s);
    expect_values(y.value(), s, to_vec(x), 0);
    EXPECT_TRUE(check_agg([s](const auto& v) { return O::reshape(v[0], s); }, {x}));
  }
  EXPECT_THROW(O::reshape(leafd(x), Shape{5, 5}), Error);
}

TEST(OpsGradcheck, TransposeLast2) {
  auto rs = test_stream(61);
  for (Shape s : {Shape{2, 3, 4}, Shape{3, 5}}) {
    SCOPED_TRACE(shape_str(s));
    TensorD x = randn(rs, s);
    auto y = O::transpose_last2(leafd(x));
    int64_t m = s[s.size() - 2], n = s.back(), batch = x.numel() / (m * n);
    Shape ts = s;
    std::swap(ts[ts.size() - 1], ts[ts.size() - 2]);
    ASSERT_EQ(y.shape(), ts);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) EXPECT_EQ(y.value()[b * m * n + j * m + i], x[b * m * n + i * n + j]);
    EXPECT_TRUE(check_agg([](const auto& v) { return O::transpose_last2(v[0]); }, {x}));
  }
}

TEST(OpsGradcheck, ConcatLast) {
  auto rs = test_stream(62);
  TensorD p0 = randn(rs, {2, 3, 1}), p1 = randn(rs, {2, 3, 4}), p2 = randn(rs, {2, 3, 2});
  auto y = O::concat_last<double>({leafd(p0), leafd(p1), leafd(p2)});
  ASSERT_EQ(y.shape(), (Shape{2, 3, 7}));
  for (int64_t r = 0; r < 6; ++r) {
    EXPECT_EQ(y.value()[r * 7 + 0], p0[r]);
    for (int j = 0; j < 4; ++j) EXPECT_EQ(y.value()[r * 7 + 1 + j], p1[r * 4 + j]);
    for (int j = 0; j < 2; ++j) EXPECT_EQ(y.value()[r * 7 + 5 + j], p2[r * 2 + j]);
  }
  auto f = [](const auto& v) { return O::concat_last<double>({v[0], v[1], v[2]}); };
  EXPECT_TRUE(check_agg(f, {p0, p1, p2}));
  Options frozen_middle;
  frozen_middle.wrt = {true, false, true};
  EXPECT_TRUE(check_agg(f, {p0, p1, p2}, frozen_middle));
}

// ---------------------------------------------------------------------------------------------
// Reductions

TEST(OpsGradcheck, SumAndMean) {
  auto rs = test_stream(70);
  TensorD x = randn(rs, {2, 3, 4});
  double s = 0;
  for (int64_t i = 0; i < x.numel(); ++i) s += x[i];
  auto ys = O::sum(leafd(x)), ym = O::mean(leafd(x));
  EXPECT_EQ(ys.value().numel(), 1);
  EXPECT_NEAR(ys.item(), s, 1e-12);
  EXPECT_NEAR(ym.item(), s / 24, 1e-12);
  EXPECT_TRUE(gradcheck([](const auto& v) { return O::sum(v[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](const auto& v) { return O::mean(v[0]); }, {x}));
  // Through a non-linear map, so the gradient is not a constant.
  EXPECT_TRUE(gradcheck([](const auto& v) { return O::sum(O::square(v[0])); }, {x}));
  EXPECT_TRUE(gradcheck([](const auto& v) { return O::mean(O::square(v[0])); }, {x}));
}

TEST(OpsGradcheck, SumLast) {
  auto rs = test_stream(71);
  TensorD x = randn(rs, {2, 3, 4});
  auto y = O::sum_last(leafd(x));
  ASSERT_EQ(y.shape(), (Shape{2, 3}));
  for (int64_t r = 0; r < 6; ++r)
    EXPECT_NEAR(y.value()[r], x[4 * r] + x[4 * r + 1] + x[4 * r + 2] + x[4 * r + 3], 1e-12);
  EXPECT_TRUE(check_agg([](const auto& v) { return O::sum_last(v[0]); }, {x}));
  TensorD x1 = randn(rs, {5});
  auto y1 = O::sum_last(leafd(x1));
  EXPECT_EQ(y1.value().numel(), 1);
  EXPECT_TRUE(check_agg([](const auto& v) { return O::sum_last(v[0]); }, {x1}));
}

// ---------------------------------------------------------------------------------------------
// Attention

TEST(OpsForward, SoftmaxRow) {
  TensorD x({1, 3}, {1, 2, 3});
  expect_values(O::masked_softmax(leafd(x), VarD()).value(), {1, 3},
                {0.09003057317038046, 0.24472847105479767, 0.6652409557748219}, 1e-14);
  // Shift invariance and a masked middle entry.
  TensorD x2({1, 3}, {101, 102, 103});
  expect_values(O::masked_softmax(leafd(x2), VarD(), {1, 0, 1}, {1, 3}).value(), {1, 3},
                {0.11920292202211757, 0.0, 0.8807970779778825}, 1e-14);
  // Large logits stay finite.
  TensorD x3({1, 3}, {1000, 0, -1000});
  auto y3 = O::masked_softmax(leafd(x3), VarD()).value();
  EXPECT_NEAR(y3[0], 1.0, 1e-15);
  EXPECT_EQ(y3[2], 0.0);
}

TEST(OpsGradcheck, MaskedSoftmaxPlain) {
  auto rs = test_stream(80);
  TensorD x = randn(rs, {2, 3, 5});
  auto y = O::masked_softmax(leafd(x), VarD());
  expect_values(y.value(), {2, 3, 5}, ref_masked_softmax(x, nullptr, {}), 1e-14);
  EXPECT_TRUE(check_agg([](const auto& v) { return O::masked_softmax(v[0], VarD()); }, {x}));
  EXPECT_TRUE(gradcheck([](const auto& v) { return sum_log_plus(O::masked_softmax(v[0], VarD()), 0.1); }, {x}));
}

// logits [B=2, H=2, L=4, L=4]; bias [H, L, L]; mask [L, L] with row 2 fully masked.
const std::vector<uint8_t> kMask44 = {1, 0, 0, 0,  //
                                      1, 1, 0, 0,  //
                                      0, 0, 0, 0,  //
                                      1, 0, 1, 1};

TEST(OpsGradcheck, MaskedSoftmaxBiasAndMask) {
  auto rs = test_stream(81);
  TensorD x = randn(rs, {2, 2, 4, 4}), bias = randn(rs, {2, 4, 4});
  const Shape ms{4, 4};
  auto y = O::masked_softmax(leafd(x), leafd(bias), kMask44, ms);
  ASSERT_EQ(y.shape(), x.shape());
  expect_values(y.value(), x.shape(), ref_masked_softmax(x, &bias, kMask44), 1e-14);
  for (int64_t r = 0; r < 16; ++r) {
    double s = 0;
    for (int j = 0; j < 4; ++j) {
      double v = y.value()[r * 4 + j];
      if (!kMask44[(r % 4) * 4 + j]) {
        EXPECT_EQ(v, 0.0) << "masked entry row " << r << " col " << j;
      }
      s += v;
    }
    if (r % 4 == 2) {
      EXPECT_EQ(s, 0.0) << "fully masked row " << r;
    } else {
      EXPECT_NEAR(s, 1.0, 1e-14);
    }
  }

  auto f = [&](const auto& v) { return O::masked_softmax(v[0], v[1], kMask44, ms); };
  EXPECT_TRUE(check_agg(f, {x, bias}));
  EXPECT_TRUE(gradcheck([&](const auto& v) { return sum_log_plus(f(v), 0.1); }, {x, bias}));

  // The fully masked row: gradient finite and exactly zero.
  auto lx = leafd(x), lb = leafd(bias);
  RandomStream rr(3, StreamKind::Test);
  backward(weighted_sum(O::masked_softmax(lx, lb, kMask44, ms), randn(rr, x.shape())));
  ASSERT_TRUE(lx.has_grad());
  for (int64_t i = 0; i < x.numel(); ++i) {
    ASSERT_TRUE(std::isfinite(lx.grad()[i])) << index_str(x.shape(), i);
    if ((i / 4) % 4 == 2 || !kMask44[i % 16]) {
      EXPECT_EQ(lx.grad()[i], 0.0) << index_str(x.shape(), i);
    }
  }
  for (int64_t i = 0; i < bias.numel(); ++i) ASSERT_TRUE(std::isfinite(lb.grad()[i]));
}

TEST(OpsGradcheck, MaskedSoftmaxSmallBiasLargeMask) {
  // bias [L, L], mask [H, L, L]: each a different suffix of logits [B, H, L, L].
  auto rs = test_stream(82);
  TensorD x = randn(rs, {2, 2, 3, 3}), bias = randn(rs, {3, 3});
  std::vector<uint8_t> mask = {1, 1, 1, 0, 1, 1, 0, 0, 1,   // head 0
                               0, 0, 0, 1, 0, 1, 1, 1, 0};  // head 1 (row 0 empty)
  auto y = O::masked_softmax(leafd(x), leafd(bias), mask, {2, 3, 3});
  expect_values(y.value(), x.shape(), ref_masked_softmax(x, &bias, mask), 1e-14);
  EXPECT_TRUE(check_agg([&](const auto& v) { return O::masked_softmax(v[0], v[1], mask, {2, 3, 3}); }, {x, bias}));
  Options only_bias;
  only_bias.wrt = {false, true};
  EXPECT_TRUE(check_agg(
      [&](const auto& v) {
        return O::masked_softmax(v[0], v[1], mask, {2, 3, 3});
      },
      {x, bias}, only_bias));
}

TEST(OpsForward, BandMask) {
  for (auto [L, lo, hi] : {std::tuple<int64_t, int64_t, int64_t>{5, 0, 2}, {4, 1, 1}, {4, 0, 3}, {3, 1, 2}}) {
    auto m = O::band_mask(L, lo, hi);
    ASSERT_EQ(int64_t(m.size()), L * L);
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = 0; j < L; ++j)
        EXPECT_EQ(m[i * L + j] != 0, lo <= i - j && i - j <= hi) << "L=" << L << " i=" << i << " j=" << j;
  }
}

TEST(OpsGradcheck, RelativeBias) {
  const int64_t H = 2, K = 3, L = 5;
  auto rs = test_stream(90);
  TensorD w = randn(rs, {H, K});
  auto y = O::relative_bias(leafd(w), L);
  ASSERT_EQ(y.shape(), (Shape{H, L, L}));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = 0; j < L; ++j) {
        int64_t d = i - j;
        EXPECT_EQ(y.value()[(h * L + i) * L + j], (0 <= d && d < K) ? w[h * K + d] : 0.0)
            << "h=" << h << " i=" << i << " j=" << j;
      }
  EXPECT_TRUE(check_agg([&](const auto& v) { return O::relative_bias(v[0], L); }, {w}));

  // As the bias of a banded causal softmax.
  TensorD x = randn(rs, {2, H, L, L});
  auto band = O::band_mask(L, 0, K - 1);
  auto f = [&](const auto& v) { return O::masked_softmax(v[0], O::relative_bias(v[1], L), band, {L, L}); };
  EXPECT_TRUE(check_agg(f, {x, w}));
  EXPECT_TRUE(gradcheck([&](const auto& v) { return sum_log_plus(f(v), 0.1); }, {x, w}));
  // Strictly causal band: row 0 has no valid key.
  auto strict = O::band_mask(L, 1, K);
  auto g = [&](const auto& v) { return O::masked_softmax(v[0], O::relative_bias(v[1], L), strict, {L, L}); };
  TensorD w2 = randn(rs, {H, K + 1});
  auto out = g(std::vector<VarD>{leafd(x), leafd(w2)});
  for (int64_t r = 0; r < 2 * H; ++r)
    for (int64_t j = 0; j < L; ++j) EXPECT_EQ(out.value()[r * L * L + j], 0.0);
  EXPECT_TRUE(check_agg(g, {x, w2}));
}

// ---------------------------------------------------------------------------------------------
// Normalization

TEST(OpsGradcheck, L2Normalize) {
  auto rs = test_stream(100);
  TensorD x = randn(rs, {3, 5});
  auto y = O::l2_normalize(leafd(x));
  for (int64_t r = 0; r < 3; ++r) {
    double n2 = 0;
    for (int j = 0; j < 5; ++j) n2 += x[r * 5 + j] * x[r * 5 + j];
    for (int j = 0; j < 5; ++j) EXPECT_NEAR(y.value()[r * 5 + j], x[r * 5 + j] / (std::sqrt(n2) + 1e-7), 1e-14);
  }
  TensorD p({1, 2}, {3, 4});
  expect_values(O::l2_normalize(leafd(p), 0.0).value(), {1, 2}, {0.6, 0.8}, 1e-15);
  EXPECT_TRUE(check_agg([](const auto& v) { return O::l2_normalize(v[0]); }, {x}));
  EXPECT_TRUE(check_agg([](const auto& v) { return O::l2_normalize(v[0], 0.1); }, {x}));
}

TEST(OpsGradcheck, L2NormalizeZeroRow) {
  auto rs = test_stream(101);
  TensorD x = randn(rs, {3, 4});
  for (int j = 0; j < 4; ++j) x[4 + j] = 0;
  auto lx = leafd(x);
  auto y = O::l2_normalize(lx);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(y.value()[4 + j], 0.0);
  RandomStream rr(4, StreamKind::Test);
  backward(weighted_sum(y, randn(rr, {3, 4})));
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_TRUE(std::isfinite(lx.grad()[i])) << index_str(x.shape(), i);
  // Other rows still check out; the zero row sits on the norm's kink and is left out of FD.
  Options opt;
  opt.skip = [](size_t, int64_t j) { return j / 4 == 1; };
  EXPECT_TRUE(check_agg([](const auto& v) { return O::l2_normalize(v[0]); }, {x}, opt));
  // With a large eps, x / (|x| + eps) is smooth enough at 0 for FD: the zero row's Jacobian is I / eps.
  EXPECT_TRUE(check_agg([](const auto& v) { return O::l2_normalize(v[0], 1.0); }, {x}));
}

TEST(OpsForward, LayerNormRow) {
  TensorD x({1, 4}, {1, 2, 3, 4});
  expect_values(O::layer_norm(leafd(x), VarD(), VarD()).value(), {1, 4},
                {-1.3416354199689269, -0.447211806656309, 0.447211806656309, 1.3416354199689269}, 1e-13);
  TensorD g({4}, {0.5, -1, 2, 1.5}), b({4}, {0.1, 0.2, -0.3, 0});
  expect_values(O::layer_norm(leafd(x), leafd(g), leafd(b)).value(), {1, 4},
                {-0.5708177099844635, 0.6472118066563091, 0.594423613312618, 2.01245312995339}, 1e-13);
  // A constant row normalizes to beta.
  TensorD c({1, 4}, {7, 7, 7, 7});
  expect_values(O::layer_norm(leafd(c), leafd(g), leafd(b)).value(), {1, 4}, {0.1, 0.2, -0.3, 0}, 1e-12);
}

TEST(OpsGradcheck, LayerNorm) {
  auto rs = test_stream(110);
  TensorD x = randn(rs, {2, 3, 6}, 1.5), g = randn(rs, {6}), b = randn(rs, {6});
  auto y = O::layer_norm(leafd(x), leafd(g), leafd(b));
  for (int64_t r = 0; r < 6; ++r) {
    double m = 0, v = 0;
    for (int j = 0; j < 6; ++j) m += x[r * 6 + j] / 6;
    for (int j = 0; j < 6; ++j) v += (x[r * 6 + j] - m) * (x[r * 6 + j] - m) / 6;
    for (int j = 0; j < 6; ++j)
      EXPECT_NEAR(y.value()[r * 6 + j], (x[r * 6 + j] - m) / std::sqrt(v + 1e-5) * g[j] + b[j], 1e-12);
  }
  EXPECT_TRUE(check_agg([](const auto& v) { return O::layer_norm(v[0], v[1], v[2]); }, {x, g, b}));
  EXPECT_TRUE(check_agg([](const auto& v) { return O::layer_norm(v[0], VarD(), VarD()); }, {x}));
  EXPECT_TRUE(check_agg([](const auto& v) { return O::layer_norm(v[0], v[1], VarD()); }, {x, g}));
  EXPECT_TRUE(check_agg([](const auto& v) { return O::layer_norm(v[0], VarD(), v[1]); }, {x, b}));
  EXPECT_TRUE(gradcheck([](const auto& v) { return sum_log_plus(O::square(O::layer_norm(v[0], v[1], v[2])), 0.1); },
                        {x, g, b}));
}

// ---------------------------------------------------------------------------------------------
// Embeddings and losses

TEST(OpsGradcheck, Embedding) {
  const int64_t V = 5, D = 3;
  auto rs = test_stream(120);
  TensorD table = randn(rs, {V, D});
  const std::vector<int32_t> ids = {1, 4, 1, 0, 1, 4};
  const Shape is{2, 3};
  auto lt = leafd(table);
  auto y = O::embedding(lt, ids, is);
  ASSERT_EQ(y.shape(), (Shape{2, 3, D}));
  for (size_t p = 0; p < ids.size(); ++p)
    for (int64_t d = 0; d < D; ++d) EXPECT_EQ(y.value()[p * D + d], table[ids[p] * D + d]);

  // Repeated ids accumulate; unused rows get zero.
  RandomStream rr(5, StreamKind::Test);
  TensorD R = randn(rr, {2, 3, D});
  backward(weighted_sum(y, R));
  std::vector<double> want(V * D, 0.0);
  for (size_t p = 0; p < ids.size(); ++p)
    for (int64_t d = 0; d < D; ++d) want[ids[p] * D + d] += R[p * D + d];
  expect_values(lt.grad(), {V, D}, want, 1e-14);

  EXPECT_TRUE(check_agg([&](const auto& v) { return O::embedding(v[0], ids, is); }, {table}));
}

TEST(OpsForward, OneHot) {
  auto t = O::one_hot<double>({2, -1, 0}, {3}, 4);
  expect_values(t, {3, 4}, {0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0}, 0);
}

TEST(OpsForward, CrossEntropy) {
  TensorD x({2, 3}, {1, 2, 3, 0, 0, 0});
  EXPECT_NEAR(O::cross_entropy(leafd(x), {2, 0}).item(), 0.7531091265562451, 1e-14);
  // An ignored row changes neither the sum nor the count.
  TensorD x3({3, 3}, {1, 2, 3, 5, -4, 9, 0, 0, 0});
  EXPECT_NEAR(O::cross_entropy(leafd(x3), {2, -1, 0}).item(), 0.7531091265562451, 1e-14);
  // Large logits: stable log-sum-exp.
  TensorD big({2, 3}, {1000, 0, -1000, 0, 1000, 0});
  EXPECT_NEAR(O::cross_entropy(leafd(big), {0, 0}).item(), 500.0, 1e-9);
}

TEST(OpsGradcheck, CrossEntropy) {
  auto rs = test_stream(130);
  TensorD x = randn(rs, {4, 5}, 2.0);
  const std::vector<int32_t> t = {2, -1, 0, 4};
  double ref = 0;
  for (int r : {0, 2, 3}) {
    double mx = -HUGE_VAL, s = 0;
    for (int j = 0; j < 5; ++j) mx = std::max(mx, x[r * 5 + j]);
    for (int j = 0; j < 5; ++j) s += std::exp(x[r * 5 + j] - mx);
    ref += -(x[r * 5 + t[r]] - mx - std::log(s));
  }
  EXPECT_NEAR(O::cross_entropy(leafd(x), t).item(), ref / 3, 1e-13);
  EXPECT_TRUE(gradcheck([&](const auto& v) { return O::cross_entropy(v[0], t); }, {x}));

  // Leading dims flattened: [2, 3, 5] with six targets.
  TensorD x3 = randn(rs, {2, 3, 5});
  const std::vector<int32_t> t3 = {0, 4, -1, 3, -1, 1};
  EXPECT_TRUE(gradcheck([&](const auto& v) { return O::cross_entropy(v[0], t3); }, {x3}));

  // The ignored row gets no gradient.
  auto lx = leafd(x);
  backward(O::cross_entropy(lx, t));
  for (int j = 0; j < 5; ++j) EXPECT_EQ(lx.grad()[5 + j], 0.0);
}

TEST(OpsGradcheck, NllProb) {
  auto rs = test_stream(140);
  const std::vector<int32_t> t = {1, -1, 3};
  // Valid probabilities from a softmax.
  TensorD x = randn(rs, {3, 4});
  EXPECT_TRUE(gradcheck([&](const auto& v) { return O::nll_prob(O::masked_softmax(v[0], VarD()), t); }, {x}));
  // Directly on positive probabilities.
  TensorD p = uniform(rs, {3, 4}, 0.1, 1.0);
  double ref = (-std::log(p[1] + 1e-12) - std::log(p[11] + 1e-12)) / 2;
  EXPECT_NEAR(O::nll_prob(leafd(p), t).item(), ref, 1e-14);
  EXPECT_TRUE(gradcheck([&](const auto& v) { return O::nll_prob(v[0], t); }, {p}));
  EXPECT_TRUE(gradcheck([&](const auto& v) { return O::nll_prob(v[0], t, 0.05); }, {p}));
  // A zero probability stays finite thanks to the guard.
  TensorD z({1, 2}, {0.0, 1.0});
  auto lz = leafd(z);
  auto l = O::nll_prob(lz, {0});
  EXPECT_NEAR(l.item(), -std::log(1e-12), 1e-9);
  backward(l);
  EXPECT_TRUE(std::isfinite(lz.grad()[0]));
}

TEST(OpsGradcheck, Mse) {
  auto rs = test_stream(150);
  TensorD a = randn(rs, {3, 4}), b = randn(rs, {3, 4});
  double ref = 0;
  for (int64_t i = 0; i < 12; ++i) ref += (a[i] - b[i]) * (a[i] - b[i]) / 12;
  EXPECT_NEAR(O::mse(leafd(a), b).item(), ref, 1e-14);
  EXPECT_TRUE(gradcheck([&](const auto& v) { return O::mse(v[0], b); }, {a}));
}

// ---------------------------------------------------------------------------------------------
// float32 vs float64, one test per op family.

TEST(OpsF32VsF64, Matmul) {
  auto rs = test_stream(200);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(fmt::format("trans_a={} trans_b={}", ta, tb));
      TensorD a = randn(rs, ta ? Shape{6, 5} : Shape{5, 6}), b = randn(rs, tb ? Shape{7, 6} : Shape{6, 7});
      EXPECT_TRUE(f32_matches_f64(
          [=]<typename T>(const std::vector<Var<T>>& v) { return O::matmul(v[0], v[1], ta, tb); }, {a, b}));
      TensorD ba = randn(rs, ta ? Shape{2, 3, 6, 5} : Shape{2, 3, 5, 6});
      TensorD bb = randn(rs, tb ? Shape{2, 3, 7, 6} : Shape{2, 3, 6, 7});
      EXPECT_TRUE(f32_matches_f64([=]<typename T>(const std::vector<Var<T>>& v) { return O::bmm(v[0], v[1], ta, tb); },
                                  {ba, bb}));
    }
  TensorD x = randn(rs, {2, 3, 6}), w = randn(rs, {6, 4});
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::linear(v[0], v[1]); }, {x, w}));
}

TEST(OpsF32VsF64, Elementwise) {
  auto rs = test_stream(210);
  for (Bin op : {Bin::Add, Bin::Sub, Bin::Mul, Bin::Div})
    for (auto& [sa, sb] : kBinShapes) {
      SCOPED_TRACE(fmt::format("{} {} {}", bin_name(op), shape_str(sa), shape_str(sb)));
      // Positive operands: no cancellation, so elementwise agreement is a fair ask.
      TensorD a = uniform(rs, sa, 0.5, 2), b = uniform(rs, sb, 0.5, 2);
      EXPECT_TRUE(f32_matches_f64([op]<typename T>(const std::vector<Var<T>>& v) { return apply_bin(op, v[0], v[1]); },
                                  {a, b}));
    }
  TensorD x = randn(rs, {3, 4}), pos = uniform(rs, {3, 4}, 0.2, 3);
  x = away_from_zero(x, 1e-2);
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::scale(v[0], -2.5); }, {x}));
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::add_scalar(v[0], 0.7); }, {x}));
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::square(v[0]); }, {x}));
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::exp(v[0]); }, {x}));
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::log(v[0]); }, {pos}));
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::relu(v[0]); }, {x}));
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::gelu(v[0]); }, {x}));
}

TEST(OpsF32VsF64, Shape) {
  auto rs = test_stream(220);
  TensorD x = randn(rs, {2, 3, 4}), y = randn(rs, {2, 3, 2});
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::reshape(v[0], {6, 4}); }, {x}));
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::transpose_last2(v[0]); }, {x}));
  EXPECT_TRUE(f32_matches_f64(
      []<typename T>(const std::vector<Var<T>>& v) {
        return O::concat_last<T>({v[0], v[1]});
      },
      {x, y}));
}

TEST(OpsF32VsF64, Reduce) {
  auto rs = test_stream(230);
  TensorD x = uniform(rs, {2, 3, 4}, 0.5, 1.5);
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::sum(v[0]); }, {x}));
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::mean(v[0]); }, {x}));
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::sum_last(v[0]); }, {x}));
}

TEST(OpsF32VsF64, Attention) {
  auto rs = test_stream(240);
  TensorD x = randn(rs, {2, 2, 4, 4}), bias = randn(rs, {2, 4, 4}), w = randn(rs, {2, 3});
  EXPECT_TRUE(f32_matches_f64(
      []<typename T>(const std::vector<Var<T>>& v) {
        return O::masked_softmax(v[0], v[1], kMask44, {4, 4});
      },
      {x, bias}));
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::relative_bias(v[0], 4); }, {w}));
  auto band = O::band_mask(4, 0, 2);
  EXPECT_TRUE(f32_matches_f64(
      [&]<typename T>(const std::vector<Var<T>>& v) {
        return O::masked_softmax(v[0], O::relative_bias(v[1], 4), band, {4, 4});
      },
      {x, w}));
}

TEST(OpsF32VsF64, Norm) {
  auto rs = test_stream(250);
  TensorD x = randn(rs, {3, 6}), g = randn(rs, {6}), b = randn(rs, {6});
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::l2_normalize(v[0]); }, {x}));
  EXPECT_TRUE(f32_matches_f64([]<typename T>(const std::vector<Var<T>>& v) { return O::layer_norm(v[0], v[1], v[2]); },
                              {x, g, b}));
  EXPECT_TRUE(f32_matches_f64(
      []<typename T>(const std::vector<Var<T>>& v) { return O::layer_norm(v[0], Var<T>(), Var<T>()); }, {x}));
}

TEST(OpsF32VsF64, Loss) {
  auto rs = test_stream(260);
  TensorD table = randn(rs, {5, 3}), logits = randn(rs, {4, 5}), p = uniform(rs, {4, 5}, 0.1, 1), a = randn(rs, {3, 4}),
          b = randn(rs, {3, 4});
  b = round_to_float(b);
  const std::vector<int32_t> ids = {1, 4, 1, 0}, t = {2, -1, 0, 4};
  EXPECT_TRUE(f32_matches_f64(
      [&]<typename T>(const std::vector<Var<T>>& v) {
        return O::embedding(v[0], ids, {2, 2});
      },
      {table}));
  EXPECT_TRUE(
      f32_matches_f64([&]<typename T>(const std::vector<Var<T>>& v) { return O::cross_entropy(v[0], t); }, {logits}));
  EXPECT_TRUE(f32_matches_f64([&]<typename T>(const std::vector<Var<T>>& v) { return O::nll_prob(v[0], t); }, {p}));
  EXPECT_TRUE(f32_matches_f64(
      [&]<typename T>(const std::vector<Var<T>>& v) { return O::mse(v[0], b.template cast<T>()); }, {a}));
}

// ---------------------------------------------------------------------------------------------
// Thread-count invariance (parallel.h promises bit-identical results for 1 or N threads), on sizes
// large enough to take the parallel paths.

template <typename F>
std::vector<std::vector<double>> run_with_threads(int threads, F f, const std::vector<TensorD>& in) {
  int saved = num_threads();
  set_threads(threads);
  std::vector<VarD> vs;
  for (auto& t : in) vs.push_back(leafd(t));
  VarD y = f(vs);
  RandomStream rr(9, StreamKind::Test);
  backward(y.value().numel() == 1 ? y : weighted_sum(y, randn(rr, y.shape())));
  std::vector<std::vector<double>> res{to_vec(y.value())};
  for (auto& v : vs) res.push_back(v.has_grad() ? to_vec(v.grad()) : std::vector<double>{});
  set_threads(saved);
  return res;
}

TEST(OpsThreads, BitIdenticalForAnyThreadCount) {
  auto rs = test_stream(400);
  TensorD a = randn(rs, {8, 4, 16, 16}), b = randn(rs, {8, 4, 16, 16});
  TensorD big = randn(rs, {40000}), big2 = randn(rs, {5000, 8}), row = randn(rs, {8});
  TensorD lg = randn(rs, {4096, 8});
  std::vector<int32_t> tg(4096);
  for (size_t i = 0; i < tg.size(); ++i) tg[i] = i % 7 == 0 ? -1 : int32_t(i % 8);
  auto same = [&](auto f, const std::vector<TensorD>& in, const char* what) {
    auto r1 = run_with_threads(1, f, in), r4 = run_with_threads(4, f, in);
    ASSERT_EQ(r1.size(), r4.size());
    for (size_t i = 0; i < r1.size(); ++i) {
      ASSERT_EQ(r1[i].size(), r4[i].size()) << what;
      EXPECT_EQ(0, std::memcmp(r1[i].data(), r4[i].data(), r1[i].size() * sizeof(double)))
          << what << ": result " << i << " differs between 1 and 4 threads";
    }
  };
  same([](const auto& v) { return O::bmm(v[0], v[1], false, true); }, {a, b}, "bmm");
  same([](const auto& v) { return O::mul(v[0], O::exp(v[0])); }, {big}, "mul/exp");
  same([](const auto& v) { return O::add(v[0], v[1]); }, {big2, row}, "add broadcast");
  same([](const auto& v) { return O::masked_softmax(v[0], v[1]); }, {big2, row}, "masked_softmax");
  same([](const auto& v) { return O::layer_norm(v[0], v[1], VarD()); }, {big2, row}, "layer_norm");
  same([](const auto& v) { return O::l2_normalize(v[0]); }, {big2}, "l2_normalize");
  same([](const auto& v) { return O::sum_last(v[0]); }, {big2}, "sum_last");
  same([](const auto& v) { return O::sum(O::square(v[0])); }, {big}, "sum");
  same([&](const auto& v) { return O::cross_entropy(v[0], tg); }, {lg}, "cross_entropy");
}

// ---------------------------------------------------------------------------------------------
// Autograd: shared subexpressions accumulate, frozen leaves get nothing.

TEST(Autograd, SharedSubexpressionAccumulates) {
  auto rs = test_stream(300);
  TensorD xv = randn(rs, {5});
  auto x = leafd(xv);
  // L = sum(x*x + 3x) + sum(exp(x)): x feeds four uses.
  auto L = O::add(O::sum(O::add(O::mul(x, x), O::scale(x, 3.0))), O::sum(O::exp(x)));
  backward(L);
  for (int64_t i = 0; i < 5; ++i) EXPECT_NEAR(x.grad()[i], 2 * xv[i] + 3 + std::exp(xv[i]), 1e-12);
  // A diamond: y = exp(x) used by two branches that rejoin.
  EXPECT_TRUE(gradcheck(
      [](const auto& v) {
        auto y = O::exp(v[0]);
        return O::sum(O::mul(O::square(y), O::add_scalar(y, 1.0)));
      },
      {xv}));
}

TEST(Autograd, LeafGradientsAccumulateAcrossBackwardCalls) {
  auto rs = test_stream(301);
  TensorD xv = randn(rs, {4});
  auto x = leafd(xv);
  backward(O::sum(O::square(x)));
  backward(O::sum(O::scale(x, 2.0)));
  for (int64_t i = 0; i < 4; ++i) EXPECT_NEAR(x.grad()[i], 2 * xv[i] + 2, 1e-12);
}

TEST(Autograd, FrozenLeafGetsNoGradient) {
  auto rs = test_stream(302);
  TensorD xv = randn(rs, {3, 4}), wv = randn(rs, {4, 2});
  auto x = leafd(xv, true), w = leafd(wv, false);
  auto L = O::sum(O::matmul(x, w));
  ASSERT_TRUE(L.requires_grad());
  backward(L);
  EXPECT_FALSE(w.has_grad());
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t k = 0; k < 4; ++k) EXPECT_NEAR(x.grad()[i * 4 + k], wv[k * 2] + wv[k * 2 + 1], 1e-12);

  // Everything frozen: no closure is built and backward does nothing.
  auto x2 = leafd(xv, false);
  auto L2 = O::sum(O::matmul(x2, w));
  EXPECT_FALSE(L2.requires_grad());
  EXPECT_TRUE(L2.node()->parents.empty());
  backward(L2);
  EXPECT_FALSE(x2.has_grad());
  EXPECT_FALSE(w.has_grad());

  // Frozen inputs across the op families: embedding table, layer-norm gamma, softmax bias.
  auto table = leafd(randn(rs, {5, 4}), false);
  auto gamma = leafd(randn(rs, {4}), false);
  auto bias = leafd(randn(rs, {3, 3}), false);
  auto logits = leafd(randn(rs, {2, 3, 3}), true);
  auto L3 = O::add(O::sum(O::square(O::layer_norm(O::add(x, O::embedding(table, {1, 2, 1}, {3})), gamma, VarD()))),
                   O::sum(O::square(O::masked_softmax(logits, bias))));
  backward(L3);
  EXPECT_FALSE(table.has_grad());
  EXPECT_FALSE(gamma.has_grad());
  EXPECT_FALSE(bias.has_grad());
  EXPECT_TRUE(x.has_grad());
  EXPECT_TRUE(logits.has_grad());
}

}  // namespace
}  // namespace ihlab
