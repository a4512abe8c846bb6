// Fused pieces of a transformer block (see ops.h): LayerNorm + concatenated linear maps, and a
// linear map added to a residual stream. Forward and backward side by side.
//
// Why fused: at the widths of the induction-head models (d = 16..256) a LayerNorm, three linear
// layers and a residual add as separate ops cost more in [N, d] temporaries, page faults and
// passes over memory than in arithmetic. Here each is one pass with Eigen products per chunk.
//
// Determinism: rows go in fixed chunks of kRowChunk; weight, bias and LayerNorm-parameter
// gradients are summed per chunk and the partials added in chunk order, so nothing depends on
// the thread count.
//
// Heap layout: these functions allocate in the same order and sizes as the single-function
// version they were split from. Eigen's products of tiny matrices at arbitrary addresses
// (ops_matmul.cpp's bmm, e.g. [1, 3] x [3, 4] in the candidates loss) round differently with the
// operands' alignment, so moving an allocation here can flip the last bits of a later op's result.
#include "core/eigen.h"
#include <unsupported/Eigen/SpecialFunctions>

#include <cmath>
#include <memory>
#include <vector>

#include "core/ops.h"
#include "core/ops_common.h"
#include "core/small_matmul.h"

namespace ihlab::ops {
namespace {

constexpr int64_t kRowChunk = 256;

template <typename T>
using SM = detail::SmallMatmul<T>;
// Whether a product with output dims m and n goes through SmallMatmul instead of Eigen's GEMM.
inline bool thin(int64_t m, int64_t n) { return m <= detail::kSmallDim && n <= detail::kSmallDim; }

// SmallMatmul's kernels for norm_linear's chunk functions, each a call of its own: inlined into
// a chunk function, the kernel's register allocation depended on what else that function kept
// live, and in the forward GCC moved the kernel's 8 row pointers through vector registers on
// every FMA (forward about 15% slower than when the chunk code sat in a lambda).
template <typename T>
[[gnu::noinline]] void small_nn(const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, int64_t r,
                                int64_t k, int64_t n) {
  SM<T>::nn(A, lda, B, ldb, C, ldc, r, k, n, false);
}
template <typename T>
[[gnu::noinline]] void small_tn(const T* A, int64_t lda, const T* G, int64_t ldg, T* C, int64_t ldc, int64_t r,
                                int64_t k, int64_t n) {
  SM<T>::tn(A, lda, G, ldg, C, ldc, r, k, n);
}

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Mat = Eigen::Map<RowMat<T>>;
template <typename T>
using CMat = Eigen::Map<const RowMat<T>>;
template <typename T>
using RowVec = Eigen::Matrix<T, 1, Eigen::Dynamic>;

// dst[j] = sum over rows of G[r, j] for a row-major [rows, n] block, rows in order (an explicit
// loop: Eigen's colwise().sum() peels scalars for alignment, so its order depends on the address).
template <typename T>
void column_sums(const T* G, int64_t rows, int64_t n, T* dst) {
  for (int64_t j = 0; j < n; ++j) dst[j] = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) dst[j] += G[r * n + j];
}

// sum_j a[j] * b[j] (b = nullptr: sum_j a[j]) in a fixed order: 8 interleaved partial sums (one
// vector register; they break the add-latency chain), then a fixed tree, then the tail.
// LayerNorm's row statistics would otherwise be d dependent adds each. A fixed-size Eigen array
// and the branch outside the loops, so the compiler emits vector code (it did not for a scalar
// acc[8] with the branch inside).
template <typename T>
inline T sum8(const T* a, const T* b, int64_t n) {
  using V = Eigen::Array<T, 8, 1>;
  V acc = V::Zero();
  int64_t j = 0;
  if (b)
    for (; j + 8 <= n; j += 8) acc += Eigen::Map<const V>(a + j) * Eigen::Map<const V>(b + j);
  else
    for (; j + 8 <= n; j += 8) acc += Eigen::Map<const V>(a + j);
  T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; j < n; ++j) s += b ? a[j] * b[j] : a[j];
  return s;
}

