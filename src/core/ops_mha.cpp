// Fused banded causal multi-head attention (see ops.h): scores, bias, band mask, softmax, dropout
// and the value average in one op, forward and backward side by side.
//
// Why a fused kernel: with the small head dims of the induction-head models (dh = 8..64) a
// bmm + masked_softmax graph spends its time in packing, [B, H, L, L] temporaries and page faults
// rather than arithmetic. Here only the band is touched and stored: row i keeps its keys
// [a_i, a_i + n_i) contiguously ("band layout", about half of L x L for a causal mask, L x window
// for a window), each row padded to whole vector registers with zeros.
//
// Why tiles of query rows: a row of the Edelman model has ~50 keys and dh = 16, so per-row work
// is a few register operations and per-row overhead (dependent add chains, scalar tails) used to
// dominate. Rows go in tiles of R = 8 sharing the union of their key ranges: the scores of a tile
// are R independent FMA chains over dh (throughput- instead of latency-bound), the value average
// (and dQ) load each key row once for R query rows, and the backward adds the tile's share of
// dK and dV in the same pass (no separate pass over the band by key). Keys of the union outside a
// row's band get weight exactly 0, so they add nothing. The dh-wide sums use Eigen fixed-size
// vectors for dh = 8, 16, 32, 64 (a few register instructions) and dynamic ones otherwise; the
// exponentials go through Eigen's vectorized exp.
//
// Determinism: forward jobs are (sequence, head) pairs writing only their own slices; backward
// jobs are fixed chunks of kSeqChunk sequences, each accumulating its own partial bias gradient,
// and the partials are summed in chunk order. Reductions have a fixed order (tiles in row order,
// rows in a tile in order, register lanes by a fixed tree) that depends neither on the thread
// count nor on where the data lies in memory.
#include "core/eigen.h"

#include <array>
#include <cmath>
#include <limits>
#include <memory>

#include "core/ops.h"
#include "core/ops_common.h"

namespace ihlab::ops {
namespace {

constexpr int64_t kSeqChunk = 8;  // sequences per backward job (and per partial bias gradient)
constexpr int kRows = 8;          // query rows per tile: 8 score accumulators stay in registers

// One vector register of T through Eigen's packet layer (16 floats with AVX-512): the per-row
// passes (bias, max, exp, sum, normalization, dS) run on whole registers, masking the lanes past a
// row's last key with selects, so no lane falls back to scalar code and no register is reloaded
// right after scalar stores (a stalled store-to-load forward). Fixed-size Eigen arrays would do
// the arithmetic, but they have no vectorized select, and their max/sum reductions spill.
template <typename T>
struct Lanes {
  using Packet = typename Eigen::internal::packet_traits<T>::type;
  static constexpr int64_t W = Eigen::internal::unpacket_traits<Packet>::size;
  static Packet load(const T* p) { return Eigen::internal::ploadu<Packet>(p); }
  static void store(T* p, const Packet& v) { Eigen::internal::pstoreu(p, v); }
  static Packet set(T v) { return Eigen::internal::pset1<Packet>(v); }
  static Packet first(int64_t m) {  // lanes < m set
    return Eigen::internal::pcmp_lt(Eigen::internal::plset<Packet>(T(0)), set(T(m)));
  }
  // The register at y with m < W valid lanes: read whole where y has W readable values before
  // y_end, else the m values into a zeroed register (only at the very end of a tensor).
  static Packet load_tail(const T* y, int64_t m, const T* y_end) {
    if (y + W <= y_end) return load(y);
    alignas(64) T tmp[W] = {};
    std::copy_n(y, m, tmp);
    return load(tmp);
  }
  // x[t] *= y[t] over a row's npad = nfull + W (rem > 0) or nfull values, lanes past the last key
  // set to 0.
  static void mul_row(T* x, const T* y, int64_t nfull, int64_t rem, const T* y_end) {
    using namespace Eigen::internal;
    for (int64_t t = 0; t < nfull; t += W) store(x + t, pmul(load(x + t), load(y + t)));
    if (rem) store(x + nfull, pselect(first(rem), pmul(load(x + nfull), load_tail(y + nfull, rem, y_end)), set(0)));
  }
};
template <typename T>
constexpr int64_t kW = Lanes<T>::W;

inline int64_t round_up(int64_t n, int64_t w) { return (n + w - 1) / w * w; }

// Key ranges of every query row: keys a[i] .. a[i] + n[i] - 1, stored from off[i] in band layout
// with rows padded to a multiple of w entries (the padding holds zeros), so a row can be read and
// written in whole registers.
struct Band {
  std::vector<int64_t> a, n, off;
  int64_t total = 0, lo, hi;
  Band(int64_t L, const BandedAttention& s, int64_t w) : a(L), n(L), off(L), lo(s.lo), hi(s.hi) {
    for (int64_t i = 0; i < L; ++i) {
      a[i] = std::max<int64_t>(0, i - s.hi);
      n[i] = std::max<int64_t>(0, std::min<int64_t>(L, i - s.lo + 1) - a[i]);
      off[i] = total;
      total += round_up(n[i], w);
    }
  }
};

struct Geometry {
  int64_t B, L, H, dh, HD, S;  // HD = H * dh: row stride of O; S = 3 * HD: row stride of [Q | K | V]
};

// Kernels over a tile of kRows query rows, for a fixed head dim (DH > 0) or dh at run time (0).
template <typename T, int DH>
struct Tile {
  static constexpr int64_t W = kW<T>;
  using KeyVec = Eigen::Array<T, int(W), 1>;
  using HeadVec = Eigen::Matrix<T, (DH > 0 ? DH : Eigen::Dynamic), 1>;
  // Query rows summed at once into dh-wide accumulators: as many as fit in ~8 vector registers.
  static constexpr int RG = DH == 0 ? kRows : std::clamp<int>(512 / (DH * int(sizeof(T))), 1, kRows);

