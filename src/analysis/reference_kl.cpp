#include "analysis/reference_kl.h"

#include <cmath>

#include "analysis/induction_metrics.h"
#include "core/error.h"

namespace ihlab {

double mean_kl_to_reference(const ReferencePrediction& ref, const std::vector<double>& model, const Batch& b) {
  const int64_t V = ref.vocab;
  IHLAB_CHECK(ref.size == b.size && ref.length == b.length && int64_t(model.size()) == b.size * b.length * V,
              "kl: reference '{}' is [{}, {}, {}] but the batch is [{}, {}] and the model gave {} values", ref.name,
              ref.size, ref.length, V, b.size, b.length, model.size());
  std::vector<double> m, r;  // the target rows only, [N, V]
  for (int64_t i = 0; i < b.size * b.length; ++i) {
    if (b.targets[i] < 0) continue;
    m.insert(m.end(), model.begin() + i * V, model.begin() + (i + 1) * V);
    r.insert(r.end(), ref.probs.begin() + i * V, ref.probs.begin() + (i + 1) * V);
  }
  if (m.empty()) return NAN;
  return kl_divergences(std::span<const double>(m), std::span<const double>(r), V).ref_model;
}

}  // namespace ihlab
