#pragma once
// Products of thin row-major matrices (both output dims <= kSmallDim), for the width-16 models:
// LayerNorm + [Wq | Wk | Wv] is [256, 16] x [16, 48] per chunk, W_O [256, 16] x [16, 16].
//
// Why not Eigen's GEMM: at these sizes it spends more time packing both operands into its
// blocked layout than multiplying (about a fifth of an Edelman training step). Here B's rows (or
// G's) are read in place, one vector register of output columns at a time, with kBlock
// independent accumulators so the FMAs never wait on each other.
//
// Determinism: every output element is an FMA chain over the inner index in increasing order,
// starting from zero, then added to C when accumulating. Columns past the last whole register
// take the same chain in scalar FMAs, so the value depends neither on where the data lies in
// memory nor on which path a column takes.
#include "core/eigen.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace ihlab::ops::detail {

inline constexpr int64_t kSmallDim = 64;

template <typename T>
struct SmallMatmul {
  using Packet = typename Eigen::internal::packet_traits<T>::type;
  static constexpr int64_t W = Eigen::internal::unpacket_traits<Packet>::size;
  static constexpr int kBlock = 8;  // rows of C per pass: 8 independent chains

  // a * b + c rounded once where the vector code rounds once (pmadd is an FMA there).
  static T madd(T a, T b, T c) {
#ifdef EIGEN_VECTORIZE_FMA
    return std::fma(a, b, c);
#else
    return a * b + c;
#endif
  }

  // C[i, j] (= or +=) sum_c A[i, c] B[c, j] for i < r, j < n, c < k (leading dims lda, ldb, ldc).
  static void nn(const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, int64_t r, int64_t k, int64_t n,
                 bool accumulate) {
    using namespace Eigen::internal;
    const int64_t nv = n / W * W;
    for (int64_t i0 = 0; i0 < r; i0 += kBlock) {
      const int64_t rb = std::min<int64_t>(kBlock, r - i0);
      const T* a[kBlock];  // rows past r repeat the last one (computed, not stored)
      for (int q = 0; q < kBlock; ++q) a[q] = A + (i0 + std::min<int64_t>(q, rb - 1)) * lda;
      for (int64_t j = 0; j < nv; j += W) {
        Packet acc[kBlock];
        for (auto& v : acc) v = pset1<Packet>(T(0));
        for (int64_t c = 0; c < k; ++c) {
          const Packet b = ploadu<Packet>(B + c * ldb + j);
          for (int q = 0; q < kBlock; ++q) acc[q] = pmadd(pset1<Packet>(a[q][c]), b, acc[q]);
        }
        for (int q = 0; q < kBlock; ++q) {  // constant bounds keep acc in registers
          if (q >= rb) break;
          T* dst = C + (i0 + q) * ldc + j;
          pstoreu(dst, accumulate ? padd(ploadu<Packet>(dst), acc[q]) : acc[q]);
        }
      }
      for (int64_t j = nv; j < n; ++j) {
        T acc[kBlock] = {};
        for (int64_t c = 0; c < k; ++c)
          for (int q = 0; q < kBlock; ++q) acc[q] = madd(a[q][c], B[c * ldb + j], acc[q]);
        for (int q = 0; q < kBlock; ++q) {
          if (q >= rb) break;
          T& dst = C[(i0 + q) * ldc + j];
          dst = accumulate ? dst + acc[q] : acc[q];
        }
      }
    }
  }

  // C[c, j] = sum_i A[i, c] G[i, j] for c < k, j < n, i < r: A^T G with A [r, k] and G [r, n].
  static void tn(const T* A, int64_t lda, const T* G, int64_t ldg, T* C, int64_t ldc, int64_t r, int64_t k, int64_t n) {
    using namespace Eigen::internal;
    const int64_t nv = n / W * W;
    for (int64_t c0 = 0; c0 < k; c0 += kBlock) {
      const int64_t cb = std::min<int64_t>(kBlock, k - c0);
      int64_t col[kBlock];  // columns of A past k repeat the last one (computed, not stored)
      for (int q = 0; q < kBlock; ++q) col[q] = c0 + std::min<int64_t>(q, cb - 1);
      for (int64_t j = 0; j < nv; j += W) {
        Packet acc[kBlock];
        for (auto& v : acc) v = pset1<Packet>(T(0));
        for (int64_t i = 0; i < r; ++i) {
          const Packet g = ploadu<Packet>(G + i * ldg + j);
          const T* ai = A + i * lda;
          for (int q = 0; q < kBlock; ++q) acc[q] = pmadd(pset1<Packet>(ai[col[q]]), g, acc[q]);
        }
        for (int q = 0; q < kBlock; ++q)
          if (q < cb) pstoreu(C + (c0 + q) * ldc + j, acc[q]);
      }
      for (int64_t j = nv; j < n; ++j) {
        T acc[kBlock] = {};
        for (int64_t i = 0; i < r; ++i)
          for (int q = 0; q < kBlock; ++q) acc[q] = madd(A[i * lda + col[q]], G[i * ldg + j], acc[q]);
        for (int q = 0; q < kBlock; ++q)
          if (q < cb) C[(c0 + q) * ldc + j] = acc[q];
      }
    }
  }
};

}  // namespace ihlab::ops::detail
