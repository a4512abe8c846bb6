#include "reproduce/run_config.h"

#include "core/error.h"

namespace ihlab {
namespace {

// The table of a named task or model, after checking the name.
const nlohmann::json& table(const RunSpec& spec, const char* section, const char* name) {
  const nlohmann::json& t = spec.config.at(section);
  const std::string actual = t.value("name", "");
  IHLAB_CHECK(actual == name, "{}.name = \"{}\", but this reproduction reads the keys of {} \"{}\"", section, actual,
              section, name);
  return t;
}

}  // namespace

const nlohmann::json& task_table(const RunSpec& spec) { return spec.config.at("task"); }
const nlohmann::json& model_table(const RunSpec& spec) { return spec.config.at("model"); }

NgramMarkovConfig ngram_config(const RunSpec& spec) {
  const nlohmann::json& c = table(spec, "task", "ngram-markov");
  NgramMarkovConfig cfg;
  cfg.vocab = c.at("vocab");
  cfg.length = c.at("length");
  cfg.parents = c.at("parents").get<std::vector<int>>();
  cfg.alpha = c.at("alpha");
  cfg.all_positions = c.at("all_positions");
  return cfg;
}

BurstyConfig bursty_config(const RunSpec& spec) {
  const nlohmann::json& c = table(spec, "task", "bursty");
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
  return cfg;
}

MixedTargetConfig mixed_target_config(const RunSpec& spec) {
  const nlohmann::json& c = table(spec, "task", "mixed-target");
  MixedTargetConfig cfg;
  cfg.length = c.at("length");
  cfg.dim = c.at("dim");
  cfg.slots = c.at("slots");
  cfg.w_star = c.at("w_star");
  cfg.alpha_star = c.at("alpha_star");
  return cfg;
}

ItemLabelConfig item_label_config(const RunSpec& spec) {
  const nlohmann::json& c = table(spec, "task", "item-label");
  ItemLabelConfig cfg;
  cfg.pairs = c.at("pairs");
  cfg.dim = c.at("dim");
  cfg.vectors = parse_item_vectors(c.at("vectors"));
  cfg.positions = parse_item_positions(c.at("positions"));
  cfg.query = parse_query_index(c.at("query"));
  cfg.query_position = parse_query_position(c.at("query_position"));
  cfg.rotation_seed = c.at("rotation_seed");
  return cfg;
}

GihConfig gih_config(const RunSpec& spec) {
  const nlohmann::json& c = model_table(spec);
  const std::string name = c.value("name", "");
  IHLAB_CHECK(name == "gih" || name == "gih-full",
              "model.name = \"{}\", but this reproduction reads the keys of model \"gih\" or \"gih-full\"", name);
  GihConfig g;
  g.vocab = ngram_config(spec).vocab;
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

OneLayerAttentionConfig attn1_config(const RunSpec& spec) {
  const nlohmann::json& c = table(spec, "model", "attn1");
  OneLayerAttentionConfig cfg;
  cfg.width = c.at("width");
  cfg.window = c.at("window");
  cfg.init_std = c.at("init_std");
  return cfg;
}

AttentionCircuitConfig circuit_config(const RunSpec& spec) {
  const nlohmann::json& c = table(spec, "model", "attention-circuit");
  AttentionCircuitConfig cfg;
  cfg.sigma_init = c.at("sigma_init");
  for (auto& h : c.at("heads")) cfg.heads.push_back(circuit_head_from_json(h));
  return cfg;
}

}  // namespace ihlab
