#pragma once
// The discrete-token analogue of the mixed target (tasks/mixed_target.h) for standard transformers
// trained with cross-entropy: "mixed-tokens".
//
// A sequence is L tokens x_1..x_L uniform over V symbols; the next token x_{L+1} (the target of the
// last position) is drawn from the mixture
//   p(y | X) = alpha* [y = x_{L-2}]                                  the 4-gram rule (a fixed offset)
//            + (1 - alpha*) q(y | X)                                 in-context bigram copying,
//   q(y | X) = fraction of the earlier occurrences s < L of x_L whose successor x_{s+1} is y
//              (uniform over the V symbols when x_L does not occur earlier).
// So the 4-gram part is solvable by a positional head and the bigram part needs an induction head,
// as in the real-valued version; the two components of the loss are the cross-entropy restricted
// to the sequences whose target came from each component (Batch::part_names "4gram", "induction";
// Batch::parts holds a 0/1 indicator per sequence and component, value_dim is 0 so it is [n, 2]).
//
// Layout: tokens [n, L]; targets [n, L] = -1 except the last column = y.
// Reference losses (nats, mean over sequences): ref.uniform = ln V; ref.bayes = -ln p(y | X), the
// best possible; ref.4gram_only = -ln(alpha* [y = x_{L-2}] + (1 - alpha*) / V), the best predictor
// without an induction head.
#include "tasks/task.h"
#include "io/fields.h"

namespace ihlab {

struct MixedTokensConfig {
  int64_t vocab = 16;
  int64_t length = 20;  // L >= 4
  double alpha_star = 0.5;

  template <class V>
  void fields(V& v) {
    v("vocab", vocab, "V: symbols", in(2, 65536));
    v("length", length, "L: tokens per sequence", in(4, 1 << 20));
    v("alpha_star", alpha_star, "alpha*: probability that the target follows the 4-gram rule", in(0, 1));
  }
};

class MixedTokensTask : public Task {
 public:
  explicit MixedTokensTask(MixedTokensConfig cfg);  // validates, naming the offending key
  std::string name() const override { return "mixed-tokens"; }
  int64_t vocab() const override { return cfg_.vocab; }
  int64_t length() const override { return cfg_.length; }
  Batch sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const override;
  Scalars reference_losses(const Batch& b) const override;

  // p(y | X) over the V symbols for one sequence x[0..L).
  std::vector<double> target_distribution(const int32_t* x) const;

 private:
  MixedTokensConfig cfg_;
};

}  // namespace ihlab
