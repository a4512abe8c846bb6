#include "models/pseudo_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/eigen.h"

#include "core/error.h"
#include "core/parallel.h"

namespace ihlab {

namespace {
enum Gram { kX = 0, kP = 1, kR = 2, kRT = 3 };            // RT: R transposed (an M block, key first)
enum Readout { kEcho = 0, kO1 = 2, kO2 = 4, kO2O1 = 6 };  // W3 column block

bool is_token(int component) { return component == 0 || component == 2; }

Gram gram_of(const BasisBlock& b) {
  const bool tok_r = is_token(b.row_block), tok_c = is_token(b.col_block);
  IHLAB_CHECK(tok_r == tok_c, "pseudo kernel: entry '{}' pairs a token block with a position block (unsupported)",
              b.name);
  if (tok_r) {
    IHLAB_CHECK(b.kind == BlockKind::I, "pseudo kernel: token block '{}' must carry I", b.name);
    return kX;
  }
  return b.kind == BlockKind::I ? kP : b.kind == BlockKind::MT ? kR : kRT;
}

// G(k, j) of one sequence as a strided view (RT reads R transposed), so inner loops need no
// branch on the Gram's kind.
struct GramView {
  const double* p = nullptr;
  int64_t sk = 0, sj = 0;
  double operator()(int64_t k, int64_t j) const { return p[k * sk + j * sj]; }
  const double* row(int64_t k) const { return p + k * sk; }  // when sj == 1
};
struct Grams {
  const double *X, *P, *R, *Rt;  // Rt = R transposed, stored so both orientations read rows
  int64_t L;
  GramView view(Gram g) const {
    switch (g) {
      case kX: return {X, L, 1};
      case kP: return {P, L, 1};
      case kR: return {R, L, 1};
      case kRT: return {Rt, L, 1};
    }
    return {};
  }
  // The transposed view, Gt(j, k) = G(k, j), also row-contiguous: loops over keys k of one query
  // j (layer 1) read memory in order.
  GramView view_t(Gram g) const {
    switch (g) {
      case kX: return {X, L, 1};  // symmetric
      case kP: return {P, L, 1};
      case kR: return {Rt, L, 1};
      case kRT: return {R, L, 1};
    }
    return {};
  }
};

// a . b over n elements, summed in 8 interleaved running sums (sum i takes elements i, i + 8, ...)
// combined in a fixed tree: the order depends on n only, never on the addresses (the kernel's
// results stay the same on every run), and the 8 sums are independent chains the compiler keeps
// in vector registers. One running sum was a chain of dependent adds, 4 cycles an element: the
// O(L^2) products below were bound by it.
double dot(const double* a, const double* b, int64_t n) {
  double part[8] = {};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int i = 0; i < 8; ++i) part[i] += a[k + i] * b[k + i];
  for (int i = 0; k < n; ++k, ++i) part[i] += a[k] * b[k];
  return ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
}

// Row softmax of s[0..n) into a[0..n) (n >= 1), with Eigen's vectorized exp (the scalar
// std::exp was a third of the kernel's time at L = 129). The exp and the sum run on `scratch`, an
// Eigen-aligned buffer, because on an arbitrary address Eigen peels a few leading elements off to
// the scalar exp: results would then depend on where the row happens to sit in memory, and runs
// would not be bit-identical.
void softmax_row(const double* s, double* a, int64_t n, Eigen::ArrayXd& scratch) {
  if (scratch.size() < n) scratch.resize(n);
  Eigen::Map<const Eigen::ArrayXd> x(s, n);
  auto e = scratch.head(n);
  e = (x - x.maxCoeff()).exp();
  const double z = e.sum();
  for (int64_t k = 0; k < n; ++k) a[k] = e[k] / z;
}

// ---- Layer 1: every row j attends to keys k < j with scores sum_e theta_e G_e(k, j).

// A1: [L, L] out (row j over keys k < j, zeros elsewhere);  t, theta: [K] the table and its values.
void layer1_forward(const Grams& G, const std::vector<BasisBlock>& t, const std::vector<double>& theta,
                    std::vector<double>& A1, Eigen::ArrayXd& scratch) {
  const int64_t L = G.L, K = int64_t(t.size());
  A1.assign(L * L, 0.0);
  std::vector<double> s(L);
  for (int64_t j = 1; j < L; ++j) {
    for (int64_t k = 0; k < j; ++k) s[k] = 0;
    for (int64_t e = 0; e < K; ++e) {
      if (t[e].matrix != 1 || theta[e] == 0) continue;
      const double* row = G.view_t(gram_of(t[e])).row(j);  // G(k, j) for k = 0, 1, ...
      for (int64_t k = 0; k < j; ++k) s[k] += theta[e] * row[k];
    }
    softmax_row(s.data(), &A1[j * L], j, scratch);
  }
}

// Layer-1 softmax backward, row by row; W1 entries collect sum_{j, k<j} ds1[j, k] G(k, j).
// dL/dA1 of row j: the query row (j = Q) gets da; a row k < Q gets ds2[k] u (through the key o1
// parts of layer 2) plus g_o2o1 A2[k] err (through the o2.o1 readout).
//   A1: [L, L];  A2, ds2, u, err, da: [L];  grad: [K] added to.
void layer1_backward(const Grams& G, const std::vector<BasisBlock>& t, const std::vector<double>& A1,
                     const std::vector<double>& A2, const std::vector<double>& ds2, const std::vector<double>& u,
                     const std::vector<double>& err, const std::vector<double>& da, double g_o2o1, double* grad) {
  const int64_t L = G.L, Q = L - 1, K = int64_t(t.size());
  std::vector<double> drow(L), ds1(L);
  for (int64_t j = 1; j < L; ++j) {
    const double* arow = &A1[j * L];
    if (j == Q) {
      for (int64_t k = 0; k < j; ++k) drow[k] = da[k];
    } else {
      const double cu = ds2[j], ce = g_o2o1 * A2[j];
      if (cu == 0 && ce == 0) continue;
      for (int64_t k = 0; k < j; ++k) drow[k] = cu * u[k] + ce * err[k];
    }
    const double d = dot(arow, drow.data(), j);
    for (int64_t k = 0; k < j; ++k) ds1[k] = arow[k] * (drow[k] - d);
    for (int64_t e = 0; e < K; ++e) {
      if (t[e].matrix != 1) continue;
      grad[e] += dot(ds1.data(), G.view_t(gram_of(t[e])).row(j), j);
    }
  }
}

// ---- Layer 2 at the query: per Gram, G[:, Q], G a, and both multiplied by A1 (the four ways a
// key and a query side can each be plain or o1).
struct Layer2Vectors {
  bool used[4] = {false, false, false, false};             // per Gram: read by some W2 entry
  std::vector<double> colQ[4], Ga[4], A1colQ[4], A1Ga[4];  // [L] each, per used Gram

