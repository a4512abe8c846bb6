#pragma once
// SIMD building blocks of the GIH kernel (internal to gih_kernel.cpp / gih_sequence.cpp).
//
// The per-sequence loops use GCC/Clang vector extensions (one native register: 64 bytes with
// AVX-512, 16 floats or 8 doubles; 32 bytes otherwise) instead of relying on the auto-vectorizer,
// whose decisions flip with small code changes (and GCC 12 at -O3 miscompiles one masked-sum form
// for double; see token_mask).
// Why native width: GCC splits a 64-byte vector on an AVX2 machine, but keeps loop-carried ones
// (the accumulators) on the stack, each add waiting on a store. Measured on an AVX2 EPYC,
// bench_chen_step --mode paper --threads 2 float64: 6.8 ms a step with 64-byte vectors, 2.4 ms
// [2.3, 2.7] with 32-byte ones (float32: 6.5 and 2.0 ms).
// Every reduction adds its lanes in one fixed pairwise order, so results are deterministic on a
// machine (the order follows the register width, so an AVX2 and an AVX-512 build differ in the
// last bits).
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>
#if defined(__x86_64__) || defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace ihlab::gih_detail {

// Flushes denormal results and operands to zero (x86 FTZ + DAZ) in the current thread while in
// scope. As training concentrates p_S and sharpens the softmax, float values below 1e-38 appear
// (p_S of losing subsets, tails of s_j and of the products behind them) and x86 computes with
// denormals about 100x slower; they are far below every sum they enter, so zero is as good.
struct FlushDenormals {
#if defined(__x86_64__) || defined(__SSE__)
  unsigned saved = _mm_getcsr();
  FlushDenormals() { _mm_setcsr(saved | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved); }
#endif
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;
};

#if defined(__AVX512F__)
#define IHLAB_GIH_VEC_BYTES 64
#else
#define IHLAB_GIH_VEC_BYTES 32
#endif
template <typename T>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(IHLAB_GIH_VEC_BYTES)));
  typedef int32_t I __attribute__((vector_size(IHLAB_GIH_VEC_BYTES)));
  static constexpr int W = IHLAB_GIH_VEC_BYTES / 4;
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(IHLAB_GIH_VEC_BYTES)));
  typedef int64_t I __attribute__((vector_size(IHLAB_GIH_VEC_BYTES)));
  static constexpr int W = IHLAB_GIH_VEC_BYTES / 8;
};
template <typename T>
using VecT = typename Simd<T>::V;
template <typename T>
using IVecT = typename Simd<T>::I;

template <typename V, typename T>
inline V vload(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T, typename V>
inline void vstore(T* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}
template <typename T>
inline VecT<T> vsplat(T x) {
  return VecT<T>{} + x;
}
template <typename T>
inline VecT<T> vand(VecT<T> v, IVecT<T> mask) {  // v where mask = -1, +0 where mask = 0
  return (VecT<T>)((IVecT<T>)v & mask);
}

// Lanes summed pairwise (lane u + lane u + W/2, ...), a fixed order.
template <typename T>
inline T hsum(VecT<T> v) {
  constexpr int W = Simd<T>::W;
  T a[W];
  std::memcpy(a, &v, sizeof v);
  for (int w = W / 2; w >= 1; w /= 2)
    for (int u = 0; u < w; ++u) a[u] += a[u + w];
  return a[0];
}

// dst[u] += lane u of v, in double (dst: kLaneSlots doubles, 64-byte aligned; W of them used).
// A float vector is widened in two halves, each one register of doubles.
inline void add_lanes(double* dst, Simd<float>::V v) {
  constexpr int H = IHLAB_GIH_VEC_BYTES / 2;
  typedef float Vh __attribute__((vector_size(H)));
  using Vd = Simd<double>::V;
  Vh lo, hi;
  std::memcpy(&lo, &v, H);
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + H, H);
  constexpr int Wd = Simd<double>::W;
  vstore(dst, vload<Vd>(dst) + __builtin_convertvector(lo, Vd));
  vstore(dst + Wd, vload<Vd>(dst + Wd) + __builtin_convertvector(hi, Vd));
}
inline void add_lanes(double* dst, Simd<double>::V v) { vstore(dst, vload<Simd<double>::V>(dst) + v); }
constexpr int kLaneSlots = 16;  // >= the widest W (16 floats)
static_assert(Simd<float>::W <= kLaneSlots);

