#pragma once
// Internals of the GIH kernel shared by gih_kernel.cpp (per-call setup, reductions, the backward
// through the tables) and gih_sequence.cpp (the per-sequence forward and backward).
#include <cstdint>
#include <vector>

#include "models/gih_kernel.h"
#include "models/gih_simd.h"
#include "models/key_table.h"

namespace ihlab::gih_detail {

// Everything that depends on the parameters but not on a sequence, built once per call.
template <typename T>
struct Plan {
  int H = 0, M = 0, d = 0, nS = 0;
  int64_t L = 0, Lp = 0;                  // keys; keys padded to a multiple of kPad
  std::vector<int> off;                   // o_h
  std::vector<int> sub_parent, sub_last;  // S > 0: kappa_S = kappa_{parent} * r_{last}
  struct Pair {
    int S, h, Sm;  // h in S, Sm = index of S \ {h}
  };
  std::vector<Pair> pairs;  // ordered by h
  std::vector<T> p;         // p_S
  std::vector<double> pd;
  double Z = 0;
  T a = 0;
  std::vector<double> A;  // [H][M+1][M]: softmax of w[h][0..m-1] in row m
  bool table = false;
  // Table path.
  int64_t NP = 0;                    // patterns per head
  std::vector<int64_t> base;         // [M+1]: first pattern id with m valid keys
  std::vector<int> pm;               // [NP]: m of each pattern
  std::vector<double> V, VB, nrm;    // [H][NP][d], [H][NP][d], [H][NP]
  std::vector<int64_t> qbase, goff;  // per head: first query pattern, offset into gram
  int64_t gsize = 0;
  std::vector<T> gram;     // per head [query rows, NP]: ReLU(<vbar_q, vbar_p>)
  avec<T> gram64;          // NP <= 64: the same rows padded to 64 entries
  bool mergeable = false;  // a key (token, H patterns) fits in 62 bits (merge_keys)
  const double* Arow(int h, int m) const { return A.data() + (int64_t(h) * (M + 1) + m) * M; }
};

// Zeros in front of the token and pattern arrays: pattern 0 for the heads' shifted reads
// (offsets o_h <= 15) and token reads up to 16 before position 0 (table path: M <= 15).
constexpr int64_t kPrefix = 32;

// The keys of one sequence on the table path. A key is a position's token and the H patterns its
// heads read; everything the loss depends on is the multiset of keys and the query's Gram rows, so
// positions with the same key can be merged into one key with a count (merge_keys). Unmerged, the
// keys are the positions themselves (count = nullptr means 1 each).
template <typename T>
struct SeqKeys {
  int64_t n = 0, np = 0;         // keys; padded to whole vectors of T (kPad when unmerged)
  const int32_t* pat[16] = {};   // per head [np]: the pattern it reads (0 on the padding)
  const int32_t* tok = nullptr;  // [np]: the token (0 on the padding)
  const T* count = nullptr;      // [np]: positions merged into the key (0 on the padding)
  int64_t qrow[16] = {};         // per head: the Gram row of the query's pattern
};

template <typename T>
struct Work {
  avec<int32_t> pidbuf;            // [kPrefix + Lp + kPad]; pid = pidbuf + kPrefix
  avec<int32_t> xbuf;              // [kPrefix + Lp + kPad]; keys at kPrefix.., 0 elsewhere
  avec<T> r, kap, F, s, ds, dr;    // [H*Lp], [nS*Lp], [Lp] x 4
  avec<T> gpre, nj;                // direct path: [H*Lp]: g_h(j), ||v_j||
  std::vector<double> qd, nq, dq;  // direct path: [H][d] query vbar, [H] its ||v||, [d]
  std::vector<T> y, gy;            // [d]
  // Table path: dL/dgram accumulated over one chunk, [gram entries][kBanks] laid out per Gram
  // row as [kBanks][NP]; folded into the chunk's double accumulator (and zeroed) at its end.
  avec<T> bank;
  // merge_keys: the merged keys ([H][Lp], [Lp], [Lp]) and the keys seen so far in the sequence.
  avec<int32_t> mpat, mtok;
  avec<T> mcount;
  KeyTable keys;
  explicit Work(const Plan<T>& P) {
    const int64_t Lp = P.Lp;
    pidbuf.assign(kPrefix + Lp + kPad, 0);
    xbuf.assign(kPrefix + Lp + kPad, 0);
    r.assign(P.H * Lp, T(0));
    kap.assign(P.nS * Lp, T(0));
    F.assign(Lp, T(0)), s.assign(Lp, T(0)), ds.assign(Lp, T(0)), dr.assign(Lp, T(0));
    if (!P.table) {
      gpre.assign(P.H * Lp, T(0)), nj.assign(P.H * Lp, T(0));
      qd.resize(P.H * P.d), nq.resize(P.H), dq.resize(P.d);
    }
    y.resize(P.d), gy.resize(P.d);
    if (P.table) bank.assign(P.gsize * kBanks, T(0));
  }
};

struct ChunkAcc {
  double loss = 0;
  // Lane sums (kLaneSlots lanes each, fixed order) of sum_j dscore_j kappa_S(j) for every S, then of
  // sum_j dscore_j F(j) (slot nS): [nS + 1][16].
  avec<double> G;
  std::vector<double> dW;  // table: d loss / d gram [gsize]; direct: d loss / d A [H][M+1][M]
  bool bad = false;        // a token out of range
  int64_t keys = 0;        // keys run (positions, or merged keys)
};

// One sequence (row x of L+1 tokens): returns its loss, writes y (if y_out) and adds its gradient
// contributions to `acc` (table path: into wk.bank, folded per chunk). `keys` (table path only):
// the sequence's merged keys; nullptr runs every position as its own key.
template <typename T>
double run_sequence(const Plan<T>& P, const GihConfig& cfg, const GihRequest& req, const int32_t* x,
                    const SeqKeys<T>* keys, Work<T>& wk, ChunkAcc& acc, T* y_out);

// The merged keys of sequence x (table path), in the order of their first position, in wk.mpat
// (stride Lp), wk.mtok, wk.mcount; the view points there (valid until the next call).
template <typename T>
SeqKeys<T> merge_keys(const Plan<T>& P, const int32_t* x, Work<T>& wk);

#define IHLAB_GIH_SEQUENCE_EXTERN(T)                                                                          \
  extern template double run_sequence<T>(const Plan<T>&, const GihConfig&, const GihRequest&, const int32_t*, \
                                         const SeqKeys<T>*, Work<T>&, ChunkAcc&, T*);                         \
  extern template SeqKeys<T> merge_keys<T>(const Plan<T>&, const int32_t*, Work<T>&);
IHLAB_GIH_SEQUENCE_EXTERN(float)
IHLAB_GIH_SEQUENCE_EXTERN(double)
#undef IHLAB_GIH_SEQUENCE_EXTERN

}  // namespace ihlab::gih_detail