// The exact GELU, z Phi(z), elementwise over n values, and its derivative Phi(z) + z phi(z)
// times g (in place into g). Vectorized through Eigen's erf and exp.
template <typename T>
void gelu_forward(const T* z, T* y, int64_t n) {
  using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
  Eigen::Map<const Arr> zz(z, n);
  Eigen::Map<Arr>(y, n) = T(0.5) * zz * (T(1) + (zz * T(0.70710678118654752440)).erf());
}
template <typename T>
void gelu_backward(const T* z, T* g, int64_t n) {
  using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
  Eigen::Map<const Arr> zz(z, n);
  Eigen::Map<Arr>(g, n) *= T(0.5) * (T(1) + (zz * T(0.70710678118654752440)).erf()) +
                           zz * T(0.39894228040143267794) * (T(-0.5) * zz.square()).exp();
}

// LayerNorm's gamma and beta as arrays (ones and zeros when absent), so the per-row loops have no
// branches and vectorize.
template <typename T>
std::vector<T> gamma_or_ones(const T* g, int64_t d) {
  return g ? std::vector<T>(g, g + d) : std::vector<T>(d, T(1));
}
template <typename T>
std::vector<T> beta_or_zeros(const T* b, int64_t d) {
  return b ? std::vector<T>(b, b + d) : std::vector<T>(d, T(0));
}

// out[j] = c[j] * s * g[j] + b[j]: a normalized row through LayerNorm's affine map. Restrict
// pointers so the loop vectorizes (element by element, so the values do not depend on it).
template <typename T>
void affine_row(const T* __restrict c, T s, const T* __restrict g, const T* __restrict b, int64_t d,
                T* __restrict out) {
  for (int64_t j = 0; j < d; ++j) out[j] = c[j] * s * g[j] + b[j];
}

// Sums per-chunk partials [chunks, n] in chunk order into dst [n] (+=).
template <typename T>
void add_partials(const std::vector<T>& part, int64_t chunks, int64_t n, T* dst) {
  for (int64_t j = 0; j < n; ++j) {
    T acc = 0;
    for (int64_t c = 0; c < chunks; ++c) acc += part[c * n + j];
    dst[j] += acc;
  }
}

// ---- norm_linear in phases: weights, LayerNorm rows, the linear map, and their backward.

// The linear maps of norm_linear side by side.
template <typename T>
struct ConcatLinear {
  std::vector<int64_t> widths;  // n_i of every W_i [d, n_i]
  int64_t nt = 0;               // sum of the widths
  RowMat<T> Wc;                 // [d, nt] = [W_1 | W_2 | ...]
  RowVec<T> bc;                 // [nt] = [b_1 | b_2 | ...], zeros where a bias is missing
  bool any_bias = false;
};

// Checks every W_i [d, n_i] and b_i [n_i] against x [..., d] and concatenates them.
template <typename T>
ConcatLinear<T> concat_linear(const Var<T>& x, int64_t d, const std::vector<Var<T>>& W, const std::vector<Var<T>>& b) {
  ConcatLinear<T> cl;
  for (size_t i = 0; i < W.size(); ++i) {
    IHLAB_CHECK(W[i].value().ndim() == 2 && W[i].dim(0) == d, "norm_linear: weight {} is {}, x is {} (need [{}, n])", i,
                shape_str(W[i].shape()), shape_str(x.shape()), d);
    if (!b.empty() && b[i].defined()) check_same_shape("norm_linear(bias)", b[i].shape(), Shape{W[i].dim(1)});
    cl.widths.push_back(W[i].dim(1));
    cl.nt += cl.widths.back();
  }
  cl.Wc.resize(d, cl.nt);
  cl.bc = RowVec<T>::Zero(cl.nt);
  for (size_t i = 0, c0 = 0; i < W.size(); c0 += cl.widths[i], ++i) {
    cl.Wc.middleCols(c0, cl.widths[i]) = CMat<T>(W[i].value().data(), d, cl.widths[i]);
    if (!b.empty() && b[i].defined()) {
      cl.bc.segment(c0, cl.widths[i]) = Eigen::Map<const RowVec<T>>(b[i].value().data(), cl.widths[i]);
      cl.any_bias = true;
    }
  }
  return cl;
}

