#pragma once
// Does the population gradient of the disentangled model (models/disentangled.h) stay in the span
// of the pseudo-parameter basis (models/pseudo_params.h)? Musat et al. 2025's Theorem 1 says the
// training dynamics are confined to that 19-dimensional subspace: at a point W in the span the
// expected gradient E[grad L(W)] has no component outside it. A finite-batch run cannot show this
// directly: the gradient of one batch carries sampling noise in all 28 D^2 directions, and the
// noise outside the span grows with D while the signal does not, so ||W_off|| / ||W|| of a trained
// model measures the batch size, not the theorem.
//
// The estimate here removes the noise without bias. With K independent batches, x_k = the
// off-span part of batch k's gradient (an orthogonal projection, so E[x_k] = the off-span part of
// the population gradient, mu):
//   U = sum_{i != j} <x_i, x_j> / (K (K - 1))        E[U] = ||mu||^2 exactly (independence),
// and the same U-statistic over the in-span parts gives ||E[grad]_in||^2. The share
//   f^2 = U_off / (U_off + U_in)   (the off-span fraction of ||E[grad]||^2)
// is reported with a delete-one jackknife interval over the K batches. A share whose interval
// reaches 0 means: no off-span population gradient is detectable at this batch budget; the upper
// end bounds it. The single-batch share ||x_k|| / ||grad_k|| (what one training step sees) is
// reported beside it.
//
// Cost: K gradient evaluations of the fused kernel, and K off-span gradients of 28 D^2 numbers
// kept in float (the jackknife needs <x_i, sum_j x_j> for every i), and the K raw gradients beside
// them: 2.7 GB for K = 12 at D = 1024.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/pseudo_params.h"
#include "tasks/item_label.h"

namespace ihlab {

struct SubspaceGradientOptions {
  int batches = 16;          // K >= 3 (the jackknife leaves one out of a U-statistic over pairs)
  int64_t batch_size = 512;  // sequences per batch
  uint64_t seed = 0;         // batch k is task.sample(batch_size, seed, Data, first_index + k)
  uint64_t first_index = 0;
};

// Where the off-span expected gradient sits: one D x D block of W1, W2 or W3 (component indices as
// in models/pseudo_params.h), its share of U_off, and its fit on the structured matrices a
// symmetry argument allows there (I, M, M^T, M^2, M^T^2; U-statistic of the fitted part, so also
// unbiased).
struct OffSpanBlock {
  int matrix = 1, row = 0, col = 0;
  std::string name;          // e.g. "W2[o1.pos, pos]"
  double off_sq = 0;         // U-statistic of ||E grad_off||^2 on this block
  double structured_sq = 0;  // the same for its projection on span{I, M, M^T, M^2, M^T^2}
  std::vector<double> coef;  // [5] least-squares coefficients of the mean off-span block
  // For the jackknife (not written out): the projection's squared norm per batch, its inner
  // product with the projected sum, and the projected sum's squared norm.
  std::vector<double> struct_q, struct_c;
  double struct_S = 0;
  nlohmann::json to_json() const;
};

struct SubspaceGradientEstimate {
  std::string table;  // which basis table the span is (its name, as the caller gave it)
  int64_t D = 0;
  int batches = 0;
  int64_t batch_size = 0;
  double loss = 0;                    // mean loss over the K batches at W
  double off_sq = 0, in_sq = 0;       // U-statistics: ||E grad_off||^2, ||E grad_in||^2
  double share = 0;                   // sqrt(max(0, off_sq) / (off_sq + in_sq)): 0 when off_sq <= 0
  double share_lo = 0, share_hi = 0;  // 95% jackknife interval of the share (clamped at 0)
  double batch_share = 0;             // median over batches of ||x_k|| / ||grad_k||
  // The off-span part along the structured matrices of every block (OffSpanBlock): U-statistic,
  // share sqrt(s / (s + ||E grad_in||^2)) and its jackknife interval.
  double structured_sq = 0, structured_share = 0, structured_share_lo = 0, structured_share_hi = 0;
  double off_sq_by_matrix[3] = {0, 0, 0};  // U_off restricted to W1, W2, W3
  std::vector<double> mean_coef;           // mean in-span coefficients of the gradient (table order)
  std::vector<OffSpanBlock> blocks;        // every D x D block, largest off_sq first
  nlohmann::json to_json() const;
};

struct NamedBasisTable {
  std::string name;
  const std::vector<BasisBlock>* table = nullptr;
};

// The estimate at weights W (float64) on `task`'s batches, once per basis table: the K batch
// gradients are computed once and projected on each table's span.
std::vector<SubspaceGradientEstimate> estimate_subspace_gradient(const ItemLabelTask& task,
                                                                 const DisentangledWeights& W,
                                                                 const std::vector<NamedBasisTable>& tables,
                                                                 const SubspaceGradientOptions& o);

}  // namespace ihlab
