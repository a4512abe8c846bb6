// The configurable transformer (models/transformer.h):
//  - central finite differences in float64 of the whole model's loss for every positional scheme,
//    with and without MLPs, norm pre/none, tied/untied, self attention on/off, attention biases,
//    feature inputs, a window, several heads, and dropout (masks are a function of the batch);
//  - float32 against float64, 1 vs 2 threads bit-identical;
//  - attention maps (rows sum to 1, causal, windowed), per-position losses, OV circuits against
//    direct products, probes, parameter groups;
//  - dropout: deterministic, active only in training steps, off in evaluate() and the instruments;
//  - bad configurations and batches give errors naming the key; the registry builds the defaults;
//  - a few Adam steps learn the previous-token task.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "gradcheck.h"
#include "transformer_test_util.h"
#include "models/registry.h"
#include "models/transformer.h"
#include "train/optimizer.h"

namespace ihlab {
namespace {

using namespace transformer_test;

TransformerConfig small(TransformerPositional pos) {
  TransformerConfig c;
  c.vocab = 5, c.max_len = 6, c.layers = 2, c.heads = 2, c.width = 8;
  c.positional = pos;
  return c;
}

struct GradCase {
  const char* name;
  TransformerConfig cfg;
  int64_t F = 0;
};

std::vector<GradCase> grad_cases() {
  using P = TransformerPositional;
  std::vector<GradCase> v;
  v.push_back({"relative, pre, attention-only (the defaults' shape)", small(P::Relative)});
  auto c = small(P::Learned);
  c.attention_only = false, c.tied_unembedding = true, c.mlp_width = 12;
  v.push_back({"learned, MLP, tied", c});
  c = small(P::Alibi);
  c.norm = TransformerNorm::None, c.attn_bias = true, c.heads = 4;
  v.push_back({"alibi, no norm, attention biases, 4 heads of 2", c});
  c = small(P::Rotary);
  c.self_attention = false, c.attention_only = false;
  v.push_back({"rotary, strictly causal, MLP", c});
  c = small(P::None);
  c.tied_unembedding = true;
  v.push_back({"no positions, tied, features", c, 3});
  c = small(P::Relative);
  c.self_attention = false, c.rel_window = 3, c.norm = TransformerNorm::None;
  v.push_back({"relative window 3, strictly causal, no norm", c});
  c = small(P::Relative);
  c.dropout = 0.3, c.attention_only = false, c.mlp_width = 6;
  v.push_back({"dropout 0.3, MLP", c, 2});
  c = small(P::Rotary);
  c.layers = 1, c.heads = 1, c.width = 16, c.attn_bias = true;
  v.push_back({"one head of 16 (specialized kernel), rotary, biases", c});
  return v;
}

// One test per configuration, so each is a separate (short) ctest entry.
class TransformerGradients : public ::testing::TestWithParam<size_t> {};

TEST_P(TransformerGradients, MatchFiniteDifferences) {
  GradCase gcase = grad_cases()[GetParam()];
  SCOPED_TRACE(gcase.name);
  gcase.cfg.feature_dim = gcase.F;
  Transformer<double> m(gcase.cfg, 3);
  randomize(m, 11);
  Batch b = random_batch(3, 6, gcase.cfg.vocab, 21, gcase.F);
  EXPECT_TRUE(model_gradcheck(m, b));
}

INSTANTIATE_TEST_SUITE_P(Configs, TransformerGradients, ::testing::Range<size_t>(0, grad_cases().size()));

TEST(Transformer, ShorterBatchesAndLongerOnesWhereAllowed) {
  auto c = small(TransformerPositional::Relative);
  Transformer<double> m(c, 1);
  randomize(m, 2);
  EXPECT_TRUE(model_gradcheck(m, random_batch(2, 4, 5, 3)));
  EXPECT_TRUE(std::isfinite(m.loss(random_batch(2, 9, 5, 3)).item()));  // beyond the table: window capped
  auto l = small(TransformerPositional::Learned);
  Transformer<double> ml(l, 1);
  EXPECT_THROW(ml.loss(random_batch(2, 7, 5, 3)), Error);
  // Length 1 without self attention: no query has a key, every head outputs zero.
  auto a = small(TransformerPositional::Alibi);
  a.self_attention = false;
  Transformer<double> ma(a, 1);
  randomize(ma, 2);
  EXPECT_TRUE(model_gradcheck(ma, random_batch(3, 1, 5, 4)));
  EXPECT_EQ(ma.attention(random_batch(1, 1, 5, 4), 0)[0].weights, std::vector<double>{0.0});
}

template <typename T>
void copy_params(const Transformer<double>& from, Transformer<T>& to) {
  for (size_t i = 0; i < from.params().all().size(); ++i) {
    const auto& src = from.params().all()[i].var.value();
    auto& dst = to.params().all()[i].var.value();
    for (int64_t j = 0; j < src.numel(); ++j) dst[j] = T(src[j]);
  }
}

TEST(Transformer, Float32MatchesFloat64) {
  for (auto& gcase : grad_cases()) {
    SCOPED_TRACE(gcase.name);
    gcase.cfg.feature_dim = gcase.F;
    Transformer<double> md(gcase.cfg, 3);
    randomize(md, 12);
    for (auto& p : md.params().all())  // exactly representable in float
      for (auto& x : p.var.value().span()) x = double(float(x));
    Transformer<float> mf(gcase.cfg, 3);
    copy_params(md, mf);
    Batch b = random_batch(4, 6, gcase.cfg.vocab, 22, gcase.F);
    auto ld = md.loss(b);
    auto lf = mf.loss(b);
    EXPECT_NEAR(double(lf.item()), ld.item(), 2e-6 * std::max(1.0, std::abs(ld.item())));
    backward(ld);
    backward(lf);
    for (size_t i = 0; i < md.params().all().size(); ++i) {
      const auto& gd = md.params().all()[i].var.grad();
      const auto& gf = mf.params().all()[i].var.grad();
      double scale = 0, worst = 0;
      for (int64_t j = 0; j < gd.numel(); ++j) scale = std::max(scale, std::abs(gd[j]));
      for (int64_t j = 0; j < gd.numel(); ++j) worst = std::max(worst, std::abs(double(gf[j]) - gd[j]));
      EXPECT_LE(worst, 1e-4 * std::max(scale, 1e-3)) << md.params().all()[i].name;
    }
  }
}

TEST(Transformer, OneAndTwoThreadsAgreeBitForBit) {
  auto c = small(TransformerPositional::Relative);
  c.attention_only = false, c.dropout = 0.1;
  Transformer<float> m(c, 4);
  m.params().set_trainable({"all"});
  Batch b = random_batch(37, 6, 5, 8);
  auto run = [&](int threads) {
    const int saved = num_threads();
    set_threads(threads);
    m.params().zero_grad();
    auto l = m.loss(b);
    backward(l);
    std::vector<float> out{l.item()};
    for (auto& p : m.params().all())
      for (float g : p.var.grad().span()) out.push_back(g);
    set_threads(saved);
    return out;
  };
  // Three runs: the first also allocates every gradient buffer, so fresh memory at other
  // addresses must not change a bit either (no alignment-dependent reductions).
  const auto r1 = run(1), r2 = run(2), r3 = run(1);
  EXPECT_EQ(r1, r2);
  EXPECT_EQ(r1, r3);
}

TEST(Transformer, AttentionMapsAreCausalRowStochasticAndWindowed) {
  struct Case {
    bool self;
    int64_t window;
  };
  for (Case k : {Case{true, 0}, Case{false, 0}, Case{true, 2}, Case{false, 3}}) {
    SCOPED_TRACE(fmt::format("self {}, window {}", k.self, k.window));
    auto c = small(TransformerPositional::Relative);
    c.self_attention = k.self, c.rel_window = k.window;
    Transformer<double> m(c, 5);
    randomize(m, 6);
    Batch b = random_batch(3, 6, 5, 9);
    auto maps = m.attention(b, 1);
    ASSERT_EQ(maps.size(), size_t(c.layers * c.heads));
    auto probs = m.attention_probs(b);
    for (auto& a : maps) {
      ASSERT_EQ(a.queries, 6);
      ASSERT_EQ(a.keys, 6);
      for (int64_t i = 0; i < 6; ++i) {
        double s = 0;
        for (int64_t j = 0; j < 6; ++j) {
          const double w = a.weights[i * 6 + j];
          const int64_t o = i - j;
          const bool allowed = o >= (k.self ? 0 : 1) && (k.window == 0 || o < (k.self ? 0 : 1) + k.window);
          if (!allowed) {
            EXPECT_EQ(w, 0.0) << "layer " << a.layer << " head " << a.head << " (" << i << ", " << j << ")";
          }
          EXPECT_GE(w, 0.0);
          s += w;
          // The same numbers as attention_probs for sequence 1.
          EXPECT_NEAR(w, probs[a.layer][((1 * 2 + a.head) * 6 + i) * 6 + j], 1e-15);
        }
        EXPECT_NEAR(s, (i == 0 && !k.self) ? 0.0 : 1.0, 1e-12) << "row " << i;
      }
    }
  }
  Transformer<double> m(small(TransformerPositional::Alibi), 1);
  EXPECT_THROW(m.attention(random_batch(2, 6, 5, 1), 2), Error);
}

TEST(Transformer, DropoutIsDeterministicAndOnlyInTraining) {
  auto c = small(TransformerPositional::Relative);
  c.dropout = 0.4, c.attention_only = false;
  Transformer<double> m(c, 7);
  randomize(m, 8);
  auto c0 = c;
  c0.dropout = 0;
  Transformer<double> plain(c0, 7);
  copy_params(m, plain);
  Batch b = random_batch(4, 6, 5, 10), b2 = random_batch(4, 6, 5, 11);
  m.params().set_trainable({"all"});
  const double l1 = m.loss(b).item(), l2 = m.loss(b).item();
  EXPECT_EQ(l1, l2);                    // same batch, same masks
  EXPECT_NE(l1, plain.loss(b).item());  // dropout is on in training
  {
    NoGradScope<double> no_grad(m.params());  // the trainer's validation loss
    EXPECT_EQ(m.loss(b).item(), plain.loss(b).item());
  }
  EXPECT_EQ(m.evaluate(b2), plain.evaluate(b2));
  auto pm = m.per_position_losses(b2), pp = plain.per_position_losses(b2);
  for (size_t i = 0; i < pm.size(); ++i) EXPECT_TRUE(pm[i] == pp[i] || (std::isnan(pm[i]) && std::isnan(pp[i]))) << i;
  auto am = m.attention(b2, 0), ap = plain.attention(b2, 0);
  for (size_t i = 0; i < am.size(); ++i) EXPECT_EQ(am[i].weights, ap[i].weights);
  // Another model instance with the same seed draws the same masks; another seed does not.
  Transformer<double> same(c, 7), other(c, 8);
  copy_params(m, same);
  copy_params(m, other);
  EXPECT_EQ(same.loss(b).item(), l1);
  EXPECT_NE(other.loss(b).item(), l1);
}

TEST(Transformer, PerPositionLossesAverageToTheLoss) {
  auto c = small(TransformerPositional::Learned);
  c.attention_only = false;
  Transformer<double> m(c, 2);
  randomize(m, 3);
  Batch b = random_batch(3, 6, 5, 4);
  auto pp = m.per_position_losses(b);
  ASSERT_EQ(pp.size(), size_t(3 * 6));
  double s = 0;
  int64_t n = 0;
  for (size_t i = 0; i < pp.size(); ++i) {
    if (b.targets[i] < 0) {
      EXPECT_TRUE(std::isnan(pp[i]));
      continue;
    }
    s += pp[i];
    ++n;
  }
  EXPECT_NEAR(s / double(n), m.loss(b).item(), 1e-12);
  // evaluate(): accuracy at target positions from the logits.
  auto z = m.logits(b);
  int64_t correct = 0;
  for (int64_t r = 0; r < 18; ++r) {
    if (b.targets[r] < 0) continue;
    int64_t best = 0;
    for (int64_t t = 1; t < 5; ++t)
      if (z.value()[r * 5 + t] > z.value()[r * 5 + best]) best = t;
    correct += best == b.targets[r];
  }
  auto ev = m.evaluate(b);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].first, "acc");
  EXPECT_DOUBLE_EQ(ev[0].second, double(correct) / double(n));
}

