// Optimizers against PyTorch, state checkpoint round trips, gradient clipping and LR schedules.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <numbers>
#include <string>
#include <type_traits>
#include <vector>

#include "train/optimizer.h"
#include "train/schedule.h"

namespace ihlab {
namespace {

template <typename T>
void set_grad(Param<T>& p, const std::vector<double>& g) {
  Tensor<T>& grad = p.var.grad();  // [param shape], allocated on first use
  ASSERT_EQ(grad.numel(), int64_t(g.size()));
  for (size_t i = 0; i < g.size(); ++i) grad[int64_t(i)] = T(g[i]);
}

template <typename T>
std::vector<T> values(const Param<T>& p) {
  auto s = p.var.value().span();
  return {s.begin(), s.end()};
}

template <typename T>
void expect_close(T got, double want, const std::string& what) {
  if constexpr (std::is_same_v<T, float>) {
    EXPECT_FLOAT_EQ(got, float(want)) << what;
  } else {
    EXPECT_DOUBLE_EQ(got, want) << what;
  }
}

// ---- against torch.optim ----
//
// One param w = [0.5, -1.0, 2.0]; step k uses grad G[k] and lr LR[k]. The expected values were
// printed by this script (torch 1.13, CPU) in float32 ("%.9g", which round-trips a float) and
// float64 (repr), then pasted below:
//
//   import torch
//   G = [[0.1, -0.2, 0.3], [-0.4, 0.5, 0.05], [0.2, 0.2, -0.1]]; LR = [0.1, 0.05, 0.02]
//   for dt in (torch.float32, torch.float64):
//     p = torch.tensor([0.5, -1.0, 2.0], dtype=dt, requires_grad=True)
//     opt = <constructor from the table below, lr=1, foreach=False for Adam/AdamW>
//     for g, lr in zip(G, LR):
//       for grp in opt.param_groups: grp["lr"] = lr
//       p.grad = torch.tensor(g, dtype=dt); opt.step(); print(p)
//
// By hand, plain SGD step 1 is w - 0.1 * g = [0.49, -0.98, 1.97], matching the first row.
const std::vector<double> kW0 = {0.5, -1.0, 2.0};
const std::vector<std::vector<double>> kG = {{0.1, -0.2, 0.3}, {-0.4, 0.5, 0.05}, {0.2, 0.2, -0.1}};
const std::vector<double> kLr = {0.1, 0.05, 0.02};

struct TorchCase {
  const char* name;
  OptimizerConfig cfg;
  std::vector<std::vector<double>> want_f32, want_f64;  // [step][element]
};

OptimizerConfig sgd(double mom, double wd, bool nesterov) {
  OptimizerConfig c;
  c.kind = OptimizerKind::Sgd;
  c.momentum = mom;
  c.weight_decay = wd;
  c.nesterov = nesterov;
  return c;
}
OptimizerConfig adam(const char* kind, double b1, double b2, double eps, double wd) {
  OptimizerConfig c;
  c.kind = parse_enum<OptimizerKind>(kind, "optimizer");
  c.beta1 = b1;
  c.beta2 = b2;
  c.eps = eps;
  c.weight_decay = wd;
  return c;
}

std::vector<TorchCase> torch_cases() {
  return {
      {"SGD(lr)",
       sgd(0, 0, false),
       {{0.49000001, -0.980000019, 1.97000003},
        {0.50999999, -1.005, 1.96749997},
        {0.505999982, -1.00899994, 1.96949995}},
       {{0.49, -0.98, 1.97}, {0.51, -1.005, 1.9675}, {0.506, -1.009, 1.9695}}},
      {"SGD(momentum=0.9)",
       sgd(0.9, 0, false),
       {{0.49000001, -0.980000019, 1.97000003},
        {0.505500019, -0.995999992, 1.954},
        {0.507080019, -1.00575995, 1.95024002}},
       {{0.49, -0.98, 1.97}, {0.5055, -0.996, 1.954}, {0.50708, -1.00576, 1.95024}}},
      {"SGD(momentum=0.9, weight_decay=0.01)",
       sgd(0.9, 0.01, false),
       {{0.489499986, -0.978999972, 1.96800005},
        {0.504530251, -0.994060457, 1.95011604},
        {0.505840242, -1.00328338, 1.94528782}},
       {{0.4895, -0.979, 1.968}, {0.50453025, -0.9940605, 1.950116}, {0.50584023395, -1.0032834679, 1.9452877368}}},
      {"SGD(momentum=0.9, weight_decay=0.01, nesterov=True)",
       sgd(0.9, 0.01, true),
       {{0.480049998, -0.960099995, 1.93920004},
        {0.513341427, -0.998182893, 1.91964781},
        {0.5104177, -1.01028621, 1.91692865}},
       {{0.48005, -0.9601, 1.9392},
        {0.5133414525, -0.998182905, 1.91964776},
        {0.51041771464805, -1.0102862592961, 1.9169285434512}}},
      {"Adam()",
       adam("adam", 0.9, 0.999, 1e-8, 0),
       {{0.400000006, -0.899999976, 1.89999998},
        {0.427975178, -0.922110736, 1.86083364},
        {0.430178642, -0.93296957, 1.85332453}},
       {{0.400000009999999, -0.9000000049999998, 1.9000000033333333},
        {0.4279751837425637, -0.9221107676086163, 1.8608336377419696},
        {0.4301786569383916, -0.9329696271908081, 1.8533245561483938}}},
      {"Adam(betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)",
       adam("adam", 0.8, 0.99, 1e-6, 0.1),
       {{0.400000662, -0.900000334, 1.90000021},
        {0.424132496, -0.913135529, 1.85459745},
        {0.422575206, -0.919831812, 1.83942318}},
       {{0.4000006666622222, -0.9000003333322222, 1.9000001999996},
        {0.42413251068754126, -0.9131355187159221, 1.8545974869298585},
        {0.4225752151235246, -0.9198318021510362, 1.8394232698219386}}},
      {"AdamW(betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)",
       adam("adamw", 0.8, 0.99, 1e-6, 0.1),
       {{0.395000994, -0.890000463, 1.88000035},
        {0.423447162, -0.910307705, 1.83305359},
        {0.42433396, -0.920152247, 1.82351112}},
       {{0.3950009999900001, -0.8900004999975, 1.8800003333322222},
        {0.42344715987446, -0.9103077551966529, 1.8330535882978805},
        {0.4243339525295314, -0.9201522585506391, 1.8235110040341105}}},
  };
}

template <typename T>
class OptimizerTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(OptimizerTyped, Scalars);

TYPED_TEST(OptimizerTyped, MatchesTorchForThreeSteps) {
  using T = TypeParam;
  for (const TorchCase& tc : torch_cases()) {
    ParamStore<T> store;
    store.add("w", "W", Tensor<T>({3}, std::vector<T>(kW0.begin(), kW0.end())));
    auto params = store.trainable();
    auto opt = Optimizer<T>::make(tc.cfg);
    const auto& want = std::is_same_v<T, float> ? tc.want_f32 : tc.want_f64;
    for (size_t k = 0; k < kG.size(); ++k) {
      set_grad(*params[0], kG[k]);
      opt->step(params, kLr[k]);
      auto got = values(*params[0]);
      for (size_t i = 0; i < got.size(); ++i)
        expect_close(got[i], want[k][i], fmt::format("{} step {} element {}", tc.name, k + 1, i));
    }
    EXPECT_EQ(opt->steps_taken(), 3);
  }
}

// The momentum recurrence written out, independently of the torch table.
TYPED_TEST(OptimizerTyped, SgdMomentumByHand) {
  using T = TypeParam;
  ParamStore<T> store;
  store.add("w", "W", Tensor<T>::scalar(T(1)));
  auto params = store.trainable();
  auto opt = Optimizer<T>::make(sgd(0.5, 0, false));
  set_grad(*params[0], {2.0});
  opt->step(params, 0.25);  // b = g = 2 (first step: no decay of an empty buffer); w = 1 - 0.25*2
  EXPECT_EQ(params[0]->var.value()[0], T(0.5));
  set_grad(*params[0], {4.0});
  opt->step(params, 0.25);  // b = 0.5*2 + 4 = 5; w = 0.5 - 0.25*5
  EXPECT_EQ(params[0]->var.value()[0], T(-0.75));
  auto st = opt->state_tensors();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].first, "buf.w");
  EXPECT_EQ(st[0].second[0], T(5));
}

