// The disentangled model's fused loss (disentangled_kernel.h): forward phases, then backward
// phases in reverse, each either a row-blocked GEMM or a loop over sequences.
//
// Shapes (d = 2D, e = 4D; row vectors, so q = W h is stored as the row h^T W^T):
//   H  [B, L, d]   features          Q1 [B, L, d] = H W1^T        A1 [B, L, L] layer-1 attention
//   O1 [B, L, d] = A1 H              HQ [B, e] = [H_Q ; O1_Q]     Q2 [B, e] = HQ W2^T
//   A2 [B, L]      layer-2 attention (keys k < Q)                 Z  [B, 2e] = [HQ ; o2]
//   R  [B, D] = Z W3m^T - y
#include "models/disentangled_kernel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "core/eigen.h"
#include "core/error.h"
#include "core/ops_common.h"
#include "core/parallel.h"

namespace ihlab {

namespace {

template <typename T>
using Mat = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
template <typename T>
using CMat = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

// Rows per block of the products over the batch. Fixed, so the blocks (and every sum inside
// them) never depend on the thread count.
constexpr int64_t kRowBlock = 128;
constexpr int64_t kOutBlock = 64;  // output rows per block of a reduction over the batch

// C [m, n] = A [m, k] op(B): B stored [n, k] when bt (C = A B^T), else [k, n].
template <typename T>
void gemm_rows(const T* A, int64_t m, int64_t k, const T* B, int64_t n, bool bt, T* C) {
  parallel_for((m + kRowBlock - 1) / kRowBlock, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      const int64_t r0 = c * kRowBlock, r = std::min(kRowBlock, m - r0);
      CMat<T> a(A + r0 * k, r, k);
      Mat<T> out(C + r0 * n, r, n);
      if (bt)
        out.noalias() = a * CMat<T>(B, n, k).transpose();
      else
        out.noalias() = a * CMat<T>(B, k, n);
    }
  });
}

// C [n, k] += A^T B for A [m, n], B [m, k]: a sum over the m rows, split by blocks of C's rows
// (each block sums all m rows itself, in Eigen's order for that shape).
template <typename T>
void gemm_tn_acc(const T* A, int64_t m, int64_t n, const T* B, int64_t k, T* C) {
  CMat<T> a(A, m, n), b(B, m, k);
  Mat<T> c(C, n, k);
  parallel_for((n + kOutBlock - 1) / kOutBlock, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t r0 = blk * kOutBlock, r = std::min(kOutBlock, n - r0);
      c.middleRows(r0, r).noalias() += a.middleCols(r0, r).transpose() * b;
    }
  });
}

// Softmax of x[0..n) in place; n == 0 leaves nothing to do.
template <typename T>
void softmax_inplace(T* x, int64_t n) {
  if (n <= 0) return;
  T mx = -std::numeric_limits<T>::infinity();
  for (int64_t k = 0; k < n; ++k) mx = std::max(mx, x[k]);
  T s = 0;
  for (int64_t k = 0; k < n; ++k) s += (x[k] = std::exp(x[k] - mx));
  const T inv = T(1) / s;
  for (int64_t k = 0; k < n; ++k) x[k] *= inv;
}

}  // namespace

// Everything the backward pass reads, kept from the forward pass, and backward's buffers.
template <typename T>
struct DisentangledWorkspace {
  int64_t B = 0, L = 0, D = 0, d = 0, e = 0;
  std::vector<T> H, Q1, A1, O1, HQ, Q2, A2, Z, R;  // forward
  std::vector<T> GY, GZ, GS2, GQ2, GHQ, GQ1;       // backward: dloss/d of R, Z, s2, q2, HQ, Q1
};

