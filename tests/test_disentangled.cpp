// Musat et al. 2025: the item-label task, the disentangled model, the pseudo-parameter basis and
// its projection, the Gram-matrix reduced model (against the full model at the same weights) and
// the emergence-time analysis on synthetic curves.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include <fmt/format.h>

#include "analysis/bridge_measures.h"
#include "analysis/emergence.h"
#include "core/autograd.h"
#include "core/parallel.h"
#include "io/config.h"
#include "models/disentangled.h"
#include "models/pseudo_kernel.h"
#include "models/pseudo_params.h"
#include "models/registry.h"
#include "tasks/registry.h"
#include "train/run_schema.h"
#include "tasks/item_label.h"
#include "expect_error.h"

namespace ihlab {
namespace {

ItemLabelConfig config(int64_t N, int64_t D, ItemVectors v = ItemVectors::Orthonormal,
                       ItemPositions p = ItemPositions::Random) {
  ItemLabelConfig c;
  c.pairs = N, c.dim = D, c.vectors = v, c.positions = p, c.rotation_seed = 7;
  return c;
}

double dot(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
  return s;
}

// ------------------------------------------------------------------------------------ task

TEST(ItemLabel, LayoutOrthonormalityAndRotation) {
  const int64_t N = 4, D = 12, L = 2 * N + 1, F = 2 * D;
  ItemLabelTask task(config(N, D));
  Batch b = task.sample(6, 3, StreamKind::Data, 5);
  ASSERT_EQ(b.length, L);
  ASSERT_EQ(b.feature_dim, F);
  ASSERT_EQ(b.value_dim, D);
  const auto& M = task.rotation();
  for (int64_t i = 0; i < D; ++i)  // M is orthogonal
    for (int64_t j = 0; j < D; ++j) {
      double s = 0;
      for (int64_t k = 0; k < D; ++k) s += M[i * D + k] * M[j * D + k];
      EXPECT_NEAR(s, i == j ? 1.0 : 0.0, 1e-12);
    }
  auto q = task.query_indices(b);
  for (int64_t r = 0; r < b.size; ++r) {
    const float* f = &b.features[r * L * F];
    // The 2N item and label vectors are orthonormal; positions p_0..p_N too.
    for (int64_t i = 0; i < 2 * N; ++i)
      for (int64_t j = 0; j < 2 * N; ++j) {
        const int64_t pi = (i % N) * 2 + i / N, pj = (j % N) * 2 + j / N;  // item i<N, label i>=N
        EXPECT_NEAR(dot(f + pi * F, f + pj * F, D), i == j ? 1.0 : 0.0, 1e-6);
      }
    for (int64_t i = 0; i < N; ++i) {
      EXPECT_NEAR(dot(f + 2 * i * F + D, f + 2 * N * F + D, D), 0.0, 1e-6);  // p_i vs the query's own p_N
      for (int64_t a = 0; a < D; ++a) {                                      // label i carries M p_i
        double mp = 0;
        for (int64_t c = 0; c < D; ++c) mp += M[a * D + c] * f[2 * i * F + D + c];
        EXPECT_NEAR(f[(2 * i + 1) * F + D + a], mp, 1e-6);
      }
    }
    ASSERT_GE(q[r], 0);
    for (int64_t d = 0; d < D; ++d) EXPECT_EQ(b.values[r * D + d], double(f[(2 * q[r] + 1) * F + d]));
  }
  // Pure function of (seed, kind, index); another index gives other data.
  Batch again = task.sample(6, 3, StreamKind::Data, 5), other = task.sample(6, 3, StreamKind::Data, 6);
  EXPECT_EQ(again.features, b.features);
  EXPECT_NE(other.features, b.features);
  auto refs = task.reference_losses(b);
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_NEAR(refs[0].second, 0.5, 1e-6);  // unit labels: 1/2 ||y||^2
}

TEST(ItemLabel, StratifiedQueryAsksEveryItemEquallyOften) {
  auto c = config(5, 16);
  c.query = QueryIndex::Stratified;
  ItemLabelTask task(c);
  Batch b = task.sample(15, 4, StreamKind::Data, 0);
  auto q = task.query_indices(b);  // read back from the features: item q equals the query
  for (int64_t r = 0; r < b.size; ++r) EXPECT_EQ(q[r], r % 5);
  EXPECT_EQ(parse_query_index("stratified"), QueryIndex::Stratified);
}

// A data-parallel rank draws only its rows (Task::sample_rows): they must be the whole batch's rows
// bit for bit, the stratified query included (it reads the row's index in the whole batch).
TEST(ItemLabel, SampleRowsAreTheBatchsRowsBitForBit) {
  auto c = config(5, 16);
  c.query = QueryIndex::Stratified;
  ItemLabelTask task(c);
  const Batch whole = task.sample(12, 4, StreamKind::Data, 9);
  for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, 12}, {3, 9}, {6, 12}, {5, 5}}) {
    const Batch rows = task.sample_rows(12, begin, end, 4, StreamKind::Data, 9);
    const Batch want = whole.slice(begin, end);
    ASSERT_EQ(rows.size, end - begin);
    EXPECT_EQ(rows.tokens, want.tokens);
    EXPECT_EQ(rows.targets, want.targets);
    EXPECT_EQ(rows.features, want.features);
    EXPECT_EQ(rows.values, want.values);
    EXPECT_EQ(rows.candidates, want.candidates);
    EXPECT_EQ(rows.candidate_target, want.candidate_target);
    EXPECT_EQ(task.query_indices(rows), task.query_indices(want));
  }
  expect_error([&] { task.sample_rows(12, 8, 13, 4, StreamKind::Data, 9); }, {"rows 8 .. 13", "batch of 12"});
}

