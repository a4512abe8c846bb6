#pragma once
// Minimal in-context item-label retrieval (Musat et al. 2025, "On the Emergence of Induction Heads
// for In-Context Learning"): "item-label".
//
// A sequence holds N item-label pairs and a query item equal to one of the N items; the target is
// that item's label. Items and labels are vectors in R^D, fresh for every sequence, so nothing can
// be learned in the weights except the retrieval mechanism itself.
//
// Layout of a Batch (length() = 2N + 1, feature_dim() = 2D, value_dim() = D, vocab() = 1):
//   position 2i     item i      features = [e_i ; p_i]          (i = 0 .. N-1, 0-based)
//   position 2i + 1 label i     features = [l_i ; M p_i]
//   position 2N     the query   features = [e_q ; p_N]          (own positional vector, default)
//                                         or [e_q ; p_q]        (query_position = "answer")
//   values [n, D]: l_q, the queried label (float-rounded, exactly the vector in the features).
//   candidates [n, N, D]: the N labels in context (float-rounded), candidate_target [n] = q: for
//   models trained or scored by cross-entropy over yhat . l_j (the transformer's "candidates").
//   tokens: all 0 (one-token vocabulary); targets: all -1 (regression: no token targets).
// Vectors: "gaussian" draws every e_i, l_i from N(0, I/D) (norm ~ 1); "orthonormal" draws the 2N
// vectors as orthonormal columns (Haar, QR of a Gaussian matrix), which needs D >= 2N.
// Positions: "random" draws p_0 .. p_N orthonormal for every sequence (the default, see docs/tasks.md#item-label:
// with fixed positions the layer-1 position block leaves span{I, M, M^T}); "fixed" draws
// them once from rotation_seed; "none" leaves the positional half zero (models with their own
// positions, e.g. the standard transformer). M is one Haar-random orthogonal D x D matrix drawn
// from rotation_seed: the same for every sequence and every model that reads it (models get the
// task and dynamic_cast to ItemLabelTask to read M).
// Query index: "uniform" draws q per sequence; "last" is q = N - 1; "stratified" is q = r mod N for
// sequence r of the batch, so every q is asked equally often in any N consecutive sequences (a
// fixed training set whose size is a multiple of N then holds the exact average over q; with a
// uniform draw the few sequences that ask an early item, whose label attends to its item most
// easily, dominate the plateau's escape and make t_ICL vary by 25% between samples at N = 64).
// Sequence r of a batch is RandomStream(seed, kind, index, r), so batches are pure functions.
//
// Loss convention (all regression tasks): 1/2 mean_b ||yhat_b - y_b||^2.
// Reference loss ref.zero: predicting 0, i.e. 1/2 mean_b ||y_b||^2 (1/2 for orthonormal labels).
#include <cstdint>
#include <string>
#include <vector>

#include "tasks/task.h"
#include "io/fields.h"

namespace ihlab {

enum class ItemVectors { Gaussian, Orthonormal };
enum class ItemPositions { Random, Fixed, None };
enum class QueryIndex { Uniform, Last, Stratified };
enum class QueryPosition { Own, Answer };
constexpr auto enum_choices(ItemVectors) {
  return std::array<EnumChoice<ItemVectors>, 2>{
      {{ItemVectors::Gaussian, "gaussian"}, {ItemVectors::Orthonormal, "orthonormal"}}};
}
constexpr auto enum_choices(ItemPositions) {
  using P = ItemPositions;
  return std::array<EnumChoice<P>, 3>{{{P::Random, "random"}, {P::Fixed, "fixed"}, {P::None, "none"}}};
}
constexpr auto enum_choices(QueryIndex) {
  using Q = QueryIndex;
  return std::array<EnumChoice<Q>, 3>{{{Q::Uniform, "uniform"}, {Q::Last, "last"}, {Q::Stratified, "stratified"}}};
}
constexpr auto enum_choices(QueryPosition) {
  return std::array<EnumChoice<QueryPosition>, 2>{{{QueryPosition::Own, "own"}, {QueryPosition::Answer, "answer"}}};
}

struct ItemLabelConfig {
  int64_t pairs = 8;  // N
  int64_t dim = 32;   // D
  ItemVectors vectors = ItemVectors::Gaussian;
  ItemPositions positions = ItemPositions::Random;
  QueryIndex query = QueryIndex::Uniform;
  QueryPosition query_position = QueryPosition::Own;
  uint64_t rotation_seed = 0;  // M (and fixed positions) come from this seed, not the run's
  // Throws ihlab::Error naming the key, the value and what is allowed.
  void validate() const;

  template <class V>
  void fields(V& v) {
    v("pairs", pairs, "N: item-label pairs before the query", in(1, 4096));
    v("dim", dim, "D: dimension of items, labels and positional vectors", in(1, 65536));
    v("vectors", vectors, "items and labels: gaussian N(0, I/D), or orthonormal (dim >= 2N)");
    v("positions", positions,
      "positional vectors: random (orthonormal, redrawn per sequence), fixed (drawn once from rotation_seed), none "
      "(zeros)");
    v("query", query,
      "query index: uniform (drawn per sequence), last (the last item), or stratified (sequence r of a batch asks "
      "item r mod N: every item equally often)");
    v("query_position", query_position,
      "the query's positional vector: own (p_{N+1}) or answer (p_q, the queried item's)");
    v("rotation_seed", rotation_seed, "seed of the label rotation M (and of fixed positions)",
      in(0, 9.007199254740992e15));
  }
};

ItemVectors parse_item_vectors(const std::string& s);
ItemPositions parse_item_positions(const std::string& s);
QueryIndex parse_query_index(const std::string& s);
QueryPosition parse_query_position(const std::string& s);

// A Haar-random orthogonal n x n matrix (QR of a Gaussian matrix with R's diagonal made positive),
// row-major; and k orthonormal columns of R^n as k rows of n (row-major [k, n]).
std::vector<double> haar_orthogonal(int64_t n, RandomStream& rs);
std::vector<double> orthonormal_rows(int64_t k, int64_t n, RandomStream& rs);

class ItemLabelTask : public Task {
 public:
  explicit ItemLabelTask(ItemLabelConfig cfg);  // validates, draws M
  std::string name() const override { return "item-label"; }
  int64_t vocab() const override { return 1; }
  int64_t length() const override { return 2 * cfg_.pairs + 1; }
  int64_t feature_dim() const override { return 2 * cfg_.dim; }
  int64_t value_dim() const override { return cfg_.dim; }
  Batch sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const override;
  // Every row has its own stream (and the stratified query reads the row's index in the batch),
  // so a rank draws only its rows: at D = 2N the draws are half of a full-model step.
  Batch sample_rows(int64_t n, int64_t begin, int64_t end, uint64_t seed, StreamKind kind,
                    uint64_t index) const override;
  Scalars reference_losses(const Batch& b) const override;

  const ItemLabelConfig& config() const { return cfg_; }
  // M, row-major [D, D]: label i carries M p_i.
  const std::vector<double>& rotation() const { return rotation_; }
  std::vector<double> label_rotation() const override { return rotation_; }
  // The query index q (0-based) of each sequence, recovered from the batch (the item equal to the
  // query's token vector); for tests and analyses.
  std::vector<int64_t> query_indices(const Batch& b) const;

 private:
  ItemLabelConfig cfg_;
  std::vector<double> rotation_;         // [D, D]
  std::vector<double> fixed_positions_;  // [N+1, D] (positions = "fixed")
};

}  // namespace ihlab
