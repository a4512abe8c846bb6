#pragma once
// The attention patterns of the TF(M, H, d, D) model (gih_kernel.h has the math), computed
// directly in double for one sequence so reports can draw them. The fused kernel never forms
// these matrices; this is the plain O(H L^2) evaluation of the same definitions.
//
// Layer 0 (the RPE heads), head h: [L+1, L+1]; row i puts softmax(w[h][0..m-1]) on keys
// i - o_h - 1 - k, k < m = clamp(i - o_h, 0, M); rows with m = 0 are all zero.
// Layer 1 (the selector/classifier), head 0: [L+1, L+1] with only row L (the query slot) nonzero:
// s_j = softmax_j(a sum_S p_S prod_{h in S} ReLU(<vbar_L^h, vbar_j^h>)), j < L. The model's
// prediction is y = sum_j s_j onehot(x_j), which the tests check against the kernel's.
#include <cstdint>
#include <vector>

#include "models/gih_kernel.h"
#include "models/model.h"

namespace ihlab {

// w: [H, M], c: [num subsets]; tokens: one row of L+1 tokens (the last is the target, not read).
std::vector<AttentionMap> gih_attention_maps(const GihConfig& cfg, const std::vector<GihSubset>& subsets,
                                             const std::vector<double>& w, const std::vector<double>& c, double a,
                                             const int32_t* tokens, int64_t row_len);

}  // namespace ihlab
