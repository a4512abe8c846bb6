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
#include "io/run_dir.h"
#include "reproduce/reproduction.h"

namespace ihlab {

Reproduction wang2024_mixed_target();
Reproduction wang2024_plateau_scaling();
Reproduction wang2024_length_strength();
Reproduction wang2024_adam_multiplateau();

// The embedded configuration of the six-parameter model run (also the base of the scaling runs).
extern const char* kWang2024MixedTargetConfig;

}  // namespace ihlab
