#include "tasks/bursty_task.h"

#include <cmath>

#include "core/error.h"
#include "core/parallel.h"

namespace ihlab {

namespace {
constexpr double kGuard = 1e-12;  // -log(p + guard), the project's nll guard
}  // namespace

BurstyTask::BurstyTask(BurstyConfig cfg) : cfg_(cfg) { cfg_.validate(); }

std::vector<BurstySequence> BurstyTask::sequences(BurstySet set, int64_t n, uint64_t seed, StreamKind kind,
                                                  uint64_t index) const {
  IHLAB_CHECK(n >= 0 && n <= int64_t(1) << 30, "bursty: batch size {} is out of range", n);
  const BurstyWorld world = make_world(cfg_, seed);
  std::vector<BurstySequence> out(n);
  parallel_for(n, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      RandomStream rs(seed, kind, index, uint64_t(r));
      out[r] = sample_bursty_sequence(cfg_, world, set, rs);
    }
  });
  return out;
}

Batch BurstyTask::layout(const std::vector<BurstySequence>& seqs) const {
  const int64_t n = int64_t(seqs.size()), L = length(), D = cfg_.dim, N = cfg_.pairs;
  Batch b;
  b.size = n;
  b.length = L;
  b.feature_dim = D;
  b.tokens.assign(n * L, 0);                   // [n, L]
  b.targets.assign(n * L, -1);                 // [n, L]
  b.features.assign(size_t(n * L * D), 0.0f);  // [n, L, D]
  for (int64_t r = 0; r < n; ++r) {
    const BurstySequence& s = seqs[r];
    for (int64_t j = 0; j <= N; ++j) {  // item j sits at 2j, its label at 2j + 1 (none for the query)
      const int64_t pos = r * L + 2 * j;
      b.tokens[pos] = cfg_.item_token();
      std::copy_n(s.items.begin() + j * D, D, b.features.begin() + pos * D);
      if (j < N) b.tokens[pos + 1] = s.labels[j];
      if (j == N || cfg_.all_targets()) b.targets[pos] = s.labels[j];
    }
  }
  return b;
}

Batch BurstyTask::sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const {
  return layout(sequences(BurstySet::Train, n, seed, kind, index));
}

Batch BurstyTask::sample_eval(const std::string& set, int64_t n, uint64_t seed) const {
  BurstySet s = parse_bursty_set(set);
  return layout(sequences(s, n, seed, StreamKind::Eval, kEvalSetIndex + uint64_t(s)));
}

void BurstyTask::check_layout(const Batch& b) const {
  const int64_t L = b.length, D = b.feature_dim;
  IHLAB_CHECK(D == cfg_.dim && L == length() && int64_t(b.features.size()) == b.size * L * D &&
                  int64_t(b.tokens.size()) == b.size * L,
              "bursty: batch is [{}, {}] with {} features per position; the task needs [n, {}] x {}", b.size, L, D,
              length(), cfg_.dim);
  for (int64_t r = 0; r < b.size; ++r)
    for (int64_t j = 1; j < L; j += 2) {
      int32_t label = b.tokens[r * L + j];
      IHLAB_CHECK(label >= 0 && label < cfg_.labels, "bursty: token {} at label position {} of row {} is not a label",
                  label, j, r);
    }
}

std::vector<double> BurstyTask::copy_prediction(const Batch& b, int64_t r, int64_t pos) const {
  const int64_t L = b.length, D = b.feature_dim;
  IHLAB_CHECK(D == cfg_.dim && L == length() && int64_t(b.features.size()) == b.size * L * D,
              "bursty: batch is [{}, {}] with {} features per position; the task needs [n, {}] x {}", b.size, L, D,
              length(), cfg_.dim);
  IHLAB_CHECK(r >= 0 && r < b.size && pos >= 0 && pos < L && pos % 2 == 0,
              "bursty: copy prediction at row {} position {}: need an item position (even, < {})", r, pos, L);
  const float* q = b.features.data() + (r * L + pos) * D;
  std::vector<double> count(cfg_.labels, 0.0);
  double matches = 0;
  for (int64_t j = 0; j < pos; j += 2) {  // earlier items; their labels sit at j + 1 < pos
    const float* x = b.features.data() + (r * L + j) * D;
    double d2 = 0;
    for (int64_t d = 0; d < D; ++d) d2 += (double(q[d]) - x[d]) * (double(q[d]) - x[d]);
    if (d2 >= cfg_.match_threshold()) continue;
    int32_t label = b.tokens[r * L + j + 1];
    IHLAB_CHECK(label >= 0 && label < cfg_.labels, "bursty: token {} at label position {} is not a label", label,
                j + 1);  // check_layout has ruled this out in reference_losses' parallel loop
    count[label] += 1;
    matches += 1;
  }
  for (auto& c : count) c = matches > 0 ? c / matches : 1.0 / cfg_.labels;
  return count;
}

Scalars BurstyTask::reference_losses(const Batch& b) const {
  if (b.size == 0) return {};
  const int64_t L = b.length;
  std::vector<double> row_sum(b.size, 0.0);
  std::vector<int64_t> row_count(b.size, 0);
  check_layout(b);  // errors must not be thrown inside the parallel region
  parallel_for(b.size, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r)
      for (int64_t i = 0; i < L; i += 2) {
        int32_t t = b.targets[r * L + i];
        if (t < 0 || t >= cfg_.labels) continue;
        row_sum[r] -= std::log(copy_prediction(b, r, i)[t] + kGuard);
        row_count[r] += 1;
      }
  });
  double s = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < b.size; ++r) s += row_sum[r], n += row_count[r];
  if (n == 0) return {};
  return {{"ref.uniform", std::log(double(cfg_.labels))}, {"ref.copy", s / double(n)}};
}

}  // namespace ihlab
