#include "analysis/reference_kl.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace ihlab {

namespace {
double kl_row(const double* r, const double* m, int64_t V) {
  double kl = 0;
  for (int64_t t = 0; t < V; ++t)
    if (r[t] > 0) kl += r[t] * (std::log(r[t]) - std::log(std::max(m[t], 1e-300)));
  return kl;
}

void check(const ReferencePrediction& ref, const std::vector<double>& model, const Batch& b) {
  IHLAB_CHECK(ref.size == b.size && ref.length == b.length && int64_t(model.size()) == b.size * b.length * ref.vocab,
              "kl: reference '{}' is [{}, {}, {}] but the batch is [{}, {}] and the model gave {} values", ref.name,
              ref.size, ref.length, ref.vocab, b.size, b.length, model.size());
}
}  // namespace

double mean_kl_to_reference(const ReferencePrediction& ref, const std::vector<double>& model, const Batch& b) {
  check(ref, model, b);
  double sum = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < b.size; ++r)
    for (int64_t i = 0; i < b.length; ++i) {
      if (b.targets[r * b.length + i] < 0) continue;
      sum += kl_row(ref.at(r, i), model.data() + (r * b.length + i) * ref.vocab, ref.vocab);
      ++n;
    }
  return n ? sum / double(n) : NAN;
}

std::vector<double> position_kl_to_reference(const ReferencePrediction& ref, const std::vector<double>& model,
                                             const Batch& b) {
  check(ref, model, b);
  std::vector<double> out(b.length, 0.0);
  std::vector<int64_t> n(b.length, 0);
  for (int64_t r = 0; r < b.size; ++r)
    for (int64_t i = 0; i < b.length; ++i) {
      if (b.targets[r * b.length + i] < 0) continue;
      out[i] += kl_row(ref.at(r, i), model.data() + (r * b.length + i) * ref.vocab, ref.vocab);
      ++n[i];
    }
  for (int64_t i = 0; i < b.length; ++i) out[i] = n[i] ? out[i] / double(n[i]) : NAN;
  return out;
}

}  // namespace ihlab
