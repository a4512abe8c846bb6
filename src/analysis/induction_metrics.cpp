// Attention-pattern and OV-circuit induction-head metrics (see induction_metrics.h for the
// definitions and conventions).
#include "analysis/induction_metrics.h"

#include <cmath>
#include <complex>

// GCC 12 with -march=native reports -Wmaybe-uninitialized inside its own AVX-512 intrinsics when
// they are inlined into Eigen's EigenSolver; the warnings are not about this code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "core/eigen.h"
#pragma GCC diagnostic pop

#include "core/error.h"

namespace ihlab {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Number of [L, L] patterns in attn; throws unless the size is a positive multiple of L * L.
template <typename T>
int64_t batch_of(const char* fn, std::span<const T> attn, int64_t L) {
  IHLAB_CHECK(L >= 1, "{}: sequence length must be >= 1, got {}", fn, L);
  const int64_t per = L * L;
  IHLAB_CHECK(!attn.empty() && int64_t(attn.size()) % per == 0,
              "{}: attention has {} values, not a positive multiple of L*L = {}", fn, attn.size(), per);
  return int64_t(attn.size()) / per;
}

void check_tokens(const char* fn, std::span<const int32_t> tokens, int64_t B, int64_t L) {
  IHLAB_CHECK(int64_t(tokens.size()) == B * L, "{}: {} tokens given for {} sequences of length {} ({} expected)", fn,
              tokens.size(), B, L, B * L);
}

template <typename T>
double previous_token_impl(std::span<const T> attn, int64_t L) {
  const int64_t B = batch_of("previous_token_score", attn, L);
  IHLAB_CHECK(L >= 2, "previous_token_score: needs L >= 2, got {}", L);
  double sum = 0;
  for (int64_t b = 0; b < B; ++b) {
    const T* A = attn.data() + b * L * L;
    for (int64_t q = 1; q < L; ++q) sum += double(A[q * L + q - 1]);
  }
  return sum / double(B * (L - 1));
}

template <typename T>
double prefix_matching_impl(std::span<const T> attn, std::span<const int32_t> tokens, int64_t L, int64_t first_query) {
  const int64_t B = batch_of("prefix_matching_score", attn, L);
  check_tokens("prefix_matching_score", tokens, B, L);
  IHLAB_CHECK(first_query >= 0, "prefix_matching_score: first_query must be >= 0, got {}", first_query);
  double sum = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < B; ++b) {
    const T* A = attn.data() + b * L * L;
    const int32_t* tok = tokens.data() + b * L;
    for (int64_t q = first_query; q < L; ++q) {
      bool any = false;
      double s = 0;
      for (int64_t j = 0; j < q; ++j)
        if (tok[j] == tok[q]) any = true, s += double(A[q * L + j + 1]);
      if (any) sum += s, ++count;
    }
  }
  return count > 0 ? sum / double(count) : kNaN;
}

void check_repeat_layout(const char* fn, int64_t L, int64_t prefix_len, int64_t block_len) {
  IHLAB_CHECK(prefix_len >= 0 && block_len >= 1, "{}: need prefix_len >= 0 and block_len >= 1, got {} and {}", fn,
              prefix_len, block_len);
  IHLAB_CHECK(prefix_len + 2 * block_len <= L, "{}: L = {} cannot hold a prefix of {} and two blocks of {}", fn, L,
              prefix_len, block_len);
}

template <typename T>
double stripe_impl(std::span<const T> attn, int64_t L, int64_t prefix_len, int64_t block_len) {
  const int64_t B = batch_of("induction_stripe_score", attn, L);
  check_repeat_layout("induction_stripe_score", L, prefix_len, block_len);
  double sum = 0;
  const int64_t q0 = prefix_len + block_len;
  for (int64_t b = 0; b < B; ++b) {
    const T* A = attn.data() + b * L * L;
    for (int64_t q = q0; q < L; ++q) sum += double(A[q * L + q - block_len + 1]);
  }
  return sum / double(B * (L - q0));
}

