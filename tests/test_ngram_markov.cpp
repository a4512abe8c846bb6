// The in-context n-gram Markov task, its reference predictors and the chi-square MI analysis.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "analysis/chi_square_mi.h"
#include "core/error.h"
#include "tasks/ngram_markov.h"
#include "tasks/ngram_predictors.h"

namespace ihlab {
namespace {

// Upper `z`-quantile of chi-square with k dof, Wilson-Hilferty cube-root normal approximation.
double chi_square_quantile(double k, double z) {
  double h = 2.0 / (9.0 * k);
  return k * std::pow(1.0 - h + z * std::sqrt(h), 3.0);
}
constexpr double kNormalQuantile999 = 3.090232;

// The documented context order, written out independently of context_index:
// first listed parent = least significant digit.
int64_t documented_context(const std::vector<int>& s, int i, const std::vector<int>& pa, int d, bool reversed = false) {
  int64_t ctx = 0, place = 1;
  for (size_t k = 0; k < pa.size(); ++k) {
    ctx += s[i + pa[reversed ? pa.size() - 1 - k : k]] * place;
    place *= d;
  }
  return ctx;
}

// Pearson statistic of the transitions of `s` against the kernel's rows.
double pearson_statistic(const MarkovKernel& k, const std::vector<int>& s, bool reversed) {
  const int d = k.vocab, m = k.max_lag();
  std::vector<double> counts(k.probs.size(), 0.0);  // [contexts, d]
  for (int i = m; i < int(s.size()); ++i) counts[documented_context(s, i, k.parents, d, reversed) * d + s[i]] += 1;
  double stat = 0;
  for (int64_t c = 0; c < k.contexts(); ++c) {
    double n = 0;
    for (int x = 0; x < d; ++x) n += counts[c * d + x];
    for (int x = 0; x < d; ++x) {
      double expected = n * k.row(c)[x];
      stat += (counts[c * d + x] - expected) * (counts[c * d + x] - expected) / expected;
    }
  }
  return stat;
}

TEST(NgramMarkov, TransitionsMatchKernelChiSquare) {
  for (std::vector<int> parents : {std::vector<int>{-1, -2}, std::vector<int>{-1, -3}}) {
    NgramMarkovConfig cfg{3, 100, parents, 1.0};
    RandomStream rs(11, StreamKind::Test, 1);
    MarkovKernel k = sample_kernel(cfg, rs);
    // Mixed with uniform so every cell expects hundreds of counts (Pearson's approximation holds).
    for (auto& p : k.probs) p = 0.8 * p + 0.2 / cfg.vocab;
    std::vector<int> s = sample_sequence(k, 200000, rs);
    const double dof = double(k.contexts() * (cfg.vocab - 1));
    const double limit = chi_square_quantile(dof, kNormalQuantile999);
    double stat = pearson_statistic(k, s, /*reversed=*/false);
    EXPECT_LT(stat, limit) << "parents " << parents[0] << "," << parents[1] << " dof " << dof;
    // The test has power: reading the contexts in the wrong digit order fails it badly.
    EXPECT_GT(pearson_statistic(k, s, /*reversed=*/true), 10 * limit);
  }
}

TEST(NgramMarkov, ValidateNamesTheKey) {
  NgramMarkovConfig bad;
  bad.parents = {-1, -1};
  EXPECT_THROW(bad.validate(), Error);
  bad = {};
  bad.parents = {1};
  EXPECT_THROW(bad.validate(), Error);
  bad = {};
  bad.length = 2;
  try {
    bad.validate();
    FAIL() << "length 2 with parents {-1,-2} must be rejected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("length"), std::string::npos) << e.what();
  }
  bad = {};
  bad.alpha = 0;
  EXPECT_THROW(bad.validate(), Error);
  bad = {};
  bad.vocab = 1;
  EXPECT_THROW(bad.validate(), Error);
}

TEST(NgramMarkov, BatchIsDeterministicAcrossCallsAndThreads) {
  NgramMarkovConfig cfg;
  const int saved = omp_get_max_threads();
  NgramBatch a = sample_batch(cfg, 64, 7, StreamKind::Data, 3);
  NgramBatch b = sample_batch(cfg, 64, 7, StreamKind::Data, 3);
  omp_set_num_threads(1);
  NgramBatch one = sample_batch(cfg, 64, 7, StreamKind::Data, 3);
  omp_set_num_threads(2);
  NgramBatch two = sample_batch(cfg, 64, 7, StreamKind::Data, 3);
  omp_set_num_threads(saved);
  ASSERT_EQ(a.tokens.size(), size_t(64 * 101));
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.tokens, one.tokens);
  EXPECT_EQ(a.tokens, two.tokens);
  for (int32_t t : a.tokens) ASSERT_TRUE(t >= 0 && t < cfg.vocab);
  // Row b depends only on b: a smaller batch is a prefix of a larger one.
  NgramBatch prefix = sample_batch(cfg, 10, 7, StreamKind::Data, 3);
  EXPECT_TRUE(std::equal(prefix.tokens.begin(), prefix.tokens.end(), a.tokens.begin()));
  EXPECT_NE(sample_batch(cfg, 64, 7, StreamKind::Data, 4).tokens, a.tokens);
  EXPECT_NE(sample_batch(cfg, 64, 7, StreamKind::Eval, 3).tokens, a.tokens);
}

TEST(NgramPredictors, BayesMatchesHandComputedPosterior) {
  const double a = 0.1;
  // pa = {-1}: final context x_L = 0 occurs before 1, 1, 2 -> counts (0, 2, 1) of 3.
  std::vector<int32_t> s1 = {0, 1, 0, 1, 0, 2, 0};
  auto p1 = ngram_predictor(3, {-1}, a).predict(s1);
  EXPECT_NEAR(p1[0], 0.1 / 3.3, 1e-15);
  EXPECT_NEAR(p1[1], 2.1 / 3.3, 1e-15);
  EXPECT_NEAR(p1[2], 1.1 / 3.3, 1e-15);
  // pa = {-1,-2}: final context (x_L, x_{L-1}) = (1, 0) precedes 2, 2, 0 -> counts (1, 0, 2).
  std::vector<int32_t> s2 = {0, 1, 2, 0, 1, 2, 0, 1, 0, 1};
  NgramMarkovConfig cfg{3, 10, {-1, -2}, a};
  auto p2 = bayes_predictor(cfg).predict(s2);
  EXPECT_NEAR(p2[0], 1.1 / 3.3, 1e-15);
  EXPECT_NEAR(p2[1], 0.1 / 3.3, 1e-15);
  EXPECT_NEAR(p2[2], 2.1 / 3.3, 1e-15);
  // Unigram: all ten tokens, counts (4, 4, 2).
  auto pu = unigram_predictor(3, a).predict(s2);
  EXPECT_NEAR(pu[0], 4.1 / 10.3, 1e-15);
  EXPECT_NEAR(pu[2], 2.1 / 10.3, 1e-15);
  // No final context yet (L < max|pa|): uniform.
  auto p0 = ngram_predictor(3, {-3}, a).predict(std::vector<int32_t>{2, 2});
  EXPECT_DOUBLE_EQ(p0[0], 1.0 / 3);
}

TEST(NgramPredictors, BayesBeatsBaselinesOnSampledData) {
  NgramMarkovConfig cfg;  // d=3, L=100, pa={-1,-2}, alpha=0.1
  NgramBatch batch = sample_batch(cfg, 4000, 5, StreamKind::Eval, 0);
  double bayes = mean_cross_entropy(bayes_predictor(cfg), batch);
  double unigram = mean_cross_entropy(unigram_predictor(3, 0.1), batch);
  double wrong = mean_cross_entropy(ngram_predictor(3, {-1}, 0.1), batch);
  double too_many = mean_cross_entropy(ngram_predictor(3, {-1, -2, -3}, 0.1), batch);
  std::printf("[ losses   ] bayes %.4f  unigram %.4f  pa={-1} %.4f  pa={-1,-2,-3} %.4f  ln3 %.4f\n", bayes, unigram,
              wrong, too_many, std::log(3.0));
  EXPECT_LT(bayes, unigram - 0.1);
  EXPECT_LT(bayes, wrong);
  EXPECT_LT(bayes, too_many);
  EXPECT_LT(unigram, std::log(3.0));
}

TEST(NgramPredictors, PerPositionMatchesDirectPredictions) {
  NgramMarkovConfig cfg{3, 40, {-1, -2}, 0.1};
  NgramBatch batch = sample_batch(cfg, 37, 9, StreamKind::Eval, 0);
  for (auto pred : {bayes_predictor(cfg), unigram_predictor(3, 0.1), ngram_predictor(3, {-3, -1}, 0.5)}) {
    std::vector<double> fast = per_position_cross_entropy(pred, batch);
    ASSERT_EQ(fast.size(), size_t(cfg.length));
    for (int t = 1; t <= cfg.length; ++t) {  // predict x_{t+1} from x_1..x_t
      double direct = 0;
      for (int b = 0; b < batch.batch; ++b) {
        auto row = batch.row(b);
        direct -= std::log(pred.predict(row.first(t))[row[t]]);
      }
      EXPECT_NEAR(fast[t - 1], direct / batch.batch, 1e-12) << "t=" << t;
    }
    EXPECT_NEAR(fast.back(), mean_cross_entropy(pred, batch), 1e-12);
  }
}

TEST(ChiSquareMi, StationaryDistributionIsInvariant) {
  for (std::vector<int> parents : {std::vector<int>{-1, -2}, std::vector<int>{-1, -3}}) {
    NgramMarkovConfig cfg{3, 100, parents, 0.1};
    for (int k = 0; k < 30; ++k) {
      RandomStream rs(3, StreamKind::Test, 2, k);
      MarkovKernel kernel = sample_kernel(cfg, rs);
      for (int window = kernel.max_lag(); window <= 4; ++window) {
        std::vector<double> mu = stationary_distribution(kernel, window);  // [d^W]
        Eigen::Map<Eigen::RowVectorXd> m(mu.data(), Eigen::Index(mu.size()));
        Eigen::MatrixXd P = window_transition_matrix(kernel, window);
        EXPECT_LT((m * P - m).cwiseAbs().maxCoeff(), 1e-10) << "kernel " << k << " window " << window;
        EXPECT_NEAR(m.sum(), 1.0, 1e-12);
        EXPECT_GE(m.minCoeff(), 0.0);
      }
    }
  }
}

TEST(ChiSquareMi, HandComputedFlipChain) {
  // d=2, pa={-1}, stay with probability q: mu uniform, two-step stay probability q^2 + (1-q)^2.
  const double q = 0.9;
  MarkovKernel k{2, {-1}, {q, 1 - q, 1 - q, q}};
  WindowJoint j = stationary_window_joint(k, 2);
  auto modified = [](double stay) { return 0.5 * (2 * stay * stay + 2 * (1 - stay) * (1 - stay) - 1); };
  EXPECT_NEAR(chi_square_mi(j, {-1}), modified(q), 1e-12);         // 0.32
  EXPECT_NEAR(chi_square_mi(j, {-1}, 1), 2 * modified(q), 1e-12);  // 0.64
  EXPECT_NEAR(chi_square_mi(j, {-2}), modified(q * q + (1 - q) * (1 - q)), 1e-12);
  EXPECT_NEAR(chi_square_mi(j, {}), 0.0, 1e-15);
  // Identical rows: tokens are i.i.d., nothing is informative.
  MarkovKernel iid{3, {-1, -2}, {}};
  for (int c = 0; c < 9; ++c) iid.probs.insert(iid.probs.end(), {0.5, 0.3, 0.2});
  WindowJoint ji = stationary_window_joint(iid, 3);
  for (auto& s : enumerate_subsets({-1, -2, -3}, 3)) EXPECT_NEAR(chi_square_mi(ji, s), 0.0, 1e-12);
}

void print_survey(const char* name, const MiSurvey& r) {
  for (const auto& s : r.ranked) {
    std::string label = "{";
    for (size_t i = 0; i < s.subset.size(); ++i) label += fmt::format("{}{}", i ? "," : "", s.subset[i]);
    std::printf("[ %-8s ] %-8s mean %.4f +- %.4f  argmax %.3f\n", name, (label + "}").c_str(), s.mean, s.std_error,
                s.argmax_fraction);
  }
}

const SubsetMi& find_subset(const MiSurvey& r, std::vector<int> s) {
  for (const auto& x : r.ranked)
    if (x.subset == s) return x;
  throw Error("subset not in survey");
}

TEST(ChiSquareMi, SpecReferenceD3Alpha01) {
  // Reference values (docs/metrics.md#chi-square-mutual-information): 200 kernels, d=3, alpha=0.1,
  // pa={-1,-2}, candidates {-1,-2,-3}, |S| <= 2:
  // {-1,-2} first at 0.194 +- 0.010, {-2} at 0.165, argmax of 43% of single kernels.
  MiSurveyConfig cfg;
  MiSurvey r = survey_chi_square_mi(cfg);
  print_survey("d3 n200", r);
  EXPECT_EQ(r.best, (std::vector<int>{-1, -2}));
  EXPECT_NEAR(r.ranked[0].mean, 0.194, 0.03);
  EXPECT_NEAR(find_subset(r, {-2}).mean, 0.165, 0.03);
  EXPECT_GT(r.best_argmax_fraction, 0.3);
  EXPECT_LT(r.best_argmax_fraction, 0.6);  // the claim holds on average, not kernel by kernel
  EXPECT_EQ(find_subset(r, {}).mean, 0.0);
  // Tighter with 20x the kernels (standard errors ~0.0025).
  cfg.n_kernels = 4000;
  MiSurvey big = survey_chi_square_mi(cfg);
  print_survey("d3 n4000", big);
  EXPECT_EQ(big.best, (std::vector<int>{-1, -2}));
  EXPECT_NEAR(big.ranked[0].mean, 0.194, 0.01);
  EXPECT_NEAR(find_subset(big, {-2}).mean, 0.165, 0.01);
  EXPECT_NEAR(big.best_argmax_fraction, 0.43, 0.05);
  // The ordinary chi-square MI has no small-set penalty: the full parent set wins every kernel.
  cfg.power = 1;
  MiSurvey ordinary = survey_chi_square_mi(cfg);
  EXPECT_EQ(ordinary.best, (std::vector<int>{-1, -2}));
  EXPECT_GT(ordinary.best_argmax_fraction, 0.99);
}

TEST(ChiSquareMi, D2Alpha05SubsetWinsOnlyForSingleKernels) {
  // The single-kernel example ({-2} about 0.20 above {-1,-2} about 0.15) is one draw. Measured: on
  // average {-1,-2} still ranks first (about 0.100 vs 0.076); {-2} beats it for about 27% of kernels.
  MiSurveyConfig cfg;
  cfg.task.vocab = 2;
  cfg.task.alpha = 0.5;
  cfg.candidates = {-1, -2};
  cfg.n_kernels = 4000;
  MiSurvey r = survey_chi_square_mi(cfg);
  print_survey("d2 a0.5", r);
  EXPECT_EQ(r.best, (std::vector<int>{-1, -2}));
  EXPECT_NEAR(r.ranked[0].mean, 0.100, 0.01);
  EXPECT_EQ(r.ranked[1].subset, (std::vector<int>{-2}));
  EXPECT_NEAR(r.ranked[1].mean, 0.076, 0.01);
  EXPECT_NEAR(find_subset(r, {-2}).argmax_fraction, 0.27, 0.05);
  EXPECT_LT(r.best_argmax_fraction, 0.5);
}

}  // namespace
}  // namespace ihlab
