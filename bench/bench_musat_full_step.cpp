// Training step of Musat et al. 2025's full disentangled model (models/disentangled.h) against
// PyTorch:
//   bench_musat_full_step musat-full-step --dump DIR --steps N [--warmup W] [--threads T]
//                         [--batch B] [--length L] [--dim D] [--profile 1]
//
// Workload (float64, as musat2025-emergence trains it): item-label retrieval with orthonormal
// items, random positions, uniform query; N = 32 pairs (L = 2N + 1 = 65), D = 128, 256 sequences
// per step; one gradient-descent step of eta = D / 4 (plain SGD). --batch B, --length L (odd,
// N = (L - 1) / 2) and --dim D replace those; they only change the size of the work
// (bench/scaling.sh).
//
// Weights: W1, W2, W3 drawn N(0, s^2) with s = 0.25, 0.1, 0.1 (the model's zero init would leave
// the attention uniform and the loss blind to W1 and W2, so the PyTorch check would test less).
// Scores then have a standard deviation near 0.5.
// Batches: kBatches distinct fresh batches, cycled (step i uses batch i mod kBatches): drawing a
// batch is not part of the step, and the dump stays small.
// Writes DIR/inputs.safetensors: "W1", "W2", "W3", "mask" (W3's readout mask), "features" F64
// [kBatches, B, L, 2D], "values" F64 [kBatches, B, D] and __metadata__["config"], for
// bench/torch_musat_full_step.py. Prints
//   ihlab_ms=<ms per step, mean> ihlab_min_ms=<fastest step>
//   loss_first=<loss of step 1> loss_last=<loss of step N>
//   flops_per_step=... gflops=... peak_gflops=<measured Eigen dgemm rate on T threads>
//   fraction_of_peak=<gflops / peak_gflops>
// FLOPs (2 per multiply-add, matmuls only, forward + backward = 3 x forward): with n = B L tokens
// and d = 2D, forward = layer-1 queries 2 n d^2, its scores and outputs 2 x 2 B P d with
// P = L (L - 1) / 2 the strictly causal pairs, layer 2 at the query 2 B (2d)^2 + 2 x 2 B L (2d),
// readout 2 B (4d) D. The selection of the query row is not counted.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/eigen.h"
#include <nlohmann/json.hpp>
#include <omp.h>

#include "bench_peak.h"
#include "core/autograd.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "models/disentangled.h"
#include "tasks/item_label.h"
#include "train/optimizer.h"

using namespace ihlab;

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }
constexpr int kBatches = 2;

struct Options {
  std::string workload, dir;
  long steps = 0, warmup = 3, threads = 2;
  long batch = 256, length = 65, dim = 128;
  bool profile = false;
};

double measured_peak_gflops(int threads) { return bench::measured_peak_gflops<double>(threads, 1024, 6); }

double step_flops(double B, double L, double D) {
  const double d = 2 * D, n = B * L, P = L * (L - 1) / 2;
  const double fwd =
      2 * n * d * d + 4 * B * P * d + 2 * B * (2 * d) * (2 * d) + 4 * B * L * (2 * d) + 2 * B * 4 * d * D;
  return 3 * fwd;
}

DisentangledWeights random_weights(int64_t D) {
  DisentangledWeights w;
  w.D = D;
  RandomStream rng(7, StreamKind::Init);
  const double s[3] = {0.25, 0.1, 0.1};
  for (int m = 1; m <= 3; ++m) {
    auto& v = w.matrix(m);
    v.resize(size_t(w.rows(m) * w.cols(m)));
    for (auto& x : v) x = s[m - 1] * rng.normal();
  }
  return w;
}

