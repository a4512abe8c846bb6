// Induction-head metrics on hand-built heads with known scores.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>

#include "analysis/induction_metrics.h"
#include "core/error.h"

namespace ihlab {
namespace {

constexpr int32_t kBos = 99;

// [BOS] + block repeated `repeats` times, for each of B sequences. Block tokens are distinct within
// a sequence (0..T-1 shifted by the sequence index) unless `block` is given.
std::vector<int32_t> repeated_tokens(int64_t B, int64_t T, int repeats, std::vector<int32_t> block = {}) {
  std::vector<int32_t> tok;
  for (int64_t b = 0; b < B; ++b) {
    tok.push_back(kBos);
    for (int r = 0; r < repeats; ++r)
      for (int64_t i = 0; i < T; ++i) tok.push_back(block.empty() ? int32_t((i + b) % T) : block[i]);
  }
  return tok;
}

using Pattern = std::vector<float>;

// Perfect induction head on [BOS] + repeats of a block of length T: queries in the repeats attend
// to q - T + 1; first-block queries attend to BOS (park = 0) or to themselves (park = -1).
Pattern induction_head(int64_t B, int64_t L, int64_t T, int park = 0) {
  Pattern A(size_t(B * L * L), 0.f);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t q = 0; q < L; ++q) {
      const int64_t k = q >= 1 + T ? q - T + 1 : (park == 0 ? 0 : q);
      A[(b * L + q) * L + k] = 1.f;
    }
  return A;
}

Pattern previous_token_head(int64_t L) {
  Pattern A(size_t(L * L), 0.f);
  A[0] = 1.f;
  for (int64_t q = 1; q < L; ++q) A[q * L + q - 1] = 1.f;
  return A;
}

Pattern uniform_causal_head(int64_t B, int64_t L) {
  Pattern A(size_t(B * L * L), 0.f);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t q = 0; q < L; ++q)
      for (int64_t k = 0; k <= q; ++k) A[(b * L + q) * L + k] = 1.f / float(q + 1);
  return A;
}

// ----------------------------------------------------------------------------- previous token

TEST(PreviousToken, PerfectUniformAndBatch) {
  const int64_t L = 12;
  EXPECT_NEAR(previous_token_score(previous_token_head(L), L), 1.0, 1e-12);

  double uni = 0;  // mean over q = 1..L-1 of 1/(q+1)
  for (int64_t q = 1; q < L; ++q) uni += 1.0 / double(q + 1);
  uni /= double(L - 1);
  EXPECT_NEAR(previous_token_score(uniform_causal_head(1, L), L), uni, 1e-6);

  Pattern both = previous_token_head(L);  // batch [2, L, L] = {perfect, uniform}
  const Pattern u = uniform_causal_head(1, L);
  both.insert(both.end(), u.begin(), u.end());
  EXPECT_NEAR(previous_token_score(both, L), 0.5 * (1.0 + uni), 1e-6);

  // A head that always attends to itself scores 0; TL's variant divides by L, not L - 1.
  std::vector<double> self(size_t(L * L), 0.0);
  for (int64_t q = 0; q < L; ++q) self[q * L + q] = 1;
  EXPECT_EQ(previous_token_score(self, L), 0.0);
  EXPECT_NEAR(tl_detect_head_score(previous_token_head(L), tl_previous_token_pattern(L), L), double(L - 1) / double(L),
              1e-6);
}

TEST(PreviousToken, RejectsBadShapes) {
  EXPECT_THROW(previous_token_score(Pattern(10, 0.f), 3), Error);
  EXPECT_THROW(previous_token_score(Pattern(1, 1.f), 1), Error);
}

// ----------------------------------------------------------------------------- prefix matching

