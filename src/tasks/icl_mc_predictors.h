#pragma once
// Reference predictors of the ICL-MC task: the floors and phases a model's loss is drawn against
// (Edelman et al. 2024: uniform -> in-context unigram plateau -> in-context bigram).
//
// Every predictor gives, at every position i of a sequence x_0 .. x_{L-1}, a distribution over
// the k states for x_{i+1} given x_0 .. x_i (the last position predicts the token after the
// sequence; it has no target). With alpha = the task's alpha:
//   uniform  1/k.
//   unigram  in-context unigram, add-alpha: (#{j <= i: x_j = x} + alpha) / (i + 1 + k alpha).
//   ngram    in-context n-gram of the task's order n, add-alpha over the transitions seen so far:
//              (N(z, x) + alpha) / (N(z) + k alpha),  z = (x_{i-n+2} .. x_i) the current context,
//            N(z, x) = #{n-1 <= j <= i: x_{j-n+1..j-1} = z, x_j = x}. The bigram for n = 2.
//            Before n-1 tokens exist (i < n-2) there is no context: uniform.
//            Standard variant: each row's posterior is Dirichlet(alpha + counts) under the prior,
//            so this is the Bayes posterior predictive of a chain whose first n-1 tokens are
//            independent of the kernel. The stationary start adds one factor pi_P(x_0..x_{n-2})
//            that ties the rows together, so here it is Bayes-optimal up to that one-tuple term
//            (no closed form exists with it; the effect fades as counts grow).
//   oracle   the true kernel row of the current context; before that (n > 2, i < n-2) the
//            conditional of the true stationary tuple law.
// Unigram variant: tokens are i.i.d. p with p ~ Dirichlet(alpha), so the unigram predictor IS
// the Bayes posterior predictive there.
#include <vector>

#include "tasks/batch.h"
#include "tasks/icl_mc.h"
#include "tasks/reference.h"

namespace ihlab {

// Each returns [size, length, states]; column names "ref.uniform", "ref.unigram", "ref.bigram" (n = 2)
// or "ref.ngram" (n > 2), "ref.oracle". Tokens must lie in [0, states).
ReferencePrediction icl_mc_uniform(const IclMcConfig& cfg, const Batch& b);
ReferencePrediction icl_mc_unigram(const IclMcConfig& cfg, const Batch& b);
ReferencePrediction icl_mc_ngram(const IclMcConfig& cfg, const Batch& b);
// chains[r] must be the chain that generated row r (IclMcTask::chains).
ReferencePrediction icl_mc_oracle(const IclMcConfig& cfg, const Batch& b, const std::vector<IclMcChain>& chains);

// Exact expected oracle loss of one chain at every position ([length], the last entry NaN):
// conditional entropies of the stationary tuple law for i < n-2, then the entropy rate
// sum_z pi(z) H(row z), the same at every later position because the sequence is stationary.
std::vector<double> chain_oracle_losses(const IclMcChain& chain, int length);

// Closed forms.
double digamma(double x);
// E[H(p)] for p ~ Dirichlet(alpha 1_k): psi(k alpha + 1) - psi(alpha + 1).
double dirichlet_expected_entropy(int k, double alpha);
// Expected loss of the add-alpha unigram predictor after `seen` i.i.d. tokens from p ~ Dirichlet(alpha 1_k):
// k sum_{c=0}^{N} C(N,c) B(alpha+c+1, (k-1)alpha+N-c) / B(alpha, (k-1)alpha) * -log((c+alpha)/(N+k alpha)),
// from the symmetry of the prior (p_1 ~ Beta(alpha, (k-1)alpha), c | p_1 ~ Binomial(N, p_1)).
double unigram_iid_expected_loss(int k, double alpha, int64_t seen);

}  // namespace ihlab
