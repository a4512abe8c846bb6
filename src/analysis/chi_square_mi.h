#pragma once
// Which parents should a model select? The (modified) chi-square mutual information between the
// next token and a subset S of past offsets, under the stationary distribution of a kernel.
//
//   I~(S; pi) = sum_{z_S} mu(z_S)^2 * ( sum_x mu(x|z_S)^2 / mu(x) - 1 )   (power 2, "modified")
//   I (S; pi) = sum_{z_S} mu(z_S)   * ( sum_x mu(x|z_S)^2 / mu(x) - 1 )   (power 1, ordinary)
//
// The empty set scores 0. The squared weight penalizes large S (its contexts are rarer), so the
// argmax S* of the prior average can be a strict subset of the true parents.
//
// Windows. The chain on single tokens is not Markov; the chain on windows of the last W tokens
// (W >= max|parent|) is. A window state is encoded with lag 1 least significant:
//   state = sum_{j=1..W} x_{t-j} * d^(j-1).
// Candidate offsets outside the parent set (e.g. -3 when pa = {-1,-2}) only need W large enough.
#include <cstdint>
#include <vector>

#include "core/eigen.h"

#include "tasks/ngram_markov.h"

namespace ihlab {

// Largest window chain (d^W states) built densely here.
inline constexpr int64_t kMaxWindowStates = int64_t(1) << 20;

int64_t window_states(int vocab, int window);  // d^W; throws past kMaxWindowStates

// [d^W, d^W]: P(s -> s') of the window chain. Used to check stationarity; the solve below only
// builds the max|parent| chain. Requires window >= max|parent|.
Eigen::MatrixXd window_transition_matrix(const MarkovKernel& kernel, int window);

// [d^W]: the stationary distribution over windows of length `window` (0 = max|parent|).
// Solved exactly on the max|parent| chain: (P^T - I) mu = 0 with one row replaced by
// sum(mu) = 1 (power iteration stalls for alpha = 0.1, where near-absorbing kernels are common),
// then extended to longer windows by the Markov property:
//   mu_{w+1}(x, s) = mu_w(s) * pi(x | parents read from s).
std::vector<double> stationary_distribution(const MarkovKernel& kernel, int window = 0);

// Stationary joint of a window and the token that follows it.
struct WindowJoint {
  int vocab = 0;
  int window = 0;
  std::vector<double> mu;  // [d^window, vocab]: mu(state, x) = mu(state) * pi(x | state)
};
WindowJoint stationary_window_joint(const MarkovKernel& kernel, int window);

// [d^|S|, vocab]: mu(z_S, x) with z_S index = sum_k x_{t+S_k} * d^k (first offset least
// significant, as context_index). Offsets must be negative, distinct and within the window.
std::vector<double> subset_joint(const WindowJoint& joint, const std::vector<int>& subset);

// power = 2: modified chi-square MI; power = 1: ordinary chi-square MI.
double chi_square_mi(const WindowJoint& joint, const std::vector<int>& subset, double power = 2);

// Averaging I~(S; pi) over kernels from the prior.
struct MiSurveyConfig {
  NgramMarkovConfig task;                      // vocab, parents, alpha of the prior (length unused)
  std::vector<int> candidates = {-1, -2, -3};  // offsets a subset may use
  int max_subset = 2;                          // D: subsets with |S| <= D, the empty set included
  int n_kernels = 200;
  uint64_t seed = 0;  // kernel k uses RandomStream(seed, Eval, kMiSurveyStream, k)
  double power = 2;   // 2 = modified, 1 = ordinary chi-square MI
};
inline constexpr uint64_t kMiSurveyStream = 0x4d49'5355'5256ull;  // keeps survey draws apart from eval batches

struct SubsetMi {
  std::vector<int> subset;     // offsets in candidate order
  double mean = 0;             // mean over kernels
  double std_error = 0;        // sample std / sqrt(n_kernels)
  double argmax_fraction = 0;  // fraction of kernels for which this subset is the argmax
};

struct MiSurvey {
  std::vector<SubsetMi> ranked;     // by mean, descending (ties keep enumeration order)
  std::vector<int> best;            // S* = ranked[0].subset
  double best_argmax_fraction = 0;  // how often S* also wins for a single kernel
};

// Subsets of `candidates` with |S| <= max_size, by size then in candidate order ({} first).
std::vector<std::vector<int>> enumerate_subsets(const std::vector<int>& candidates, int max_size);

MiSurvey survey_chi_square_mi(const MiSurveyConfig& cfg);

}  // namespace ihlab
