// The ops the transformer added to core/ops.h: banded_attention (ops_mha.cpp), rotary
// (ops_rotary.cpp), norm_linear and linear_residual (ops_block.cpp). Forward values against naive
// loops written here from the definitions in ops.h, gradients against float64 central differences
// (through non-constant aggregates), float32 against float64, and 1 vs 2 threads bit-identical.
#include "core/ops.h"

#include "gradcheck.h"

#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <vector>

namespace ihlab {
namespace {

using namespace ihlab::gc;
namespace O = ihlab::ops;

template <typename F>
::testing::AssertionResult check_agg(F f, const std::vector<TensorD>& in, Options opt = {}, uint64_t seed = 7) {
  return gradcheck(aggregate(ScalarFn(f), seed), in, opt);
}

VarD leafd(const TensorD& t, bool rg = true) { return VarD::leaf(t.clone(), rg); }

void expect_close(const TensorD& got, const std::vector<double>& want, double tol, const char* what) {
  ASSERT_EQ(got.numel(), int64_t(want.size())) << what;
  double worst = 0;
  int64_t at = 0;
  for (int64_t i = 0; i < got.numel(); ++i)
    if (std::abs(got[i] - want[i]) > worst) worst = std::abs(got[i] - want[i]), at = i;
  EXPECT_LE(worst, tol) << what << ": max |diff| at " << index_str(got.shape(), at) << " (got " << got[at] << ", want "
                        << want[at] << ")";
}

// ---------------------------------------------------------------------------------------------
// banded_attention

struct AttnCase {
  int64_t B, L, H, dh, lo, hi;
  bool bias, drop;
};

// Naive loops over (b, h, i, j) from the definition: returns O [B, L, H*dh] and P [B, H, L, L].
std::pair<std::vector<double>, std::vector<double>> ref_attention(const TensorD& qkv, const TensorD* bias,
                                                                  const TensorD* drop, const AttnCase& c,
                                                                  double scale) {
  const int64_t HD = c.H * c.dh, S = 3 * HD, L = c.L;
  std::vector<double> O(c.B * L * HD, 0.0), P(c.B * c.H * L * L, 0.0);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h)
      for (int64_t i = 0; i < L; ++i) {
        std::vector<double> z(L, -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j < L; ++j) {
          if (i - j < c.lo || i - j > c.hi) continue;
          double s = 0;
          for (int64_t e = 0; e < c.dh; ++e)
            s += qkv[(b * L + i) * S + h * c.dh + e] * qkv[(b * L + j) * S + HD + h * c.dh + e];
          z[j] = scale * s + (bias ? (*bias)[(h * L + i) * L + j] : 0.0);
          mx = std::max(mx, z[j]);
        }
        if (mx == -INFINITY) continue;
        double tot = 0;
        for (int64_t j = 0; j < L; ++j) tot += std::isinf(z[j]) ? 0.0 : std::exp(z[j] - mx);
        for (int64_t j = 0; j < L; ++j) {
          const double p = std::isinf(z[j]) ? 0.0 : std::exp(z[j] - mx) / tot;
          const int64_t pi = ((b * c.H + h) * L + i) * L + j;
          P[pi] = p;
          const double pd = drop ? p * (*drop)[pi] : p;
          for (int64_t e = 0; e < c.dh; ++e)
            O[(b * L + i) * HD + h * c.dh + e] += pd * qkv[(b * L + j) * S + 2 * HD + h * c.dh + e];
        }
      }
  return {O, P};
}

// Dropout-like multipliers: 0 or 1 / 0.7.
TensorD make_drop(RandomStream& rs, const Shape& s) {
  TensorD d(s);
  for (int64_t i = 0; i < d.numel(); ++i) d[i] = rs.uniform() < 0.3 ? 0.0 : 1.0 / 0.7;
  return d;
}

const std::vector<AttnCase> kAttnCases = {
    {2, 5, 1, 4, 0, 4, true, false},    // causal with self, full, generic dh
    {2, 6, 2, 4, 1, 5, true, false},    // strictly causal: row 0 attends nowhere
    {1, 19, 1, 4, 0, 3, true, false},   // window of 4 offsets, L > one register of keys
    {2, 17, 2, 8, 1, 16, false, true},  // strict, no bias, dropout multipliers
    {1, 17, 1, 16, 0, 16, true, true},  // dh 16 (the Edelman model's)
    {1, 7, 3, 2, 0, 6, false, false},   // three heads of 2
    {5, 9, 1, 4, 2, 4, true, false},    // band 2..4; B > the backward chunk of 4 sequences
};

TEST(TransformerOps, BandedAttentionMatchesNaiveLoops) {
  for (const auto& c : kAttnCases) {
    SCOPED_TRACE(fmt::format("B {} L {} H {} dh {} band {}..{} bias {} drop {}", c.B, c.L, c.H, c.dh, c.lo, c.hi,
                             c.bias, c.drop));
    auto rs = test_stream(300 + c.L);
    TensorD qkv = randn(rs, {c.B, c.L, 3 * c.H * c.dh}), bias = randn(rs, {c.H, c.L, c.L});
    TensorD drop = make_drop(rs, {c.B, c.H, c.L, c.L});
    O::BandedAttention spec{c.H, c.lo, c.hi, 1.0 / std::sqrt(double(c.dh))};
    Tensor<double> P;
    auto out = O::banded_attention(leafd(qkv), c.bias ? leafd(bias) : VarD(), spec, c.drop ? drop : TensorD(), &P);
    auto [Oref, Pref] = ref_attention(qkv, c.bias ? &bias : nullptr, c.drop ? &drop : nullptr, c, spec.scale);
    ASSERT_EQ(out.shape(), (Shape{c.B, c.L, c.H * c.dh}));
    ASSERT_EQ(P.shape(), (Shape{c.B, c.H, c.L, c.L}));
    expect_close(out.value(), Oref, 1e-13, "output");
    expect_close(P, Pref, 1e-14, "probabilities");
    for (int64_t r = 0; r < c.B * c.H * c.L; ++r) {
      const int64_t i = r % c.L;
      double s = 0;
      for (int64_t j = 0; j < c.L; ++j) s += P[r * c.L + j];
      EXPECT_NEAR(s, i - c.lo >= 0 ? 1.0 : 0.0, 1e-14) << "row " << r;
    }
  }
}

TEST(TransformerOps, BandedAttentionGradients) {
  for (const auto& c : kAttnCases) {
    SCOPED_TRACE(fmt::format("B {} L {} H {} dh {} band {}..{} bias {} drop {}", c.B, c.L, c.H, c.dh, c.lo, c.hi,
                             c.bias, c.drop));
    auto rs = test_stream(400 + c.L);
    TensorD qkv = randn(rs, {c.B, c.L, 3 * c.H * c.dh}), bias = randn(rs, {c.H, c.L, c.L});
    TensorD drop = c.drop ? make_drop(rs, {c.B, c.H, c.L, c.L}) : TensorD();
    O::BandedAttention spec{c.H, c.lo, c.hi, 1.0 / std::sqrt(double(c.dh))};
    auto f = [&](const auto& v) { return O::banded_attention(v[0], c.bias ? v[1] : VarD(), spec, drop); };
    // Bias entries outside the band are never read: their gradient is exactly zero.
    EXPECT_TRUE(check_agg(f, {qkv, bias}));
  }
}

TEST(TransformerOps, BandedAttentionFloat32AndThreads) {
  const AttnCase c{9, 23, 2, 8, 0, 22, true, true};
  auto rs = test_stream(500);
  TensorD qkv = randn(rs, {c.B, c.L, 3 * c.H * c.dh}), bias = randn(rs, {c.H, c.L, c.L});
  TensorD drop = make_drop(rs, {c.B, c.H, c.L, c.L});
  O::BandedAttention spec{c.H, c.lo, c.hi, 1.0 / std::sqrt(8.0)};
  auto f = [&](const auto& v) {
    using T = std::decay_t<decltype(v[0].value()[0])>;
    return O::banded_attention(v[0], v[1], spec, round_to_float(drop).template cast<T>());
  };
  EXPECT_TRUE(f32_matches_f64(f, {qkv, bias}, 1e-5, 1e-4));

  // Backward jobs are chunks of sequences with per-chunk bias partials: same bits for any thread count.
  auto run = [&](int threads) {
    const int saved = num_threads();
    set_threads(threads);
    auto lq = leafd(qkv), lb = leafd(bias);
    RandomStream rr(9, StreamKind::Test);
    backward(weighted_sum(O::banded_attention(lq, lb, spec, drop), randn(rr, {c.B, c.L, c.H * c.dh})));
    set_threads(saved);
    return std::make_pair(lq.grad().clone(), lb.grad().clone());
  };
  auto [q1, b1] = run(1);
  auto [q2, b2] = run(2);
  for (int64_t i = 0; i < q1.numel(); ++i) ASSERT_EQ(q1[i], q2[i]) << i;
  for (int64_t i = 0; i < b1.numel(); ++i) ASSERT_EQ(b1[i], b2[i]) << i;
}

TEST(TransformerOps, BandedAttentionRejectsBadShapes) {
  O::BandedAttention spec{2, 0, 3, 1.0};
  EXPECT_THROW(O::banded_attention(leafd(TensorD({2, 4, 10})), VarD(), spec), Error);  // 10 != 3 * 2 * dh
  EXPECT_THROW(O::banded_attention(leafd(TensorD({2, 4, 12})), leafd(TensorD({1, 4, 4})), spec), Error);
  EXPECT_THROW(O::banded_attention(leafd(TensorD({2, 4, 12})), VarD(), spec, TensorD({2, 2, 4, 3})), Error);
  O::BandedAttention bad{2, 2, 1, 1.0};
  EXPECT_THROW(O::banded_attention(leafd(TensorD({2, 4, 12})), VarD(), bad), Error);
}

// ---------------------------------------------------------------------------------------------
// rotary

TEST(TransformerOps, RotaryValuesAndGradients) {
  auto rs = test_stream(600);
  const int64_t B = 2, L = 5, dh = 6, C = 3 * 2 * dh;  // [Q | K | V] of 2 heads; rotate Q and K only
  TensorD x = randn(rs, {B, L, C});
  auto y = O::rotary(leafd(x), dh, 100.0, 2 * 2 * dh);
  for (int64_t r = 0; r < B * L; ++r) {
    const int64_t i = r % L;
    for (int64_t j = 0; j < C; ++j) {
      double want = x[r * C + j];
      if (j < 4 * dh) {
        const int64_t h0 = j / dh * dh, c = j % dh, m = dh / 2, p = c % m;
        const double ang = double(i) * std::pow(100.0, -2.0 * double(p) / double(dh));
        const double a = x[r * C + h0 + p], b = x[r * C + h0 + p + m];
        want = c < m ? a * std::cos(ang) - b * std::sin(ang) : b * std::cos(ang) + a * std::sin(ang);
      }
      EXPECT_NEAR(y.value()[r * C + j], want, 1e-14) << "row " << r << " col " << j;
    }
  }
  EXPECT_TRUE(check_agg([&](const auto& v) { return O::rotary(v[0], dh, 100.0, 4 * dh); }, {x}));
  EXPECT_TRUE(check_agg([&](const auto& v) { return O::rotary(v[0], 2, 10000.0); }, {x}));
  // Rotations keep norms and relative angles: q_i . k_j depends on i - j only.
  TensorD one({1, 4, 4});
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t c = 0; c < 4; ++c) one[i * 4 + c] = double(c + 1);
  auto r1 = O::rotary(leafd(one), 4);
  auto dot = [&](int64_t i, int64_t j) {
    double s = 0;
    for (int64_t c = 0; c < 4; ++c) s += r1.value()[i * 4 + c] * r1.value()[j * 4 + c];
    return s;
  };
  EXPECT_NEAR(dot(3, 1), dot(2, 0), 1e-12);
  EXPECT_THROW(O::rotary(leafd(x), 5), Error);           // odd head dim
  EXPECT_THROW(O::rotary(leafd(x), dh, 1e4, 7), Error);  // not a multiple of the head dim
}

