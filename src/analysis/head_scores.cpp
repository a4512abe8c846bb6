#include "analysis/head_scores.h"

#include <fmt/format.h>

#include "analysis/induction_metrics.h"
#include "core/error.h"

namespace ihlab {

Scalars attention_head_scores(const std::vector<std::vector<AttentionMap>>& maps, const Batch& b) {
  Scalars out;
  if (maps.empty() || maps[0].empty()) return out;
  const int64_t L = b.length, n = int64_t(maps.size());
  IHLAB_CHECK(n <= b.size, "head scores: {} sequences of attention for a batch of {}", n, b.size);
  std::span<const int32_t> tokens(b.tokens.data(), size_t(n * L));
  for (size_t m = 0; m < maps[0].size(); ++m) {
    const AttentionMap& first = maps[0][m];
    if (first.queries != L || first.keys != L) continue;  // only square maps over the whole sequence
    std::vector<double> a(size_t(n * L * L));             // [n, L, L] of this head
    for (int64_t s = 0; s < n; ++s) {
      IHLAB_CHECK(maps[s].size() == maps[0].size(), "head scores: sequence {} has a different set of maps", s);
      std::copy(maps[s][m].weights.begin(), maps[s][m].weights.end(), a.begin() + s * L * L);
    }
    std::span<const double> as(a);
    const std::string id = fmt::format("l{}.h{}", first.layer, first.head);
    out.push_back({"prev." + id, previous_token_score(as, L)});
    out.push_back({"ind." + id, tl_induction_score(as, tokens, L)});
    out.push_back({"pm." + id, prefix_matching_score(as, tokens, L)});
  }
  return out;
}

}  // namespace ihlab
