#pragma once
// Reddy (2023), "The mechanistic basis of data dependence and abrupt learning in an in-context
// classification task" (after Chan et al. 2022). Spec: shared/spec/classic-tasks-and-metrics.md.
#include "reproduce/reproduction.h"

namespace ihlab {

Reproduction reddy2023_bursty();

}  // namespace ihlab
