#pragma once
// Edelman, Edelman, Goel, Malach, Tsilivis (2024), "The Evolution of Statistical Induction Heads:
// In-Context Learning Markov Chains". Spec: shared/spec/classic-tasks-and-metrics.md (ICL-MC).
#include "reproduce/reproduction.h"

namespace ihlab {

Reproduction edelman2024_icl_mc();

}  // namespace ihlab
