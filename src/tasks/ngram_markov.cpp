#include "tasks/ngram_markov.h"

#include <algorithm>
#include <set>
#include <type_traits>

#include "core/error.h"
#include "core/parallel.h"

namespace ihlab {

namespace {
int max_abs(const std::vector<int>& offsets) {
  int m = 0;
  for (int p : offsets) m = std::max(m, -p);
  return m;
}
}  // namespace

int NgramMarkovConfig::max_lag() const { return max_abs(parents); }
int MarkovKernel::max_lag() const { return max_abs(parents); }

void NgramMarkovConfig::validate() const {
  IHLAB_CHECK(vocab >= 2, "ngram_markov: vocab = {} is invalid; allowed: an integer >= 2", vocab);
  std::set<int> seen;
  for (int p : parents) {
    IHLAB_CHECK(p < 0, "ngram_markov: parents contains {}; allowed: negative offsets (e.g. -1, -2)", p);
    IHLAB_CHECK(seen.insert(p).second, "ngram_markov: parents lists {} twice; allowed: distinct offsets", p);
  }
  IHLAB_CHECK(length > max_lag(), "ngram_markov: length = {} is invalid; allowed: an integer > max|parent| = {}",
              length, max_lag());
  IHLAB_CHECK(alpha > 0, "ngram_markov: alpha = {} is invalid; allowed: a number > 0", alpha);
  num_contexts(vocab, int(parents.size()));  // throws when the kernel table would be too large
}

int64_t num_contexts(int vocab, int n_parents) {
  int64_t n = 1;
  for (int k = 0; k < n_parents; ++k) {
    n *= vocab;
    IHLAB_CHECK(n <= kMaxNgramContexts, "ngram_markov: vocab^|parents| = {}^{} exceeds the limit of {} contexts", vocab,
                n_parents, kMaxNgramContexts);
  }
  return n;
}

MarkovKernel sample_kernel(const NgramMarkovConfig& cfg, RandomStream& rs) {
  MarkovKernel k;
  k.vocab = cfg.vocab;
  k.parents = cfg.parents;
  int64_t contexts = num_contexts(cfg.vocab, int(cfg.parents.size()));
  k.probs.resize(contexts * cfg.vocab);  // [contexts, vocab]
  for (int64_t c = 0; c < contexts; ++c) {
    std::vector<double> row = rs.dirichlet(cfg.vocab, cfg.alpha);
    std::copy(row.begin(), row.end(), k.probs.begin() + c * cfg.vocab);
  }
  return k;
}

std::vector<int> sample_sequence(const MarkovKernel& kernel, int total_len, RandomStream& rs) {
  int lag = kernel.max_lag();
  IHLAB_CHECK(total_len > lag, "ngram_markov: sequence length {} must exceed max|parent| = {}", total_len, lag);
  static_assert(std::is_same_v<int, int32_t>, "context_index reads int sequences as int32");
  std::vector<int> seq(total_len);
  for (int i = 0; i < lag; ++i) seq[i] = int32_t(rs.randint(kernel.vocab));
  for (int i = lag; i < total_len; ++i) {
    int64_t ctx = context_index(seq, i, kernel.parents, kernel.vocab);
    seq[i] = rs.categorical(kernel.row(ctx), kernel.vocab);
  }
  return seq;
}

NgramBatch sample_batch(const NgramMarkovConfig& cfg, int batch, uint64_t seed, StreamKind kind, uint64_t stream_id) {
  cfg.validate();
  IHLAB_CHECK(batch >= 0, "ngram_markov: batch = {} is invalid; allowed: >= 0", batch);
  NgramBatch out;
  out.batch = batch;
  out.length = cfg.length;
  const int row_len = cfg.length + 1;
  out.tokens.resize(int64_t(batch) * row_len);  // [batch, length+1]
  parallel_for(batch, 8, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      RandomStream rs(seed, kind, stream_id, uint64_t(b));
      MarkovKernel kernel = sample_kernel(cfg, rs);
      std::vector<int> seq = sample_sequence(kernel, row_len, rs);
      std::copy(seq.begin(), seq.end(), out.tokens.begin() + b * row_len);
    }
  });
  return out;
}

}  // namespace ihlab
