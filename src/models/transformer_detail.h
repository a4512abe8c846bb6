#pragma once
// Internals of the transformer shared by its source files (not part of the public API).
#include <cstdint>

#include "core/tensor.h"
#include "tasks/batch.h"

namespace ihlab::transformer_detail {

// Dropout sites: three per layer, so each layer's masks differ.
enum Site : int { kAttnProbs = 0, kAttnOut = 1, kMlpOut = 2 };
inline uint64_t site_id(int64_t layer, int site) { return uint64_t(layer) * 3 + uint64_t(site); }

// FNV-1a 64 of a batch's shape, tokens and feature bits: the key of its dropout masks.
uint64_t batch_hash(const Batch& b);

// Dropout multipliers of the given shape: 0 with probability p, else 1 / (1 - p). Row r of the
// leading dimension is RandomStream(seed, Data, hash, site tag | r), so the mask is the same for
// any thread count; `site` separates the dropout sites of the model.
template <typename T>
Tensor<T> dropout_multipliers(const Shape& shape, double p, uint64_t seed, uint64_t hash, uint64_t site);

// The batch's features as a constant tensor [B, L, F].
template <typename T>
Tensor<T> features_tensor(const Batch& b);

// Fixed ALiBi bias [H, L, L]: -slope_h * (i - j) for j <= i, 0 above the diagonal (masked anyway).
template <typename T>
Tensor<T> alibi_bias(int64_t heads, int64_t L);

// Once per process: makes glibc malloc keep freed memory (M_TRIM_THRESHOLD 1 GiB) and serve blocks
// up to 32 MiB from the heap (M_MMAP_THRESHOLD). A training step frees its whole graph (~15 MB of
// activations and gradients for the Edelman model) and the next step allocates the same again;
// with glibc's defaults that memory goes back to the kernel every step and comes back as page
// faults, measured at about 30% of a step. Process-wide and numerically neutral; a no-op
// elsewhere than glibc.
void keep_freed_memory();

// The sequence `example` of b as a batch of one (tokens, targets and features).
Batch one_example(const Batch& b, int64_t example);

}  // namespace ihlab::transformer_detail
