#pragma once
// The attention circuit's fused forward/backward over a batch (see attention_circuit.h for the
// math), kept apart from the model glue so that tests can run it at either lane width.
//
// Every branch of the per-sequence pass depends on positions only, never on the data, so
// several sequences run in lock-step as the lanes of one vector: `Lanes` carries kLanes
// sequences, one per lane, through exactly the operations the one-sequence pass (V = double)
// performs, in the same order. Results are therefore bit-identical at both widths (checked by
// tests/test_attention_circuit.cpp); the lanes only remove the per-sequence dependency chains
// (the measured layer-1 gradient on 20000 sequences of L = 20: bench_circuit).
#include <cstdint>
#include <vector>

#include "models/attention_circuit.h"
#include "tasks/batch.h"

namespace ihlab::circuit_kernel {

// Lanes per vector: as many doubles as the widest vector register the build targets, so that no
// function passes a vector the ABI splits (GCC's -Wpsabi).
#if defined(__AVX512F__)
inline constexpr int kLanes = 8;
#elif defined(__AVX__)
inline constexpr int kLanes = 4;
#else
inline constexpr int kLanes = 2;
#endif
typedef double Lanes __attribute__((vector_size(kLanes * sizeof(double))));

// Lanes of a value type: 1 for double.
template <class V>
inline constexpr int lanes_of = sizeof(V) / sizeof(double);

// Everything one evaluation needs, shared read-only by the sequence loops.
struct Pass {
  const AttentionCircuitConfig& cfg;
  const std::vector<std::vector<int>>& hp;  // per head: parameter indices
  const std::vector<double>& theta;         // parameter values
  int64_t L, d, S, F;                       // F = S * d floats per position
  int layers = 0;
  int first = 1;                             // the first layer computed; earlier ones come cached
  std::vector<std::vector<double>> pos_att;  // positional heads: [L queries, L keys] (sequence-free)

  double value_w(size_t h) const { return theta[hp[h].back()]; }
  double kq(size_t h) const { return cfg.heads[h].kq_product() ? theta[hp[h][0]] * theta[hp[h][1]] : theta[hp[h][0]]; }
  bool queried(size_t h, int64_t t) const { return cfg.heads[h].write >= 0 || t == L - 1; }
};

// Validates the batch against the model and precomputes the positional heads' attention.
Pass make_pass(const AttentionCircuitConfig& cfg, const std::vector<std::vector<int>>& hp,
               const std::vector<double>& theta, const Batch& b);

// Where a pass starts: the stream after layer P.first - 1 in groups of lanes_of<V> sequences,
// [ceil(n / lanes), L, F] of V (lanes past n repeat the group's first sequence), or nullptr: the
// batch's features, for P.first = 1.
template <class V>
struct Start {
  const Batch& b;
  const V* cached = nullptr;
};

// A frozen prefix's output stream, packed for the lane width the model runs at: Start<Lanes>::cached
// or (one sequence at a time) Start<double>::cached; the other is empty.
struct PackedStream {
  std::vector<Lanes> lanes;
  std::vector<double> one;
};

// Sum over the batch of the objective (copy-previous when `copy`, else the task loss) and, when
// `grads`, of its gradient per parameter: [1 + parameters], not yet divided by n. Sequences are
// summed in fixed chunks of 64 whose partials are added in chunk order (thread-count free).
template <class V>
std::vector<double> objective_sums(const Pass& P, const Start<V>& in, bool copy, bool grads);

// The stream after layer `layers` for every sequence, packed as Start<V>::cached reads it
// (P.first must be 1).
template <class V>
std::vector<V> packed_stream_after(const Pass& P, const Batch& b, int layers);
inline PackedStream stream_after(const Pass& P, const Batch& b, int layers, bool one_at_a_time) {
  if (one_at_a_time) return {{}, packed_stream_after<double>(P, b, layers)};
  return {packed_stream_after<Lanes>(P, b, layers), {}};
}

// Predictions [n, d] and the prediction heads' outputs at the last position [n, heads, d].
template <class V>
void predict_rows(const Pass& P, const Start<V>& in, std::vector<double>& yhat, std::vector<double>& head_out);

}  // namespace ihlab::circuit_kernel
