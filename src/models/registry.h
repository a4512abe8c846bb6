#pragma once
// Every model ihlab knows: name, description, its configuration (a struct whose `fields` declare
// the keys of [model] once, io/fields.h), which tasks it fits, and a factory per dtype.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/fields.h"
#include "models/model.h"

namespace ihlab {

struct ModelEntry {
  std::string name, description;
  Schema schema;  // keys of [model] for this name, from the config struct's declaration
  // Whether the model can read this task's inputs and predict its targets (checked before build).
  std::function<bool(const Task&)> fits;
  std::string fits_text;  // what it needs, for the error message ("a token task (...)")
  std::function<std::unique_ptr<Model<float>>(const nlohmann::json&, const Task&, uint64_t seed)> make_f32;
  std::function<std::unique_ptr<Model<double>>(const nlohmann::json&, const Task&, uint64_t seed)> make_f64;
  // The typed configuration written back as a table (for tests: it must equal the resolved input).
  std::function<nlohmann::json(const nlohmann::json& model_cfg)> round_trip;
};

const std::vector<ModelEntry>& model_registry();
const ModelEntry& find_model(const std::string& name);  // throws naming model.name and the known models

// Builds the model of a resolved [model] table for a task; a model that does not fit the task is a
// configuration error naming model.name, the task and the models that do fit it.
template <typename T>
std::unique_ptr<Model<T>> make_model(const nlohmann::json& model_cfg, const Task& task, uint64_t seed);

// The typed configuration of a resolved [model] table (e.g. a reproduction reading its run's model).
template <class Config>
Config model_config(const nlohmann::json& model_cfg) {
  return read_fields<Config>(model_cfg, "model.");
}

}  // namespace ihlab