  static Eigen::Map<const HeadVec> head(const T* p, int64_t dh) { return Eigen::Map<const HeadVec>(p, dh); }

  // out[r * ldo + t] = scale * sum_c X[r][c] MT[c * ld + t] for r < kRows and t < ncols (a multiple
  // of W): rows X[r] = x[r] (dh values each) against a transposed [dh, ld] slab. kRows independent
  // accumulators per register of keys, so the FMAs never wait on each other.
  static void scores(const std::array<const T*, kRows>& x, T scale, const T* MT, int64_t ld, int64_t dh_rt,
                     int64_t ncols, T* out, int64_t ldo) {
    const int64_t dh = DH > 0 ? DH : dh_rt;
    for (int64_t t = 0; t < ncols; t += W) {
      KeyVec acc[kRows];
      for (int r = 0; r < kRows; ++r) acc[r].setZero();
      for (int64_t c = 0; c < dh; ++c) {
        const KeyVec m = Eigen::Map<const KeyVec>(MT + c * ld + t);
        for (int r = 0; r < kRows; ++r) acc[r] += x[r][c] * m;
      }
      for (int r = 0; r < kRows; ++r) Eigen::Map<KeyVec>(out + r * ldo + t) = scale * acc[r];
    }
  }

  // Y[r] += alpha * sum_{t < U} Wt[r * ldw + t] X[t * xs] for r < rows (the value average P V and
  // dQ = dS K): RG rows at a time, each key row loaded once per group.
  static void gather(const T* Wt, int64_t ldw, int rows, const T* X, int64_t xs, int64_t U, int64_t dh, T alpha, T* Y,
                     int64_t ys) {
    for (int r0 = 0; r0 < rows; r0 += RG) {
      std::array<HeadVec, RG> acc;
      for (auto& v : acc) v = HeadVec::Zero(dh);
      for (int64_t t = 0; t < U; ++t) {
        const HeadVec x = head(X + t * xs, dh);
        for (int r = 0; r < RG; ++r) acc[r].noalias() += Wt[std::min(r0 + r, kRows - 1) * ldw + t] * x;
      }
      for (int r = 0; r < RG; ++r)  // constant bounds keep acc in registers
        if (r0 + r < rows) Eigen::Map<HeadVec>(Y + (r0 + r) * ys, dh) += alpha * acc[r];  // 1 * v is exact
    }
  }