// -1 in the lanes where x[j] == k, for W consecutive int32 tokens (widened for double).
inline Simd<float>::I token_mask(const float*, const int32_t* x, int32_t k) { return vload<Simd<float>::I>(x) == k; }
inline Simd<double>::I token_mask(const double*, const int32_t* x, int32_t k) {
  typedef int32_t Ih __attribute__((vector_size(IHLAB_GIH_VEC_BYTES / 2)));
  return __builtin_convertvector(vload<Ih>(x), Simd<double>::I) == int64_t(k);
}

// exp(x) for x in [-87, 0] (float) / [-708, 0] (double); callers clamp. Cody-Waite reduction by
// ln 2 (n = ceil(x log2 e - 1/2), a nearest integer, so |r| <= ln2 / 2 + tiny; n ln2_hi is exact),
// a Taylor polynomial in r, then 2^n through the exponent bits. Within 2 ulp of std::exp.
// Clamping changes only values below e^-87 / e^-708, far below the largest term of each softmax
// (which is 1).
inline Simd<float>::V vexp(Simd<float>::V x) {
  using V = Simd<float>::V;
  using I = Simd<float>::I;
  const I n = __builtin_convertvector(x * 1.44269504088896341f - 0.5f, I);  // truncation = ceil here
  const V nf = __builtin_convertvector(n, V);
  V r = x - nf * 0.693145751953125f;
  r = r - nf * 1.428606765330187e-06f;
  V p = vsplat(1.0f / 5040.0f);
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * (V)((n + 127) << 23);
}
inline Simd<double>::V vexp(Simd<double>::V x) {
  using V = Simd<double>::V;
  using I = Simd<double>::I;
  const I n = __builtin_convertvector(x * 1.4426950408889634 - 0.5, I);
  const V nf = __builtin_convertvector(n, V);
  V r = x - nf * 6.93147180369123816490e-01;
  r = r - nf * 1.90821492927058770002e-10;
  V p = vsplat(1.0 / 6227020800.0);  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  return p * (V)((n + 1023) << 52);
}
template <typename T>
constexpr T kExpMin = std::is_same_v<T, float> ? T(-87) : T(-708);

// Max of n >= 0 numbers (n a multiple of W) through their bit patterns, which order like the
// numbers themselves for x >= 0: an integer max.
template <typename T>
inline T max_nonneg(const T* a, int64_t n) {
  using I = IVecT<T>;
  constexpr int W = Simd<T>::W;
  I m = I{};
  for (int64_t j = 0; j < n; j += W) {
    const I b = vload<I>(a + j);
    m = b > m ? b : m;
  }
  using S = std::conditional_t<std::is_same_v<T, float>, int32_t, int64_t>;
  S lanes[W];
  std::memcpy(lanes, &m, sizeof m);
  S best = 0;
  for (int u = 0; u < W; ++u) best = lanes[u] > best ? lanes[u] : best;
  return std::bit_cast<T>(best);
}

// std::allocator with 64-byte alignment, so whole-vector accesses never straddle cache lines.
template <typename T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <typename U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <typename U>
  bool operator==(const Aligned64<U>&) const {
    return true;
  }
};
template <typename T>
using avec = std::vector<T, Aligned64<T>>;

#if defined(__clang__)
#define IHLAB_GIH_SCALAR_LOOP __attribute__((noinline))
#else
#define IHLAB_GIH_SCALAR_LOOP __attribute__((noinline, optimize("no-tree-vectorize")))
#endif

// out[j] = table[idx[j]]. Scalar on purpose: vector gathers are slow on current x86 parts
// (microcode mitigations), and scalar loads from a table in L1 run at about one per cycle.
template <typename T>
IHLAB_GIH_SCALAR_LOOP void gather(T* __restrict out, const T* __restrict table, const int32_t* __restrict idx, int n) {
  for (int j = 0; j < n; ++j) out[j] = table[idx[j]];
}

