#pragma once
// In-context Markov chains, ICL-MC (Edelman, Edelman, Goel, Malach, Tsilivis 2024): the chains.
//
// Every sequence draws its own chain of order n over k states (n = `order`, k = `states`): a
// kernel with k^{n-1} rows, row z = the distribution of the next token after the n-1 tokens z.
// Rows are indexed like tasks/ngram_markov.h with parents {-1, ..., -(n-1)}:
//   ctx(i) = sum_{j=1}^{n-1} x_{i-j} k^{j-1}   (the most recent token is the least significant digit)
// so MarkovKernel and context_index serve both tasks. The first n-1 tokens are one draw from the
// stationary distribution of the induced chain on (n-1)-tuples (x_0 alone for bigrams), so the
// whole sequence is stationary; then x_i ~ kernel row ctx(i) for i = n-1 .. length-1.
//
// Variants (`variant`):
//   standard           every row ~ Dirichlet(alpha 1_k), independently.
//   doubly-stochastic  the stationary distribution is uniform, which removes the unigram signal.
//                      n = 2: P = sum_j w_j Perm(sigma_j), a convex mixture of permutation
//                      matrices with weights w ~ Dirichlet(alpha 1_m): all m = k! permutations
//                      when k <= 4 (so k = 2 gives [[w, 1-w], [1-w, w]], w ~ Beta(alpha, alpha)),
//                      otherwise m = k^2 permutations drawn i.i.d. uniformly (Birkhoff: k^2 >=
//                      (k-1)^2 + 1 vertices reach the interior of the polytope). Rows and columns sum to 1.
//                      n > 2: for every suffix s of the context (its n-2 most recent tokens) an
//                      independent such matrix M_s gives P(x | a, s) = M_s[a, x], a = the oldest
//                      token. Columns of M_s summing to 1 is exactly what makes the uniform
//                      distribution on (n-1)-tuples stationary.
//   unigram            one p ~ Dirichlet(alpha 1_k) copied to every row: tokens are i.i.d. p, so
//                      only unigram statistics carry information.
#include <cstdint>
#include <string>
#include <vector>

#include "io/fields.h"
#include "core/rng.h"
#include "tasks/ngram_markov.h"

namespace ihlab {

enum class IclMcVariant { Standard, DoublyStochastic, Unigram };
constexpr auto enum_choices(IclMcVariant) {
  using V = IclMcVariant;
  return std::array<EnumChoice<V>, 3>{
      {{V::Standard, "standard"}, {V::DoublyStochastic, "doubly-stochastic"}, {V::Unigram, "unigram"}}};
}

// "standard" | "doubly-stochastic" | "unigram"; anything else fails naming task.variant.
IclMcVariant parse_icl_mc_variant(const std::string& s);
const char* icl_mc_variant_name(IclMcVariant v);

struct IclMcConfig {
  int states = 3;      // k
  int length = 101;    // tokens per sequence: x_0 and T = 100 more
  int order = 2;       // n: the next token depends on the previous n - 1
  double alpha = 1.0;  // Dirichlet concentration (of the rows, or of the permutation weights)
  IclMcVariant variant = IclMcVariant::Standard;

  template <class V>
  void fields(V& v) {
    v("states", states, "k: number of states (tokens)", in(2, 4096));
    v("length", length, "tokens per sequence: x_0 and T more", in(2, 1 << 20));
    v("order", order, "n: the next token depends on the previous n-1 (2 = bigram chain)", in(2, 16));
    v("alpha", alpha, "Dirichlet concentration (kernel rows; permutation weights when doubly-stochastic)",
      above(0).at_most(1e6));
    v("variant", variant,
      "kernel prior: standard (Dirichlet rows), doubly-stochastic (uniform stationary law), unigram (identical "
      "rows)");
  }

  void validate() const;             // throws ihlab::Error naming the key (task.states, ...)
  int64_t contexts() const;          // k^{n-1}
  std::vector<int> parents() const;  // {-1, ..., -(n-1)}
};

struct IclMcChain {
  MarkovKernel kernel;             // [contexts, states]
  std::vector<double> stationary;  // [contexts]: stationary law of the (n-1)-tuple, indexed like rows
};

// One chain from the prior (the first draws of `rs`), with its stationary distribution.
IclMcChain sample_chain(const IclMcConfig& cfg, RandomStream& rs);

// Stationary distribution of the chain on (n-1)-tuples (tuple s moves to (s k) mod k^{n-1} + x
// with probability row(s)[x]). Up to 64 tuples: a dense linear solve of pi (P - I) = 0, sum pi = 1;
// beyond that, or when the solve is ill-posed (a reducible chain from rows that underflowed to
// zero), power iteration of the lazy chain (I + P) / 2 from uniform, to an L1 change below 1e-13
// or 20000 iterations.
std::vector<double> stationary_tuple_distribution(const MarkovKernel& kernel);

// `length` tokens: the first n-1 from chain.stationary, then the kernel.
std::vector<int32_t> sample_tokens(const IclMcChain& chain, int length, RandomStream& rs);

// Token t (0-based, t < n-1) of the tuple with index s: the digit of x_t is n-2-t.
inline int tuple_token(int64_t s, int t, int order, int states) {
  for (int j = 0; j < order - 2 - t; ++j) s /= states;
  return int(s % states);
}

}  // namespace ihlab
