#include "tasks/item_label_tokens.h"

#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/parallel.h"

namespace ihlab {

void ItemLabelTokensConfig::validate() const {
  IHLAB_CHECK(pairs >= 1 && pairs <= 4096, "config: key 'task.pairs' = {} is out of range (allowed: 1 .. 4096)", pairs);
  IHLAB_CHECK(items >= 1 && items <= 1 << 20, "config: key 'task.items' = {} is out of range (allowed: 1 .. {})", items,
              1 << 20);
  IHLAB_CHECK(labels >= 1 && labels <= 1 << 20, "config: key 'task.labels' = {} is out of range (allowed: 1 .. {})",
              labels, 1 << 20);
  IHLAB_CHECK(items >= pairs,
              "config: key 'task.items' = {} is too small for task.pairs = {} (items are drawn without repetition; "
              "allowed: items >= pairs)",
              items, pairs);
  IHLAB_CHECK(labels >= pairs,
              "config: key 'task.labels' = {} is too small for task.pairs = {} (labels are drawn without repetition; "
              "allowed: labels >= pairs)",
              labels, pairs);
}

ItemLabelTokensTask::ItemLabelTokensTask(ItemLabelTokensConfig cfg) : cfg_(cfg) { cfg_.validate(); }

namespace {
// The first k entries of a uniform random permutation of [0, n) (partial Fisher-Yates).
std::vector<int32_t> draw_distinct(int64_t k, int64_t n, RandomStream& rng) {
  std::vector<int32_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  for (int64_t i = 0; i < k; ++i) std::swap(p[i], p[i + rng.randint(n - i)]);
  p.resize(k);
  return p;
}
}  // namespace

Batch ItemLabelTokensTask::sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const {
  IHLAB_CHECK(n >= 0 && n <= int64_t(1) << 30, "item-label-tokens: batch size {} is out of range", n);
  const int64_t N = cfg_.pairs, L = length();
  Batch b;
  b.size = n;
  b.length = L;
  b.tokens.resize(n * L);       // [n, L]
  b.targets.assign(n * L, -1);  // [n, L]: only the last position has a target
  parallel_for(n, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      RandomStream rng(seed, kind, index, uint64_t(r));
      const std::vector<int32_t> items = draw_distinct(N, cfg_.items, rng);
      const std::vector<int32_t> labels = draw_distinct(N, cfg_.labels, rng);
      int32_t* tok = b.tokens.data() + r * L;
      for (int64_t i = 0; i < N; ++i) {
        tok[2 * i] = items[i];
        tok[2 * i + 1] = int32_t(cfg_.items) + labels[i];
      }
      const int64_t q = cfg_.query == TokenQuery::Last ? N - 1 : rng.randint(N);
      tok[L - 1] = items[q];
      // The control's target is the label of an independent pair: the query says nothing about it.
      const int64_t answer = cfg_.label_rule == TokenLabelRule::Random ? rng.randint(N) : q;
      b.targets[r * L + L - 1] = tok[2 * answer + 1];
    }
  });
  return b;
}

Scalars ItemLabelTokensTask::reference_losses(const Batch& b) const {
  if (b.num_targets() == 0) return {};
  const double lnN = std::log(double(cfg_.pairs));
  return {{"ref.bayes", cfg_.label_rule == TokenLabelRule::Random ? lnN : 0.0},
          {"ref.context", lnN},
          {"ref.labels", std::log(double(cfg_.labels))}};
}

}  // namespace ihlab
