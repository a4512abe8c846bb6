#include "reproduce/run_config.h"

#include "core/error.h"
#include "models/gih_full_model.h"
#include "models/registry.h"
#include "tasks/registry.h"

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
  return task_config<NgramMarkovConfig>(table(spec, "task", "ngram-markov"));
}

BurstyConfig bursty_config(const RunSpec& spec) { return task_config<BurstyConfig>(table(spec, "task", "bursty")); }

MixedTargetConfig mixed_target_config(const RunSpec& spec) {
  return task_config<MixedTargetConfig>(table(spec, "task", "mixed-target"));
}

ItemLabelConfig item_label_config(const RunSpec& spec) {
  return task_config<ItemLabelConfig>(table(spec, "task", "item-label"));
}

GihConfig gih_config(const RunSpec& spec) {
  const nlohmann::json& c = model_table(spec);
  const std::string name = c.value("name", "");
  IHLAB_CHECK(name == "gih" || name == "gih-full",
              "model.name = \"{}\", but this reproduction reads the keys of model \"gih\" or \"gih-full\"", name);
  GihConfig g = name == "gih" ? model_config<GihConfig>(c) : model_config<GihFullConfig>(c).base;
  g = g.with_resolved_loss();
  g.vocab = ngram_config(spec).vocab;
  return g;
}

OneLayerAttentionConfig attn1_config(const RunSpec& spec) {
  return model_config<OneLayerAttentionConfig>(table(spec, "model", "attn1"));
}

AttentionCircuitConfig circuit_config(const RunSpec& spec) {
  return model_config<AttentionCircuitConfig>(table(spec, "model", "attention-circuit"));
}

}  // namespace ihlab