// validate(): one forward pass gives the same bits as loss(), evaluate() and next_token_probs()
// (the three calls a log row used to make), for both token losses and with dropout configured;
// while a parameter is trainable it falls back to those calls (loss() then trains).
template <typename T>
void expect_validate_matches_three_calls(TransformerConfig c) {
  Transformer<T> m(c, 2);
  Batch b = random_batch(3, 6, 5, 4);
  for (auto& p : m.params().all())
    for (auto& x : p.var.value().span()) x = T(0.3 * std::sin(double(&x - p.var.value().data()) + p.name.size()));
  NoGradScope<T> no_grad(m.params());
  const auto v = m.validate(b, true);
  EXPECT_EQ(v.loss, double(m.loss(b).item()));
  EXPECT_EQ(v.scalars, m.evaluate(b));
  EXPECT_EQ(v.probs, m.next_token_probs(b));
  EXPECT_EQ(v.probs.size(), size_t(3 * 6 * 5));
  EXPECT_TRUE(m.validate(b, false).probs.empty());
}

TEST(Transformer, ValidateIsLossEvaluateAndProbsFromOneForward) {
  auto c = small(TransformerPositional::Learned);
  c.attention_only = false, c.dropout = 0.2;  // validation never drops out
  expect_validate_matches_three_calls<double>(c);
  expect_validate_matches_three_calls<float>(c);
  c.token_loss = TransformerTokenLoss::Mse;
  expect_validate_matches_three_calls<double>(c);
  // Trainable parameters: Model's three calls (a loss graph, dropout on), not the shared pass.
  Transformer<double> m(c, 2);
  Batch b = random_batch(3, 6, 5, 4);
  m.params().set_trainable({"all"});
  EXPECT_EQ(m.validate(b, false).loss, m.loss(b).item());
}

