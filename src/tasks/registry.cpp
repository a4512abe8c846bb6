#include "tasks/registry.h"

#include "tasks/bursty_task.h"
#include "tasks/icl_mc_task.h"
#include "tasks/item_label.h"
#include "tasks/item_label_tokens.h"
#include "tasks/mixed_target.h"
#include "tasks/mixed_tokens.h"
#include "tasks/ngram_induction.h"
#include "tasks/ngram_task.h"
#include "tasks/previous_token.h"
#include "tasks/repeated_tokens.h"

namespace ihlab {

const std::vector<TaskEntry>& task_registry() {
  static const std::vector<TaskEntry> entries = {
      task_entry<PreviousTokenConfig, PreviousTokenTask>(
          "previous-token", "uniform random tokens; predict the token one position back (smoke test)"),
      task_entry<NgramMarkovConfig, NgramMarkovTask>(
          "ngram-markov",
          "in-context n-gram Markov chains (Chen et al. 2024): a fresh Dirichlet kernel per sequence; predict "
          "x_{L+1} from x_1..x_L"),
      task_entry<RepeatedTokensConfig, RepeatedTokensTask>(
          "repeated-tokens",
          "[BOS] + a block of uniform random tokens repeated (Olsson et al. 2022); next-token targets"),
      task_entry<IclMcConfig, IclMcTask>(
          "icl-mc",
          "in-context Markov chains (Edelman et al. 2024): a Dirichlet chain per sequence, stationary start; "
          "next-token targets"),
      task_entry<BurstyConfig, BurstyTask>(
          "bursty",
          "few-shot item-label classification with bursty contexts (Reddy 2023; Chan et al. 2022); continuous "
          "items"),
      task_entry<MixedTargetConfig, MixedTargetTask>(
          "mixed-target",
          "Wang et al. 2024: Gaussian tokens; regress y = alpha* x_{L-2} + (1 - alpha*) IH_2(X) at the last "
          "position (4-gram and induction components reported separately)"),
      task_entry<NgramInductionConfig, NgramInductionTask>(
          "ngram-induction",
          "Wang et al. 2024's in-context n-gram targets: Gaussian tokens; regress IH_n(X) (dot similarity of the "
          "n - 1 token windows) or GIH_n(X) (distance similarity) at the last position"),
      task_entry<MixedTokensConfig, MixedTokensTask>(
          "mixed-tokens",
          "discrete analogue of mixed-target: uniform tokens, next token from alpha* [x_{L-2}] + (1 - alpha*) "
          "in-context bigram copying of x_L; cross-entropy at the last position"),
      task_entry<ItemLabelConfig, ItemLabelTask>(
          "item-label",
          "minimal in-context retrieval (Musat et al. 2025): N item-label vector pairs with positional vectors "
          "(labels rotated by M) and a query item; squared-error target = the query's label"),
      task_entry<ItemLabelTokensConfig, ItemLabelTokensTask>(
          "item-label-tokens",
          "discrete item-label retrieval (Musat et al. 2025's bridge): N item-label token pairs drawn per sequence "
          "from disjoint vocabularies, then a query item; the target is its label token, at the last position"),
  };
  return entries;
}

const TaskEntry& find_task(const std::string& name) {
  std::string known;
  for (auto& e : task_registry()) {
    if (e.name == name) return e;
    known += (known.empty() ? "" : ", ") + e.name;
  }
  fail("config: key 'task.name' = \"{}\" is not a known task (choose one of: {})", name, known);
}

std::unique_ptr<Task> make_task(const nlohmann::json& c) { return find_task(c.at("name")).make(c); }

}  // namespace ihlab