// LayerNorm of rows lo..lo+r of x: (x - mean) / sqrt(var + eps) * gamma + beta, biased variance
// as torch.  px: [N, d];  ga, be: [d];  mean, rstd: [N] (rows lo.. written, kept for backward);
// hn: [r, d] out.
template <typename T>
void layer_norm_rows(const T* px, int64_t lo, int64_t r, int64_t d, double eps, const T* ga, const T* be, T* mean,
                     T* rstd, T* hn) {
  std::vector<T> xc(d);  // the centered row
  for (int64_t i = 0; i < r; ++i) {
    const T* __restrict xi = px + (lo + i) * d;
    T* __restrict c = xc.data();
    const T mu = sum8<T>(xi, nullptr, d) / T(d);
    for (int64_t j = 0; j < d; ++j) c[j] = xi[j] - mu;
    const T var = sum8(c, c, d) / T(d);
    const T rs = T(1) / std::sqrt(var + T(eps));
    mean[lo + i] = mu;
    rstd[lo + i] = rs;
    affine_row(c, rs, ga, be, d, hn + i * d);
  }
}

// The normalized rows xhat and the LayerNorm output hn of rows lo..lo+r, recomputed from x and
// the saved statistics exactly as layer_norm_rows made them (two numbers a row are kept instead
// of a copy of x).  px: [N, d];  mean, rstd: [N];  ga, be: [d];  xhat, hn: [r, d] out.
template <typename T>
void layer_norm_rows_recompute(const T* px, int64_t lo, int64_t r, int64_t d, const T* mean, const T* rstd, const T* ga,
                               const T* be, T* xhat, T* hn) {
  for (int64_t i = 0; i < r; ++i) {
    const T* __restrict xi = px + (lo + i) * d;
    T* __restrict xh = xhat + i * d;
    const T mu = mean[lo + i], rs = rstd[lo + i];
    for (int64_t j = 0; j < d; ++j) xh[j] = (xi[j] - mu) * rs;
    affine_row(xh, T(1), ga, be, d, hn + i * d);
  }
}

// Backward of layer_norm_rows for rows lo..lo+r: dgamma += sum dh xhat, dbeta += sum dh,
// dx += rstd * (dh gamma - mean(dh gamma) - xhat * mean(dh gamma xhat)).
//   xhat, dh: [r, d];  ga: [d];  rstd: [N];  dg, db: [d] (this chunk's partials, or nullptr);
//   dx: [N, d] (rows lo.. added to, or nullptr).
template <typename T>
void layer_norm_rows_backward(const T* xhat, const T* dh, const T* ga, const T* rstd, int64_t lo, int64_t r, int64_t d,
                              T* __restrict dg, T* __restrict db, T* dx_all) {
  std::vector<T> dhg_buf(d);  // dh * gamma of one row
  for (int64_t i = 0; i < r; ++i) {
    const T* __restrict xh = xhat + i * d;
    const T* __restrict dhi = dh + i * d;
    const T* __restrict gm = ga;
    T* __restrict dhg = dhg_buf.data();
    for (int64_t j = 0; j < d; ++j) dhg[j] = dhi[j] * gm[j];
    if (dg)
      for (int64_t j = 0; j < d; ++j) dg[j] += dhi[j] * xh[j];
    if (db)
      for (int64_t j = 0; j < d; ++j) db[j] += dhi[j];
    if (dx_all) {
      const T m1 = sum8<T>(dhg, nullptr, d) / T(d), m2 = sum8<T>(dhg, xh, d) / T(d);
      T* __restrict dx = dx_all + (lo + i) * d;
      const T rs = rstd[lo + i];
      for (int64_t j = 0; j < d; ++j) dx[j] += rs * (dhg[j] - m1 - xh[j] * m2);
    }
  }
}

