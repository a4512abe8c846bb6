// The classic induction-head tasks: repeated-tokens, icl-mc and bursty, with their references.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "tasks/bursty_task.h"
#include "tasks/icl_mc_predictors.h"
#include "tasks/icl_mc_task.h"
#include "tasks/ngram_predictors.h"
#include "tasks/registry.h"
#include "tasks/repeated_tokens.h"
#include "expect_error.h"

namespace ihlab {
namespace {

std::unique_ptr<Task> make(const std::string& name, nlohmann::json overrides = nlohmann::json::object()) {
  for (const auto& e : task_registry())
    if (e.name == name) {
      nlohmann::json c = e.schema.resolve(overrides);
      c["name"] = name;
      return make_task(c);
    }
  throw Error("no task " + name);
}

// Same batch for the same arguments, for 1 and 2 threads, and row r independent of the batch size.
void expect_deterministic(const Task& t, uint64_t seed) {
  const int saved = omp_get_max_threads();
  Batch a = t.sample(24, seed, StreamKind::Data, 5);
  omp_set_num_threads(1);
  Batch one = t.sample(24, seed, StreamKind::Data, 5);
  omp_set_num_threads(2);
  Batch two = t.sample(24, seed, StreamKind::Data, 5);
  omp_set_num_threads(saved);
  EXPECT_EQ(a.tokens, one.tokens);
  EXPECT_EQ(a.tokens, two.tokens);
  EXPECT_EQ(a.targets, two.targets);
  EXPECT_EQ(a.features, two.features);
  Batch prefix = t.sample(7, seed, StreamKind::Data, 5);
  Batch head = a.slice(0, 7);
  EXPECT_EQ(prefix.tokens, head.tokens);
  EXPECT_EQ(prefix.targets, head.targets);
  EXPECT_EQ(prefix.features, head.features);
  EXPECT_NE(t.sample(24, seed, StreamKind::Data, 6).tokens, a.tokens);
  EXPECT_NE(t.sample(24, seed, StreamKind::Eval, 5).tokens, a.tokens);
  ASSERT_EQ(int64_t(a.tokens.size()), 24 * t.length());
  for (int32_t x : a.tokens) ASSERT_TRUE(x >= 0 && x < t.vocab());
  for (int32_t x : a.targets) ASSERT_TRUE(x >= -1 && x < t.vocab());
}

// ------------------------------------------------------------------------------ repeated-tokens

TEST(RepeatedTokens, LayoutTargetsAndDeterminism) {
  auto t = make("repeated-tokens");
  expect_deterministic(*t, 3);
  auto& task = dynamic_cast<RepeatedTokensTask&>(*t);
  EXPECT_EQ(t->vocab(), 65);
  EXPECT_EQ(t->length(), 101);
  Batch b = t->sample(10, 1, StreamKind::Data, 0);
  for (int64_t r = 0; r < b.size; ++r) {
    const int32_t* tok = b.tokens.data() + r * b.length;
    EXPECT_EQ(tok[0], task.bos());
    for (int64_t i = 1; i < b.length; ++i) EXPECT_LT(tok[i], 64);
    for (int64_t i = 26; i < b.length; ++i) EXPECT_EQ(tok[i], tok[i - 25]) << "copies of the block";
    for (int64_t i = 0; i + 1 < b.length; ++i) EXPECT_EQ(b.targets[r * b.length + i], tok[i + 1]);
    EXPECT_EQ(b.targets[r * b.length + b.length - 1], -1);
  }
  auto rep = make("repeated-tokens", {{"targets", "repeats"}, {"block", 5}, {"repeats", 2}, {"vocab", 7}});
  Batch br = rep->sample(3, 1, StreamKind::Data, 0);
  ASSERT_EQ(br.length, 11);
  for (int64_t i = 0; i < 11; ++i)  // targets tokens[6..10] = the second copy, from positions 5..9
    EXPECT_EQ(br.targets[i] >= 0, i >= 5 && i <= 9) << i;
  EXPECT_EQ(br.num_targets(), 3 * 5);
}

TEST(RepeatedTokens, ReferencesAreExact) {
  auto t = make("repeated-tokens", {{"vocab", 10}, {"block", 4}, {"repeats", 3}});
  auto& task = dynamic_cast<RepeatedTokensTask&>(*t);
  Batch b = t->sample(50, 2, StreamKind::Eval, 0);
  auto preds = task.predictions(b);
  auto expected = task.expected_position_losses();
  ASSERT_EQ(preds.size(), 2u);
  for (size_t j = 0; j < preds.size(); ++j) {
    EXPECT_EQ(preds[j].name, expected[j].name);
    EXPECT_TRUE(expected[j].exact);
    PositionAccumulator acc(b.length);
    acc.add(target_losses(preds[j], b), b.size, b.length);
    PositionLosses got = acc.finish(preds[j].name);
    for (int64_t i = 0; i < b.length; ++i) {
      if (i + 1 == b.length) {
        EXPECT_TRUE(std::isnan(got.mean[i]) && std::isnan(expected[j].mean[i]));
        continue;
      }
      EXPECT_NEAR(got.mean[i], expected[j].mean[i], 1e-12) << preds[j].name << " position " << i;
      EXPECT_NEAR(got.std_error[i], 0.0, 1e-9);  // exact: no spread over sequences
    }
    for (int64_t r = 0; r < b.size; ++r)
      for (int64_t i = 0; i < b.length; ++i) {
        double s = 0;
        for (int64_t x = 0; x < t->vocab(); ++x) s += preds[j].at(r, i)[x];
        EXPECT_NEAR(s, 1.0, 1e-12);
        EXPECT_EQ(preds[j].at(r, i)[task.bos()], 0.0);
      }
  }
  Scalars ref = t->reference_losses(b);
  ASSERT_EQ(ref.size(), 2u);
  EXPECT_EQ(ref[0].first, "ref.uniform");
  EXPECT_NEAR(ref[0].second, std::log(10.0), 1e-12);
  EXPECT_EQ(ref[1].first, "ref.oracle");
  EXPECT_NEAR(ref[1].second, std::log(10.0) * 4 / 12, 1e-12);  // 4 of the 12 targets are unpredictable
}

TEST(RepeatedTokens, BadConfigNamesTheKey) {
  expect_error([] { make("repeated-tokens", {{"repeats", 1}}); }, {"repeats"});
  expect_error([] { make("repeated-tokens", {{"targets", "some"}}); }, {"targets", "repeats"});
  expect_error([] { RepeatedTokensTask(RepeatedTokensConfig{1, 25, 4, RepeatedTargets::All}); }, {"task.vocab", "1"});
  expect_error(
      [] {
        RepeatedTokensTask(RepeatedTokensConfig{8, 1 << 20, 1 << 20, RepeatedTargets::All});
      },
      {"task.block"});
}

// ------------------------------------------------------------------------------ icl-mc: chains

IclMcConfig mc(int k, int n, IclMcVariant v, double alpha = 1.0, int length = 101) {
  IclMcConfig c;
  c.states = k, c.order = n, c.variant = v, c.alpha = alpha, c.length = length;
  c.validate();
  return c;
}

// max_s |(pi P)(s) - pi(s)| for the tuple chain.
double stationarity_error(const MarkovKernel& K, const std::vector<double>& pi) {
  const int64_t m = K.contexts();
  std::vector<double> next(m, 0.0);
  for (int64_t s = 0; s < m; ++s)
    for (int x = 0; x < K.vocab; ++x) next[(s * K.vocab) % m + x] += pi[s] * K.row(s)[x];
  double err = 0;
  for (int64_t s = 0; s < m; ++s) err = std::max(err, std::abs(next[s] - pi[s]));
  return err;
}

TEST(IclMc, StationaryDistribution) {
  // Two states: P = [[1-a, a], [b, 1-b]] has pi = (b, a) / (a + b).
  MarkovKernel two{2, {-1}, {0.7, 0.3, 0.1, 0.9}};
  auto pi = stationary_tuple_distribution(two);
  EXPECT_NEAR(pi[0], 0.25, 1e-14);
  EXPECT_NEAR(pi[1], 0.75, 1e-14);
  // Dense solve (<= 64 tuples) and lazy power iteration (81 tuples) alike.
  for (auto [k, n] : std::vector<std::pair<int, int>>{{3, 2}, {8, 2}, {3, 3}, {4, 4}, {9, 3}, {3, 5}}) {
    IclMcConfig c = mc(k, n, IclMcVariant::Standard, 0.5);
    for (int j = 0; j < 5; ++j) {
      RandomStream rs(4, StreamKind::Test, 100 + k * 10 + n, j);
      IclMcChain ch = sample_chain(c, rs);
      double total = 0;
      for (double v : ch.stationary) {
        total += v;
        EXPECT_GE(v, 0.0);
      }
      EXPECT_NEAR(total, 1.0, 1e-12);
      EXPECT_LT(stationarity_error(ch.kernel, ch.stationary), 1e-12) << "k=" << k << " n=" << n;
    }
  }
}

// The first n-1 tokens come from their own chain's stationary law: sum_r pi_r(s_r) has the mean
// and variance that law predicts, and a uniform start would be far off (the test has power).
TEST(IclMc, StartIsStationary) {
  for (int n : {2, 3}) {
    IclMcTask task(mc(3, n, IclMcVariant::Standard, 1.0, 8));
    const int64_t R = 4000;
    Batch b = task.sample(R, 9, StreamKind::Eval, 0);
    auto chains = task.chains(R, 9, StreamKind::Eval, 0);
    double stat = 0, mean = 0, var = 0, uniform_mean = 0;
    for (int64_t r = 0; r < R; ++r) {
      const auto& pi = chains[r].stationary;
      int64_t s = 0;
      for (int t = 0; t < n - 1; ++t) s = s * 3 + b.tokens[r * b.length + t];  // x_0 most significant
      stat += pi[s];
      double m1 = 0, m2 = 0;
      for (double p : pi) m1 += p * p, m2 += p * p * p;
      mean += m1;
      var += m2 - m1 * m1;
      uniform_mean += 1.0 / double(pi.size());
    }
    const double z = (stat - mean) / std::sqrt(var);
    std::printf("[ start    ] n=%d  sum pi(s0) %.1f, stationary predicts %.1f +- %.1f, uniform start %.1f\n", n, stat,
                mean, std::sqrt(var), uniform_mean);
    EXPECT_LT(std::abs(z), 4.0);
    EXPECT_GT((mean - uniform_mean) / std::sqrt(var), 8.0);
  }
}

TEST(IclMc, DoublyStochasticAndUnigramVariants) {
  for (auto [k, n] : std::vector<std::pair<int, int>>{{2, 2}, {3, 2}, {4, 2}, {6, 2}, {3, 3}, {2, 4}}) {
    IclMcConfig c = mc(k, n, IclMcVariant::DoublyStochastic, 0.7);
    const int64_t m = c.contexts(), suffixes = m / k;
    for (int j = 0; j < 20; ++j) {
      RandomStream rs(6, StreamKind::Test, k * 10 + n, j);
      IclMcChain ch = sample_chain(c, rs);
      for (int64_t s = 0; s < m; ++s) {
        double row = 0;
        for (int x = 0; x < k; ++x) row += ch.kernel.row(s)[x];
        EXPECT_NEAR(row, 1.0, 1e-12);
      }
      for (int64_t s = 0; s < suffixes; ++s)  // per suffix, the matrix over (oldest token a, x)
        for (int x = 0; x < k; ++x) {
          double col = 0;
          for (int a = 0; a < k; ++a) col += ch.kernel.row(a * suffixes + s)[x];
          EXPECT_NEAR(col, 1.0, 1e-12) << "k=" << k << " n=" << n;
        }
      for (double p : ch.stationary) EXPECT_DOUBLE_EQ(p, 1.0 / double(m));
      EXPECT_LT(stationarity_error(ch.kernel, ch.stationary), 1e-14);
      auto solved = stationary_tuple_distribution(ch.kernel);  // uniform is THE stationary law
      if (j < 3) {
        for (double p : solved) EXPECT_NEAR(p, 1.0 / double(m), 1e-9);
      }
    }
  }
  // k = 2 with every permutation: P = [[w, 1-w], [1-w, w]].
  RandomStream rs(1, StreamKind::Test, 2);
  IclMcChain two = sample_chain(mc(2, 2, IclMcVariant::DoublyStochastic), rs);
  EXPECT_NEAR(two.kernel.probs[0], two.kernel.probs[3], 1e-15);
  for (int n : {2, 3}) {
    IclMcConfig c = mc(4, n, IclMcVariant::Unigram, 0.5);
    RandomStream ru(2, StreamKind::Test, n);
    IclMcChain ch = sample_chain(c, ru);
    for (int64_t s = 1; s < c.contexts(); ++s)
      for (int x = 0; x < 4; ++x) EXPECT_EQ(ch.kernel.row(s)[x], ch.kernel.row(0)[x]);
    EXPECT_LT(stationarity_error(ch.kernel, ch.stationary), 1e-14);
  }
}

TEST(IclMc, LayoutDeterminismAndChainsReplay) {
  auto t = make("icl-mc");
  expect_deterministic(*t, 11);
  auto& task = dynamic_cast<IclMcTask&>(*t);
  EXPECT_EQ(t->vocab(), 3);
  EXPECT_EQ(t->length(), 101);
  Batch b = t->sample(6, 4, StreamKind::Data, 2);
  auto chains = task.chains(6, 4, StreamKind::Data, 2);
  for (int64_t r = 0; r < 6; ++r) {
    for (int64_t i = 0; i + 1 < b.length; ++i) EXPECT_EQ(b.targets[r * b.length + i], b.tokens[r * b.length + i + 1]);
    EXPECT_EQ(b.targets[r * b.length + b.length - 1], -1);
    // chains() replays the first draws of the row's stream; the tokens follow from the same stream.
    RandomStream rs(4, StreamKind::Data, 2, r);
    IclMcChain c = sample_chain(task.config(), rs);
    EXPECT_EQ(c.kernel.probs, chains[r].kernel.probs);
    std::vector<int32_t> seq = sample_tokens(c, int(b.length), rs);
    EXPECT_TRUE(std::equal(seq.begin(), seq.end(), b.tokens.begin() + r * b.length));
  }
}

// ------------------------------------------------------------------------------ icl-mc: references

TEST(IclMcReferences, AddAlphaByHand) {
  IclMcConfig c = mc(3, 2, IclMcVariant::Standard, 0.5, 7);
  Batch b;
  b.size = 1, b.length = 7;
  b.tokens = {0, 1, 0, 1, 0, 2, 0};
  b.targets = {1, 0, 1, 0, 2, 0, -1};
  ReferencePrediction uni = icl_mc_unigram(c, b), bi = icl_mc_ngram(c, b);
  EXPECT_EQ(bi.name, "ref.bigram");
  // Position 4 (seen 0 1 0 1 0): unigram counts (3, 2, 0) of 5 -> (3.5, 2.5, 0.5) / 6.5.
  EXPECT_NEAR(uni.at(0, 4)[0], 3.5 / 6.5, 1e-15);
  EXPECT_NEAR(uni.at(0, 4)[2], 0.5 / 6.5, 1e-15);
  // Bigram at position 4: current token 0, seen after 0: 1, 1 -> (0.5, 2.5, 0.5) / 3.5.
  EXPECT_NEAR(bi.at(0, 4)[0], 0.5 / 3.5, 1e-15);
  EXPECT_NEAR(bi.at(0, 4)[1], 2.5 / 3.5, 1e-15);
  // Position 6 (current 0; after 0 came 1, 1, 2): (0.5, 2.5, 1.5) / 4.5. Position 0: nothing seen.
  EXPECT_NEAR(bi.at(0, 6)[2], 1.5 / 4.5, 1e-15);
  EXPECT_NEAR(bi.at(0, 0)[1], 1.0 / 3, 1e-15);
  // Position 5 (current 2, never seen before): uniform.
  EXPECT_NEAR(bi.at(0, 5)[0], 1.0 / 3, 1e-15);
  // Order 3: the context of x_{i+1} is (x_{i-1}, x_i); at position 6 it is (2, 0), never seen.
  IclMcConfig c3 = mc(3, 3, IclMcVariant::Standard, 0.5, 7);
  ReferencePrediction tri = icl_mc_ngram(c3, b);
  EXPECT_EQ(tri.name, "ref.ngram");
  EXPECT_NEAR(tri.at(0, 0)[0], 1.0 / 3, 1e-15);  // no context yet
  // Position 4: context (1, 0) was followed by 1 once (x_1 x_2 -> x_3) -> (0.5, 1.5, 0.5) / 2.5.
  EXPECT_NEAR(tri.at(0, 4)[1], 1.5 / 2.5, 1e-15);
}

// The incremental predictors agree with the independent add-alpha module of ngram-markov.
TEST(IclMcReferences, MatchNgramModule) {
  for (int n : {2, 3}) {
    IclMcTask task(mc(3, n, IclMcVariant::Standard, 0.4, 30));
    Batch b = task.sample(20, 5, StreamKind::Eval, 1);
    ReferencePrediction uni = icl_mc_unigram(task.config(), b), ng = icl_mc_ngram(task.config(), b);
    AddAlphaPredictor u = unigram_predictor(3, 0.4), g = ngram_predictor(3, task.config().parents(), 0.4);
    for (int64_t r = 0; r < b.size; ++r) {
      std::span<const int32_t> row(b.tokens.data() + r * b.length, size_t(b.length));
      for (int64_t i = n - 2; i < b.length; ++i) {
        auto pu = u.predict(row.first(i + 1)), pg = g.predict(row.first(i + 1));
        for (int x = 0; x < 3; ++x) {
          EXPECT_NEAR(uni.at(r, i)[x], pu[x], 1e-14);
          EXPECT_NEAR(ng.at(r, i)[x], pg[x], 1e-14) << "n=" << n << " i=" << i;
        }
      }
    }
  }
}

TEST(IclMcReferences, OracleReadsTheKernel) {
  IclMcTask task(mc(3, 3, IclMcVariant::Standard, 1.0, 12));
  Batch b = task.sample(30, 2, StreamKind::Eval, 0);
  auto chains = task.chains(30, 2, StreamKind::Eval, 0);
  ReferencePrediction o = icl_mc_oracle(task.config(), b, chains);
  for (int64_t r = 0; r < b.size; ++r) {
    const int32_t* x = b.tokens.data() + r * b.length;
    for (int64_t i = 1; i < b.length; ++i)  // context of x_{i+1}: x_i least significant, x_{i-1}
      for (int y = 0; y < 3; ++y) EXPECT_EQ(o.at(r, i)[y], chains[r].kernel.row(x[i] + 3 * x[i - 1])[y]);
    // Position 0: x_1 given x_0 under the stationary pair law pi(x_0, x_1), index x_0 * 3 + x_1.
    const auto& pi = chains[r].stationary;
    double z = pi[x[0] * 3] + pi[x[0] * 3 + 1] + pi[x[0] * 3 + 2];
    for (int y = 0; y < 3; ++y) EXPECT_NEAR(o.at(r, 0)[y], pi[x[0] * 3 + y] / z, 1e-14);
  }
}

TEST(IclMcReferences, ClosedForms) {
  const double euler = 0.57721566490153286;
  EXPECT_NEAR(digamma(1.0), -euler, 1e-13);
  EXPECT_NEAR(digamma(0.5), -euler - 2 * std::log(2.0), 1e-13);
  EXPECT_NEAR(digamma(10.0), 2.251752589066721, 1e-13);
  // Dirichlet(1, 1): p ~ U(0, 1), E[H] = 1/2 nats.
  EXPECT_NEAR(dirichlet_expected_entropy(2, 1.0), 0.5, 1e-13);
  // One token seen, k = 2, alpha = 1 (p ~ U(0,1)): the predictive of the second token is 2/3 for
  // the same token, 1/3 for the other; they are equal with probability E[p^2 + (1-p)^2] = 2/3.
  EXPECT_NEAR(unigram_iid_expected_loss(2, 1.0, 1), -(2.0 / 3) * std::log(2.0 / 3) - (1.0 / 3) * std::log(1.0 / 3),
              1e-13);
}

TEST(IclMcReferences, OrderedOnLatePositions) {
  IclMcTask task(mc(3, 2, IclMcVariant::Standard));
  Batch b = task.sample(2000, 8, StreamKind::Eval, 0);
  auto chains = task.chains(2000, 8, StreamKind::Eval, 0);
  auto pos = task.position_losses(b, &chains);
  ASSERT_EQ(pos.size(), 4u);
  std::vector<double> late(4, 0.0);
  for (size_t j = 0; j < 4; ++j)
    for (int64_t i = 80; i < 100; ++i) late[j] += pos[j].mean[i] / 20;
  std::printf("[ late     ] uniform %.4f unigram %.4f bigram %.4f oracle %.4f\n", late[0], late[1], late[2], late[3]);
  EXPECT_LT(late[3], late[2]);
  EXPECT_LT(late[2], late[1]);
  EXPECT_LT(late[1], late[0]);
  // The doubly stochastic variant has no unigram signal: the unigram reference is no better than uniform.
  IclMcTask ds(mc(3, 2, IclMcVariant::DoublyStochastic));
  Batch bd = ds.sample(2000, 8, StreamKind::Eval, 0);
  auto pd = ds.position_losses(bd, nullptr);
  EXPECT_GT(pd[1].mean[99], pd[0].mean[99] - 0.02);
  EXPECT_LT(pd[2].mean[99], pd[1].mean[99] - 0.1);
}

// Expected per-position losses against an independent sample: exact values within the sample's
// standard error, Monte Carlo values within both standard errors combined.
void expect_expected_matches_sample(const IclMcConfig& c, int64_t expected_n, int64_t sample_n) {
  IclMcTask task(c);
  auto expected = task.expected_position_losses(expected_n, 123);
  Batch b = task.sample(sample_n, 77, StreamKind::Eval, 3);
  auto chains = task.chains(sample_n, 77, StreamKind::Eval, 3);
  auto got = task.position_losses(b, &chains);
  ASSERT_EQ(expected.size(), got.size());
  for (size_t j = 0; j < got.size(); ++j) {
    ASSERT_EQ(expected[j].name, got[j].name);
    double sum_z2 = 0, max_z = 0, max_se = 0;
    int count = 0;
    for (int64_t i = 0; i + 1 < c.length; ++i) {
      double se = std::hypot(expected[j].std_error[i], got[j].std_error[i]);
      if (se == 0) {  // uniform: exactly ln k on every sequence
        EXPECT_NEAR(got[j].mean[i], expected[j].mean[i], 1e-12);
        continue;
      }
      double z = (got[j].mean[i] - expected[j].mean[i]) / se;
      sum_z2 += z * z, max_z = std::max(max_z, std::abs(z)), max_se = std::max(max_se, se), ++count;
    }
    if (count == 0) continue;
    std::printf("[ expected ] %-18s %-12s exact=%d  mean z^2 %.2f  max |z| %.2f  max se %.4f over %d positions\n",
                icl_mc_variant_name(c.variant), got[j].name.c_str(), int(expected[j].exact), sum_z2 / count, max_z,
                max_se, count);
    // Positions share their sequences, so the z's are correlated (the oracle's per-kernel entropy
    // rate is the same at every late position): bound the worst one, and check the test's power.
    EXPECT_LT(max_z, 4.5) << got[j].name;
    EXPECT_LT(max_se, 0.03) << got[j].name;
  }
}

TEST(IclMcReferences, ExpectedLossesMatchMonteCarlo) {
  expect_expected_matches_sample(mc(3, 2, IclMcVariant::Standard, 1.0, 41), 6000, 3000);
  expect_expected_matches_sample(mc(3, 2, IclMcVariant::Unigram, 1.0, 41), 4000, 3000);
  expect_expected_matches_sample(mc(2, 3, IclMcVariant::DoublyStochastic, 0.5, 25), 4000, 3000);
}

TEST(IclMcReferences, DefaultTaskReport) {
  // The default task (k = 3, T = 100, bigram, alpha = 1, standard): expected per-position losses.
  auto t = make("icl-mc");
  auto& task = dynamic_cast<IclMcTask&>(*t);
  auto e = task.expected_position_losses(20000);
  std::printf("[ default  ] position  uniform   unigram (+-se)     bigram (+-se)      oracle (+-se)\n");
  for (int64_t i : {0, 1, 2, 4, 9, 19, 49, 99})
    std::printf("[ default  ] %8lld  %.4f   %.4f (%.4f)   %.4f (%.4f)   %.4f (%.4f)\n", (long long)i, e[0].mean[i],
                e[1].mean[i], e[1].std_error[i], e[2].mean[i], e[2].std_error[i], e[3].mean[i], e[3].std_error[i]);
  Batch val = t->sample(1100, 1, StreamKind::Eval, 0);  // more rows than one chunk of reference_losses
  Scalars ref = t->reference_losses(val);
  ASSERT_EQ(ref.size(), 4u);
  auto pos = task.position_losses(val, nullptr);  // every position 0..99 holds one target per row
  for (size_t j = 0; j < 3; ++j) {
    double mean = 0;
    for (int64_t i = 0; i < 100; ++i) mean += pos[j].mean[i] / 100;
    EXPECT_NEAR(ref[j].second, mean, 1e-12) << ref[j].first;
  }
  std::vector<std::string> names = {"ref.uniform", "ref.unigram", "ref.bigram", "ref.oracle"};
  for (size_t j = 0; j < 4; ++j) {
    EXPECT_EQ(ref[j].first, names[j]);
    std::printf("[ default  ] %s on 1100 validation sequences: %.4f\n", ref[j].first.c_str(), ref[j].second);
  }
  double oracle_mean = 0;
  for (int64_t i = 0; i < 100; ++i) oracle_mean += e[3].mean[i] / 100;
  EXPECT_NEAR(ref[3].second, oracle_mean, 0.01);  // two Monte Carlo estimates of one expectation
  EXPECT_NEAR(ref[0].second, std::log(3.0), 1e-12);
  EXPECT_TRUE(t->eval_sets().empty());
  expect_error([&] { t->sample_eval("in-context", 4, 1); }, {"icl-mc", "in-context"});
}

TEST(IclMc, BadConfigNamesTheKey) {
  expect_error([] { make("icl-mc", {{"variant", "cyclic"}}); }, {"variant", "doubly-stochastic"});
  expect_error([] { make("icl-mc", {{"alpha", 0}}); }, {"alpha"});
  expect_error([] { make("icl-mc", {{"order", 5}, {"length", 4}}); }, {"task.length", "4", "order"});
  expect_error([] { make("icl-mc", {{"states", 1024}, {"order", 4}}); }, {"task.states", "task.order"});
  expect_error([] { parse_icl_mc_variant("doubly"); }, {"task.variant", "\"doubly\""});
}

// ------------------------------------------------------------------------------ bursty

TEST(Bursty, LayoutAndDeterminism) {
  auto t = make("bursty");
  expect_deterministic(*t, 21);
  EXPECT_EQ(t->vocab(), 33);
  EXPECT_EQ(t->length(), 17);
  EXPECT_EQ(t->feature_dim(), 63);
  Batch b = t->sample(12, 3, StreamKind::Data, 0);
  ASSERT_EQ(b.feature_dim, 63);
  ASSERT_EQ(b.features.size(), size_t(12 * 17 * 63));
  for (int64_t r = 0; r < b.size; ++r)
    for (int64_t i = 0; i < 17; ++i) {
      const float* f = b.features.data() + (r * 17 + i) * 63;
      double norm = 0;
      for (int d = 0; d < 63; ++d) norm += f[d] * f[d];
      if (i % 2 == 0) {
        EXPECT_EQ(b.tokens[r * 17 + i], 32);  // ITEM
        EXPECT_GT(norm, 0.2);                 // ~1 for a prototype plus a little noise
      } else {
        EXPECT_LT(b.tokens[r * 17 + i], 32);
        EXPECT_EQ(norm, 0.0);
      }
      EXPECT_EQ(b.targets[r * 17 + i] >= 0, i == 16);
    }
  // select keeps the features with their rows.
  Batch s = b.select({5, 2});
  ASSERT_EQ(s.features.size(), size_t(2 * 17 * 63));
  EXPECT_TRUE(std::equal(s.features.begin(), s.features.begin() + 17 * 63, b.features.begin() + 5 * 17 * 63));
  EXPECT_TRUE(std::equal(s.features.begin() + 17 * 63, s.features.end(), b.features.begin() + 2 * 17 * 63));
  auto all = make("bursty", {{"targets", "all"}});
  EXPECT_EQ(all->sample(4, 3, StreamKind::Data, 0).num_targets(), 4 * 9);
}

TEST(Bursty, ContextComposition) {
  auto t = make("bursty");
  auto& task = dynamic_cast<BurstyTask&>(*t);
  const auto& c = task.config();
  const BurstyWorld world = make_world(c, 5);
  const int64_t R = 3000;
  auto seqs = task.sequences(BurstySet::Train, R, 5, StreamKind::Data, 0);
  Batch b = t->sample(R, 5, StreamKind::Data, 0);
  int64_t bursty = 0, query_in_context_iid = 0;
  for (int64_t r = 0; r < R; ++r) {
    const auto& s = seqs[r];
    std::map<int, int> copies;
    for (int j = 0; j < c.pairs; ++j) copies[s.classes[j]]++;
    for (int j = 0; j <= c.pairs; ++j) {
      EXPECT_EQ(s.labels[j], world.label_of[s.classes[j]]);
      if (j < c.pairs) {
        EXPECT_EQ(b.tokens[r * b.length + 2 * j + 1], s.labels[j]);
      }
    }
    EXPECT_EQ(b.targets[r * b.length + 2 * c.pairs], s.labels[c.pairs]);
    if (s.bursty) {
      ++bursty;
      EXPECT_EQ(int(copies.size()), c.pairs / c.burstiness);    // N/B classes ...
      for (auto [cls, n] : copies) EXPECT_EQ(n, c.burstiness);  // ... B copies each
      EXPECT_EQ(copies.count(s.classes[c.pairs]), 1u) << "the query's class is in the context";
    } else {
      query_in_context_iid += copies.count(s.classes[c.pairs]);
    }
  }
  const double p = c.p_bursty, se = std::sqrt(p * (1 - p) / R);
  EXPECT_NEAR(double(bursty) / R, p, 4 * se);
  EXPECT_LT(query_in_context_iid, R - bursty);  // i.i.d. contexts often miss the query's class
  // Labels: K/L classes per label.
  std::vector<int> per_label(c.labels, 0);
  for (int32_t l : world.label_of) per_label[l]++;
  for (int n : per_label) EXPECT_EQ(n, c.classes / c.labels);
  // Zipf frequencies (exponent 1): on i.i.d. sequences class 0 has probability 1 / H_K.
  auto iid = make("bursty", {{"p_bursty", 0.0}});
  auto iid_seqs = dynamic_cast<BurstyTask&>(*iid).sequences(BurstySet::Train, 2000, 5, StreamKind::Data, 1);
  double h = 0, zero = 0, draws = 0;
  for (int k = 1; k <= c.classes; ++k) h += 1.0 / k;
  for (const auto& s : iid_seqs)
    for (int cls : s.classes) zero += cls == 0, draws += 1;
  EXPECT_NEAR(zero / draws, 1 / h, 4 * std::sqrt((1 / h) * (1 - 1 / h) / draws));
  // Items of one class are close, of different classes far: the copy reference can tell them apart.
  Scalars ref = t->reference_losses(b);
  ASSERT_EQ(ref.size(), 2u);
  EXPECT_EQ(ref[0].first, "ref.uniform");
  EXPECT_NEAR(ref[0].second, std::log(32.0), 1e-12);
  EXPECT_EQ(ref[1].first, "ref.copy");
  const double missing = double(R - bursty - query_in_context_iid) / R;  // no match: ln L; else 0
  EXPECT_NEAR(ref[1].second, missing * std::log(32.0), 1e-6);
  std::printf("[ bursty   ] ref.uniform %.4f  ref.copy %.4f on the training distribution\n", ref[0].second,
              ref[1].second);
}

TEST(Bursty, EvalSets) {
  auto t = make("bursty");
  auto& task = dynamic_cast<BurstyTask&>(*t);
  const auto& c = task.config();
  const BurstyWorld world = make_world(c, 8);
  EXPECT_EQ(t->eval_sets(), (std::vector<std::string>{"in-context", "in-weights"}));
  const int64_t R = 500;
  // in-context: novel classes, distinct random labels, the query's class among them.
  Batch ic = t->sample_eval("in-context", R, 8);
  EXPECT_EQ(ic.tokens, t->sample_eval("in-context", R, 8).tokens);
  auto ic_seqs = task.sequences(BurstySet::InContext, R, 8, StreamKind::Eval,
                                BurstyTask::kEvalSetIndex + uint64_t(BurstySet::InContext));
  std::set<int32_t> query_labels;
  for (int64_t r = 0; r < R; ++r) {
    const auto& s = ic_seqs[r];
    std::map<int, int32_t> label_of;
    std::set<int32_t> labels;
    for (int j = 0; j < c.pairs; ++j) {
      EXPECT_GE(s.classes[j], c.classes) << "novel class";
      auto [it, fresh] = label_of.emplace(s.classes[j], s.labels[j]);
      EXPECT_EQ(it->second, s.labels[j]);
      if (fresh) labels.insert(s.labels[j]);
    }
    EXPECT_EQ(labels.size(), label_of.size()) << "distinct labels";
    ASSERT_EQ(label_of.count(s.classes[c.pairs]), 1u);
    EXPECT_EQ(label_of[s.classes[c.pairs]], s.labels[c.pairs]);
    EXPECT_EQ(ic.targets[r * ic.length + ic.length - 1], s.labels[c.pairs]);
    query_labels.insert(s.labels[c.pairs]);
    // Novel prototypes are far from every trained one.
    const float* q = ic.features.data() + (r * ic.length + ic.length - 1) * c.dim;
    for (int k = 0; k < c.classes; k += 17) {
      double d2 = 0;
      for (int d = 0; d < c.dim; ++d)
        d2 += (q[d] - world.prototypes[k * c.dim + d]) * (q[d] - world.prototypes[k * c.dim + d]);
      EXPECT_GT(d2, c.match_threshold());
    }
  }
  EXPECT_GT(query_labels.size(), 25u) << "labels re-assigned at random";
  Scalars ric = t->reference_losses(ic);
  EXPECT_NEAR(ric[1].second, 0.0, 1e-9) << "the copy reference solves in-context";
  // in-weights: the query's class never in the context, labels from the fixed map.
  Batch iw = t->sample_eval("in-weights", R, 8);
  auto iw_seqs = task.sequences(BurstySet::InWeights, R, 8, StreamKind::Eval,
                                BurstyTask::kEvalSetIndex + uint64_t(BurstySet::InWeights));
  for (int64_t r = 0; r < R; ++r) {
    const auto& s = iw_seqs[r];
    for (int j = 0; j < c.pairs; ++j) EXPECT_NE(s.classes[j], s.classes[c.pairs]);
    for (int j = 0; j <= c.pairs; ++j) EXPECT_EQ(s.labels[j], world.label_of[s.classes[j]]);
    EXPECT_EQ(iw.targets[r * iw.length + iw.length - 1], s.labels[c.pairs]);
  }
  Scalars riw = t->reference_losses(iw);
  EXPECT_NEAR(riw[1].second, std::log(32.0), 1e-9) << "no context item matches the query";
  EXPECT_NE(iw.tokens, t->sample(R, 8, StreamKind::Eval, 0).tokens);
  expect_error([&] { t->sample_eval("novel", 4, 1); }, {"novel", "in-context", "in-weights"});
}

TEST(Bursty, BadConfigNamesTheKey) {
  expect_error([] { make("bursty", {{"burstiness", 3}}); }, {"task.burstiness", "3", "task.pairs"});
  expect_error([] { make("bursty", {{"p_bursty", 1.5}}); }, {"p_bursty"});
  expect_error([] { make("bursty", {{"labels", 200}}); }, {"task.labels", "200", "task.classes"});
  expect_error(
      [] {
        make("bursty", {{"burstiness", 1}, {"pairs", 8}, {"labels", 4}, {"classes", 8}});
      },
      {"task.burstiness", "task.labels"});
  expect_error([] { make("bursty", {{"targets", "every"}}); }, {"targets"});
}

TEST(RepeatedTokens, VariableBlocksHaveNoFixedCopyOffset) {
  RepeatedTokensConfig cfg;
  cfg.vocab = 16, cfg.block = 10, cfg.repeats = 3, cfg.targets = RepeatedTargets::Repeats, cfg.block_min = 4;
  RepeatedTokensTask task(cfg);
  Batch b = task.sample(64, 3, StreamKind::Test, 0);
  ASSERT_EQ(b.length, 31);
  std::set<int64_t> blocks;
  for (int64_t r = 0; r < b.size; ++r) {
    int64_t first = -1, count = 0;
    for (int64_t i = 0; i < b.length; ++i)
      if (b.targets[r * b.length + i] >= 0) {
        if (first < 0) first = i;
        ++count;
        EXPECT_EQ(b.targets[r * b.length + i], b.tokens[r * b.length + i + 1 - first]) << "row " << r;
      }
    ASSERT_GE(first, 4);
    ASSERT_LE(first, 10);
    EXPECT_EQ(count, first * 2);  // copies 2 and 3
    blocks.insert(first);
  }
  EXPECT_GE(blocks.size(), 5u);  // the block length really varies
  for (auto& p : task.predictions(b))
    if (p.name == "ref.oracle")
      for (double l : target_losses(p, b))
        if (!std::isnan(l)) {
          EXPECT_EQ(l, 0.0);
        }
  for (auto& [k, v] : task.reference_losses(b))
    if (k == "ref.oracle") {
      EXPECT_EQ(v, 0.0);
    }
  cfg.targets = RepeatedTargets::All;
  EXPECT_THROW(RepeatedTokensTask{cfg}, Error);
  cfg.targets = RepeatedTargets::Repeats, cfg.block_min = 11;
  EXPECT_THROW(RepeatedTokensTask{cfg}, Error);
}

}  // namespace
}  // namespace ihlab
