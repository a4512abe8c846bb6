#include "train/run_schema.h"

#include "models/registry.h"
#include "tasks/registry.h"
#include "train/run_spec.h"

namespace ihlab {

std::map<std::string, Schema> task_variant_schemas() {
  std::map<std::string, Schema> out;
  for (auto& t : task_registry()) out[t.name] = t.schema;
  return out;
}

std::map<std::string, Schema> model_variant_schemas() {
  std::map<std::string, Schema> out;
  for (auto& m : model_registry()) out[m.name] = m.schema;
  return out;
}

Schema run_schema() {
  static const Schema schema = schema_of<RunSpec>();
  return schema;
}

}  // namespace ihlab
