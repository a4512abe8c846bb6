#pragma once
// A set of int64 keys, each mapped to the order of its first insertion: the merged keys of one
// sequence (gih_sequence.cpp, gih_full_kernel.cpp). Open addressing with linear probing; clear()
// is O(1) (a slot is live only when its stamp is the current one), since it runs once per sequence.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

namespace ihlab {

class KeyTable {
 public:
  // Room for `n` keys at most half full; keeps the slots when they are already large enough.
  void reserve(int64_t n) {
    size_t slots = 16;
    while (slots < size_t(2 * n)) slots *= 2;
    if (slots <= key_.size()) return;
    key_.assign(slots, 0), index_.assign(slots, 0), stamp_of_.assign(slots, 0);
    stamp_ = 0, shift_ = 64 - std::countr_zero(slots);
  }
  // Forgets every key.
  void clear() {
    if (++stamp_ == 0) {  // the stamps wrapped
      std::fill(stamp_of_.begin(), stamp_of_.end(), 0u);
      stamp_ = 1;
    }
    size_ = 0;
  }
  // The order of key's first insertion; a new key gets the next one (size() before the call) and
  // sets `inserted`.
  int32_t insert(int64_t key, bool& inserted) {
    const size_t mask = key_.size() - 1;
    size_t slot = size_t((uint64_t(key) * 0x9E3779B97F4A7C15ull) >> shift_) & mask;
    while (stamp_of_[slot] == stamp_ && key_[slot] != key) slot = (slot + 1) & mask;
    inserted = stamp_of_[slot] != stamp_;
    if (inserted) stamp_of_[slot] = stamp_, key_[slot] = key, index_[slot] = size_++;
    return index_[slot];
  }
  int32_t size() const { return size_; }

 private:
  std::vector<int64_t> key_;
  std::vector<int32_t> index_;
  std::vector<uint32_t> stamp_of_;
  uint32_t stamp_ = 0;
  int shift_ = 0;
  int32_t size_ = 0;
};

}  // namespace ihlab