TEST(ItemLabel, QueryLastAndAnswerPositionAndNoPositions) {
  auto c = config(3, 8);
  c.query = QueryIndex::Last, c.query_position = QueryPosition::Answer;
  ItemLabelTask task(c);
  Batch b = task.sample(5, 1, StreamKind::Data, 0);
  const int64_t L = 7, F = 16, D = 8;
  for (int64_t r = 0; r < b.size; ++r) {
    EXPECT_EQ(task.query_indices(b)[r], 2);
    const float* f = &b.features[r * L * F];
    for (int64_t d = 0; d < D; ++d) EXPECT_EQ(f[6 * F + D + d], f[4 * F + D + d]);  // p_q = item 2's position
  }
  ItemLabelTask none(config(3, 8, ItemVectors::Gaussian, ItemPositions::None));
  Batch z = none.sample(3, 1, StreamKind::Data, 0);
  for (int64_t i = 0; i < 3 * L; ++i)
    for (int64_t d = 0; d < D; ++d) EXPECT_EQ(z.features[i * F + D + d], 0.0f);
}

TEST(ItemLabel, BadConfigNamesTheKey) {
  expect_error([] { ItemLabelTask(config(8, 15)); }, {"task.dim", "15", "orthonormal", "16"});
  expect_error([] { ItemLabelTask(config(8, 8, ItemVectors::Gaussian)); }, {"task.dim", "pairs + 1"});
  expect_error([] { parse_item_vectors("uniform"); }, {"task.vectors", "uniform", "gaussian, orthonormal"});
  expect_error([] { parse_item_positions("learned"); }, {"task.positions", "random, fixed, none"});
  expect_error([] { parse_query_index("first"); }, {"task.query", "first", "uniform, last, stratified"});
}

// Token-only models refuse the task when the model is built, naming the key and what fits.
TEST(ItemLabel, TokenOnlyModelsAreAConfigError) {
  for (std::string m : {"attn1", "gih", "gih-full"}) {
    const std::string toml =
        "[task]\nname = \"item-label\"\npairs = 4\ndim = 16\n[model]\nname = \"" + m + "\"\n[[stages]]\nsteps = 1\n";
    nlohmann::json c = run_schema().resolve(parse_toml_string(toml, "test"));
    std::unique_ptr<Task> task = make_task(c["task"]);
    expect_error([&] { make_model<double>(c["model"], *task, 1); },
                 {"model.name", m, "token task", "item-label", "models that fit this task: transformer",
                  "disentangled, disentangled-reduced"});
  }
}

// ------------------------------------------------------------------------ pseudo-parameters

std::vector<double> random_theta(uint64_t seed, double scale) {
  RandomStream rs(seed, StreamKind::Test, 11);
  std::vector<double> th(pseudo_parameter_table().size());
  for (auto& v : th) v = scale * rs.normal();
  return th;
}

