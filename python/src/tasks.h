#pragma once
#include <memory>

#include "bindings.h"
#include "tasks/task.h"

namespace ihlab::py {

struct PyTask {
  explicit PyTask(const pyb::object& config);
  nlohmann::json config_;  // the resolved [task] table
  std::shared_ptr<const Task> task;
};

}  // namespace ihlab::py
