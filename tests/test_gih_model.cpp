// The GIH model TF(M, H, d, D) (models/gih_*.h) and the ngram-markov task (tasks/ngram_task.h):
//  - the fused kernel's loss and predictions against a slow reference written here from the
//    formulas of docs/models/gih.md (loops, float64), both kernels, both modes, both losses,
//    truncated windows;
//  - central finite differences of the fused op w.r.t. w, c and a (float64);
//  - the limiting GIH predictor against the model with exact copiers and p_{S*} = 1;
//  - float32 against float64, 1 against 2 threads;
//  - subsets, init, probes, evaluate, the task layout and the registries.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/parallel.h"
#include "gradcheck.h"
#include "models/gih_limit.h"
#include "models/gih_model.h"
#include "models/registry.h"
#include "tasks/ngram_predictors.h"
#include "tasks/ngram_task.h"
#include "tasks/registry.h"

namespace ihlab {
namespace {

using gc::TensorD;
using gc::VarD;

// ---------------------------------------------------------------------------------------------
// Reference: the formulas of docs/models/gih.md#the-model-tfmhdd as loops, nothing shared with the kernel.

struct RefOut {
  std::vector<double> y;     // [n, d]
  std::vector<double> loss;  // [n]
  double mean = 0;
};

// Subsets with |S| <= D, by size, then lexicographically (the documented order), as head lists.
std::vector<std::vector<int>> ref_subsets(int H, int D) {
  std::vector<std::vector<int>> out;
  for (int mask = 0; mask < (1 << H); ++mask) {
    std::vector<int> s;
    for (int h = 0; h < H; ++h)
      if (mask >> h & 1) s.push_back(h);
    if (int(s.size()) <= D) out.push_back(s);
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.size() != b.size() ? a.size() < b.size() : a < b; });
  return out;
}

RefOut reference(const GihConfig& cfg, const TensorD& w, const TensorD& c, double a, const Batch& b) {
  const int H = cfg.heads, M = cfg.window, d = int(cfg.vocab);
  const int64_t W = b.length, L = W - 1;
  const auto subsets = ref_subsets(H, cfg.max_subset);
  double Z = 0;
  for (int64_t S = 0; S < c.numel(); ++S) Z += c[S] * c[S];
  RefOut out;
  out.y.assign(b.size * d, 0.0);
  out.loss.assign(b.size, 0.0);
  for (int64_t n = 0; n < b.size; ++n) {
    const int32_t* x = b.tokens.data() + n * W;  // x[0..L-1] visible, x[L] the target
    // Layer 1 at every position i = 0..L (the query slot L included; its keys are real tokens).
    std::vector<std::vector<std::vector<double>>> vbar(H, std::vector<std::vector<double>>(L + 1));
    for (int h = 0; h < H; ++h) {
      const int first = cfg.mode == GihMode::Paper ? 1 : h + 1;  // window offsets first..first+M-1
      for (int64_t i = 0; i <= L; ++i) {
        std::vector<double> logit;
        std::vector<int> tok;
        for (int k = 0; k < M; ++k) {
          const int64_t key = i - (first + k);
          if (key < 0) continue;
          logit.push_back(w[h * M + k]);
          tok.push_back(x[key]);
        }
        std::vector<double> v(d, 0.0);
        if (!logit.empty()) {
          const double mx = *std::max_element(logit.begin(), logit.end());
          double z = 0;
          for (double l : logit) z += std::exp(l - mx);
          for (size_t k = 0; k < logit.size(); ++k) v[tok[k]] += std::exp(logit[k] - mx) / z;
        }
        double nrm = 0;
        for (double e : v) nrm += e * e;
        nrm = std::sqrt(nrm);
        for (double& e : v) e /= nrm + 1e-7;
        vbar[h][i] = v;
      }
    }
    // Layer 2 over keys j = 0..L-1.
    std::vector<double> score(L);
    for (int64_t j = 0; j < L; ++j) {
      double f = 0;
      for (size_t S = 0; S < subsets.size(); ++S) {
        double kappa = 1;
        for (int h : subsets[S]) {
          double g = 0;
          for (int q = 0; q < d; ++q) g += vbar[h][L][q] * vbar[h][j][q];
          kappa *= std::max(g, 0.0);
        }
        f += c[S] * c[S] * kappa;
      }
      score[j] = a * f / Z;
    }
    const double mx = *std::max_element(score.begin(), score.end());
    double z = 0;
    for (double s : score) z += std::exp(s - mx);
    double* y = out.y.data() + n * d;
    for (int64_t j = 0; j < L; ++j) y[x[j]] += std::exp(score[j] - mx) / z;
    const int t = x[L];
    if (cfg.loss == GihLoss::Nll) {
      out.loss[n] = -std::log(y[t] + cfg.guard);
    } else {
      double se = 0;
      for (int q = 0; q < d; ++q) se += std::exp(y[q]);
      out.loss[n] = -y[t] + std::log(se);
    }
    out.mean += out.loss[n] / double(b.size);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

GihConfig small_config(GihMode mode, GihLoss loss, GihKernel kernel = GihKernel::Auto) {
  GihConfig c;
  c.vocab = 3, c.heads = 3, c.window = 3, c.max_subset = 2;
  c.mode = mode, c.loss = loss, c.kernel = kernel;
  return c;
}

Batch ngram_batch(int n, int L, uint64_t seed, int vocab = 3) {
  NgramMarkovConfig tc;
  tc.vocab = vocab, tc.length = L;
  return NgramMarkovTask(tc).sample(n, seed, StreamKind::Test, 0);
}

// Uniform random tokens (less repetitive than the Markov chains: more distinct patterns).
Batch uniform_batch(int n, int L, int vocab, uint64_t seed) {
  Batch b;
  b.size = n, b.length = L + 1;
  RandomStream rs(seed, StreamKind::Test, 77);
  for (int64_t i = 0; i < b.size * b.length; ++i) b.tokens.push_back(int32_t(rs.randint(vocab)));
  b.targets.assign(b.tokens.size(), -1);
  return b;
}

struct Params {
  TensorD w, c, a;
};

Params random_params(const GihConfig& cfg, uint64_t seed) {
  RandomStream rs(seed, StreamKind::Test, 5);
  const int64_t nS = int64_t(gih_subsets(cfg.heads, cfg.max_subset).size());
  Params p;
  p.w = gc::randn(rs, {cfg.heads, cfg.window}, 1.0);
  p.c = gc::away_from_zero(gc::randn(rs, {nS}, 1.0), 0.2);
  p.a = TensorD(Shape{}, 2.0 + rs.normal());
  return p;
}

const std::vector<std::pair<GihMode, GihLoss>> kModeLoss = {{GihMode::Paper, GihLoss::Nll},
                                                            {GihMode::Paper, GihLoss::CeOnProbs},
                                                            {GihMode::Code, GihLoss::Nll},
                                                            {GihMode::Code, GihLoss::CeOnProbs}};

std::string describe(const GihConfig& c) {
  return fmt::format("mode {}, loss {}, kernel {}", c.mode == GihMode::Paper ? "paper" : "code", gih_loss_name(c.loss),
                     c.kernel == GihKernel::Table ? "table" : "direct");
}

// ---------------------------------------------------------------------------------------------
// Subsets and configuration.

TEST(GihSubsets, CanonicalOrderAndLabels) {
  auto s = gih_subsets(3, 2);
  std::vector<std::string> labels;
  for (auto& x : s) labels.push_back(x.label);
  EXPECT_EQ(labels, (std::vector<std::string>{"000", "100", "010", "001", "110", "101", "011"}));
  EXPECT_EQ(s[4].heads, (std::vector<int>{0, 1}));
  EXPECT_EQ(gih_subset_index(s, "110"), 4);
  EXPECT_EQ(gih_subsets(4, 4).size(), 16u);
  EXPECT_EQ(gih_subsets(3, 0).size(), 1u);
  for (int H = 1; H <= 5; ++H)
    for (int D = 0; D <= H; ++D) {
      auto ours = gih_subsets(H, D);
      auto ref = ref_subsets(H, D);
      ASSERT_EQ(ours.size(), ref.size());
      for (size_t i = 0; i < ref.size(); ++i) EXPECT_EQ(ours[i].heads, ref[i]);
    }
}

TEST(GihConfig, ParseAndValidate) {
  EXPECT_EQ(parse_gih_loss("auto", GihMode::Paper), GihLoss::Nll);
  EXPECT_EQ(parse_gih_loss("auto", GihMode::Code), GihLoss::CeOnProbs);
  EXPECT_EQ(parse_gih_loss("ce_on_probs", GihMode::Paper), GihLoss::CeOnProbs);
  EXPECT_THROW(parse_gih_mode("papers"), Error);
  EXPECT_THROW(parse_gih_loss("mse", GihMode::Paper), Error);
  GihConfig c;
  c.max_subset = 4;
  EXPECT_THROW(c.validate(), Error);
  c = GihConfig{};
  c.c_init = 0;
  EXPECT_THROW(c.validate(), Error);
}

TEST(GihModel, InitFollowsTheSpec) {
  for (GihMode mode : {GihMode::Paper, GihMode::Code}) {
    GihConfig cfg = small_config(mode, GihLoss::Nll);
    GihModel<double> m(cfg);
    const auto& w = m.w().value();
    for (int h = 0; h < 3; ++h)
      for (int k = 0; k < 3; ++k) {
        const int offset = cfg.offset(h) + 1 + k;
        EXPECT_EQ(w[h * 3 + k], offset == h + 1 ? 3.0 : 0.1) << "head " << h << " offset " << offset;
      }
    for (int64_t S = 0; S < m.c().value().numel(); ++S) EXPECT_EQ(m.c().value()[S], 0.01);
    EXPECT_EQ(m.a().value()[0], 0.01);
    auto groups = m.params().groups();
    EXPECT_EQ(groups, (std::vector<std::string>{"W", "C", "a"}));
  }
}

// ---------------------------------------------------------------------------------------------
// (b) Forward against the reference, float64, 1e-12.

// Both with every position run and with the merged keys of a reused batch (tests/test_gih_merged_keys.cpp).
void expect_matches_reference(const GihConfig& cfg, const Params& p, const Batch& b) {
  RefOut ref = reference(cfg, p.w, p.c, p.a[0], b);
  for (bool reused : {false, true}) {
    GihRequest req;
    req.y = true;
    req.seq_loss = true;
    req.reused_batch = reused;
    auto res = gih_compute(cfg, p.w.data(), p.c.data(), p.a[0], b.tokens.data(), b.size, b.length, req);
    const std::string what = describe(cfg) + (reused ? ", merged keys" : "");
    EXPECT_EQ(res.used_table, cfg.kernel == GihKernel::Table) << what;
    EXPECT_NEAR(res.loss, ref.mean, 1e-12 * std::max(1.0, std::abs(ref.mean))) << what;
    double worst_y = 0, worst_l = 0;
    for (size_t i = 0; i < ref.y.size(); ++i) worst_y = std::max(worst_y, std::abs(res.y[i] - ref.y[i]));
    for (size_t i = 0; i < ref.loss.size(); ++i)
      worst_l = std::max(worst_l, std::abs(res.seq_loss[i] - ref.loss[i]) / std::max(1.0, std::abs(ref.loss[i])));
    EXPECT_LE(worst_y, 1e-12) << what;
    EXPECT_LE(worst_l, 1e-12) << what;
  }
}

TEST(GihForward, MatchesReferenceBothKernelsModesLosses) {
  for (auto [mode, loss] : kModeLoss)
    for (GihKernel k : {GihKernel::Table, GihKernel::Direct}) {
      GihConfig cfg = small_config(mode, loss, k);
      for (uint64_t seed : {1, 2}) {
        Params p = random_params(cfg, seed);
        expect_matches_reference(cfg, p, ngram_batch(40, 12, seed));
        expect_matches_reference(cfg, p, uniform_batch(40, 12, 3, seed));
      }
    }
}

TEST(GihForward, MatchesReferenceOnShortAndOddShapes) {
  // L <= window + offset: the query row itself is truncated; L = 1: a single key.
  for (auto [mode, loss] : kModeLoss)
    for (GihKernel k : {GihKernel::Table, GihKernel::Direct})
      for (int L : {1, 2, 3, 4, 5, 6}) {
        GihConfig cfg = small_config(mode, loss, k);
        expect_matches_reference(cfg, random_params(cfg, 3), uniform_batch(17, L, 3, 10 + L));
      }
  // Long sequences (generalization runs evaluate at L up to 1000).
  for (GihKernel k : {GihKernel::Table, GihKernel::Direct}) {
    GihConfig cfg = small_config(GihMode::Code, GihLoss::CeOnProbs, k);
    expect_matches_reference(cfg, random_params(cfg, 6), ngram_batch(3, 1000, 7));
  }
  // Other H, M, D, d.
  for (auto [mode, loss] : kModeLoss)
    for (GihKernel k : {GihKernel::Table, GihKernel::Direct}) {
      GihConfig cfg = small_config(mode, loss, k);
      cfg.vocab = 4, cfg.heads = 4, cfg.window = 2, cfg.max_subset = 3;
      expect_matches_reference(cfg, random_params(cfg, 4), uniform_batch(20, 15, 4, 5));
      cfg.vocab = 2, cfg.heads = 2, cfg.window = 4, cfg.max_subset = 1;
      expect_matches_reference(cfg, random_params(cfg, 5), uniform_batch(20, 9, 2, 6));
    }
}

TEST(GihForward, AutoKernelPicksTablesForTheDefaultSizesAndDirectForLargeWindows) {
  GihConfig cfg = small_config(GihMode::Code, GihLoss::CeOnProbs);
  Params p = random_params(cfg, 1);
  Batch b = ngram_batch(8, 20, 1);
  EXPECT_TRUE(gih_compute(cfg, p.w.data(), p.c.data(), p.a[0], b.tokens.data(), b.size, b.length, {}).used_table);
  cfg.window = 8;
  p = random_params(cfg, 2);
  auto res = gih_compute(cfg, p.w.data(), p.c.data(), p.a[0], b.tokens.data(), b.size, b.length, {});
  EXPECT_FALSE(res.used_table);
  EXPECT_NEAR(res.loss, reference(cfg, p.w, p.c, p.a[0], b).mean, 1e-12);
}

TEST(GihForward, UnseenTargetGetsExactlyZeroProbability) {
  GihConfig cfg = small_config(GihMode::Paper, GihLoss::Nll);
  Batch b;
  b.size = 1, b.length = 6;
  b.tokens = {0, 1, 0, 1, 0, 2};  // target 2 never occurs among the keys
  b.targets = {-1, -1, -1, -1, -1, 2};
  GihModel<double> m(cfg);
  Tensor<double> y = m.predict(b);
  EXPECT_EQ(y[2], 0.0);
  EXPECT_NEAR(m.sequence_losses(b)[0], -std::log(1e-12), 1e-9);
  auto ev = m.evaluate(b);
  EXPECT_EQ(ev[2].first, "unseen_frac");
  EXPECT_EQ(ev[2].second, 1.0);
}

TEST(GihForward, RejectsBadTokensAndShapes) {
  GihConfig cfg = small_config(GihMode::Paper, GihLoss::Nll);
  GihModel<double> m(cfg);
  Batch b = uniform_batch(3, 5, 3, 1);
  b.tokens[7] = 3;
  EXPECT_THROW(m.loss(b), Error);
  b.tokens[7] = -1;
  EXPECT_THROW(m.loss(b), Error);
  Batch one = uniform_batch(2, 0, 3, 1);  // rows of one token: no key
  EXPECT_THROW(m.loss(one), Error);
}

// ---------------------------------------------------------------------------------------------
// (a) Gradients: central differences in float64.

TEST(GihGradient, FiniteDifferencesAllModesLossesKernels) {
  for (auto [mode, loss] : kModeLoss)
    for (GihKernel k : {GihKernel::Table, GihKernel::Direct}) {
      GihConfig cfg = small_config(mode, loss, k);
      Batch b = ngram_batch(6, 12, 21);
      Params p = random_params(cfg, 9);
      auto fn = [&](const std::vector<VarD>& in) { return gih_loss(in[0], in[1], in[2], b, cfg); };
      EXPECT_TRUE(gc::gradcheck(fn, {p.w, p.c, p.a})) << describe(cfg);
      // Uniform tokens: more patterns, some targets unseen (their nll is flat at -log guard).
      Batch u = uniform_batch(6, 12, 3, 22);
      auto fu = [&](const std::vector<VarD>& in) { return gih_loss(in[0], in[1], in[2], u, cfg); };
      EXPECT_TRUE(gc::gradcheck(fu, {p.w, p.c, p.a})) << describe(cfg);
    }
}

TEST(GihGradient, FiniteDifferencesOtherShapesAndFrozenGroups) {
  GihConfig cfg = small_config(GihMode::Code, GihLoss::Nll, GihKernel::Table);
  cfg.vocab = 4, cfg.heads = 4, cfg.window = 2, cfg.max_subset = 3;
  Batch b = uniform_batch(5, 7, 4, 3);
  Params p = random_params(cfg, 11);
  auto fn = [&](const std::vector<VarD>& in) { return gih_loss(in[0], in[1], in[2], b, cfg); };
  EXPECT_TRUE(gc::gradcheck(fn, {p.w, p.c, p.a}));
  cfg.kernel = GihKernel::Direct;
  EXPECT_TRUE(gc::gradcheck(fn, {p.w, p.c, p.a}));
  // One group at a time (the others frozen: no gradient is computed for them).
  for (int g = 0; g < 3; ++g) {
    gc::Options o;
    o.wrt = {g == 0, g == 1, g == 2};
    EXPECT_TRUE(gc::gradcheck(fn, {p.w, p.c, p.a}, o)) << "group " << g;
  }
  // Short sequences (truncated query rows).
  GihConfig s = small_config(GihMode::Code, GihLoss::CeOnProbs, GihKernel::Table);
  Batch sb = uniform_batch(5, 4, 3, 8);
  auto fs = [&](const std::vector<VarD>& in) { return gih_loss(in[0], in[1], in[2], sb, s); };
  Params ps = random_params(s, 3);
  EXPECT_TRUE(gc::gradcheck(fs, {ps.w, ps.c, ps.a}));
}

TEST(GihGradient, WrongSignWouldBeCaught) {
  // The check must reject a wrong gradient: the same loss value (computed from a detached copy of
  // w, so finite differences see the true slope) but the analytic gradient -dL/dw.
  GihConfig cfg = small_config(GihMode::Paper, GihLoss::Nll, GihKernel::Table);
  Batch b = ngram_batch(6, 12, 21);
  Params p = random_params(cfg, 9);
  auto flipped = [&](const std::vector<VarD>& in) {
    VarD l1 = gih_loss(in[0], in[1], in[2], b, cfg);
    VarD l2 = gih_loss(VarD::leaf(in[0].value().clone(), false), in[1], in[2], b, cfg);
    return make_result<double>("flip", l2.value().clone(), {l1},
                               [](Node<double>& n) { n.parents[0]->grad_buffer()[0] -= n.grad[0]; });
  };
  gc::Options o;
  o.wrt = {true, false, false};
  EXPECT_FALSE(gc::gradcheck(flipped, {p.w, p.c, p.a}, o));
}

// ---------------------------------------------------------------------------------------------
// (d) float32 against float64; threads.

TEST(GihPrecision, Float32MatchesFloat64) {
  for (auto [mode, loss] : kModeLoss) {
    GihConfig cfg = small_config(mode, loss, GihKernel::Table);
    Batch b = ngram_batch(200, 30, 4);
    Params p = random_params(cfg, 2);
    auto f = [&](const auto& in) { return gih_loss(in[0], in[1], in[2], b, cfg); };
    EXPECT_TRUE(gc::f32_matches_f64(f, {p.w, p.c, p.a}, 2e-5, 2e-4)) << describe(cfg);
    cfg.kernel = GihKernel::Direct;
    EXPECT_TRUE(gc::f32_matches_f64(f, {p.w, p.c, p.a}, 2e-5, 2e-4)) << describe(cfg);
  }
}

template <typename T>
std::vector<double> loss_and_grads(const GihConfig& cfg, const Batch& b) {
  GihModel<T> m(cfg);
  RandomStream rs(3, StreamKind::Test);
  for (auto& x : m.w().value().span()) x = T(rs.normal());
  for (auto& x : m.c().value().span()) x = T(rs.normal());
  m.a().value()[0] = T(3);
  Var<T> l = m.loss(b);
  backward(l);
  std::vector<double> out = {double(l.item())};
  for (auto& p : m.params().all())
    for (auto g : p.var.grad().span()) out.push_back(double(g));
  return out;
}

TEST(GihPrecision, ThreadCountDoesNotChangeABit) {
  Batch b = ngram_batch(700, 40, 6);
  for (GihKernel k : {GihKernel::Table, GihKernel::Direct}) {
    GihConfig cfg = small_config(GihMode::Code, GihLoss::CeOnProbs, k);
    const int saved = num_threads();
    set_threads(1);
    auto one_f = loss_and_grads<float>(cfg, b);
    auto one_d = loss_and_grads<double>(cfg, b);
    set_threads(2);
    auto two_f = loss_and_grads<float>(cfg, b);
    auto two_d = loss_and_grads<double>(cfg, b);
    set_threads(saved);
    EXPECT_EQ(one_f, two_f);
    EXPECT_EQ(one_d, two_d);
  }
}

TEST(GihPrecision, TableAndDirectKernelsAgreeWithGradients) {
  Batch b = ngram_batch(300, 50, 8);
  for (auto [mode, loss] : kModeLoss) {
    GihConfig t = small_config(mode, loss, GihKernel::Table), d = t;
    d.kernel = GihKernel::Direct;
    auto a = loss_and_grads<double>(t, b), c = loss_and_grads<double>(d, b);
    ASSERT_EQ(a.size(), c.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], c[i], 1e-12 * std::max(1.0, std::abs(a[i]))) << i;
  }
}

// ---------------------------------------------------------------------------------------------
// (c) The limiting model.

TEST(GihLimit, ModelWithExactCopiersAndConcentratedSelectorApproachesIt) {
  // Code mode: head h's first window offset is its parent -(h+1), so exact copiers are a large
  // logit at window index 0. S* = heads {0, 1} = parents {-1, -2}.
  Batch b = ngram_batch(300, 60, 12);
  for (GihLoss loss : {GihLoss::Nll, GihLoss::CeOnProbs}) {
    GihConfig cfg = small_config(GihMode::Code, loss);
    GihModel<double> m(cfg);
    auto& w = m.w().value();
    for (int h = 0; h < 3; ++h)
      for (int k = 0; k < 3; ++k) w[h * 3 + k] = k == 0 ? 60.0 : 0.0;
    auto& c = m.c().value();
    const int star = gih_subset_index(m.subsets(), "110");
    for (int64_t S = 0; S < c.numel(); ++S) c[S] = S == star ? 1.0 : 1e-9;
    const double a = 2.5;
    m.a().value()[0] = a;
    GihLimitModel lim(3, {-1, -2}, loss);
    Tensor<double> y = m.predict(b);
    std::vector<double> yl = lim.predict(b, a);
    double worst = 0;
    for (size_t i = 0; i < yl.size(); ++i) worst = std::max(worst, std::abs(y[i] - yl[i]));
    EXPECT_LT(worst, 1e-5) << gih_loss_name(loss);
    EXPECT_NEAR(m.loss(b).item(), lim.loss(b, a), 1e-4);
    // A different S* is a different predictor.
    GihLimitModel other(3, {-1}, loss);
    std::vector<double> yo = other.predict(b, a);
    double diff = 0;
    for (size_t i = 0; i < yo.size(); ++i) diff = std::max(diff, std::abs(yo[i] - yl[i]));
    EXPECT_GT(diff, 1e-2);
  }
}

TEST(GihLimit, PredictorByHand) {
  // x = 0 1 2 0 1 | target slot; S* = {-1}: the query's parent is x_L = 1; keys whose previous
  // token is 1: j = 2 (x = 2, prev 1) and j = 5 (not a key). So key 3 (0-based j=2) matches.
  Batch b;
  b.size = 1, b.length = 6;
  b.tokens = {0, 1, 2, 0, 1, 2};
  b.targets = {-1, -1, -1, -1, -1, 2};
  GihLimitModel lim(3, {-1});
  const double a = std::log(5.0);
  auto y = lim.predict(b, a);  // weights: keys 0,1,3,4 -> 1, key 2 -> 5; total 9
  EXPECT_NEAR(y[0], 2.0 / 9, 1e-15);
  EXPECT_NEAR(y[1], 2.0 / 9, 1e-15);
  EXPECT_NEAR(y[2], 5.0 / 9, 1e-15);
  EXPECT_NEAR(lim.loss(b, a), -std::log(5.0 / 9 + 1e-12), 1e-12);
  // Empty S*: the in-context unigram.
  auto u = GihLimitModel(3, {}).predict(b, 7.0);
  EXPECT_NEAR(u[0], 0.4, 1e-15);
  EXPECT_NEAR(u[2], 0.2, 1e-15);
  // Huge a does not overflow.
  auto big = lim.predict(b, 1e4);
  EXPECT_NEAR(big[2], 1.0, 1e-12);
}

TEST(GihLimit, BestAIsALocalMinimum) {
  Batch b = ngram_batch(1000, 100, 13);
  GihLimitModel lim(3, {-1, -2}, GihLoss::Nll);
  auto best = lim.best_a(b);
  EXPECT_GT(best.a, 0.5);
  EXPECT_LT(best.a, 100.0);
  EXPECT_NEAR(best.loss, lim.loss(b, best.a), 1e-15);
  EXPECT_LE(best.loss, lim.loss(b, best.a * 1.05));
  EXPECT_LE(best.loss, lim.loss(b, best.a / 1.05));
  // The GIH limit is no better than Bayes but far better than uniform.
  NgramMarkovTask task{NgramMarkovConfig{}};
  double bayes = 0;
  for (auto& [k, v] : task.reference_losses(b))
    if (k == "ref.bayes") bayes = v;
  EXPECT_GT(best.loss, bayes - 0.02);
  EXPECT_LT(best.loss, std::log(3.0) * 0.7);
}

// ---------------------------------------------------------------------------------------------
// Probes and evaluation.

TEST(GihModel, ProbesNameEverythingAndLogPStaysFinite) {
  GihConfig cfg = small_config(GihMode::Code, GihLoss::CeOnProbs);
  GihModel<double> m(cfg);
  auto& c = m.c().value();
  for (int64_t S = 0; S < c.numel(); ++S) c[S] = 1e-200;
  c[4] = 1.0;  // "110"
  auto probes = m.probes();
  auto get = [&](const std::string& k) -> double {
    for (auto& [n, v] : probes)
      if (n == k) return v;
    ADD_FAILURE() << "no probe " << k;
    return NAN;
  };
  EXPECT_EQ(get("a"), 0.01);
  EXPECT_NEAR(get("p.110"), 1.0, 1e-15);
  EXPECT_EQ(get("p.100"), 0.0);                              // 1e-400 underflows...
  EXPECT_NEAR(get("logp.100"), 2 * std::log(1e-200), 1e-9);  // ...its log does not
  EXPECT_NEAR(get("logp.110") - get("logp.101"), -2 * std::log(1e-200), 1e-9);
  EXPECT_EQ(get("rpe.h0.o1"), 3.0);
  EXPECT_EQ(get("rpe.h2.o3"), 3.0);  // code mode: head 2 covers offsets 3..5
  EXPECT_EQ(get("rpe.h2.o5"), 0.1);
  EXPECT_EQ(probes.size(), 1u + 7 + 7 + 9);
}

TEST(GihModel, EvaluateExcludesUnseenTargets) {
  GihConfig cfg = small_config(GihMode::Paper, GihLoss::Nll);
  GihModel<double> m(cfg);
  Batch b = ngram_batch(400, 10, 3);
  auto losses = m.sequence_losses(b);
  double seen = 0;
  int nseen = 0;
  for (int64_t i = 0; i < b.size; ++i) {
    const int32_t* x = b.tokens.data() + i * b.length;
    if (std::find(x, x + b.length - 1, x[b.length - 1]) != x + b.length - 1) seen += losses[i], ++nseen;
  }
  ASSERT_LT(nseen, 400);  // L = 10 leaves some targets unseen
  auto ev = m.evaluate(b);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].first, "acc");
  EXPECT_NEAR(ev[1].second, seen / nseen, 1e-12);
  EXPECT_NEAR(ev[2].second, 1.0 - nseen / 400.0, 1e-15);
  EXPECT_NEAR(m.loss(b).item(), std::accumulate(losses.begin(), losses.end(), 0.0) / 400, 1e-12);
}