TEST(PseudoParams, TableHasNineteenEntriesAndTheSpecLayout) {
  const auto& t = pseudo_parameter_table();
  ASSERT_EQ(t.size(), 19u);
  const BasisBlock& a3 = t[pseudo_parameter_index("alpha_3")];
  EXPECT_EQ(a3.matrix, 1);
  EXPECT_EQ(a3.row_block, 1);
  EXPECT_EQ(a3.col_block, 1);
  EXPECT_EQ(a3.kind, BlockKind::MT);  // key-first convention
  const BasisBlock& b2 = t[pseudo_parameter_index("beta_2")];
  EXPECT_EQ(b2.matrix, 2);
  EXPECT_EQ(b2.row_block, 2);
  EXPECT_EQ(b2.col_block, 0);
  EXPECT_EQ(b2.kind, BlockKind::I);
  const BasisBlock& g3 = t[pseudo_parameter_index("gamma_3")];
  EXPECT_EQ(g3.matrix, 3);
  EXPECT_EQ(g3.col_block, 4);
  expect_error([] { pseudo_parameter_index("delta_1"); }, {"delta_1"});
}

TEST(PseudoParams, ProjectionIsExactAndResidualIsTheOrthogonalPart) {
  const int64_t D = 6;
  ItemLabelTask task(config(2, D));
  const auto& M = task.rotation();
  std::vector<double> th = random_theta(1, 1.0);
  DisentangledWeights w = build_pseudo_weights(th, M, D);
  PseudoProjection p = project_pseudo(w, M);
  for (size_t k = 0; k < th.size(); ++k) EXPECT_NEAR(p.coef[k], th[k], 1e-12) << k;
  EXPECT_LT(p.residual, 1e-12);
  // Add noise E: coefficients shift by E's projection and the residual is E's alone.
  RandomStream rs(2, StreamKind::Test, 3);
  DisentangledWeights e = w;
  for (int m = 1; m <= 3; ++m)
    for (auto& v : e.matrix(m)) v = 0.1 * rs.normal();
  DisentangledWeights sum = w;
  for (int m = 1; m <= 3; ++m)
    for (size_t i = 0; i < sum.matrix(m).size(); ++i) sum.matrix(m)[i] += e.matrix(m)[i];
  PseudoProjection pe = project_pseudo(e, M), ps = project_pseudo(sum, M);
  for (size_t k = 0; k < th.size(); ++k) EXPECT_NEAR(ps.coef[k], th[k] + pe.coef[k], 1e-12);
  EXPECT_NEAR(ps.residual, pe.residual, 1e-12);
  EXPECT_GT(pe.residual, 0.5 * 0.1 * std::sqrt(double(4 * D * D + 16 * D * D + 8 * D * D)));
  for (double s : ps.share) EXPECT_LE(s, 1.0 + 1e-12);
}

// ---------------------------------------------------- reduced model against the full model

struct Agreement {
  double loss_full = 0, loss_reduced = 0, max_grad_err = 0, max_grad = 0;
};

