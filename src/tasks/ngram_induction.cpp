#include "tasks/ngram_induction.h"

#include <cmath>

#include "core/parallel.h"

namespace ihlab {

NgramInductionTask::NgramInductionTask(NgramInductionConfig cfg) : cfg_(cfg) {
  IHLAB_CHECK(cfg.n >= 2, "config: key 'task.n' = {} is out of range (allowed: n >= 2)", cfg.n);
  IHLAB_CHECK(cfg.length >= cfg.n + 2,
              "config: key 'task.length' = {} is out of range for task.n = {} (allowed: length >= n + 2 = {}, so "
              "that at least two candidates s = n..L-1 exist)",
              cfg.length, cfg.n, cfg.n + 2);
  IHLAB_CHECK(cfg.dim >= 1, "config: key 'task.dim' = {} is out of range (allowed: dim >= 1)", cfg.dim);
  IHLAB_CHECK(cfg.slots >= 1, "config: key 'task.slots' = {} is out of range (allowed: slots >= 1)", cfg.slots);
  IHLAB_CHECK(std::isfinite(cfg.w_star), "config: key 'task.w_star' = {} must be finite", cfg.w_star);
}

void NgramInductionTask::target(const double* x, int64_t L, int64_t d, int64_t n, double w, NgramSimilarity sim,
                                double* out) {
  // 0-based: query window rows L-1, L-2, ..., L-n+1; candidate s = n-1..L-2 with key window rows
  // s-1, ..., s-n+1 and value row s. Max-subtracted softmax.
  std::vector<double> z(size_t(L), 0.0);
  double zmax = -INFINITY;
  for (int64_t s = n - 1; s <= L - 2; ++s) {
    double g = 0;
    for (int64_t k = 0; k <= n - 2; ++k) {
      const double* q = x + (L - 1 - k) * d;
      const double* key = x + (s - 1 - k) * d;
      for (int64_t j = 0; j < d; ++j)
        g += sim == NgramSimilarity::Dot ? q[j] * key[j] : -(q[j] - key[j]) * (q[j] - key[j]);
    }
    if (sim == NgramSimilarity::Distance) g /= double(n - 1);
    z[s] = w * g;
    zmax = std::max(zmax, z[s]);
  }
  double total = 0;
  for (int64_t s = n - 1; s <= L - 2; ++s) total += (z[s] = std::exp(z[s] - zmax));
  for (int64_t j = 0; j < d; ++j) out[j] = 0;
  for (int64_t s = n - 1; s <= L - 2; ++s)
    for (int64_t j = 0; j < d; ++j) out[j] += z[s] / total * x[s * d + j];
}

Batch NgramInductionTask::sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const {
  const int64_t L = cfg_.length, d = cfg_.dim, F = feature_dim();
  Batch b;
  b.size = n;
  b.length = L;
  b.tokens.assign(n * L, 0);
  b.targets.assign(n * L, -1);
  b.feature_dim = F;
  b.features.assign(n * L * F, 0.0f);
  b.value_dim = d;
  b.values.assign(n * d, 0.0);
  parallel_for(n, 64, [&](int64_t lo, int64_t hi) {
    std::vector<double> x(static_cast<size_t>(L * d)), y(static_cast<size_t>(d));
    for (int64_t r = lo; r < hi; ++r) {
      RandomStream rng(seed, kind, index, uint64_t(r));
      for (int64_t i = 0; i < L * d; ++i) {
        const float v = float(rng.normal());
        x[i] = double(v);  // the target sees exactly the float the model sees
        b.features[r * L * F + (i / d) * F + i % d] = v;
      }
      target(x.data(), L, d, cfg_.n, cfg_.w_star, cfg_.similarity, y.data());
      for (int64_t j = 0; j < d; ++j) b.values[r * d + j] = y[j];
    }
  });
  return b;
}

Scalars NgramInductionTask::reference_losses(const Batch& b) const {
  const int64_t n = b.size, L = b.length, d = b.value_dim, F = b.feature_dim;
  if (n == 0 || d == 0) return {};
  // zero: sum ||y||^2; mean: sum ||y - mean y||^2; lazy: residual of y ~ c m over all (r, j).
  std::vector<double> mean(size_t(d), 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < d; ++j) mean[j] += b.values[r * d + j] / double(n);
  double zero = 0, centred = 0, smm = 0, smy = 0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < d; ++j) {
      const double y = b.values[r * d + j];
      double m = 0;
      for (int64_t s = cfg_.n - 1; s <= L - 2; ++s) m += b.features[r * L * F + s * F + j];
      m /= double(L - cfg_.n);
      zero += y * y;
      centred += (y - mean[j]) * (y - mean[j]);
      smm += m * m, smy += m * y;
    }
  const double lazy = zero - smy * smy / smm;  // sum (y - c m)^2 at c = smy / smm
  const double count = double(n);              // 1/2 mean over sequences of the squared norm
  return {{"ref.zero", 0.5 * zero / count}, {"ref.mean", 0.5 * centred / count}, {"ref.lazy", 0.5 * lazy / count}};
}

}  // namespace ihlab