// What norm_linear's backward needs from its forward.
template <typename T>
struct NormLinearSaved {
  int64_t N = 0, d = 0, nt = 0, nw = 0;  // rows, input width, output width, number of weights
  bool norm = false;
  std::vector<int64_t> widths;      // [nw]
  RowMat<T> Wc;                     // [d, nt]
  std::shared_ptr<T[]> mean, rstd;  // [N] (with norm)
  std::shared_ptr<T[]> pre;         // [N, nt]: h W + b before GELU (with gelu)
};

// What every row chunk of one forward call reads.
template <typename T>
struct NormLinearForward {
  const NormLinearSaved<T>& sv;
  const ConcatLinear<T>& cl;
  const T* px;  // [N, d]
  const T* ga;  // [d] gamma (ones without)
  const T* be;  // [d] beta (zeros without)
  double eps;
  T* out;  // [N, nt]
};

// Forward of rows lo..hi: out = [GELU](LN(x) Wc + bc).
template <typename T>
void norm_linear_rows(const NormLinearForward<T>& f, int64_t lo, int64_t hi) {
  const NormLinearSaved<T>& sv = f.sv;
  const int64_t r = hi - lo, d = sv.d, nt = sv.nt;
  const T* h = f.px + lo * d;
  RowMat<T> hn;
  if (sv.norm) {
    hn.resize(r, d);
    layer_norm_rows(f.px, lo, r, d, f.eps, f.ga, f.be, sv.mean.get(), sv.rstd.get(), hn.data());
    h = hn.data();
  }
  Mat<T> y(sv.pre ? sv.pre.get() + lo * nt : f.out + lo * nt, r, nt);
  if (thin(d, nt))
    small_nn(h, d, f.cl.Wc.data(), nt, y.data(), nt, r, d, nt);
  else
    y.noalias() = CMat<T>(h, r, d) * f.cl.Wc;
  if (f.cl.any_bias) y.rowwise() += f.cl.bc;
  if (sv.pre) gelu_forward(sv.pre.get() + lo * nt, f.out + lo * nt, r * nt);
}

// Gradient buffers of norm_linear's inputs (nullptr where none is wanted) and per-chunk partials
// of the parameter gradients, summed in chunk order at the end.
template <typename T>
struct NormLinearGrads {
  Tensor<T>* gx = nullptr;     // [N, d]
  Tensor<T>* gg = nullptr;     // [d]
  Tensor<T>* gbeta = nullptr;  // [d]
  bool want_w = false, want_b = false;
  std::vector<T> dW, db, dgamma, dbeta;  // [chunks, d, nt], [chunks, nt], [chunks, d] x 2
};

// What every row chunk of one backward call reads.
template <typename T>
struct NormLinearBackward {
  const NormLinearSaved<T>& sv;
  const T* G;            // [N, nt] upstream gradient
  const T* px;           // [N, d]
  const T* ga;           // [d]
  const T* be;           // [d]
  const RowMat<T>& WcT;  // [nt, d] (small products only)
  NormLinearGrads<T>& gr;
};

