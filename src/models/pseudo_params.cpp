#include "models/pseudo_params.h"

#include <cmath>

#include "core/eigen.h"

#include "core/error.h"

namespace ihlab {

namespace {
// Component indices of the blocks (see the header).
enum W12 { kTok = 0, kPos = 1, kO1Tok = 2, kO1Pos = 3 };
enum W3Col { kC_Tok = 0, kC_O1Tok = 2, kC_O2Tok = 4, kC_O2O1Tok = 6 };

// Entry (a, b) of the D x D block B: I, M or M^T.
inline double block_entry(BlockKind k, const std::vector<double>& M, int64_t D, int64_t a, int64_t b) {
  switch (k) {
    case BlockKind::I: return a == b ? 1.0 : 0.0;
    case BlockKind::M: return M[a * D + b];
    case BlockKind::MT: return M[b * D + a];
  }
  return 0;
}
}  // namespace

const char* block_kind_name(BlockKind k) { return k == BlockKind::I ? "I" : k == BlockKind::M ? "M" : "M^T"; }

const std::vector<BasisBlock>& pseudo_parameter_table() {
  static const std::vector<BasisBlock> t = [] {
    std::vector<BasisBlock> v;
    v.push_back({"alpha_1", 1, kTok, kTok, BlockKind::I, "W1 (key tok, query tok): token similarity"});
    v.push_back({"alpha_2", 1, kPos, kPos, BlockKind::I, "W1 (key pos, query pos): same position"});
    v.push_back({"alpha_3", 1, kPos, kPos, BlockKind::MT, "W1 (key pos, query pos) M^T: a label attends to its item"});
    const int tok_blocks[4][2] = {{kTok, kTok}, {kO1Tok, kTok}, {kTok, kO1Tok}, {kO1Tok, kO1Tok}};
    const char* tok_meaning[4] = {"W2 (key tok, query tok)", "W2 (key o1.tok, query tok): induction match",
                                  "W2 (key tok, query o1.tok)", "W2 (key o1.tok, query o1.tok)"};
    for (int i = 0; i < 4; ++i)
      v.push_back(
          {"beta_" + std::to_string(i + 1), 2, tok_blocks[i][0], tok_blocks[i][1], BlockKind::I, tok_meaning[i]});
    const int pos_blocks[4][2] = {{kPos, kPos}, {kO1Pos, kPos}, {kPos, kO1Pos}, {kO1Pos, kO1Pos}};
    const char* pos_names[4] = {"(key pos, query pos)", "(key o1.pos, query pos)", "(key pos, query o1.pos)",
                                "(key o1.pos, query o1.pos)"};
    for (int i = 0; i < 4; ++i)
      for (int m = 0; m < 2; ++m)
        v.push_back({"beta_" + std::to_string(5 + 2 * i + m), 2, pos_blocks[i][0], pos_blocks[i][1],
                     m ? BlockKind::MT : BlockKind::I, std::string("W2 ") + pos_names[i] + (m ? " M^T" : " I")});
    const int cols[4] = {kC_Tok, kC_O1Tok, kC_O2Tok, kC_O2O1Tok};
    const char* col_meaning[4] = {"W3 tok: echo the query", "W3 o1.tok", "W3 o2.tok: output the retrieved label",
                                  "W3 o2.o1.tok"};
    for (int i = 0; i < 4; ++i)
      v.push_back({"gamma_" + std::to_string(i + 1), 3, 0, cols[i], BlockKind::I, col_meaning[i]});
    return v;
  }();
  return t;
}

const std::vector<BasisBlock>& closed_pseudo_parameter_table() {
  static const std::vector<BasisBlock> t = [] {
    std::vector<BasisBlock> v = pseudo_parameter_table();
    const std::vector<BasisBlock> base = v;
    for (const BasisBlock& b : base)
      if (b.kind == BlockKind::MT)
        v.push_back({b.name + "M", b.matrix, b.row_block, b.col_block, BlockKind::M,
                     b.meaning.substr(0, b.meaning.find(')') + 1) + " M: the transpose partner of " + b.name});
    return v;
  }();
  return t;
}

int pseudo_parameter_index(const std::string& name) {
  const auto& t = pseudo_parameter_table();
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i].name == name) return int(i);
  fail("pseudo-parameters: unknown name '{}' (alpha_1..3, beta_1..12, gamma_1..4)", name);
}

