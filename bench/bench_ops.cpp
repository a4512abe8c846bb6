// Google Benchmark of the core ops, float32 and float64, forward + backward.
//
// Each iteration builds the op on fresh leaf inputs, reduces it with ops::sum (backward needs a
// scalar root; sum's own cost is one pass over the output, small next to every op here) and runs
// backward, so the timing is what one use of the op costs inside a training step.
// Thread count: IHLAB_THREADS (default 2, matching bench_step); reported in the context.
//   build/bench_ops --benchmark_filter=matmul
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "core/ops.h"
#include "models/transformer_detail.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "models/one_layer_attention.h"
#include "tasks/previous_token.h"
#include "train/optimizer.h"

using namespace ihlab;

namespace {

template <typename T>
Var<T> randn(Shape s, bool grad = true, uint64_t sub = 0) {
  RandomStream rng(7, StreamKind::Test, sub);
  Tensor<T> t(std::move(s));
  for (auto& x : t.span()) x = T(rng.normal());
  return Var<T>::leaf(t, grad);
}

std::vector<int32_t> randids(int64_t n, int64_t vocab) {
  RandomStream rng(7, StreamKind::Test, 99);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = int32_t(rng.randint(vocab));
  return v;
}

// Runs `f` (which returns the op's output) forward + backward per iteration.
template <typename T, typename F>
void fwd_bwd(benchmark::State& st, F&& f) {
  for (auto _ : st) {
    Var<T> out = f();
    backward(ops::sum(out));
    benchmark::DoNotOptimize(out.value().data());
  }
}

template <typename T>
void BM_matmul(benchmark::State& st) {
  int64_t n = st.range(0);
  auto a = randn<T>({n, n}, true, 1), b = randn<T>({n, n}, true, 2);
  fwd_bwd<T>(st, [&] { return ops::matmul(a, b); });
  st.SetItemsProcessed(st.iterations() * 3 * 2 * n * n * n);  // flops: forward + two grads
}

template <typename T>
void BM_bmm(benchmark::State& st) {
  auto a = randn<T>({32, 64, 64}, true, 1), b = randn<T>({32, 64, 64}, true, 2);
  fwd_bwd<T>(st, [&] { return ops::bmm(a, b); });
}

template <typename T>
void BM_masked_softmax(benchmark::State& st) {
  const int64_t L = 64;
  auto z = randn<T>({32, L, L}, true, 1), bias = randn<T>({L, L}, true, 2);
  auto mask = ops::band_mask(L, 0, L - 1);  // causal
  fwd_bwd<T>(st, [&] { return ops::masked_softmax(z, bias, mask, {L, L}); });
}

template <typename T>
void BM_layer_norm(benchmark::State& st) {
  auto x = randn<T>({4096, 64}, true, 1), g = randn<T>({64}, true, 2), b = randn<T>({64}, true, 3);
  fwd_bwd<T>(st, [&] { return ops::layer_norm(x, g, b); });
}

template <typename T>
void BM_cross_entropy(benchmark::State& st) {
  auto z = randn<T>({4096, 64}, true, 1);
  auto targets = randids(4096, 64);
  fwd_bwd<T>(st, [&] { return ops::cross_entropy(z, targets); });
}

template <typename T>
void BM_embedding(benchmark::State& st) {
  auto table = randn<T>({512, 64}, true, 1);
  auto ids = randids(4096, 512);
  fwd_bwd<T>(st, [&] { return ops::embedding(table, ids, {4096}); });
}

template <typename T>
void BM_l2_normalize(benchmark::State& st) {
  auto x = randn<T>({4096, 64}, true, 1);
  fwd_bwd<T>(st, [&] { return ops::l2_normalize(x); });
}

// The fused causal attention of the Edelman et al. 2024 step (bench/run.sh edelman-step): 64
// sequences of 101 tokens, one head of dim 16, a relative-position bias [1, L, L], scale 1/4.
template <typename T>
void BM_banded_attention(benchmark::State& st) {
  const int64_t B = 64, L = 101, dh = 16;
  auto qkv = randn<T>({B, L, 3 * dh}, true, 1), bias = randn<T>({1, L, L}, true, 2);
  ops::BandedAttention spec;
  spec.lo = 0, spec.hi = L - 1, spec.scale = 0.25;
  fwd_bwd<T>(st, [&] { return ops::banded_attention(qkv, bias, spec); });
  st.SetItemsProcessed(st.iterations() * 12 * B * (L * (L + 1) / 2) * dh);  // flops: as bench_transformer_step
}

// One full training step of the smoke model (examples/smoke.toml shapes, Adam at lr 0.02).
template <typename T>
void BM_smoke_train_step(benchmark::State& st) {
  OneLayerAttentionConfig c;  // vocab 8, length 16, width 16, window 4
  OneLayerAttention<T> model(c, 1);
  OptimizerConfig oc;
  oc.kind = OptimizerKind::Adam;
  auto opt = Optimizer<T>::make(oc);
  Batch b = PreviousTokenTask(c.vocab, c.length).sample(32, 1, StreamKind::Data, 1);
  for (auto _ : st) {
    model.params().zero_grad();
    Var<T> loss = model.loss(b);
    backward(loss);
    opt->step(model.params().trainable(), 0.02);
    benchmark::DoNotOptimize(loss.item());
  }
}

#define BENCH_BOTH(fn, ...)                  \
  BENCHMARK_TEMPLATE(fn, float) __VA_ARGS__; \
  BENCHMARK_TEMPLATE(fn, double) __VA_ARGS__;

BENCH_BOTH(BM_matmul, ->Arg(64)->Arg(256))
BENCH_BOTH(BM_bmm, )
BENCH_BOTH(BM_masked_softmax, )
BENCH_BOTH(BM_layer_norm, )
BENCH_BOTH(BM_cross_entropy, )
BENCH_BOTH(BM_embedding, )
BENCH_BOTH(BM_l2_normalize, )
BENCH_BOTH(BM_banded_attention, )
BENCH_BOTH(BM_smoke_train_step, )

}  // namespace

int main(int argc, char** argv) {
  const char* env = std::getenv("IHLAB_THREADS");
  int threads = env ? std::atoi(env) : 2;
  set_threads(threads);
  // As in a transformer's training step: freed blocks are kept rather than unmapped, so an op's
  // large buffers (attention's band of probabilities) are not page-faulted in every iteration.
  transformer_detail::keep_freed_memory();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("ihlab_threads", std::to_string(num_threads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
