#pragma once
// Named scalars: one metrics row, a model's probes, a task's reference losses. A vector of pairs
// (not a map) because the order is the column order of metrics.csv.
#include <string>
#include <utility>
#include <vector>

namespace ihlab {

using Scalars = std::vector<std::pair<std::string, double>>;

}  // namespace ihlab
