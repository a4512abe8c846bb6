#pragma once
// The appendix "full" variant of Chen, Sheen, Wang, Yang (NeurIPS 2024): the GIH model with
// per-head Q, K, OV matrices and a LayerNorm (model "gih-full"), every group trained jointly.
// Model: docs/models/gih.md#the-full-variant-gih-full; claims: docs/reproductions.md#chen2024-full.
#include "reproduce/reproduction.h"

namespace ihlab {

Reproduction chen2024_full();

}  // namespace ihlab