// out[j] = table[idx[j]] for j < n (a multiple of W) from a table of 64 entries (idx < 64), by
// in-register permutes (vpermi2ps / vpermi2pd with AVX-512): no memory gathers at all.
// (GCC's __builtin_shuffle with AVX-512; elsewhere the scalar loop. Without AVX-512, GCC lowers
// the two-table shuffles of 64-byte vectors lane by lane through the stack: measured on an AVX2
// EPYC, bench_chen_step --mode paper float64 spent most of its time there.)
#if defined(__clang__) || !defined(__GNUC__) || !defined(__AVX512F__)
#define IHLAB_GIH_LOOKUP_SCALAR 1
#endif
inline void lookup64(float* __restrict out, const float* __restrict table, const int32_t* __restrict idx, int64_t n) {
#if defined(IHLAB_GIH_LOOKUP_SCALAR)
  gather(out, table, idx, int(n));
#else
  using V = Simd<float>::V;
  using I = Simd<float>::I;
  const V t0 = vload<V>(table), t1 = vload<V>(table + 16), t2 = vload<V>(table + 32), t3 = vload<V>(table + 48);
  for (int64_t j = 0; j < n; j += 16) {
    const I ix = vload<I>(idx + j);
    const V lo = __builtin_shuffle(t0, t1, ix), hi = __builtin_shuffle(t2, t3, ix);  // ix mod 32
    vstore(out + j, (ix & 32) != 0 ? hi : lo);
  }
#endif
}
inline void lookup64(double* __restrict out, const double* __restrict table, const int32_t* __restrict idx, int64_t n) {
#if defined(IHLAB_GIH_LOOKUP_SCALAR)
  gather(out, table, idx, int(n));
#else
  using V = Simd<double>::V;
  using I = Simd<double>::I;
  typedef int32_t I8 __attribute__((vector_size(32)));
  V t[8];
  for (int b = 0; b < 8; ++b) t[b] = vload<V>(table + 8 * b);
  for (int64_t j = 0; j < n; j += 8) {
    const I ix = __builtin_convertvector(vload<I8>(idx + j), I);
    const V b0 = __builtin_shuffle(t[0], t[1], ix), b1 = __builtin_shuffle(t[2], t[3], ix);  // ix mod 16
    const V b2 = __builtin_shuffle(t[4], t[5], ix), b3 = __builtin_shuffle(t[6], t[7], ix);
    const V lo = (ix & 16) != 0 ? b1 : b0, hi = (ix & 16) != 0 ? b3 : b2;
    vstore(out + j, (ix & 32) != 0 ? hi : lo);
  }
#endif
}
constexpr int64_t kLookupMax = 64;

// bank[(j % kBanks) * np + idx[j]] += v[j]. Scalar (see gather); the banks keep consecutive keys
// off one memory location when a pattern repeats, so the adds do not wait on each other.
constexpr int kBanks = 8;
template <typename T>
IHLAB_GIH_SCALAR_LOOP void scatter_banked(T* __restrict bank, int64_t np, const int32_t* __restrict idx,
                                          const T* __restrict v, int n) {
  int j = 0;
  for (; j + kBanks <= n; j += kBanks)
    for (int u = 0; u < kBanks; ++u) bank[u * np + idx[j + u]] += v[j + u];
  for (int u = 0; j < n; ++j, ++u) bank[u * np + idx[j]] += v[j];
}

// Per-sequence arrays are padded to a multiple of kPad keys (a whole number of vectors for both
// types); padded keys have r = 0, s = 0, token 0 and contribute exactly 0 everywhere.
constexpr int64_t kPad = 16;
static_assert(kPad % Simd<float>::W == 0 && kPad % Simd<double>::W == 0);
constexpr double kNormEps = 1e-7;  // vbar = v / (||v|| + 1e-7), as the authors

}  // namespace ihlab::gih_detail
