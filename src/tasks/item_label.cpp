#include "tasks/item_label.h"

#include <cmath>

#include "core/eigen.h"

#include "core/error.h"
#include "core/parallel.h"

namespace ihlab {

namespace {
// Substreams of the rotation seed (Init kind: never the data streams).
constexpr uint64_t kRotationStream = uint64_t(1) << 50;
constexpr uint64_t kFixedPositionStream = kRotationStream + 1;

// Thin Q of the QR of a Gaussian n x k matrix, columns signed so R's diagonal is positive: k
// orthonormal columns distributed uniformly (Haar) on the Stiefel manifold.
Eigen::MatrixXd haar_columns(int64_t n, int64_t k, RandomStream& rs) {
  Eigen::MatrixXd g(n, k);
  for (int64_t c = 0; c < k; ++c)
    for (int64_t r = 0; r < n; ++r) g(r, c) = rs.normal();
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
  Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(n, k);
  const Eigen::MatrixXd& r = qr.matrixQR();
  for (int64_t c = 0; c < k; ++c)
    if (r(c, c) < 0) q.col(c) = -q.col(c);
  return q;
}
}  // namespace

ItemVectors parse_item_vectors(const std::string& s) { return parse_enum<ItemVectors>(s, "task.vectors"); }
ItemPositions parse_item_positions(const std::string& s) { return parse_enum<ItemPositions>(s, "task.positions"); }
QueryIndex parse_query_index(const std::string& s) { return parse_enum<QueryIndex>(s, "task.query"); }
QueryPosition parse_query_position(const std::string& s) { return parse_enum<QueryPosition>(s, "task.query_position"); }

void ItemLabelConfig::validate() const {
  IHLAB_CHECK(pairs >= 1 && pairs <= 4096, "config: key 'task.pairs' = {} is out of range (allowed: 1 .. 4096)", pairs);
  IHLAB_CHECK(dim >= 1 && dim <= 65536, "config: key 'task.dim' = {} is out of range (allowed: 1 .. 65536)", dim);
  if (vectors == ItemVectors::Orthonormal)
    IHLAB_CHECK(dim >= 2 * pairs,
                "config: key 'task.dim' = {} is too small for vectors = \"orthonormal\" with pairs = {} "
                "(allowed: dim >= 2 * pairs = {})",
                dim, pairs, 2 * pairs);
  if (positions != ItemPositions::None)
    IHLAB_CHECK(dim >= pairs + 1,
                "config: key 'task.dim' = {} is too small for orthonormal positions p_0 .. p_N with pairs = {} "
                "(allowed: dim >= pairs + 1 = {}, or positions = \"none\")",
                dim, pairs, pairs + 1);
}

std::vector<double> haar_orthogonal(int64_t n, RandomStream& rs) {
  Eigen::MatrixXd q = haar_columns(n, n, rs);
  std::vector<double> out(n * n);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < n; ++c) out[r * n + c] = q(r, c);
  return out;
}

std::vector<double> orthonormal_rows(int64_t k, int64_t n, RandomStream& rs) {
  Eigen::MatrixXd q = haar_columns(n, k, rs);  // [n, k]
  std::vector<double> out(k * n);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t c = 0; c < n; ++c) out[i * n + c] = q(c, i);
  return out;
}

ItemLabelTask::ItemLabelTask(ItemLabelConfig cfg) : cfg_(cfg) {
  cfg_.validate();
  RandomStream rs(cfg_.rotation_seed, StreamKind::Init, kRotationStream);
  rotation_ = haar_orthogonal(cfg_.dim, rs);
  if (cfg_.positions == ItemPositions::Fixed) {
    RandomStream fp(cfg_.rotation_seed, StreamKind::Init, kFixedPositionStream);
    fixed_positions_ = orthonormal_rows(cfg_.pairs + 1, cfg_.dim, fp);
  }
}

Batch ItemLabelTask::sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const {
  return sample_rows(n, 0, n, seed, kind, index);
}

