#pragma once
// The in-context n-gram Markov chain task (Chen, Sheen, Wang, Yang 2024).
//
// Every sequence has its own transition kernel pi, drawn from the prior: for each parent context
// z in [vocab]^|parents|, pi(.|z) ~ Dirichlet(alpha * 1_vocab). The first max|parent| tokens are
// i.i.d. uniform (no burn-in), then x_i ~ pi(.|x_{i+parents}). A sequence has length+1 tokens
// x_1..x_{L+1}; a model sees x_1..x_L and predicts x_{L+1}. A model can only do well by inferring
// pi in context, which is what an induction head does.
#include <cstdint>
#include <span>
#include <vector>

#include "core/rng.h"
#include "io/fields.h"

namespace ihlab {

struct NgramMarkovConfig {
  int vocab = 3;                        // d
  int length = 100;                     // L: tokens the model sees; sequences hold L+1
  std::vector<int> parents = {-1, -2};  // negative offsets, distinct, in the order that indexes contexts
  double alpha = 0.1;                   // Dirichlet concentration of every kernel row
  bool all_positions = false;           // every position is a target, not only x_{L+1} (same tokens)

  template <class V>
  void fields(V& v) {
    v("vocab", vocab, "vocabulary size d", in(2, 65536));
    v("length", length, "L: tokens the model sees (sequences hold L+1; the last is the target)", in(1, 1 << 20));
    v("parents", parents, "parent offsets (negative, distinct); the first is the least significant context digit",
      in(-4096, -1));
    v("alpha", alpha, "Dirichlet concentration of every kernel row", above(0).at_most(1e6));
    v("all_positions", all_positions, "every column c >= 1 is a target (x_{c+1} from x_1..x_c), not only the last");
  }

  // Throws ihlab::Error naming the key, the value and what is allowed.
  void validate() const;
  int max_lag() const;  // max |parent|, 0 for an empty parent set
};

// Largest number of parent contexts (vocab^|parents|) any table in this module will allocate.
inline constexpr int64_t kMaxNgramContexts = int64_t(1) << 24;

// vocab^n_parents; throws if it exceeds kMaxNgramContexts.
int64_t num_contexts(int vocab, int n_parents);

// Index of the parent context of position i in `seq` (0-based positions):
//   ctx = sum_k seq[i + parents[k]] * vocab^k,
// i.e. the FIRST listed parent is the least significant digit. Requires i >= max|parent|.
inline int64_t context_index(std::span<const int32_t> seq, int64_t i, const std::vector<int>& parents, int vocab) {
  int64_t ctx = 0, place = 1;
  for (int p : parents) {
    ctx += int64_t(seq[i + p]) * place;
    place *= vocab;
  }
  return ctx;
}

struct MarkovKernel {
  int vocab = 0;
  std::vector<int> parents;
  // [num_contexts, vocab] row-major: probs[ctx * vocab + x] = pi(x | z), with ctx = context_index
  // (first parent least significant). Rows sum to 1.
  std::vector<double> probs;

  int64_t contexts() const { return int64_t(probs.size()) / vocab; }
  const double* row(int64_t ctx) const { return probs.data() + ctx * vocab; }
  int max_lag() const;
};

// One draw from the prior: every row ~ Dirichlet(alpha * 1), rows in context order.
MarkovKernel sample_kernel(const NgramMarkovConfig& cfg, RandomStream& rs);

// A sequence of total_len tokens: the first max|parent| i.i.d. uniform, then x_i ~ pi(.|x_{i+pa}).
std::vector<int> sample_sequence(const MarkovKernel& kernel, int total_len, RandomStream& rs);

struct NgramBatch {
  int batch = 0;
  int length = 0;               // L
  std::vector<int32_t> tokens;  // [batch, length+1] row-major; the last column is the target

  int row_len() const { return length + 1; }
  std::span<const int32_t> row(int b) const { return {tokens.data() + int64_t(b) * row_len(), size_t(row_len())}; }
};

// Sequence b draws its own kernel and then its tokens from RandomStream(seed, kind, stream_id, b),
// so row b is the same whatever the thread count and whatever the batch size (a batch of 10 starts
// with the batch of 5). Generated in parallel.
NgramBatch sample_batch(const NgramMarkovConfig& cfg, int batch, uint64_t seed, StreamKind kind, uint64_t stream_id);

}  // namespace ihlab
