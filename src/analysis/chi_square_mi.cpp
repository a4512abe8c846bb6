#include "analysis/chi_square_mi.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "core/error.h"
#include "core/parallel.h"

namespace ihlab {

namespace {
int64_t ipow(int64_t base, int exp) {
  int64_t r = 1;
  while (exp-- > 0) r *= base;
  return r;
}

// The digit of `state` at lag j (1-based): the token j steps before the next one.
int digit_at_lag(int64_t state, int lag, int vocab) { return int((state / ipow(vocab, lag - 1)) % vocab); }

// Kernel row index for the token that follows window `state` (parents read as lags).
int64_t parent_context(const MarkovKernel& k, int64_t state) {
  int64_t ctx = 0, place = 1;
  for (int p : k.parents) {
    ctx += digit_at_lag(state, -p, k.vocab) * place;
    place *= k.vocab;
  }
  return ctx;
}

void check_window(const MarkovKernel& k, int window) {
  IHLAB_CHECK(window >= k.max_lag(), "chi_square_mi: window {} is shorter than max|parent| = {}", window, k.max_lag());
}
}  // namespace

int64_t window_states(int vocab, int window) {
  int64_t n = 1;
  for (int j = 0; j < window; ++j) {
    n *= vocab;
    IHLAB_CHECK(n <= kMaxWindowStates, "chi_square_mi: vocab^window = {}^{} exceeds {} states", vocab, window,
                kMaxWindowStates);
  }
  return n;
}

Eigen::MatrixXd window_transition_matrix(const MarkovKernel& k, int window) {
  check_window(k, window);
  const int64_t n = window_states(k.vocab, window);
  Eigen::MatrixXd P = Eigen::MatrixXd::Zero(n, n);  // [n, n]
  // The new token enters at lag 1 and the oldest one (lag W) drops out.
  const int64_t keep = window > 0 ? n / k.vocab : 1;
  for (int64_t s = 0; s < n; ++s) {
    const double* row = k.row(parent_context(k, s));
    for (int x = 0; x < k.vocab; ++x) {
      int64_t next = window > 0 ? x + int64_t(k.vocab) * (s % keep) : 0;
      P(s, next) += row[x];
    }
  }
  return P;
}

std::vector<double> stationary_distribution(const MarkovKernel& k, int window) {
  const int m = k.max_lag();
  if (window == 0) window = m;
  check_window(k, window);
  // Exact solve on the smallest Markov window, m = max|parent|.
  Eigen::MatrixXd A = window_transition_matrix(k, m).transpose();  // [n, n]
  const int64_t n = A.rows();
  A -= Eigen::MatrixXd::Identity(n, n);
  A.row(n - 1).setOnes();  // (P^T - I) has rank n-1; this row pins sum(mu) = 1
  Eigen::VectorXd rhs = Eigen::VectorXd::Zero(n);
  rhs(n - 1) = 1.0;
  Eigen::VectorXd sol = A.fullPivLu().solve(rhs);
  std::vector<double> mu(n);  // [d^m]
  double total = 0;
  for (int64_t s = 0; s < n; ++s) total += (mu[s] = std::max(0.0, sol(s)));  // drop -1e-17 noise
  for (auto& v : mu) v /= total;
  // Extend to longer windows: the new token becomes lag 1 and every old lag moves up by one.
  for (int w = m; w < window; ++w) {
    std::vector<double> longer(mu.size() * k.vocab, 0.0);  // [d^(w+1)]
    for (int64_t s = 0; s < int64_t(mu.size()); ++s) {
      const double* row = k.row(parent_context(k, s));
      for (int x = 0; x < k.vocab; ++x) longer[x + int64_t(k.vocab) * s] = mu[s] * row[x];
    }
    mu.swap(longer);
  }
  return mu;
}

WindowJoint stationary_window_joint(const MarkovKernel& k, int window) {
  WindowJoint j;
  j.vocab = k.vocab;
  j.window = window;
  std::vector<double> mu = stationary_distribution(k, window);  // [d^W]
  j.mu.resize(mu.size() * k.vocab);                             // [d^W, d]
  for (int64_t s = 0; s < int64_t(mu.size()); ++s) {
    const double* row = k.row(parent_context(k, s));
    for (int x = 0; x < k.vocab; ++x) j.mu[s * k.vocab + x] = mu[s] * row[x];
  }
  return j;
}

std::vector<double> subset_joint(const WindowJoint& j, const std::vector<int>& subset) {
  std::set<int> seen;
  for (int p : subset)
    IHLAB_CHECK(p < 0 && -p <= j.window && seen.insert(p).second,
                "chi_square_mi: subset offset {} is invalid; allowed: distinct offsets in -{}..-1", p, j.window);
  const int d = j.vocab;
  const int64_t states = int64_t(j.mu.size()) / d;
  std::vector<double> out(ipow(d, int(subset.size())) * d, 0.0);  // [d^|S|, d]
  for (int64_t s = 0; s < states; ++s) {
    int64_t z = 0, place = 1;
    for (int p : subset) {
      z += digit_at_lag(s, -p, d) * place;
      place *= d;
    }
    for (int x = 0; x < d; ++x) out[z * d + x] += j.mu[s * d + x];
  }
  return out;
}

double chi_square_mi(const WindowJoint& j, const std::vector<int>& subset, double power) {
  // The empty set is exactly 0 (mu(x|z) = mu(x)); the general formula leaves ~1e-19 of roundoff.
  if (subset.empty()) return 0.0;
  const int d = j.vocab;
  std::vector<double> joint = subset_joint(j, subset);  // [d^|S|, d]
  const int64_t nz = int64_t(joint.size()) / d;
  std::vector<double> mu_x(d, 0.0);  // [d]
  for (int64_t z = 0; z < nz; ++z)
    for (int x = 0; x < d; ++x) mu_x[x] += joint[z * d + x];
  double total = 0;
  for (int64_t z = 0; z < nz; ++z) {
    double mu_z = 0;
    for (int x = 0; x < d; ++x) mu_z += joint[z * d + x];
    if (mu_z <= 0) continue;
    double ratio = 0;  // sum_x mu(x|z)^2 / mu(x)
    for (int x = 0; x < d; ++x)
      if (mu_x[x] > 0) {
        double cond = joint[z * d + x] / mu_z;
        ratio += cond * cond / mu_x[x];
      }
    total += std::pow(mu_z, power) * (ratio - 1.0);
  }
  return total;
}

std::vector<std::vector<int>> enumerate_subsets(const std::vector<int>& candidates, int max_size) {
  const int n = int(candidates.size());
  IHLAB_CHECK(n <= 20, "chi_square_mi: {} candidates is too many; allowed: at most 20", n);
  std::vector<std::vector<int>> out;
  for (int size = 0; size <= std::min(max_size, n); ++size) {
    // Bit masks with `size` bits, in lexicographic order of the chosen candidate positions.
    std::vector<bool> pick(n, false);
    std::fill(pick.begin(), pick.begin() + size, true);
    do {
      std::vector<int> s;
      for (int i = 0; i < n; ++i)
        if (pick[i]) s.push_back(candidates[i]);
      out.push_back(std::move(s));
    } while (std::prev_permutation(pick.begin(), pick.end()));
  }
  return out;
}

MiSurvey survey_chi_square_mi(const MiSurveyConfig& cfg) {
  cfg.task.validate();
  IHLAB_CHECK(cfg.n_kernels >= 2, "mi survey: n_kernels = {} is invalid; allowed: >= 2", cfg.n_kernels);
  IHLAB_CHECK(cfg.max_subset >= 0, "mi survey: max_subset = {} is invalid; allowed: >= 0", cfg.max_subset);
  std::set<int> seen;
  int window = cfg.task.max_lag();
  for (int c : cfg.candidates) {
    IHLAB_CHECK(c < 0 && seen.insert(c).second, "mi survey: candidates contains {}; allowed: distinct negative offsets",
                c);
    window = std::max(window, -c);
  }
  const auto subsets = enumerate_subsets(cfg.candidates, cfg.max_subset);
  const int64_t ns = int64_t(subsets.size()), nk = cfg.n_kernels;
  std::vector<double> value(nk * ns);  // [kernels, subsets]
  parallel_for(nk, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      RandomStream rs(cfg.seed, StreamKind::Eval, kMiSurveyStream, uint64_t(k));
      WindowJoint joint = stationary_window_joint(sample_kernel(cfg.task, rs), window);
      for (int64_t s = 0; s < ns; ++s) value[k * ns + s] = chi_square_mi(joint, subsets[s], cfg.power);
    }
  });

  std::vector<SubsetMi> scores(ns);
  for (int64_t s = 0; s < ns; ++s) {
    double sum = 0, sq = 0;
    for (int64_t k = 0; k < nk; ++k) sum += value[k * ns + s];
    double mean = sum / nk;
    for (int64_t k = 0; k < nk; ++k) sq += (value[k * ns + s] - mean) * (value[k * ns + s] - mean);
    scores[s] = {subsets[s], mean, std::sqrt(sq / (nk - 1) / nk), 0.0};
  }
  for (int64_t k = 0; k < nk; ++k) {  // per-kernel winner; ties go to the earlier subset
    const double* v = value.data() + k * ns;
    scores[std::max_element(v, v + ns) - v].argmax_fraction += 1.0 / nk;
  }
  std::stable_sort(scores.begin(), scores.end(), [](const SubsetMi& a, const SubsetMi& b) { return a.mean > b.mean; });
  MiSurvey out;
  out.ranked = std::move(scores);
  out.best = out.ranked.front().subset;
  out.best_argmax_fraction = out.ranked.front().argmax_fraction;
  return out;
}

}  // namespace ihlab