Batch ItemLabelTask::sample_rows(int64_t total, int64_t begin, int64_t end, uint64_t seed, StreamKind kind,
                                 uint64_t index) const {
  IHLAB_CHECK(total >= 0 && total <= int64_t(1) << 30, "item-label: batch size {} is out of range", total);
  IHLAB_CHECK(begin >= 0 && begin <= end && end <= total, "item-label: rows {} .. {} are not in a batch of {}", begin,
              end, total);
  const int64_t N = cfg_.pairs, D = cfg_.dim, L = length(), F = 2 * D, n = end - begin;
  Batch b;
  b.size = n;
  b.length = L;
  b.feature_dim = F;
  b.value_dim = D;
  b.tokens.assign(n * L, 0);
  b.targets.assign(n * L, -1);
  b.features.assign(size_t(n * L * F), 0.0f);   // [n, L, 2D]
  b.values.assign(size_t(n * D), 0.0);          // [n, D]
  b.num_candidates = N;                         // the N labels in context, for cross-entropy
  b.candidates.assign(size_t(n * N * D), 0.0);  // [n, N, D]
  b.candidate_target.assign(size_t(n), 0);      // [n] = q
  parallel_for(n, 8, [&](int64_t lo, int64_t hi) {
    std::vector<double> mp(D);
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t row = begin + r;  // the row's index in the whole batch: its stream and stratum
      RandomStream rs(seed, kind, index, uint64_t(row));
      // Items then labels, rows of [2N, D].
      std::vector<double> vec;
      if (cfg_.vectors == ItemVectors::Orthonormal) {
        vec = orthonormal_rows(2 * N, D, rs);
      } else {
        vec.resize(2 * N * D);
        const double s = 1.0 / std::sqrt(double(D));
        for (auto& v : vec) v = s * rs.normal();
      }
      std::vector<double> pos;  // [N+1, D]
      if (cfg_.positions == ItemPositions::Random)
        pos = orthonormal_rows(N + 1, D, rs);
      else if (cfg_.positions == ItemPositions::Fixed)
        pos = fixed_positions_;
      else
        pos.assign((N + 1) * D, 0.0);
      const int64_t q = cfg_.query == QueryIndex::Last         ? N - 1
                        : cfg_.query == QueryIndex::Stratified ? row % N
                                                               : rs.randint(N);
      float* f = &b.features[size_t(r * L * F)];
      auto put = [&](int64_t at, const double* tok, const double* p) {
        for (int64_t d = 0; d < D; ++d) f[at * F + d] = float(tok[d]), f[at * F + D + d] = float(p[d]);
      };
      for (int64_t i = 0; i < N; ++i) {
        const double* p = &pos[i * D];
        for (int64_t a = 0; a < D; ++a) {  // M p_i
          double s = 0;
          for (int64_t c = 0; c < D; ++c) s += rotation_[a * D + c] * p[c];
          mp[a] = s;
        }
        put(2 * i, &vec[i * D], p);
        put(2 * i + 1, &vec[(N + i) * D], mp.data());
      }
      put(2 * N, &vec[q * D], &pos[(cfg_.query_position == QueryPosition::Own ? N : q) * D]);
      for (int64_t d = 0; d < D; ++d) b.values[r * D + d] = double(f[(2 * q + 1) * F + d]);
      for (int64_t i = 0; i < N; ++i)
        for (int64_t d = 0; d < D; ++d) b.candidates[(r * N + i) * D + d] = double(f[(2 * i + 1) * F + d]);
      b.candidate_target[r] = int32_t(q);
    }
  });
  return b;
}

Scalars ItemLabelTask::reference_losses(const Batch& b) const {
  if (b.size == 0) return {};
  double s = 0;
  for (double v : b.values) s += v * v;
  return {{"ref.zero", 0.5 * s / double(b.size)}};
}

std::vector<int64_t> ItemLabelTask::query_indices(const Batch& b) const {
  const int64_t N = cfg_.pairs, D = cfg_.dim, L = length(), F = 2 * D;
  std::vector<int64_t> out(b.size, -1);
  for (int64_t r = 0; r < b.size; ++r) {
    const float* f = &b.features[size_t(r * L * F)];
    for (int64_t i = 0; i < N && out[r] < 0; ++i) {
      bool same = true;
      for (int64_t d = 0; d < D && same; ++d) same = f[2 * i * F + d] == f[2 * N * F + d];
      if (same) out[r] = i;
    }
  }
  return out;
}

}  // namespace ihlab