// Full model at W(theta): loss and <grad_W L, B_k> (the chain rule onto the basis), against the
// Gram kernel's loss and gradient.
Agreement compare(const ItemLabelConfig& c, const std::vector<double>& theta) {
  ItemLabelTask task(c);
  Batch b = task.sample(7, 5, StreamKind::Data, 1);
  DisentangledConfig dc;
  dc.dim = c.dim, dc.length = task.length(), dc.rotation = task.rotation();
  DisentangledModel<double> full(dc);
  full.set_weights(build_pseudo_weights(theta, task.rotation(), c.dim));
  full.params().set_trainable({"all"});
  full.params().zero_grad();
  Var<double> loss = full.loss(b);
  backward(loss);
  DisentangledWeights g;
  g.D = c.dim;
  g.W1.assign(full.params().get("W1").var.node()->grad.span().begin(),
              full.params().get("W1").var.node()->grad.span().end());
  g.W2.assign(full.params().get("W2").var.node()->grad.span().begin(),
              full.params().get("W2").var.node()->grad.span().end());
  g.W3.assign(full.params().get("W3").var.node()->grad.span().begin(),
              full.params().get("W3").var.node()->grad.span().end());
  const auto& table = pseudo_parameter_table();
  const int64_t D = c.dim;
  Agreement a;
  a.loss_full = loss.item();
  PseudoKernelPlan plan = make_pseudo_plan(table);
  PseudoGrams grams = pseudo_grams(b, task.rotation(), D, plan);
  std::vector<double> grad;
  a.loss_reduced = pseudo_loss(grams, plan, theta, &grad);
  for (size_t k = 0; k < table.size(); ++k) {
    // <grad_W, B_k>: build B_k alone.
    std::vector<double> unit(table.size(), 0.0);
    unit[k] = 1.0;
    DisentangledWeights B = build_pseudo_weights(unit, task.rotation(), D);
    double s = 0;
    for (int m = 1; m <= 3; ++m)
      for (size_t i = 0; i < B.matrix(m).size(); ++i) s += B.matrix(m)[i] * g.matrix(m)[i];
    a.max_grad_err = std::max(a.max_grad_err, std::abs(s - grad[k]));
    a.max_grad = std::max(a.max_grad, std::abs(s));
  }
  return a;
}

TEST(PseudoReduced, KernelMatchesFullModelAtTheSameWeights) {
  struct Case {
    ItemLabelConfig c;
    uint64_t theta_seed;
  };
  std::vector<Case> cases = {{config(3, 8), 1},
                             {config(4, 10, ItemVectors::Gaussian), 2},
                             {config(3, 6, ItemVectors::Gaussian, ItemPositions::Fixed), 3},
                             {config(5, 12), 4}};
  cases[3].c.query = QueryIndex::Last, cases[3].c.query_position = QueryPosition::Answer;
  for (auto& cs : cases) {
    Agreement a = compare(cs.c, random_theta(cs.theta_seed, 0.8));
    EXPECT_NEAR(a.loss_full, a.loss_reduced, 1e-12 * std::max(1.0, a.loss_full));
    EXPECT_LT(a.max_grad_err, 1e-12 * std::max(1.0, a.max_grad)) << "largest gradient " << a.max_grad;
    EXPECT_GT(a.max_grad, 1e-3);  // a test with all-zero gradients would prove nothing
  }
}

TEST(PseudoReduced, OneStepEqualsTheProjectedFullStep) {
  // Gradient descent on phi (the reduced model's parameter) moves theta by -h G^{-1} grad_theta,
  // which is the projection of the full model's step W - h grad_W from W(theta).
  ItemLabelConfig c = config(3, 8);
  ItemLabelTask task(c);
  Batch b = task.sample(9, 2, StreamKind::Data, 0);
  std::vector<double> th = random_theta(5, 0.7);
  const double h = 0.05;
  DisentangledConfig dc;
  dc.dim = c.dim, dc.length = task.length(), dc.rotation = task.rotation();
  DisentangledModel<double> full(dc);
  full.set_weights(build_pseudo_weights(th, task.rotation(), c.dim));
  full.params().set_trainable({"all"});
  full.params().zero_grad();
  backward(full.loss(b));
  for (auto& p : full.params().all())
    for (int64_t i = 0; i < p.var.value().numel(); ++i) p.var.value().data()[i] -= h * p.var.node()->grad.data()[i];
  PseudoProjection after = project_pseudo(full.weights(), task.rotation());

  PseudoReducedConfig rc;
  rc.dim = c.dim, rc.rotation = task.rotation();
  for (auto& e : pseudo_parameter_table()) rc.train.push_back(e.name);
  PseudoReducedModel<double> red(rc);
  red.set_theta(th);
  for (size_t k = 0; k < th.size(); ++k) EXPECT_NEAR(red.theta()[k], th[k], 1e-12);
  red.params().set_trainable({"all"});
  red.params().zero_grad();
  backward(red.loss(b));
  auto& phi = red.params().all()[0].var;
  for (int64_t i = 0; i < phi.value().numel(); ++i) phi.value().data()[i] -= h * phi.node()->grad.data()[i];
  std::vector<double> moved = red.theta();
  for (size_t k = 0; k < th.size(); ++k)
    EXPECT_NEAR(moved[k], after.coef[k], 1e-11) << pseudo_parameter_table()[k].name;
  double change = 0;
  for (size_t k = 0; k < th.size(); ++k) change += std::abs(moved[k] - th[k]);
  EXPECT_GT(change, 1e-4);
}