TEST(PrefixMatching, PerfectInductionHeadScoresOne) {
  for (int repeats : {2, 4}) {
    const int64_t B = 10, T = 25, L = 1 + repeats * T;  // Olsson: [BOS] + 25 tokens x 4, 10 seqs
    const auto tok = repeated_tokens(B, T, repeats);
    const Pattern A = induction_head(B, L, T);
    EXPECT_NEAR(prefix_matching_score_repeated(A, tok, L, 1, T), 1.0, 1e-6) << repeats;
    EXPECT_NEAR(prefix_matching_score(A, tok, L), 1.0, 1e-6) << repeats;  // all repeats qualify
    EXPECT_NEAR(induction_stripe_score(A, L, 1, T), 1.0, 1e-6) << repeats;
    // A previous-token head puts nothing on the induction targets (T >= 2).
    std::vector<float> prev(size_t(B * L * L));
    const Pattern p = previous_token_head(L);
    for (int64_t b = 0; b < B; ++b) std::copy(p.begin(), p.end(), prev.begin() + b * L * L);
    EXPECT_EQ(prefix_matching_score_repeated(prev, tok, L, 1, T), 0.0);
  }
}

TEST(PrefixMatching, UniformCausalHeadClosedForm) {
  const int64_t B = 3, T = 25, R = 4, L = 1 + R * T;
  const auto tok = repeated_tokens(B, T, R);
  // Query q in repeat r (0-based; q = 1 + r T + i) has r earlier copies: s(q) = r / (q + 1).
  double expect = 0;
  for (int64_t r = 1; r < R; ++r)
    for (int64_t i = 0; i < T; ++i) expect += double(r) / double(1 + r * T + i + 1);
  expect /= double((R - 1) * T);
  EXPECT_NEAR(prefix_matching_score_repeated(uniform_causal_head(B, L), tok, L, 1, T), expect, 1e-6);
  // The stripe only sees the most recent copy: mean of 1/(q+1) over the repeats.
  double stripe = 0;
  for (int64_t q = 1 + T; q < L; ++q) stripe += 1.0 / double(q + 1);
  EXPECT_NEAR(induction_stripe_score(uniform_causal_head(B, L), L, 1, T), stripe / double(L - 1 - T), 1e-6);
}

TEST(PrefixMatching, RepeatedTokenInsideTheBlock) {
  // Block {3, 5, 3, 7}: token 3 occurs twice per block. Layout [BOS] b b, L = 9.
  const int64_t T = 4, L = 9;
  const auto tok = repeated_tokens(1, T, 2, {3, 5, 3, 7});
  const Pattern A = induction_head(1, L, T);
  // Perfect head: weight on q - T + 1, which is one of the summed targets -> 1.
  EXPECT_NEAR(prefix_matching_score_repeated(A, tok, L, 1, T), 1.0, 1e-6);
  // Uniform head, queries 5..8 (tokens 3 5 3 7); earlier copies: q5 {1,3}, q6 {2}, q7 {1,3,5},
  // q8 {4}  ->  s = 2/6, 1/7, 3/8, 1/9.
  const double expect = (2.0 / 6 + 1.0 / 7 + 3.0 / 8 + 1.0 / 9) / 4;
  EXPECT_NEAR(prefix_matching_score_repeated(uniform_causal_head(1, L), tok, L, 1, T), expect, 1e-6);
  // first_query = 0 also scores q = 3 (token 3, copy at 1, target 2; the induction head parks on
  // BOS there, so s = 0): 4 / 5 of the repeats' score.
  EXPECT_NEAR(prefix_matching_score(A, tok, L, 0), 4.0 / 5.0, 1e-6);
  // No query with an earlier copy -> NaN.
  const std::vector<int32_t> distinct = {0, 1, 2};
  EXPECT_TRUE(std::isnan(prefix_matching_score(uniform_causal_head(1, 3), distinct, 3)));
}

// ----------------------------------------------------------------------------- TransformerLens

