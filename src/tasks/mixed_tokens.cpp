#include "tasks/mixed_tokens.h"

#include <cmath>

#include "core/parallel.h"

namespace ihlab {

MixedTokensTask::MixedTokensTask(MixedTokensConfig cfg) : cfg_(cfg) {
  IHLAB_CHECK(cfg.vocab >= 2, "config: key 'task.vocab' = {} is out of range (allowed: vocab >= 2)", cfg.vocab);
  IHLAB_CHECK(cfg.length >= 4, "config: key 'task.length' = {} is out of range (allowed: length >= 4)", cfg.length);
  IHLAB_CHECK(cfg.alpha_star >= 0 && cfg.alpha_star <= 1,
              "config: key 'task.alpha_star' = {} is out of range (allowed: 0 <= alpha_star <= 1)", cfg.alpha_star);
}

std::vector<double> MixedTokensTask::target_distribution(const int32_t* x) const {
  const int64_t V = cfg_.vocab, L = cfg_.length;
  std::vector<double> p(size_t(V), 0.0), q(size_t(V), 0.0);
  int64_t found = 0;
  for (int64_t s = 0; s + 1 < L; ++s)  // 0-based: earlier occurrences s < L-1 of x[L-1], successor x[s+1]
    if (x[s] == x[L - 1]) q[x[s + 1]] += 1, ++found;
  for (int64_t v = 0; v < V; ++v) p[v] = (1 - cfg_.alpha_star) * (found ? q[v] / double(found) : 1.0 / double(V));
  p[x[L - 3]] += cfg_.alpha_star;  // x_{L-2} in 1-based positions
  return p;
}

Batch MixedTokensTask::sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const {
  const int64_t V = cfg_.vocab, L = cfg_.length;
  Batch b;
  b.size = n;
  b.length = L;
  b.tokens.assign(n * L, 0);
  b.targets.assign(n * L, -1);
  b.part_names = {"4gram", "induction"};
  b.parts.assign(n * 2, 0.0);
  parallel_for(n, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      RandomStream rng(seed, kind, index, uint64_t(r));
      int32_t* x = b.tokens.data() + r * L;
      for (int64_t i = 0; i < L; ++i) x[i] = int32_t(rng.randint(V));
      // Which component generates y, then y from it (same draws whatever the thread count).
      const bool gram4 = rng.uniform() < cfg_.alpha_star;
      int32_t y;
      if (gram4) {
        y = x[L - 3];
      } else {
        std::vector<double> q = target_distribution(x);
        if (cfg_.alpha_star < 1) {
          q[x[L - 3]] -= cfg_.alpha_star;  // the induction part alone (unnormalized by 1 - alpha*)
          if (q[x[L - 3]] < 0) q[x[L - 3]] = 0;
        }
        y = int32_t(rng.categorical(q.data(), int(V)));
      }
      b.targets[r * L + L - 1] = y;
      b.parts[r * 2 + (gram4 ? 0 : 1)] = 1.0;
    }
  });
  return b;
}

Scalars MixedTokensTask::reference_losses(const Batch& b) const {
  const int64_t L = b.length;
  double bayes = 0, only4 = 0;
  for (int64_t r = 0; r < b.size; ++r) {
    const int32_t* x = b.tokens.data() + r * L;
    const int32_t y = b.targets[r * L + L - 1];
    bayes -= std::log(target_distribution(x)[y]);
    only4 -= std::log(cfg_.alpha_star * (y == x[L - 3]) + (1 - cfg_.alpha_star) / double(cfg_.vocab));
  }
  const double n = double(std::max<int64_t>(b.size, 1));
  return {{"ref.uniform", std::log(double(cfg_.vocab))}, {"ref.bayes", bayes / n}, {"ref.4gram_only", only4 / n}};
}

}  // namespace ihlab
