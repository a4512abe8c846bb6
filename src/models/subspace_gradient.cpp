#include "models/subspace_gradient.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/autograd.h"
#include "core/eigen.h"
#include "core/error.h"
#include "models/disentangled.h"
#include "models/pseudo_params.h"

namespace ihlab {

namespace {

// One batch's gradient (W1, W2, W3 concatenated, in float) and its loss.
struct BatchGradient {
  std::vector<float> g;
  double norm_sq = 0;  // ||grad||^2
  double loss = 0;
};

BatchGradient batch_gradient(DisentangledModel<double>& m, const Batch& b) {
  m.params().zero_grad();
  Var<double> loss = m.loss(b);
  backward(loss);
  BatchGradient out;
  out.loss = loss.item();
  for (const char* name : {"W1", "W2", "W3"}) {
    const Tensor<double>& src = m.params().find(name)->var.node()->grad;
    for (int64_t i = 0; i < src.numel(); ++i) {
      out.g.push_back(float(src.data()[i]));
      out.norm_sq += src.data()[i] * src.data()[i];
    }
  }
  return out;
}

// A batch gradient split on one table's span: in-span coefficients and the off-span remainder.
struct SplitGradient {
  std::vector<double> coef;
  std::vector<float> off;
};

SplitGradient split(const BatchGradient& bg, const std::vector<double>& M, int64_t D,
                    const std::vector<BasisBlock>& table) {
  DisentangledWeights g;
  g.D = D;
  const size_t n1 = size_t(4 * D * D), n2 = size_t(16 * D * D);
  g.W1.assign(bg.g.begin(), bg.g.begin() + n1);
  g.W2.assign(bg.g.begin() + n1, bg.g.begin() + n1 + n2);
  g.W3.assign(bg.g.begin() + n1 + n2, bg.g.end());
  PseudoProjection proj = project_pseudo(g, M, table);
  DisentangledWeights in = build_pseudo_weights(proj.coef, M, D, table);
  SplitGradient s;
  s.coef = proj.coef;
  s.off.reserve(bg.g.size());
  for (int k = 1; k <= 3; ++k) {
    const auto &G = g.matrix(k), &I = in.matrix(k);
    for (size_t i = 0; i < G.size(); ++i) s.off.push_back(float(G[i] - I[i]));
  }
  return s;
}

template <typename U>
double dot(const std::vector<float>& a, const std::vector<U>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * double(b[i]);
  return s;
}

// U-statistic over pairs from the sum S and the squared norms q_k: (||S||^2 - sum q_k) / (K (K - 1)).
double pair_mean(double sum_sq, double q_total, int K) { return (sum_sq - q_total) / (double(K) * (K - 1)); }

double share_of(double off, double in) {
  const double total = off + in;
  return total > 0 && off > 0 ? std::sqrt(off / total) : 0.0;
}

const char* component_name(int matrix, int c) {
  static const char* w12[] = {"tok", "pos", "o1.tok", "o1.pos"};
  static const char* w3[] = {"tok", "pos", "o1.tok", "o1.pos", "o2.tok", "o2.pos", "o2.o1.tok", "o2.o1.pos"};
  return matrix == 3 ? w3[c] : w12[c];
}

// The structured matrices of a D x D block: I, M, M^T, M^2, M^T^2, row-major.
std::vector<std::vector<double>> structured_blocks(const std::vector<double>& M, int64_t D) {
  std::vector<double> I(D * D, 0.0), MT(D * D), M2(D * D, 0.0), MT2(D * D);
  for (int64_t a = 0; a < D; ++a) {
    I[a * D + a] = 1;
    for (int64_t b = 0; b < D; ++b) MT[a * D + b] = M[b * D + a];
  }
  for (int64_t a = 0; a < D; ++a)
    for (int64_t k = 0; k < D; ++k)
      for (int64_t b = 0; b < D; ++b) M2[a * D + b] += M[a * D + k] * M[k * D + b];
  for (int64_t a = 0; a < D; ++a)
    for (int64_t b = 0; b < D; ++b) MT2[a * D + b] = M2[b * D + a];
  return {I, M, MT, M2, MT2};
}

// Per block: the U-statistics of the off-span part and of its structured projection, and the
// projection's coefficients for the mean over batches. `offset`: the block's first entry in the
// concatenated vector, `stride`: the matrix's row length.
OffSpanBlock analyse_block(const std::vector<SplitGradient>& g, const std::vector<double>& S,
                           const std::vector<std::vector<double>>& B, int64_t D, size_t offset, int64_t stride) {
  const int K = int(g.size());
  const size_t J = B.size();
  auto at = [&](int64_t a, int64_t b) { return offset + size_t(a * stride + b); };
  // Gram matrix of the structured set and its inverse (it is well conditioned for a Haar M).
  std::vector<double> G(J * J);
  for (size_t i = 0; i < J; ++i)
    for (size_t j = 0; j < J; ++j) {
      double s = 0;
      for (int64_t e = 0; e < D * D; ++e) s += B[i][e] * B[j][e];
      G[i * J + j] = s;
    }
  Eigen::MatrixXd Gm = Eigen::Map<Eigen::MatrixXd>(G.data(), J, J);
  Eigen::LDLT<Eigen::MatrixXd> solve(Gm);
  auto rhs_of = [&](auto value) {
    Eigen::VectorXd r(J);
    for (size_t j = 0; j < J; ++j) {
      double s = 0;
      for (int64_t a = 0; a < D; ++a)
        for (int64_t b = 0; b < D; ++b) s += B[j][a * D + b] * value(at(a, b));
      r(j) = s;
    }
    return r;
  };
  // ||P x||^2 = r^T G^-1 r for the projection P on the structured span, r = <B_j, x>.
  OffSpanBlock o;
  double q_off = 0, q_struct = 0, s_off = 0;
  for (int64_t a = 0; a < D; ++a)
    for (int64_t b = 0; b < D; ++b) s_off += S[at(a, b)] * S[at(a, b)];
  Eigen::VectorXd rS = rhs_of([&](size_t i) { return S[i]; });
  const Eigen::VectorXd GrS = solve.solve(rS);
  for (const auto& x : g) {
    for (int64_t a = 0; a < D; ++a)
      for (int64_t b = 0; b < D; ++b) q_off += double(x.off[at(a, b)]) * x.off[at(a, b)];
    Eigen::VectorXd r = rhs_of([&](size_t i) { return double(x.off[i]); });
    o.struct_q.push_back(r.dot(solve.solve(r)));
    o.struct_c.push_back(r.dot(GrS));
    q_struct += o.struct_q.back();
  }
  Eigen::VectorXd coef = GrS / double(K);
  o.off_sq = pair_mean(s_off, q_off, K);
  o.struct_S = rS.dot(GrS);
  o.structured_sq = pair_mean(o.struct_S, q_struct, K);
  o.coef.assign(coef.data(), coef.data() + J);
  return o;
}

}  // namespace

namespace {

SubspaceGradientEstimate estimate_for_table(const std::vector<BatchGradient>& bg, const std::vector<double>& M,
                                            int64_t D, const NamedBasisTable& t) {
  const int K = int(bg.size());
  std::vector<SplitGradient> g;
  for (const auto& b : bg) g.push_back(split(b, M, D, *t.table));

  // Off-span: S = sum_k x_k, q_k = ||x_k||^2, c_k = <x_k, S> (the jackknife's ingredient).
  const size_t n = g[0].off.size();
  std::vector<double> S(n, 0.0);
  for (const auto& s : g)
    for (size_t i = 0; i < n; ++i) S[i] += s.off[i];
  const size_t bounds[4] = {0, size_t(4 * D * D), size_t(20 * D * D), n};  // W1 | W2 | W3
  SubspaceGradientEstimate e;
  e.table = t.name;
  for (int mat = 0; mat < 3; ++mat) {
    double s_sq = 0, qm = 0;
    for (size_t i = bounds[mat]; i < bounds[mat + 1]; ++i) s_sq += S[i] * S[i];
    for (const auto& s : g)
      for (size_t i = bounds[mat]; i < bounds[mat + 1]; ++i) qm += double(s.off[i]) * s.off[i];
    e.off_sq_by_matrix[mat] = pair_mean(s_sq, qm, K);
  }
  std::vector<double> q(K), c(K);
  double q_total = 0, S_sq = 0;
  for (size_t i = 0; i < n; ++i) S_sq += S[i] * S[i];
  for (int k = 0; k < K; ++k) {
    q[k] = dot(g[k].off, g[k].off);
    c[k] = dot(g[k].off, S);
    q_total += q[k];
  }

  // In-span: the same statistic in the Gram metric of the basis.
  const size_t P = g[0].coef.size();
  const std::vector<double> gram = pseudo_basis_gram(M, D, *t.table);
  auto inner = [&](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t i = 0; i < P; ++i)
      for (size_t j = 0; j < P; ++j) s += a[i] * gram[i * P + j] * b[j];
    return s;
  };
  std::vector<double> C(P, 0.0);
  for (const auto& s : g)
    for (size_t i = 0; i < P; ++i) C[i] += s.coef[i];
  std::vector<double> qi(K), ci(K);
  double qi_total = 0;
  for (int k = 0; k < K; ++k) qi[k] = inner(g[k].coef, g[k].coef), ci[k] = inner(g[k].coef, C), qi_total += qi[k];
  const double C_sq = inner(C, C);