TEST(TlInduction, PatternsMatchDefinition) {
  // tok = BOS 4 4 7 4: P[q, k] = 1 iff 1 <= k <= q and tok[k-1] == tok[q].
  const std::vector<int32_t> tok = {kBos, 4, 4, 7, 4};
  const auto P = tl_induction_pattern(tok, 5);
  std::vector<double> expect(25, 0.0);
  expect[2 * 5 + 2] = 1;  // q=2 (4): k-1 = 1 -> k = 2 (the query itself)
  expect[4 * 5 + 2] = 1;  // q=4 (4): k-1 in {1, 2} -> k = 2, 3
  expect[4 * 5 + 3] = 1;
  EXPECT_EQ(P, expect);
  const auto D = tl_duplicate_token_pattern(tok, 5);
  std::vector<double> dup(25, 0.0);
  dup[2 * 5 + 1] = dup[4 * 5 + 1] = dup[4 * 5 + 2] = 1;
  EXPECT_EQ(D, dup);
}

TEST(TlInduction, PerfectHeadScoresAboutHalf) {
  const int64_t B = 4, T = 25, L = 2 * T + 1;
  const auto tok = repeated_tokens(B, T, 2);
  const Pattern bos_park = induction_head(B, L, T, 0);
  const Pattern self_park = induction_head(B, L, T, -1);
  // docs/metrics.md#transformerlens-detect_head-scores
  const double half = double(T) / double(2 * T + 1);  // about 0.5, not 1
  EXPECT_NEAR(tl_induction_score(bos_park, tok, L), half, 1e-6);
  EXPECT_NEAR(tl_induction_score(self_park, tok, L), half, 1e-6);
  TlDetectOptions ex_bos;
  ex_bos.exclude_bos = true;
  EXPECT_NEAR(tl_induction_score(bos_park, tok, L, ex_bos), 1.0, 1e-6);
  TlDetectOptions ex_cur;
  ex_cur.exclude_current_token = true;
  EXPECT_NEAR(tl_induction_score(self_park, tok, L, ex_cur), 1.0, 1e-6);
  TlDetectOptions abs;
  abs.measure = TlErrorMeasure::Abs;  // first-block rows miss entirely: 1 - (T + 1) / L
  EXPECT_NEAR(tl_induction_score(bos_park, tok, L, abs), 1.0 - double(T + 1) / double(L), 1e-6);
  abs.exclude_bos = true;
  EXPECT_NEAR(tl_induction_score(bos_park, tok, L, abs), 1.0, 1e-6);
}

TEST(TlInduction, UniformHeadAndBatchMean) {
  const int64_t T = 6, L = 2 * T + 1;
  const auto tok = repeated_tokens(1, T, 2);
  double hit = 0;  // one target per second-half row: sum of 1/(q+1)
  for (int64_t q = T + 1; q < L; ++q) hit += 1.0 / double(q + 1);
  const double uni = hit / double(L);
  EXPECT_NEAR(tl_induction_score(uniform_causal_head(1, L), tok, L), uni, 1e-6);
  // Batch: mean of the per-sequence scores.
  Pattern A = uniform_causal_head(1, L);
  const Pattern perfect = induction_head(1, L, T);
  A.insert(A.end(), perfect.begin(), perfect.end());
  auto tok2 = tok;
  tok2.insert(tok2.end(), tok.begin(), tok.end());
  EXPECT_NEAR(tl_induction_score(A, tok2, L), 0.5 * (uni + double(T) / double(L)), 1e-6);
  EXPECT_THROW(tl_induction_score(A, tok, L), Error);  // 1 sequence of tokens for 2 patterns
}

// ----------------------------------------------------------------------------- copying

