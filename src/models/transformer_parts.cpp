// Transformer internals: dropout masks keyed by the batch, feature tensors, the ALiBi bias.
#include <cstring>
#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/parallel.h"
#include "core/rng.h"
#include "models/transformer.h"
#include "models/transformer_detail.h"

namespace ihlab::transformer_detail {

uint64_t batch_hash(const Batch& b) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  mix(&b.size, sizeof b.size);
  mix(&b.length, sizeof b.length);
  mix(&b.feature_dim, sizeof b.feature_dim);
  mix(b.tokens.data(), b.tokens.size() * sizeof(int32_t));
  mix(b.features.data(), b.features.size() * sizeof(float));
  return h;
}

template <typename T>
Tensor<T> dropout_multipliers(const Shape& shape, double p, uint64_t seed, uint64_t hash, uint64_t site) {
  Tensor<T> m(shape);
  const int64_t rows = shape.empty() ? 1 : shape[0], per_row = m.numel() / std::max<int64_t>(rows, 1);
  // Keep an element when a uniform 32-bit draw is >= p * 2^32 (exact to 2^-32 in p).
  const uint64_t threshold = uint64_t(p * 4294967296.0);
  const T keep = T(1.0 / (1.0 - p));
  // Top 16 bits tag the dropout streams, the next 16 the site, the low 32 the row.
  const uint64_t tag = (uint64_t(0xD70F) << 48) | ((site & 0xFFFF) << 32);
  T* d = m.data();
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(per_row, 1));
  parallel_for(rows, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      RandomStream rs(seed, StreamKind::Data, hash, tag | uint64_t(r));
      for (int64_t i = 0; i < per_row; ++i) d[r * per_row + i] = uint64_t(rs.next_u32()) >= threshold ? keep : T(0);
    }
  });
  return m;
}

template <typename T>
Tensor<T> features_tensor(const Batch& b) {
  const Shape s{b.size, b.length, b.feature_dim};
  IHLAB_CHECK(int64_t(b.features.size()) == numel_of(s), "transformer: batch has {} features for shape {}",
              b.features.size(), shape_str(s));
  return Tensor<T>(s, std::vector<T>(b.features.begin(), b.features.end()));
}

template <typename T>
Tensor<T> alibi_bias(int64_t heads, int64_t L) {
  const std::vector<double> slopes = alibi_slopes(heads);
  Tensor<T> t(Shape{heads, L, L});
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = 0; j <= i; ++j) t[(h * L + i) * L + j] = T(-slopes[h] * double(i - j));
  return t;
}

void keep_freed_memory() {
  static std::once_flag once;
  std::call_once(once, [] {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum on 64-bit
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  });
}

Batch one_example(const Batch& b, int64_t e) {
  IHLAB_CHECK(e >= 0 && e < b.size, "transformer: example {} is out of range [0, {})", e, b.size);
  return b.select({e});  // tokens, targets, features, regression values and candidates
}

#define INST(T)                                                                                  \
  template Tensor<T> dropout_multipliers<T>(const Shape&, double, uint64_t, uint64_t, uint64_t); \
  template Tensor<T> features_tensor<T>(const Batch&);                                           \
  template Tensor<T> alibi_bias<T>(int64_t, int64_t);
INST(float)
INST(double)
#undef INST

}  // namespace ihlab::transformer_detail
