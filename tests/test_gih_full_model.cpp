// The "full" GIH variant (models/gih_full_model.h):
//  - loss and predictions against a slow dense reference written here from the formulas of
//    docs/models/gih.md#the-full-variant-gih-full
//    (X Q K^T X^T + RPE band as full (L+1) x (L+1) matrices, masked row softmax, A X OV,
//    LayerNorm, the selector and classifier as loops), both modes, both losses, with and without
//    self attention, short sequences (L < window), to 1e-10;
//  - central finite differences in float64 for every parameter group;
//  - 1 vs 2 threads, float32 vs float64, init, probes, registry, a few training steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "gradcheck.h"
#include "models/gih_full_model.h"
#include "models/registry.h"
#include "tasks/ngram_task.h"
#include "tasks/registry.h"
#include "train/optimizer.h"

namespace ihlab {
namespace {

using gc::TensorD;
using gc::VarD;

struct FullParams {
  TensorD w, q, k, ov, gamma, beta, c, a;
  std::vector<TensorD> list() const { return {w, q, k, ov, gamma, beta, c, a}; }
};

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

struct RefOut {
  std::vector<double> y, loss;
  double mean = 0;
};

// Dense reference: every matrix of the model's definition formed explicitly for one sequence.
RefOut reference(const GihFullConfig& cfg, const FullParams& P, const Batch& b) {
  const GihConfig& g = cfg.base;
  const int H = g.heads, M = g.window, d = int(g.vocab);
  const int64_t W = b.length, L = W - 1, N = L + 1;
  const auto subsets = ref_subsets(H, g.max_subset);
  double Z = 0;
  for (int64_t S = 0; S < P.c.numel(); ++S) Z += P.c[S] * P.c[S];
  RefOut out;
  out.y.assign(b.size * d, 0.0);
  out.loss.assign(b.size, 0.0);
  for (int64_t n = 0; n < b.size; ++n) {
    const int32_t* x = b.tokens.data() + n * W;
    // X: (L+1) x d one-hot, the last row zero.
    std::vector<std::vector<double>> X(N, std::vector<double>(d, 0.0));
    for (int64_t i = 0; i < L; ++i) X[i][x[i]] = 1.0;
    std::vector<std::vector<std::vector<double>>> u(H, std::vector<std::vector<double>>(N, std::vector<double>(d)));
    for (int h = 0; h < H; ++h) {
      auto at = [&](const TensorD& t, int r, int c) { return t[(h * d + r) * d + c]; };
      // XQ, XK, logits = XQ (XK)^T.
      std::vector<std::vector<double>> XQ(N, std::vector<double>(d, 0.0)), XK = XQ, XOV = XQ;
      for (int64_t i = 0; i < N; ++i)
        for (int e = 0; e < d; ++e)
          for (int t = 0; t < d; ++t) {
            XQ[i][e] += X[i][t] * at(P.q, t, e);
            XK[i][e] += X[i][t] * at(P.k, t, e);
            XOV[i][e] += X[i][t] * at(P.ov, t, e);
          }
      const int first = g.mode == GihMode::Paper ? 1 : h + 1;
      for (int64_t i = 0; i < N; ++i) {
        std::vector<double> logit(N, 0.0);
        std::vector<bool> mask(N, false);
        for (int64_t j = 0; j < N; ++j) {
          const int64_t o = i - j;
          if (o == 0 && cfg.self_attention) mask[j] = true;
          if (o >= first && o < first + M) {
            mask[j] = true;
            logit[j] += P.w[h * M + (o - first)];
          }
          for (int e = 0; e < d; ++e) logit[j] += XQ[i][e] * XK[j][e];
        }
        double mx = -INFINITY, z = 0;
        for (int64_t j = 0; j < N; ++j)
          if (mask[j]) mx = std::max(mx, logit[j]);
        std::vector<double> A(N, 0.0);
        for (int64_t j = 0; j < N; ++j)
          if (mask[j]) z += (A[j] = std::exp(logit[j] - mx));
        std::vector<double> v(d, 0.0);
        for (int64_t j = 0; j < N; ++j)
          for (int e = 0; e < d; ++e) v[e] += (z > 0 ? A[j] / z : 0.0) * XOV[j][e];
        double mu = 0, var = 0;
        for (double e : v) mu += e;
        mu /= d;
        for (double e : v) var += (e - mu) * (e - mu);
        var /= d;
        for (int e = 0; e < d; ++e) u[h][i][e] = (v[e] - mu) / std::sqrt(var + cfg.ln_eps) * P.gamma[e] + P.beta[e];
      }
    }
    std::vector<double> score(L);
    for (int64_t j = 0; j < L; ++j) {
      double f = 0;
      for (size_t S = 0; S < subsets.size(); ++S) {
        double kappa = 1;
        for (int h : subsets[S]) {
          double gg = 0;
          for (int e = 0; e < d; ++e) gg += u[h][L][e] * u[h][j][e];
          kappa *= std::max(gg, 0.0);
        }
        f += P.c[S] * P.c[S] * kappa;
      }
      score[j] = P.a[0] * f / Z;
    }
    const double mx = *std::max_element(score.begin(), score.end());
    double z = 0;
    for (double s : score) z += std::exp(s - mx);
    double* y = out.y.data() + n * d;
    for (int64_t j = 0; j < L; ++j) y[x[j]] += std::exp(score[j] - mx) / z;
    const int t = x[L];
    if (g.loss == GihLoss::Nll) {
      out.loss[n] = -std::log(y[t] + g.guard);
    } else {
      double se = 0;
      for (int e = 0; e < d; ++e) se += std::exp(y[e]);
      out.loss[n] = -y[t] + std::log(se);
    }
    out.mean += out.loss[n] / double(b.size);
  }
  return out;
}

GihFullConfig small_config(GihMode mode, GihLoss loss, bool self = true) {
  GihFullConfig c;
  c.base.vocab = 3, c.base.heads = 3, c.base.window = 3, c.base.max_subset = 2;
  c.base.mode = mode, c.base.loss = loss;
  c.self_attention = self;
  return c;
}

Batch ngram_batch(int n, int L, uint64_t seed) {
  NgramMarkovConfig tc;
  tc.vocab = 3, tc.length = L;
  return NgramMarkovTask(tc).sample(n, seed, StreamKind::Test, 0);
}

// Uniform random tokens (any L >= 1).
Batch uniform_batch(int n, int L, uint64_t seed) {
  Batch b;
  b.size = n, b.length = L + 1;
  RandomStream rs(seed, StreamKind::Test, 77);
  for (int64_t i = 0; i < b.size * b.length; ++i) b.tokens.push_back(int32_t(rs.randint(3)));
  b.targets.assign(b.tokens.size(), -1);
  return b;
}

// Random parameters of order 1, so that every term of the model matters (including Q K^T).
FullParams random_params(const GihFullConfig& cfg, uint64_t seed) {
  RandomStream rs(seed, StreamKind::Test, 5);
  const GihConfig& g = cfg.base;
  const int64_t nS = int64_t(gih_subsets(g.heads, g.max_subset).size()), d = g.vocab;
  FullParams p;
  p.w = gc::randn(rs, {g.heads, g.window}, 1.0);
  p.q = gc::randn(rs, {g.heads, d, d}, 0.7);
  p.k = gc::randn(rs, {g.heads, d, d}, 0.7);
  p.ov = gc::randn(rs, {g.heads, d, d}, 1.0);
  p.gamma = gc::uniform(rs, {d}, 0.5, 1.5);
  p.beta = gc::randn(rs, {d}, 0.3);
  p.c = gc::away_from_zero(gc::randn(rs, {nS}, 1.0), 0.2);
  p.a = TensorD(Shape{}, 2.0 + rs.normal());
  return p;
}

GihFullParams<double> ptrs(const FullParams& p) {
  return {p.w.data(), p.q.data(), p.k.data(), p.ov.data(), p.gamma.data(), p.beta.data(), p.c.data(), p.a[0]};
}

const std::vector<std::pair<GihMode, GihLoss>> kModeLoss = {{GihMode::Paper, GihLoss::Nll},
                                                            {GihMode::Paper, GihLoss::CeOnProbs},
                                                            {GihMode::Code, GihLoss::Nll},
                                                            {GihMode::Code, GihLoss::CeOnProbs}};

TEST(GihFull, ForwardMatchesDenseReference) {
  for (auto [mode, loss] : kModeLoss)
    for (bool self : {true, false})
      for (int L : {1, 2, 8, 20}) {
        auto cfg = small_config(mode, loss, self);
        Batch b = L < 3 ? uniform_batch(12, L, 3 + L) : ngram_batch(12, L, 3 + L);
        FullParams p = random_params(cfg, 17 + L);
        GihFullRequest req;
        req.y = req.seq_loss = true;
        auto r = gih_full_compute(cfg, ptrs(p), b.tokens.data(), b.size, b.length, req);
        RefOut ref = reference(cfg, p, b);
        SCOPED_TRACE(fmt::format("mode {}, loss {}, self {}, L {}", int(mode), gih_loss_name(loss), self, L));
        EXPECT_NEAR(r.loss, ref.mean, 1e-10 * std::max(1.0, std::abs(ref.mean)));
        for (size_t i = 0; i < ref.y.size(); ++i) EXPECT_NEAR(r.y[i], ref.y[i], 1e-10);
        for (size_t i = 0; i < ref.loss.size(); ++i)
          EXPECT_NEAR(r.seq_loss[i], ref.loss[i], 1e-10 * std::max(1.0, ref.loss[i]));
      }
}

FullParams params_of(GihFullModel<double>& m) {
  return {m.w().value(),     m.q().value(),    m.k().value(), m.ov().value(),
          m.gamma().value(), m.beta().value(), m.c().value(), m.a().value()};
}

TEST(GihFull, ForwardMatchesReferenceAtInit) {
  // The authors' init (proj_init * I, LayerNorm 1 / 0, w_plus 1, w_minus 0.01): tiny projections,
  // LayerNorm epsilon dominating the variance.
  for (auto [mode, loss] : kModeLoss) {
    auto cfg = small_config(mode, loss);
    GihFullModel<double> m(cfg);
    Batch b = ngram_batch(20, 30, 5);
    RefOut ref = reference(cfg, params_of(m), b);
    auto y = m.predict(b);
    for (size_t i = 0; i < ref.y.size(); ++i) EXPECT_NEAR(y[i], ref.y[i], 1e-12);
    auto sl = m.sequence_losses(b);
    for (size_t i = 0; i < ref.loss.size(); ++i) EXPECT_NEAR(sl[i], ref.loss[i], 1e-10 * std::max(1.0, ref.loss[i]));
    EXPECT_NEAR(m.loss(b).item(), ref.mean, 1e-10 * std::max(1.0, ref.mean));
  }
}

gc::ScalarFn loss_fn(const GihFullConfig& cfg, const Batch& b) {
  return [cfg, b](const std::vector<VarD>& v) {
    return gih_full_loss(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], b, cfg);
  };
}

TEST(GihFull, GradientsMatchFiniteDifferences) {
  const char* names[] = {"w", "q", "k", "ov", "ln_gamma", "ln_beta", "c", "a"};
  for (auto [mode, loss] : kModeLoss)
    for (bool self : {true, false}) {
      auto cfg = small_config(mode, loss, self);
      Batch b = ngram_batch(6, 8, 11);
      FullParams p = random_params(cfg, 23);
      auto inputs = p.list();
      for (size_t i = 0; i < inputs.size(); ++i) {
        SCOPED_TRACE(
            fmt::format("mode {}, loss {}, self {}, group param {}", int(mode), gih_loss_name(loss), self, names[i]));
        gc::Options o;
        o.wrt.assign(inputs.size(), false);
        o.wrt[i] = true;
        o.rtol = 1e-6;
        o.atol = 1e-8;
        EXPECT_TRUE(gc::gradcheck(loss_fn(cfg, b), inputs, o));
      }
    }
}

TEST(GihFull, GradientsAtInitMatchFiniteDifferences) {
  // At the authors' init the Q/K/OV gradients are tiny; check them with a step and tolerance
  // matched to their scale.
  auto cfg = small_config(GihMode::Paper, GihLoss::Nll);
  GihFullModel<double> m(cfg);
  Batch b = ngram_batch(6, 8, 12);
  FullParams p = params_of(m);
  // W, LN, C, a: ordinary steps. Q, K, OV (entries ~1e-3, LayerNorm and ReLU kinks within ~1e-5
  // of them): a small step, with the absolute tolerance the resulting round-off allows.
  gc::Options o;
  o.h = 1e-5;
  o.rtol = 1e-4;
  o.atol = 1e-10;
  o.wrt = {true, false, false, false, true, true, true, true};
  EXPECT_TRUE(gc::gradcheck(loss_fn(cfg, b), p.list(), o));
  o.h = 1e-7;
  o.rtol = 1e-3;
  o.atol = 1e-8;
  o.wrt = {false, true, true, true, false, false, false, false};
  EXPECT_TRUE(gc::gradcheck(loss_fn(cfg, b), p.list(), o));
}

TEST(GihFull, ThreadCountDoesNotChangeResults) {
  auto cfg = small_config(GihMode::Paper, GihLoss::Nll);
  Batch b = ngram_batch(300, 40, 9);
  FullParams p = random_params(cfg, 3);
  GihFullRequest req;
  req.grad = req.y = true;
  const int saved = num_threads();
  set_threads(1);
  auto r1 = gih_full_compute(cfg, ptrs(p), b.tokens.data(), b.size, b.length, req);
  set_threads(2);
  auto r2 = gih_full_compute(cfg, ptrs(p), b.tokens.data(), b.size, b.length, req);
  set_threads(saved);
  EXPECT_EQ(r1.loss, r2.loss);
  EXPECT_EQ(r1.y, r2.y);
  EXPECT_EQ(r1.grad.w, r2.grad.w);
  EXPECT_EQ(r1.grad.q, r2.grad.q);
  EXPECT_EQ(r1.grad.ov, r2.grad.ov);
  EXPECT_EQ(r1.grad.c, r2.grad.c);
  EXPECT_EQ(r1.grad.a, r2.grad.a);
}

TEST(GihFull, Float32MatchesFloat64) {
  auto cfg = small_config(GihMode::Paper, GihLoss::Nll);
  Batch b = ngram_batch(40, 30, 4);
  FullParams p = random_params(cfg, 8);
  auto f = [&](const auto& v) { return gih_full_loss(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], b, cfg); };
  EXPECT_TRUE(gc::f32_matches_f64(f, p.list(), 1e-5, 1e-3));
}

