#include "models/gih_key_cache.h"

#include <algorithm>
#include <cstring>
#include <list>
#include <mutex>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace ihlab::gih_detail {

namespace {

// At most this many batches and bytes are kept per dtype (a run uses two: training and validation).
constexpr size_t kMaxEntries = 4;
constexpr int64_t kMaxEntryBytes = int64_t(1) << 28;

template <typename T>
struct KeyCache {
  std::mutex mu;
  std::list<std::unique_ptr<KeyCacheEntry<T>>> entries;  // most recently returned first
};

template <typename T>
KeyCache<T>& key_cache() {
  static KeyCache<T> cache;
  return cache;
}

}  // namespace

template <typename T>
bool KeyChunk<T>::built_from(const int32_t* x, int64_t rows, int64_t row_len) const {
  const size_t count = size_t(rows * row_len);
  return tokens.size() == count && std::memcmp(tokens.data(), x, count * sizeof(int32_t)) == 0;
}

template <typename T>
void KeyChunk<T>::build(const Plan<T>& P, const int32_t* x, int64_t rows, int64_t row_len, Work<T>& wk) {
  const int H = P.H;
  tokens.assign(x, x + rows * row_len);
  ints.clear(), counts.clear(), at.clear(), n.clear(), qrow.clear();
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* xr = x + r * row_len;
    bool ok = true;
    for (int64_t i = 0; i < row_len; ++i) ok &= unsigned(xr[i]) < unsigned(P.d);
    SeqKeys<T> k;
    if (ok) k = merge_keys(P, xr, wk);
    at.push_back(int64_t(counts.size()));
    n.push_back(k.n);
    for (int h = 0; h < H; ++h) {
      qrow.push_back(k.qrow[h]);
      if (k.np) ints.insert(ints.end(), k.pat[h], k.pat[h] + k.np);
    }
    if (k.np) {
      ints.insert(ints.end(), k.tok, k.tok + k.np);
      counts.insert(counts.end(), k.count, k.count + k.np);
    }
  }
}

template <typename T>
SeqKeys<T> KeyChunk<T>::view(int H, int64_t r) const {
  SeqKeys<T> k;
  k.n = n[r];
  k.np = (r + 1 < int64_t(at.size()) ? at[r + 1] : int64_t(counts.size())) - at[r];
  const int32_t* p = ints.data() + (H + 1) * at[r];
  for (int h = 0; h < H; ++h) k.pat[h] = p + h * k.np, k.qrow[h] = qrow[r * H + h];
  k.tok = p + H * k.np;
  k.count = counts.data() + at[r];
  return k;
}

template <typename T>
int64_t KeyChunk<T>::bytes() const {
  return int64_t(tokens.size() * sizeof(int32_t) + ints.size() * sizeof(int32_t) + counts.size() * sizeof(T) +
                 (at.size() + n.size() + qrow.size()) * sizeof(int64_t));
}

template <typename T>
std::unique_ptr<KeyCacheEntry<T>> take_key_entry(const Plan<T>& P, const int32_t* tokens, int64_t n, int64_t grain) {
  const int64_t row_len = P.L + 1;
  const std::string shape =
      fmt::format("{} {} {} {} {} {} {} [{}]", sizeof(T), n, grain, row_len, P.H, P.M, P.d, fmt::join(P.off, ","));
  KeyCache<T>& cache = key_cache<T>();
  std::lock_guard lock(cache.mu);
  auto pick = std::find_if(cache.entries.begin(), cache.entries.end(), [&](const auto& e) {
    return e->shape == shape && e->chunks[0].built_from(tokens, std::min(n, grain), row_len);
  });
  if (pick == cache.entries.end()) {  // a batch not seen (lately): a new entry, the oldest goes on return
    auto e = std::make_unique<KeyCacheEntry<T>>();
    e->shape = shape;
    e->chunks.resize(size_t((n + grain - 1) / grain));
    return e;
  }
  auto e = std::move(*pick);
  cache.entries.erase(pick);
  return e;
}

template <typename T>
void return_key_entry(std::unique_ptr<KeyCacheEntry<T>> entry) {
  int64_t bytes = 0;
  for (const auto& c : entry->chunks) bytes += c.bytes();
  if (bytes > kMaxEntryBytes) return;
  KeyCache<T>& cache = key_cache<T>();
  std::lock_guard lock(cache.mu);
  cache.entries.push_front(std::move(entry));
  if (cache.entries.size() > kMaxEntries) cache.entries.pop_back();
}

#define IHLAB_GIH_KEY_CACHE_INSTANTIATE(T)                                                                        \
  template struct KeyChunk<T>;                                                                                    \
  template std::unique_ptr<KeyCacheEntry<T>> take_key_entry<T>(const Plan<T>&, const int32_t*, int64_t, int64_t); \
  template void return_key_entry<T>(std::unique_ptr<KeyCacheEntry<T>>);
IHLAB_GIH_KEY_CACHE_INSTANTIATE(float)
IHLAB_GIH_KEY_CACHE_INSTANTIATE(double)
#undef IHLAB_GIH_KEY_CACHE_INSTANTIATE

}  // namespace ihlab::gih_detail
