#include "tasks/icl_mc_predictors.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/parallel.h"

namespace ihlab {

namespace {

ReferencePrediction blank(const char* name, const IclMcConfig& cfg, const Batch& b) {
  IHLAB_CHECK(b.length == cfg.length, "icl-mc: batch length {} != task.length {}", b.length, cfg.length);
  for (int32_t t : b.tokens)
    IHLAB_CHECK(t >= 0 && t < cfg.states, "icl-mc: token {} is outside [0, task.states = {})", t, cfg.states);
  return {name, b.size, b.length, cfg.states, std::vector<double>(b.size * b.length * cfg.states, 0.0)};
}

std::span<const int32_t> row_of(const Batch& b, int64_t r) {
  return {b.tokens.data() + r * b.length, size_t(b.length)};
}

}  // namespace

ReferencePrediction icl_mc_uniform(const IclMcConfig& cfg, const Batch& b) {
  ReferencePrediction p = blank("ref.uniform", cfg, b);
  std::fill(p.probs.begin(), p.probs.end(), 1.0 / cfg.states);
  return p;
}

ReferencePrediction icl_mc_unigram(const IclMcConfig& cfg, const Batch& b) {
  ReferencePrediction p = blank("ref.unigram", cfg, b);
  const int k = cfg.states;
  parallel_for(b.size, 16, [&](int64_t lo, int64_t hi) {
    std::vector<double> count(k);
    for (int64_t r = lo; r < hi; ++r) {
      std::fill(count.begin(), count.end(), 0.0);
      auto seq = row_of(b, r);
      for (int64_t i = 0; i < b.length; ++i) {
        count[seq[i]] += 1;
        const double denom = double(i + 1) + k * cfg.alpha;
        double* out = p.at(r, i);
        for (int x = 0; x < k; ++x) out[x] = (count[x] + cfg.alpha) / denom;
      }
    }
  });
  return p;
}

ReferencePrediction icl_mc_ngram(const IclMcConfig& cfg, const Batch& b) {
  ReferencePrediction p = blank(cfg.order == 2 ? "ref.bigram" : "ref.ngram", cfg, b);
  const int k = cfg.states, n = cfg.order, stride = k + 1;
  const std::vector<int> parents = cfg.parents();
  const int64_t m = cfg.contexts();
  parallel_for(b.size, 16, [&](int64_t lo, int64_t hi) {
    std::vector<double> counts(m * stride, 0.0);  // [contexts, k + 1]; the last column is N(z)
    for (int64_t r = lo; r < hi; ++r) {
      auto seq = row_of(b, r);
      for (int64_t i = 0; i < b.length; ++i) {
        if (i >= n - 1) {  // the transition into x_i is now seen
          double* c = counts.data() + context_index(seq, i, parents, k) * stride;
          c[seq[i]] += 1;
          c[k] += 1;
        }
        double* out = p.at(r, i);
        if (i + 1 >= n - 1) {  // the context of x_{i+1} is x_{i-n+2..i}: all seen
          const double* c = counts.data() + context_index(seq, i + 1, parents, k) * stride;
          for (int x = 0; x < k; ++x) out[x] = (c[x] + cfg.alpha) / (c[k] + k * cfg.alpha);
        } else {
          for (int x = 0; x < k; ++x) out[x] = 1.0 / k;
        }
      }
      for (int64_t i = n - 1; i < b.length; ++i)  // zero only the rows touched
        std::fill_n(counts.data() + context_index(seq, i, parents, k) * stride, stride, 0.0);
    }
  });
  return p;
}

ReferencePrediction icl_mc_oracle(const IclMcConfig& cfg, const Batch& b, const std::vector<IclMcChain>& chains) {
  ReferencePrediction p = blank("ref.oracle", cfg, b);
  IHLAB_CHECK(int64_t(chains.size()) == b.size, "icl-mc oracle: {} chains for a batch of {}", chains.size(), b.size);
  const int k = cfg.states, n = cfg.order;
  const std::vector<int> parents = cfg.parents();
  for (const auto& c : chains)
    IHLAB_CHECK(c.kernel.vocab == k && c.kernel.parents == parents && c.kernel.contexts() == cfg.contexts(),
                "icl-mc oracle: a chain does not match task.states = {}, task.order = {}", k, n);
  parallel_for(b.size, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      auto seq = row_of(b, r);
      const IclMcChain& ch = chains[r];
      for (int64_t i = 0; i < b.length; ++i) {
        double* out = p.at(r, i);
        if (i + 1 >= n - 1) {
          const double* row = ch.kernel.row(context_index(seq, i + 1, parents, k));
          std::copy_n(row, k, out);
          continue;
        }
        // x_{i+1} is still inside the stationary tuple: condition its law on x_0..x_i.
        double total = 0;
        for (int64_t s = 0; s < cfg.contexts(); ++s) {
          bool match = true;
          for (int t = 0; t <= i && match; ++t) match = tuple_token(s, t, n, k) == seq[t];
          if (!match) continue;
          out[tuple_token(s, int(i) + 1, n, k)] += ch.stationary[s];
          total += ch.stationary[s];
        }
        for (int x = 0; x < k; ++x) out[x] = total > 0 ? out[x] / total : 1.0 / k;
      }
    }
  });
  return p;
}