  // The vector of key scores that entry b contributes per unit of its value.
  const std::vector<double>& of(const BasisBlock& b) const {
    const int g = gram_of(b);
    const bool key_o1 = b.row_block >= 2, query_o1 = b.col_block >= 2;
    return key_o1 ? (query_o1 ? A1Ga[g] : A1colQ[g]) : (query_o1 ? Ga[g] : colQ[g]);
  }
};

// A1: [L, L];  a = A1[Q, :] the query's layer-1 attention [L].
void layer2_vectors(const Grams& G, const std::vector<BasisBlock>& t, const std::vector<double>& A1,
                    Layer2Vectors& l2) {
  const int64_t L = G.L, Q = L - 1, K = int64_t(t.size());
  const double* a = &A1[Q * L];
  for (int64_t e = 0; e < K; ++e)
    if (t[e].matrix == 2) l2.used[gram_of(t[e])] = true;
  for (int g = 0; g < 4; ++g) {
    if (!l2.used[g]) continue;
    auto &colQ = l2.colQ[g], &Ga = l2.Ga[g], &A1colQ = l2.A1colQ[g], &A1Ga = l2.A1Ga[g];
    colQ.resize(L), Ga.resize(L), A1colQ.assign(L, 0.0), A1Ga.assign(L, 0.0);
    const GramView V = G.view(Gram(g));
    for (int64_t m = 0; m < L; ++m) {
      colQ[m] = V(m, Q);
      Ga[m] = dot(V.row(m), a, Q);
    }
    for (int64_t k = 1; k < Q; ++k) {
      A1colQ[k] = dot(&A1[k * L], colQ.data(), k);
      A1Ga[k] = dot(&A1[k * L], Ga.data(), k);
    }
  }
}

// The query's layer-2 attention over keys k < Q.  A2: [L] out (0 at Q).
void layer2_forward(const Layer2Vectors& l2, const std::vector<BasisBlock>& t, const std::vector<double>& theta,
                    int64_t L, std::vector<double>& A2, Eigen::ArrayXd& scratch) {
  const int64_t Q = L - 1, K = int64_t(t.size());
  std::vector<double> s2(Q, 0.0);
  for (int64_t e = 0; e < K; ++e) {
    if (t[e].matrix != 2 || theta[e] == 0) continue;
    const auto& v = l2.of(t[e]);
    for (int64_t k = 0; k < Q; ++k) s2[k] += theta[e] * v[k];
  }
  A2.assign(L, 0.0);
  softmax_row(s2.data(), A2.data(), Q, scratch);
}

// Backward of layer 2 from dA2: ds2 (layer-2 score gradient), the W2 entries, and what layer 2
// sends back to A1: u (rows k < Q get ds2[k] * u, key o1 parts) and da (the query row, query o1
// parts; added to).
//   A1: [L, L];  A2: [L];  dA2: [Q];  ds2, u: [L] out (zero at k >= Q);  da: [L];  grad: [K].
void layer2_backward(const Grams& G, const std::vector<BasisBlock>& t, const std::vector<double>& theta,
                     const Layer2Vectors& l2, const std::vector<double>& A1, const std::vector<double>& A2,
                     const std::vector<double>& dA2, std::vector<double>& ds2, std::vector<double>& u,
                     std::vector<double>& da, double* grad) {
  const int64_t L = G.L, Q = L - 1, K = int64_t(t.size());
  const double a_da = dot(A2.data(), dA2.data(), Q);
  ds2.assign(L, 0.0);
  for (int64_t k = 0; k < Q; ++k) ds2[k] = A2[k] * (dA2[k] - a_da);
  u.assign(L, 0.0);
  std::vector<double> A1T_ds2(L, 0.0);
  for (int64_t k = 1; k < Q; ++k)
    for (int64_t m = 0; m < k; ++m) A1T_ds2[m] += A1[k * L + m] * ds2[k];
  for (int64_t e = 0; e < K; ++e) {
    if (t[e].matrix != 2) continue;
    grad[e] += dot(ds2.data(), l2.of(t[e]).data(), Q);
    if (theta[e] == 0) continue;
    const int g = gram_of(t[e]);
    const bool key_o1 = t[e].row_block >= 2, query_o1 = t[e].col_block >= 2;
    if (key_o1) {
      const auto& q = query_o1 ? l2.Ga[g] : l2.colQ[g];
      for (int64_t m = 0; m < L; ++m) u[m] += theta[e] * q[m];
    }
    if (query_o1) {  // d/da of G a (through G^T) with the key side plain (ds2) or o1 (A1^T ds2)
      const auto& back = key_o1 ? A1T_ds2 : ds2;
      const GramView Vt = G.view_t(Gram(g));
      for (int64_t n = 0; n < Q; ++n) da[n] += theta[e] * dot(Vt.row(n), back.data(), Q);  // row n: G(k, n)
    }
  }
}

// ---- Readout: yhat = sum_m c_m x_m with c = sum of the W3 entries' column vectors.

// The column vectors a W3 entry reads: echo (the query slot), o1 (a), o2 (A2), o2.o1 (A1^T A2).
struct ReadoutColumns {
  const double *a, *A2, *w;  // [L] each
  int64_t Q;
  double operator()(const BasisBlock& b, int64_t m) const {
    switch (b.col_block) {
      case kEcho: return m == Q ? 1.0 : 0.0;
      case kO1: return a[m];
      case kO2: return A2[m];
      case kO2O1: return w[m];
    }
    fail("pseudo kernel: W3 entry '{}' is on column block {} (only token-type blocks 0, 2, 4, 6)", b.name, b.col_block);
  }
};

// What the readout keeps for backward.
struct ReadoutState {
  std::vector<double> w;                  // [L] A1^T A2: o2 of o1
  std::vector<double> err;                // [L] X c - Y = d loss / d c
  double g_o1 = 0, g_o2 = 0, g_o2o1 = 0;  // sums of the W3 entries on the o1, o2, o2.o1 columns
};

// Returns the loss 1/2 (c^T X c - 2 c . Y + y . y).  A1: [L, L];  A2, Y: [L];  yy = y . y.
double readout_forward(const Grams& G, const double* Y, double yy, const std::vector<BasisBlock>& t,
                       const std::vector<double>& theta, const std::vector<double>& A1, const std::vector<double>& A2,
                       ReadoutState& ro) {
  const int64_t L = G.L, Q = L - 1, K = int64_t(t.size());
  ro.w.assign(L, 0.0);
  for (int64_t k = 0; k < Q; ++k)
    for (int64_t m = 0; m < k; ++m) ro.w[m] += A2[k] * A1[k * L + m];
  const ReadoutColumns col{&A1[Q * L], A2.data(), ro.w.data(), Q};
  std::vector<double> c(L, 0.0);
  for (int64_t e = 0; e < K; ++e) {
    if (t[e].matrix != 3) continue;
    for (int64_t m = 0; m < L; ++m) c[m] += theta[e] * col(t[e], m);
    if (t[e].col_block == kO1) ro.g_o1 += theta[e];
    if (t[e].col_block == kO2) ro.g_o2 += theta[e];
    if (t[e].col_block == kO2O1) ro.g_o2o1 += theta[e];
  }
  ro.err.resize(L);
  double cXc = 0, cY = 0;
  for (int64_t m = 0; m < L; ++m) {
    const double v = dot(&G.X[m * L], c.data(), L);
    cXc += c[m] * v, cY += c[m] * Y[m];
    ro.err[m] = v - Y[m];
  }
  return 0.5 * (cXc - 2 * cY + yy);
}

// Backward of the readout: the W3 entries (grad [K], added to), dL/dA2 [Q] and dL/da [L] (out).
void readout_backward(const Grams& G, const std::vector<BasisBlock>& t, const std::vector<double>& A1,
                      const std::vector<double>& A2, const ReadoutState& ro, std::vector<double>& dA2,
                      std::vector<double>& da, double* grad) {
  const int64_t L = G.L, Q = L - 1, K = int64_t(t.size());
  const std::vector<double>& err = ro.err;
  const ReadoutColumns col{&A1[Q * L], A2.data(), ro.w.data(), Q};
  for (int64_t e = 0; e < K; ++e) {
    if (t[e].matrix != 3) continue;
    double v = 0;
    for (int64_t m = 0; m < L; ++m) v += err[m] * col(t[e], m);
    grad[e] += v;
  }
  std::vector<double> A1err(L, 0.0);  // (A1 err)[k]
  for (int64_t k = 1; k < Q; ++k) A1err[k] = dot(&A1[k * L], err.data(), k);
  dA2.resize(Q);
  da.assign(L, 0.0);
  for (int64_t k = 0; k < Q; ++k) dA2[k] = ro.g_o2 * err[k] + ro.g_o2o1 * A1err[k];
  for (int64_t m = 0; m < L; ++m) da[m] = ro.g_o1 * err[m];
}

// One sequence: forward (and backward if grad). A1 [L, L], A2 [L] are outputs (attention).
double sequence_loss(const Grams& G, const double* Y, double yy, const std::vector<BasisBlock>& t,
                     const std::vector<double>& theta, double* grad, std::vector<double>& A1, std::vector<double>& A2) {
  Eigen::ArrayXd scratch(G.L);
  layer1_forward(G, t, theta, A1, scratch);
  Layer2Vectors l2;
  layer2_vectors(G, t, A1, l2);
  layer2_forward(l2, t, theta, G.L, A2, scratch);
  ReadoutState ro;
  const double loss = readout_forward(G, Y, yy, t, theta, A1, A2, ro);
  if (!grad) return loss;

  std::vector<double> dA2, da, ds2, u;
  readout_backward(G, t, A1, A2, ro, dA2, da, grad);
  layer2_backward(G, t, theta, l2, A1, A2, dA2, ds2, u, da, grad);
  layer1_backward(G, t, A1, A2, ds2, u, ro.err, da, ro.g_o2o1, grad);
  return loss;
}

Grams sequence_grams(const PseudoGrams& g, int64_t s) {
  const int64_t LL = g.length * g.length;
  return {g.X.data() + s * LL, g.P.empty() ? nullptr : g.P.data() + s * LL, g.R.empty() ? nullptr : g.R.data() + s * LL,
          g.Rt.empty() ? nullptr : g.Rt.data() + s * LL, g.length};
}
}  // namespace