std::vector<int> growing_pseudo_parameters() {
  return {pseudo_parameter_index("alpha_3"), pseudo_parameter_index("beta_2"), pseudo_parameter_index("gamma_3")};
}

DisentangledWeights build_pseudo_weights(const std::vector<double>& theta, const std::vector<double>& M, int64_t D,
                                         const std::vector<BasisBlock>& table) {
  IHLAB_CHECK(theta.size() == table.size(), "pseudo-parameters: {} values for a table of {}", theta.size(),
              table.size());
  DisentangledWeights w;
  w.D = D;
  for (int m = 1; m <= 3; ++m) w.matrix(m).assign(size_t(w.rows(m) * w.cols(m)), 0.0);
  for (size_t k = 0; k < table.size(); ++k) {
    const BasisBlock& b = table[k];
    auto& W = w.matrix(b.matrix);
    const int64_t cols = w.cols(b.matrix);
    for (int64_t a = 0; a < D; ++a)
      for (int64_t c = 0; c < D; ++c)
        W[(b.row_block * D + a) * cols + b.col_block * D + c] += theta[k] * block_entry(b.kind, M, D, a, c);
  }
  return w;
}

std::vector<double> pseudo_basis_gram(const std::vector<double>& M, int64_t D, const std::vector<BasisBlock>& table) {
  const size_t K = table.size();
  std::vector<double> g(K * K, 0.0);
  for (size_t k = 0; k < K; ++k)
    for (size_t l = 0; l < K; ++l) {
      const BasisBlock &a = table[k], &b = table[l];
      if (a.matrix != b.matrix || a.row_block != b.row_block || a.col_block != b.col_block) continue;
      double s = 0;
      for (int64_t i = 0; i < D; ++i)
        for (int64_t j = 0; j < D; ++j) s += block_entry(a.kind, M, D, i, j) * block_entry(b.kind, M, D, i, j);
      g[k * K + l] = s;
    }
  return g;
}

PseudoProjection project_pseudo(const DisentangledWeights& w, const std::vector<double>& M,
                                const std::vector<BasisBlock>& table) {
  const int64_t D = w.D;
  const size_t K = table.size();
  // Normal equations G theta = <B, W>; G is block diagonal (entries on different blocks are
  // orthogonal) and positive definite as long as no two entries of one block coincide.
  Eigen::MatrixXd G(K, K);
  std::vector<double> g = pseudo_basis_gram(M, D, table);
  for (size_t k = 0; k < K; ++k)
    for (size_t l = 0; l < K; ++l) G(k, l) = g[k * K + l];
  Eigen::VectorXd rhs(K);
  for (size_t k = 0; k < K; ++k) {
    const BasisBlock& b = table[k];
    const auto& W = w.matrix(b.matrix);
    const int64_t cols = w.cols(b.matrix);
    double s = 0;
    for (int64_t a = 0; a < D; ++a)
      for (int64_t c = 0; c < D; ++c) {
        double e = block_entry(b.kind, M, D, a, c);
        if (e != 0) s += e * W[(b.row_block * D + a) * cols + b.col_block * D + c];
      }
    rhs(k) = s;
  }
  Eigen::VectorXd theta = G.ldlt().solve(rhs);
  PseudoProjection p;
  p.coef.assign(theta.data(), theta.data() + K);
  DisentangledWeights fit = build_pseudo_weights(p.coef, M, D, table);
  double norm_m[4] = {0, 0, 0, 0};
  for (int m = 1; m <= 3; ++m) {
    double r = 0, n = 0;
    const auto &W = w.matrix(m), &F = fit.matrix(m);
    for (size_t i = 0; i < W.size(); ++i) r += (W[i] - F[i]) * (W[i] - F[i]), n += W[i] * W[i];
    p.residual_by_matrix[m - 1] = std::sqrt(r);
    p.residual += r;
    p.norm += n;
    norm_m[m] = std::sqrt(n);
  }
  p.residual = std::sqrt(p.residual);
  p.norm = std::sqrt(p.norm);
  p.share.resize(K);
  for (size_t k = 0; k < K; ++k) {
    double bk = std::sqrt(g[k * K + k]);  // ||B_k||_F
    double nm = norm_m[table[k].matrix];
    p.share[k] = nm > 0 ? std::abs(p.coef[k]) * bk / nm : 0.0;
  }
  return p;
}

}  // namespace ihlab