TEST(Transformer, OvCircuitIsTheProductOfItsMatrices) {
  for (bool pre : {false, true})
    for (bool tied : {false, true}) {
      SCOPED_TRACE(fmt::format("pre {}, tied {}", pre, tied));
      auto c = small(TransformerPositional::Relative);
      c.norm = pre ? TransformerNorm::Pre : TransformerNorm::None, c.tied_unembedding = tied;
      Transformer<double> m(c, 1);
      randomize(m, 4);
      const int64_t V = 5, D = 8, dh = 4;
      auto get = [&](const std::string& n) { return m.params().get(n).var.value(); };
      auto E = get("embed.E"), Wv = get("layer1.attn.Wv"), Wo = get("layer1.attn.Wo");
      for (int64_t h = 0; h < 2; ++h) {
        auto M = m.ov_circuit(1, h);
        ASSERT_EQ(M.size(), size_t(V * V));
        for (int64_t s = 0; s < V; ++s)
          for (int64_t t = 0; t < V; ++t) {
            double want = 0;
            for (int64_t d = 0; d < D; ++d)
              for (int64_t c2 = 0; c2 < dh; ++c2)
                for (int64_t e = 0; e < D; ++e) {
                  const double g1 = pre ? get("layer1.attn.ln_g")[d] : 1.0, gf = pre ? get("unembed.ln_g")[e] : 1.0;
                  const double u = tied ? E[t * D + e] : get("unembed.U")[e * V + t];
                  want += E[s * D + d] * g1 * Wv[d * D + h * dh + c2] * Wo[(h * dh + c2) * D + e] * gf * u;
                }
            EXPECT_NEAR(M[s * V + t], want, 1e-12) << s << ", " << t;
          }
      }
      EXPECT_THROW(m.ov_circuit(2, 0), Error);
      EXPECT_THROW(m.ov_circuit(0, 2), Error);
    }
}

