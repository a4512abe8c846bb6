#pragma once
// Induction-head metrics as pure functions on attention patterns, OV-circuit matrices, loss
// curves and logged time series. Definitions: docs/metrics.md; where the literature is silent the
// common convention is chosen and marked "[choice]" below.
//
// Layouts (all row-major, plain arrays; float and double overloads where inputs come from models):
//   attention pattern  A [B, L, L] (B >= 1; [L, L] is B = 1): A[b, q, k] is the weight that query
//                      position q puts on key position k. Rows are expected to be causal and
//                      row-stochastic (sum_k A[q, k] = 1); nothing here renormalizes them.
//   tokens             [B, L] int32, the sequences the patterns were computed on.
//   OV circuit         M [V, V] in the row-vector convention: M[s, t] is the logit the head adds to
//                      output token t when it attends (with weight 1) to input token s, i.e.
//                      M = W_E W_V W_O W_U. Papers write W_U W_O W_V W_E (column-vector
//                      convention), which is M transposed: same eigenvalues, and the "maps a
//                      token to itself" test reads row s of M.
//   per-position loss  [B, L] or [L]: entry i is the loss of the prediction made at position i.
//   positions are 0-based everywhere.
// Results are double; accumulation is in double in a fixed order (deterministic).
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "core/scalars.h"