// A param absent from the first two steps (frozen group / no grad) starts its own Adam step count
// when it joins: torch skips params with .grad None, and its step 1 bias correction then applies.
//   a = tensor([1.0, -2.0]); b = tensor([0.3, 0.7]); opt = Adam([a, b], lr=0.1, foreach=False)
//   a.grad = [0.5, 0.25]; opt.step(); opt.step(); b.grad = [-1.0, 2.0]; opt.step()
TYPED_TEST(OptimizerTyped, LateParamGetsItsOwnStepCount) {
  using T = TypeParam;
  ParamStore<T> store;
  store.add("a", "W", Tensor<T>({2}, std::vector<T>{T(1.0), T(-2.0)}));
  store.add("b", "C", Tensor<T>({2}, std::vector<T>{T(0.3), T(0.7)}));
  auto opt = Optimizer<T>::make(adam("adam", 0.9, 0.999, 1e-8, 0));
  store.set_trainable({"W"});
  set_grad(*store.find("a"), {0.5, 0.25});
  opt->step(store.trainable(), 0.1);
  opt->step(store.trainable(), 0.1);
  store.set_trainable({"all"});
  set_grad(*store.find("b"), {-1.0, 2.0});
  opt->step(store.trainable(), 0.1);

  const bool f32 = std::is_same_v<T, float>;
  std::vector<double> want_a = f32 ? std::vector<double>{0.700000048, -2.29999971}
                                   : std::vector<double>{0.7000000060000007, -2.2999999879999997};
  std::vector<double> want_b =
      f32 ? std::vector<double>{0.400000006, 0.600000024} : std::vector<double>{0.399999999, 0.6000000004999999};
  for (int i = 0; i < 2; ++i) {
    expect_close(store.find("a")->var.value()[i], want_a[i], "a");
    expect_close(store.find("b")->var.value()[i], want_b[i], "b");
  }
  std::map<std::string, T> counts;
  for (auto& [key, t] : opt->state_tensors())
    if (key.rfind("step.", 0) == 0) counts[key] = t.item();
  EXPECT_EQ(counts, (std::map<std::string, T>{{"step.a", T(3)}, {"step.b", T(1)}}));
}

