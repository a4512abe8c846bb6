// Step timing against PyTorch: bench_step WORKLOAD --dump DIR --steps N [--warmup W] [--threads T]
//
// Builds a workload (model, optimizer, one fixed batch), writes DIR/inputs.safetensors with the
// initial parameters, the batch and the config (as __metadata__), then times N full training steps
// (zero_grad, loss, backward, optimizer step) on that batch. bench/run.sh feeds the same file to a
// PyTorch script and compares. Output (parsed by run.sh):
//   ihlab_ms=<ms per step>
//   loss_first=<loss computed by step 1, i.e. on the initial params> loss_last=<loss computed by step N>
//
// Warm-up runs on a second, identically built workload so the timed run starts from the dumped
// params: loss_first is then directly comparable with PyTorch's.
// To add a workload: write a factory returning a Setup and add it to kWorkloads (and to run.sh).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/parallel.h"
#include "io/safetensors.h"
#include "models/one_layer_attention.h"
#include "tasks/previous_token.h"
#include "train/optimizer.h"

using namespace ihlab;

namespace {

// Everything one timed step needs. float32 throughout, like the experiments it stands for.
struct Setup {
  std::unique_ptr<Model<float>> model;
  std::unique_ptr<Optimizer<float>> opt;
  Batch batch;
  double lr = 0;
  nlohmann::json config;  // written to the dump so the PyTorch side rebuilds the same model
};

// examples/smoke.toml without the schedule/clip (they would only add PyTorch-side noise).
Setup make_smoke_step() {
  OneLayerAttentionConfig c;  // vocab 8, length 16, width 16, window 4, init_std 0.3
  const uint64_t seed = 1;
  const int64_t batch = 32;
  Setup s;
  s.model = std::make_unique<OneLayerAttention<float>>(c, seed);
  OptimizerConfig oc;
  oc.kind = OptimizerKind::Adam;
  s.opt = Optimizer<float>::make(oc);
  s.lr = 0.02;
  s.batch = PreviousTokenTask(c.vocab, c.length).sample(batch, seed, StreamKind::Data, 1);
  s.config = {{"model", "attn1"},   {"vocab", c.vocab},  {"length", c.length}, {"width", c.width},
              {"window", c.window}, {"batch", batch},    {"lr", s.lr},         {"optimizer", "adam"},
              {"beta1", oc.beta1},  {"beta2", oc.beta2}, {"eps", oc.eps},      {"dtype", "float32"}};
  return s;
}

struct Workload {
  const char* name;
  std::function<Setup()> make;
};
const std::vector<Workload> kWorkloads = {
    {"smoke-step", make_smoke_step},
};

float train_step(Setup& s) {
  auto& params = s.model->params();
  params.zero_grad();
  Var<float> loss = s.model->loss(s.batch);
  backward(loss);
  s.opt->step(params.trainable(), s.lr);
  return loss.item();
}

RawTensor ids_raw(const std::string& name, const std::vector<int32_t>& ids, const Batch& b) {
  std::vector<int64_t> v(ids.begin(), ids.end());
  return to_raw(name, Tensor<int64_t>(Shape{b.size, b.length}, std::move(v)));
}

void dump_inputs(const std::string& dir, const std::string& workload, Setup& s, int threads) {
  std::filesystem::create_directories(dir);
  SafetensorsFile f;
  for (auto& p : s.model->params().all()) f.tensors.push_back(to_raw(p.name, p.var.value()));
  f.tensors.push_back(ids_raw("tokens", s.batch.tokens, s.batch));
  f.tensors.push_back(ids_raw("targets", s.batch.targets, s.batch));
  f.metadata["workload"] = workload;
  f.metadata["config"] = s.config.dump();
  f.metadata["threads"] = std::to_string(threads);
  write_safetensors(dir + "/inputs.safetensors", f);
}

int usage(const char* msg) {
  std::fprintf(stderr,
               "bench_step: %s\nusage: bench_step WORKLOAD --dump DIR --steps N [--warmup W] [--threads T]\n"
               "workloads:",
               msg);
  for (auto& w : kWorkloads) std::fprintf(stderr, " %s", w.name);
  std::fprintf(stderr, "\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage("missing WORKLOAD");
  std::string workload = argv[1], dir;
  long steps = 0, warmup = 10, threads = 2;  // 2 threads by default: the torch script matches it
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage(("missing value after " + a).c_str());
    std::string v = argv[++i];
    if (a == "--dump")
      dir = v;
    else if (a == "--steps")
      steps = std::atol(v.c_str());
    else if (a == "--warmup")
      warmup = std::atol(v.c_str());
    else if (a == "--threads")
      threads = std::atol(v.c_str());
    else
      return usage(("unknown option " + a).c_str());
  }
  const Workload* w = nullptr;
  for (auto& x : kWorkloads)
    if (workload == x.name) w = &x;
  if (!w) return usage(("unknown workload '" + workload + "'").c_str());
  if (dir.empty() || steps < 1 || warmup < 0 || threads < 1) return usage("need --dump DIR, --steps >= 1");

  try {
    set_threads(int(threads));
    {  // warm-up on a throwaway copy: caches, allocator, OpenMP pool
      Setup warm = w->make();
      for (long i = 0; i < warmup; ++i) train_step(warm);
    }
    Setup s = w->make();
    dump_inputs(dir, workload, s, int(threads));
    float first = 0, last = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < steps; ++i) {
      last = train_step(s);
      if (i == 0) first = last;
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / steps;
    std::printf("ihlab_ms=%.4f\nloss_first=%.9g loss_last=%.9g\n", ms, double(first), double(last));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
