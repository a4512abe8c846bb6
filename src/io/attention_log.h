#pragma once
// attention.jsonl: attention patterns of one fixed validation sequence over training, one JSON
// object per line (reports draw them as heat-maps with a slider over the snapshots):
//   {"step": 120, "stage": 0, "offset": 36, "tokens": [...],
//    "maps": [{"layer": 0, "head": 1, "queries": 64, "keys": 64, "query_offset": 36,
//              "key_offset": 36, "weights": [...]}]}     weights: [queries, keys] row-major
// Only the last `keep` query and key positions are kept (tokens from `offset` on; a map's first
// row is position query_offset): late positions see the most context, and the file stays small. Lines are flushed as
// written; a line cut off by a crash is dropped on resume, like metrics.csv rows.
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "core/attention_map.h"

namespace ihlab {

class AttentionLog {
 public:
  // Creates/truncates `path`, or with resume_after_step >= 0 keeps the snapshots up to that step
  // (throws ihlab::Error naming the line when a complete line is not a snapshot).
  AttentionLog(std::string path, int64_t keep, int64_t resume_after_step = -1);
  void write(int64_t step, int64_t stage, const std::vector<int32_t>& tokens, const std::vector<AttentionMap>& maps);
  int64_t last_step() const { return last_step_; }  // of the newest snapshot; -1 if none

 private:
  std::string path_;
  int64_t keep_;
  std::ofstream out_;
  int64_t last_step_ = -1;
};

}  // namespace ihlab
