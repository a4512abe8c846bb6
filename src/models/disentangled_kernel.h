#pragma once
// The disentangled model's training loss as one fused autograd op (math: disentangled.h):
//   loss = 1/2 mean_b ||W3m [h'_Q ; o2]_b - y_b||^2
// with gradients for W1 [2D, 2D], W2 [4D, 4D] and W3m [D, 8D] (W3 already masked; the caller's
// mul by the mask carries the gradient on to W3). The input h has no gradient.
//
// Why a fused op: built from generic ops, a step spends its time in allocation, page faults and
// single-threaded matrix products (a 2-D matmul is one product, parallel over nothing), about 20%
// of the machine's measured GEMM rate. Here the work is cut in phases: the large products over
// all B L rows (layer-1 queries, W1's gradient) and over the B queries (layer 2, the readout) are
// GEMMs split into fixed row blocks; the per-sequence attention work runs in parallel over
// sequences. Every reduction is a GEMM over the whole batch computed per block of output rows,
// so no sum depends on the thread count: results are bit-identical for any number of threads.
// Layer-1 scores of a sequence are computed as the full [L, L] product and masked (the strictly
// causal half is used): simpler than a triangular product and a small share of the work (L < 2D
// in the experiments).
#include <cstdint>
#include <memory>

#include "core/autograd.h"
#include "tasks/batch.h"

namespace ihlab {

// The buffers of one call (forward values kept for backward, and backward's own), about
// 5 B L 2D + B L L numbers. A caller that steps repeatedly passes the same workspace pointer:
// a call reuses it when no earlier graph still holds it (else it allocates a fresh one and
// keeps that), which spares a step the allocation and the page faults of ~100 MB.
template <typename T>
struct DisentangledWorkspace;

template <typename T>
Var<T> disentangled_loss(const Var<T>& W1, const Var<T>& W2, const Var<T>& W3m, const Batch& b, int64_t D,
                         std::shared_ptr<DisentangledWorkspace<T>>* workspace = nullptr);

}  // namespace ihlab