TEST(GihModel, TrainingLowersTheLoss) {
  GihConfig cfg = small_config(GihMode::Code, GihLoss::CeOnProbs);
  GihModel<float> m(cfg);
  Batch b = ngram_batch(500, 50, 14);
  float first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    m.params().zero_grad();
    Var<float> l = m.loss(b);
    backward(l);
    for (auto& p : m.params().all())
      for (int64_t i = 0; i < p.var.value().numel(); ++i) p.var.value()[i] -= 1.0f * p.var.grad()[i];
    (step == 0 ? first : last) = l.item();
  }
  EXPECT_LT(last, first - 0.01);
}

// ---------------------------------------------------------------------------------------------
// The ngram-markov task and the registries.

TEST(GihNgramTask, LayoutTargetsAndReferences) {
  NgramMarkovConfig tc;
  tc.length = 20;
  NgramMarkovTask task(tc);
  EXPECT_EQ(task.name(), "ngram-markov");
  EXPECT_EQ(task.length(), 21);
  EXPECT_EQ(task.vocab(), 3);
  Batch b = task.sample(50, 3, StreamKind::Data, 1);
  NgramBatch nb = sample_batch(tc, 50, 3, StreamKind::Data, 1);
  EXPECT_EQ(b.tokens, nb.tokens);
  for (int64_t r = 0; r < b.size; ++r)
    for (int64_t c = 0; c < b.length; ++c) EXPECT_EQ(b.targets[r * 21 + c], c == 20 ? b.tokens[r * 21 + c] : -1);
  auto refs = task.reference_losses(b);
  std::vector<std::string> names;
  for (auto& [k, v] : refs) names.push_back(k);
  EXPECT_EQ(names,
            (std::vector<std::string>{"ref.uniform", "ref.bayes", "ref.unigram", "ref.ngram.m1", "ref.ngram.m2"}));
  EXPECT_NEAR(refs[1].second, mean_cross_entropy(bayes_predictor(tc), nb), 1e-15);

  tc.all_positions = true;
  NgramMarkovTask all(tc);
  Batch ba = all.sample(50, 3, StreamKind::Data, 1);
  EXPECT_EQ(ba.tokens, b.tokens);
  for (int64_t r = 0; r < ba.size; ++r)
    for (int64_t c = 0; c < ba.length; ++c) EXPECT_EQ(ba.targets[r * 21 + c], c >= 1 ? ba.tokens[r * 21 + c] : -1);
  auto per = per_position_cross_entropy(bayes_predictor(tc), nb);
  EXPECT_NEAR(all.reference_losses(ba)[1].second, std::accumulate(per.begin(), per.end(), 0.0) / 20, 1e-12);
}

TEST(GihRegistry, BuildsTheTaskAndTheModelFromConfig) {
  nlohmann::json tcfg = {{"name", "ngram-markov"}, {"vocab", 3},   {"length", 30},
                         {"parents", {-1, -2}},    {"alpha", 0.1}, {"all_positions", false}};
  auto task = make_task(tcfg);
  EXPECT_EQ(task->length(), 31);
  const ModelEntry* entry = nullptr;
  for (auto& e : model_registry())
    if (e.name == "gih") entry = &e;
  ASSERT_NE(entry, nullptr);
  nlohmann::json mcfg = entry->schema.resolve(nlohmann::json{{"mode", "code"}});
  mcfg["name"] = "gih";
  auto m = make_model<float>(mcfg, *task, 0);
  EXPECT_EQ(m->name(), "gih");
  auto* g = dynamic_cast<GihModel<float>*>(m.get());
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->config().loss, GihLoss::CeOnProbs);
  EXPECT_EQ(g->config().heads, 3);
  EXPECT_EQ(g->config().vocab, 3);
  Batch b = task->sample(10, 1, StreamKind::Data, 0);
  EXPECT_TRUE(std::isfinite(m->loss(b).item()));
}

}  // namespace
}  // namespace ihlab