TEST(GihFull, InitGroupsAndProbes) {
  auto cfg = small_config(GihMode::Paper, GihLoss::Nll);
  GihFullModel<double> m(cfg);
  EXPECT_EQ(m.name(), "gih-full");
  EXPECT_EQ(m.params().groups(), (std::vector<std::string>{"W", "QK", "OV", "LN", "C", "a"}));
  const auto& w = m.w().value();
  for (int h = 0; h < 3; ++h)
    for (int k = 0; k < 3; ++k) EXPECT_EQ(w[h * 3 + k], k == h ? 1.0 : 0.01);
  for (int h = 0; h < 3; ++h)
    for (int x = 0; x < 3; ++x)
      for (int y = 0; y < 3; ++y) {
        EXPECT_EQ(m.q().value()[(h * 3 + x) * 3 + y], x == y ? 0.001 : 0.0);
        EXPECT_EQ(m.ov().value()[(h * 3 + x) * 3 + y], x == y ? 0.001 : 0.0);
      }
  Scalars s = m.probes();
  auto find = [&](const std::string& k) {
    for (auto& [n, v] : s)
      if (n == k) return v;
    ADD_FAILURE() << "no probe " << k;
    return std::nan("");
  };
  EXPECT_DOUBLE_EQ(find("a"), 0.01);
  EXPECT_NEAR(find("p.110"), 1.0 / 7.0, 1e-15);
  EXPECT_NEAR(find("logp.110"), -std::log(7.0), 1e-12);
  EXPECT_DOUBLE_EQ(find("rpe.h1.o2"), 1.0);
  EXPECT_DOUBLE_EQ(find("rpe.h1.o3"), 0.01);
  EXPECT_NEAR(find("qk_norm.h0"), std::sqrt(3.0) * 1e-6, 1e-18);
  EXPECT_NEAR(find("ov_norm.h2"), std::sqrt(3.0) * 1e-3, 1e-15);

  auto code = small_config(GihMode::Code, GihLoss::CeOnProbs);
  GihFullModel<double> mc(code);
  Scalars sc = mc.probes();
  bool has = false;
  for (auto& [n, v] : sc) has |= n == "rpe.h2.o3" && v == 1.0;
  EXPECT_TRUE(has);
}

