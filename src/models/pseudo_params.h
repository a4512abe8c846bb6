#pragma once
// The pseudo-parameter basis of the disentangled two-layer attention-only model (Musat et al.
// 2025), as data: a table of D x D blocks, each carrying I, M or M^T, and the exact projection of
// trained weights onto their span.
//
// Weight conventions (models/disentangled.h): D x D blocks of
//   W1 [2D, 2D]  components (tok, pos)                        score_1(k -> j) = h_k^T W1 h_j
//   W2 [4D, 4D]  components (tok, pos, o1.tok, o1.pos)        score_2(k -> q) = h'_k^T W2 h'_q
//   W3 [D, 8D]   columns (tok, pos, o1.tok, o1.pos, o2.tok, o2.pos, o2.o1.tok, o2.o1.pos)
// Scores are written KEY-FIRST: the row block of W1 / W2 is the key's component, the column block
// the query's. In this convention alpha_3 multiplies M^T: a label at M p_i scores its own item at
// p_i by p_i^T M^T M p_i = 1 (in the query-first convention h_j^T W h_k the same entry is M).
//
// The default table (19 entries; the paper's exact layout is a reconstruction, see
// docs/models/disentangled.md#the-table):
//   alpha_1..3  W1: (tok, tok) I, (pos, pos) I, (pos, pos) M^T
//   beta_1..4   W2 token-type blocks, I:  (tok,tok), (o1.tok,tok), (tok,o1.tok), (o1.tok,o1.tok)
//   beta_5..12  W2 position-type blocks, I then M^T: (pos,pos), (o1.pos,pos), (pos,o1.pos),
//               (o1.pos,o1.pos)
//   gamma_1..4  W3 token-type columns, I: tok, o1.tok, o2.tok, o2.o1.tok
// beta_2 = (key o1.tok, query tok): the query attends to the label whose copied item matches it;
// gamma_3 = o2.tok: output the retrieved label.
//
// Projection: theta = argmin ||W - sum_k theta_k B_k||_F, solved exactly through the Gram matrix
// of the basis (<I, M> = tr M != 0 in general, so the basis is not orthogonal), for any table.
#include <cstdint>
#include <string>
#include <vector>

namespace ihlab {

enum class BlockKind { I, M, MT };

struct BasisBlock {
  std::string name;   // e.g. "alpha_3"
  int matrix = 1;     // 1, 2 or 3 (W1, W2, W3)
  int row_block = 0;  // D x D block row (W3: always 0)
  int col_block = 0;  // D x D block column
  BlockKind kind = BlockKind::I;
  std::string meaning;  // one line for tables and reports
};

// The 19-entry table above.
const std::vector<BasisBlock>& pseudo_parameter_table();
// The table closed under transposing M: the 19 entries, then an M entry beside each M^T one
// (alpha_3M, beta_6M, beta_8M, beta_10M, beta_12M; 24 in all). Measured (musat2025-subspace): the
// expected gradient at points of the 19-parameter trajectory leaves the 19-entry span along M in
// W2's (key pos, query o1.pos) and (key o1.pos, query o1.pos) blocks.
const std::vector<BasisBlock>& closed_pseudo_parameter_table();
// Indices (into the table) of the three that grow: alpha_3, beta_2, gamma_3.
std::vector<int> growing_pseudo_parameters();
int pseudo_parameter_index(const std::string& name);  // throws on an unknown name
const char* block_kind_name(BlockKind k);

// Dense weights of the three matrices, row-major: W1 [2D, 2D], W2 [4D, 4D], W3 [D, 8D].
struct DisentangledWeights {
  int64_t D = 0;
  std::vector<double> W1, W2, W3;
  const std::vector<double>& matrix(int m) const { return m == 1 ? W1 : m == 2 ? W2 : W3; }
  std::vector<double>& matrix(int m) { return m == 1 ? W1 : m == 2 ? W2 : W3; }
  int64_t rows(int m) const { return m == 1 ? 2 * D : m == 2 ? 4 * D : D; }
  int64_t cols(int m) const { return m == 1 ? 2 * D : m == 2 ? 4 * D : 8 * D; }
};

// W = sum_k theta[k] B_k (theta in table order). M: row-major [D, D].
DisentangledWeights build_pseudo_weights(const std::vector<double>& theta, const std::vector<double>& M, int64_t D,
                                         const std::vector<BasisBlock>& table = pseudo_parameter_table());

struct PseudoProjection {
  std::vector<double> coef;   // [K] theta, table order
  std::vector<double> share;  // [K] ||theta_k B_k||_F / ||W_matrix||_F (0 when the matrix is 0)
  double residual = 0;        // ||W - sum theta_k B_k||_F over the three matrices
  double norm = 0;            // ||W||_F over the three matrices
  double residual_by_matrix[3] = {0, 0, 0};
};
PseudoProjection project_pseudo(const DisentangledWeights& w, const std::vector<double>& M,
                                const std::vector<BasisBlock>& table = pseudo_parameter_table());

// Gram matrix of the basis, [K, K] row-major: <B_k, B_l>_F.
std::vector<double> pseudo_basis_gram(const std::vector<double>& M, int64_t D,
                                      const std::vector<BasisBlock>& table = pseudo_parameter_table());

}  // namespace ihlab