TEST(Copying, SequenceScoreWithIdentityAndNegatedOV) {
  // Head output logits l(q) = +-z(q) with z(q) = sum_k A[q, k] onehot(tok[k]) (OV = +-identity).
  const int64_t T = 4, L = 2 * T + 1, V = 100;
  const auto tok = repeated_tokens(1, T, 2);
  auto logits_of = [&](const Pattern& A, float sign) {
    std::vector<float> lg(size_t(L * V), 0.f);
    for (int64_t q = 0; q < L; ++q)
      for (int64_t k = 0; k <= q; ++k) lg[q * V + tok[k]] += sign * A[q * L + k];
    return lg;
  };
  const Pattern ind = induction_head(1, L, T);
  EXPECT_NEAR(copying_score(logits_of(ind, 1.f), ind, tok, L, V), 1.0, 1e-6);
  EXPECT_NEAR(copying_score(logits_of(ind, -1.f), ind, tok, L, V), -1.0, 1e-6);
  // Uniform head over distinct tokens: q = 0..T attends to q + 1 distinct tokens -> r = 1/(q+1).
  const Pattern uni = uniform_causal_head(1, 1 + T);
  const std::vector<int32_t> first(tok.begin(), tok.begin() + 1 + T);
  std::vector<float> lg(size_t((1 + T) * V), 0.f);
  for (int64_t q = 0; q <= T; ++q)
    for (int64_t k = 0; k <= q; ++k) lg[q * V + first[k]] += uni[q * (1 + T) + k];
  double expect = 0;
  for (int64_t q = 0; q <= T; ++q) expect += 2.0 / double(q + 1) - 1.0;
  EXPECT_NEAR(copying_score(lg, uni, first, 1 + T, V), expect / double(1 + T), 1e-6);
  // Constant logits carry no preference: left out, NaN when nothing remains.
  EXPECT_TRUE(std::isnan(copying_score(std::vector<float>(size_t(L * V), 0.f), ind, tok, L, V)));
}

// ----------------------------------------------------------------------------- OV circuit

std::vector<double> identity(int64_t V, double scale = 1) {
  std::vector<double> M(size_t(V * V), 0.0);
  for (int64_t i = 0; i < V; ++i) M[i * V + i] = scale;
  return M;
}

TEST(OvCircuit, IdentityAndNegatedIdentity) {
  const int64_t V = 7;
  EXPECT_NEAR(ov_eigenvalue_positivity(identity(V), V), 1.0, 1e-12);
  EXPECT_NEAR(ov_eigenvalue_positivity(identity(V, -3), V), -1.0, 1e-12);
  EXPECT_EQ(ov_self_map_fraction(identity(V), V), 1.0);
  EXPECT_EQ(ov_self_map_fraction(identity(V, -1), V), 0.0);
  EXPECT_NEAR(ov_copying_score(identity(V), V), 1.0, 1e-12);
  EXPECT_NEAR(ov_copying_score(identity(V, -1), V), -1.0, 1e-12);
  const Scalars s = ov_circuit_scalars("h0.", identity(V), V);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].first, "h0.ov_eig_positivity");
  EXPECT_EQ(s[1].first, "h0.ov_self_fraction");
  EXPECT_EQ(s[2].first, "h0.ov_copying");
  for (const auto& [name, v] : s) EXPECT_NEAR(v, 1.0, 1e-12) << name;
}

TEST(OvCircuit, RotationsPermutationsAndDiagonal) {
  // Rotation by theta: eigenvalues e^{+-i theta} -> cos(theta); 90 degrees -> 0.
  for (double theta : {std::numbers::pi / 2, std::numbers::pi / 3, 2.5}) {
    const std::vector<double> R = {std::cos(theta), -std::sin(theta), std::sin(theta), std::cos(theta)};
    EXPECT_NEAR(ov_eigenvalue_positivity(R, 2), std::cos(theta), 1e-12) << theta;
  }
  // Rotation(pi/3) (+) identity(2): (2 cos + 2) / 4 = 0.75.
  const double c = 0.5, s = std::sqrt(3.0) / 2;
  const std::vector<double> RI = {c, -s, 0, 0, s, c, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  EXPECT_NEAR(ov_eigenvalue_positivity(RI, 4), 0.75, 1e-12);
  // Cyclic shift of 5 tokens: the 5th roots of unity sum to 0; no token maps to itself.
  std::vector<double> P(25, 0.0);
  for (int i = 0; i < 5; ++i) P[i * 5 + (i + 1) % 5] = 1;
  EXPECT_NEAR(ov_eigenvalue_positivity(P, 5), 0.0, 1e-12);
  EXPECT_EQ(ov_self_map_fraction(P, 5), 0.0);
  // diag(2, -1, 0.5) conjugated by S = [[1,1,0],[0,1,1],[0,0,1]]: (2 - 1 + 0.5) / 3.5.
  const std::vector<double> S = {1, 1, 0, 0, 1, 1, 0, 0, 1}, Sinv = {1, -1, 1, 0, 1, -1, 0, 0, 1},
                            D = {2, 0, 0, 0, -1, 0, 0, 0, 0.5};
  std::vector<double> SD(9, 0.0), M(9, 0.0);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) SD[i * 3 + j] += S[i * 3 + k] * D[k * 3 + j];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) M[i * 3 + j] += SD[i * 3 + k] * Sinv[k * 3 + j];
  EXPECT_NEAR(ov_eigenvalue_positivity(M, 3), 1.5 / 3.5, 1e-10);
  EXPECT_TRUE(std::isnan(ov_eigenvalue_positivity(std::vector<double>(9, 0.0), 3)));
}