TEST(PseudoReduced, FullModelGradientMatchesFiniteDifferences) {
  ItemLabelConfig c = config(2, 5, ItemVectors::Gaussian);
  ItemLabelTask task(c);
  Batch b = task.sample(4, 1, StreamKind::Data, 0);
  DisentangledConfig dc;
  dc.dim = c.dim, dc.length = task.length(), dc.rotation = task.rotation();
  DisentangledModel<double> m(dc);
  RandomStream rs(9, StreamKind::Test, 0);
  for (auto& p : m.params().all())
    for (int64_t i = 0; i < p.var.value().numel(); ++i) p.var.value().data()[i] = 0.5 * rs.normal();
  m.params().set_trainable({"all"});
  m.params().zero_grad();
  backward(m.loss(b));
  const double eps = 1e-6;
  for (auto& p : m.params().all()) {
    const int64_t D = c.dim;
    for (int64_t trial = 0; trial < 12; ++trial) {
      int64_t i = rs.randint(p.var.value().numel());
      if (p.name == "W3" && ((i % (8 * D)) / D) % 2 == 1) continue;  // masked positional columns
      double& w = p.var.value().data()[i];
      const double w0 = w;
      w = w0 + eps;
      double up = m.loss(b).item();
      w = w0 - eps;
      double down = m.loss(b).item();
      w = w0;
      EXPECT_NEAR(p.var.node()->grad.data()[i], (up - down) / (2 * eps), 1e-7) << p.name << "[" << i << "]";
    }
  }
}

// ------------------------------------------------------------------------- emergence times

TEST(Emergence, FirstReachInterpolates) {
  std::vector<double> t = {0, 1, 2, 3}, y = {0, 0.2, 0.6, 1.0};
  EXPECT_DOUBLE_EQ(first_reach(t, y, 0.4), 1.5);
  EXPECT_DOUBLE_EQ(first_reach(t, y, 0.0), 0.0);
  EXPECT_TRUE(std::isnan(first_reach(t, y, 1.5)));
}

TEST(Emergence, IclTimeOnASyntheticPlateauAndDrop) {
  // An early small fall to a plateau (at ~0.47), then a logistic drop centred on t0; the midpoint
  // between plateau and final loss is crossed within a few percent of t0 (the drop is symmetric).
  for (double t0 : {300.0, 3000.0, 30000.0}) {
    auto f = [&](double t) {
      return 0.5 - 0.03 * (1 - std::exp(-t / (t0 / 50))) - 0.45 / (1 + std::exp(-(t - t0) / (t0 / 20)));
    };
    std::vector<double> t = {0}, y = {f(0)};
    for (double s = 1; s < 10 * t0; s *= 1.06) t.push_back(s), y.push_back(f(s));
    IclTime r = icl_time(t, y);
    ASSERT_TRUE(r.found);
    EXPECT_NEAR(r.plateau, 0.47, 0.01);
    EXPECT_NEAR(r.t_icl, t0, 0.03 * t0);
    EXPECT_GT(r.plateau_t, t0 / 50);  // not the untouched start
    EXPECT_LT(r.plateau_t, t0);
  }
  // No drop at all: a flat curve has no t_ICL below its plateau.
  std::vector<double> t = {0, 1, 2, 3, 4}, flat = {0.5, 0.5, 0.5, 0.5, 0.5};
  EXPECT_FALSE(icl_time(t, flat).found);
}

TEST(Emergence, OrderSortsByTimeWithNeverLast) {
  auto o = emergence_order({"alpha_3", "beta_2", "gamma_3", "x"}, {30.0, 20.0, 10.0, NAN});
  EXPECT_EQ(o, (std::vector<std::string>{"gamma_3", "beta_2", "alpha_3", "x"}));
}

}  // namespace
}  // namespace ihlab