PseudoKernelPlan make_pseudo_plan(const std::vector<BasisBlock>& table) {
  PseudoKernelPlan p;
  p.table = table;
  for (auto& b : table) {
    if (b.matrix == 3) {
      IHLAB_CHECK(b.kind == BlockKind::I && (b.col_block % 2 == 0),
                  "pseudo kernel: W3 entry '{}' must be I on a token-type column block", b.name);
      continue;
    }
    Gram g = gram_of(b);
    if (b.matrix == 1)
      IHLAB_CHECK(b.row_block < 2 && b.col_block < 2, "pseudo kernel: W1 entry '{}' is outside W1's 2 x 2 blocks",
                  b.name);
    p.need_P |= g == kP;
    p.need_R |= g == kR || g == kRT;
  }
  return p;
}

uint64_t batch_content_hash(const Batch& b) {
  // FNV-1a over 64-bit words: every target value (fresh for every sequence, so two different
  // batches never agree on them) and about 4096 evenly spaced feature entries. Hashing every
  // feature byte would cost as much as the reduced model's loss itself.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](uint64_t w) { h = (h ^ w) * 1099511628211ull; };
  mix(uint64_t(b.size)), mix(uint64_t(b.length)), mix(uint64_t(b.feature_dim));
  for (double v : b.values) {
    uint64_t w;
    std::memcpy(&w, &v, sizeof w);
    mix(w);
  }
  const size_t n = b.features.size(), stride = std::max<size_t>(1, n / 4096);
  for (size_t i = 0; i < n; i += stride) {
    uint32_t w;
    std::memcpy(&w, &b.features[i], sizeof w);
    mix(w);
  }
  return h;
}