TEST(OvCircuit, CopyingAndSelfMapByHand) {
  // Rows: [2 0 1] -> l' = [1 0 0], r = 1; [0 1 3] -> l' = [0 0 5/3], r = 0; [1 2 3] -> r = 1.
  const std::vector<double> M = {2, 0, 1, 0, 1, 3, 1, 2, 3};
  EXPECT_NEAR(ov_copying_score(M, 3), (1.0 - 1.0 + 1.0) / 3.0, 1e-12);
  EXPECT_NEAR(ov_self_map_fraction(M, 3), 2.0 / 3.0, 1e-12);
  // All-equal rows: argmax ties go to token 0 only; copying has no defined rows -> NaN.
  const std::vector<double> ones(16, 1.0);
  EXPECT_NEAR(ov_self_map_fraction(ones, 4), 0.25, 1e-12);
  EXPECT_TRUE(std::isnan(ov_copying_score(ones, 4)));
  EXPECT_THROW(ov_eigenvalue_positivity(ones, 3), Error);
}

// ----------------------------------------------------------------------------- losses, ICL, KL

TEST(LossCurves, MeanPerPositionAndIclScore) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> losses = {1, 2, 3, nan, 3, 4, 5, nan};  // [2, 4]
  const auto m = mean_per_position(losses, 2, 4);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_DOUBLE_EQ(m[0], 2);
  EXPECT_DOUBLE_EQ(m[1], 3);
  EXPECT_DOUBLE_EQ(m[2], 4);
  EXPECT_TRUE(std::isnan(m[3]));
  // Loss falling along the context -> negative ICL score; a flat curve -> 0.
  std::vector<double> curve(512);
  for (size_t i = 0; i < curve.size(); ++i) curve[i] = 3.0 - std::log1p(double(i)) * 0.2;
  const double icl = in_context_learning_score(curve, kOlssonIclLate, kOlssonIclEarly);
  EXPECT_LT(icl, 0);
  EXPECT_NEAR(icl, -0.2 * (std::log(500.0) - std::log(50.0)), 1e-12);
  EXPECT_EQ(in_context_learning_score(std::vector<double>(64, 1.5), 60, 5), 0.0);
  EXPECT_THROW(in_context_learning_score(curve, 512, 49), Error);
}

TEST(Kl, ZeroForEqualAndHandValues) {
  const std::vector<double> p = {0.5, 0.5, 0.1, 0.2, 0.7};
  const auto same = kl_divergences(p, p, 5);
  EXPECT_EQ(same.model_ref, 0.0);
  EXPECT_EQ(same.ref_model, 0.0);
  // Two rows, V = 2: [0.5 0.5] vs [0.25 0.75] and [1 0] vs [0.5 0.5].
  const std::vector<float> model = {0.5f, 0.5f, 1.f, 0.f};
  const std::vector<double> ref = {0.25, 0.75, 0.5, 0.5};
  const auto r = kl_divergences(model, ref, 2);
  const double a0 = 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0);
  const double b0 = 0.25 * std::log(0.5) + 0.75 * std::log(1.5);
  ASSERT_EQ(r.per_row_model_ref.size(), 2u);
  EXPECT_NEAR(r.per_row_model_ref[0], a0, 1e-12);
  EXPECT_NEAR(r.per_row_ref_model[0], b0, 1e-12);
  EXPECT_NEAR(r.per_row_model_ref[1], std::log(2.0), 1e-12);  // 0 log 0 = 0
  EXPECT_TRUE(std::isinf(r.per_row_ref_model[1]));            // ref mass where model has none
  EXPECT_NEAR(r.model_ref, 0.5 * (a0 + std::log(2.0)), 1e-12);
  EXPECT_THROW(kl_divergences(std::vector<double>{-0.1, 1.1}, std::vector<double>{0.5, 0.5}, 2), Error);
  EXPECT_THROW(kl_divergences(p, std::vector<double>{0.5, 0.5}, 5), Error);
}

