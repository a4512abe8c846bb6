#pragma once
// Readouts shared by the gih family (gih, gih-full): evaluation scalars from predictions and
// per-sequence losses, ln p_S from c_S without underflow, and the selector/copier probes.
#include <string>
#include <vector>

#include "models/gih_kernel.h"
#include "tasks/task.h"

namespace ihlab {

// acc (argmax y = target), loss_excl_unseen (mean loss over the sequences whose target occurs among
// x_1..x_L; the others get y[t] = 0 from every model of the family), unseen_frac.
// y: [n, d]; seq_loss: [n]; the target is each row's last token.
template <typename T>
Scalars gih_eval_scalars(const Batch& b, const T* y, const std::vector<double>& seq_loss, int64_t d);

// ln p_S = 2 ln|c_S| - ln sum_T exp(2 ln|c_T|), never forming c_S^2 (which underflows).
template <typename T>
std::vector<double> gih_log_p(const Tensor<T>& c);

// a; p.<bits> and logp.<bits> per subset; rpe.h<h>.o<offset> per head and window offset.
template <typename T>
Scalars gih_probes(const GihConfig& cfg, const std::vector<GihSubset>& subsets, const Tensor<T>& w, const Tensor<T>& c,
                   T a);

}  // namespace ihlab
