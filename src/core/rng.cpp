#include "core/rng.h"

#include "core/error.h"

namespace ihlab {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(M0) * c[0], p1 = uint64_t(M1) * c[2];
    c = {uint32_t(p1 >> 32) ^ c[1] ^ k[0], uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ k[1], uint32_t(p0)};
    k[0] += W0;
    k[1] += W1;
  }
  return c;
}

namespace {
// splitmix64 finalizer: spreads (kind, substreams) over the 64-bit substream counter words.
uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

RandomStream::RandomStream(uint64_t seed, StreamKind kind, uint64_t substream, uint64_t substream2)
    : key_{uint32_t(seed), uint32_t(seed >> 32)}, sub_(mix64(mix64(mix64(uint64_t(kind)) ^ substream) ^ substream2)) {}

uint32_t RandomStream::next_u32() {
  if (used_ == 4) {
    block_ = philox4x32({uint32_t(pos_), uint32_t(pos_ >> 32), uint32_t(sub_), uint32_t(sub_ >> 32)}, key_);
    ++pos_;
    used_ = 0;
  }
  return block_[used_++];
}

uint64_t RandomStream::next_u64() {
  uint64_t hi = next_u32();
  return (hi << 32) | next_u32();
}

double RandomStream::uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }

double RandomStream::uniform_open() {
  double u;
  do u = uniform();
  while (u == 0.0);
  return u;
}

double RandomStream::normal() {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return spare_normal_;
  }
  double u1 = uniform_open(), u2 = uniform();
  double r = std::sqrt(-2.0 * std::log(u1)), th = 2.0 * M_PI * u2;
  spare_normal_ = r * std::sin(th);
  has_spare_normal_ = true;
  return r * std::cos(th);
}

int64_t RandomStream::randint(int64_t n) {
  IHLAB_CHECK(n > 0, "randint: range must be positive, got {}", n);
  uint64_t un = uint64_t(n), limit = UINT64_MAX - UINT64_MAX % un;
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return int64_t(x % un);
}

double RandomStream::gamma(double shape) {
  IHLAB_CHECK(shape > 0, "gamma: shape must be > 0, got {}", shape);
  if (shape < 1.0) {
    // Gamma(a) = Gamma(a+1) * U^(1/a); computed in log space so tiny alphas do not underflow to 0
    // before normalization in dirichlet() (which rescales by the max).
    double g = gamma(shape + 1.0);
    return g * std::exp(std::log(uniform_open()) / shape);
  }
  double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x = normal(), v = 1.0 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    double u = uniform_open();
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

std::vector<double> RandomStream::dirichlet(int d, double alpha) {
  std::vector<double> g(d);
  double s = 0;
  for (auto& x : g) s += (x = gamma(alpha));
  if (s <= 0) {  // every component underflowed: the draw is a vertex, pick it uniformly
    std::fill(g.begin(), g.end(), 0.0);
    g[randint(d)] = 1.0;
    return g;
  }
  for (auto& x : g) x /= s;
  return g;
}

int RandomStream::categorical(const double* p, int n) {
  double total = 0;
  for (int i = 0; i < n; ++i) total += p[i];
  double u = uniform() * total, acc = 0;
  for (int i = 0; i < n; ++i) {
    acc += p[i];
    if (u < acc) return i;
  }
  for (int i = n - 1; i >= 0; --i)
    if (p[i] > 0) return i;
  return n - 1;
}

}  // namespace ihlab
