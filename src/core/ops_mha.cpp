// Fused banded causal multi-head attention (see ops.h): scores, bias, band mask, softmax, dropout
// and the value average in one op, forward and backward side by side.
//
// Why a fused kernel: with the small head dims of the induction-head models (dh = 8..64) a
// bmm + masked_softmax graph spends its time in packing, [B, H, L, L] temporaries and page faults
// rather than arithmetic. Here only the band is touched and stored: row i keeps its keys
// [a_i, a_i + n_i) contiguously ("band layout", about half of L x L for a causal mask, L x window
// for a window); the dh-wide products run in registers (Eigen fixed-size vectors for dh = 8, 16,
// 32, 64); the exponentials go through Eigen's vectorized exp. Backward runs by query row (dS,
// dQ, the bias) and then by blocks of keys (dK, dV), so every sum is a register accumulation.
//
// Determinism: forward jobs are (sequence, head) pairs writing only their own slices; backward
// jobs are fixed chunks of kSeqChunk sequences, each accumulating its own partial bias gradient,
// and the partials are summed in chunk order. Reductions have a fixed order that depends neither
// on the thread count nor on where the data lies in memory (no alignment peeling).
#include <Eigen/Core>

#include <cmath>
#include <limits>
#include <memory>

#include "core/ops.h"
#include "core/ops_common.h"

namespace ihlab::ops {
namespace {

constexpr int64_t kSeqChunk = 8;  // sequences per backward job (and per partial bias gradient)

// Key ranges of every query row: keys a[i] .. a[i] + n[i] - 1, stored from off[i] in band layout.
struct Band {
  std::vector<int64_t> a, n, off;
  int64_t total = 0, lo, hi;
  Band(int64_t L, const BandedAttention& s) : a(L), n(L), off(L), lo(s.lo), hi(s.hi) {
    for (int64_t i = 0; i < L; ++i) {
      a[i] = std::max<int64_t>(0, i - s.hi);
      n[i] = std::max<int64_t>(0, std::min<int64_t>(L, i - s.lo + 1) - a[i]);
      off[i] = total;
      total += n[i];
    }
  }
};

struct Geometry {
  int64_t B, L, H, dh, HD, S;  // HD = H * dh: row stride of O; S = 3 * HD: row stride of [Q | K | V]
};

// Inner loops and row reductions, specialized for head dims 8, 16, 32 and 64 (DH > 0: Eigen
// fixed-size vectors, so every dh-wide operation is a few register-wide instructions) with a
// generic fallback (DH = 0, dh at run time).
template <typename T, int DH>
struct Kernels {
  static constexpr int64_t W = 64 / sizeof(T);  // keys per vector register (AVX-512 width)
  using KeyVec = Eigen::Matrix<T, int(W), 1>;
  using HeadVec = Eigen::Matrix<T, DH, 1>;

  // dst[t] = scale * sum_c x[c] MT[c * ld + t] for t < n: one row against a transposed [dh, ld]
  // slab. Four registers of W keys at a time, so four independent add chains run along c (one
  // chain would wait on the add latency at every c). MT must have 4 W readable columns of slack
  // past t = n (see padded()).
  static void scores(const T* x, T scale, const T* MT, int64_t ld, int64_t dh_rt, int64_t n, T* dst) {
    const int64_t dh = DH > 0 ? DH : dh_rt;
    for (int64_t t0 = 0; t0 < n; t0 += 4 * W) {
      KeyVec a0 = KeyVec::Zero(), a1 = KeyVec::Zero(), a2 = KeyVec::Zero(), a3 = KeyVec::Zero();
      for (int64_t c = 0; c < dh; ++c) {
        const T xc = x[c];
        const T* m = MT + c * ld + t0;
        a0.noalias() += xc * Eigen::Map<const KeyVec>(m);
        a1.noalias() += xc * Eigen::Map<const KeyVec>(m + W);
        a2.noalias() += xc * Eigen::Map<const KeyVec>(m + 2 * W);
        a3.noalias() += xc * Eigen::Map<const KeyVec>(m + 3 * W);
      }
      const KeyVec* acc[4] = {&a0, &a1, &a2, &a3};
      for (int64_t b = 0; b < 4 && t0 + b * W < n; ++b) {
        const int64_t t = t0 + b * W, e = std::min<int64_t>(W, n - t);
        if (e == W) Eigen::Map<KeyVec>(dst + t) = scale * *acc[b];
        else
          for (int64_t w = 0; w < e; ++w) dst[t + w] = scale * (*acc[b])[w];
      }
    }
  }