  e.D = D, e.batches = K;
  e.off_sq = pair_mean(S_sq, q_total, K);
  e.in_sq = pair_mean(C_sq, qi_total, K);
  e.share = share_of(e.off_sq, e.in_sq);

  // Delete-one jackknife of the squared share: leaving batch k out, ||S - x_k||^2 = ||S||^2 -
  // 2 c_k + q_k over K - 1 batches.
  std::vector<double> r(K);
  double r_mean = 0;
  for (int k = 0; k < K; ++k) {
    const double off = pair_mean(S_sq - 2 * c[k] + q[k], q_total - q[k], K - 1);
    const double in = pair_mean(C_sq - 2 * ci[k] + qi[k], qi_total - qi[k], K - 1);
    r[k] = off / (off + in);
    r_mean += r[k] / K;
  }
  double var = 0;
  for (double x : r) var += (x - r_mean) * (x - r_mean);
  var *= double(K - 1) / K;
  const double r_hat = e.off_sq / (e.off_sq + e.in_sq), half = 1.96 * std::sqrt(var);
  e.share_lo = std::sqrt(std::max(0.0, r_hat - half));
  e.share_hi = std::sqrt(std::max(0.0, r_hat + half));

  const std::vector<std::vector<double>> structured = structured_blocks(M, D);
  for (int mat = 1; mat <= 3; ++mat) {
    const int rows = mat == 1 ? 2 : mat == 2 ? 4 : 1, cols = mat == 1 ? 2 : mat == 2 ? 4 : 8;
    for (int r0 = 0; r0 < rows; ++r0)
      for (int c0 = 0; c0 < cols; ++c0) {
        if (mat == 3 && c0 % 2 == 1) continue;  // W3's positional columns are masked: no gradient
        const size_t offset = bounds[mat - 1] + size_t(r0 * D * cols * D + c0 * D);
        OffSpanBlock blk = analyse_block(g, S, structured, D, offset, cols * D);
        blk.matrix = mat, blk.row = r0, blk.col = c0;
        blk.name = mat == 3 ? fmt::format("W3[{}]", component_name(3, c0))
                            : fmt::format("W{}[{}, {}]", mat, component_name(mat, r0), component_name(mat, c0));
        e.blocks.push_back(blk);
      }
  }
  std::stable_sort(e.blocks.begin(), e.blocks.end(),
                   [](const OffSpanBlock& a, const OffSpanBlock& b) { return a.off_sq > b.off_sq; });

