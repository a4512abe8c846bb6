#pragma once
// Helpers shared by the op files (not part of the public API).
#include "core/autograd.h"
#include "core/parallel.h"

namespace ihlab::ops::detail {

// Elements per parallel chunk: large enough to amortize thread start-up, fixed so that results
// do not depend on the thread count.
inline constexpr int64_t kGrain = 1 << 14;

// True if `small` is a suffix of `big` (the broadcast rule of ops.h). Returns the repeat count.
inline int64_t suffix_repeats(const char* op, const Shape& big, const Shape& small) {
  bool ok = small.size() <= big.size();
  for (size_t i = 0; ok && i < small.size(); ++i) ok = small[small.size() - 1 - i] == big[big.size() - 1 - i];
  IHLAB_CHECK(ok, "{}: shape {} does not broadcast against {} (it must equal a suffix)", op, shape_str(small),
              shape_str(big));
  return numel_of(big) / std::max<int64_t>(numel_of(small), 1);
}

// dst[i % n] += src[i] summed in a fixed order: the gradient of a broadcast operand.
template <typename T>
void reduce_into(Tensor<T>& dst, const T* src, int64_t total) {
  int64_t n = dst.numel();
  T* d = dst.data();
  if (n == total) {
    for (int64_t i = 0; i < n; ++i) d[i] += src[i];
    return;
  }
  // Parallel over destination elements; each sums its repeats in order.
  int64_t reps = total / n;
  parallel_for(n, std::max<int64_t>(1, kGrain / std::max<int64_t>(reps, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T acc = 0;
      for (int64_t r = 0; r < reps; ++r) acc += src[r * n + i];
      d[i] += acc;
    }
  });
}

// Grad buffer of a parent if it wants one, else nullptr.
template <typename T>
Tensor<T>* grad_of(Node<T>& n, size_t i) {
  auto& p = n.parents[i];
  return (p && p->requires_grad) ? &p->grad_buffer() : nullptr;
}

}  // namespace ihlab::ops::detail

#define IHLAB_INSTANTIATE_OPS(MACRO) \
  MACRO(float)                       \
  MACRO(double)