// Backward of rows lo..hi. With h = LN(x) (or x) and G = dY (through GELU first):
// dW = h^T G; db = colsum(G); dh = G W^T; then LayerNorm's backward.
template <typename T>
void norm_linear_rows_backward(const NormLinearBackward<T>& b, int64_t lo, int64_t hi) {
  const NormLinearSaved<T>& sv = b.sv;
  NormLinearGrads<T>& gr = b.gr;
  const int64_t r = hi - lo, c = lo / kRowChunk, d = sv.d, nt = sv.nt;
  const bool small = thin(d, nt);
  RowMat<T> Gz;  // with gelu: the gradient at the pre-activation
  if (sv.pre) {
    Gz = CMat<T>(b.G + lo * nt, r, nt);
    gelu_backward(sv.pre.get() + lo * nt, Gz.data(), r * nt);
  }
  CMat<T> Gc(sv.pre ? Gz.data() : b.G + lo * nt, r, nt);
  RowMat<T> xhat, hn;  // normalized rows and the LayerNorm output, recomputed as in forward
  const T* h = b.px + lo * d;
  if (sv.norm) {
    xhat.resize(r, d);
    hn.resize(r, d);
    layer_norm_rows_recompute(b.px, lo, r, d, sv.mean.get(), sv.rstd.get(), b.ga, b.be, xhat.data(), hn.data());
    h = hn.data();
  }
  if (gr.want_w && small)
    small_tn(h, d, Gc.data(), nt, gr.dW.data() + c * d * nt, nt, r, d, nt);
  else if (gr.want_w)
    Mat<T>(gr.dW.data() + c * d * nt, d, nt).noalias() = CMat<T>(h, r, d).transpose() * Gc;
  if (gr.want_b) column_sums(Gc.data(), r, nt, gr.db.data() + c * nt);
  if (!gr.gx && !gr.gg && !gr.gbeta) return;
  RowMat<T> dh(r, d);
  if (small)
    small_nn(Gc.data(), nt, b.WcT.data(), d, dh.data(), d, r, nt, d);
  else
    dh.noalias() = Gc * sv.Wc.transpose();
  if (!sv.norm) {
    Mat<T>(gr.gx->data() + lo * d, r, d) += dh;
    return;
  }
  layer_norm_rows_backward(xhat.data(), dh.data(), b.ga, sv.rstd.get(), lo, r, d,
                           gr.gg ? gr.dgamma.data() + c * d : nullptr, gr.gbeta ? gr.dbeta.data() + c * d : nullptr,
                           gr.gx ? gr.gx->data() : nullptr);
}

// norm_linear's backward: chunks in parallel, then the partials summed in chunk order and split
// back into the W_i and b_i. Inputs: x, gamma, beta, W_0..W_{nw-1}, b_0..b_{nw-1}.
template <typename T>
void norm_linear_backward(Node<T>& node, const NormLinearSaved<T>& sv) {
  const int64_t N = sv.N, d = sv.d, nt = sv.nt, nw = sv.nw;
  const T* G = node.grad.data();
  const T* px = node.parents[0]->value.data();
  NormLinearGrads<T> gr;
  gr.gx = detail::grad_of(node, 0);
  gr.gg = sv.norm ? detail::grad_of(node, 1) : nullptr;
  gr.gbeta = sv.norm ? detail::grad_of(node, 2) : nullptr;
  const T* pg = sv.norm && node.parents[1] ? node.parents[1]->value.data() : nullptr;
  const T* pb = sv.norm && node.parents[2] ? node.parents[2]->value.data() : nullptr;
  const std::vector<T> ga = gamma_or_ones(pg, d), be = beta_or_zeros(pb, d);
  for (int64_t i = 0; i < nw; ++i) {
    gr.want_w |= detail::grad_of(node, 3 + i) != nullptr;
    gr.want_b |= detail::grad_of(node, 3 + nw + i) != nullptr;
  }
  const int64_t chunks = (N + kRowChunk - 1) / kRowChunk;
  gr.dW.resize(gr.want_w ? chunks * d * nt : 0), gr.db.resize(gr.want_b ? chunks * nt : 0);
  gr.dgamma.resize(gr.gg ? chunks * d : 0), gr.dbeta.resize(gr.gbeta ? chunks * d : 0);
  const bool small = thin(d, nt);
  const RowMat<T> WcT = small ? RowMat<T>(sv.Wc.transpose()) : RowMat<T>();  // [nt, d] rows for SM::nn
  const NormLinearBackward<T> ctx{sv, G, px, ga.data(), be.data(), WcT, gr};
  parallel_for(N, kRowChunk, [&](int64_t lo, int64_t hi) { norm_linear_rows_backward(ctx, lo, hi); });
  if (gr.gg) add_partials(gr.dgamma, chunks, d, gr.gg->data());
  if (gr.gbeta) add_partials(gr.dbeta, chunks, d, gr.gbeta->data());
  std::vector<T> sum_w(gr.want_w ? d * nt : 0), sum_b(gr.want_b ? nt : 0);
  if (gr.want_w) add_partials(gr.dW, chunks, d * nt, sum_w.data());
  if (gr.want_b) add_partials(gr.db, chunks, nt, sum_b.data());
  for (int64_t i = 0, c0 = 0; i < nw; c0 += sv.widths[i], ++i) {
    if (Tensor<T>* g = detail::grad_of(node, 3 + i))
      for (int64_t r = 0; r < d; ++r)
        for (int64_t j = 0; j < sv.widths[i]; ++j) (*g)[r * sv.widths[i] + j] += sum_w[r * nt + c0 + j];
    if (Tensor<T>* g = detail::grad_of(node, 3 + nw + i))
      for (int64_t j = 0; j < sv.widths[i]; ++j) (*g)[j] += sum_b[c0 + j];
  }
}

}  // namespace