int run(const Options& o) {
  using T = double;
  IHLAB_CHECK(o.length >= 3 && o.length % 2 == 1, "--length {}: need an odd length >= 3 (L = 2N + 1)", o.length);
  ItemLabelConfig tc;
  tc.pairs = (o.length - 1) / 2, tc.dim = o.dim;
  tc.vectors = ItemVectors::Orthonormal;
  ItemLabelTask task(tc);
  const double lr = double(o.dim) / 4;
  std::vector<Batch> batches;
  for (int i = 0; i < kBatches; ++i) batches.push_back(task.sample(o.batch, 1, StreamKind::Data, uint64_t(i)));

  auto make = [&] {
    auto m = std::make_unique<DisentangledModel<T>>(disentangled_config_from_task(task, "disentangled"));
    m->set_weights(random_weights(o.dim));
    return m;
  };
  OptimizerConfig oc;
  oc.kind = OptimizerKind::Sgd;
  auto step = [&](DisentangledModel<T>& m, Optimizer<T>& opt, const Batch& b) {
    m.params().zero_grad();
    Var<T> loss = m.loss(b);
    backward(loss);
    opt.step(m.params().trainable(), lr);
    return double(loss.item());
  };
  {  // warm-up: caches, allocator, OpenMP pool
    auto warm = make();
    auto opt = Optimizer<T>::make(oc);
    for (long i = 0; i < o.warmup; ++i) step(*warm, *opt, batches[size_t(i % kBatches)]);
  }
  auto model = make();
  auto opt = Optimizer<T>::make(oc);

  std::filesystem::create_directories(o.dir);
  SafetensorsFile f;
  for (auto& p : model->params().all()) f.tensors.push_back(to_raw(p.name, p.var.value()));
  {
    const DisentangledWeights used = model->weights();  // W3 times its mask
    std::vector<double> mask(used.W3.size());
    const int64_t D = o.dim;
    for (int64_t r = 0; r < D; ++r)
      for (int64_t c = 0; c < 8 * D; ++c) mask[size_t(r * 8 * D + c)] = (c / D) % 2 == 0 ? 1.0 : 0.0;
    f.tensors.push_back(to_raw("mask", Tensor<double>({D, 8 * D}, std::move(mask))));
    std::vector<double> feats, vals;
    for (auto& b : batches) {
      feats.insert(feats.end(), b.features.begin(), b.features.end());
      vals.insert(vals.end(), b.values.begin(), b.values.end());
    }
    f.tensors.push_back(to_raw("features", Tensor<double>({kBatches, o.batch, o.length, 2 * D}, std::move(feats))));
    f.tensors.push_back(to_raw("values", Tensor<double>({kBatches, o.batch, D}, std::move(vals))));
  }
  nlohmann::json cfg = {{"model", "disentangled"}, {"pairs", tc.pairs},   {"dim", o.dim},
                        {"length", o.length},      {"batch", o.batch},    {"lr", lr},
                        {"optimizer", "sgd"},      {"batches", kBatches}, {"dtype", "float64"}};
  f.metadata["workload"] = o.workload;
  f.metadata["config"] = cfg.dump();
  f.metadata["threads"] = std::to_string(o.threads);
  write_safetensors(o.dir + "/inputs.safetensors", f);

  const double peak_before = measured_peak_gflops(int(o.threads));
  double first = 0, last = 0, min_ms = 1e30;
  auto t0 = Clock::now();
  for (long i = 0; i < o.steps; ++i) {
    auto ts = Clock::now();
    last = step(*model, *opt, batches[size_t(i % kBatches)]);
    min_ms = std::min(min_ms, ms_since(ts));
    if (i == 0) first = last;
  }
  const double ms = ms_since(t0) / double(o.steps);
  const double flops = step_flops(double(o.batch), double(o.length), double(o.dim));
  const double gflops = flops / (ms / 1e3) / 1e9;
  const double peak = std::max(peak_before, measured_peak_gflops(int(o.threads)));
  std::printf("ihlab_ms=%.4f ihlab_min_ms=%.4f\nloss_first=%.12g loss_last=%.12g\n", ms, min_ms, first, last);
  std::printf(
      "params=%lld tokens_per_step=%lld flops_per_step=%.6g gflops=%.4g peak_gflops=%.4g fraction_of_peak=%.3g "
      "peak_source=eigen-dgemm-1024-per-thread\n",
      (long long)model->params().numel(), (long long)(o.batch * o.length), flops, gflops, peak, gflops / peak);

  if (o.profile) {  // forward and backward apart, on a fresh copy over the same batches
    auto m = make();
    auto po = Optimizer<T>::make(oc);
    double t_fwd = 0, t_bwd = 0, t_opt = 0;
    for (long i = 0; i < o.steps; ++i) {
      m->params().zero_grad();
      auto a = Clock::now();
      Var<T> loss = m->loss(batches[size_t(i % kBatches)]);
      t_fwd += ms_since(a);
      a = Clock::now();
      backward(loss);
      t_bwd += ms_since(a);
      a = Clock::now();
      po->step(m->params().trainable(), lr);
      t_opt += ms_since(a);
    }
    const double n = double(o.steps);
    std::printf("profile_forward_ms=%.4f profile_backward_ms=%.4f profile_optimizer_ms=%.4f\n", t_fwd / n, t_bwd / n,
                t_opt / n);
  }
  return 0;
}

int usage(const char* msg) {
  std::fprintf(stderr,
               "bench_musat_full_step: %s\nusage: bench_musat_full_step musat-full-step --dump DIR --steps N "
               "[--warmup W] [--threads T] [--batch B] [--length L (odd)] [--dim D] [--profile 0|1]\n",
               msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage("missing WORKLOAD");
  Options o;
  o.workload = argv[1];
  if (o.workload != "musat-full-step") return usage(("unknown workload '" + o.workload + "'").c_str());
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage(("missing value after " + a).c_str());
    std::string v = argv[++i];
    long x = std::atol(v.c_str());
    if (a == "--dump")
      o.dir = v;
    else if (a == "--steps")
      o.steps = x;
    else if (a == "--warmup")
      o.warmup = x;
    else if (a == "--threads")
      o.threads = x;
    else if (a == "--batch")
      o.batch = x;
    else if (a == "--length")
      o.length = x;
    else if (a == "--dim")
      o.dim = x;
    else if (a == "--profile")
      o.profile = x != 0;
    else
      return usage(("unknown option " + a).c_str());
  }
  if (o.dir.empty() || o.steps < 1 || o.warmup < 0 || o.threads < 1 || o.batch < 1 || o.dim < 1)
    return usage("need --dump DIR, --steps >= 1, --threads/--batch/--dim >= 1");
  try {
    set_threads(int(o.threads));
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_musat_full_step: %s\n", e.what());
    return 1;
  }
}
