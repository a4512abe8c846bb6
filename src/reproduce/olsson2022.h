#pragma once
// Olsson et al. (2022), "In-context Learning and Induction Heads": the classic repeated random
// tokens experiment. Task: docs/tasks.md#repeated-tokens; claims:
// docs/reproductions.md#olsson2022-repeated-tokens.
#include "reproduce/reproduction.h"

namespace ihlab {

Reproduction olsson2022_repeated_tokens();

}  // namespace ihlab
