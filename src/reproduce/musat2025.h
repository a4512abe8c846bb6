#pragma once
// Musat et al. 2025, "On the Emergence of Induction Heads for In-Context Learning": the
// item-label task and the disentangled two-layer attention-only model.
#include "reproduce/reproduction.h"

namespace ihlab {

Reproduction musat2025_emergence();     // one run: three pseudo-parameters grow, in order; reduced = full
Reproduction musat2025_scaling();       // t_ICL ~ N^2, T_gamma ~ N over N = 4..64 and seeds
Reproduction musat2025_full_scaling();  // the full model over N = 4..16 beside the reduced one
Reproduction musat2025_bridge();
Reproduction musat2025_subspace();  // Theorem 1 at large D: the expected gradient's off-span share        // standard
                                    // transformer on item-label tokens: order, CE vs MSE

}  // namespace ihlab