// ---------------------------------------------------------------------------------------------
// norm_linear, linear_residual

TEST(TransformerOps, NormLinearMatchesComposition) {
  auto rs = test_stream(700);
  TensorD x = randn(rs, {3, 4, 6}, 1.5), g = randn(rs, {6}), be = randn(rs, {6});
  TensorD W1 = randn(rs, {6, 2}), W2 = randn(rs, {6, 5}), b1 = randn(rs, {2}), b2 = randn(rs, {5});
  for (bool norm : {true, false}) {
    SCOPED_TRACE(norm ? "norm" : "no norm");
    auto y = O::norm_linear(leafd(x), norm, leafd(g), leafd(be), 1e-5, {leafd(W1), leafd(W2)}, {leafd(b1), VarD()});
    VarD h = norm ? O::layer_norm(leafd(x), leafd(g), leafd(be), 1e-5) : leafd(x);
    auto ref = O::concat_last<double>({O::add(O::linear(h, leafd(W1)), leafd(b1)), O::linear(h, leafd(W2))});
    ASSERT_EQ(y.shape(), (Shape{3, 4, 7}));
    expect_close(y.value(), std::vector<double>(ref.value().data(), ref.value().data() + ref.value().numel()), 1e-13,
                 "output");
    auto f = [&](const auto& v) { return O::norm_linear(v[0], norm, v[1], v[2], 1e-5, {v[3], v[4]}, {v[5], v[6]}); };
    Options o;
    o.wrt = {true, norm, norm, true, true, true, true};
    EXPECT_TRUE(check_agg(f, {x, g, be, W1, W2, b1, b2}, o));
  }
  // With the GELU (an MLP's first layer): against ops::gelu of the composition.
  {
    auto y = O::norm_linear(leafd(x), true, leafd(g), leafd(be), 1e-5, {leafd(W2)}, {leafd(b2)}, true);
    auto ref = O::gelu(O::add(O::linear(O::layer_norm(leafd(x), leafd(g), leafd(be), 1e-5), leafd(W2)), leafd(b2)));
    expect_close(y.value(), std::vector<double>(ref.value().data(), ref.value().data() + ref.value().numel()), 1e-13,
                 "gelu output");
    auto f = [&](const auto& v) { return O::norm_linear(v[0], true, v[1], v[2], 1e-5, {v[3]}, {v[4]}, true); };
    EXPECT_TRUE(check_agg(f, {x, g, be, W2, b2}));
    // float32 uses Eigen's rational erf (a couple of ulp) instead of std::erf.
    EXPECT_TRUE(f32_matches_f64(f, {x, g, be, W2, b2}, 1e-5, 1e-4));
  }
  // No affine parameters, one weight, no biases; many rows (several chunks).
  TensorD xb = randn(rs, {3, 200, 4});
  TensorD W = randn(rs, {4, 3});
  auto f = [&](const auto& v) { return O::norm_linear(v[0], true, VarD(), VarD(), 1e-5, {v[1]}); };
  Options o;
  o.rtol = 1e-5;
  EXPECT_TRUE(check_agg(f, {xb, W}, o));
  EXPECT_TRUE(f32_matches_f64(
      [&](const auto& v) {
        return O::norm_linear(v[0], true, v[1], v[2], 1e-5, {v[3], v[4]}, {v[5], v[6]});
      },
      {x, g, be, W1, W2, b1, b2}, 1e-5, 1e-4));
  EXPECT_THROW(O::norm_linear(leafd(x), true, VarD(), VarD(), 1e-5, {leafd(TensorD({5, 2}))}), Error);
}

