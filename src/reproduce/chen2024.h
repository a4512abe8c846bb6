#pragma once
// Reproductions of Chen, Sheen, Wang, Yang (NeurIPS 2024), "Unveiling Induction Heads": a
// two-attention-layer transformer on in-context n-gram Markov chains learns a generalized
// induction head (copier, selector, classifier). Model: docs/models/gih.md; claims:
// docs/reproductions.md#chen2024-three-stage and the three sections after it.
#include "reproduce/reproduction.h"

namespace ihlab {

Reproduction chen2024_three_stage();
Reproduction chen2024_joint();
Reproduction chen2024_generalization();

}  // namespace ihlab
