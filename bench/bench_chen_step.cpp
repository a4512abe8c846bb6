// Full-batch training step of the GIH model (Chen et al. 2024) against PyTorch:
//   bench_chen_step [chen-step] --dump DIR --steps N [--warmup W] [--threads T]
//                   [--dtype float32|float64] [--mode code|paper] [--sequences N] [--length L]
//                   [--merge on|off]
//
// The authors' setting: code mode, d = 3, L = 100, H = 3, M = 3, D = 2, parents {-1, -2},
// alpha = 0.1, 9000 training sequences, plain SGD (lr 1) on every group. --sequences (the full
// batch, default 9000) and --length (L, NgramMarkovConfig::length, default 100; the model reads L
// from the batch) change the size of the work, e.g. for bench/scaling.sh. --merge on (the default)
// marks the batch as reused, as the trainer marks a fixed training set used whole, so the table
// path runs each sequence's merged keys (GihRequest::reused_batch); off runs every position, the
// work the PyTorch twin does. Writes
// DIR/inputs.safetensors (params "w", "c", "a"; "tokens" I64 [n, L+1], last column = target;
// __metadata__["config"]) for bench/torch_chen_step.py, then times N steps (zero_grad, loss,
// backward, SGD step) and prints
//   ihlab_ms=<ms per step>
//   loss_first=<loss of step 1> loss_last=<loss of step N>
// Warm-up runs on a second copy of the model, so the timed run starts from the dumped params.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/parallel.h"
#include "io/safetensors.h"
#include "models/gih_model.h"
#include "tasks/ngram_task.h"
#include "train/optimizer.h"

using namespace ihlab;

namespace {

struct Options {
  std::string dir, dtype = "float32", mode = "code", merge = "on";
  long steps = 0, warmup = 10, threads = 2, sequences = 9000;
  long length = NgramMarkovConfig{}.length;  // L = 100
};

int usage(const char* msg) {
  std::fprintf(stderr,
               "bench_chen_step: %s\nusage: bench_chen_step [chen-step] --dump DIR --steps N [--warmup W] "
               "[--threads T] [--dtype float32|float64] [--mode code|paper] [--sequences N] [--length L] "
               "[--merge on|off]\n",
               msg);
  return 2;
}

template <typename T>
int run(const Options& o) {
  NgramMarkovConfig tc;  // d = 3, L = 100, parents {-1, -2}, alpha = 0.1
  tc.length = int(o.length);
  NgramMarkovTask task(tc);
  const uint64_t seed = 1;
  Batch batch = task.sample(o.sequences, seed, StreamKind::Data, 0);
  batch.reused = o.merge == "on";

  GihConfig gc;
  gc.vocab = tc.vocab;
  gc.heads = 3, gc.window = 3, gc.max_subset = 2;
  gc.mode = parse_gih_mode(o.mode);
  gc.loss = parse_gih_loss("auto", gc.mode);
  const double lr = 1.0;
  auto opt_cfg = OptimizerConfig{};  // sgd, no momentum
  auto step = [&](GihModel<T>& m, Optimizer<T>& opt) {
    m.params().zero_grad();
    Var<T> loss = m.loss(batch);
    backward(loss);
    opt.step(m.params().trainable(), lr);
    return double(loss.item());
  };
  {  // warm-up: caches, allocator, OpenMP pool
    GihModel<T> warm(gc);
    auto opt = Optimizer<T>::make(opt_cfg);
    for (long i = 0; i < o.warmup; ++i) step(warm, *opt);
  }
  GihModel<T> model(gc);
  auto opt = Optimizer<T>::make(opt_cfg);

  std::filesystem::create_directories(o.dir);
  SafetensorsFile f;
  for (auto& p : model.params().all()) f.tensors.push_back(to_raw(p.name, p.var.value()));
  std::vector<int64_t> ids(batch.tokens.begin(), batch.tokens.end());
  f.tensors.push_back(to_raw("tokens", Tensor<int64_t>(Shape{batch.size, batch.length}, std::move(ids))));
  nlohmann::json labels = nlohmann::json::array();
  for (auto& s : model.subsets()) labels.push_back(s.label);
  nlohmann::json cfg = {{"model", "gih"},
                        {"mode", o.mode},
                        {"loss", gih_loss_name(gc.loss)},
                        {"vocab", gc.vocab},
                        {"length", tc.length},
                        {"heads", gc.heads},
                        {"window", gc.window},
                        {"max_subset", gc.max_subset},
                        {"guard", gc.guard},
                        {"subsets", labels},
                        {"sequences", o.sequences},
                        {"lr", lr},
                        {"optimizer", "sgd"},
                        {"dtype", o.dtype},
                        {"merge", o.merge}};
  f.metadata["workload"] = "chen-step";
  f.metadata["config"] = cfg.dump();
  f.metadata["threads"] = std::to_string(o.threads);
  write_safetensors(o.dir + "/inputs.safetensors", f);

  double first = 0, last = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < o.steps; ++i) {
    last = step(model, *opt);
    if (i == 0) first = last;
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / o.steps;
  std::printf("ihlab_ms=%.4f\nloss_first=%.9g loss_last=%.9g\n", ms, first, last);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  int i = 1;
  if (i < argc && std::string(argv[i]) == "chen-step") ++i;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage(("missing value after " + a).c_str());
    std::string v = argv[++i];
    if (a == "--dump")
      o.dir = v;
    else if (a == "--steps")
      o.steps = std::atol(v.c_str());
    else if (a == "--warmup")
      o.warmup = std::atol(v.c_str());
    else if (a == "--threads")
      o.threads = std::atol(v.c_str());
    else if (a == "--dtype")
      o.dtype = v;
    else if (a == "--mode")
      o.mode = v;
    else if (a == "--sequences")
      o.sequences = std::atol(v.c_str());
    else if (a == "--length")
      o.length = std::atol(v.c_str());
    else if (a == "--merge")
      o.merge = v;
    else
      return usage(("unknown option " + a).c_str());
  }
  if (o.dir.empty() || o.steps < 1 || o.warmup < 0 || o.threads < 1 || o.sequences < 1)
    return usage("need --dump DIR and --steps >= 1");
  if (o.length < 1 || o.length > (1 << 20)) return usage("--length must be in 1..1048576");
  if (o.dtype != "float32" && o.dtype != "float64") return usage("--dtype must be float32 or float64");
  if (o.merge != "on" && o.merge != "off") return usage("--merge must be on or off");
  try {
    set_threads(int(o.threads));
    return o.dtype == "float32" ? run<float>(o) : run<double>(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_chen_step: %s\n", e.what());
    return 1;
  }
}