TEST(GihFull, RegistryBuildsIt) {
  nlohmann::json tcfg = {{"name", "ngram-markov"}, {"vocab", 3},   {"length", 30},
                         {"parents", {-1, -2}},    {"alpha", 0.1}, {"all_positions", false}};
  auto task = make_task(tcfg);
  const ModelEntry* entry = nullptr;
  for (auto& e : model_registry())
    if (e.name == "gih-full") entry = &e;
  ASSERT_NE(entry, nullptr);
  nlohmann::json mcfg = entry->schema.resolve(nlohmann::json::object());
  mcfg["name"] = "gih-full";
  auto m = make_model<double>(mcfg, *task, 0);
  auto* g = dynamic_cast<GihFullModel<double>*>(m.get());
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->config().base.loss, GihLoss::Nll);
  EXPECT_EQ(g->config().base.w_plus, 1.0);
  EXPECT_EQ(g->config().base.w_minus, 0.01);
  EXPECT_EQ(g->config().proj_init, 0.001);
  EXPECT_TRUE(g->config().self_attention);
  Batch b = task->sample(10, 1, StreamKind::Data, 0);
  EXPECT_TRUE(std::isfinite(m->loss(b).item()));
  auto mf = make_model<float>(mcfg, *task, 0);
  EXPECT_NEAR(mf->loss(b).item(), m->loss(b).item(), 1e-5);
}

