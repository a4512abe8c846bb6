#pragma once
// Every task ihlab knows: its name, a one-line description, its configuration (a struct whose
// `fields` declare the keys of [task] once, io/fields.h) and a factory. `ihlab list` prints this
// table; the run schema builds the [task] variants from it.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/fields.h"
#include "tasks/task.h"

namespace ihlab {

struct TaskEntry {
  std::string name, description;
  Schema schema;  // keys of [task] for this name, from the config struct's declaration
  std::function<std::unique_ptr<Task>(const nlohmann::json& task_cfg)> make;
  // The typed configuration written back as a table (for tests: it must equal the resolved input).
  std::function<nlohmann::json(const nlohmann::json& task_cfg)> round_trip;
};

// An entry whose keys are Config's fields and whose task is TaskT(Config).
template <class Config, class TaskT>
TaskEntry task_entry(std::string name, std::string description) {
  return {std::move(name), std::move(description), schema_of<Config>(),
          [](const nlohmann::json& c) -> std::unique_ptr<Task> {
            return std::make_unique<TaskT>(read_fields<Config>(c, "task."));
          },
          [](const nlohmann::json& c) { return write_fields(read_fields<Config>(c, "task.")); }};
}

const std::vector<TaskEntry>& task_registry();
const TaskEntry& find_task(const std::string& name);              // throws naming task.name and the known tasks
std::unique_ptr<Task> make_task(const nlohmann::json& task_cfg);  // task_cfg = resolved [task]

// The typed configuration of a resolved [task] table (e.g. a reproduction reading its run's task).
template <class Config>
Config task_config(const nlohmann::json& task_cfg) {
  return read_fields<Config>(task_cfg, "task.");
}

}  // namespace ihlab
