#pragma once
// Internals of the gih-full kernel (math: gih_full_model.h): the per-call plan with its layer-1
// pattern tables (gih_full_plan.cpp), built once per call and read by the per-sequence loop
// (gih_full_kernel.cpp), and the backward through the tables.
#include <cstdint>
#include <vector>

#include "models/gih_full_model.h"

namespace ihlab::gih_full_detail {

// Everything that depends on the parameters but not on a sequence, built once per call.
struct Plan {
  int H = 0, M = 0, d = 0, D1 = 0, nS = 0, S1 = 0;  // S1 = M + 1 slots (slot 0 = self)
  int64_t L = 0, NC = 0;                            // keys; patterns per head
  bool self = true;
  double eps = 1e-5;
  std::vector<int> off;                       // o_h
  std::vector<int64_t> pw;                    // [S1]: (d+1)^s
  std::vector<double> w, B, OV, gamma, beta;  // [H*M], [H*d*d], [H*d*d], [d], [d]
  std::vector<int> sub_parent, sub_last;      // S > 0: kappa_S = kappa_parent * r_last
  struct Pair {
    int S, h, Sm;
  };
  std::vector<Pair> pairs;  // (S, h in S, S \ h), ordered by h
  std::vector<double> p;    // p_S
  double Z = 0, a = 0;
  // Pattern tables, per head and pattern: A [S1], nhat [d], rstd, u [d].
  std::vector<double> A, nhat, rstd, U;

  int digit(int64_t code, int s) const { return int(code / pw[s] % D1); }
  // Token under slot s of pattern `code` (-1: none or no key) and whether the slot is attended.
  void slot(int64_t code, int s, int& tok, bool& valid) const {
    const int dg = digit(code, s);
    if (s == 0) {
      valid = self;
      tok = dg < d ? dg : -1;
    } else {
      valid = dg < d;
      tok = valid ? dg : -1;
    }
  }
};

// The plan for sequences of L keys: parameters in double, B = Q K^T, subsets, p_S and every
// pattern's attention, LayerNorm statistics and u.
template <typename T>
Plan make_plan(const GihFullConfig& cfg, const GihFullParams<T>& P, int64_t L);

// dL/du per pattern [H * NC * d] -> gradients of w, OV, gamma, beta (into g, assigned) and of
// B = Q K^T (dB [H * d * d], assigned), through LayerNorm, the values and the row softmax.
void pattern_backward(const Plan& P, const std::vector<double>& dU, GihFullGrads& g, std::vector<double>& dB);

}  // namespace ihlab::gih_full_detail
