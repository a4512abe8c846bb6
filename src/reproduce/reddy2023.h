#pragma once
// Reddy (2023), "The mechanistic basis of data dependence and abrupt learning in an in-context
// classification task" (after Chan et al. 2022). Task: docs/tasks.md#bursty; claims:
// docs/reproductions.md#reddy2023-bursty.
#include "reproduce/reproduction.h"

namespace ihlab {

Reproduction reddy2023_bursty();

}  // namespace ihlab
