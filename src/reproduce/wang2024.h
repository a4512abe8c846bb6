#pragma once
// Wang, Yu, E & Wu (2024), "How Transformers Implement Induction Heads: Approximation and
// Optimization Analysis" (arXiv 2410.11474). Model: docs/models/attention-circuit.md; claims:
// docs/reproductions.md#wang2024-mixed-target and the two sections after it.
//
//   wang2024-mixed-target      the six-parameter two-layer model (an attention-circuit config) trained
//                              layer-wise by gradient flow: four phases, the 4-gram fitted first by the
//                              positional head while w_KQ stays small, the induction error dropping
//                              only at the transition; cvode-bdf vs dopri5 gradient evaluations.
//   wang2024-plateau-scaling   plateau length (time of steepest descent) against sigma_init (5 values
//                              over two decades) and alpha*, with fitted laws.
//   wang2024-length-strength   plateau length and level against the context length L and the
//                              target's w*, with fitted laws against the spec's overall law.
//   wang2024-adam-multiplateau a standard two-layer transformer trained with Adam on the
//                              d-dimensional mixed target: the plateaus of its loss curve.
//   wang2024-approximation     two-layer transformers with H = 1..8 heads on the in-context n-gram
//                              targets IH_n (n = 2, 3, 4): relative error vs H, the drop at
//                              H = n - 1, GIH_3 with and without MLPs (docs/wang2024-approximation.md).
#include "io/run_dir.h"
#include "reproduce/reproduction.h"

namespace ihlab {

Reproduction wang2024_mixed_target();
Reproduction wang2024_plateau_scaling();
Reproduction wang2024_length_strength();
Reproduction wang2024_adam_multiplateau();
Reproduction wang2024_approximation();

// The embedded configuration of the six-parameter model run (also the base of the scaling runs).
extern const char* kWang2024MixedTargetConfig;

}  // namespace ihlab