template <typename T>
double tl_detect_impl(const T* A, const double* P, int64_t L, const TlDetectOptions& opt) {
  auto kept = [&](int64_t q, int64_t k) {
    return !((opt.exclude_bos && k == 0) || (opt.exclude_current_token && k == q));
  };
  if (opt.measure == TlErrorMeasure::Mul) {
    double num = 0, den = 0;
    for (int64_t q = 0; q < L; ++q)
      for (int64_t k = 0; k < L; ++k) {
        if (!kept(q, k)) continue;
        const double a = double(A[q * L + k]);
        num += a * P[q * L + k];
        den += a;
      }
    return den != 0 ? num / den : kNaN;
  }
  double err = 0;
  for (int64_t q = 0; q < L; ++q)
    for (int64_t k = 0; k < L; ++k)
      if (kept(q, k)) err += std::abs(double(A[q * L + k]) - P[q * L + k]);
  return 1.0 - err / double(L);
}

template <typename T>
double tl_detect_checked(std::span<const T> attn, std::span<const double> pattern, int64_t L,
                         const TlDetectOptions& opt) {
  IHLAB_CHECK(L >= 1 && int64_t(attn.size()) == L * L && int64_t(pattern.size()) == L * L,
              "tl_detect_head_score: attention ({}) and pattern ({}) must hold L*L = {} values", attn.size(),
              pattern.size(), L * L);
  return tl_detect_impl(attn.data(), pattern.data(), L, opt);
}

template <typename T>
double tl_induction_impl(std::span<const T> attn, std::span<const int32_t> tokens, int64_t L,
                         const TlDetectOptions& opt) {
  const int64_t B = batch_of("tl_induction_score", attn, L);
  check_tokens("tl_induction_score", tokens, B, L);
  double sum = 0;
  for (int64_t b = 0; b < B; ++b) {
    const auto P = tl_induction_pattern(tokens.subspan(b * L, L), L);
    sum += tl_detect_impl(attn.data() + b * L * L, P.data(), L, opt);
  }
  return sum / double(B);
}

// 2 r - 1 for one logit row given the attention-weighted l' of the attended tokens; NaN if the row
// has no positive part (constant logits).
template <typename T, typename F>
double copying_row(const T* l, int64_t V, F&& attended_mass) {
  double mean = 0;
  for (int64_t t = 0; t < V; ++t) mean += double(l[t]);
  mean /= double(V);
  double total = 0;
  for (int64_t t = 0; t < V; ++t) total += std::max(double(l[t]) - mean, 0.0);
  if (!(total > 0)) return kNaN;
  auto lp = [&](int64_t t) { return std::max(double(l[t]) - mean, 0.0); };
  return 2.0 * attended_mass(lp) / total - 1.0;
}

template <typename T>
double copying_impl(std::span<const T> head_logits, std::span<const T> attn, std::span<const int32_t> tokens, int64_t L,
                    int64_t V, int64_t first_query) {
  const int64_t B = batch_of("copying_score", attn, L);
  check_tokens("copying_score", tokens, B, L);
  IHLAB_CHECK(V >= 1 && int64_t(head_logits.size()) == B * L * V,
              "copying_score: head logits have {} values, expected B*L*V = {}*{}*{}", head_logits.size(), B, L, V);
  IHLAB_CHECK(first_query >= 0, "copying_score: first_query must be >= 0, got {}", first_query);
  double sum = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t q = first_query; q < L; ++q) {
      const T* A = attn.data() + (b * L + q) * L;
      const int32_t* tok = tokens.data() + b * L;
      const double s = copying_row(head_logits.data() + (b * L + q) * V, V, [&](auto&& lp) {
        double m = 0;
        for (int64_t k = 0; k <= q; ++k) {
          IHLAB_CHECK(tok[k] >= 0 && tok[k] < V, "copying_score: token {} outside [0, {})", tok[k], V);
          m += double(A[k]) * lp(tok[k]);
        }
        return m;
      });
      if (!std::isnan(s)) sum += s, ++count;
    }
  return count > 0 ? sum / double(count) : kNaN;
}

