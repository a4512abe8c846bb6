#pragma once
// Deterministic parallel loops. Work is cut into chunks whose boundaries depend only on the
// problem size and grain, never on the thread count, and every reduction adds chunk partials in
// chunk order. Same inputs give bit-identical results with 1 or N threads.
#include <omp.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ihlab {

void set_threads(int n);  // 0 = all cores
int num_threads();

// Work-conserving threads. A run that trains beside others (a reproduction's main run beside its
// variants' worker processes, the worker processes of a sweep or a seed pool) starts with its
// share of the cores. When a sibling finishes and nothing is left to start, its cores are offered
// to the runs still going, which take them up between steps. No result depends on the thread
// count (chunks are fixed by the problem size), so an offer changes the wall time only.
// offer_threads: this process's run may use up to n threads (0 withdraws). set_thread_offer_file:
// a worker process's offer is the number in this file. adopt_offered_threads, between steps: grow
// to the offer (never shrink; the file is read twice a second at most).
void offer_threads(int n);
void set_thread_offer_file(const std::string& path);
void adopt_offered_threads();

// fn(begin, end) over [0, n) in chunks of `grain`.
template <typename Fn>
void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t chunks = (n + grain - 1) / grain;
  if (chunks == 1 || omp_get_max_threads() == 1 || omp_in_parallel()) {
    for (int64_t c = 0; c < chunks; ++c) fn(c * grain, std::min(n, (c + 1) * grain));
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) fn(c * grain, std::min(n, (c + 1) * grain));
}

// Sum of fn(begin, end) partials over fixed chunks, added in chunk order.
template <typename Acc, typename Fn>
Acc parallel_sum(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return Acc(0);
  int64_t chunks = (n + grain - 1) / grain;
  std::vector<Acc> part(chunks, Acc(0));
  parallel_for(chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) part[c] = fn(c * grain, std::min(n, (c + 1) * grain));
  });
  Acc s(0);
  for (auto& p : part) s += p;
  return s;
}

}  // namespace ihlab
