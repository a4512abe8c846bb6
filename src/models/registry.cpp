#include "models/registry.h"

#include "models/attention_circuit.h"
#include "models/disentangled.h"
#include "models/gih_full_model.h"
#include "models/gih_model.h"
#include "models/one_layer_attention.h"
#include "models/transformer.h"

namespace ihlab {

namespace {
// attn1, gih and gih-full read token ids and predict tokens: a task with continuous inputs or a
// vector target (bursty, mixed-target, item-label) would otherwise fail deep inside the first step
// with a message about targets or vocab sizes, not about the configuration.
void require_token_task(const Task& task, const std::string& model) {
  if (task.feature_dim() == 0 && task.value_dim() == 0) return;
  fail("config: key 'model.name' = \"{}\" needs a token task (token inputs, next-token targets); task.name = \"{}\" "
       "has {} (allowed with this task: transformer{})",
       model, task.name(),
       task.value_dim() > 0 ? fmt::format("vector inputs and a {}-dimensional regression target", task.value_dim())
                            : fmt::format("{}-dimensional continuous inputs", task.feature_dim()),
       task.name() == "item-label"     ? ", disentangled, disentangled-reduced"
       : task.name() == "mixed-target" ? ", attention-circuit"
                                       : "");
}

template <typename T>
std::unique_ptr<Model<T>> make_attn1(const nlohmann::json& c, const Task& task, uint64_t seed) {
  require_token_task(task, "attn1");
  OneLayerAttentionConfig cfg;
  cfg.vocab = task.vocab();
  cfg.length = task.length();
  cfg.width = c.at("width");
  cfg.window = c.at("window");
  cfg.init_std = c.at("init_std");
  return std::make_unique<OneLayerAttention<T>>(cfg, seed);
}

template <typename T>
std::unique_ptr<Model<T>> make_transformer(const nlohmann::json& c, const Task& task, uint64_t seed) {
  TransformerConfig cfg;
  cfg.vocab = task.vocab();
  cfg.max_len = task.length();
  cfg.feature_dim = task.feature_dim();
  cfg.value_dim = task.value_dim();
  cfg.regression_loss = parse_transformer_regression_loss(c.at("regression_loss"));
  cfg.layers = c.at("layers");
  cfg.heads = c.at("heads");
  cfg.width = c.at("width");
  cfg.attention_only = c.at("attention_only");
  cfg.mlp_width = c.at("mlp_width");
  cfg.norm = parse_transformer_norm(c.at("norm"));
  cfg.positional = parse_transformer_positional(c.at("positional"));
  cfg.rel_window = c.at("rel_window");
  cfg.self_attention = c.at("self_attention");
  cfg.tied_unembedding = c.at("tied_unembedding");
  cfg.dropout = c.at("dropout");
  cfg.init_std = c.at("init_std");
  cfg.attn_bias = c.at("attn_bias");
  cfg.rope_base = c.at("rope_base");
  cfg.ln_eps = c.at("ln_eps");
  return std::make_unique<Transformer<T>>(cfg, seed);
}

// Keys of "transformer"; defaults are the ICL-MC model of Edelman et al. 2024.
Schema transformer_schema() {
  KeySpec dropout;
  dropout.key = "dropout", dropout.type = KeyType::Float, dropout.default_value = 0.0;
  dropout.help = "dropout rate on attention probabilities and residual outputs (training steps only)";
  dropout.min = 0.0, dropout.max = 1.0, dropout.max_exclusive = true;
  KeySpec positive;
  positive.type = KeyType::Float, positive.min = 0.0, positive.min_exclusive = true;
  KeySpec rope_base = positive, ln_eps = positive;
  rope_base.key = "rope_base", rope_base.default_value = 10000.0;
  rope_base.help = "rotary: angle of pair c at position i is i * rope_base^(-2c / head_dim)";
  ln_eps.key = "ln_eps", ln_eps.default_value = 1e-5, ln_eps.help = "LayerNorm epsilon", ln_eps.max = 1.0;
  return Schema()
      .integer("layers", 2, "transformer blocks", 1, 256)
      .integer("heads", 1, "attention heads per layer (must divide width)", 1, 4096)
      .integer("width", 16, "residual width d_model; head dim = width / heads", 1, 65536)
      .boolean("attention_only", true, "blocks without MLPs")
      .integer("mlp_width", 0, "hidden width of each GELU MLP; 0 = 4 * width (needs attention_only = false)", 0,
               1 << 20)
      .string("norm", "pre", "pre: LayerNorm before each block and before the unembedding; none", {"pre", "none"})
      .string("positional", "relative",
              "learned (absolute table), relative (learned bias per head and offset), alibi (fixed slopes), rotary "
              "(RoPE, half-split), none",
              {"learned", "relative", "alibi", "rotary", "none"})
      .integer("rel_window", 0, "relative: offsets per head, keys further back are masked; 0 = every offset", 0,
               1 << 20)
      .boolean("self_attention", true, "a position attends to itself (false: strictly earlier positions only)")
      .boolean("tied_unembedding", false, "unembedding = embedding transposed")
      .string("regression_loss", "mse",
              "regression tasks (value_dim > 0): mse = 1/2 ||yhat - y||^2; candidates = cross-entropy over "
              "yhat . c_j for the task's candidate answers",
              {"mse", "candidates"})
      .add(dropout)
      .real("init_std", 0.02, "standard deviation of the Gaussian init of weights and tables", 0, 10)
      .boolean("attn_bias", false, "biases on the q, k, v and output projections")
      .add(rope_base)
      .add(ln_eps);
}

// The keys gih and gih-full share (see gih_family_schema).
GihConfig gih_config(const nlohmann::json& c, const Task& task, const std::string& model) {
  require_token_task(task, model);
  GihConfig g;
  g.vocab = task.vocab();
  g.heads = c.at("heads");
  g.window = c.at("window");
  g.max_subset = c.at("max_subset");
  g.mode = parse_gih_mode(c.at("mode"));
  g.loss = parse_gih_loss(c.at("loss"), g.mode);
  g.guard = c.at("guard");
  g.w_plus = c.at("w_plus");
  g.w_minus = c.at("w_minus");
  g.c_init = c.at("c_init");
  g.a_init = c.at("a_init");
  return g;
}

template <typename T>
std::unique_ptr<Model<T>> make_gih(const nlohmann::json& c, const Task& task, uint64_t) {
  GihConfig cfg = gih_config(c, task, "gih");
  const std::string k = c.at("kernel");
  cfg.kernel = k == "table" ? GihKernel::Table : k == "direct" ? GihKernel::Direct : GihKernel::Auto;
  return std::make_unique<GihModel<T>>(cfg);
}

template <typename T>
std::unique_ptr<Model<T>> make_gih_full(const nlohmann::json& c, const Task& task, uint64_t) {
  GihFullConfig cfg;
  cfg.base = gih_config(c, task, "gih-full");
  cfg.proj_init = c.at("proj_init");
  cfg.ln_eps = c.at("ln_eps");
  cfg.self_attention = c.at("self_attention");
  return std::make_unique<GihFullModel<T>>(cfg);
}

// The keys gih and gih-full share; they differ in the window's help and the authors' RPE init.
Schema gih_family_schema(const std::string& window_help, double w_plus, const std::string& w_plus_help,
                         double w_minus, const std::string& w_minus_help) {
  return Schema()
      .integer("heads", 3, "H: layer-1 heads", 1, 16)
      .integer("window", 3, window_help, 1, 1024)
      .integer("max_subset", 2, "D: largest subset of heads the selector combines", 0, 16)
      .string("mode", "paper", "paper: windows 1..M, loss nll; code: the authors' code", {"paper", "code"})
      .string("loss", "auto", "auto = nll in paper mode, ce_on_probs in code mode", {"auto", "nll", "ce_on_probs"})
      .real("guard", 1e-12, "nll: loss = -log(y[target] + guard)", 0, 1)
      .real("w_plus", w_plus, w_plus_help, -1e6, 1e6)
      .real("w_minus", w_minus, w_minus_help, -1e6, 1e6)
      .real("c_init", 0.01, "init of every c_S (nonzero)", -1e6, 1e6)
      .real("a_init", 0.01, "init of a", -1e6, 1e6);
}

template <typename T>
std::unique_ptr<Model<T>> make_attention_circuit(const nlohmann::json& c, const Task& task, uint64_t) {
  AttentionCircuitConfig cfg;
  cfg.length = task.length();
  cfg.dim = task.value_dim();
  IHLAB_CHECK(cfg.dim > 0 && task.feature_dim() % cfg.dim == 0,
              "config: model 'attention-circuit' needs a regression task whose feature_dim is a multiple of its "
              "value_dim (task '{}' has feature_dim {}, value_dim {})", task.name(), task.feature_dim(), task.value_dim());
  cfg.slots = task.feature_dim() / cfg.dim;
  cfg.sigma_init = c.at("sigma_init");
  for (auto& h : c.at("heads")) cfg.heads.push_back(circuit_head_from_json(h));
  return std::make_unique<AttentionCircuit<T>>(cfg);
}

// One [[model.heads]] table of "attention-circuit" (semantics in models/attention_circuit.h).
Schema circuit_head_schema() {
  return Schema()
      .string("name", "", "parameter and probe prefix (default h<index>)")
      .integer("layer", 1, "layer, 1-based; heads of a layer read the stream before it", 1, 64)
      .string("score", "alibi",
              "alibi: -p max(0, t - offset - s); distance: -p |t - offset - s|; dot: w_K w_Q <query(t), key(s)>",
              {"alibi", "distance", "dot"})
      .integer("offset", 0, "positional scores: the distance back they prefer", -65536, 65536)
      .integer("min_back", 0, "keys s <= t - min_back (1 masks the query's own position)", 0, 65536)
      .integer("first_key", 0, "keys s >= first_key (0-based)", 0, 65536)
      .integer("query", 0, "dot: slot the query reads", 0, 64)
      .integer("key", 0, "dot: slot the key reads", 0, 64)
      .integer("value", 0, "slot the value reads", 0, 64)
      .integer("write", -1, "slot the output is added into; -1 = the prediction (last layer, last position)", -1, 64)
      .string("kq", "product", "dot: w_K * w_Q (two trained scalars) or one trained w_KQ", {"product", "single"})
      .real("slope_init", 0.0, "positional: initial slope p", -1e6, 1e6)
      .string("component", "", "target component (task part, e.g. 4gram, induction) this head's output is scored "
              "against in val_err_<component>; empty = none");
}

// Keys of "disentangled" and "disentangled-reduced" (Musat et al. 2025, item-label task only).
template <typename T>
std::unique_ptr<Model<T>> make_disentangled(const nlohmann::json& c, const Task& task, uint64_t) {
  DisentangledConfig cfg = disentangled_config_from_task(task, "disentangled");
  cfg.readout_positional = c.at("readout_positional");
  return std::make_unique<DisentangledModel<T>>(cfg);
}

template <typename T>
std::unique_ptr<Model<T>> make_disentangled_reduced(const nlohmann::json& c, const Task& task, uint64_t) {
  DisentangledConfig d = disentangled_config_from_task(task, "disentangled-reduced");
  PseudoReducedConfig cfg;
  cfg.dim = d.dim;
  cfg.rotation = d.rotation;
  const std::string which = c.at("pseudo");
  if (which == "all") {
    for (auto& b : pseudo_parameter_table()) cfg.train.push_back(b.name);
  } else {
    cfg.train = {"alpha_3", "beta_2", "gamma_3"};
  }
  return std::make_unique<PseudoReducedModel<T>>(cfg);
}

}  // namespace

const std::vector<ModelEntry>& model_registry() {
  static const std::vector<ModelEntry> entries = [] {
    std::vector<ModelEntry> e;
    e.push_back({"attn1", "one-layer one-head attention-only transformer with a learned relative-position bias",
                 Schema()
                     .integer("width", 16, "residual width D", 1, 4096)
                     .integer("window", 4, "attention window: offsets 0..window-1", 1, 65536)
                     .real("init_std", 0.3, "standard deviation of the Gaussian initialization", 0, 10),
                 make_attn1<float>, make_attn1<double>});
    e.push_back({"gih",
                 "TF(M, H, d, D) of Chen et al. 2024: RPE copier heads, subset selector, classifier "
                 "(generalized induction head); predicts the last token",
                 gih_family_schema("M: RPE offsets per head (paper: 1..M; code: h+1..h+M; authors: M = H)", 3.0,
                                   "init RPE logit of head h on offset h+1", 0.1, "init of every other RPE logit")
                     .string("kernel", "auto", "implementation: auto, table (pattern tables) or direct",
                             {"auto", "table", "direct"}),
                 make_gih<float>, make_gih<double>});
    e.push_back({"gih-full",
                 "the appendix \"full\" variant of gih: per-head Q, K, OV matrices (content attention with "
                 "self-attention on top of the RPE band) and a shared affine LayerNorm instead of the L2 "
                 "normalization; predicts the last token",
                 gih_family_schema("M: RPE offsets per head (paper: 1..M; code: h+1..h+M), plus offset 0", 1.0,
                                   "init RPE logit of head h on offset h+1 (authors, full variant: 1)", 0.01,
                                   "init of every other RPE logit (authors, full variant: 0.01)")
                     .real("proj_init", 0.001, "Q_h, K_h, OV_h start at proj_init * identity", -1e6, 1e6)
                     .real("ln_eps", 1e-5, "LayerNorm epsilon", 1e-30, 1)
                     .boolean("self_attention", true,
                              "layer-1 rows also attend to their own position (logit from Q K^T only, no RPE)"),
                 make_gih_full<float>, make_gih_full<double>});
    e.push_back({"transformer",
                 "decoder-only transformer: layers, heads, width, MLPs, pre-LayerNorm, learned / relative / ALiBi / "
                 "rotary positions, dropout (defaults: Edelman et al. 2024's 2-layer 1-head attention-only ICL-MC "
                 "model)",
                 transformer_schema(), make_transformer<float>, make_transformer<double>});
    e.push_back({"attention-circuit",
                 "a circuit of scalar-parameter attention heads listed in [[model.heads]] (positional ALiBi/distance "
                 "or dot-product scores, slots of the residual stream); regression tasks. Wang et al. 2024's "
                 "six-parameter model is a configuration of it",
                 Schema()
                     .real("sigma_init", 0.01, "initial value weights and key/query weights", -1e6, 1e6)
                     .table_array("heads", circuit_head_schema(), 1, "the heads, in order"),
                 make_attention_circuit<float>, make_attention_circuit<double>});
    e.push_back({"disentangled",
                 "Musat et al. 2025: two-layer attention-only model with a concatenated residual stream "
                 "(2D -> 4D -> 8D), merged key-query matrices W1, W2, readout W3, strictly causal, zero init "
                 "(task item-label)",
                 Schema().boolean("readout_positional", false,
                                  "train W3's positional column blocks too (default: kept at zero)"),
                 make_disentangled<float>, make_disentangled<double>});
    e.push_back({"disentangled-reduced",
                 "the disentangled model restricted to its pseudo-parameters (all 19, or alpha_3, beta_2, gamma_3), "
                 "Gram-matrix kernel whose cost does not grow with D; same flow metric as the full model",
                 Schema().string("pseudo", "all", "trained pseudo-parameters: all (19) or three (alpha_3, beta_2, gamma_3)",
                                 {"all", "three"}),
                 make_disentangled_reduced<float>, make_disentangled_reduced<double>});
    return e;
  }();
  return entries;
}

template <typename T>
std::unique_ptr<Model<T>> make_model(const nlohmann::json& c, const Task& task, uint64_t seed) {
  const std::string name = c.at("name");
  for (auto& e : model_registry()) {
    if (e.name != name) continue;
    if constexpr (std::is_same_v<T, float>) return e.make_f32(c, task, seed);
    else return e.make_f64(c, task, seed);
  }
  fail("config: key 'model.name' = \"{}\" is not a known model (see `ihlab list`)", name);
}

template std::unique_ptr<Model<float>> make_model<float>(const nlohmann::json&, const Task&, uint64_t);
template std::unique_ptr<Model<double>> make_model<double>(const nlohmann::json&, const Task&, uint64_t);

}  // namespace ihlab