// ----------------------------------------------------------------------------- phase transitions

// Unevenly spaced log steps: every 10 steps up to 500, then every 50.
std::vector<double> log_steps() {
  std::vector<double> s;
  for (double t = 0; t < 500; t += 10) s.push_back(t);
  for (double t = 500; t <= 3000; t += 50) s.push_back(t);
  return s;
}

TEST(PhaseTransition, UnigramToBigramSwitch) {
  const auto steps = log_steps();
  const double t_switch = 1200;
  std::vector<double> uni, bi, bi_noisy;
  std::mt19937_64 rng(7);
  for (double t : steps) {
    uni.push_back(0.30);
    bi.push_back(t < t_switch ? 0.5 : 0.1);
    // Noise of +-0.25 around the clean bigram KL before the switch flips single points.
    const double u = double(rng() >> 11) * 0x1.0p-53;
    bi_noisy.push_back(bi.back() + (t < t_switch ? 0.5 * (u - 0.5) : 0.0));
  }
  const auto e = unigram_to_bigram_switch(steps, uni, bi);
  ASSERT_TRUE(e.found);
  EXPECT_EQ(e.step, t_switch);
  EXPECT_EQ(steps[e.index], t_switch);
  // Noisy: isolated early flips exist, so persistence 1 fires early; persistence 8 does not.
  const auto early = unigram_to_bigram_switch(steps, uni, bi_noisy, 1);
  ASSERT_TRUE(early.found);
  EXPECT_LT(early.step, t_switch);
  const auto robust = unigram_to_bigram_switch(steps, uni, bi_noisy, 8);
  ASSERT_TRUE(robust.found);
  EXPECT_EQ(robust.step, t_switch);
  // Never switching, or a run shorter than the persistence at the very end: not found.
  using Vec = std::vector<double>;
  EXPECT_FALSE(unigram_to_bigram_switch(steps, Vec(steps.size(), 0.1), bi).found);
  EXPECT_FALSE(unigram_to_bigram_switch(Vec{0, 1, 2}, Vec{1, 1, 1}, Vec{2, 0.5, 0.5}, 3).found);
  EXPECT_EQ(unigram_to_bigram_switch(Vec{0, 1, 2}, Vec{1, 1, 1}, Vec{2, 0.5, 0.5}, 2).step, 1);
  EXPECT_THROW(unigram_to_bigram_switch(Vec{0, 2, 1}, Vec{1, 1, 1}, Vec{1, 1, 1}), Error);
}

TEST(PhaseTransition, ThresholdCrossing) {
  const std::vector<double> steps = {0, 10, 20, 30, 40, 50};
  const std::vector<double> v = {0.0, 0.6, 0.2, 0.7, 0.8, 0.9};
  EXPECT_EQ(threshold_crossing(steps, v, 0.5).step, 10);
  EXPECT_EQ(threshold_crossing(steps, v, 0.5, Direction::Rise, 2).step, 30);
  EXPECT_EQ(threshold_crossing(steps, v, 0.1, Direction::Fall, 1).step, 0);
  EXPECT_FALSE(threshold_crossing(steps, v, 0.95).found);
}