void check_square(const char* fn, std::span<const double> M, int64_t V) {
  IHLAB_CHECK(V >= 1 && int64_t(M.size()) == V * V, "{}: OV circuit has {} values, expected V*V with V = {}", fn,
              M.size(), V);
}

}  // namespace

double previous_token_score(std::span<const float> a, int64_t L) { return previous_token_impl(a, L); }
double previous_token_score(std::span<const double> a, int64_t L) { return previous_token_impl(a, L); }

double prefix_matching_score(std::span<const float> a, std::span<const int32_t> t, int64_t L, int64_t first_query) {
  return prefix_matching_impl(a, t, L, first_query);
}
double prefix_matching_score(std::span<const double> a, std::span<const int32_t> t, int64_t L, int64_t first_query) {
  return prefix_matching_impl(a, t, L, first_query);
}

double prefix_matching_score_repeated(std::span<const float> a, std::span<const int32_t> t, int64_t L,
                                      int64_t prefix_len, int64_t block_len) {
  check_repeat_layout("prefix_matching_score_repeated", L, prefix_len, block_len);
  return prefix_matching_impl(a, t, L, prefix_len + block_len);
}
double prefix_matching_score_repeated(std::span<const double> a, std::span<const int32_t> t, int64_t L,
                                      int64_t prefix_len, int64_t block_len) {
  check_repeat_layout("prefix_matching_score_repeated", L, prefix_len, block_len);
  return prefix_matching_impl(a, t, L, prefix_len + block_len);
}

double induction_stripe_score(std::span<const float> a, int64_t L, int64_t p, int64_t T) {
  return stripe_impl(a, L, p, T);
}
double induction_stripe_score(std::span<const double> a, int64_t L, int64_t p, int64_t T) {
  return stripe_impl(a, L, p, T);
}

std::vector<double> tl_previous_token_pattern(int64_t L) {
  IHLAB_CHECK(L >= 1, "tl_previous_token_pattern: L must be >= 1, got {}", L);
  std::vector<double> P(size_t(L * L), 0.0);
  for (int64_t q = 1; q < L; ++q) P[q * L + q - 1] = 1;
  return P;
}

std::vector<double> tl_duplicate_token_pattern(std::span<const int32_t> tokens, int64_t L) {
  IHLAB_CHECK(L >= 1 && int64_t(tokens.size()) == L, "tl_duplicate_token_pattern: {} tokens given for L = {}",
              tokens.size(), L);
  std::vector<double> P(size_t(L * L), 0.0);
  for (int64_t q = 0; q < L; ++q)
    for (int64_t k = 0; k < q; ++k)
      if (tokens[k] == tokens[q]) P[q * L + k] = 1;
  return P;
}

std::vector<double> tl_induction_pattern(std::span<const int32_t> tokens, int64_t L) {
  IHLAB_CHECK(L >= 1 && int64_t(tokens.size()) == L, "tl_induction_pattern: {} tokens given for L = {}", tokens.size(),
              L);
  std::vector<double> P(size_t(L * L), 0.0);
  for (int64_t q = 0; q < L; ++q)
    for (int64_t k = 1; k <= q; ++k)
      if (k - 1 != q && tokens[k - 1] == tokens[q]) P[q * L + k] = 1;
  return P;
}

double tl_detect_head_score(std::span<const float> a, std::span<const double> P, int64_t L,
                            const TlDetectOptions& opt) {
  return tl_detect_checked(a, P, L, opt);
}
double tl_detect_head_score(std::span<const double> a, std::span<const double> P, int64_t L,
                            const TlDetectOptions& opt) {
  return tl_detect_checked(a, P, L, opt);
}