template <typename T>
Var<T> norm_linear(const Var<T>& x, bool norm, const Var<T>& gamma, const Var<T>& beta, double eps,
                   const std::vector<Var<T>>& W, const std::vector<Var<T>>& b, bool gelu) {
  IHLAB_CHECK(x.value().ndim() >= 1, "norm_linear: x must have rank >= 1");
  IHLAB_CHECK(!W.empty() && (b.empty() || b.size() == W.size()),
              "norm_linear: need one or more weights and as many biases (or none), got {} and {}", W.size(), b.size());
  const int64_t d = x.shape().back(), N = x.value().numel() / std::max<int64_t>(d, 1);
  if (norm && gamma.defined()) check_same_shape("norm_linear(gamma)", gamma.shape(), Shape{d});
  if (norm && beta.defined()) check_same_shape("norm_linear(beta)", beta.shape(), Shape{d});
  ConcatLinear<T> cl = concat_linear(x, d, W, b);
  const int64_t nt = cl.nt;

  Shape out_shape = x.shape();
  out_shape.back() = nt;
  Tensor<T> out(out_shape);
  NormLinearSaved<T> sv;
  sv.N = N, sv.d = d, sv.nt = nt, sv.nw = int64_t(W.size()), sv.norm = norm;
  sv.mean.reset(norm ? new T[std::max<int64_t>(N, 1)] : nullptr);
  sv.rstd.reset(norm ? new T[std::max<int64_t>(N, 1)] : nullptr);
  sv.pre.reset(gelu ? new T[std::max<int64_t>(N * nt, 1)] : nullptr);
  const T* px = x.value().data();
  const T* pg = norm && gamma.defined() ? gamma.value().data() : nullptr;
  const T* pb = norm && beta.defined() ? beta.value().data() : nullptr;
  const std::vector<T> ga = gamma_or_ones(pg, d), be = beta_or_zeros(pb, d);
  const NormLinearForward<T> ctx{sv, cl, px, ga.data(), be.data(), eps, out.data()};
  parallel_for(N, kRowChunk, [&](int64_t lo, int64_t hi) { norm_linear_rows(ctx, lo, hi); });
  sv.Wc = std::move(cl.Wc);

  std::vector<Var<T>> inputs{x, gamma, beta};
  for (auto& w : W) inputs.push_back(w);
  for (size_t i = 0; i < W.size(); ++i) inputs.push_back(b.empty() ? Var<T>() : b[i]);
  sv.widths = cl.widths;  // copied here, not earlier (heap layout: see the top of this file)
  return make_result<T>("norm_linear", std::move(out), std::move(inputs),
                        [sv = std::move(sv)](Node<T>& node) { norm_linear_backward(node, sv); });
}