  // The structured share: off-span energy along I, M, M^T, M^2, M^T^2 of each block, against
  // ||E grad_in||^2 plus itself. Each block's projection has 5 dimensions, so its U-statistic
  // carries far less sampling noise than the full off-span one (28 D^2 dimensions).
  double struct_S = 0, struct_Q = 0;
  std::vector<double> sq(K, 0.0), sc(K, 0.0);
  for (const OffSpanBlock& blk : e.blocks) {
    struct_S += blk.struct_S;
    for (int k = 0; k < K; ++k) sq[k] += blk.struct_q[k], sc[k] += blk.struct_c[k], struct_Q += blk.struct_q[k];
  }
  e.structured_sq = pair_mean(struct_S, struct_Q, K);
  auto struct_ratio = [](double st, double in) { return st / (std::max(0.0, st) + in); };
  const double rs_hat = struct_ratio(e.structured_sq, e.in_sq);
  e.structured_share = std::sqrt(std::max(0.0, rs_hat));
  std::vector<double> rs(K);
  double rs_mean = 0;
  for (int k = 0; k < K; ++k) {
    const double st = pair_mean(struct_S - 2 * sc[k] + sq[k], struct_Q - sq[k], K - 1);
    const double in = pair_mean(C_sq - 2 * ci[k] + qi[k], qi_total - qi[k], K - 1);
    rs[k] = struct_ratio(st, in);
    rs_mean += rs[k] / K;
  }
  double vs = 0;
  for (double x : rs) vs += (x - rs_mean) * (x - rs_mean);
  vs *= double(K - 1) / K;
  e.structured_share_lo = std::sqrt(std::max(0.0, rs_hat - 1.96 * std::sqrt(vs)));
  e.structured_share_hi = std::sqrt(std::max(0.0, rs_hat + 1.96 * std::sqrt(vs)));