TEST(Transformer, GroupsNamesInitAndProbes) {
  auto c = small(TransformerPositional::Relative);
  c.attention_only = false, c.feature_dim = 2, c.rel_window = 3, c.self_attention = false;
  Transformer<double> m(c, 1);
  EXPECT_EQ(m.name(), "transformer");
  EXPECT_EQ(m.params().groups(), (std::vector<std::string>{"embed", "layer0.attn", "layer0.rpe", "layer0.mlp",
                                                           "layer1.attn", "layer1.rpe", "layer1.mlp", "unembed"}));
  EXPECT_EQ(m.params().get("layer0.rpe.w").var.shape(), (Shape{2, 3}));
  EXPECT_EQ(m.params().get("embed.W_in").var.shape(), (Shape{2, 8}));
  EXPECT_EQ(m.params().get("layer1.mlp.W1").var.shape(), (Shape{8, 32}));
  for (double g : m.params().get("layer0.attn.ln_g").var.value().span()) EXPECT_EQ(g, 1.0);
  Scalars all = m.probes();
  // Per head: OV eigenvalue positivity and self-map fraction, then the RPE weights.
  Scalars ov, s;
  for (auto& kv : all) (kv.first.rfind("ov_", 0) == 0 ? ov : s).push_back(kv);
  ASSERT_EQ(ov.size(), size_t(2 * 2 * 2));
  EXPECT_EQ(ov[0].first, "ov_pos.l0.h0");
  EXPECT_EQ(ov.back().first, "ov_self.l1.h1");
  for (auto& [k, v] : ov) EXPECT_TRUE(v >= -1 && v <= 1) << k << " = " << v;
  ASSERT_EQ(s.size(), size_t(2 * 2 * 3));
  EXPECT_EQ(s[0].first, "layer0.rpe.h0.o1");  // offsets start at 1 without self attention
  EXPECT_EQ(s.back().first, "layer1.rpe.h1.o3");
  // Staged training: freezing everything but one layer's attention.
  m.params().set_trainable({"layer1.attn"});
  Batch b = random_batch(2, 6, 5, 1, 2);
  backward(m.loss(b));
  EXPECT_FALSE(m.params().get("layer0.attn.Wq").var.has_grad());
  EXPECT_TRUE(m.params().find("layer1.attn.Wq")->var.has_grad());

  auto l = small(TransformerPositional::Learned);
  l.norm = TransformerNorm::None, l.tied_unembedding = true;
  Transformer<double> ml(l, 1);
  EXPECT_EQ(ml.params().groups(), (std::vector<std::string>{"embed", "pos", "layer0.attn", "layer1.attn"}));
  for (auto& [k, v] : ml.probes()) EXPECT_EQ(k.rfind("ov_", 0), 0u) << k;  // no RPE table: OV scores only
}

