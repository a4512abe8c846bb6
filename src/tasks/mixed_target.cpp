#include "tasks/mixed_target.h"

#include <cmath>

#include "core/parallel.h"
#include "tasks/ngram_induction.h"

namespace ihlab {

MixedTargetTask::MixedTargetTask(MixedTargetConfig cfg) : cfg_(cfg) {
  IHLAB_CHECK(cfg.length >= 4,
              "config: key 'task.length' = {} is out of range (allowed: length >= 4, so that "
              "x_{{L-2}} and at least one induction key exist)",
              cfg.length);
  IHLAB_CHECK(cfg.dim >= 1, "config: key 'task.dim' = {} is out of range (allowed: dim >= 1)", cfg.dim);
  IHLAB_CHECK(cfg.slots >= 1, "config: key 'task.slots' = {} is out of range (allowed: slots >= 1)", cfg.slots);
  IHLAB_CHECK(cfg.alpha_star >= 0 && cfg.alpha_star <= 1,
              "config: key 'task.alpha_star' = {} is out of range (allowed: 0 <= alpha_star <= 1)", cfg.alpha_star);
  IHLAB_CHECK(std::isfinite(cfg.w_star), "config: key 'task.w_star' = {} must be finite", cfg.w_star);
}

void MixedTargetTask::induction_head(const double* x, int64_t L, int64_t d, double w, double* out) {
  // IH_2 is the in-context n-gram head at n = 2 with the dot similarity (the same operations in
  // the same order, so the same bits).
  NgramInductionTask::target(x, L, d, 2, w, NgramSimilarity::Dot, out);
}

Batch MixedTargetTask::sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const {
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
  b.part_names = {"4gram", "induction"};
  b.parts.assign(n * 2 * d, 0.0);
  parallel_for(n, 64, [&](int64_t lo, int64_t hi) {
    std::vector<double> x(static_cast<size_t>(L * d)), ih(static_cast<size_t>(d));
    for (int64_t r = lo; r < hi; ++r) {
      RandomStream rng(seed, kind, index, uint64_t(r));
      for (int64_t i = 0; i < L * d; ++i) {
        const float v = float(rng.normal());
        x[i] = double(v);  // the target sees exactly the float the model sees
        b.features[r * L * F + (i / d) * F + i % d] = v;
      }
      induction_head(x.data(), L, d, cfg_.w_star, ih.data());
      for (int64_t j = 0; j < d; ++j) {
        const double g4 = cfg_.alpha_star * x[(L - 3) * d + j];
        const double in = (1 - cfg_.alpha_star) * ih[j];
        b.parts[r * 2 * d + j] = g4;
        b.parts[r * 2 * d + d + j] = in;
        b.values[r * d + j] = g4 + in;
      }
    }
  });
  return b;
}

Scalars MixedTargetTask::reference_losses(const Batch& b) const {
  const int64_t n = b.size, L = b.length, d = b.value_dim, F = b.feature_dim;
  if (n == 0 || d == 0) return {};
  double zero = 0, only4 = 0;
  // Normal equations of y ≈ a x_{L-2} + c m, m = mean of x_2..x_{L-1} (1-based), over all (r, j).
  double s11 = 0, s12 = 0, s22 = 0, s1y = 0, s2y = 0, syy = 0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < d; ++j) {
      const double y = b.values[r * d + j];
      const double in = b.parts[r * 2 * d + d + j];
      const double x4 = b.features[r * L * F + (L - 3) * F + j];
      double m = 0;
      for (int64_t s = 1; s <= L - 2; ++s) m += b.features[r * L * F + s * F + j];
      m /= double(L - 2);
      zero += y * y;
      only4 += in * in;
      s11 += x4 * x4, s12 += x4 * m, s22 += m * m, s1y += x4 * y, s2y += m * y, syy += y * y;
    }
  const double det = s11 * s22 - s12 * s12;
  const double a = (s22 * s1y - s12 * s2y) / det, c = (s11 * s2y - s12 * s1y) / det;
  // Residual sum of squares of the least-squares fit: syy - a s1y - c s2y.
  const double lazy = syy - a * s1y - c * s2y;
  const double count = double(n);  // 1/2 mean over sequences of the squared norm
  return {{"ref.zero", 0.5 * zero / count}, {"ref.4gram_only", 0.5 * only4 / count}, {"ref.lazy", 0.5 * lazy / count}};
}

}  // namespace ihlab