namespace ihlab {

// ---------------------------------------------------------------------------------------------
// Attention-pattern scores
// ---------------------------------------------------------------------------------------------

// Previous-token score (docs/metrics.md#previous-token-score):
//   mean over b and over q = 1 .. L-1 of A[b, q, q-1].
// Position 0 has no previous token and is left out [choice]: a perfect previous-token head scores
// exactly 1. (TransformerLens' "previous_token_head" detect_head score divides the same sum by L,
// not L-1; use tl_detect_head_score with tl_previous_token_pattern for that.) Requires L >= 2.
double previous_token_score(std::span<const float> attn, int64_t L);
double previous_token_score(std::span<const double> attn, int64_t L);

// Prefix-matching score (Olsson; offset +1 convention, the one TransformerLens uses;
// docs/metrics.md#prefix-matching-score):
//   for every query q >= first_query whose token occurred earlier,
//     E(q) = {j < q : tok[j] == tok[q]},
//     s(q) = sum_{j in E(q)} A[q, j + 1]        (j + 1 <= q, so the target may be q itself)
//   score = mean of s(q) over all such (b, q).
// Attention to several earlier copies is summed (a head may split its weight between them), so a
// perfect head scores 1. Queries without an earlier copy of their token are left out. Returns NaN
// when no query qualifies. first_query = 0 scores every repeated token, wherever it sits.
double prefix_matching_score(std::span<const float> attn, std::span<const int32_t> tokens, int64_t L,
                             int64_t first_query = 0);
double prefix_matching_score(std::span<const double> attn, std::span<const int32_t> tokens, int64_t L,
                             int64_t first_query = 0);

// Olsson's setting: sequences laid out as prefix_len tokens (1 for [BOS]) followed by a block of
// block_len random tokens repeated (2 or more times). Averages prefix_matching_score over the
// positions of the second and later repeats only (first_query = prefix_len + block_len), so
// accidental repeats inside the first block do not count. Olsson's protocol: [BOS] + 25 tokens x 4
// repeats, 10 sequences (pass them as the batch).
double prefix_matching_score_repeated(std::span<const float> attn, std::span<const int32_t> tokens, int64_t L,
                                      int64_t prefix_len, int64_t block_len);
double prefix_matching_score_repeated(std::span<const double> attn, std::span<const int32_t> tokens, int64_t L,
                                      int64_t prefix_len, int64_t block_len);

// Token-free induction "stripe" on the same layout: mean over b and over queries q in
// [prefix_len + block_len, L) of A[b, q, q - block_len + 1], the position right after the most
// recent earlier copy (the diagonal at offset -(block_len - 1), restricted to the repeats). Equals
// the prefix-matching score when the block has no repeated tokens and the head only looks at the
// most recent copy. [choice] The TransformerLens tutorial's stripe
// (pattern.diagonal(-T+1).mean() on [BOS] r r) also averages the two first-block entries
// q = T-1 and T; this one does not, so a perfect induction head scores 1 here.
double induction_stripe_score(std::span<const float> attn, int64_t L, int64_t prefix_len, int64_t block_len);
double induction_stripe_score(std::span<const double> attn, int64_t L, int64_t prefix_len, int64_t block_len);

// TransformerLens `detect_head` (transformer_lens/head_detector.py), reimplemented.
// Detection patterns P [L, L] (0/1, lower triangular) for one sequence:
//   previous token : P[q, k] = 1 iff k == q - 1.
//   duplicate token: P[q, k] = 1 iff k < q and tok[k] == tok[q].
//   induction      : P[q, k] = 1 iff 1 <= k <= q, tok[k-1] == tok[q] and k-1 != q
//                    (the duplicate pattern shifted one key to the right;
//                    docs/metrics.md#transformerlens-detect_head-scores).
std::vector<double> tl_previous_token_pattern(int64_t L);
std::vector<double> tl_duplicate_token_pattern(std::span<const int32_t> tokens, int64_t L);
std::vector<double> tl_induction_pattern(std::span<const int32_t> tokens, int64_t L);

enum class TlErrorMeasure {
  Mul,  // TL default: score = sum(A' * P) / sum(A')   (A' = A after the exclusions below)
  Abs,  // 1 - sum|A - P| / L (TL rounds this to 3 decimals; this does not)
};
struct TlDetectOptions {
  bool exclude_bos = false;            // zero key column 0 before scoring (TL default false)
  bool exclude_current_token = false;  // zero the diagonal before scoring (TL default false)
  TlErrorMeasure measure = TlErrorMeasure::Mul;
};
// One sequence: attn and pattern both [L, L]. Mul returns NaN when sum(A') == 0.
double tl_detect_head_score(std::span<const float> attn, std::span<const double> pattern, int64_t L,
                            const TlDetectOptions& opt = {});
double tl_detect_head_score(std::span<const double> attn, std::span<const double> pattern, int64_t L,
                            const TlDetectOptions& opt = {});

// TL "induction_head" score of a batch: the per-sequence detect_head score with the induction
// pattern of that sequence's tokens, averaged over the B sequences (TL stacks per-prompt scores and
// takes the mean). A perfect head on [BOS] r r scores about 0.5, not 1, because only the
// second half can match: exactly T / (2T + 1) with the defaults when first-block rows put their
// weight on non-matching keys, and 1 with exclude_bos when they park it on BOS.
double tl_induction_score(std::span<const float> attn, std::span<const int32_t> tokens, int64_t L,
                          const TlDetectOptions& opt = {});
double tl_induction_score(std::span<const double> attn, std::span<const int32_t> tokens, int64_t L,
                          const TlDetectOptions& opt = {});

// ---------------------------------------------------------------------------------------------
// Copying and OV-circuit (weight-only) scores
// ---------------------------------------------------------------------------------------------

// Olsson copying score on a sequence (docs/metrics.md#copying-score):
//   head_logits [B, L, V]: l(b, q) = z(b, q) W_O W_U, the head's direct logit contribution at
//                          query q.
//   l' = max(l - mean_t l, 0);  r = sum_k A[b, q, k] * l'[tok[b, k]] / sum_t l'[t];  s = 2r - 1.
//   score = mean of s over queries q >= first_query.
// Queries with no positive l' (constant logits: no preference; or non-finite logits) are left
// out; NaN if none remain.
// Note (literal reading of Olsson's definition): a head that attends to m distinct tokens equally and copies
// them perfectly gets r = 1/m, not 1.
double copying_score(std::span<const float> head_logits, std::span<const float> attn, std::span<const int32_t> tokens,
                     int64_t L, int64_t V, int64_t first_query = 0);
double copying_score(std::span<const double> head_logits, std::span<const double> attn, std::span<const int32_t> tokens,
                     int64_t L, int64_t V, int64_t first_query = 0);

// Weight-only copying score: the sequence score above when token s attends only to itself, so
// l = M[s, :]; mean over input tokens s of 2 r_s - 1 with r_s = l'_s[s] / sum_t l'_s[t]. Rows with
// constant (or non-finite) logits are left out (NaN if all are). Identity -> 1, negative
// identity -> -1.
double ov_copying_score(std::span<const double> M, int64_t V);

// OV-circuit eigenvalue positivity (docs/metrics.md#ov-eigenvalue-positivity). M is a general real matrix,
// so its eigenvalues are complex (conjugate pairs): returns sum_i Re(lambda_i) / sum_i |lambda_i|
// (sum_i lambda_i = trace is real anyway). In [-1, 1]: identity 1, negative identity -1, a rotation
// by theta in a plane cos(theta), a cyclic permutation of V >= 2 tokens 0. NaN for the zero matrix.
// Dense eigen-decomposition (Eigen::EigenSolver), O(V^3).
double ov_eigenvalue_positivity(std::span<const double> M, int64_t V);

// OV self-map fraction (docs/metrics.md#ov-self-map-fraction): fraction of input tokens s with
// argmax_t M[s, t] == s. [choice] Ties go to the lowest index (torch.argmax semantics); rows with a
// NaN never count.
double ov_self_map_fraction(std::span<const double> M, int64_t V);

// ---------------------------------------------------------------------------------------------
// Loss curves and in-context learning
// ---------------------------------------------------------------------------------------------

// [B, L] -> [L]: mean over the batch at each position. [choice] Non-finite entries (positions
// without a target, logged as NaN) are skipped; a position with no finite entry gives NaN.
std::vector<double> mean_per_position(std::span<const float> losses, int64_t B, int64_t L);
std::vector<double> mean_per_position(std::span<const double> losses, int64_t B, int64_t L);

// In-context learning score (docs/metrics.md#in-context-learning-score): loss at a late position
// minus loss at an early one (Olsson: token 500 minus token 50 at 512 context). 0-based indices into
// the per-position loss; negative when later tokens are predicted better (in-context learning).
// Olsson's "500th" and "50th" tokens are indices 499 and 49 (kOlssonIclLate / kOlssonIclEarly).
inline constexpr int64_t kOlssonIclLate = 499;
inline constexpr int64_t kOlssonIclEarly = 49;
double in_context_learning_score(std::span<const double> per_position_loss, int64_t late, int64_t early);

// ---------------------------------------------------------------------------------------------
// Distance to reference predictors
// ---------------------------------------------------------------------------------------------

// Per-row KL divergences between the model's predictive distributions p [N, V] and a reference
// predictor's q [N, V] (e.g. in-context unigram / bigram), in nats:
//   model_ref = KL(p || q) = sum_t p_t log(p_t / q_t)   (docs/metrics.md#kl-to-reference-predictors)
//   ref_model = KL(q || p) = sum_t q_t log(q_t / p_t)
// Conventions: 0 log(0 / x) = 0; p_t > 0 with q_t = 0 gives +inf (and vice versa). Rows are used as
// given (not renormalized); negative or NaN entries throw.
struct KlResult {
  double model_ref = 0;                   // mean over rows of KL(model || ref)
  double ref_model = 0;                   // mean over rows of KL(ref || model)
  std::vector<double> per_row_model_ref;  // [N]
  std::vector<double> per_row_ref_model;  // [N]
};
KlResult kl_divergences(std::span<const float> model_probs, std::span<const float> ref_probs, int64_t V);
KlResult kl_divergences(std::span<const float> model_probs, std::span<const double> ref_probs, int64_t V);
KlResult kl_divergences(std::span<const double> model_probs, std::span<const double> ref_probs, int64_t V);

// ---------------------------------------------------------------------------------------------
// Phase-transition time from logged series (docs/metrics.md#phase-transition-times): the step where
// the model's closest reference predictor (by KL) switches from unigram to bigram (Edelman); or the
// steepest rise of the ICL score / prefix-matching score; or a threshold crossing. Callers say which.
// Series are indexed by logged point: steps[i] is the training step of point i (strictly
// increasing, any spacing) and values[i] the logged value.
// ---------------------------------------------------------------------------------------------

struct SeriesEvent {
  bool found = false;
  int64_t index = -1;  // logged point
  double step = std::numeric_limits<double>::quiet_NaN();
};

// Unigram -> bigram switch: the first logged point i such that the bigram reference is strictly
// closer, kl_bigram[j] < kl_unigram[j], at every one of the `persistence` consecutive logged points
// j = i .. i + persistence - 1 (points with NaN are "not closer"). [choice] A run cut short by the
// end of the series does not count; index 0 is returned if bigram is closer from the start.
SeriesEvent unigram_to_bigram_switch(std::span<const double> steps, std::span<const double> kl_unigram,
                                     std::span<const double> kl_bigram, int persistence = 1);

enum class Direction { Rise, Fall };

// Threshold crossing: first logged point i with values[j] >= threshold (Rise) or <= threshold
// (Fall) for j = i .. i + persistence - 1 (same run rule as above).
SeriesEvent threshold_crossing(std::span<const double> steps, std::span<const double> values, double threshold,
                               Direction dir = Direction::Rise, int persistence = 1);

struct SmoothingOptions {
  // Centered moving average over `window` logged points (odd, >= 1; 1 = no smoothing), truncated
  // at the ends (the mean of the points that exist).
  int window = 1;
  // If > 0, average instead over the points whose step lies within +-window_steps/2 of the point's
  // step (a window in training steps, for unevenly spaced logs). Overrides `window`.
  double window_steps = 0;
};
std::vector<double> smooth_series(std::span<const double> steps, std::span<const double> values,
                                  const SmoothingOptions& opt);

// Steepest rise (or fall) of a smoothed series, e.g. the prefix-matching score (rises) or Olsson's
// ICL score late - early (falls: use Direction::Fall). Slopes are finite differences between
// consecutive logged points of the smoothed series, divided by the real step gap:
//   slope_i = (s[i+1] - s[i]) / (steps[i+1] - steps[i]).
// Non-finite values are skipped by the smoothing; slopes touching a NaN smoothed value are skipped.
// [choice] The event is placed at the middle of the steepest interval; ties go to the earliest.
struct SteepestChange {
  bool found = false;
  int64_t index = -1;                                      // the interval is [index, index + 1]
  double step = std::numeric_limits<double>::quiet_NaN();  // (steps[index] + steps[index+1]) / 2
  double step_before = std::numeric_limits<double>::quiet_NaN();
  double step_after = std::numeric_limits<double>::quiet_NaN();
  double slope = std::numeric_limits<double>::quiet_NaN();  // signed, per training step
  std::vector<double> smoothed;
};
SteepestChange steepest_change(std::span<const double> steps, std::span<const double> values,
                               const SmoothingOptions& smoothing = {}, Direction dir = Direction::Rise);

// ---------------------------------------------------------------------------------------------
// Logging bundles (column names prefix + name)
// ---------------------------------------------------------------------------------------------

// {prev_token, prefix_matching, induction_stripe, tl_induction} of one head on a batch laid out as
// prefix_len tokens + a block of block_len tokens repeated.
Scalars repeated_tokens_head_scalars(const std::string& prefix, std::span<const float> attn,
                                     std::span<const int32_t> tokens, int64_t L, int64_t prefix_len, int64_t block_len);
// {ov_eig_positivity, ov_self_fraction, ov_copying} of one head's OV circuit M [V, V].
Scalars ov_circuit_scalars(const std::string& prefix, std::span<const double> M, int64_t V);

}  // namespace ihlab