template <typename T>
Var<T> linear_residual(const Var<T>& x, const Var<T>& a, const Var<T>& W, const Var<T>& b, const Tensor<T>& m) {
  IHLAB_CHECK(W.value().ndim() == 2 && a.value().ndim() >= 1 && a.shape().back() == W.dim(0) && x.value().ndim() >= 1 &&
                  x.shape().back() == W.dim(1),
              "linear_residual: x {}, a {} and W {} do not fit (need x[..., n], a[..., k], W[k, n])",
              shape_str(x.shape()), shape_str(a.shape()), shape_str(W.shape()));
  const int64_t k = W.dim(0), n = W.dim(1), N = x.value().numel() / std::max<int64_t>(n, 1);
  IHLAB_CHECK(a.value().numel() == N * k, "linear_residual: a {} has {} rows, x {} has {}", shape_str(a.shape()),
              a.value().numel() / std::max<int64_t>(k, 1), shape_str(x.shape()), N);
  if (b.defined()) check_same_shape("linear_residual(bias)", b.shape(), Shape{n});
  if (m.defined()) check_same_shape("linear_residual(multipliers)", m.shape(), x.shape());
  Tensor<T> out(x.shape());
  const T* pa = a.value().data();
  const T* pm = m.defined() ? m.data() : nullptr;
  parallel_for(N, kRowChunk, [&](int64_t lo, int64_t hi) {
    const int64_t r = hi - lo;
    Mat<T> y(out.data() + lo * n, r, n);
    if (thin(k, n))
      SM<T>::nn(pa + lo * k, k, W.value().data(), n, y.data(), n, r, k, n, false);
    else
      y.noalias() = CMat<T>(pa + lo * k, r, k) * CMat<T>(W.value().data(), k, n);
    if (b.defined()) y.rowwise() += Eigen::Map<const RowVec<T>>(b.value().data(), n);
    if (pm) y.array() *= CMat<T>(pm + lo * n, r, n).array();
    y += CMat<T>(x.value().data() + lo * n, r, n);
  });
  return make_result<T>("linear_residual", std::move(out), {x, a, W, b}, [N, k, n, m](Node<T>& node) {
    // With Gb = G * m (the branch's gradient):  dx = G;  da = Gb W^T;  dW = a^T Gb;  db = colsum(Gb).
    const T* G = node.grad.data();
    const T* pm = m.defined() ? m.data() : nullptr;
    Tensor<T>* gx = detail::grad_of(node, 0);
    Tensor<T>* ga = detail::grad_of(node, 1);
    Tensor<T>* gW = detail::grad_of(node, 2);
    Tensor<T>* gb = detail::grad_of(node, 3);
    const T* pa = node.parents[1]->value.data();
    const T* pW = node.parents[2]->value.data();
    const int64_t chunks = (N + kRowChunk - 1) / kRowChunk;
    std::vector<T> dW(gW ? chunks * k * n : 0), db(gb ? chunks * n : 0);
    const bool small = thin(k, n);
    const RowMat<T> WT = small ? RowMat<T>(CMat<T>(pW, k, n).transpose()) : RowMat<T>();  // [n, k]
    parallel_for(N, kRowChunk, [&](int64_t lo, int64_t hi) {
      const int64_t r = hi - lo, c = lo / kRowChunk;
      CMat<T> Gc(G + lo * n, r, n);
      if (gx) Mat<T>(gx->data() + lo * n, r, n) += Gc;
      RowMat<T> Gm;
      if (pm) Gm = Gc.array() * CMat<T>(pm + lo * n, r, n).array();
      const T* gbr = pm ? Gm.data() : G + lo * n;
      CMat<T> Gb(gbr, r, n);
      if (ga && small)
        SM<T>::nn(gbr, n, WT.data(), k, ga->data() + lo * k, k, r, n, k, true);
      else if (ga)
        Mat<T>(ga->data() + lo * k, r, k).noalias() += Gb * CMat<T>(pW, k, n).transpose();
      if (gW && small)
        SM<T>::tn(pa + lo * k, k, gbr, n, dW.data() + c * k * n, n, r, k, n);
      else if (gW)
        Mat<T>(dW.data() + c * k * n, k, n).noalias() = CMat<T>(pa + lo * k, r, k).transpose() * Gb;
      if (gb) column_sums(gbr, r, n, db.data() + c * n);
    });
    if (gW) add_partials(dW, chunks, k * n, gW->data());
    if (gb) add_partials(db, chunks, n, gb->data());
  });
}

#define INST(T)                                                                                                      \
  template Var<T> norm_linear(const Var<T>&, bool, const Var<T>&, const Var<T>&, double, const std::vector<Var<T>>&, \
                              const std::vector<Var<T>>&, bool);                                                     \
  template Var<T> linear_residual(const Var<T>&, const Var<T>&, const Var<T>&, const Var<T>&, const Tensor<T>&);
IHLAB_INSTANTIATE_OPS(INST)

}  // namespace ihlab::ops
