// The mixed-target task and the attention-circuit model: targets against a direct computation,
// finite-difference gradients of every head kind and objective, the frozen-layer cache, the exact
// representation of the target by the paper's six-parameter configuration, lanes against one sequence at
// a time (bit for bit), and config errors.
#include <gtest/gtest.h>

#include <cmath>

#include "core/parallel.h"
#include "io/config.h"
#include "models/attention_circuit.h"
#include "models/registry.h"
#include "tasks/mixed_target.h"
#include "tasks/mixed_tokens.h"
#include "tasks/registry.h"
#include "train/run_schema.h"
#include "circuit_test_heads.h"

namespace ihlab {
namespace {

// The six-parameter model of Wang et al. 2024 (as in examples/wang2024-mixed-target.toml).
const std::string kHeads = circuit_test::six_parameter_heads();

nlohmann::json resolved(const std::string& task, const std::string& heads, const std::vector<std::string>& over = {}) {
  std::string toml = "dtype = \"float64\"\n[task]\nname = \"mixed-target\"\n" + task +
                     "\n[model]\nname = \"attention-circuit\"\n" + heads + "\n[[stages]]\nsteps = 1\n";
  nlohmann::json raw = parse_toml_string(toml, "test");
  for (auto& o : over) apply_override(raw, o);
  return run_schema().resolve(raw);
}

struct Fixture {
  std::unique_ptr<Task> task;
  std::unique_ptr<Model<double>> model;
  Batch batch;
};

Fixture make(const nlohmann::json& cfg, int64_t n = 64) {
  Fixture s;
  s.task = make_task(cfg["task"]);
  s.model = make_model<double>(cfg["model"], *s.task, 1);
  s.batch = s.task->sample(n, 3, StreamKind::Data, 0);
  return s;
}

void set_params(Model<double>& m, const std::vector<std::pair<std::string, double>>& values) {
  for (auto& [k, v] : values) {
    Param<double>* p = m.params().find(k);
    ASSERT_NE(p, nullptr) << k;
    p->var.value()[0] = v;
  }
}

// Central differences of the objective against the analytic gradient of every parameter.
void expect_gradients_match(Model<double>& m, const Batch& b, double tol = 1e-7) {
  m.params().set_trainable({"all"});
  m.params().zero_grad();
  backward(m.loss(b));
  for (auto& p : m.params().all()) {
    const double g = p.var.grad()[0], x = p.var.value()[0], h = 1e-5;
    p.var.value()[0] = x + h;
    double up, down;
    {
      NoGradScope<double> ng(m.params());
      up = m.loss(b).item();
      p.var.value()[0] = x - h;
      down = m.loss(b).item();
    }
    p.var.value()[0] = x;
    const double fd = (up - down) / (2 * h);
    EXPECT_NEAR(g, fd, tol * std::max(1.0, std::abs(fd))) << p.name;
  }
}

const std::vector<std::pair<std::string, double>> kGeneric = {
    {"prev.slope", 0.7}, {"prev.value", 0.8}, {"ind.wk", 0.9},   {"ind.wq", -1.1},
    {"ind.value", 0.6},  {"pos.slope", 0.4},  {"pos.value", 0.3}};

// d = 2 tokens, 3 slots, an alibi positional head in layer 2, a single w_KQ, two layer-1 heads.
const std::string kGenericHeads = R"(
[[model.heads]]
name = "a"
layer = 1
score = "alibi"
offset = 1
min_back = 1
write = 1
[[model.heads]]
name = "b"
layer = 1
score = "dot"
query = 0
key = 0
value = 0
write = 2
kq = "single"
[[model.heads]]
name = "c"
layer = 2
score = "dot"
query = 2
key = 1
value = 1
min_back = 1
[[model.heads]]
name = "d"
layer = 2
score = "alibi"
offset = 2
min_back = 2
value = 2
)";
const std::vector<std::pair<std::string, double>> kGenericHeadValues = {
    {"a.slope", 0.5}, {"a.value", 0.9}, {"b.wkq", 0.7},   {"b.value", -0.4}, {"c.wk", 0.8},
    {"c.wq", 1.2},    {"c.value", 0.5}, {"d.slope", 1.3}, {"d.value", 0.6}};

TEST(MixedTarget, TargetsArePartsAndMatchTheDefinition) {
  MixedTargetConfig c;
  c.length = 7, c.dim = 2, c.slots = 3, c.w_star = 1.5, c.alpha_star = 0.3;
  MixedTargetTask task(c);
  Batch b = task.sample(5, 11, StreamKind::Data, 2);
  ASSERT_EQ(b.feature_dim, 6);
  ASSERT_EQ(b.value_dim, 2);
  ASSERT_EQ(b.part_names, (std::vector<std::string>{"4gram", "induction"}));
  for (int64_t r = 0; r < 5; ++r) {
    // Tokens, 1-based x_1..x_7 at slot 0; other slots zero.
    auto x = [&](int s, int j) { return double(b.features[r * 7 * 6 + (s - 1) * 6 + j]); };
    for (int s = 1; s <= 7; ++s)
      for (int j = 2; j < 6; ++j) EXPECT_EQ(b.features[r * 42 + (s - 1) * 6 + j], 0.0f);
    // IH_2 = sum_{s=2}^{L-1} x_s softmax(w* <x_L, x_{s-1}>), written out directly.
    double w[8] = {0}, total = 0;
    for (int s = 2; s <= 6; ++s) total += (w[s] = std::exp(1.5 * (x(7, 0) * x(s - 1, 0) + x(7, 1) * x(s - 1, 1))));
    for (int j = 0; j < 2; ++j) {
      double ih = 0;
      for (int s = 2; s <= 6; ++s) ih += w[s] / total * x(s, j);
      EXPECT_NEAR(b.parts[r * 4 + j], 0.3 * x(5, j), 1e-15);
      EXPECT_NEAR(b.parts[r * 4 + 2 + j], 0.7 * ih, 1e-14);
      EXPECT_DOUBLE_EQ(b.values[r * 2 + j], b.parts[r * 4 + j] + b.parts[r * 4 + 2 + j]);
    }
  }
  // Pure function of (seed, kind, index).
  Batch again = task.sample(5, 11, StreamKind::Data, 2);
  EXPECT_EQ(again.features, b.features);
  EXPECT_EQ(again.values, b.values);
}

TEST(MixedTarget, LazyReferenceIsBelowTheFourGramOnlyOne) {
  MixedTargetTask task(MixedTargetConfig{});
  Batch b = task.sample(4000, 1, StreamKind::Data, 0);
  Scalars refs = task.reference_losses(b);
  ASSERT_EQ(refs.size(), 3u);
  // The lazy predictor (x_{L-2} and the mean token) explains the mean part of IH_2; what is left
  // is the plateau level, about 0.02 at L = 20, w* = 2, alpha* = 0.5 (docs/tasks.md#mixed-target).
  EXPECT_LT(refs[2].second, refs[1].second);
  EXPECT_NEAR(refs[2].second, 0.020, 0.003);
  EXPECT_GT(refs[0].second, refs[1].second);
}

TEST(AttentionCircuit, GradientsMatchFiniteDifferencesForEveryHeadKindAndObjective) {
  {
    Fixture s = make(resolved("length = 9", kHeads));
    set_params(*s.model, kGeneric);
    expect_gradients_match(*s.model, s.batch);
    s.model->set_objective("copy-previous");
    expect_gradients_match(*s.model, s.batch);
  }
  {  // d = 2 tokens, 3 slots, alibi positional head in layer 2, a single w_KQ, two layer-1 heads.
    const std::string& heads = kGenericHeads;
    Fixture s = make(resolved("length = 8\ndim = 2\nslots = 3", heads));
    set_params(*s.model, kGenericHeadValues);
    expect_gradients_match(*s.model, s.batch);
  }
}

TEST(AttentionCircuit, FrozenLayerCacheGivesTheSameLossAndGradients) {
  Fixture s = make(resolved("length = 12", kHeads), 300);
  set_params(*s.model, kGeneric);
  auto grads_of = [&](std::vector<std::string> groups) {
    s.model->params().set_trainable(groups);
    s.model->params().zero_grad();
    Var<double> l = s.model->loss(s.batch);
    backward(l);
    std::vector<double> g{l.item()};
    for (auto& p : s.model->params().all())
      if (p.group == "layer2") g.push_back(p.var.grad()[0]);
    return g;
  };
  std::vector<double> all = grads_of({"all"}), layer2 = grads_of({"layer2"});
  EXPECT_EQ(all, layer2);  // bit-identical: the cached stream is the same forward computation
  // Changing a layer-1 parameter invalidates the cache.
  set_params(*s.model, {{"prev.slope", 0.2}});
  std::vector<double> changed = grads_of({"layer2"}), fresh = grads_of({"all"});
  EXPECT_NE(changed[0], layer2[0]);
  EXPECT_EQ(changed, fresh);
}

TEST(AttentionCircuit, LanesGiveBitIdenticalResultsToOneSequenceAtATime) {
  // Every objective, every choice of trained layers (with and without the frozen-prefix cache),
  // and the evaluation (predictions, error split), on a batch that is not a multiple of the lanes.
  struct Case {
    std::string task, heads;
    std::vector<std::pair<std::string, double>> values;
    std::vector<std::string> objectives;
  };
  for (const Case& c : {Case{"length = 11", kHeads, kGeneric, {"loss", "copy-previous"}},
                        Case{"length = 8\ndim = 2\nslots = 3", kGenericHeads, kGenericHeadValues, {"loss"}}}) {
    Fixture s = make(resolved(c.task, c.heads), 203);
    set_params(*s.model, c.values);
    auto& circuit = dynamic_cast<AttentionCircuit<double>&>(*s.model);
    auto run = [&](bool one_at_a_time, const std::string& objective, std::vector<std::string> groups) {
      circuit.set_one_sequence_at_a_time(one_at_a_time);
      circuit.set_objective(objective);
      s.model->params().set_trainable(groups);
      s.model->params().zero_grad();
      Var<double> l = s.model->loss(s.batch);
      backward(l);
      std::vector<double> out{l.item()};
      for (auto& p : s.model->params().all()) out.push_back(p.var.grad()[0]);
      for (auto& [name, value] : s.model->evaluate(s.batch)) out.push_back(value);
      return out;
    };
    for (const std::string& objective : c.objectives)
      for (std::vector<std::string> groups : {std::vector<std::string>{"all"}, {"layer2"}, {"layer1"}}) {
        const std::vector<double> lanes = run(false, objective, groups), one = run(true, objective, groups);
        EXPECT_EQ(lanes, one) << c.heads << " " << objective << " " << groups[0];
        EXPECT_TRUE(std::isfinite(lanes[0]));
      }
  }
}

TEST(AttentionCircuit, SixParameterModelRepresentsTheTarget) {
  // Layer 1 a sharp previous-token head, layer 2 the target's own weights: the loss is ~0 and the
  // error split attributes nothing to either component.
  Fixture s = make(resolved("length = 20", kHeads), 500);
  set_params(*s.model, {{"prev.slope", 60},
                        {"prev.value", 1},
                        {"ind.wk", std::sqrt(2.0)},
                        {"ind.wq", std::sqrt(2.0)},
                        {"ind.value", 0.5},
                        {"pos.slope", 60},
                        {"pos.value", 0.5}});
  NoGradScope<double> ng(s.model->params());
  EXPECT_LT(s.model->loss(s.batch).item(), 1e-20);
  Scalars ev = s.model->evaluate(s.batch);
  std::map<std::string, double> m(ev.begin(), ev.end());
  EXPECT_LT(m.at("err_4gram"), 1e-20);
  EXPECT_LT(m.at("err_induction"), 1e-20);
  EXPECT_LT(m.at("copy_loss"), 1e-20);
  // The split adds up: loss = err_4gram + err_induction + err_cross.
  set_params(*s.model, kGeneric);
  ev = s.model->evaluate(s.batch);
  m = std::map<std::string, double>(ev.begin(), ev.end());
  EXPECT_NEAR(m.at("task_loss"), m.at("err_4gram") + m.at("err_induction") + m.at("err_cross"), 1e-12);
}

TEST(AttentionCircuit, SameResultForOneAndTwoThreads) {
  Fixture s = make(resolved("length = 20", kHeads), 1000);
  set_params(*s.model, kGeneric);
  auto run = [&](int threads) {
    set_threads(threads);
    s.model->params().set_trainable({"all"});
    s.model->params().zero_grad();
    Var<double> l = s.model->loss(s.batch);
    backward(l);
    std::vector<double> g{l.item()};
    for (auto& p : s.model->params().all()) g.push_back(p.var.grad()[0]);
    return g;
  };
  std::vector<double> one = run(1), two = run(2);
  set_threads(0);
  EXPECT_EQ(one, two);
}

TEST(AttentionCircuit, BadConfigurationsNameTheKey) {
  auto error_of = [](const nlohmann::json& cfg) {
    try {
      make(cfg, 4);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of(resolved("", kHeads, {"model.heads.0.write=5"})).find("model.heads[0].write"), std::string::npos);
  EXPECT_NE(error_of(resolved("", kHeads, {"model.heads.1.layer=1"})).find("model.heads[1].write"), std::string::npos);
  EXPECT_NE(error_of(resolved("", kHeads, {"model.heads.2.value=4"})).find("model.heads[2].value"), std::string::npos);
  EXPECT_THROW(resolved("", kHeads, {"model.heads.0.score=\"cosine\""}), Error);
  Fixture s = make(resolved("", kHeads), 4);
  try {
    s.model->set_objective("copy-next");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("copy-previous"), std::string::npos);
  }
}

}  // namespace
}  // namespace ihlab