double tl_induction_score(std::span<const float> a, std::span<const int32_t> t, int64_t L, const TlDetectOptions& opt) {
  return tl_induction_impl(a, t, L, opt);
}
double tl_induction_score(std::span<const double> a, std::span<const int32_t> t, int64_t L,
                          const TlDetectOptions& opt) {
  return tl_induction_impl(a, t, L, opt);
}

double copying_score(std::span<const float> lg, std::span<const float> a, std::span<const int32_t> t, int64_t L,
                     int64_t V, int64_t first_query) {
  return copying_impl(lg, a, t, L, V, first_query);
}
double copying_score(std::span<const double> lg, std::span<const double> a, std::span<const int32_t> t, int64_t L,
                     int64_t V, int64_t first_query) {
  return copying_impl(lg, a, t, L, V, first_query);
}

double ov_copying_score(std::span<const double> M, int64_t V) {
  check_square("ov_copying_score", M, V);
  double sum = 0;
  int64_t count = 0;
  for (int64_t s = 0; s < V; ++s) {
    const double v = copying_row(M.data() + s * V, V, [&](auto&& lp) { return lp(s); });
    if (!std::isnan(v)) sum += v, ++count;
  }
  return count > 0 ? sum / double(count) : kNaN;
}

double ov_eigenvalue_positivity(std::span<const double> M, int64_t V) {
  check_square("ov_eigenvalue_positivity", M, V);
  Eigen::MatrixXd m(V, V);
  for (int64_t i = 0; i < V; ++i)
    for (int64_t j = 0; j < V; ++j) m(i, j) = M[i * V + j];
  IHLAB_CHECK(m.allFinite(), "ov_eigenvalue_positivity: the OV circuit has non-finite entries");
  Eigen::EigenSolver<Eigen::MatrixXd> solver(m, /*computeEigenvectors=*/false);
  IHLAB_CHECK(solver.info() == Eigen::Success,
              "ov_eigenvalue_positivity: eigenvalue computation did not converge (V = {})", V);
  double re = 0, mag = 0;
  for (const std::complex<double>& lambda : solver.eigenvalues()) {
    re += lambda.real();
    mag += std::abs(lambda);
  }
  return mag > 0 ? re / mag : kNaN;
}

double ov_self_map_fraction(std::span<const double> M, int64_t V) {
  check_square("ov_self_map_fraction", M, V);
  int64_t hits = 0;
  for (int64_t s = 0; s < V; ++s) {
    const double* row = M.data() + s * V;
    bool ok = !std::isnan(row[s]);
    for (int64_t t = 0; t < V && ok; ++t) {
      if (std::isnan(row[t]))
        ok = false;
      else if (t < s ? row[t] >= row[s] : row[t] > row[s])
        ok = false;  // lowest index wins ties
    }
    hits += ok;
  }
  return double(hits) / double(V);
}

Scalars repeated_tokens_head_scalars(const std::string& prefix, std::span<const float> attn,
                                     std::span<const int32_t> tokens, int64_t L, int64_t prefix_len,
                                     int64_t block_len) {
  return {
      {prefix + "prev_token", previous_token_score(attn, L)},
      {prefix + "prefix_matching", prefix_matching_score_repeated(attn, tokens, L, prefix_len, block_len)},
      {prefix + "induction_stripe", induction_stripe_score(attn, L, prefix_len, block_len)},
      {prefix + "tl_induction", tl_induction_score(attn, tokens, L)},
  };
}

Scalars ov_circuit_scalars(const std::string& prefix, std::span<const double> M, int64_t V) {
  return {
      {prefix + "ov_eig_positivity", ov_eigenvalue_positivity(M, V)},
      {prefix + "ov_self_fraction", ov_self_map_fraction(M, V)},
      {prefix + "ov_copying", ov_copying_score(M, V)},
  };
}

}  // namespace ihlab