  std::vector<double> batch_share(K);
  for (int k = 0; k < K; ++k) {
    batch_share[k] = bg[k].norm_sq > 0 ? std::sqrt(q[k] / bg[k].norm_sq) : 0.0;
    e.loss += bg[k].loss / K;
  }
  std::nth_element(batch_share.begin(), batch_share.begin() + K / 2, batch_share.end());
  e.batch_share = batch_share[K / 2];
  e.mean_coef.resize(P);
  for (size_t i = 0; i < P; ++i) e.mean_coef[i] = C[i] / K;
  return e;
}

}  // namespace

std::vector<SubspaceGradientEstimate> estimate_subspace_gradient(const ItemLabelTask& task,
                                                                 const DisentangledWeights& W,
                                                                 const std::vector<NamedBasisTable>& tables,
                                                                 const SubspaceGradientOptions& o) {
  IHLAB_CHECK(o.batches >= 3, "subspace gradient: batches = {} (need >= 3 for the jackknife)", o.batches);
  IHLAB_CHECK(o.batch_size >= 1, "subspace gradient: batch_size = {} (need >= 1)", o.batch_size);
  DisentangledModel<double> m(disentangled_config_from_task(task, "disentangled"));
  const int64_t D = m.config().dim;
  IHLAB_CHECK(W.D == D, "subspace gradient: weights for D = {}, task has D = {}", W.D, D);
  m.set_weights(W);
  m.params().set_trainable({"all"});
  std::vector<BatchGradient> bg;
  for (int k = 0; k < o.batches; ++k)
    bg.push_back(batch_gradient(m, task.sample(o.batch_size, o.seed, StreamKind::Data, o.first_index + uint64_t(k))));
  std::vector<SubspaceGradientEstimate> out;
  for (const NamedBasisTable& t : tables) {
    out.push_back(estimate_for_table(bg, task.rotation(), D, t));
    out.back().batch_size = o.batch_size;
  }
  return out;
}

nlohmann::json SubspaceGradientEstimate::to_json() const {
  return {{"table", table},
          {"D", D},
          {"batches", batches},
          {"batch_size", batch_size},
          {"loss", loss},
          {"off_sq", off_sq},
          {"in_sq", in_sq},
          {"share", share},
          {"share_lo", share_lo},
          {"share_hi", share_hi},
          {"batch_share", batch_share},
          {"structured_sq", structured_sq},
          {"structured_share", structured_share},
          {"structured_share_lo", structured_share_lo},
          {"structured_share_hi", structured_share_hi},
          {"off_sq_W1", off_sq_by_matrix[0]},
          {"off_sq_W2", off_sq_by_matrix[1]},
          {"off_sq_W3", off_sq_by_matrix[2]},
          {"mean_coef", mean_coef},
          {"blocks", [&] {
             nlohmann::json j = nlohmann::json::array();
             for (const auto& b : blocks) j.push_back(b.to_json());
             return j;
           }()}};
}

nlohmann::json OffSpanBlock::to_json() const {
  return {{"block", name}, {"off_sq", off_sq}, {"structured_sq", structured_sq}, {"coef_I_M_MT_M2_MT2", coef}};
}

}  // namespace ihlab
