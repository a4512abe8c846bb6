#pragma once
// Discrete item-label retrieval (the token form of Musat et al. 2025's task, for the bridge to a
// standard transformer with a token embedding T and an unembedding W_o): "item-label-tokens".
//
// A sequence holds N (item token, label token) pairs and a query item token equal to one of the N
// items; the target is that item's label token, predicted at the last position only. Items are
// drawn without repetition from [0, items), labels without repetition from [items, items +
// labels), both fresh per sequence, and so is the pairing: nothing can be learned in the weights
// but the in-context retrieval mechanism (a previous-token head in layer 1, an induction head in
// layer 2 that copies the matched label). Cross-entropy is then over the whole vocabulary, not
// over the N labels in context: at content-independent attention the readout still has a gradient
// (it can raise every label token against the items), unlike the continuous task's "candidates".
//
// Layout of a Batch (length() = 2N + 1, vocab() = items + labels):
//   tokens  [n, 2N + 1]: position 2i item i, 2i + 1 label i (i = 0 .. N-1), position 2N the query
//           (item q).
//   targets [n, 2N + 1]: -1 everywhere except the last position, which holds label q.
// Query index q: "uniform" per sequence, or "last" (q = N - 1).
// label_rule = "random" is a negative control: the target is the label of an independent uniform
// pair index, so it is not tied to the query and no mechanism beats ln N.
// Sequence r of a batch is RandomStream(seed, kind, index, r), so batches are pure functions.
//
// Reference losses (cross-entropy, nats; every target position counts once):
//   ref.bayes    the Bayes-optimal predictor: 0 (label_rule = "pairs"), ln N ("random")
//   ref.context  uniform over the N labels in context: ln N (the loss of a model that finds the
//                labels in context but not which one the query asks for)
//   ref.labels   uniform over all label tokens: ln labels (a model that knows only "a label comes")
#include <cstdint>
#include <string>
#include <vector>

#include "io/fields.h"
#include "tasks/task.h"

namespace ihlab {

enum class TokenQuery { Uniform, Last };
enum class TokenLabelRule { Pairs, Random };
constexpr auto enum_choices(TokenQuery) {
  return std::array<EnumChoice<TokenQuery>, 2>{{{TokenQuery::Uniform, "uniform"}, {TokenQuery::Last, "last"}}};
}
constexpr auto enum_choices(TokenLabelRule) {
  return std::array<EnumChoice<TokenLabelRule>, 2>{
      {{TokenLabelRule::Pairs, "pairs"}, {TokenLabelRule::Random, "random"}}};
}

struct ItemLabelTokensConfig {
  int64_t pairs = 8;    // N
  int64_t items = 16;   // item tokens 0 .. items - 1
  int64_t labels = 16;  // label tokens items .. items + labels - 1
  TokenQuery query = TokenQuery::Uniform;
  TokenLabelRule label_rule = TokenLabelRule::Pairs;
  // Throws ihlab::Error naming the key, the value and what is allowed.
  void validate() const;

  template <class V>
  void fields(V& v) {
    v("pairs", pairs, "N: item-label pairs before the query (at most items and at most labels)", in(1, 4096));
    v("items", items, "item tokens 0 .. items - 1 (N drawn per sequence without repetition)", in(1, 1 << 20));
    v("labels", labels, "label tokens items .. items + labels - 1 (N drawn per sequence without repetition)",
      in(1, 1 << 20));
    v("query", query, "query index: uniform (drawn per sequence) or last (the last item)");
    v("label_rule", label_rule,
      "pairs: the target is the query's label; random (negative control): the label of an independent uniform pair");
  }
};

class ItemLabelTokensTask : public Task {
 public:
  explicit ItemLabelTokensTask(ItemLabelTokensConfig cfg);  // validates
  std::string name() const override { return "item-label-tokens"; }
  int64_t vocab() const override { return cfg_.items + cfg_.labels; }
  int64_t length() const override { return 2 * cfg_.pairs + 1; }
  Batch sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const override;
  Scalars reference_losses(const Batch& b) const override;

  const ItemLabelTokensConfig& config() const { return cfg_; }
  bool is_item(int32_t t) const { return t >= 0 && t < cfg_.items; }
  bool is_label(int32_t t) const { return t >= cfg_.items && t < cfg_.items + cfg_.labels; }

 private:
  ItemLabelTokensConfig cfg_;
};

}  // namespace ihlab