namespace ihlab {
namespace {

TEST(MixedTokens, TargetsFollowTheMixtureAndReferencesAreOrdered) {
  MixedTokensConfig c;
  c.vocab = 6, c.length = 12, c.alpha_star = 0.4;
  MixedTokensTask task(c);
  Batch b = task.sample(4000, 5, StreamKind::Data, 0);
  int64_t from4 = 0, agree4 = 0;
  for (int64_t r = 0; r < b.size; ++r) {
    const int32_t* x = b.tokens.data() + r * 12;
    const int32_t y = b.targets[r * 12 + 11];
    for (int64_t i = 0; i < 11; ++i) ASSERT_EQ(b.targets[r * 12 + i], -1);
    ASSERT_EQ(b.parts[r * 2] + b.parts[r * 2 + 1], 1.0);
    if (b.parts[r * 2] == 1.0) ++from4, agree4 += y == x[9];
    // The generating distribution gives the target positive probability and sums to 1.
    std::vector<double> p = task.target_distribution(x);
    double total = 0;
    for (double v : p) total += v;
    EXPECT_NEAR(total, 1.0, 1e-12);
    EXPECT_GT(p[y], 0.0);
  }
  EXPECT_EQ(agree4, from4);  // the 4-gram component copies x_{L-2}
  EXPECT_NEAR(double(from4) / 4000, 0.4, 0.03);
  Scalars refs = task.reference_losses(b);
  EXPECT_LT(refs[1].second, refs[2].second);  // bayes < 4-gram only
  EXPECT_LT(refs[2].second, refs[0].second);  // 4-gram only < uniform
  // select() keeps the indicators (token tasks: one number per component).
  Batch sub = b.select({3, 1});
  EXPECT_EQ(sub.parts[0], b.parts[6]);
  EXPECT_EQ(sub.parts[3], b.parts[3]);
}

}  // namespace
}  // namespace ihlab