// Expects construction to throw with a message containing every fragment.
void expect_error(const TransformerConfig& c, std::vector<std::string> fragments) {
  try {
    Transformer<double> m(c, 1);
    ADD_FAILURE() << "no error for " << fragments[0];
  } catch (const Error& e) {
    for (auto& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
  }
}

TEST(Transformer, BadConfigurationsNameTheKey) {
  auto c = small(TransformerPositional::Relative);
  auto bad = c;
  bad.heads = 3;
  expect_error(bad, {"model.heads", "3", "model.width = 8"});
  bad = small(TransformerPositional::Rotary), bad.heads = 8;
  expect_error(bad, {"rotary", "even head dim", "8 / 8 = 1"});
  bad = c, bad.dropout = 1.0;
  expect_error(bad, {"model.dropout", "0 <= dropout < 1"});
  bad = small(TransformerPositional::Alibi), bad.rel_window = 2;
  expect_error(bad, {"model.rel_window", "\"alibi\""});
  bad = c, bad.rel_window = 7;
  expect_error(bad, {"model.rel_window", "7", "1..6"});
  bad = c, bad.mlp_width = 16;
  expect_error(bad, {"model.mlp_width", "attention_only"});
  bad = c, bad.layers = 0;
  expect_error(bad, {"model.layers", "0"});
  bad = c, bad.init_std = -1;
  expect_error(bad, {"model.init_std"});
  EXPECT_THROW(parse_transformer_norm("post"), Error);
  try {
    parse_transformer_positional("sinusoidal");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.positional"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("learned, relative, alibi, rotary, none"), std::string::npos);
  }
  // Batches that do not fit.
  Transformer<double> m(c, 1);
  Batch b = random_batch(2, 6, 5, 1);
  b.feature_dim = 2;
  b.features.assign(24, 0.f);
  EXPECT_THROW(m.loss(b), Error);
  Batch t = random_batch(2, 6, 5, 1);
  t.targets[3] = 5;
  EXPECT_THROW(m.loss(t), Error);
}

// A token task for the registry: vocab 4, length 8, optional features.
class ToyTask : public Task {
 public:
  explicit ToyTask(int64_t F) : F_(F) {}
  std::string name() const override { return "toy"; }
  int64_t vocab() const override { return 4; }
  int64_t length() const override { return 8; }
  int64_t feature_dim() const override { return F_; }
  Batch sample(int64_t n, uint64_t seed, StreamKind, uint64_t) const override {
    return random_batch(n, 8, 4, seed, F_);
  }

 private:
  int64_t F_;
};

TEST(Transformer, RegistryBuildsTheEdelmanDefaults) {
  const ModelEntry* entry = nullptr;
  for (auto& e : model_registry())
    if (e.name == "transformer") entry = &e;
  ASSERT_NE(entry, nullptr);
  nlohmann::json mcfg = entry->schema.resolve(nlohmann::json::object());
  mcfg["name"] = "transformer";
  ToyTask task(0);
  auto m = make_model<double>(mcfg, task, 0);
  auto* t = dynamic_cast<Transformer<double>*>(m.get());
  ASSERT_NE(t, nullptr);
  const auto& c = t->config();
  EXPECT_EQ(c.layers, 2);
  EXPECT_EQ(c.heads, 1);
  EXPECT_EQ(c.width, 16);
  EXPECT_TRUE(c.attention_only);
  EXPECT_EQ(c.norm, TransformerNorm::Pre);
  EXPECT_EQ(c.positional, TransformerPositional::Relative);
  EXPECT_TRUE(c.self_attention);
  EXPECT_EQ(c.vocab, 4);
  EXPECT_EQ(c.max_len, 8);
  Batch b = task.sample(5, 1, StreamKind::Data, 0);
  auto mf = make_model<float>(mcfg, task, 0);
  EXPECT_NEAR(mf->loss(b).item(), m->loss(b).item(), 1e-5);
  // Feature inputs come from the task.
  ToyTask ftask(3);
  auto mfeat = make_model<double>(mcfg, ftask, 0);
  EXPECT_TRUE(std::isfinite(mfeat->loss(ftask.sample(2, 1, StreamKind::Data, 0)).item()));
  // The schema refuses values outside the ranges before anything is built.
  EXPECT_THROW(entry->schema.resolve(nlohmann::json{{"dropout", 1.0}}), Error);
  EXPECT_THROW(entry->schema.resolve(nlohmann::json{{"positional", "sinusoidal"}}), Error);
  nlohmann::json bad = mcfg;
  bad["heads"] = 3;
  EXPECT_THROW(make_model<double>(bad, task, 0), Error);
}

TEST(Transformer, AdamLearnsThePreviousToken) {
  OneThread one_thread;
  TransformerConfig c;
  c.vocab = 6, c.max_len = 12, c.layers = 1, c.heads = 1, c.width = 16, c.init_std = 0.3;
  Transformer<float> m(c, 1);
  m.params().set_trainable({"all"});
  OptimizerConfig oc;
  oc.kind = OptimizerKind::Adam;
  auto opt = Optimizer<float>::make(oc);
  auto batch = [&](uint64_t s) {
    Batch b = random_batch(16, 12, 6, s);
    for (int64_t r = 0; r < 16; ++r)
      for (int64_t i = 0; i < 12; ++i) b.targets[r * 12 + i] = i == 0 ? -1 : b.tokens[r * 12 + i - 1];
    return b;
  };
  for (int step = 0; step < 80; ++step) {
    m.params().zero_grad();
    backward(m.loss(batch(step)));
    opt->step(m.params().trainable(), 0.05);
  }
  Batch test = batch(1000);
  EXPECT_GT(m.evaluate(test)[0].second, 0.95);
  // The head looks one position back more than anywhere else.
  auto maps = m.attention(test, 0);
  std::vector<double> by_offset(12, 0.0);
  for (int64_t i = 1; i < 12; ++i)
    for (int64_t j = 0; j <= i; ++j) by_offset[i - j] += maps[0].weights[i * 12 + j] / 11.0;
  EXPECT_EQ(std::max_element(by_offset.begin(), by_offset.end()) - by_offset.begin(), 1);
  EXPECT_GT(by_offset[1], 0.5);
}

}  // namespace
}  // namespace ihlab
