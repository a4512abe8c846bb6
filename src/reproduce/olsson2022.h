#pragma once
// Olsson et al. (2022), "In-context Learning and Induction Heads": the classic repeated random
// tokens experiment. Spec: shared/spec/classic-tasks-and-metrics.md.
#include "reproduce/reproduction.h"

namespace ihlab {

Reproduction olsson2022_repeated_tokens();

}  // namespace ihlab