TYPED_TEST(OptimizerTyped, ParamWithoutGradIsUntouched) {
  using T = TypeParam;
  ParamStore<T> store;
  store.add("w", "W", Tensor<T>({2}, T(1)));
  auto opt = Optimizer<T>::make(adam("adamw", 0.9, 0.999, 1e-8, 0.5));
  opt->step(store.trainable(), 0.1);  // no backward ran: no grad buffer, so no decay either
  EXPECT_EQ(store.find("w")->var.value()[0], T(1));
  EXPECT_TRUE(opt->state_tensors().empty());
  EXPECT_EQ(opt->steps_taken(), 1);
}

// Save after 2 steps, load into a fresh optimizer, continue both for 2 more: bit-identical.
TYPED_TEST(OptimizerTyped, StateRoundTripContinuesIdentically) {
  using T = TypeParam;
  for (const OptimizerConfig& cfg :
       {sgd(0.9, 0.01, true), adam("adam", 0.9, 0.999, 1e-8, 0.1), adam("adamw", 0.8, 0.99, 1e-6, 0.1)}) {
    ParamStore<T> s1, s2;
    s1.add("attn.w", "W", Tensor<T>({3}, std::vector<T>(kW0.begin(), kW0.end())));
    s1.add("attn.b", "W", Tensor<T>({1}, T(0.25)));
    auto o1 = Optimizer<T>::make(cfg);
    auto run = [&](ParamStore<T>& s, Optimizer<T>& o, size_t k) {
      set_grad(*s.find("attn.w"), kG[k % 3]);
      set_grad(*s.find("attn.b"), {double(k) - 0.5});
      o.step(s.trainable(), kLr[k % 3]);
    };
    run(s1, *o1, 0);
    run(s1, *o1, 1);

    // The "checkpoint": parameter values, optimizer tensors and step count.
    for (auto& p : s1.all()) s2.add(p.name, p.group, p.var.value().clone());
    auto o2 = Optimizer<T>::make(cfg);
    auto saved = o1->state_tensors();
    o2->load_state(o1->steps_taken(), saved);
    for (auto& [key, t] : saved) t.fill(T(99));  // state_tensors gave copies: o1 is unaffected

    for (size_t k = 2; k < 4; ++k) {
      run(s1, *o1, k);
      run(s2, *o2, k);
    }
    EXPECT_EQ(o2->steps_taken(), 4);
    for (const char* name : {"attn.w", "attn.b"}) {
      auto a = values(*s1.find(name)), b = values(*s2.find(name));
      ASSERT_EQ(a.size(), b.size());
      EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(T))) << enum_name(cfg.kind) << " " << name;
    }
  }
}

