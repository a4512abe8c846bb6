// The per-sequence part of the GIH kernel: layer 1 (table lookups or the direct path), the
// selector and classifier, the loss, and the backward pass down to dL/dgram (table path) or
// dL/dA (direct path). See gih_kernel.h for the math and gih_simd.h for the vector helpers.
#include <algorithm>
#include <cmath>
#include <limits>

#include "models/gih_kernel_detail.h"

namespace ihlab::gih_detail {

namespace {

// Direct path. A row with m valid keys has v = sum_k A[k] onehot(tok_k): at most M nonzeros, so
// everything is computed from the (A[k], tok_k) pairs, never from dense d-vectors, except the
// query's vbar (qd, dense):
//   ||v||^2 = sum_{k,k'} A[k] A[k'] [tok_k = tok_k'],  g_j = sum_k A[k] qd[tok_k] / (||v_j|| + eps).
// Cost O(L M^2) per head, for any vocabulary.

// V_k = v[tok_k] = sum of A over the keys with the same token as key k; returns ||v||.
inline double sparse_row(const double* A, const int32_t* tok, int m, double* V) {
  double n2 = 0;
  for (int k = 0; k < m; ++k) {
    double vk = 0;
    for (int k2 = 0; k2 < m; ++k2) vk += tok[k2] == tok[k] ? A[k2] : 0.0;
    V[k] = vk;
    n2 += A[k] * vk;
  }
  return std::sqrt(n2);
}

// Tokens under the window of head h at position i, window index order (offset o+1, o+2, ...).
inline int row_tokens(const int32_t* x, int64_t i, int o, int M, int32_t* tok) {
  const int m = int(std::clamp<int64_t>(i - o, 0, M));
  for (int k = 0; k < m; ++k) tok[k] = x[i - o - 1 - k];
  return m;
}

// Layer 1 of head h on the direct path: r_h(j) = ReLU(g_h(j)), keeping g and ||v_j|| for backward.
//   x: [L+1];  wk.qd: [H, d] and wk.nq: [H] (row h written);  wk.r, wk.gpre, wk.nj: [H, Lp] (row h).
template <typename T>
void direct_layer1(const Plan<T>& P, int h, const int32_t* x, Work<T>& wk) {
  const int64_t L = P.L, Lp = P.Lp;
  const int d = P.d, M = P.M, o = P.off[h];
  int32_t tok[1024];
  double V[1024];
  // Query: dense vbar_L.
  double* qd = wk.qd.data() + h * d;
  std::fill_n(qd, d, 0.0);
  const int mq = row_tokens(x, L, o, M, tok);
  const double* Aq = P.Arow(h, mq);
  const double nq = sparse_row(Aq, tok, mq, V);
  for (int k = 0; k < mq; ++k) qd[tok[k]] += Aq[k] / (nq + kNormEps);
  wk.nq[h] = nq;
  // Keys.
  T* r = wk.r.data() + h * Lp;
  T* gp = wk.gpre.data() + h * Lp;
  T* nj = wk.nj.data() + h * Lp;
  for (int64_t j = 0; j < L; ++j) {
    const int m = row_tokens(x, j, o, M, tok);
    const double* A = P.Arow(h, m);
    const double n = sparse_row(A, tok, m, V);
    double dotq = 0;
    for (int k = 0; k < m; ++k) dotq += A[k] * qd[tok[k]];
    const double g = m ? dotq / (n + kNormEps) : 0.0;
    gp[j] = T(g);
    nj[j] = T(n);
    r[j] = T(std::max(g, 0.0));
  }
}

// Backward of direct_layer1 for head h from dg [Lp] (= dL/dg_h(j), zero where r = 0) into
// dA [H][M+1][M] (the chunk's accumulator; wk.dq [d] is scratch):
//   key j:   dA_m[k] += dg_j / (n_j + eps) (qd[tok_k] - V_k g_j / n_j),  dq[tok_k] += dg_j A[k] / (n_j + eps)
//   query:   dv = dq / (n_q + eps) - qd (qd . dq) / n_q,  dA_mq[k] += dv[tok_k]
template <typename T>
void direct_layer1_backward(const Plan<T>& P, int h, const int32_t* x, const T* dg, Work<T>& wk, double* dA) {
  const int64_t L = P.L, Lp = P.Lp;
  const int d = P.d, M = P.M, o = P.off[h];
  int32_t tok[1024];
  double V[1024];
  const double* qd = wk.qd.data() + h * d;
  double* dq = wk.dq.data();
  std::fill_n(dq, d, 0.0);
  const T* gp = wk.gpre.data() + h * Lp;
  const T* nj = wk.nj.data() + h * Lp;
  for (int64_t j = 0; j < L; ++j) {
    if (dg[j] == T(0)) continue;
    const int m = row_tokens(x, j, o, M, tok);
    if (m == 0) continue;
    const double* A = P.Arow(h, m);
    sparse_row(A, tok, m, V);
    const double n = double(nj[j]), s = double(dg[j]) / (n + kNormEps), gn = double(gp[j]) / n;
    double* dAm = dA + (int64_t(h) * (M + 1) + m) * M;
    for (int k = 0; k < m; ++k) {
      dAm[k] += s * (qd[tok[k]] - V[k] * gn);
      dq[tok[k]] += s * A[k];
    }
  }
  const int mq = row_tokens(x, L, o, M, tok);
  if (mq == 0) return;  // the query's v = 0 does not depend on w
  const double nq = wk.nq[h];
  double proj = 0;
  for (int q = 0; q < d; ++q) proj += qd[q] * dq[q];
  double* dAm = dA + (int64_t(h) * (M + 1) + mq) * M;
  for (int k = 0; k < mq; ++k) dAm[k] += dq[tok[k]] / (nq + kNormEps) - qd[tok[k]] * proj / nq;
}

// ---- Table path: layer 1 as lookups of the per-call Gram rows.

// pid[i] = pattern of position i under the window 1..M: base[m] + sum_{k<m} x[i-1-k] d^k,
// m = min(i, M). Head h at position i reads the pattern of position i - o_h.
// Vector pass for all i as if m = M (the zero prefix of xk stands in for missing tokens), then the
// first M positions again with their true m. Positions past L get harmless valid patterns.
//   x: [L+1] the sequence;  xk: [kPrefix zeros | Lp + kPad] its keys;  pid: [Lp + kPad] out.
template <typename T>
inline void pattern_ids(const Plan<T>& P, const int32_t* __restrict x, const int32_t* __restrict xk,
                        int32_t* __restrict pid) {
  using IV = Simd<float>::I;  // W x int32
  const int64_t L = P.L, Lp = P.Lp;
  const int M = P.M, d = P.d;
  const int32_t bM = int32_t(P.base[M]);
  for (int64_t i = 0; i < Lp + kPad; i += Simd<float>::W) {
    IV code = IV{} + bM;
    int32_t pw = 1;
    for (int k = 0; k < M; ++k, pw *= d) code += vload<IV>(xk + i - 1 - k) * pw;
    vstore(pid + i, code);
  }
  for (int64_t i = 0; i <= std::min<int64_t>(M, L); ++i) {
    int64_t code = 0;
    for (int64_t k = i - 1; k >= 0; --k) code = code * d + x[i - 1 - k];
    pid[i] = int32_t(P.base[i] + code);
  }
}

// The Gram row of the query's pattern for head h.  pid: as pattern_ids.
template <typename T>
inline int64_t query_row(const Plan<T>& P, int h, const int32_t* pid) {
  return P.goff[h] / P.NP + (pid[P.L - P.off[h]] - P.qbase[h]);
}

// r_h(key) = ReLU(g_h(key)) from the Gram row of the query's pattern; the padding stays 0.
//   r: [H, k.np] out.
template <typename T>
inline void table_layer1(const Plan<T>& P, const SeqKeys<T>& k, T* __restrict r) {
  for (int h = 0; h < P.H; ++h) {
    T* rh = r + h * k.np;
    if (P.NP <= kLookupMax) {
      lookup64(rh, P.gram64.data() + k.qrow[h] * kLookupMax, k.pat[h], k.np);  // the table holds ReLU(g)
      for (int64_t j = k.n; j < k.np; ++j) rh[j] = T(0);
    } else {
      gather(rh, P.gram.data() + k.qrow[h] * P.NP, k.pat[h], int(k.n));
    }
  }
}

// Backward of table_layer1 for head h: dL/dg_h(key) added into the Gram row of this sequence's
// query pattern. Unmerged, into the banks (folded into dL/dgram once per chunk): a pattern repeats
// at nearby positions, and the banks keep those adds off one memory location. Merged keys repeat
// a pattern far less, and there are few enough of them that the fold would cost more than the
// adds: they go straight into the chunk's dL/dgram.
//   dg: [k.np] dL/dg_h;  bank: [gsize][kBanks] (Work::bank);  dW: [gsize] (ChunkAcc::dW).
template <typename T>
inline void table_layer1_backward(const Plan<T>& P, int h, const SeqKeys<T>& k, const T* dg, T* bank, double* dW) {
  if (k.count) {
    double* row = dW + k.qrow[h] * P.NP;
    const int32_t* pat = k.pat[h];
    for (int64_t j = 0; j < k.n; ++j) row[pat[j]] += double(dg[j]);
    return;
  }
  scatter_banked(bank + k.qrow[h] * P.NP * kBanks, P.NP, k.pat[h], dg, int(k.n));
}

// ---- Selector: kappa_S = prod_{h in S} r_h and F = sum_S p_S kappa_S.

// r: [H, Lp];  kap: [nS, Lp] out;  F: [Lp] out (Lp: the padded number of keys).
// kappa_S = kappa_{parent} * r_{last} (subset order).
template <typename T>
inline void selector(const Plan<T>& P, int64_t Lp, const T* __restrict r, T* __restrict kap, T* __restrict F) {
  using V = VecT<T>;
  constexpr int W = Simd<T>::W;
  for (int64_t j = 0; j < Lp; j += W) {
    vstore(kap + j, vsplat(T(1)));
    vstore(F + j, vsplat(P.p[0]));
  }
  for (int S = 1; S < P.nS; ++S) {
    const T* kp = kap + P.sub_parent[S] * Lp;
    const T* rh = r + P.sub_last[S] * Lp;
    T* ks = kap + S * Lp;
    const T pS = P.p[S];
    for (int64_t j = 0; j < Lp; j += W) {
      const V k = vload<V>(kp + j) * vload<V>(rh + j);
      vstore(ks + j, k);
      vstore(F + j, vload<V>(F + j) + pS * k);
    }
  }
}

// Backward of the selector for head h: dL/dg_h(j) = ds_j sum_{S ni h} p_S kappa_{S \ h}(j) where
// g_h(j) > 0 (else 0), written in r_h's place. `pi` walks P.pairs (ordered by h) across calls.
//   kap: [nS, Lp];  ds: [Lp] a * dL/dscore;  dr: [Lp] scratch;  rh: [Lp] r_h in, dL/dg_h out.
template <typename T>
inline void selector_backward(const Plan<T>& P, int h, size_t& pi, int64_t Lp, const T* __restrict kap,
                              const T* __restrict ds, T* __restrict dr, T* __restrict rh) {
  using V = VecT<T>;
  using I = IVecT<T>;
  constexpr int W = Simd<T>::W;
  for (int64_t j = 0; j < Lp; j += W) vstore(dr + j, V{});
  for (; pi < P.pairs.size() && P.pairs[pi].h == h; ++pi) {
    const T pS = P.p[P.pairs[pi].S];
    const T* km = kap + P.pairs[pi].Sm * Lp;
    for (int64_t j = 0; j < Lp; j += W) vstore(dr + j, vload<V>(dr + j) + pS * vload<V>(km + j));
  }
  for (int64_t j = 0; j < Lp; j += W) {
    const V rv = vload<V>(rh + j);
    const I on = rv > T(0);
    vstore(rh + j, vand<T>(vload<V>(ds + j) * vload<V>(dr + j), on));
  }
}

// ---- Classifier: s = softmax(a F) over the positions, y = sum_j s_j onehot(x_j).

// Over keys: s_j = count_j exp(a F_j) / sum_k count_k exp(a F_k), the total weight of the
// positions merged into key j.
//   F: [Lp] (padding F = p_0);  count: [Lp] (nullptr: 1 each);  s: [Lp] out, 0 on the padding.
template <typename T>
inline void softmax_scores(const Plan<T>& P, int64_t L, int64_t Lp, const T* __restrict F, const T* __restrict count,
                           T* __restrict s) {
  using V = VecT<T>;
  constexpr int W = Simd<T>::W;
  // Shift by the largest score. F >= 0 (p_S >= 0, kappa_S >= 0), and the padding holds
  // F = p_0 <= every real F, so for a >= 0 the max over the padded array is the right one.
  const T a = P.a;
  T mx;
  if (a >= T(0)) {
    mx = a * max_nonneg(F, Lp);
  } else {
    mx = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j < L; ++j) mx = std::max(mx, a * F[j]);
  }
  V vsum = V{};
  for (int64_t j = 0; j < Lp; j += W) {
    V t = a * vload<V>(F + j) - mx;
    t = t < kExpMin<T> ? vsplat(kExpMin<T>) : t;
    const V e = vexp(t);
    vstore(s + j, count ? e * vload<V>(count + j) : e);
  }
  for (int64_t j = L; j < Lp; ++j) s[j] = T(0);
  for (int64_t j = 0; j < Lp; j += W) vsum += vload<V>(s + j);
  const T inv = T(1) / hsum<T>(vsum);
  for (int64_t j = 0; j < Lp; j += W) vstore(s + j, vload<V>(s + j) * inv);
}

// y[k] = sum of s_j over the keys j holding token k.
//   xk: [Lp] the keys' tokens (0 on the padding);  s: [Lp];  y: [d] out.
template <typename T>
inline void class_probs(const Plan<T>& P, int64_t L, int64_t Lp, const int32_t* __restrict xk, const T* __restrict s,
                        T* __restrict y) {
  using V = VecT<T>;
  constexpr int W = Simd<T>::W;
  const int d = P.d;
  if (d <= 16) {  // masked vector sums, one per token
    for (int k = 0; k < d; ++k) {
      V acc_k = V{};
      for (int64_t j = 0; j < Lp; j += W) acc_k += vand<T>(vload<V>(s + j), token_mask(s, xk + j, k));
      y[k] = hsum<T>(acc_k);
    }
  } else {
    std::fill_n(y, d, T(0));
    for (int64_t j = 0; j < L; ++j) y[xk[j]] += s[j];
  }
}

// Backward of softmax_scores and class_probs together: dL/dscore_j = s_j (gy[x_j] - <y, gy>).
//   xk: [Lp] keys (0 on the padding);  s: [Lp];  y: [d];  gy: [d] dL/dy, centred in place;
//   ds: [Lp] out.
template <typename T>
inline void scores_backward(const Plan<T>& P, int64_t Lp, const int32_t* __restrict xk, const T* __restrict s,
                            const T* __restrict y, T* __restrict gy, T* __restrict ds) {
  using V = VecT<T>;
  constexpr int W = Simd<T>::W;
  const int d = P.d;
  T ybar = 0;
  for (int k = 0; k < d; ++k) ybar += y[k] * gy[k];
  for (int k = 0; k < d; ++k) gy[k] -= ybar;
  if (d <= 16) {
    for (int64_t j = 0; j < Lp; j += W) {
      V g = V{};
      for (int k = 0; k < d; ++k) g += vand<T>(vsplat(gy[k]), token_mask(s, xk + j, k));
      vstore(ds + j, g * vload<V>(s + j));
    }
  } else {
    gather(ds, gy, xk, int(Lp));
    for (int64_t j = 0; j < Lp; ++j) ds[j] *= s[j];
  }
}

// ---- Loss of one sequence and dL/dy.  y: [d];  gy: [d] out;  t: the target token.
template <typename T>
inline double loss_and_dy(const GihConfig& cfg, int d, int t, const T* __restrict y, T* __restrict gy) {
  double loss;
  if (cfg.loss == GihLoss::Nll) {
    const double yt = double(y[t]) + cfg.guard;
    loss = -std::log(yt);
    std::fill_n(gy, d, T(0));
    gy[t] = T(-1.0 / yt);
  } else {
    // y is a distribution, so exp(y[k]) cannot overflow: no max shift needed.
    double e[256], z = 0;
    for (int k = 0; k < d; ++k) z += (e[k] = std::exp(double(y[k])));
    loss = std::log(z) - double(y[t]);
    for (int k = 0; k < d; ++k) gy[k] = T(e[k] / z - (k == t ? 1.0 : 0.0));
  }
  return loss;
}

// Lane-wise partial dot product sum_j ds_j u_j added into the lane accumulators of the chunk (no
// per-sequence horizontal sums).  ds, u: [Lp];  lanes: [kLaneSlots].
template <typename T>
inline void dot_into_lanes(int64_t Lp, const T* __restrict ds, const T* __restrict u, double* lanes) {
  using V = VecT<T>;
  constexpr int W = Simd<T>::W;
  V acc_v = V{};
  for (int64_t j = 0; j < Lp; j += W) acc_v += vload<V>(ds + j) * vload<V>(u + j);
  add_lanes(lanes, acc_v);
}

}  // namespace

