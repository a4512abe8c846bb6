#pragma once
// One attention pattern of one example, as models report it (Model::attention), instruments score
// it (analysis/head_scores) and attention.jsonl stores it (io/attention_log).
#include <cstdint>
#include <vector>

namespace ihlab {

// weights[q * keys + k] is what query position q puts on key position k (rows sum to 1 over the
// keys a query may see). Reports draw these as heat-maps.
struct AttentionMap {
  int layer = 0;  // 0-based
  int head = 0;   // 0-based
  int64_t queries = 0, keys = 0;
  std::vector<double> weights;  // [queries, keys]
};

}  // namespace ihlab
