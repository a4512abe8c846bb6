#include "tasks/icl_mc.h"

#include "core/eigen.h"
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace ihlab {

IclMcVariant parse_icl_mc_variant(const std::string& s) { return parse_enum<IclMcVariant>(s, "task.variant"); }

const char* icl_mc_variant_name(IclMcVariant v) { return enum_name(v); }

void IclMcConfig::validate() const {
  IHLAB_CHECK(states >= 2 && states <= 4096, "task.states = {} is out of range (allowed: 2 <= states <= 4096)", states);
  IHLAB_CHECK(order >= 2 && order <= 16, "task.order = {} is out of range (allowed: 2 <= order <= 16)", order);
  IHLAB_CHECK(length >= order && length <= 1 << 20,
              "task.length = {} is out of range (allowed: order = {} <= length <= {}: the first order-1 "
              "tokens start the chain and at least one more follows)",
              length, order, 1 << 20);
  IHLAB_CHECK(alpha > 0 && std::isfinite(alpha), "task.alpha = {} is out of range (allowed: alpha > 0)", alpha);
  int64_t m = 1;
  for (int j = 1; j < order; ++j) {
    m *= states;
    IHLAB_CHECK(m <= (int64_t(1) << 20),
                "task.states^(task.order - 1) = {}^{} exceeds the limit of {} kernel rows; lower task.states "
                "or task.order",
                states, order - 1, int64_t(1) << 20);
  }
}

int64_t IclMcConfig::contexts() const {
  int64_t m = 1;
  for (int j = 1; j < order; ++j) m *= states;
  return m;
}

std::vector<int> IclMcConfig::parents() const {
  std::vector<int> p;
  for (int j = 1; j < order; ++j) p.push_back(-j);
  return p;
}

namespace {

// A k x k doubly stochastic matrix, row-major: a Dirichlet mixture of permutation matrices.
std::vector<double> doubly_stochastic_matrix(int k, double alpha, RandomStream& rs) {
  std::vector<std::vector<int>> perms;
  if (k <= 4) {  // every permutation, in lexicographic order
    std::vector<int> p(k);
    std::iota(p.begin(), p.end(), 0);
    do perms.push_back(p);
    while (std::next_permutation(p.begin(), p.end()));
  } else {
    for (int j = 0; j < k * k; ++j) {
      std::vector<int> p(k);
      std::iota(p.begin(), p.end(), 0);
      for (int i = k - 1; i > 0; --i) std::swap(p[i], p[rs.randint(i + 1)]);  // Fisher-Yates
      perms.push_back(std::move(p));
    }
  }
  std::vector<double> w = rs.dirichlet(int(perms.size()), alpha);
  std::vector<double> m(size_t(k) * k, 0.0);  // [k, k]
  for (size_t j = 0; j < perms.size(); ++j)
    for (int a = 0; a < k; ++a) m[size_t(a) * k + perms[j][a]] += w[j];
  return m;
}

// pi P for the tuple chain, written into `out` ([contexts]).
void tuple_step(const MarkovKernel& K, const std::vector<double>& pi, std::vector<double>& out) {
  const int64_t m = K.contexts();
  const int k = K.vocab;
  std::fill(out.begin(), out.end(), 0.0);
  for (int64_t s = 0; s < m; ++s) {
    if (pi[s] == 0) continue;
    const double* row = K.row(s);
    const int64_t base = (s * k) % m;
    for (int x = 0; x < k; ++x) out[base + x] += pi[s] * row[x];
  }
}

std::vector<double> lazy_power_iteration(const MarkovKernel& K) {
  const int64_t m = K.contexts();
  std::vector<double> pi(m, 1.0 / double(m)), next(m);
  for (int it = 0; it < 20000; ++it) {
    tuple_step(K, pi, next);
    double change = 0, total = 0;
    for (int64_t s = 0; s < m; ++s) {
      double v = 0.5 * (pi[s] + next[s]);
      change += std::abs(v - pi[s]);
      total += v;
      next[s] = v;
    }
    for (auto& v : next) v /= total;
    pi.swap(next);
    if (change < 1e-13) break;
  }
  return pi;
}

}  // namespace

std::vector<double> stationary_tuple_distribution(const MarkovKernel& K) {
  const int k = K.vocab;
  const int64_t m = K.contexts();
  for (size_t j = 0; j < K.parents.size(); ++j)
    IHLAB_CHECK(K.parents[j] == -int(j) - 1,
                "icl-mc: stationary distribution needs parents -1, -2, ... in order (got {} at {})", K.parents[j], j);
  if (m <= 64) {
    Eigen::MatrixXd A = Eigen::MatrixXd::Zero(m, m);  // A = P^T - I, then the last row says sum pi = 1
    for (int64_t s = 0; s < m; ++s)
      for (int x = 0; x < k; ++x) A((s * k) % m + x, s) += K.row(s)[x];
    A -= Eigen::MatrixXd::Identity(m, m);
    A.row(m - 1).setOnes();
    Eigen::VectorXd b = Eigen::VectorXd::Zero(m);
    b(m - 1) = 1.0;
    Eigen::FullPivLU<Eigen::MatrixXd> lu(A);
    if (lu.isInvertible()) {
      Eigen::VectorXd pi = lu.solve(b);
      if (pi.allFinite() && pi.minCoeff() > -1e-10) {
        std::vector<double> out(m);
        double total = 0;
        for (int64_t s = 0; s < m; ++s) total += (out[s] = std::max(0.0, pi(s)));
        for (auto& v : out) v /= total;
        return out;
      }
    }
  }
  return lazy_power_iteration(K);
}

IclMcChain sample_chain(const IclMcConfig& cfg, RandomStream& rs) {
  const int k = cfg.states;
  const int64_t m = cfg.contexts();
  IclMcChain c;
  c.kernel.vocab = k;
  c.kernel.parents = cfg.parents();
  c.kernel.probs.resize(m * k);  // [contexts, k]
  double* P = c.kernel.probs.data();
  switch (cfg.variant) {
    case IclMcVariant::Standard:
      for (int64_t s = 0; s < m; ++s) {
        std::vector<double> row = rs.dirichlet(k, cfg.alpha);
        std::copy(row.begin(), row.end(), P + s * k);
      }
      c.stationary = stationary_tuple_distribution(c.kernel);
      break;
    case IclMcVariant::DoublyStochastic: {
      // Row ctx = a * k^{n-2} + s: a = oldest token (most significant digit), s = the suffix.
      const int64_t suffixes = m / k;
      for (int64_t s = 0; s < suffixes; ++s) {
        std::vector<double> M = doubly_stochastic_matrix(k, cfg.alpha, rs);
        for (int a = 0; a < k; ++a) std::copy_n(M.data() + size_t(a) * k, k, P + (a * suffixes + s) * k);
      }
      c.stationary.assign(m, 1.0 / double(m));
      break;
    }
    case IclMcVariant::Unigram: {
      std::vector<double> p = rs.dirichlet(k, cfg.alpha);
      for (int64_t s = 0; s < m; ++s) std::copy(p.begin(), p.end(), P + s * k);
      c.stationary.assign(m, 1.0);  // tokens are i.i.d. p: the tuple law is a product
      for (int64_t s = 0; s < m; ++s)
        for (int t = 0; t < cfg.order - 1; ++t) c.stationary[s] *= p[tuple_token(s, t, cfg.order, k)];
      break;
    }
  }
  return c;
}

std::vector<int32_t> sample_tokens(const IclMcChain& chain, int length, RandomStream& rs) {
  const MarkovKernel& K = chain.kernel;
  const int k = K.vocab, order = int(K.parents.size()) + 1;
  const int64_t m = K.contexts();
  IHLAB_CHECK(length >= order, "icl-mc: sequence length {} must be >= order {}", length, order);
  IHLAB_CHECK(m <= int64_t(1) << 30 && int64_t(chain.stationary.size()) == m,
              "icl-mc: stationary distribution has {} entries for {} tuples", chain.stationary.size(), m);
  std::vector<int32_t> seq(length);
  const int64_t s0 = rs.categorical(chain.stationary.data(), int(m));
  for (int t = 0; t < order - 1; ++t) seq[t] = tuple_token(s0, t, order, k);
  for (int i = order - 1; i < length; ++i) seq[i] = rs.categorical(K.row(context_index(seq, i, K.parents, k)), k);
  return seq;
}

}  // namespace ihlab
