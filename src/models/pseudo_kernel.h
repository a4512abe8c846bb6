#pragma once
// The disentangled model restricted to its pseudo-parameters (models/pseudo_params.h), computed
// through per-sequence Gram matrices so its cost is O(L^2) per sequence whatever D is.
//
// With h_i = [x_i ; q_i] (token, positional vector) every score and the loss are inner products:
//   X[k, j] = x_k . x_j,   P[k, j] = q_k . q_j,   R[k, j] = (M q_k) . q_j = q_k^T M^T q_j
// (key first). A W1 entry on (tok, tok) I scores with X, (pos, pos) I with P, M^T with R, M with
// R^T; a W2 entry does the same on the key's / query's o1 part when its block says so (o1_k =
// sum_m A1[k, m] h_m, so e.g. key o1.tok . query tok = (A1 X)[k, Q]); the readout is a combination
// c of the token vectors, yhat = sum_m c_m x_m, and the loss is 1/2 (c^T X c - 2 c . Y + y . y)
// with Y[m] = x_m . y. Backward is written by hand beside the forward (pseudo_kernel.cpp) and
// checked against the full model evaluated at the same weights (tests/test_disentangled.cpp).
//
// Supported entries: W1 and W2 blocks that pair token with token (I) or position with position
// (I, M, M^T); W3 token-type columns (tok, o1.tok, o2.tok, o2.o1.tok). Others are refused.
#include <cstdint>
#include <vector>

#include "models/pseudo_params.h"
#include "tasks/batch.h"

namespace ihlab {

// Gram matrices of every sequence of a batch, in double: [B, L, L] each (empty when not needed).
struct PseudoGrams {
  int64_t size = 0, length = 0;
  std::vector<double> X, P, R;  // [B, L, L]
  std::vector<double> Rt;       // [B, L, L] R transposed (row-contiguous reads both ways)
  std::vector<double> Y;        // [B, L]  x_m . y
  std::vector<double> yy;       // [B]
  uint64_t hash = 0;            // of the batch content they were made from
};

// What each table entry reads; built once per table.
struct PseudoKernelPlan {
  std::vector<BasisBlock> table;
  bool need_X = true, need_P = false, need_R = false;
};
PseudoKernelPlan make_pseudo_plan(const std::vector<BasisBlock>& table);

// Cache key of a batch: FNV-1a of its values and a strided sample of its features.
uint64_t batch_content_hash(const Batch& b);
// M: row-major [D, D]; features [B, L, 2D] = [token ; position].
PseudoGrams pseudo_grams(const Batch& b, const std::vector<double>& M, int64_t D, const PseudoKernelPlan& plan);

// Mean loss 1/2 mean_b ||yhat_b - y_b||^2 at W = sum_k theta_k B_k; with grad (size K) the exact
// gradient d loss / d theta. Deterministic for any thread count (per-sequence terms summed in order).
double pseudo_loss(const PseudoGrams& g, const PseudoKernelPlan& plan, const std::vector<double>& theta,
                   std::vector<double>* grad);

// Attention of sequence s: layer 1 [L, L] (row j over keys k < j) and layer 2 at the query [L].
void pseudo_attention(const PseudoGrams& g, const PseudoKernelPlan& plan, const std::vector<double>& theta, int64_t s,
                      std::vector<double>& A1, std::vector<double>& A2);

}  // namespace ihlab
