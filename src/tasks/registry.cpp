#include "tasks/registry.h"

#include "tasks/bursty_task.h"
#include "tasks/icl_mc_task.h"
#include "tasks/mixed_target.h"
#include "tasks/mixed_tokens.h"
#include "tasks/item_label.h"
#include "tasks/ngram_task.h"
#include "tasks/previous_token.h"
#include "tasks/repeated_tokens.h"

namespace ihlab {

const std::vector<TaskEntry>& task_registry() {
  static const std::vector<TaskEntry> entries = [] {
    std::vector<TaskEntry> e;
    e.push_back({"previous-token", "uniform random tokens; predict the token one position back (smoke test)",
                 Schema()
                     .integer("vocab", 8, "vocabulary size", 2, 65536)
                     .integer("length", 16, "tokens per sequence", 2, 65536),
                 [](const nlohmann::json& c) -> std::unique_ptr<Task> {
                   return std::make_unique<PreviousTokenTask>(c.at("vocab"), c.at("length"));
                 }});
    e.push_back({"ngram-markov",
                 "in-context n-gram Markov chains (Chen et al. 2024): a fresh Dirichlet kernel per sequence; "
                 "predict x_{L+1} from x_1..x_L",
                 Schema()
                     .integer("vocab", 3, "vocabulary size d", 2, 65536)
                     .integer("length", 100, "L: tokens the model sees (sequences hold L+1; the last is the target)", 1,
                              1 << 20)
                     .int_list("parents", nlohmann::json::array({-1, -2}),
                               "parent offsets (negative, distinct); the first is the least significant context digit",
                               -4096, -1)
                     .add([] {
                       KeySpec k;
                       k.key = "alpha", k.type = KeyType::Float, k.default_value = 0.1;
                       k.help = "Dirichlet concentration of every kernel row";
                       k.min = 0.0, k.max = 1e6, k.min_exclusive = true;
                       return k;
                     }())
                     .boolean("all_positions", false,
                              "every column c >= 1 is a target (x_{c+1} from x_1..x_c), not only the last"),
                 [](const nlohmann::json& c) -> std::unique_ptr<Task> {
                   NgramMarkovConfig cfg;
                   cfg.vocab = c.at("vocab");
                   cfg.length = c.at("length");
                   cfg.parents = c.at("parents").get<std::vector<int>>();
                   cfg.alpha = c.at("alpha");
                   cfg.all_positions = c.at("all_positions");
                   return std::make_unique<NgramMarkovTask>(cfg);
                 }});
    e.push_back({"repeated-tokens",
                 "[BOS] + a block of uniform random tokens repeated (Olsson et al. 2022); next-token targets",
                 Schema()
                     .integer("vocab", 64, "content tokens (BOS is the extra id vocab)", 2, 1 << 20)
                     .integer("block", 25, "tokens in the repeated block", 1, 1 << 20)
                     .integer("repeats", 4, "copies of the block (2 = the block repeated once)", 2, 1 << 20)
                     .integer("block_min", 0,
                              "0 = fixed blocks; else block lengths uniform in [block_min, block] with random "
                              "filler after the copies, so no fixed offset solves the task (needs targets = repeats)",
                              0, 1 << 20)
                     .string("targets", "all",
                             "which next-token targets count: all, or only those inside the repeats",
                             {"all", "repeats"}),
                 [](const nlohmann::json& c) -> std::unique_ptr<Task> {
                   RepeatedTokensConfig cfg;
                   cfg.vocab = c.at("vocab");
                   cfg.block = c.at("block");
                   cfg.repeats = c.at("repeats");
                   cfg.repeats_only = c.at("targets").get<std::string>() == "repeats";
                   cfg.block_min = c.at("block_min");
                   return std::make_unique<RepeatedTokensTask>(cfg);
                 }});
    e.push_back({"icl-mc",
                 "in-context Markov chains (Edelman et al. 2024): a Dirichlet chain per sequence, stationary start; "
                 "next-token targets",
                 Schema()
                     .integer("states", 3, "k: number of states (tokens)", 2, 4096)
                     .integer("length", 101, "tokens per sequence: x_0 and T more", 2, 1 << 20)
                     .integer("order", 2, "n: the next token depends on the previous n-1 (2 = bigram chain)", 2, 16)
                     .add([] {
                       KeySpec k;
                       k.key = "alpha", k.type = KeyType::Float, k.default_value = 1.0;
                       k.help = "Dirichlet concentration (kernel rows; permutation weights when doubly-stochastic)";
                       k.min = 0.0, k.max = 1e6, k.min_exclusive = true;
                       return k;
                     }())
                     .string("variant", "standard",
                             "kernel prior: standard (Dirichlet rows), doubly-stochastic (uniform stationary law), "
                             "unigram (identical rows)",
                             {"standard", "doubly-stochastic", "unigram"}),
                 [](const nlohmann::json& c) -> std::unique_ptr<Task> {
                   IclMcConfig cfg;
                   cfg.states = c.at("states");
                   cfg.length = c.at("length");
                   cfg.order = c.at("order");
                   cfg.alpha = c.at("alpha");
                   cfg.variant = parse_icl_mc_variant(c.at("variant"));
                   return std::make_unique<IclMcTask>(cfg);
                 }});
    e.push_back({"bursty",
                 "few-shot item-label classification with bursty contexts (Reddy 2023; Chan et al. 2022); "
                 "continuous items",
                 Schema()
                     .integer("classes", 128, "K: item classes (Zipf frequencies)", 2, 1 << 20)
                     .integer("labels", 32, "L: labels (each class has a fixed one)", 2, 1 << 20)
                     .integer("pairs", 8, "N: item-label pairs before the query", 1, 4096)
                     .integer("dim", 63, "D: item dimension", 1, 65536)
                     .real("noise", 0.1, "within-class noise scale epsilon", 0.0, 100.0)
                     .integer("burstiness", 4, "B: copies of each class in a bursty context (divides pairs)", 1, 4096)
                     .real("p_bursty", 0.9, "fraction of bursty training sequences", 0.0, 1.0)
                     .real("zipf_exponent", 1.0, "class frequency ~ rank^-exponent (0 = uniform)", 0.0, 16.0)
                     .string("targets", "query", "query: only the query's label; all: every item's label",
                             {"query", "all"}),
                 [](const nlohmann::json& c) -> std::unique_ptr<Task> {
                   BurstyConfig cfg;
                   cfg.classes = c.at("classes");
                   cfg.labels = c.at("labels");
                   cfg.pairs = c.at("pairs");
                   cfg.dim = c.at("dim");
                   cfg.noise = c.at("noise");
                   cfg.burstiness = c.at("burstiness");
                   cfg.p_bursty = c.at("p_bursty");
                   cfg.zipf_exponent = c.at("zipf_exponent");
                   cfg.all_targets = c.at("targets").get<std::string>() == "all";
                   return std::make_unique<BurstyTask>(cfg);
                 }});
    e.push_back({"mixed-target",
                 "Wang et al. 2024: Gaussian tokens; regress y = alpha* x_{L-2} + (1 - alpha*) IH_2(X) at the last "
                 "position (4-gram and induction components reported separately)",
                 Schema()
                     .integer("length", 20, "L: tokens per sequence", 4, 1 << 20)
                     .integer("dim", 1, "d: token dimension (1 = the paper's scalar tokens)", 1, 4096)
                     .integer("slots", 2, "blocks of d feature coordinates per position; the token fills the first, "
                              "the rest are zero room for attention heads to write into", 1, 64)
                     .real("w_star", 2.0, "w*: inverse temperature of the target induction head IH_2", -1e6, 1e6)
                     .real("alpha_star", 0.5, "alpha*: weight of the 4-gram component x_{L-2}", 0, 1),
                 [](const nlohmann::json& c) -> std::unique_ptr<Task> {
                   MixedTargetConfig cfg;
                   cfg.length = c.at("length");
                   cfg.dim = c.at("dim");
                   cfg.slots = c.at("slots");
                   cfg.w_star = c.at("w_star");
                   cfg.alpha_star = c.at("alpha_star");
                   return std::make_unique<MixedTargetTask>(cfg);
                 }});
    e.push_back({"mixed-tokens",
                 "discrete analogue of mixed-target: uniform tokens, next token from alpha* [x_{L-2}] + (1 - alpha*) "
                 "in-context bigram copying of x_L; cross-entropy at the last position",
                 Schema()
                     .integer("vocab", 16, "V: symbols", 2, 65536)
                     .integer("length", 20, "L: tokens per sequence", 4, 1 << 20)
                     .real("alpha_star", 0.5, "alpha*: probability that the target follows the 4-gram rule", 0, 1),
                 [](const nlohmann::json& c) -> std::unique_ptr<Task> {
                   MixedTokensConfig cfg;
                   cfg.vocab = c.at("vocab");
                   cfg.length = c.at("length");
                   cfg.alpha_star = c.at("alpha_star");
                   return std::make_unique<MixedTokensTask>(cfg);
                 }});
    e.push_back({"item-label",
                 "minimal in-context retrieval (Musat et al. 2025): N item-label vector pairs with positional "
                 "vectors (labels rotated by M) and a query item; squared-error target = the query's label",
                 Schema()
                     .integer("pairs", 8, "N: item-label pairs before the query", 1, 4096)
                     .integer("dim", 32, "D: dimension of items, labels and positional vectors", 1, 65536)
                     .string("vectors", "gaussian", "items and labels: gaussian N(0, I/D), or orthonormal (dim >= 2N)",
                             {"gaussian", "orthonormal"})
                     .string("positions", "random",
                             "positional vectors: random (orthonormal, redrawn per sequence), fixed (drawn once from "
                             "rotation_seed), none (zeros)",
                             {"random", "fixed", "none"})
                     .string("query", "uniform",
                             "query index: uniform (drawn per sequence), last (the last item), or stratified "
                             "(sequence r of a batch asks item r mod N: every item equally often)",
                             {"uniform", "last", "stratified"})
                     .string("query_position", "own",
                             "the query's positional vector: own (p_{N+1}) or answer (p_q, the queried item's)",
                             {"own", "answer"})
                     .integer("rotation_seed", 0, "seed of the label rotation M (and of fixed positions)", 0,
                              9.007199254740992e15),
                 [](const nlohmann::json& c) -> std::unique_ptr<Task> {
                   ItemLabelConfig cfg;
                   cfg.pairs = c.at("pairs");
                   cfg.dim = c.at("dim");
                   cfg.vectors = parse_item_vectors(c.at("vectors"));
                   cfg.positions = parse_item_positions(c.at("positions"));
                   cfg.query = parse_query_index(c.at("query"));
                   cfg.query_position = parse_query_position(c.at("query_position"));
                   cfg.rotation_seed = c.at("rotation_seed");
                   return std::make_unique<ItemLabelTask>(cfg);
                 }});
    return e;
  }();
  return entries;
}

std::unique_ptr<Task> make_task(const nlohmann::json& c) {
  const std::string name = c.at("name");
  for (auto& e : task_registry())
    if (e.name == name) return e.make(c);
  fail("config: key 'task.name' = \"{}\" is not a known task (see `ihlab list`)", name);
}

}  // namespace ihlab
