#include "models/registry.h"

#include "models/attention_circuit.h"
#include "models/disentangled.h"
#include "models/gih_full_model.h"
#include "models/gih_model.h"
#include "models/one_layer_attention.h"
#include "models/transformer.h"

namespace ihlab {

namespace {

// What a model can read and predict, as predicates on the task's interface.
bool token_task(const Task& t) { return t.feature_dim() == 0 && t.value_dim() == 0; }
bool any_task(const Task&) { return true; }
bool slotted_regression_task(const Task& t) { return t.value_dim() > 0 && t.feature_dim() % t.value_dim() == 0; }
bool retrieval_task(const Task& t) { return !t.label_rotation().empty(); }

constexpr const char* kTokenTask = "a token task (token inputs, next-token targets)";

// The factories: the typed config from the table, the rest from the task.
template <typename T>
std::unique_ptr<Model<T>> make_attn1(const nlohmann::json& c, const Task& task, uint64_t seed) {
  auto cfg = model_config<OneLayerAttentionConfig>(c);
  cfg.vocab = task.vocab();
  cfg.length = task.length();
  return std::make_unique<OneLayerAttention<T>>(cfg, seed);
}

template <typename T>
std::unique_ptr<Model<T>> make_transformer(const nlohmann::json& c, const Task& task, uint64_t seed) {
  auto cfg = model_config<TransformerConfig>(c);
  cfg.vocab = task.vocab();
  cfg.max_len = task.length();
  cfg.feature_dim = task.feature_dim();
  cfg.value_dim = task.value_dim();
  return std::make_unique<Transformer<T>>(cfg, seed);
}

template <typename T>
std::unique_ptr<Model<T>> make_gih(const nlohmann::json& c, const Task& task, uint64_t) {
  GihConfig cfg = model_config<GihConfig>(c).with_resolved_loss();
  cfg.vocab = task.vocab();
  return std::make_unique<GihModel<T>>(cfg);
}

template <typename T>
std::unique_ptr<Model<T>> make_gih_full(const nlohmann::json& c, const Task& task, uint64_t) {
  auto cfg = model_config<GihFullConfig>(c);
  cfg.base = cfg.base.with_resolved_loss();
  cfg.base.vocab = task.vocab();
  return std::make_unique<GihFullModel<T>>(cfg);
}

template <typename T>
std::unique_ptr<Model<T>> make_attention_circuit(const nlohmann::json& c, const Task& task, uint64_t) {
  auto cfg = model_config<AttentionCircuitConfig>(c);
  cfg.length = task.length();
  cfg.dim = task.value_dim();
  cfg.slots = task.feature_dim() / cfg.dim;
  return std::make_unique<AttentionCircuit<T>>(cfg);
}

template <typename T>
std::unique_ptr<Model<T>> make_disentangled(const nlohmann::json& c, const Task& task, uint64_t) {
  DisentangledConfig cfg = disentangled_config_from_task(task, "disentangled");
  cfg.readout_positional = model_config<DisentangledConfig>(c).readout_positional;
  return std::make_unique<DisentangledModel<T>>(cfg);
}

template <typename T>
std::unique_ptr<Model<T>> make_disentangled_reduced(const nlohmann::json& c, const Task& task, uint64_t) {
  DisentangledConfig d = disentangled_config_from_task(task, "disentangled-reduced");
  auto cfg = model_config<PseudoReducedConfig>(c);
  cfg.dim = d.dim;
  cfg.rotation = d.rotation;
  if (cfg.pseudo == PseudoSet::All) {
    for (auto& b : pseudo_parameter_table()) cfg.train.push_back(b.name);
  } else if (cfg.pseudo == PseudoSet::Three) {
    cfg.train = {"alpha_3", "beta_2", "gamma_3"};
  } else {
    cfg.train = {"alpha_3", "gamma_3"};
  }
  return std::make_unique<PseudoReducedModel<T>>(cfg);
}

// An entry whose keys are Config's fields.
template <class Config>
ModelEntry model_entry(std::string name, std::string description, bool (*fits)(const Task&), std::string fits_text,
                       decltype(ModelEntry::make_f32) make_f32, decltype(ModelEntry::make_f64) make_f64) {
  return {std::move(name),      std::move(description),
          schema_of<Config>(),  fits,
          std::move(fits_text), std::move(make_f32),
          std::move(make_f64),  [](const nlohmann::json& c) { return write_fields(model_config<Config>(c)); }};
}

}  // namespace

const std::vector<ModelEntry>& model_registry() {
  static const std::vector<ModelEntry> entries = {
      model_entry<OneLayerAttentionConfig>(
          "attn1", "one-layer one-head attention-only transformer with a learned relative-position bias", token_task,
          kTokenTask, make_attn1<float>, make_attn1<double>),
      model_entry<GihConfig>("gih",
                             "TF(M, H, d, D) of Chen et al. 2024: RPE copier heads, subset selector, classifier "
                             "(generalized induction head); predicts the last token",
                             token_task, kTokenTask, make_gih<float>, make_gih<double>),
      model_entry<GihFullConfig>(
          "gih-full",
          "the appendix \"full\" variant of gih: per-head Q, K, OV matrices (content attention with self-attention "
          "on top of the RPE band) and a shared affine LayerNorm instead of the L2 normalization; predicts the last "
          "token",
          token_task, kTokenTask, make_gih_full<float>, make_gih_full<double>),
      model_entry<TransformerConfig>(
          "transformer",
          "decoder-only transformer: layers, heads, width, MLPs, pre-LayerNorm, learned / relative / ALiBi / rotary "
          "positions, dropout (defaults: Edelman et al. 2024's 2-layer 1-head attention-only ICL-MC model)",
          any_task, "any task", make_transformer<float>, make_transformer<double>),
      model_entry<AttentionCircuitConfig>(
          "attention-circuit",
          "a circuit of scalar-parameter attention heads listed in [[model.heads]] (positional ALiBi/distance or "
          "dot-product scores, slots of the residual stream); regression tasks. Wang et al. 2024's six-parameter "
          "model is a configuration of it",
          slotted_regression_task, "a regression task whose feature_dim is a multiple of its value_dim",
          make_attention_circuit<float>, make_attention_circuit<double>),
      model_entry<DisentangledConfig>(
          "disentangled",
          "Musat et al. 2025: two-layer attention-only model with a concatenated residual stream (2D -> 4D -> 8D), "
          "merged key-query matrices W1, W2, readout W3, strictly causal, zero init (task item-label)",
          retrieval_task, "a retrieval task with a label rotation (item-label)", make_disentangled<float>,
          make_disentangled<double>),
      model_entry<PseudoReducedConfig>(
          "disentangled-reduced",
          "the disentangled model restricted to its pseudo-parameters (all 19, or alpha_3, beta_2, gamma_3), "
          "Gram-matrix kernel whose cost does not grow with D; same flow metric as the full model",
          retrieval_task, "a retrieval task with a label rotation (item-label)", make_disentangled_reduced<float>,
          make_disentangled_reduced<double>),
  };
  return entries;
}

const ModelEntry& find_model(const std::string& name) {
  std::string known;
  for (auto& e : model_registry()) {
    if (e.name == name) return e;
    known += (known.empty() ? "" : ", ") + e.name;
  }
  fail("config: key 'model.name' = \"{}\" is not a known model (choose one of: {})", name, known);
}

namespace {
// "vector inputs and a 16-dimensional regression target", for the error message.
std::string task_shape(const Task& task) {
  if (task.value_dim() > 0)
    return fmt::format("{}-dimensional inputs and a {}-dimensional regression target", task.feature_dim(),
                       task.value_dim());
  if (task.feature_dim() > 0) return fmt::format("{}-dimensional continuous inputs", task.feature_dim());
  return "token inputs and next-token targets";
}
}  // namespace

template <typename T>
std::unique_ptr<Model<T>> make_model(const nlohmann::json& c, const Task& task, uint64_t seed) {
  const ModelEntry& e = find_model(c.at("name"));
  if (!e.fits(task)) {
    std::string fitting;
    for (auto& m : model_registry())
      if (m.fits(task)) fitting += (fitting.empty() ? "" : ", ") + m.name;
    fail("config: key 'model.name' = \"{}\" needs {}; task.name = \"{}\" has {} (models that fit this task: {})",
         e.name, e.fits_text, task.name(), task_shape(task), fitting);
  }
  if constexpr (std::is_same_v<T, float>)
    return e.make_f32(c, task, seed);
  else
    return e.make_f64(c, task, seed);
}

template std::unique_ptr<Model<float>> make_model<float>(const nlohmann::json&, const Task&, uint64_t);
template std::unique_ptr<Model<double>> make_model<double>(const nlohmann::json&, const Task&, uint64_t);

}  // namespace ihlab
