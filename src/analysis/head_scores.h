#pragma once
// Per-head induction-head scores of a model's attention on a batch, as metrics.csv columns:
//   prev.l<l>.h<h>   previous-token score (induction_metrics.h: mean attention from i to i-1)
//   ind.l<l>.h<h>    TransformerLens-compatible "induction_head" detect_head score (mean over
//                    sequences of sum(A * P) / sum(A), P[q, k] = 1 iff tok[k-1] == tok[q], k-1 != q)
//   pm.l<l>.h<h>     prefix-matching score (Olsson: attention from each repeated token to the
//                    positions right after its earlier copies; NaN when no token repeats)
// Layers and heads are 0-based. Works for any model whose attention() returns square [L, L] maps.
#include <cstdint>
#include <vector>

#include "core/attention_map.h"
#include "core/scalars.h"
#include "tasks/batch.h"

namespace ihlab {

// maps[s]: the attention maps of sequence s of `b` (model.attention(b, s)), s = 0 .. maps.size()-1.
Scalars attention_head_scores(const std::vector<std::vector<AttentionMap>>& maps, const Batch& b);

}  // namespace ihlab
