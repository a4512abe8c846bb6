#pragma once
// Edelman, Edelman, Goel, Malach, Tsilivis (2024), "The Evolution of Statistical Induction Heads:
// In-Context Learning Markov Chains". Task: docs/tasks.md#icl-mc; claims:
// docs/reproductions.md#edelman2024-icl-mc.
#include "reproduce/reproduction.h"

namespace ihlab {

Reproduction edelman2024_icl_mc();

}  // namespace ihlab