  // sum_t a[t] * b[t] (b = nullptr: sum_t a[t]) and max_t a[t] in a fixed order: W lanes, reduced
  // by a fixed-size tree, plus the tail in a scalar. (Eigen's dynamic-size reductions peel scalars
  // to reach alignment, so their order, and a sum's float result, would depend on where the data
  // lies in memory.)
  static T lane_sum(const T* a, const T* b, int64_t n) {
    KeyVec acc = KeyVec::Zero();
    int64_t t = 0;
    for (; t + W <= n; t += W)
      acc += b ? KeyVec(Eigen::Map<const KeyVec>(a + t).cwiseProduct(Eigen::Map<const KeyVec>(b + t)))
               : KeyVec(Eigen::Map<const KeyVec>(a + t));
    T tail = 0;
    for (; t < n; ++t) tail += b ? a[t] * b[t] : a[t];
    return acc.sum() + tail;
  }
  static T lane_max(const T* a, int64_t n) {
    T mx = -std::numeric_limits<T>::infinity();
    int64_t t = 0;
    if (n >= W) {
      KeyVec acc = Eigen::Map<const KeyVec>(a);
      for (t = W; t + W <= n; t += W) acc = acc.cwiseMax(Eigen::Map<const KeyVec>(a + t));
      mx = acc.maxCoeff();
    }
    for (; t < n; ++t) mx = a[t] > mx ? a[t] : mx;
    return mx;
  }