PseudoGrams pseudo_grams(const Batch& b, const std::vector<double>& M, int64_t D, const PseudoKernelPlan& plan) {
  IHLAB_CHECK(b.feature_dim == 2 * D && b.value_dim == D,
              "pseudo kernel: batch has feature_dim {} and value_dim {} (expected 2D = {} and D = {})", b.feature_dim,
              b.value_dim, 2 * D, D);
  const int64_t B = b.size, L = b.length, F = 2 * D, LL = L * L;
  PseudoGrams g;
  g.size = B, g.length = L;
  g.hash = batch_content_hash(b);
  g.X.resize(B * LL);
  if (plan.need_P) g.P.resize(B * LL);
  if (plan.need_R) g.R.resize(B * LL), g.Rt.resize(B * LL);
  g.Y.resize(B * L);
  g.yy.resize(B);
  using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const Mat> Mm(M.data(), D, D);
  parallel_for(B, 4, [&](int64_t lo, int64_t hi) {
    Mat tok(L, D), pos(L, D);
    for (int64_t s = lo; s < hi; ++s) {
      const float* f = &b.features[size_t(s * L * F)];
      for (int64_t i = 0; i < L; ++i)
        for (int64_t d = 0; d < D; ++d) tok(i, d) = f[i * F + d], pos(i, d) = f[i * F + D + d];
      Eigen::Map<const Eigen::VectorXd> y(&b.values[size_t(s * D)], D);
      Eigen::Map<Mat>(&g.X[s * LL], L, L).noalias() = tok * tok.transpose();
      if (plan.need_P) Eigen::Map<Mat>(&g.P[s * LL], L, L).noalias() = pos * pos.transpose();
      if (plan.need_R) {  // R[k, j] = (M q_k) . q_j
        Mat mq = pos * Mm.transpose();
        Eigen::Map<Mat>(&g.R[s * LL], L, L).noalias() = mq * pos.transpose();
        Eigen::Map<Mat>(&g.Rt[s * LL], L, L) = Eigen::Map<Mat>(&g.R[s * LL], L, L).transpose();
      }
      // Plain loops in a fixed order (a GEMV on an unaligned Map would round by address).
      double yy = 0;
      for (int64_t d = 0; d < D; ++d) yy += y[d] * y[d];
      for (int64_t i = 0; i < L; ++i) {
        double v = 0;
        for (int64_t d = 0; d < D; ++d) v += tok(i, d) * y[d];
        g.Y[s * L + i] = v;
      }
      g.yy[s] = yy;
    }
  });
  return g;
}

