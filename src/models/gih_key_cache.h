#pragma once
// The merged keys (SeqKeys) of a batch that comes back call after call: a fixed training set used
// whole, the validation set. Merging a sequence costs about as much as running it unmerged, so the
// keys are built on the first call and kept; every later call checks each chunk's tokens against
// the copy they were built from (a changed chunk is rebuilt), so a stale key is never used.
// Internal to gih_kernel.cpp.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/gih_kernel_detail.h"

namespace ihlab::gih_detail {

// The merged keys of the sequences of one chunk, stored back to back.
template <typename T>
struct KeyChunk {
  std::vector<int32_t> tokens;  // [rows, row_len]: what the keys were built from
  avec<int32_t> ints;           // per sequence: pat [H][np], then tok [np]
  avec<T> counts;               // per sequence: count [np]
  std::vector<int64_t> at;      // [rows]: the sequence's first count; its ints start at (H + 1) at
  std::vector<int64_t> n;       // [rows]: merged keys
  std::vector<int64_t> qrow;    // [rows, H]

  bool built_from(const int32_t* x, int64_t rows, int64_t row_len) const;
  // Rows whose tokens are out of range are skipped (the caller reports them).
  void build(const Plan<T>& P, const int32_t* x, int64_t rows, int64_t row_len, Work<T>& wk);
  SeqKeys<T> view(int H, int64_t r) const;
  int64_t bytes() const;
};

template <typename T>
struct KeyCacheEntry {
  std::string shape;  // the batch shape and everything in the plan the keys depend on
  std::vector<KeyChunk<T>> chunks;
};

// Takes the entry built for this batch out of the cache (one of the same shape whose first chunk
// was built from these tokens), or a new empty one. Chunks after the first may still be stale.
template <typename T>
std::unique_ptr<KeyCacheEntry<T>> take_key_entry(const Plan<T>& P, const int32_t* tokens, int64_t n, int64_t grain);

// Puts the entry back for the next call (dropped when larger than the cache allows).
template <typename T>
void return_key_entry(std::unique_ptr<KeyCacheEntry<T>> entry);

}  // namespace ihlab::gih_detail