  // y[c] += sum_t wt[t] X[t * ld + c] for c < dh: a weighted sum of rows (P V, dS K, Pd^T G,
  // dS^T Q). Four accumulators hide the add latency along t.
  static void gather(const T* wt, const T* X, int64_t ld, int64_t n, int64_t dh_rt, T* y) {
    if constexpr (DH > 0) {
      HeadVec a0 = HeadVec::Zero(), a1 = HeadVec::Zero(), a2 = HeadVec::Zero(), a3 = HeadVec::Zero();
      int64_t t = 0;
      for (; t + 3 < n; t += 4) {
        const T* x = X + t * ld;
        a0.noalias() += wt[t] * Eigen::Map<const HeadVec>(x);
        a1.noalias() += wt[t + 1] * Eigen::Map<const HeadVec>(x + ld);
        a2.noalias() += wt[t + 2] * Eigen::Map<const HeadVec>(x + 2 * ld);
        a3.noalias() += wt[t + 3] * Eigen::Map<const HeadVec>(x + 3 * ld);
      }
      for (; t < n; ++t) a0.noalias() += wt[t] * Eigen::Map<const HeadVec>(X + t * ld);
      Eigen::Map<HeadVec>(y) += (a0 + a1) + (a2 + a3);
    } else {
      for (int64_t t = 0; t < n; ++t)
        for (int64_t c = 0; c < dh_rt; ++c) y[c] += wt[t] * X[t * ld + c];
    }
  }
};

// Columns of a transposed [dh, L] slab: L plus four registers of slack for Kernels::scores.
template <typename T>
int64_t padded(int64_t L) {
  return L + 4 * Kernels<T, 0>::W;
}

// [L, dh] rows with stride HD -> [dh, ld] (slack columns zero).
template <typename T>
void transpose_head(const T* src, int64_t L, int64_t dh, int64_t HD, int64_t ld, T* dst) {
  for (int64_t c = 0; c < dh; ++c)
    for (int64_t j = L; j < ld; ++j) dst[c * ld + j] = 0;
  for (int64_t j = 0; j < L; ++j)
    for (int64_t c = 0; c < dh; ++c) dst[c * ld + j] = src[j * HD + c];
}

// Pointers of one (sequence, head) job: q, k, v (and dq, dk, dv) at the head's first column of
// the Q, K, V blocks of the sequence's [L, 3 * HD] slab (row stride S); o and g (dO) at its first
// column of the [L, HD] output slab (row stride HD); bias, drop at its [L, L] slice.
template <typename T>
struct Job {
  const T *q, *k, *v, *bias = nullptr, *drop = nullptr;
  T* P = nullptr;  // band layout
  T *o = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr, *dbias = nullptr;  // dbias: band layout
  const T* g = nullptr;  // dO
};

// Forward of one job: P and O. KT: [dh, padded(L)] scratch; s: [padded(L)] scratch aligned as
// Eigen allocates; w: [L] scratch. Scores and exponentials run over whole registers (n rounded up
// to W, so no lane falls back to scalar code); the extra lanes hold scores of keys outside the
// row's band (or of KT's zero slack) and are never read.
template <typename T, int DH>
void forward_job(const Geometry& g, const Band& band, T scale, const Job<T>& j, T* KT, T* s, T* w) {
  using K = Kernels<T, DH>;
  using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
  const int64_t ld = padded<T>(g.L);
  transpose_head(j.k, g.L, g.dh, g.S, ld, KT);
  for (int64_t i = 0; i < g.L; ++i) {
    const int64_t a = band.a[i], n = band.n[i];
    if (n == 0) continue;  // no valid key: the output row stays zero
    const int64_t npad = (n + K::W - 1) / K::W * K::W;
    K::scores(j.q + i * g.S, scale, KT + a, ld, g.dh, npad, s);
    Eigen::Map<Arr, Eigen::AlignedMax> all(s, npad);
    Eigen::Map<Arr> row(s, n);
    if (j.bias) row += Eigen::Map<const Arr>(j.bias + i * g.L + a, n);
    const T mx = K::lane_max(s, n);
    all = (all - mx).exp();
    const T inv = T(1) / K::lane_sum(s, nullptr, n);
    T* p = j.P + band.off[i];
    Eigen::Map<Arr>(p, n) = row * inv;
    const T* wt = p;
    if (j.drop) {
      Eigen::Map<Arr>(w, n) = Eigen::Map<const Arr>(p, n) * Eigen::Map<const Arr>(j.drop + i * g.L + a, n);
      wt = w;
    }
    K::gather(wt, j.v + a * g.S, g.S, n, g.dh, j.o + i * g.HD);
  }
}

// The key pass of the backward for a fixed head dim: dV_j += sum_i Pd_ij G_i and
// dK_j += scale sum_i dS_ij Q_i, KB keys at a time with their sums in registers, so each row of
// G and Q is loaded once per block and the band's weights are read along rows (contiguous).
// Queries that see only part of a block (its first rows, and the far edge of a window) get zero
// weights for the keys they cannot see.
template <typename T, int DH>
void key_pass(const Geometry& g, const Band& band, T scale, const Job<T>& j, const T* dS) {
  using HeadVec = Eigen::Matrix<T, DH, 1>;
  // Keys per block: 2 KB accumulators of DH values must fit in the 32 vector registers.
  constexpr int bytes = DH * int(sizeof(T)), KB = bytes <= 64 ? 4 : bytes <= 128 ? 2 : 1;
  for (int64_t j0 = 0; j0 < g.L; j0 += KB) {
    const int64_t i_first = j0 + band.lo, i_last = std::min(g.L - 1, j0 + KB - 1 + band.hi);
    HeadVec aV[KB], aK[KB];
    for (int b = 0; b < KB; ++b) aV[b].setZero(), aK[b].setZero();
    for (int64_t i = i_first; i <= i_last; ++i) {
      // Keys of the block that query i sees: jlo .. jhi.
      const int64_t jlo = std::max(j0, i - band.hi), jhi = std::min({j0 + KB - 1, i - band.lo, g.L - 1});
      const int64_t row = band.off[i] - band.a[i];  // band index of (i, key) = row + key
      const HeadVec gi = Eigen::Map<const HeadVec>(j.g + i * g.HD);
      const HeadVec qi = Eigen::Map<const HeadVec>(j.q + i * g.S);
      for (int b = 0; b < KB; ++b) {
        const int64_t key = j0 + b;
        const bool seen = key >= jlo && key <= jhi;
        const T pw = seen ? (j.drop ? j.P[row + key] * j.drop[i * g.L + key] : j.P[row + key]) : T(0);
        const T sw = seen ? scale * dS[row + key] : T(0);
        aV[b].noalias() += pw * gi;
        aK[b].noalias() += sw * qi;
      }
    }
    for (int b = 0; b < KB && j0 + b < g.L; ++b) {
      if (j.dv) Eigen::Map<HeadVec>(j.dv + (j0 + b) * g.S) += aV[b];
      if (j.dk) Eigen::Map<HeadVec>(j.dk + (j0 + b) * g.S) += aK[b];
    }
  }
}

// Backward of one job, with Pd = P * drop and G = dO:
//   by query row i:  dPd = G V^T;  dP = dPd * drop;  dS = P * (dP - rowsum(P * dP));
//                    dQ += scale dS K;  dbias += dS
//   by key j:        dV += Pd^T G;  dK += scale dS^T Q
// The key pass is key_pass for the specialized head dims; the generic one gathers a column of the
// band per key (weights of every query that sees it) and sums rows of G and Q. Neither scatters
// a query's contribution over many key rows.
// VT: [dh, padded(L)] scratch; dS: [NB] scratch (the whole band); w, w2: [L] scratch.
template <typename T, int DH>
void backward_job(const Geometry& g, const Band& band, T scale, const Job<T>& j, T* VT, T* dS, T* w, T* w2) {
  using K = Kernels<T, DH>;
  using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
  const int64_t ld = padded<T>(g.L);
  const bool need_dS = j.dq || j.dk || j.dbias;
  if (need_dS) transpose_head(j.v, g.L, g.dh, g.S, ld, VT);
  for (int64_t i = 0; need_dS && i < g.L; ++i) {
    const int64_t a = band.a[i], n = band.n[i];
    if (n == 0) continue;
    Eigen::Map<const Arr> p(j.P + band.off[i], n);
    Eigen::Map<Arr> ds(dS + band.off[i], n);
    K::scores(j.g + i * g.HD, T(1), VT + a, ld, g.dh, n, ds.data());  // dPd
    if (j.drop) ds *= Eigen::Map<const Arr>(j.drop + i * g.L + a, n);
    const T dot = K::lane_sum(p.data(), ds.data(), n);
    ds = p * (ds - dot);
    if (j.dbias) Eigen::Map<Arr>(j.dbias + band.off[i], n) += ds;
    if (j.dq) {
      Eigen::Map<Arr>(w, n) = scale * ds;
      K::gather(w, j.k + a * g.S, g.S, n, g.dh, j.dq + i * g.S);
    }
  }
  if (!j.dv && !j.dk) return;
  if constexpr (DH > 0) {
    key_pass<T, DH>(g, band, scale, j, dS);
    return;
  }
  for (int64_t key = 0; key < g.L; ++key) {
    // Queries i0 .. i1 - 1 see this key (lo <= i - key <= hi).
    const int64_t i0 = key + band.lo, i1 = std::min(g.L, key + band.hi + 1), m = i1 - i0;
    if (m <= 0) continue;
    for (int64_t r = 0; r < m; ++r) {
      const int64_t i = i0 + r, idx = band.off[i] + key - band.a[i];
      w[r] = j.drop ? j.P[idx] * j.drop[i * g.L + key] : j.P[idx];
      w2[r] = scale * dS[idx];
    }
    if (j.dv) K::gather(w, j.g + i0 * g.HD, g.HD, m, g.dh, j.dv + key * g.S);
    if (j.dk) K::gather(w2, j.q + i0 * g.S, g.S, m, g.dh, j.dk + key * g.S);
  }
}

// Runs f.template operator()<DH>() with DH = dh for the specialized head dims, else DH = 0.
template <typename F>
void dispatch_dh(int64_t dh, F&& f) {
  switch (dh) {
    case 8: f.template operator()<8>(); break;
    case 16: f.template operator()<16>(); break;
    case 32: f.template operator()<32>(); break;
    case 64: f.template operator()<64>(); break;
    default: f.template operator()<0>(); break;
  }
}

}  // namespace

template <typename T>
Var<T> banded_attention(const Var<T>& qkv, const Var<T>& bias, const BandedAttention& spec, const Tensor<T>& drop,
                        Tensor<T>* probs) {
  const Shape& s = qkv.shape();
  IHLAB_CHECK(s.size() == 3 && spec.heads >= 1 && s[2] % (3 * spec.heads) == 0,
              "banded_attention: qkv must be [B, L, 3 * heads * dh] with heads = {}, got {}", spec.heads,
              shape_str(s));
  IHLAB_CHECK(spec.lo >= 0 && spec.hi >= spec.lo, "banded_attention: band lo = {}, hi = {} (need 0 <= lo <= hi)",
              spec.lo, spec.hi);
  const Geometry g{s[0], s[1], spec.heads, s[2] / (3 * spec.heads), s[2] / 3, s[2]};
  const int64_t LL = g.L * g.L;
  if (bias.defined()) check_same_shape("banded_attention(bias)", bias.shape(), Shape{g.H, g.L, g.L});
  if (drop.defined()) check_same_shape("banded_attention(drop)", drop.shape(), Shape{g.B, g.H, g.L, g.L});
  auto band = std::make_shared<const Band>(g.L, spec);
  const int64_t NB = band->total;  // band entries per (sequence, head)

  Tensor<T> out(Shape{g.B, g.L, g.HD});  // rows with no key stay zero
  // P in band layout [B, H, NB]; every entry is written by the forward pass, so no zero fill.
  std::shared_ptr<T[]> P(new T[std::max<int64_t>(g.B * g.H * NB, 1)]);
  const T scale = T(spec.scale);
  auto job = [&, P = P.get()](int64_t bh) {
    const int64_t b = bh / g.H, h = bh % g.H, in = b * g.L * g.S + h * g.dh;
    const T* x = qkv.value().data() + in;
    Job<T> j{x, x + g.HD, x + 2 * g.HD};
    if (bias.defined()) j.bias = bias.value().data() + h * LL;
    if (drop.defined()) j.drop = drop.data() + bh * LL;
    j.P = P + bh * NB;
    j.o = out.data() + b * g.L * g.HD + h * g.dh;
    return j;
  };
  // Jobs per parallel chunk: enough work that a parallel region pays for itself on tiny problems.
  const int64_t job_work = std::max<int64_t>(1, NB * g.dh);
  parallel_for(g.B * g.H, std::max<int64_t>(1, detail::kGrain / job_work), [&](int64_t lo, int64_t hi) {
    std::vector<T> KT(g.dh * padded<T>(g.L)), w(g.L);
    Eigen::Matrix<T, Eigen::Dynamic, 1> s(padded<T>(g.L));  // aligned (AlignedMax)
    dispatch_dh(g.dh, [&]<int DH>() {
      for (int64_t bh = lo; bh < hi; ++bh)
        forward_job<T, DH>(g, *band, scale, job(bh), KT.data(), s.data(), w.data());
    });
  });
  if (probs) {  // expand the band to [B, H, L, L]
    Tensor<T> full(Shape{g.B, g.H, g.L, g.L});
    for (int64_t bh = 0; bh < g.B * g.H; ++bh)
      for (int64_t i = 0; i < g.L; ++i)
        std::copy_n(P.get() + bh * NB + band->off[i], band->n[i], full.data() + bh * LL + i * g.L + band->a[i]);
    *probs = full;
  }

  return make_result<T>("banded_attention", std::move(out), {qkv, bias}, [g, spec, band, P, drop](Node<T>& node) {
    const int64_t LL = g.L * g.L, NB = band->total;
    Tensor<T>* gx = detail::grad_of(node, 0);
    Tensor<T>* gb = detail::grad_of(node, 1);
    // One partial bias gradient per chunk of kSeqChunk sequences (band layout), summed in order.
    const int64_t chunks = (g.B + kSeqChunk - 1) / kSeqChunk;
    std::vector<T> dbias(gb ? size_t(chunks * g.H * NB) : 0, T(0));
    // Parallel chunks are whole multiples of kSeqChunk, so no partial is shared between threads.
    const int64_t seq_work = std::max<int64_t>(1, kSeqChunk * g.H * NB * g.dh);
    parallel_for(g.B, kSeqChunk * std::max<int64_t>(1, detail::kGrain / seq_work), [&](int64_t lo, int64_t hi) {
      std::vector<T> VT(g.dh * padded<T>(g.L)), dS(NB), w(g.L), w2(g.L);
      dispatch_dh(g.dh, [&]<int DH>() {
        for (int64_t b = lo; b < hi; ++b)
          for (int64_t h = 0; h < g.H; ++h) {
            const int64_t bh = b * g.H + h, in = b * g.L * g.S + h * g.dh;
            const T* x = node.parents[0]->value.data() + in;
            Job<T> j{x, x + g.HD, x + 2 * g.HD};
            if (drop.defined()) j.drop = drop.data() + bh * LL;
            j.P = P.get() + bh * NB;
            j.g = node.grad.data() + b * g.L * g.HD + h * g.dh;
            if (gx) {
              j.dq = gx->data() + in;
              j.dk = j.dq + g.HD;
              j.dv = j.dq + 2 * g.HD;
            }
            if (gb) j.dbias = dbias.data() + ((b / kSeqChunk) * g.H + h) * NB;
            backward_job<T, DH>(g, *band, T(spec.scale), j, VT.data(), dS.data(), w.data(), w2.data());
          }
      });
    });
    if (gb) {  // partials summed in chunk order (into chunk 0), scattered from band layout to [H, L, L]
      const int64_t part = g.H * NB;
      for (int64_t c = 1; c < chunks; ++c)
        for (int64_t e = 0; e < part; ++e) dbias[e] += dbias[c * part + e];
      T* dst = gb->data();
      for (int64_t h = 0; h < g.H; ++h)
        for (int64_t i = 0; i < g.L; ++i)
          for (int64_t t = 0; t < band->n[i]; ++t)
            dst[h * LL + i * g.L + band->a[i] + t] += dbias[h * NB + band->off[i] + t];
    }
  });
}

#define INST(T)                                                                                            \
  template Var<T> banded_attention(const Var<T>&, const Var<T>&, const BandedAttention&, const Tensor<T>&,  \
                                   Tensor<T>*);
IHLAB_INSTANTIATE_OPS(INST)

}  // namespace ihlab::ops