namespace {

template <typename T>
using State = DisentangledWorkspace<T>;

// Layer 1 of sequence b: A1 = softmax_{k < j}(Q1 H^T), O1 = A1 H, and HQ[b] = [H_Q ; O1_Q].
template <typename T>
void layer1_forward(State<T>& s, int64_t b) {
  const int64_t L = s.L, d = s.d;
  const T* H = s.H.data() + b * L * d;
  T* A = s.A1.data() + b * L * L;
  Mat<T> S(A, L, L);
  S.noalias() = CMat<T>(s.Q1.data() + b * L * d, L, d) * CMat<T>(H, L, d).transpose();
  for (int64_t j = 0; j < L; ++j) {  // keys k < j (row 0 has none and stays 0)
    T* row = A + j * L;
    softmax_inplace(row, j);
    std::fill(row + j, row + L, T(0));
  }
  T* O = s.O1.data() + b * L * d;
  Mat<T>(O, L, d).noalias() = S * CMat<T>(H, L, d);
  T* hq = s.HQ.data() + b * s.e;
  std::copy(H + (L - 1) * d, H + L * d, hq);
  std::copy(O + (L - 1) * d, O + L * d, hq + d);
}

// Layer 2 at the query of sequence b: a2 = softmax_{k < Q}(h'_k . q2), o2 = sum_k a2_k h'_k, and
// Z[b] = [HQ[b] ; o2]. h'_k = [H_k ; O1_k] is never stored whole.
template <typename T>
void layer2_forward(State<T>& s, int64_t b) {
  const int64_t L = s.L, d = s.d, Q = L - 1;
  const T *H = s.H.data() + b * L * d, *O = s.O1.data() + b * L * d, *q2 = s.Q2.data() + b * s.e;
  T* a = s.A2.data() + b * L;
  for (int64_t k = 0; k < Q; ++k) {
    T acc = 0;
    for (int64_t i = 0; i < d; ++i) acc += H[k * d + i] * q2[i];
    for (int64_t i = 0; i < d; ++i) acc += O[k * d + i] * q2[d + i];
    a[k] = acc;
  }
  softmax_inplace(a, Q);
  a[Q] = 0;
  T* z = s.Z.data() + b * 2 * s.e;
  std::copy(s.HQ.data() + b * s.e, s.HQ.data() + (b + 1) * s.e, z);
  T* o2 = z + s.e;
  std::fill(o2, o2 + s.e, T(0));
  for (int64_t k = 0; k < Q; ++k)
    for (int64_t i = 0; i < d; ++i) o2[i] += a[k] * H[k * d + i], o2[d + i] += a[k] * O[k * d + i];
}

// Layer 2's backward for sequence b, given gZ[b] = dloss/dZ[b]: gs2 = softmax backward of
// ga2_k = g_o2 . h'_k, stored in GS2[b]; GQ2[b] = sum_k gs2_k h'_k (the gradient of q2).
template <typename T>
void layer2_backward(const State<T>& s, int64_t b, const T* gZ, T* GS2, T* GQ2) {
  const int64_t L = s.L, d = s.d, Q = L - 1;
  const T *H = s.H.data() + b * L * d, *O = s.O1.data() + b * L * d, *a = s.A2.data() + b * L;
  const T* go2 = gZ + b * 2 * s.e + s.e;
  T* gs = GS2 + b * L;
  T dot = 0;
  for (int64_t k = 0; k < Q; ++k) {
    T acc = 0;
    for (int64_t i = 0; i < d; ++i) acc += go2[i] * H[k * d + i];
    for (int64_t i = 0; i < d; ++i) acc += go2[d + i] * O[k * d + i];
    gs[k] = acc;
    dot += a[k] * acc;
  }
  T* gq = GQ2 + b * s.e;
  std::fill(gq, gq + s.e, T(0));
  for (int64_t k = 0; k < Q; ++k) {
    gs[k] = a[k] * (gs[k] - dot);
    for (int64_t i = 0; i < d; ++i) gq[i] += gs[k] * H[k * d + i], gq[d + i] += gs[k] * O[k * d + i];
  }
  gs[Q] = 0;
}

// Layer 1's backward for sequence b: gO1 (from layer 2's keys and values and from the query's
// own row, gHQ[b]), then gA1 = gO1 H^T, the softmax backward, and GQ1[b] = gS1 H.
// gO1, gA [L, d] and [L, L] are the caller's scratch.
template <typename T>
void layer1_backward(const State<T>& s, int64_t b, const T* gZ, const T* GS2, const T* gHQ, T* GQ1, T* gO1, T* gA) {
  const int64_t L = s.L, d = s.d, Q = L - 1;
  const T* H = s.H.data() + b * L * d;
  const T *a2 = s.A2.data() + b * L, *gs = GS2 + b * L, *q2 = s.Q2.data() + b * s.e;
  const T* go2 = gZ + b * 2 * s.e + s.e;
  for (int64_t k = 0; k < Q; ++k)  // O1_k is in key k's h'_k: d s2_k / d O1_k = q2, d o2 / d O1_k = a2_k
    for (int64_t i = 0; i < d; ++i) gO1[k * d + i] = a2[k] * go2[d + i] + gs[k] * q2[d + i];
  std::copy(gHQ + b * s.e + d, gHQ + (b + 1) * s.e, gO1 + Q * d);
  Mat<T> G(gA, L, L);
  G.noalias() = CMat<T>(gO1, L, d) * CMat<T>(H, L, d).transpose();
  const T* A = s.A1.data() + b * L * L;
  for (int64_t j = 0; j < L; ++j) {
    T* g = gA + j * L;
    const T* aj = A + j * L;
    T dot = 0;
    for (int64_t k = 0; k < j; ++k) dot += aj[k] * g[k];
    for (int64_t k = 0; k < j; ++k) g[k] = aj[k] * (g[k] - dot);
    std::fill(g + j, g + L, T(0));
  }
  Mat<T>(GQ1 + b * L * d, L, d).noalias() = G * CMat<T>(H, L, d);
}

// Sequences per chunk of the per-sequence phases (each sequence is independent; chunks only
// decide which thread takes it).
constexpr int64_t kSeqGrain = 4;

}  // namespace