TEST(PhaseTransition, SteepestChangeUsesRealStepGaps) {
  // Index differences would pick 0 -> 1 (jump 1.0); per step, 1 -> 2 is steeper (0.5 in 10).
  const std::vector<double> steps = {0, 1000, 1010, 2000};
  const std::vector<double> v = {0.0, 1.0, 1.5, 1.6};
  const auto r = steepest_change(steps, v);
  ASSERT_TRUE(r.found);
  EXPECT_EQ(r.index, 1);
  EXPECT_EQ(r.step, 1005);
  EXPECT_NEAR(r.slope, 0.05, 1e-12);
}

TEST(PhaseTransition, SteepestRiseAndFallOfNoisySigmoid) {
  const auto steps = log_steps();
  const double center = 1500, width = 120;
  std::vector<double> pm, icl;
  std::mt19937_64 rng(11);
  for (double t : steps) {
    const double sig = 1.0 / (1.0 + std::exp(-(t - center) / width));
    const double u = double(rng() >> 11) * 0x1.0p-53 - 0.5;
    pm.push_back(sig + 0.04 * u);          // prefix-matching score: rises
    icl.push_back(-0.8 * sig + 0.04 * u);  // ICL score (late - early): falls
  }
  SmoothingOptions sm;
  sm.window = 5;
  const auto rise = steepest_change(steps, pm, sm, Direction::Rise);
  ASSERT_TRUE(rise.found);
  EXPECT_NEAR(rise.step, center, 100);
  EXPECT_GT(rise.slope, 0);
  const auto fall = steepest_change(steps, icl, sm, Direction::Fall);
  ASSERT_TRUE(fall.found);
  EXPECT_NEAR(fall.step, center, 100);
  EXPECT_LT(fall.slope, 0);
  SmoothingOptions by_steps;
  by_steps.window_steps = 200;
  EXPECT_NEAR(steepest_change(steps, pm, by_steps).step, center, 100);
  sm.window = 4;
  EXPECT_THROW(steepest_change(steps, pm, sm), Error);
}

TEST(PhaseTransition, SmoothingByHand) {
  const std::vector<double> steps = {0, 1, 2, 10, 11};
  const std::vector<double> v = {1, 2, std::nan(""), 4, 8};
  SmoothingOptions pts;
  pts.window = 3;  // truncated at the ends; NaN skipped
  const auto a = smooth_series(steps, v, pts);
  EXPECT_DOUBLE_EQ(a[0], 1.5);
  EXPECT_DOUBLE_EQ(a[1], 1.5);
  EXPECT_DOUBLE_EQ(a[2], 3.0);
  EXPECT_DOUBLE_EQ(a[3], 6.0);
  EXPECT_DOUBLE_EQ(a[4], 6.0);
  SmoothingOptions win;
  win.window_steps = 2;  // +-1 step
  const auto b = smooth_series(steps, v, win);
  EXPECT_DOUBLE_EQ(b[0], 1.5);
  EXPECT_DOUBLE_EQ(b[1], 1.5);
  EXPECT_DOUBLE_EQ(b[2], 2.0);
  EXPECT_DOUBLE_EQ(b[3], 6.0);
  EXPECT_DOUBLE_EQ(b[4], 6.0);
}

// ----------------------------------------------------------------------------- logging bundle

TEST(LoggingBundle, RepeatedTokens) {
  const int64_t B = 2, T = 5, L = 2 * T + 1;
  const auto tok = repeated_tokens(B, T, 2);
  const Scalars s = repeated_tokens_head_scalars("l1h0.", induction_head(B, L, T), tok, L, 1, T);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].first, "l1h0.prev_token");
  EXPECT_EQ(s[1].first, "l1h0.prefix_matching");
  EXPECT_EQ(s[2].first, "l1h0.induction_stripe");
  EXPECT_EQ(s[3].first, "l1h0.tl_induction");
  EXPECT_NEAR(s[1].second, 1.0, 1e-6);
  EXPECT_NEAR(s[2].second, 1.0, 1e-6);
  EXPECT_NEAR(s[3].second, double(T) / double(L), 1e-6);
}

}  // namespace
}  // namespace ihlab