// Forward: layer 1 -> r, selector -> kappa, F, classifier -> s, y, loss. Backward in reverse,
// stopping as early as the request allows (c and a need only dL/dscore; w needs layer 1's).
template <typename T>
double run_sequence(const Plan<T>& P, const GihConfig& cfg, const GihRequest& req, const int32_t* __restrict x,
                    const SeqKeys<T>* keys, Work<T>& wk, ChunkAcc& acc, T* y_out) {
  const int H = P.H, nS = P.nS;
  SeqKeys<T> own;  // every position its own key
  if (!keys) {
    int32_t* pid = wk.pidbuf.data() + kPrefix;
    int32_t* xk = wk.xbuf.data() + kPrefix;
    std::copy_n(x, P.L, xk);  // before and after: token 0
    own.n = P.L, own.np = P.Lp, own.tok = xk;
    if (P.table) {
      pattern_ids(P, x, xk, pid);
      for (int h = 0; h < H; ++h) own.pat[h] = pid - P.off[h], own.qrow[h] = query_row(P, h, pid);
    }
    keys = &own;
  }
  const SeqKeys<T>& k = *keys;
  const int64_t Lp = k.np;  // the arrays below are [.., Lp]
  T *r = wk.r.data(), *kap = wk.kap.data(), *F = wk.F.data(), *s = wk.s.data(), *y = wk.y.data();

  if (P.table) {
    table_layer1(P, k, r);
  } else {
    for (int h = 0; h < H; ++h) direct_layer1(P, h, x, wk);
  }
  selector(P, Lp, r, kap, F);
  softmax_scores(P, k.n, Lp, F, k.count, s);
  class_probs(P, k.n, Lp, k.tok, s, y);
  if (y_out) std::copy_n(y, P.d, y_out);
  const double loss = loss_and_dy(cfg, P.d, x[P.L], y, wk.gy.data());
  if (!(req.grad_w || req.grad_c || req.grad_a)) return loss;

  T* ds = wk.ds.data();
  scores_backward(P, Lp, k.tok, s, y, wk.gy.data(), ds);
  if (req.grad_a) dot_into_lanes(Lp, ds, F, acc.G.data() + nS * kLaneSlots);
  if (req.grad_c)
    for (int S = 0; S < nS; ++S) dot_into_lanes(Lp, ds, kap + S * Lp, acc.G.data() + S * kLaneSlots);
  if (!req.grad_w) return loss;

  // dscore = a dF; then per head through the selector and layer 1 (dL/dg_h in r_h's place).
  using V = VecT<T>;
  for (int64_t j = 0; j < Lp; j += Simd<T>::W) vstore(ds + j, P.a * vload<V>(ds + j));
  size_t pi = 0;
  for (int h = 0; h < H; ++h) {
    T* rh = r + h * Lp;
    selector_backward(P, h, pi, Lp, kap, ds, wk.dr.data(), rh);
    if (P.table)
      table_layer1_backward(P, h, k, rh, wk.bank.data(), acc.dW.data());
    else
      direct_layer1_backward(P, h, x, rh, wk, acc.dW.data());
  }
  return loss;
}

