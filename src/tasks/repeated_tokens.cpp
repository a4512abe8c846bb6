#include "tasks/repeated_tokens.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/parallel.h"

namespace ihlab {

void RepeatedTokensConfig::validate() const {
  IHLAB_CHECK(vocab >= 2 && vocab <= 1 << 20, "task.vocab = {} is out of range (allowed: 2 <= vocab <= {})", vocab,
              1 << 20);
  IHLAB_CHECK(block >= 1 && block <= 1 << 20, "task.block = {} is out of range (allowed: 1 <= block <= {})", block,
              1 << 20);
  IHLAB_CHECK(repeats >= 2 && repeats <= 1 << 20,
              "task.repeats = {} is out of range (allowed: 2 <= repeats <= {}; it counts the copies of the block)",
              repeats, 1 << 20);
  IHLAB_CHECK(block_min == 0 || (block_min >= 1 && block_min <= block),
              "task.block_min = {} is out of range (allowed: 0 = fixed blocks, or 1 <= block_min <= block = {})",
              block_min, block);
  IHLAB_CHECK(block_min == 0 || repeats_only(),
              "task.block_min = {} needs task.targets = \"repeats\" (variable blocks are located by their targets)",
              block_min);
  IHLAB_CHECK(block * repeats <= 1 << 22,
              "task.block * task.repeats = {} * {} = {} tokens is too long (allowed: <= {})", block, repeats,
              block * repeats, 1 << 22);
}

RepeatedTokensTask::RepeatedTokensTask(RepeatedTokensConfig cfg) : cfg_(cfg) { cfg_.validate(); }

int64_t RepeatedTokensTask::block_of(const Batch& b, int64_t row) const {
  if (cfg_.block_min == 0) return cfg_.block;
  for (int64_t i = 0; i < b.length; ++i)
    if (b.targets[row * b.length + i] >= 0) return i;  // the first target predicts copy 2's first token
  return cfg_.block;
}

Batch RepeatedTokensTask::sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const {
  IHLAB_CHECK(n >= 0 && n <= int64_t(1) << 30, "repeated-tokens: batch size {} is out of range", n);
  const int64_t L = length();
  Batch b;
  b.size = n;
  b.length = L;
  b.tokens.resize(n * L);       // [n, L]
  b.targets.assign(n * L, -1);  // [n, L]
  parallel_for(n, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      RandomStream rng(seed, kind, index, uint64_t(r));
      int32_t* tok = b.tokens.data() + r * L;
      // Position i predicts tokens[i + 1]; copy 1 of r occupies tokens[1 .. R], copy c ends at c R.
      const int64_t R = cfg_.block_min > 0 ? cfg_.block_min + rng.randint(cfg_.block - cfg_.block_min + 1) : cfg_.block;
      const int64_t end = 1 + R * cfg_.repeats;  // first filler position
      tok[0] = bos();
      for (int64_t j = 0; j < R; ++j) tok[1 + j] = int32_t(rng.randint(cfg_.vocab));
      for (int64_t j = R; j < end - 1; ++j) tok[1 + j] = tok[1 + j - R];
      for (int64_t j = end; j < L; ++j) tok[j] = int32_t(rng.randint(cfg_.vocab));
      for (int64_t i = 0; i + 1 < L; ++i)
        if (i + 1 < end && (!cfg_.repeats_only() || i >= R)) b.targets[r * L + i] = tok[i + 1];
    }
  });
  return b;
}

std::vector<ReferencePrediction> RepeatedTokensTask::predictions(const Batch& b) const {
  IHLAB_CHECK(b.length == length(), "repeated-tokens: batch length {} != task length {}", b.length, length());
  const int64_t V = vocab(), L = b.length;
  const double u = 1.0 / double(cfg_.vocab);
  ReferencePrediction uni{"ref.uniform", b.size, L, V, std::vector<double>(b.size * L * V, 0.0)};
  ReferencePrediction ora{"ref.oracle", b.size, L, V, std::vector<double>(b.size * L * V, 0.0)};
  for (int64_t r = 0; r < b.size; ++r)
    for (int64_t i = 0, R = block_of(b, r), end = 1 + R * cfg_.repeats; i < L; ++i) {
      double* pu = uni.at(r, i);
      double* po = ora.at(r, i);
      for (int64_t x = 0; x < cfg_.vocab; ++x) pu[x] = u;  // BOS (id vocab) keeps probability 0
      if (i < R || i + 1 >= end) {                         // the first copy and the filler are unpredictable
        for (int64_t x = 0; x < cfg_.vocab; ++x) po[x] = u;
      } else {
        // tokens[i + 1] repeats tokens[i + 1 - block]; the last position continues the pattern.
        int32_t t = b.tokens[r * L + i + 1 - R];
        IHLAB_CHECK(t >= 0 && t < cfg_.vocab, "repeated-tokens: token {} at position {} is not content", t, i + 1 - R);
        po[t] = 1.0;
      }
    }
  return {std::move(uni), std::move(ora)};
}

Scalars RepeatedTokensTask::reference_losses(const Batch& b) const {
  // Both references are exact functions of the position, so only the targets' positions count.
  const double lnv = std::log(double(cfg_.vocab));
  double oracle = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < b.size; ++r)
    for (int64_t i = 0, R = block_of(b, r); i < b.length; ++i)
      if (b.targets[r * b.length + i] >= 0) {
        oracle += i < R ? lnv : 0.0;
        ++n;
      }
  if (n == 0) return {};
  return {{"ref.uniform", lnv}, {"ref.oracle", oracle / double(n)}};
}

std::vector<PositionLosses> RepeatedTokensTask::expected_position_losses() const {
  const int64_t L = length();
  const double lnv = std::log(double(cfg_.vocab)), nan = std::numeric_limits<double>::quiet_NaN();
  PositionLosses uni{"ref.uniform", std::vector<double>(L, nan), std::vector<double>(L, 0.0), true};
  PositionLosses ora{"ref.oracle", std::vector<double>(L, nan), std::vector<double>(L, 0.0), true};
  // With variable blocks every target is inside copies 2.. (targets = "repeats"): the oracle's
  // loss is 0 wherever some block length puts a target, i in [block_min, block * repeats - 1).
  const int64_t lo = cfg_.block_min > 0 ? cfg_.block_min : (cfg_.repeats_only() ? cfg_.block : 0);
  for (int64_t i = lo; i + 1 < L; ++i) {
    uni.mean[i] = lnv;
    ora.mean[i] = i < cfg_.block && cfg_.block_min == 0 ? lnv : 0.0;
  }
  return {std::move(uni), std::move(ora)};
}

}  // namespace ihlab