TEST(GihFull, TrainingReducesLoss) {
  auto cfg = small_config(GihMode::Paper, GihLoss::Nll);
  GihFullModel<double> m(cfg);
  NgramMarkovConfig tc;
  tc.vocab = 3, tc.length = 50;
  Batch b = NgramMarkovTask(tc).sample(200, 1, StreamKind::Data, 0);
  const double l0 = m.loss(b).item();
  for (int step = 0; step < 30; ++step) {
    m.params().zero_grad();
    auto l = m.loss(b);
    backward(l);
    for (auto& p : m.params().all())
      for (int64_t i = 0; i < p.var.value().numel(); ++i) p.var.value()[i] -= 1.0 * p.var.grad()[i];
  }
  EXPECT_LT(m.loss(b).item(), l0);
}

TEST(GihFull, RejectsBadInput) {
  auto cfg = small_config(GihMode::Paper, GihLoss::Nll);
  GihFullModel<double> m(cfg);
  Batch b = ngram_batch(3, 5, 1);
  b.tokens[4] = 7;
  EXPECT_THROW(m.loss(b), Error);
  GihFullConfig big = cfg;
  big.base.vocab = 40, big.base.window = 6;
  EXPECT_THROW(GihFullModel<double>{big}, Error);
}

}  // namespace
}  // namespace ihlab
