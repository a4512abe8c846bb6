#include "tasks/ngram_predictors.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "core/parallel.h"

namespace ihlab {

namespace {
constexpr int64_t kSequencesPerChunk = 16;  // chunking depends only on the batch size
}  // namespace

int AddAlphaPredictor::max_lag() const {
  int m = 0;
  for (int p : parents) m = std::max(m, -p);
  return m;
}

void AddAlphaPredictor::validate() const {
  IHLAB_CHECK(vocab >= 2, "ngram predictor: vocab = {} is invalid; allowed: an integer >= 2", vocab);
  IHLAB_CHECK(alpha > 0, "ngram predictor: alpha = {} is invalid; allowed: a number > 0", alpha);
  std::set<int> seen;
  for (int p : parents) {
    IHLAB_CHECK(p < 0, "ngram predictor: parents contains {}; allowed: negative offsets", p);
    IHLAB_CHECK(seen.insert(p).second, "ngram predictor: parents lists {} twice", p);
  }
  num_contexts(vocab, int(parents.size()));
}

std::vector<double> AddAlphaPredictor::predict(std::span<const int32_t> context) const {
  const int64_t L = int64_t(context.size()), m = max_lag();
  std::vector<double> p(vocab, 1.0 / vocab);  // [vocab]
  if (L < m) return p;
  // Only the occurrences of the final context matter, so compare tuples instead of building the
  // whole count table. The final context of position L reads context[L + pa_k], all < L.
  std::vector<double> count(vocab, 0.0);
  double total = 0;
  for (int64_t i = m; i < L; ++i) {
    bool match = true;
    for (int q : parents)
      if (context[i + q] != context[L + q]) {
        match = false;
        break;
      }
    if (match) {
      count[context[i]] += 1;
      total += 1;
    }
  }
  for (int x = 0; x < vocab; ++x) p[x] = (count[x] + alpha) / (total + vocab * alpha);
  return p;
}

AddAlphaPredictor bayes_predictor(const NgramMarkovConfig& cfg) {
  cfg.validate();
  return AddAlphaPredictor{cfg.vocab, cfg.parents, cfg.alpha};
}

AddAlphaPredictor unigram_predictor(int vocab, double alpha) {
  AddAlphaPredictor p{vocab, {}, alpha};
  p.validate();
  return p;
}

AddAlphaPredictor ngram_predictor(int vocab, std::vector<int> parents, double alpha) {
  AddAlphaPredictor p{vocab, std::move(parents), alpha};
  p.validate();
  return p;
}

double mean_cross_entropy(const AddAlphaPredictor& pred, const NgramBatch& batch) {
  pred.validate();
  if (batch.batch == 0) return 0.0;
  double total = parallel_sum<double>(batch.batch, kSequencesPerChunk, [&](int64_t b, int64_t e) {
    double s = 0;
    for (int64_t r = b; r < e; ++r) {
      std::span<const int32_t> row = batch.row(int(r));
      std::vector<double> p = pred.predict(row.first(batch.length));
      s -= std::log(p[row[batch.length]]);
    }
    return s;
  });
  return total / batch.batch;
}

namespace {
// Adds -log p(x_{t+1} | x_1..x_t) for t = 1..L of one sequence into loss[t-1]. `counts`
// ([contexts, vocab + 1], the last column the context total) must be zero on entry and is zero
// again on exit, so one buffer serves a whole chunk.
void add_sequence_losses(const AddAlphaPredictor& pred, std::span<const int32_t> seq, int L,
                         std::vector<double>& counts, std::vector<double>& loss) {
  const int d = pred.vocab, m = pred.max_lag(), stride = d + 1;
  for (int j = 0; j <= L; ++j) {  // j = 0-based index of the token being predicted / counted
    if (j >= m) {
      double* c = counts.data() + context_index(seq, j, pred.parents, d) * stride;
      if (j >= 1) loss[j - 1] -= std::log((c[seq[j]] + pred.alpha) / (c[d] + d * pred.alpha));
      c[seq[j]] += 1;  // position j becomes an occurrence for the later targets
      c[d] += 1;
    } else if (j >= 1) {
      loss[j - 1] += std::log(double(d));  // no final context yet: the prediction is uniform
    }
  }
  for (int j = m; j <= L; ++j)
    std::fill_n(counts.data() + context_index(seq, j, pred.parents, d) * stride, stride, 0.0);
}
}  // namespace

std::vector<double> per_position_cross_entropy(const AddAlphaPredictor& pred, const NgramBatch& batch) {
  pred.validate();
  const int L = batch.length;
  std::vector<double> mean(L, 0.0);  // [length]
  if (batch.batch == 0) return mean;
  const int64_t contexts = num_contexts(pred.vocab, int(pred.parents.size()));
  const int64_t chunks = (batch.batch + kSequencesPerChunk - 1) / kSequencesPerChunk;
  std::vector<std::vector<double>> partial(chunks);  // [chunks][length], summed in chunk order
  parallel_for(chunks, 1, [&](int64_t cb, int64_t ce) {
    std::vector<double> counts(contexts * (pred.vocab + 1), 0.0);
    for (int64_t c = cb; c < ce; ++c) {
      partial[c].assign(L, 0.0);
      int64_t end = std::min<int64_t>(batch.batch, (c + 1) * kSequencesPerChunk);
      for (int64_t r = c * kSequencesPerChunk; r < end; ++r)
        add_sequence_losses(pred, batch.row(int(r)), L, counts, partial[c]);
    }
  });
  for (const auto& part : partial)
    for (int t = 0; t < L; ++t) mean[t] += part[t];
  for (auto& v : mean) v /= batch.batch;
  return mean;
}

}  // namespace ihlab