template <typename T>
Var<T> disentangled_loss(const Var<T>& W1, const Var<T>& W2, const Var<T>& W3m, const Batch& batch, int64_t D,
                         std::shared_ptr<DisentangledWorkspace<T>>* workspace) {
  std::shared_ptr<State<T>> st;
  if (workspace && *workspace && workspace->use_count() == 1) st = *workspace;  // no graph holds it
  if (!st) st = std::make_shared<State<T>>();
  if (workspace) *workspace = st;
  State<T>& s = *st;
  s.B = batch.size, s.L = batch.length, s.D = D, s.d = 2 * D, s.e = 4 * D;
  const int64_t B = s.B, L = s.L, d = s.d, e = s.e;
  IHLAB_CHECK(B >= 1 && L >= 2, "disentangled: need at least one sequence of length >= 2 (got {} of length {})", B, L);
  IHLAB_CHECK(batch.feature_dim == d && batch.value_dim == D && int64_t(batch.features.size()) == B * L * d,
              "disentangled: batch with feature_dim {} and value_dim {} (expected 2D = {} and D = {})",
              batch.feature_dim, batch.value_dim, d, D);
  IHLAB_CHECK(W1.shape() == Shape({d, d}) && W2.shape() == Shape({e, e}) && W3m.shape() == Shape({D, 2 * e}),
              "disentangled: weights of shapes {}, {}, {} (expected [{}, {}], [{}, {}], [{}, {}])",
              shape_str(W1.shape()), shape_str(W2.shape()), shape_str(W3m.shape()), d, d, e, e, D, 2 * e);
  s.H.assign(batch.features.begin(), batch.features.end());
  s.Q1.resize(B * L * d), s.A1.resize(B * L * L), s.O1.resize(B * L * d);
  s.HQ.resize(B * e), s.Q2.resize(B * e), s.A2.resize(B * L), s.Z.resize(B * 2 * e), s.R.resize(B * D);

  gemm_rows(s.H.data(), B * L, d, W1.value().data(), d, true, s.Q1.data());
  parallel_for(B, kSeqGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) layer1_forward(s, b);
  });
  gemm_rows(s.HQ.data(), B, e, W2.value().data(), e, true, s.Q2.data());
  parallel_for(B, kSeqGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) layer2_forward(s, b);
  });
  gemm_rows(s.Z.data(), B, 2 * e, W3m.value().data(), D, true, s.R.data());
  double sq = 0;  // in order, in double
  for (int64_t i = 0; i < B * D; ++i) {
    s.R[i] -= T(batch.values[i]);
    sq += double(s.R[i]) * double(s.R[i]);
  }
  const double loss = 0.5 * sq / double(B);

  return make_result<T>(
      "disentangled_loss", Tensor<T>::scalar(T(loss)), {W1, W2, W3m}, [st, B, L, D, d, e](Node<T>& node) {
        State<T>& s = *st;
        const T g = node.grad[0] / T(B);
        s.GY.resize(B * D), s.GZ.resize(B * 2 * e), s.GS2.resize(B * L), s.GQ2.resize(B * e), s.GHQ.resize(B * e);
        s.GQ1.resize(B * L * d);
        std::vector<T>&GY = s.GY, &GZ = s.GZ, &GS2 = s.GS2, &GQ2 = s.GQ2, &GHQ = s.GHQ, &GQ1 = s.GQ1;
        for (int64_t i = 0; i < B * D; ++i) GY[i] = g * s.R[i];
        Tensor<T>* g1 = ops::detail::grad_of(node, 0);
        Tensor<T>* g2 = ops::detail::grad_of(node, 1);
        Tensor<T>* g3 = ops::detail::grad_of(node, 2);
        const T* w3 = node.parents[2]->value.data();
        const T* w2 = node.parents[1]->value.data();
        if (g3) gemm_tn_acc(GY.data(), B, D, s.Z.data(), 2 * e, g3->data());  // dW3m = GY^T Z
        if (!g1 && !g2) return;
        gemm_rows(GY.data(), B, D, w3, 2 * e, false, GZ.data());  // GZ = GY W3m
        parallel_for(B, kSeqGrain, [&](int64_t lo, int64_t hi) {
          for (int64_t b = lo; b < hi; ++b) layer2_backward(s, b, GZ.data(), GS2.data(), GQ2.data());
        });
        if (g2) gemm_tn_acc(GQ2.data(), B, e, s.HQ.data(), e, g2->data());  // dW2 = GQ2^T HQ
        if (!g1) return;
        gemm_rows(GQ2.data(), B, e, w2, e, false, GHQ.data());  // dHQ = GQ2 W2 + GZ[:, :e]
        for (int64_t b = 0; b < B; ++b)
          for (int64_t i = 0; i < e; ++i) GHQ[b * e + i] += GZ[b * 2 * e + i];
        parallel_for(B, kSeqGrain, [&](int64_t lo, int64_t hi) {
          std::vector<T> gO1(L * d), gA(L * L);
          for (int64_t b = lo; b < hi; ++b)
            layer1_backward(s, b, GZ.data(), GS2.data(), GHQ.data(), GQ1.data(), gO1.data(), gA.data());
        });
        gemm_tn_acc(GQ1.data(), B * L, d, s.H.data(), d, g1->data());  // dW1 = GQ1^T H
      });
}

template Var<float> disentangled_loss<float>(const Var<float>&, const Var<float>&, const Var<float>&, const Batch&,
                                             int64_t, std::shared_ptr<DisentangledWorkspace<float>>*);
template Var<double> disentangled_loss<double>(const Var<double>&, const Var<double>&, const Var<double>&, const Batch&,
                                               int64_t, std::shared_ptr<DisentangledWorkspace<double>>*);

}  // namespace ihlab