TEST(Optimizer, StateKeysAreSlotDotName) {
  ParamStore<double> store;
  store.add("attn.w", "W", Tensor<double>({2}, 1.0));
  auto opt = Optimizer<double>::make(adam("adam", 0.9, 0.999, 1e-8, 0));
  set_grad(*store.find("attn.w"), {1.0, 2.0});
  opt->step(store.trainable(), 0.1);
  std::vector<std::string> keys;
  for (auto& [k, t] : opt->state_tensors()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"m.attn.w", "step.attn.w", "v.attn.w"}));
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(Optimizer, ConfigErrorsNameTheProblem) {
  auto msg = error_of([&] { parse_enum<OptimizerKind>("rmsprop", "stages[0].optimizer"); });
  EXPECT_NE(msg.find("'stages[0].optimizer' = \"rmsprop\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("sgd, adam, adamw"), std::string::npos) << msg;
  EXPECT_NE(error_of([] { Optimizer<float>::make(sgd(0, 0, true)); }).find("nesterov"), std::string::npos);
  auto a = adam("adam", 0.9, 0.999, 1e-8, 0);
  a.momentum = 0.9;
  EXPECT_NE(error_of([&] { Optimizer<float>::make(a); }).find("momentum"), std::string::npos);
  EXPECT_THROW(Optimizer<float>::make(adam("adam", 1.0, 0.999, 1e-8, 0)), Error);
  EXPECT_THROW(Optimizer<float>::make(sgd(0, -1, false)), Error);
  ParamStore<float> store;
  store.add("w", "W", Tensor<float>({1}, 1.f));
  set_grad(*store.find("w"), {1.0});
  EXPECT_THROW(Optimizer<float>::make(sgd(0, 0, false))->step(store.trainable(), -0.1), Error);
}

TEST(Optimizer, LoadStateRejectsBadCheckpoints) {
  using V = std::vector<std::pair<std::string, Tensor<double>>>;
  auto adam_opt = Optimizer<double>::make(adam("adam", 0.9, 0.999, 1e-8, 0));
  auto msg = error_of([&] { adam_opt->load_state(1, V{{"buf.w", Tensor<double>({2})}}); });
  EXPECT_NE(msg.find("'buf'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("m, step, v"), std::string::npos) << msg;
  // Only some of a param's slots.
  msg = error_of([&] { adam_opt->load_state(1, V{{"m.w", Tensor<double>({2})}}); });
  EXPECT_NE(msg.find("lacks slot"), std::string::npos) << msg;
  // A step count that is not a whole number.
  EXPECT_THROW(
      adam_opt->load_state(
          1, V{{"m.w", Tensor<double>({2})}, {"v.w", Tensor<double>({2})}, {"step.w", Tensor<double>::scalar(1.5)}}),
      Error);
  EXPECT_THROW(adam_opt->load_state(1, V{{"nodot", Tensor<double>({2})}}), Error);
  // Plain SGD keeps no state at all.
  EXPECT_THROW(Optimizer<double>::make(sgd(0, 0, false))->load_state(0, V{{"buf.w", Tensor<double>({2})}}), Error);

  // Shapes are checked against the param when it is next updated.
  adam_opt->load_state(
      1, V{{"m.w", Tensor<double>({2})}, {"v.w", Tensor<double>({2})}, {"step.w", Tensor<double>::scalar(1)}});
  ParamStore<double> store;
  store.add("w", "W", Tensor<double>({3}, 1.0));
  set_grad(*store.find("w"), {1.0, 1.0, 1.0});
  msg = error_of([&] { adam_opt->step(store.trainable(), 0.1); });
  EXPECT_NE(msg.find("'m.w' has shape [2]"), std::string::npos) << msg;
}

// ---- gradient clipping ----

TYPED_TEST(OptimizerTyped, ClipGradNorm) {
  using T = TypeParam;
  ParamStore<T> store;
  store.add("a", "W", Tensor<T>({2}));
  store.add("b", "W", Tensor<T>({1}));
  store.add("unused", "W", Tensor<T>({4}));  // never reached by backward: no grad, not counted
  auto params = store.trainable();
  set_grad(*store.find("a"), {3.0, 4.0});
  set_grad(*store.find("b"), {12.0});
  EXPECT_DOUBLE_EQ(grad_norm(params), 13.0);  // sqrt(9 + 16 + 144)

  // Above the limit: nothing changes, the norm is still reported.
  EXPECT_DOUBLE_EQ(clip_grad_norm(params, 20.0), 13.0);
  EXPECT_EQ(store.find("a")->var.grad()[0], T(3));

  // torch: coef = max_norm / (norm + 1e-6), grads *= coef.
  EXPECT_DOUBLE_EQ(clip_grad_norm(params, 6.5), 13.0);
  const T coef = T(6.5 / (13.0 + 1e-6));
  EXPECT_EQ(store.find("a")->var.grad()[0], T(3) * coef);
  EXPECT_EQ(store.find("a")->var.grad()[1], T(4) * coef);
  EXPECT_EQ(store.find("b")->var.grad()[0], T(12) * coef);
  EXPECT_NEAR(grad_norm(params), 6.5, 1e-5);
  EXPECT_FALSE(store.find("unused")->var.has_grad());
  EXPECT_THROW(clip_grad_norm(params, 0.0), Error);
}

// ---- learning-rate schedules ----

TEST(Schedule, ConstantAndWarmup) {
  ScheduleConfig c;
  EXPECT_EQ(learning_rate(c, 0.1, 0, 100), 0.1);
  EXPECT_EQ(learning_rate(c, 0.1, 99, 100), 0.1);
  c.kind = ScheduleKind::Warmup;
  c.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0.2, 0, 100), 0.05);  // 0.2 * 1/4
  EXPECT_DOUBLE_EQ(learning_rate(c, 0.2, 2, 100), 0.15);  // 0.2 * 3/4
  EXPECT_DOUBLE_EQ(learning_rate(c, 0.2, 3, 100), 0.2);   // 0.2 * 4/4
  EXPECT_EQ(learning_rate(c, 0.2, 50, 100), 0.2);
  c.warmup_steps = 0;
  EXPECT_EQ(learning_rate(c, 0.2, 0, 100), 0.2);
}

TEST(Schedule, Cosine) {
  ScheduleConfig c;
  c.kind = ScheduleKind::Cosine;
  c.warmup_steps = 2;
  c.min_lr_ratio = 0.1;
  // W = 2, N = 10: warmup 0.5, 1.0; then q = (step - 2) / 8.
  EXPECT_DOUBLE_EQ(learning_rate(c, 1.0, 0, 10), 0.5);
  EXPECT_DOUBLE_EQ(learning_rate(c, 1.0, 1, 10), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(c, 1.0, 2, 10), 1.0);              // q = 0
  EXPECT_DOUBLE_EQ(learning_rate(c, 1.0, 6, 10), 0.1 + 0.9 * 0.5);  // q = 1/2: cos = 0
  const double q = 7.0 / 8;                                         // last step, 9
  EXPECT_DOUBLE_EQ(learning_rate(c, 1.0, 9, 10), 0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * q)));
  EXPECT_DOUBLE_EQ(learning_rate(c, 1.0, 10, 10), 0.1);  // reaches base * r at N
  EXPECT_DOUBLE_EQ(learning_rate(c, 1.0, 30, 10), 0.1);  // and stays
  c.warmup_steps = 0;
  c.min_lr_ratio = 0;
  EXPECT_EQ(learning_rate(c, 0.3, 0, 4), 0.3);
  EXPECT_DOUBLE_EQ(learning_rate(c, 0.3, 2, 4), 0.15);
}

TEST(Schedule, BadConfig) {
  ScheduleConfig c;
  auto msg = error_of([&] { parse_enum<ScheduleKind>("linear", "stages[0].schedule"); });
  EXPECT_NE(msg.find("constant, warmup, cosine"), std::string::npos) << msg;
  c.kind = ScheduleKind::Cosine;
  c.min_lr_ratio = 2;
  EXPECT_THROW(learning_rate(c, 0.1, 0, 10), Error);
  c.min_lr_ratio = 0;
  c.warmup_steps = -1;
  EXPECT_THROW(learning_rate(c, 0.1, 0, 10), Error);
}

}  // namespace
}  // namespace ihlab
