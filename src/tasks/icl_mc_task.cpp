#include "tasks/icl_mc_task.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/parallel.h"
#include "tasks/icl_mc_predictors.h"

namespace ihlab {

namespace {
constexpr int64_t kOracleKernels = 4096;  // kernels behind the constant ref.oracle column
constexpr int64_t kChunk = 1024;          // sequences per Monte Carlo chunk (bounds memory)
}  // namespace

IclMcTask::IclMcTask(IclMcConfig cfg) : cfg_(cfg) { cfg_.validate(); }

void IclMcTask::generate(int64_t begin, int64_t end, uint64_t seed, StreamKind kind, uint64_t index, Batch* b,
                         std::vector<IclMcChain>* chains) const {
  IHLAB_CHECK(begin >= 0 && end >= begin && end - begin <= int64_t(1) << 30,
              "icl-mc: batch rows [{}, {}) are out of range", begin, end);
  const int64_t n = end - begin, L = cfg_.length;
  if (b) {
    b->size = n;
    b->length = L;
    b->tokens.resize(n * L);       // [n, L]
    b->targets.assign(n * L, -1);  // [n, L]
  }
  if (chains) chains->resize(n);
  parallel_for(n, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      RandomStream rs(seed, kind, index, uint64_t(begin + r));
      IclMcChain chain = sample_chain(cfg_, rs);
      if (b) {  // the tokens come after the chain in the stream
        std::vector<int32_t> seq = sample_tokens(chain, int(L), rs);
        std::copy(seq.begin(), seq.end(), b->tokens.begin() + r * L);
        for (int64_t i = 0; i + 1 < L; ++i) b->targets[r * L + i] = seq[i + 1];
      }
      if (chains) (*chains)[r] = std::move(chain);
    }
  });
}

Batch IclMcTask::sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const {
  Batch b;
  generate(0, n, seed, kind, index, &b, nullptr);
  return b;
}

std::vector<IclMcChain> IclMcTask::chains(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const {
  std::vector<IclMcChain> out;
  generate(0, n, seed, kind, index, nullptr, &out);
  return out;
}

std::vector<std::string> IclMcTask::reference_names() const {
  return {"ref.uniform", "ref.unigram", cfg_.order == 2 ? "ref.bigram" : "ref.ngram", "ref.oracle"};
}

std::vector<ReferencePrediction> IclMcTask::predictions(const Batch& b, const std::vector<IclMcChain>* chains) const {
  std::vector<ReferencePrediction> out;
  out.push_back(icl_mc_uniform(cfg_, b));
  out.push_back(icl_mc_unigram(cfg_, b));
  out.push_back(icl_mc_ngram(cfg_, b));
  if (chains) out.push_back(icl_mc_oracle(cfg_, b, *chains));
  return out;
}

std::vector<PositionLosses> IclMcTask::position_losses(const Batch& b, const std::vector<IclMcChain>* chains) const {
  std::vector<PositionLosses> out;
  for (const auto& p : predictions(b, chains)) {
    PositionAccumulator acc(b.length);
    acc.add(target_losses(p, b), b.size, b.length);
    out.push_back(acc.finish(p.name));
  }
  return out;
}

double IclMcTask::expected_oracle_mean() const {
  std::call_once(oracle_once_, [&] {
    std::vector<double> per(cfg_.length - 1, 0.0);  // [targets]: expected loss at positions 0..L-2
    if (cfg_.variant == IclMcVariant::Unigram) {
      std::fill(per.begin(), per.end(), dirichlet_expected_entropy(cfg_.states, cfg_.alpha));
    } else {
      std::vector<IclMcChain> ch = chains(kOracleKernels, kExpectationSeed, StreamKind::Eval, kExpectationIndex + 1);
      for (const auto& c : ch) {  // summed in kernel order: deterministic
        std::vector<double> l = chain_oracle_losses(c, cfg_.length);
        for (size_t i = 0; i < per.size(); ++i) per[i] += l[i] / double(kOracleKernels);
      }
    }
    double s = 0;
    for (double v : per) s += v;
    oracle_mean_ = s / double(per.size());
  });
  return oracle_mean_;
}

Scalars IclMcTask::reference_losses(const Batch& b) const {
  if (b.size == 0) return {};
  // In chunks of rows, so the [rows, length, states] predictions stay small for big validation sets.
  std::vector<double> sum(3, 0.0);
  int64_t targets = 0;
  std::vector<std::string> names;
  for (int64_t begin = 0; begin < b.size; begin += kChunk) {
    Batch part = b.slice(begin, std::min(b.size, begin + kChunk));
    std::vector<ReferencePrediction> preds = predictions(part, nullptr);
    names.clear();
    for (size_t j = 0; j < preds.size(); ++j) {
      names.push_back(preds[j].name);
      for (double v : target_losses(preds[j], part))
        if (!std::isnan(v)) sum[j] += v, targets += j == 0;
    }
  }
  if (targets == 0) return {};
  Scalars s;
  for (size_t j = 0; j < names.size(); ++j) s.push_back({names[j], sum[j] / double(targets)});
  // Every position i <= L-2 is a target in a batch from sample(), so the oracle's mean over the
  // targets is the mean of its per-position expectations.
  s.push_back({"ref.oracle", expected_oracle_mean()});
  return s;
}

std::vector<PositionLosses> IclMcTask::expected_position_losses(int64_t sequences, uint64_t seed) const {
  IHLAB_CHECK(sequences >= 2, "icl-mc: expected losses need at least 2 sequences, got {}", sequences);
  const int64_t L = cfg_.length;
  const std::vector<std::string> names = reference_names();
  std::vector<PositionAccumulator> acc(names.size(), PositionAccumulator(L));
  for (int64_t begin = 0; begin < sequences; begin += kChunk) {
    const int64_t n = std::min(kChunk, sequences - begin);
    // Rows begin .. begin+n-1 of one big sample: the same sequences whatever kChunk is.
    Batch b;
    std::vector<IclMcChain> ch;
    generate(begin, begin + n, seed, StreamKind::Eval, kExpectationIndex, &b, &ch);
    std::vector<ReferencePrediction> preds = predictions(b, nullptr);
    for (size_t j = 0; j < preds.size(); ++j) acc[j].add(target_losses(preds[j], b), n, L);
    std::vector<double> oracle(n * L);  // [n, L]: exact per-chain expectations (Rao-Blackwellized)
    for (int64_t r = 0; r < n; ++r) {
      std::vector<double> l = chain_oracle_losses(ch[r], int(L));
      std::copy(l.begin(), l.end(), oracle.begin() + r * L);
    }
    acc[3].add(oracle, n, L);
  }
  std::vector<PositionLosses> out;
  for (size_t j = 0; j < names.size(); ++j) out.push_back(acc[j].finish(names[j]));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto set_exact = [&](PositionLosses& p, auto value_at) {
    p.exact = true;
    for (int64_t i = 0; i < L; ++i) {
      p.mean[i] = i + 1 < L ? value_at(i) : nan;
      p.std_error[i] = 0;
    }
  };
  set_exact(out[0], [&](int64_t) { return std::log(double(cfg_.states)); });
  if (cfg_.variant == IclMcVariant::Unigram) {
    set_exact(out[1], [&](int64_t i) { return unigram_iid_expected_loss(cfg_.states, cfg_.alpha, i + 1); });
    const double h = dirichlet_expected_entropy(cfg_.states, cfg_.alpha);
    set_exact(out[3], [&](int64_t) { return h; });
  }
  return out;
}

}  // namespace ihlab