namespace ihlab {
namespace {

// ------------------------------------------------------------------- transformer bridge measures

TEST(BridgeMeasures, MatchExplicitSumsOnRandomWeights) {
  const int64_t D = 3, w = 5, L = 4, F = 2 * D;
  RandomStream rs(4, StreamKind::Test, 0);
  auto rnd = [&](int64_t r, int64_t c) {
    NamedMatrix m{r, c, std::vector<double>(r * c)};
    for (auto& v : m.v) v = rs.normal();
    return m;
  };
  ParamMap p;
  p["pos.P"] = rnd(L, w), p["embed.W_in"] = rnd(F, w), p["unembed.U"] = rnd(w, D);
  for (int l = 0; l < 2; ++l)
    for (const char* n : {"Wq", "Wk", "Wv", "Wo"}) p[fmt::format("layer{}.attn.{}", l, n)] = rnd(w, w);
  auto at = [&](const std::string& n, int64_t i, int64_t j) { return p[n].v[i * p[n].cols + j]; };
  // Explicit index sums, written independently of the matrix products in bridge_measures.cpp.
  double alpha = 0;
  for (int64_t i = 1; i < L; ++i)
    for (int64_t c = 0; c < w; ++c) {
      double k = 0, q = 0;
      for (int64_t a = 0; a < w; ++a)
        k += at("pos.P", i - 1, a) * at("layer0.attn.Wk", a, c), q += at("pos.P", i, a) * at("layer0.attn.Wq", a, c);
      alpha += k * q;
    }
  double beta = 0, gamma = 0;
  for (int64_t t = 0; t < D; ++t) {
    std::vector<double> x(w), v(w), o(w), k(w, 0.0), q(w, 0.0), v2(w), o2(w);
    for (int64_t a = 0; a < w; ++a) x[a] = at("embed.W_in", t, a);
    auto apply = [&](const std::vector<double>& in, const std::string& n) {
      std::vector<double> out(w, 0.0);
      for (int64_t a = 0; a < w; ++a)
        for (int64_t c = 0; c < w; ++c) out[c] += in[a] * at(n, a, c);
      return out;
    };
    k = apply(apply(apply(x, "layer0.attn.Wv"), "layer0.attn.Wo"), "layer1.attn.Wk");
    q = apply(x, "layer1.attn.Wq");
    for (int64_t c = 0; c < w; ++c) beta += k[c] * q[c];
    o2 = apply(apply(x, "layer1.attn.Wv"), "layer1.attn.Wo");
    for (int64_t c = 0; c < w; ++c) gamma += o2[c] * at("unembed.U", c, t);  // diagonal entry t
  }
  BridgeMeasures m = bridge_measures(p, D);
  EXPECT_NEAR(m.alpha3, alpha, 1e-10);
  EXPECT_NEAR(m.beta2, beta, 1e-10);
  EXPECT_NEAR(m.gamma3, gamma, 1e-10);
  p.erase("pos.P");
  expect_error([&] { bridge_measures(p, D); }, {"pos.P"});
}

TEST(ItemLabel, CandidatesAreTheLabelsInContext) {
  ItemLabelTask task(config(4, 8));
  Batch b = task.sample(3, 2, StreamKind::Data, 0);
  ASSERT_EQ(b.num_candidates, 4);
  for (int64_t r = 0; r < b.size; ++r)
    for (int64_t d = 0; d < 8; ++d)
      EXPECT_EQ(b.candidates[(r * 4 + b.candidate_target[r]) * 8 + d], b.values[r * 8 + d]);
}

}  // namespace
}  // namespace ihlab

namespace ihlab {
namespace {

TEST(PseudoReduced, BitIdenticalForAnyThreadCount) {
  ItemLabelTask task(config(6, 16, ItemVectors::Gaussian));
  std::vector<double> th = random_theta(8, 0.6);
  PseudoKernelPlan plan = make_pseudo_plan(pseudo_parameter_table());
  std::vector<double> loss, grads[2];
  for (int threads : {1, 2}) {
    set_threads(threads);
    Batch b = task.sample(37, 4, StreamKind::Data, 2);
    std::vector<double>& g = grads[threads - 1];
    loss.push_back(pseudo_loss(pseudo_grams(b, task.rotation(), 16, plan), plan, th, &g));
  }
  set_threads(0);
  EXPECT_EQ(loss[0], loss[1]);
  EXPECT_EQ(grads[0], grads[1]);
}

}  // namespace
}  // namespace ihlab