  // Y[t * ys] += alpha * sum_{r < kRows} Wt[r * ldw + t] x[r] for t < U (the tile's share of
  // dK = dS^T Q and dV = Pd^T G); rows past the tile's end have zero weights. The kRows rows of x
  // are copied into registers once (fixed dh), and even and odd rows go into two accumulators,
  // halving the dependent chain. alpha multiplies always (1 * v is exact).
  static void key_sums(const T* Wt, int64_t ldw, const std::array<const T*, kRows>& x, int64_t U, int64_t dh, T alpha,
                       T* Y, int64_t ys) {
    if constexpr (DH > 0) {
      HeadVec xr[kRows];
      for (int r = 0; r < kRows; ++r) xr[r] = head(x[r], dh);
      for (int64_t t = 0; t < U; ++t) {
        const T* w = Wt + t;
        HeadVec a0 = w[0] * xr[0], a1 = w[ldw] * xr[1];
        for (int r = 2; r < kRows; r += 2) {
          a0.noalias() += w[r * ldw] * xr[r];
          a1.noalias() += w[(r + 1) * ldw] * xr[r + 1];
        }
        Eigen::Map<HeadVec>(Y + t * ys) += alpha * (a0 + a1);
      }
    } else {
      for (int64_t t = 0; t < U; ++t) {
        HeadVec a = HeadVec::Zero(dh);
        for (int r = 0; r < kRows; ++r) a.noalias() += Wt[r * ldw + t] * head(x[r], dh);
        Eigen::Map<HeadVec>(Y + t * ys, dh) += alpha * a;
      }
    }
  }
};

// [L, dh] rows with stride HD -> [dh, ld] (columns L.. untouched). Blocks of W x W go through
// registers and Eigen's in-register transpose; the scalar loop was 5% of a training step.
template <typename T>
void transpose_head(const T* src, int64_t L, int64_t dh, int64_t HD, int64_t ld, T* dst) {
  using Ln = Lanes<T>;
  constexpr int64_t W = Ln::W;
  const int64_t Lb = L / W * W, cb = dh / W * W;
  for (int64_t j0 = 0; j0 < Lb; j0 += W)
    for (int64_t c0 = 0; c0 < cb; c0 += W) {
// The packet type carries vector attributes that a template argument drops; Eigen's own
// PacketBlock is meant to be used this way, so the warning says nothing about this code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
      Eigen::internal::PacketBlock<typename Ln::Packet, int(W)> blk;
#pragma GCC diagnostic pop
      for (int64_t k = 0; k < W; ++k) blk.packet[k] = Ln::load(src + (j0 + k) * HD + c0);
      Eigen::internal::ptranspose(blk);
      for (int64_t k = 0; k < W; ++k) Ln::store(dst + (c0 + k) * ld + j0, blk.packet[k]);
    }
  for (int64_t j = 0; j < L; ++j)
    for (int64_t c = j < Lb ? cb : 0; c < dh; ++c) dst[c * ld + j] = src[j * HD + c];
}

// Pointers of one (sequence, head) job: q, k, v (and dq, dk, dv) at the head's first column of
// the Q, K, V blocks of the sequence's [L, 3 * HD] slab (row stride S); o and g (dO) at its first
// column of the [L, HD] output slab (row stride HD); bias, drop at its [L, L] slice (readable up to
// bias_end, drop_end).
template <typename T>
struct Job {
  const T *q, *k, *v, *bias = nullptr, *drop = nullptr, *bias_end = nullptr, *drop_end = nullptr;
  T* P = nullptr;                                                                 // band layout
  T *o = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr, *dbias = nullptr;  // dbias: band layout
  const T* g = nullptr;                                                           // dO
};

// Scratch of a job: a transposed head slab (its slack columns stay zero) and two [kRows, lds]
// tiles (zero-initialized, so lanes past a computed range hold finite values).
template <typename T>
struct Scratch {
  int64_t ld, lds;  // columns of the transposed slab (L + slack for the last register) and of a tile
  std::vector<T> MT, s, p;
  explicit Scratch(const Geometry& g)
      : ld(round_up(g.L, kW<T>) + kW<T>),
        lds(round_up(g.L, kW<T>) + 2 * kW<T>),
        MT(g.dh * ld),
        s(kRows * lds),
        p(kRows * lds) {}
};

// The rows i0 .. i0 + rows - 1 of a tile and the union [k0, k0 + U) of their key ranges (U = 0:
// no row has a key). Rows with keys are a suffix of the tile (a row has keys iff i >= lo), and
// both ends of the key ranges grow with i.
struct TileRows {
  int64_t i0, rows, k0 = 0, U = 0;
  TileRows(const Band& band, int64_t i0_, int64_t L) : i0(i0_), rows(std::min<int64_t>(kRows, L - i0_)) {
    int64_t f = i0;
    while (f < i0 + rows && band.n[f] == 0) ++f;
    if (f == i0 + rows) return;
    const int64_t last = i0 + rows - 1;
    k0 = band.a[f];
    U = band.a[last] + band.n[last] - k0;
  }
  // Row pointers base + (i0 + r) * stride, rows past the tile's end repeating its last row.
  template <typename T>
  std::array<const T*, kRows> ptrs(const T* base, int64_t stride) const {
    std::array<const T*, kRows> x;
    for (int r = 0; r < kRows; ++r) x[r] = base + (i0 + std::min<int64_t>(r, rows - 1)) * stride;
    return x;
  }
};

// Zeroes a tile row outside its band columns [o, o + npad) within [0, Upad).
template <typename T>
void clear_outside(T* row, int64_t o, int64_t npad, int64_t Upad) {
  std::fill(row, row + std::min(o, Upad), T(0));
  if (o + npad < Upad) std::fill(row + o + npad, row + Upad, T(0));
}

// Forward of one job: P (band layout) and O. Per tile: scores over the union of keys, then per row
// bias, max, exp, sum and normalization over the row's own registers (lanes past its last key
// masked to -inf before the max and to exactly 0 after the exp), then O += P V for the tile.
template <typename T, int DH>
void forward_job(const Geometry& g, const Band& band, T scale, const Job<T>& j, Scratch<T>& sc) {
  using namespace Eigen::internal;
  using K = Tile<T, DH>;
  using Ln = Lanes<T>;
  using Packet = typename Ln::Packet;
  constexpr int64_t W = K::W;
  constexpr T kInf = std::numeric_limits<T>::infinity();
  transpose_head(j.k, g.L, g.dh, g.S, sc.ld, sc.MT.data());
  for (int64_t i0 = 0; i0 < g.L; i0 += kRows) {
    const TileRows tr(band, i0, g.L);
    if (tr.U == 0) continue;  // no row has a key: the output rows stay zero
    const int64_t Upad = round_up(tr.U, W);
    K::scores(tr.ptrs(j.q, g.S), scale, sc.MT.data() + tr.k0, sc.ld, g.dh, Upad, sc.s.data(), sc.lds);
    for (int64_t r = 0; r < kRows; ++r) {
      T* row = sc.s.data() + r * sc.lds;
      const int64_t i = i0 + r, n = r < tr.rows ? band.n[i] : 0;
      if (n == 0) {  // no key, or past the tile's end: zero weights
        std::fill(row, row + Upad, T(0));
        continue;
      }
      const int64_t a = band.a[i], o = a - tr.k0, nfull = n / W * W, rem = n - nfull, npad = round_up(n, W);
      T* x = row + o;
      const T* bias = j.bias ? j.bias + i * g.L + a : nullptr;
      // Score plus bias of register t; in the last one, lanes past the last key are -inf
      // (whatever the scores or bias there hold). Computed twice rather than stored and reloaded:
      // a reload right after a store of the masked register stalls.
      auto z = [&](int64_t t) {
        Packet v = Ln::load(x + t);
        if (t < nfull) return bias ? padd(v, Ln::load(bias + t)) : v;
        if (bias) v = padd(v, Ln::load_tail(bias + t, rem, j.bias_end));
        return pselect(Ln::first(rem), v, Ln::set(-kInf));
      };
      Packet mxv = Ln::set(-kInf);
      for (int64_t t = 0; t < npad; t += W) mxv = pmax(mxv, z(t));
      const Packet mx = Ln::set(predux_max(mxv));
      Packet sum = Ln::set(0);
      for (int64_t t = 0; t < npad; t += W) {
        Packet e = pexp(psub(z(t), mx));
        if (t == nfull) e = pselect(Ln::first(rem), e, Ln::set(0));  // Eigen's exp(-inf) is not exactly 0
        Ln::store(x + t, e);
        sum = padd(sum, e);
      }
      const Packet inv = Ln::set(T(1) / predux(sum));
      T* p = j.P + band.off[i];
      for (int64_t t = 0; t < npad; t += W) {
        const Packet v = pmul(Ln::load(x + t), inv);
        Ln::store(x + t, v);
        Ln::store(p + t, v);
      }
      if (j.drop) Ln::mul_row(x, j.drop + i * g.L + a, nfull, rem, j.drop_end);
      clear_outside(row, o, npad, Upad);
    }
    K::gather(sc.s.data(), sc.lds, int(tr.rows), j.v + tr.k0 * g.S, g.S, tr.U, g.dh, T(1), j.o + i0 * g.HD, g.HD);
  }
}

// Backward of one job, with Pd = P * drop and G = dO, per tile:
//   dPd = G V^T;  dP = dPd * drop;  dS = P * (dP - rowsum(P * dP));  dbias += dS;
//   dQ += scale dS K;  dK += scale dS^T Q;  dV += Pd^T G
// (the last two: this tile's rows' share, added key by key in tile order).
template <typename T, int DH>
void backward_job(const Geometry& g, const Band& band, T scale, const Job<T>& j, Scratch<T>& sc) {
  using namespace Eigen::internal;
  using K = Tile<T, DH>;
  using Ln = Lanes<T>;
  using Packet = typename Ln::Packet;
  constexpr int64_t W = K::W;
  transpose_head(j.v, g.L, g.dh, g.S, sc.ld, sc.MT.data());
  for (int64_t i0 = 0; i0 < g.L; i0 += kRows) {
    const TileRows tr(band, i0, g.L);
    if (tr.U == 0) continue;
    const int64_t Upad = round_up(tr.U, W);
    K::scores(tr.ptrs(j.g, g.HD), T(1), sc.MT.data() + tr.k0, sc.ld, g.dh, Upad, sc.s.data(), sc.lds);
    for (int64_t r = 0; r < kRows; ++r) {
      T* ds_row = sc.s.data() + r * sc.lds;  // dPd, then dS
      T* pd_row = sc.p.data() + r * sc.lds;  // Pd
      const int64_t i = i0 + r, n = r < tr.rows ? band.n[i] : 0;
      if (n == 0) {
        std::fill(ds_row, ds_row + Upad, T(0));
        std::fill(pd_row, pd_row + Upad, T(0));
        continue;
      }
      const int64_t a = band.a[i], o = a - tr.k0, nfull = n / W * W, rem = n - nfull, npad = round_up(n, W);
      T* x = ds_row + o;
      T* pd = pd_row + o;
      const T* p = j.P + band.off[i];  // zeros past the row's last key
      const T* drop = j.drop ? j.drop + i * g.L + a : nullptr;
      // dP of register t (dPd * drop), lanes past the last key 0; computed in both passes rather
      // than stored and reloaded (see forward_job).
      auto dp = [&](int64_t t) {
        Packet v = Ln::load(x + t);
        if (t < nfull) return drop ? pmul(v, Ln::load(drop + t)) : v;
        if (drop) v = pmul(v, Ln::load_tail(drop + t, rem, j.drop_end));
        return pselect(Ln::first(rem), v, Ln::set(0));
      };
      Packet acc = Ln::set(0);
      for (int64_t t = 0; t < npad; t += W) acc = pmadd(Ln::load(p + t), dp(t), acc);
      const Packet dot = Ln::set(predux(acc));
      for (int64_t t = 0; t < npad; t += W) {
        const Packet pv = Ln::load(p + t), ds = pmul(pv, psub(dp(t), dot));
        Ln::store(x + t, ds);
        if (j.dbias) Ln::store(j.dbias + band.off[i] + t, padd(Ln::load(j.dbias + band.off[i] + t), ds));
        Ln::store(pd + t, pv);
      }
      if (drop) Ln::mul_row(pd, drop, nfull, rem, j.drop_end);
      clear_outside(ds_row, o, npad, Upad);
      clear_outside(pd_row, o, npad, Upad);
    }
    const int rows = int(tr.rows);
    if (j.dq) K::gather(sc.s.data(), sc.lds, rows, j.k + tr.k0 * g.S, g.S, tr.U, g.dh, scale, j.dq + i0 * g.S, g.S);
    if (j.dk) K::key_sums(sc.s.data(), sc.lds, tr.ptrs(j.q, g.S), tr.U, g.dh, scale, j.dk + tr.k0 * g.S, g.S);
    if (j.dv) K::key_sums(sc.p.data(), sc.lds, tr.ptrs(j.g, g.HD), tr.U, g.dh, T(1), j.dv + tr.k0 * g.S, g.S);
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
              "banded_attention: qkv must be [B, L, 3 * heads * dh] with heads = {}, got {}", spec.heads, shape_str(s));
  IHLAB_CHECK(spec.lo >= 0 && spec.hi >= spec.lo, "banded_attention: band lo = {}, hi = {} (need 0 <= lo <= hi)",
              spec.lo, spec.hi);
  const Geometry g{s[0], s[1], spec.heads, s[2] / (3 * spec.heads), s[2] / 3, s[2]};
  const int64_t LL = g.L * g.L;
  if (bias.defined()) check_same_shape("banded_attention(bias)", bias.shape(), Shape{g.H, g.L, g.L});
  if (drop.defined()) check_same_shape("banded_attention(drop)", drop.shape(), Shape{g.B, g.H, g.L, g.L});
  auto band = std::make_shared<const Band>(g.L, spec, kW<T>);
  const int64_t NB = band->total;  // band entries per (sequence, head), rows padded

  Tensor<T> out(Shape{g.B, g.L, g.HD});  // rows with no key stay zero
  // P in band layout [B, H, NB]; every entry is written by the forward pass, so no zero fill.
  std::shared_ptr<T[]> P(new T[std::max<int64_t>(g.B * g.H * NB, 1)]);
  const T scale = T(spec.scale);
  auto job = [&, P = P.get()](int64_t bh) {
    const int64_t b = bh / g.H, h = bh % g.H, in = b * g.L * g.S + h * g.dh;
    const T* x = qkv.value().data() + in;
    Job<T> j{x, x + g.HD, x + 2 * g.HD};
    if (bias.defined()) j.bias = bias.value().data() + h * LL, j.bias_end = bias.value().data() + g.H * LL;
    if (drop.defined()) j.drop = drop.data() + bh * LL, j.drop_end = drop.data() + drop.numel();
    j.P = P + bh * NB;
    j.o = out.data() + b * g.L * g.HD + h * g.dh;
    return j;
  };
  // Jobs per parallel chunk: enough work that a parallel region pays for itself on tiny problems.
  const int64_t job_work = std::max<int64_t>(1, NB * g.dh);
  parallel_for(g.B * g.H, std::max<int64_t>(1, detail::kGrain / job_work), [&](int64_t lo, int64_t hi) {
    Scratch<T> sc(g);
    dispatch_dh(g.dh, [&]<int DH>() {
      for (int64_t bh = lo; bh < hi; ++bh) forward_job<T, DH>(g, *band, scale, job(bh), sc);
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
      Scratch<T> sc(g);
      dispatch_dh(g.dh, [&]<int DH>() {
        for (int64_t b = lo; b < hi; ++b)
          for (int64_t h = 0; h < g.H; ++h) {
            const int64_t bh = b * g.H + h, in = b * g.L * g.S + h * g.dh;
            const T* x = node.parents[0]->value.data() + in;
            Job<T> j{x, x + g.HD, x + 2 * g.HD};
            if (drop.defined()) j.drop = drop.data() + bh * LL, j.drop_end = drop.data() + drop.numel();
            j.P = P.get() + bh * NB;
            j.g = node.grad.data() + b * g.L * g.HD + h * g.dh;
            if (gx) {
              j.dq = gx->data() + in;
              j.dk = j.dq + g.HD;
              j.dv = j.dq + 2 * g.HD;
            }
            if (gb) j.dbias = dbias.data() + ((b / kSeqChunk) * g.H + h) * NB;
            backward_job<T, DH>(g, *band, T(spec.scale), j, sc);
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

#define INST(T) \
  template Var<T> banded_attention(const Var<T>&, const Var<T>&, const BandedAttention&, const Tensor<T>&, Tensor<T>*);
IHLAB_INSTANTIATE_OPS(INST)

}  // namespace ihlab::ops