std::vector<double> chain_oracle_losses(const IclMcChain& ch, int length) {
  const int k = ch.kernel.vocab, n = int(ch.kernel.parents.size()) + 1;
  const int64_t m = ch.kernel.contexts();
  auto entropy = [](const std::vector<double>& q) {
    double h = 0;
    for (double v : q)
      if (v > 0) h -= v * std::log(v);
    return h;
  };
  // H_t = entropy of the law of (x_0 .. x_{t-1}), t = 0 .. n-1, from the stationary tuple law.
  std::vector<double> H(n, 0.0);
  for (int t = 1; t < n; ++t) {
    int64_t cells = 1;
    for (int j = 0; j < t; ++j) cells *= k;
    std::vector<double> marg(cells, 0.0);
    int64_t div = 1;  // the first t tokens are the top t digits of s
    for (int j = 0; j < n - 1 - t; ++j) div *= k;
    for (int64_t s = 0; s < m; ++s) marg[s / div] += ch.stationary[s];
    H[t] = entropy(marg);
  }
  double rate = 0;
  for (int64_t s = 0; s < m; ++s) {
    if (ch.stationary[s] <= 0) continue;
    double h = 0;
    for (int x = 0; x < k; ++x) {
      double v = ch.kernel.row(s)[x];
      if (v > 0) h -= v * std::log(v);
    }
    rate += ch.stationary[s] * h;
  }
  std::vector<double> out(length, std::numeric_limits<double>::quiet_NaN());  // [length]
  for (int i = 0; i + 1 < length; ++i) out[i] = i + 2 <= n - 1 ? H[i + 2] - H[i + 1] : rate;
  return out;
}

double digamma(double x) {
  IHLAB_CHECK(x > 0, "digamma: argument {} must be > 0", x);
  double r = 0;
  while (x < 10) r -= 1 / x, x += 1;  // psi(x) = psi(x + 1) - 1/x, then the asymptotic series
  const double f = 1 / (x * x);
  return r + std::log(x) - 0.5 / x -
         f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f * (1.0 / 132 - f * 691.0 / 32760)))));
}

double dirichlet_expected_entropy(int k, double alpha) { return digamma(k * alpha + 1) - digamma(alpha + 1); }

double unigram_iid_expected_loss(int k, double alpha, int64_t seen) {
  const double a = alpha, b = (k - 1) * alpha, N = double(seen);
  const double log_beta_ab = std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b);
  double total = 0;
  for (int64_t c = 0; c <= seen; ++c) {
    const double log_choose = std::lgamma(N + 1) - std::lgamma(c + 1.0) - std::lgamma(N - c + 1);
    const double log_beta = std::lgamma(a + c + 1) + std::lgamma(b + N - c) - std::lgamma(a + b + N + 1);
    const double weight = std::exp(log_choose + log_beta - log_beta_ab);  // E[p_1 P(c | p_1)]
    total += weight * -std::log((c + alpha) / (N + k * alpha));
  }
  return k * total;
}

}  // namespace ihlab
