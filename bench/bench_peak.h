#pragma once
// The denominator of the timers' fraction_of_peak: the aggregate GEMM rate of `threads` threads,
// each multiplying its own n x n matrices of T with single-threaded Eigen (as ihlab uses it).
// Best of `reps` rounds after one warm-up round, GFLOP/s.
#include <algorithm>
#include <chrono>
#include <vector>

#include "core/eigen.h"

namespace ihlab::bench {

template <typename T>
double measured_peak_gflops(int threads, int n, int reps) {
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Clock = std::chrono::steady_clock;
  std::vector<Mat> A(threads), B(threads), C(threads);
  for (int t = 0; t < threads; ++t) A[t] = Mat::Random(n, n), B[t] = Mat::Random(n, n), C[t] = Mat::Zero(n, n);
  double best = 1e30;
  for (int r = 0; r < reps + 1; ++r) {  // the first round warms caches and pages
    auto t0 = Clock::now();
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) C[t].noalias() = A[t] * B[t];
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (r > 0) best = std::min(best, s);
  }
  volatile T sink = C[0](0, 0);
  (void)sink;
  return double(threads) * 2.0 * double(n) * n * n / best / 1e9;
}

}  // namespace ihlab::bench
