#pragma once
// The standard-transformer bridge of Musat et al. 2025: three progress measures read off the
// weights of a two-layer, one-head-per-layer attention-only transformer trained on item-label
// retrieval (models/transformer.h in regression mode, positions learned, the task's positional
// half empty), mirroring alpha_3, beta_2 and gamma_3 of the disentangled model:
//   alpha~_3 = sum_{i=1}^{L-1} (p_{i-1} W_K1) . (p_i W_Q1)          layer 1 attends one position back
//   beta~_2  = sum_a (t_a W_V1 W_O1 W_K2) . (t_a W_Q2)               layer 2 matches the copied item
//   gamma~_3 = tr(T W_V2 W_O2 U)                                       layer 2's OV outputs the label
// in ihlab's row-vector convention (y = x W): p_i = pos.P[i], t_a = row a of T = the first D rows
// of embed.W_in (the embedding of the a-th basis direction of the item/label vectors),
// W_{Q,K,V,O}l = layer<l-1>.attn.{Wq,Wk,Wv,Wo}, U = unembed.U [width, D]. LayerNorm gains and the
// 1/sqrt(d_head) score scale are left out (constant factors at init; the bridge runs norm = none).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ihlab {

struct NamedMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<double> v;  // row-major
};
using ParamMap = std::map<std::string, NamedMatrix>;

struct BridgeMeasures {
  double alpha3 = 0, beta2 = 0, gamma3 = 0;
};
// token_dim = D; throws ihlab::Error naming a missing or misshapen parameter.
BridgeMeasures bridge_measures(const ParamMap& p, int64_t token_dim);

}  // namespace ihlab