double pseudo_loss(const PseudoGrams& g, const PseudoKernelPlan& plan, const std::vector<double>& theta,
                   std::vector<double>* grad) {
  const int64_t B = g.size, K = int64_t(plan.table.size());
  IHLAB_CHECK(int64_t(theta.size()) == K, "pseudo kernel: {} values for {} entries", theta.size(), K);
  std::vector<double> loss(B), gr(grad ? B * K : 0, 0.0);
  parallel_for(B, 4, [&](int64_t lo, int64_t hi) {
    std::vector<double> A1, A2;
    for (int64_t s = lo; s < hi; ++s)
      loss[s] = sequence_loss(sequence_grams(g, s), &g.Y[s * g.length], g.yy[s], plan.table, theta,
                              grad ? &gr[s * K] : nullptr, A1, A2);
  });
  double total = 0;
  for (int64_t s = 0; s < B; ++s) total += loss[s];
  if (grad) {
    grad->assign(K, 0.0);
    for (int64_t s = 0; s < B; ++s)
      for (int64_t e = 0; e < K; ++e) (*grad)[e] += gr[s * K + e];
    for (auto& v : *grad) v /= double(B);
  }
  return B ? total / double(B) : 0.0;
}

void pseudo_attention(const PseudoGrams& g, const PseudoKernelPlan& plan, const std::vector<double>& theta, int64_t s,
                      std::vector<double>& A1, std::vector<double>& A2) {
  sequence_loss(sequence_grams(g, s), &g.Y[s * g.length], g.yy[s], plan.table, theta, nullptr, A1, A2);
}

}  // namespace ihlab
