#include "tasks/reference.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace ihlab {

std::vector<double> target_losses(const ReferencePrediction& p, const Batch& b) {
  IHLAB_CHECK(p.size == b.size && p.length == b.length,
              "reference '{}': prediction is [{}, {}] but the batch is [{}, {}]", p.name, p.size, p.length, b.size,
              b.length);
  std::vector<double> out(b.size * b.length, std::numeric_limits<double>::quiet_NaN());  // [B, L]
  for (int64_t r = 0; r < b.size; ++r)
    for (int64_t i = 0; i < b.length; ++i) {
      int32_t t = b.targets[r * b.length + i];
      if (t < 0) continue;
      IHLAB_CHECK(t < p.vocab, "reference '{}': target {} is outside its vocabulary of {}", p.name, t, p.vocab);
      out[r * b.length + i] = -std::log(p.at(r, i)[t]);
    }
  return out;
}

PositionAccumulator::PositionAccumulator(int64_t length) : sum(length, 0.0), sum_sq(length, 0.0), count(length, 0) {}

void PositionAccumulator::add(const std::vector<double>& losses, int64_t size, int64_t length) {
  IHLAB_CHECK(length == int64_t(sum.size()) && int64_t(losses.size()) == size * length,
              "position losses: got [{}, {}] ({} values) for an accumulator of length {}", size, length, losses.size(),
              sum.size());
  for (int64_t r = 0; r < size; ++r)
    for (int64_t i = 0; i < length; ++i) {
      double v = losses[r * length + i];
      if (std::isnan(v)) continue;
      sum[i] += v;
      sum_sq[i] += v * v;
      count[i] += 1;
    }
}

PositionLosses PositionAccumulator::finish(std::string name) const {
  PositionLosses out;
  out.name = std::move(name);
  const int64_t L = int64_t(sum.size());
  out.mean.assign(L, std::numeric_limits<double>::quiet_NaN());
  out.std_error.assign(L, 0.0);
  for (int64_t i = 0; i < L; ++i) {
    if (count[i] == 0) continue;
    const double n = double(count[i]), m = sum[i] / n;
    out.mean[i] = m;
    if (count[i] >= 2) {
      double var = std::max(0.0, (sum_sq[i] - n * m * m) / (n - 1));
      out.std_error[i] = std::sqrt(var / n);
    }
  }
  return out;
}

double mean_over_targets(const std::vector<double>& losses) {
  double s = 0;
  int64_t n = 0;
  for (double v : losses)
    if (!std::isnan(v)) s += v, ++n;
  return n ? s / double(n) : 0.0;
}

}  // namespace ihlab
