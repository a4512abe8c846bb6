// Every reproduction ihlab knows, in the order `ihlab list` prints them.
#include "reproduce/reproduction.h"
#include "reproduce/chen2024.h"
#include "reproduce/chen2024_full.h"
#include "reproduce/edelman2024.h"
#include "reproduce/musat2025.h"
#include "reproduce/olsson2022.h"
#include "reproduce/reddy2023.h"
#include "reproduce/smoke.h"
#include "reproduce/wang2024.h"

namespace ihlab {

const std::vector<Reproduction>& reproduction_registry() {
  static const std::vector<Reproduction> all = [] {
    std::vector<Reproduction> v;
    v.push_back(smoke_reproduction());
    v.push_back(chen2024_three_stage());
    v.push_back(chen2024_joint());
    v.push_back(chen2024_generalization());
    v.push_back(chen2024_full());
    v.push_back(olsson2022_repeated_tokens());
    v.push_back(edelman2024_icl_mc());
    v.push_back(reddy2023_bursty());
    v.push_back(wang2024_mixed_target());
    v.push_back(wang2024_plateau_scaling());
    v.push_back(wang2024_length_strength());
    v.push_back(wang2024_adam_multiplateau());
    v.push_back(wang2024_approximation());
    v.push_back(musat2025_emergence());
    v.push_back(musat2025_scaling());
    v.push_back(musat2025_full_scaling());
    v.push_back(musat2025_bridge());
    v.push_back(musat2025_subspace());
    return v;
  }();
  return all;
}

}  // namespace ihlab
