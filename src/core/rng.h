#pragma once
// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
//
// A RandomStream is a pure function of (seed, stream kind, substream id, position): no state is
// shared between threads, so sample i of step s is the same number whatever the thread count, and
// resuming at step s needs only s. Streams for initialization, data and evaluation never overlap.
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

namespace ihlab {

enum class StreamKind : uint32_t { Init = 1, Data = 2, Eval = 3, Test = 4 };

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

class RandomStream {
 public:
  // `substream` separates independent draws of one kind, e.g. (step, sample index) for data.
  RandomStream(uint64_t seed, StreamKind kind, uint64_t substream = 0, uint64_t substream2 = 0);

  uint32_t next_u32();
  uint64_t next_u64();
  double uniform();            // in [0, 1), 53 random bits
  double uniform_open();       // in (0, 1)
  double normal();             // standard normal (Box-Muller, both halves used)
  int64_t randint(int64_t n);  // uniform in [0, n), unbiased
  double gamma(double shape);  // Gamma(shape, 1), Marsaglia-Tsang (boosted below 1)
  std::vector<double> dirichlet(int d, double alpha);
  int categorical(const double* p, int n);  // p need not be normalized

  uint64_t position() const { return pos_; }

 private:
  std::array<uint32_t, 2> key_;
  uint64_t sub_;
  uint64_t pos_ = 0;  // counts 128-bit blocks
  std::array<uint32_t, 4> block_{};
  int used_ = 4;
  bool has_spare_normal_ = false;
  double spare_normal_ = 0;
};

}  // namespace ihlab
