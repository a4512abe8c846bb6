// The in-context n-gram regression task (tasks/ngram_induction.h): IH_n and GIH_n against a direct
// computation on a hand example, n = 2 against mixed-target's IH_2 (alpha* = 0), the reference
// losses, determinism of sample() and configuration errors that name the key.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tasks/mixed_target.h"
#include "tasks/ngram_induction.h"
#include "tasks/registry.h"
#include "expect_error.h"

namespace ihlab {
namespace {

NgramInductionConfig config(int64_t n, int64_t L, NgramSimilarity sim = NgramSimilarity::Dot, double w = 1.0) {
  NgramInductionConfig c;
  c.n = n, c.length = L, c.similarity = sim, c.w_star = w;
  return c;
}

// A scalar sequence of L = 6 (1-based x_1..x_6) and n = 3: the query window is (x_6, x_5); the
// candidates are s = 3, 4, 5 with key windows (x_2, x_1), (x_3, x_2), (x_4, x_3).
TEST(NgramInduction, HandExampleDotAndDistance) {
  const std::vector<double> x = {0.5, -1.0, 2.0, 0.25, -0.5, 1.5};
  const double w = 0.7;
  auto softmax_mix = [&](const std::vector<double>& z) {  // sum_s x_s softmax(z), s = 3, 4, 5
    double total = 0, out = 0;
    for (double v : z) total += std::exp(v);
    for (size_t i = 0; i < z.size(); ++i) out += std::exp(z[i]) / total * x[2 + i];
    return out;
  };
  // dot: z_s = w (x_6 x_{s-1} + x_5 x_{s-2}).
  const double dot =
      softmax_mix({w * (1.5 * -1.0 + -0.5 * 0.5), w * (1.5 * 2.0 + -0.5 * -1.0), w * (1.5 * 0.25 + -0.5 * 2.0)});
  // distance: z_s = -w ((x_6 - x_{s-1})^2 + (x_5 - x_{s-2})^2) / 2.
  auto d2 = [](double a, double b) { return (a - b) * (a - b); };
  const double dist = softmax_mix({-w * (d2(1.5, -1.0) + d2(-0.5, 0.5)) / 2, -w * (d2(1.5, 2.0) + d2(-0.5, -1.0)) / 2,
                                   -w * (d2(1.5, 0.25) + d2(-0.5, 2.0)) / 2});
  double y = 0;
  NgramInductionTask::target(x.data(), 6, 1, 3, w, NgramSimilarity::Dot, &y);
  EXPECT_NEAR(y, dot, 1e-14);
  NgramInductionTask::target(x.data(), 6, 1, 3, w, NgramSimilarity::Distance, &y);
  EXPECT_NEAR(y, dist, 1e-14);
  EXPECT_GT(std::abs(dot - dist), 1e-3);  // the two similarities differ on this example
}

// Sampled batches: features hold the tokens, values the target of those (float-rounded) tokens.
TEST(NgramInduction, SampledTargetsMatchTheDefinition) {
  NgramInductionConfig c = config(4, 9, NgramSimilarity::Distance, 1.5);
  c.dim = 2, c.slots = 2;
  NgramInductionTask t(c);
  EXPECT_EQ(t.feature_dim(), 4);
  EXPECT_EQ(t.value_dim(), 2);
  Batch b = t.sample(50, 7, StreamKind::Data, 3);
  ASSERT_EQ(b.values.size(), 100u);
  EXPECT_EQ(b.num_targets(), 0);
  for (int64_t r = 0; r < b.size; ++r) {
    std::vector<double> x(9 * 2);
    for (int64_t i = 0; i < 9; ++i)
      for (int64_t j = 0; j < 4; ++j) {
        const float f = b.features[(r * 9 + i) * 4 + j];
        if (j < 2)
          x[i * 2 + j] = f;
        else
          EXPECT_EQ(f, 0.0f);  // the second slot is empty room
      }
    // Directly: candidates s = 4..8 (1-based), windows of 3 tokens.
    for (int64_t j = 0; j < 2; ++j) {
      std::vector<double> z;
      for (int64_t s = 4; s <= 8; ++s) {
        double g = 0;
        for (int64_t k = 0; k <= 2; ++k)
          for (int64_t e = 0; e < 2; ++e) {
            const double a = x[(9 - 1 - k) * 2 + e], bk = x[(s - 1 - 1 - k) * 2 + e];
            g -= (a - bk) * (a - bk);
          }
        z.push_back(1.5 * g / 3);
      }
      double total = 0, y = 0;
      for (double v : z) total += std::exp(v);
      for (int64_t s = 4; s <= 8; ++s) y += std::exp(z[s - 4]) / total * x[(s - 1) * 2 + j];
      EXPECT_NEAR(b.values[r * 2 + j], y, 1e-12) << "sequence " << r << " coordinate " << j;
    }
  }
}

// n = 2 with the dot similarity is IH_2: the same sequences and targets as mixed-target at alpha* = 0.
TEST(NgramInduction, TwoGramIsMixedTargetsInductionHead) {
  NgramInductionConfig c = config(2, 15, NgramSimilarity::Dot, 2.0);
  c.dim = 3, c.slots = 2;
  MixedTargetConfig m;
  m.length = 15, m.dim = 3, m.slots = 2, m.w_star = 2.0, m.alpha_star = 0.0;
  Batch a = NgramInductionTask(c).sample(64, 11, StreamKind::Eval, 0);
  Batch b = MixedTargetTask(m).sample(64, 11, StreamKind::Eval, 0);
  EXPECT_EQ(a.features, b.features);
  ASSERT_EQ(a.values.size(), b.values.size());
  for (size_t i = 0; i < a.values.size(); ++i) EXPECT_NEAR(a.values[i], b.values[i], 1e-14) << i;
}

TEST(NgramInduction, ReferenceLossesAreOrdered) {
  NgramInductionTask t(config(3, 12));
  Batch b = t.sample(4000, 2, StreamKind::Eval, 0);
  Scalars ref = t.reference_losses(b);
  ASSERT_EQ(ref.size(), 3u);
  EXPECT_EQ(ref[0].first, "ref.zero");
  EXPECT_EQ(ref[1].first, "ref.mean");
  EXPECT_EQ(ref[2].first, "ref.lazy");
  // Centring lowers the loss of predicting 0 by 1/2 mean(y)^2; the lazy fit (the candidates' mean
  // token) explains part of the variance but not all: the rest needs the window comparison.
  EXPECT_LE(ref[1].second, ref[0].second);
  EXPECT_LT(ref[2].second, ref[1].second);
  EXPECT_GT(ref[2].second, 0.3 * ref[1].second);
}

TEST(NgramInduction, SampleIsAPureFunctionOfItsArguments) {
  NgramInductionTask t(config(3, 10));
  Batch a = t.sample(100, 9, StreamKind::Data, 4);
  Batch again = t.sample(100, 9, StreamKind::Data, 4);
  EXPECT_EQ(a.features, again.features);
  EXPECT_EQ(a.values, again.values);
  EXPECT_EQ(t.sample(13, 9, StreamKind::Data, 4).features, a.slice(0, 13).features);
  EXPECT_NE(t.sample(100, 9, StreamKind::Data, 5).features, a.features);
}

TEST(NgramInduction, BadConfigurationsNameTheKey) {
  expect_error([] { NgramInductionTask t(config(4, 5)); }, {"task.length", "= 5", "task.n = 4", "length >= n + 2 = 6"});
  expect_error([] { NgramInductionTask t(config(1, 8)); }, {"task.n", "= 1", "n >= 2"});
  NgramInductionConfig c = config(3, 8);
  c.w_star = NAN;
  expect_error([&] { NgramInductionTask t(c); }, {"task.w_star", "finite"});
  // Through the registry: unknown choices and out-of-range keys name the key and what is allowed.
  const TaskEntry& e = find_task("ngram-induction");
  expect_error([&] { e.schema.resolve({{"similarity", "cosine"}}); }, {"similarity", "cosine", "dot", "distance"});
  expect_error([&] { e.schema.resolve({{"n", 1}}); }, {"n"});
  expect_error([&] { e.schema.resolve({{"dim", 0}}); }, {"dim"});
  nlohmann::json j = e.schema.resolve({{"n", 4}, {"length", 10}, {"similarity", "distance"}});
  j["name"] = "ngram-induction";
  auto task = make_task(j);
  EXPECT_EQ(task->length(), 10);
  EXPECT_EQ(task->value_dim(), 1);
  j["length"] = 5;
  expect_error([&] { make_task(j); }, {"task.length", "= 5", "n + 2"});
}

}  // namespace
}  // namespace ihlab