template <typename T>
SeqKeys<T> merge_keys(const Plan<T>& P, const int32_t* __restrict x, Work<T>& wk) {
  const int H = P.H;
  const int64_t L = P.L, Lp = P.Lp;
  int32_t* pid = wk.pidbuf.data() + kPrefix;
  int32_t* xk = wk.xbuf.data() + kPrefix;
  std::copy_n(x, L, xk);
  pattern_ids(P, x, xk, pid);
  if (wk.mtok.empty()) wk.mpat.assign(H * Lp, 0), wk.mtok.assign(Lp, 0), wk.mcount.assign(Lp, T(0));
  wk.keys.reserve(L);
  wk.keys.clear();
  for (int64_t j = 0; j < L; ++j) {
    int64_t key = x[j];
    for (int h = 0; h < H; ++h) key = key * P.NP + pid[j - P.off[h]];
    // Keys too wide for 62 bits are never merged: each position is its own key (key = j).
    if (!P.mergeable) key = j;
    bool added;
    const int32_t u = wk.keys.insert(key, added);
    if (!added) {
      wk.mcount[u] += T(1);
      continue;
    }
    for (int h = 0; h < H; ++h) wk.mpat[h * Lp + u] = pid[j - P.off[h]];
    wk.mtok[u] = x[j];
    wk.mcount[u] = T(1);
  }
  const int64_t n = wk.keys.size();
  SeqKeys<T> k;
  k.n = n;
  k.np = (n + Simd<T>::W - 1) / Simd<T>::W * Simd<T>::W;  // whole vectors of T (fewer padded keys than kPad)
  for (int64_t u = n; u < k.np; ++u) {
    for (int h = 0; h < H; ++h) wk.mpat[h * Lp + u] = 0;
    wk.mtok[u] = 0, wk.mcount[u] = T(0);
  }
  for (int h = 0; h < H; ++h) k.pat[h] = wk.mpat.data() + h * Lp, k.qrow[h] = query_row(P, h, pid);
  k.tok = wk.mtok.data();
  k.count = wk.mcount.data();
  return k;
}

#define IHLAB_GIH_SEQUENCE_INSTANTIATE(T)                                                              \
  template double run_sequence<T>(const Plan<T>&, const GihConfig&, const GihRequest&, const int32_t*, \
                                  const SeqKeys<T>*, Work<T>&, ChunkAcc&, T*);                         \
  template SeqKeys<T> merge_keys<T>(const Plan<T>&, const int32_t*, Work<T>&);
IHLAB_GIH_SEQUENCE_INSTANTIATE(float)
IHLAB_GIH_SEQUENCE_INSTANTIATE(double)
#undef IHLAB_GIH_SEQUENCE_INSTANTIATE

}  // namespace ihlab::gih_detail