TEST(TransformerOps, LinearResidualMatchesComposition) {
  auto rs = test_stream(800);
  TensorD x = randn(rs, {2, 300, 5}), a = randn(rs, {2, 300, 3}), W = randn(rs, {3, 5}), b = randn(rs, {5});
  TensorD m = make_drop(rs, {2, 300, 5});
  for (bool masked : {false, true}) {
    SCOPED_TRACE(masked ? "masked" : "plain");
    auto y = O::linear_residual(leafd(x), leafd(a), leafd(W), leafd(b), masked ? m : TensorD());
    VarD branch = O::add(O::linear(leafd(a), leafd(W)), leafd(b));
    if (masked) branch = O::mul(branch, leafd(m, false));
    auto ref = O::add(leafd(x), branch);
    expect_close(y.value(), std::vector<double>(ref.value().data(), ref.value().data() + ref.value().numel()), 1e-13,
                 "output");
  }
  TensorD xs = randn(rs, {2, 3, 5}), as = randn(rs, {2, 3, 3}), ms = make_drop(rs, {2, 3, 5});
  auto f = [&](const auto& v) { return O::linear_residual(v[0], v[1], v[2], v[3], ms); };
  EXPECT_TRUE(check_agg(f, {xs, as, W, b}));
  auto g = [&](const auto& v) { return O::linear_residual(v[0], v[1], v[2], VarD()); };
  EXPECT_TRUE(check_agg(g, {x, a, W}));
  EXPECT_THROW(O::linear_residual(leafd(x), leafd(a), leafd(TensorD({3, 4})), VarD()), Error);
}

}  // namespace
}  // namespace ihlab
