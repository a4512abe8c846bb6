// Training step of the standard transformer (models/transformer.h) against PyTorch:
//   bench_transformer_step WORKLOAD --dump DIR --steps N [--warmup W] [--threads T] [--profile 1]
//                          [--batch B] [--length L]
//
// Workloads (float32, AdamW(beta 0.9, 0.95, eps 1e-8, weight decay 0.1), lr 5e-4, clip 1.0, a
// fresh batch every step):
//   edelman-step  the ICL-MC model of Edelman et al. 2024: 2 layers, 1 head, width 16,
//                 attention-only, pre-LN, relative position bias over every offset (rel_window 0);
//                 task icl-mc, 3 states, T = 100 (101 tokens, targets at positions 0..99), batch 64.
//   wide-step     width 256, 4 layers, 4 heads (dh 64), MLP 4x (1024, GELU), pre-LN, learned
//                 absolute positions; task repeated-tokens (vocab 64 + BOS, block 85, 3 repeats:
//                 256 tokens, targets at positions 0..254), batch 8.
// --batch B replaces the workload's batch (sequences per step); --length L (edelman-step only)
// replaces the icl-mc length (tokens per sequence, L - 1 targets; default 101), and the model's
// max_len, hence its relative-bias table over every offset, follows it. Both only change the size
// of the work (bench/scaling.sh); the defaults are the workloads above.
//
// The `steps` batches (sample(batch, seed 1, Data, index i) for step i) are drawn before the clock
// starts. Writes DIR/inputs.safetensors: every parameter under its ParamStore name, "tokens" and
// "targets" I64 [steps, batch, length] (targets -1 = none) and __metadata__["config"] (the model,
// optimizer and data settings) for bench/torch_transformer_step.py. Then times N steps of
//   zero_grad, loss, backward, clip_grad_norm(1.0), AdamW step
// on batches 0..N-1 and prints
//   ihlab_ms=<ms per step, mean> ihlab_min_ms=<fastest single step>
//   loss_first=<loss of step 1> loss_last=<loss of step N>
//   flops_per_step=<matmul FLOPs of forward + backward> gflops=<flops_per_step / ihlab step time>
//   peak_gflops=<measured Eigen GEMM rate on T threads, best of before/after the timed run>
//   theoretical_gflops=<T x GHz x FLOPs/cycle>
//   fraction_of_peak=<gflops / peak_gflops>
// The denominator of fraction_of_peak is the MEASURED GEMM rate (what Eigen can reach on these
// cores); the theoretical number comes from /proc/cpuinfo and assumes 2 FMA units per core.
// Warm-up runs on a second copy of the model, so the timed run starts from the dumped params.
// --profile 1 additionally times the pieces of a step (forward, backward, clip, optimizer) and
// prints them as profile_<piece>_ms=... (a separate pass after the timed run).
//
// FLOPs (2 per multiply-add, matmuls only; LayerNorm, softmax, GELU, the loss and AdamW are not
// counted). With B sequences of L tokens, N = B L, width D, n_l layers, MLP hidden M (0 when
// attention-only), vocab V and P = the number of (query, key) pairs a head attends to per sequence
// (L (L + 1) / 2 for the causal band with self, no window):
//   forward per layer: q,k,v projections 6 N D^2, W_O 2 N D^2, MLP 4 N D M,
//                      scores Q K^T 2 B P D and P V 2 B P D (summed over heads: H dh = D)
//   forward:  F = n_l (8 N D^2 + 4 N D M + 4 B P D) + 2 N D V        (unembedding)
//   backward: 2 F (each matmul has an input and a weight gradient; attention's dS K, dS^T Q,
//             dP = dO V^T, P^T dO), so
//   flops_per_step = 3 F = 6 N (n_l (4 D^2 + 2 D M) + D V) + 12 n_l B P D.
// That is "6 x matmul params x tokens" plus attention's 12 n_l B P D, with P the causal pairs (a
// dense L x L count would use P = L^2, about 2x more attention FLOPs than are useful).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/eigen.h"
#include <nlohmann/json.hpp>
#include <omp.h>

#include "bench_peak.h"
#include "core/autograd.h"
#include "core/parallel.h"
#include "io/safetensors.h"
#include "models/transformer.h"
#include "tasks/icl_mc_task.h"
#include "tasks/repeated_tokens.h"
#include "train/optimizer.h"

using namespace ihlab;

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

struct Options {
  std::string workload, dir;
  long steps = 0, warmup = 10, threads = 2;
  long batch = 0, length = 0;  // 0 = the workload's own
  bool profile = false;
};

// One workload: model config, data, optimizer recipe.
struct Workload {
  std::string name, task_desc;
  TransformerConfig model;
  std::unique_ptr<Task> task;
  int64_t batch = 0;
  double lr = 5e-4, clip = 1.0;
  OptimizerConfig opt;
};

OptimizerConfig adamw() {
  OptimizerConfig oc;
  oc.kind = OptimizerKind::AdamW;
  oc.beta1 = 0.9, oc.beta2 = 0.95, oc.eps = 1e-8, oc.weight_decay = 0.1;
  return oc;
}

Workload make_workload(const std::string& name, long length, long batch) {
  Workload w;
  w.name = name;
  w.opt = adamw();
  if (name == "edelman-step") {
    IclMcConfig tc;  // 3 states, length 101 (T = 100), order 2, alpha 1, standard
    if (length > 0) tc.length = int(length);
    w.task = std::make_unique<IclMcTask>(tc);
    w.task_desc = "icl-mc states 3 length " + std::to_string(tc.length);
    // TransformerConfig's defaults are this model: 2 layers, 1 head, width 16, attention-only,
    // pre-LN, relative bias over every offset, init_std 0.02.
    w.batch = 64;
  } else if (name == "wide-step") {
    RepeatedTokensConfig tc;
    tc.vocab = 64, tc.block = 85, tc.repeats = 3;  // 1 + 85 * 3 = 256 tokens
    w.task = std::make_unique<RepeatedTokensTask>(tc);
    w.task_desc = "repeated-tokens vocab 64 block 85 repeats 3";
    w.model.layers = 4, w.model.heads = 4, w.model.width = 256;
    w.model.attention_only = false;  // MLP 4 x width
    w.model.positional = TransformerPositional::Learned;
    w.batch = 8;
    if (length > 0) fail("--length applies to edelman-step only (wide-step's length is 1 + block x repeats)");
  } else {
    fail("unknown workload '{}' (known: edelman-step, wide-step)", name);
  }
  if (batch > 0) w.batch = batch;
  w.model.vocab = w.task->vocab();
  w.model.max_len = w.task->length();
  return w;
}

// Matmul FLOPs of one forward + backward (see the header comment).
double step_flops(const TransformerConfig& c, int64_t B, int64_t L) {
  const double N = double(B) * double(L), D = double(c.width), V = double(c.vocab), nl = double(c.layers);
  const double M = c.attention_only ? 0.0 : double(c.mlp_hidden());
  // Attended (query, key) pairs per sequence: offsets lo..hi with hi capped by the window.
  const int64_t lo = c.min_offset();
  int64_t hi = L - 1;
  if (c.positional == TransformerPositional::Relative) hi = std::min(hi, lo + c.rpe_size() - 1);
  double P = 0;
  for (int64_t i = 0; i < L; ++i) P += double(std::max<int64_t>(0, std::min(i, hi) - lo + 1));
  const double fwd = nl * (8 * N * D * D + 4 * N * D * M + 4 * double(B) * P * D) + 2 * N * D * V;
  return 3 * fwd;
}

double measured_peak_gflops(int threads) { return bench::measured_peak_gflops<float>(threads, 1024, 10); }

// threads x GHz x FLOPs/cycle from /proc/cpuinfo: fp32 lanes of the widest vector unit (16 with
// avx512f, 8 with avx2/avx, 4 otherwise) x 2 (FMA) x 2 FMA units per core (server Xeon/EPYC).
double theoretical_gflops(int threads, double* ghz_out, int* flops_per_cycle_out) {
  std::ifstream in("/proc/cpuinfo");
  std::string line, flags;
  double mhz = 0;
  while (std::getline(in, line)) {
    if (mhz == 0 && line.rfind("cpu MHz", 0) == 0) mhz = std::atof(line.substr(line.find(':') + 1).c_str());
    if (flags.empty() && line.rfind("flags", 0) == 0) flags = line + " ";
  }
  auto has = [&](const char* f) { return flags.find(std::string(" ") + f + " ") != std::string::npos; };
  const int lanes = has("avx512f") ? 16 : (has("avx2") || has("avx")) ? 8 : 4;
  const int fpc = lanes * (has("fma") ? 2 : 1) * 2;
  *ghz_out = mhz / 1e3;
  *flops_per_cycle_out = fpc;
  return double(threads) * (mhz / 1e3) * fpc;
}

RawTensor batches_raw(const std::string& name, const std::vector<Batch>& bs, bool targets) {
  const Batch& b0 = bs.front();
  std::vector<int64_t> v;
  v.reserve(bs.size() * b0.tokens.size());
  for (auto& b : bs) {
    auto& src = targets ? b.targets : b.tokens;
    v.insert(v.end(), src.begin(), src.end());
  }
  return to_raw(name, Tensor<int64_t>(Shape{int64_t(bs.size()), b0.size, b0.length}, std::move(v)));
}

int run(const Options& o) {
  using T = float;
  Workload w = make_workload(o.workload, o.length, o.batch);
  const uint64_t seed = 1;
  std::vector<Batch> batches;
  for (long i = 0; i < o.steps; ++i) batches.push_back(w.task->sample(w.batch, seed, StreamKind::Data, uint64_t(i)));

  auto step = [&](Transformer<T>& m, Optimizer<T>& opt, const Batch& b) {
    auto trainable = m.params().trainable();
    m.params().zero_grad();
    Var<T> loss = m.loss(b);
    backward(loss);
    clip_grad_norm(trainable, w.clip);
    opt.step(trainable, w.lr);
    return double(loss.item());
  };
  {  // warm-up: caches, allocator, OpenMP pool
    Transformer<T> warm(w.model, seed);
    auto opt = Optimizer<T>::make(w.opt);
    for (long i = 0; i < o.warmup; ++i) step(warm, *opt, batches[size_t(i % o.steps)]);
  }
  Transformer<T> model(w.model, seed);
  auto opt = Optimizer<T>::make(w.opt);

  const TransformerConfig& c = w.model;
  std::filesystem::create_directories(o.dir);
  SafetensorsFile f;
  for (auto& p : model.params().all()) f.tensors.push_back(to_raw(p.name, p.var.value()));
  f.tensors.push_back(batches_raw("tokens", batches, false));
  f.tensors.push_back(batches_raw("targets", batches, true));
  nlohmann::json cfg = {{"model", "transformer"},
                        {"vocab", c.vocab},
                        {"max_len", c.max_len},
                        {"layers", c.layers},
                        {"heads", c.heads},
                        {"width", c.width},
                        {"attention_only", c.attention_only},
                        {"mlp_hidden", c.attention_only ? 0 : c.mlp_hidden()},
                        {"norm", transformer_norm_name(c.norm)},
                        {"positional", transformer_positional_name(c.positional)},
                        {"rel_window", c.rel_window},
                        {"rpe_size", c.positional == TransformerPositional::Relative ? c.rpe_size() : 0},
                        {"self_attention", c.self_attention},
                        {"tied_unembedding", c.tied_unembedding},
                        {"attn_bias", c.attn_bias},
                        {"ln_eps", c.ln_eps},
                        {"task", w.task_desc},
                        {"batch", w.batch},
                        {"length", w.task->length()},
                        {"lr", w.lr},
                        {"clip", w.clip},
                        {"optimizer", "adamw"},
                        {"beta1", w.opt.beta1},
                        {"beta2", w.opt.beta2},
                        {"eps", w.opt.eps},
                        {"weight_decay", w.opt.weight_decay},
                        {"dtype", "float32"}};
  IHLAB_CHECK(c.dropout == 0 && c.feature_dim == 0 && c.norm == TransformerNorm::Pre && c.self_attention &&
                  !c.tied_unembedding && !c.attn_bias,
              "bench_transformer_step: the PyTorch twin covers only dropout 0, no features, pre-LN, "
              "self-attention, untied unembedding, no attention biases");
  f.metadata["workload"] = o.workload;
  f.metadata["config"] = cfg.dump();
  f.metadata["threads"] = std::to_string(o.threads);
  write_safetensors(o.dir + "/inputs.safetensors", f);

  // GEMM peak before and after the timed run, the better of the two: a machine shared with other
  // jobs slows one of them more often than both.
  const double peak_before = measured_peak_gflops(int(o.threads));
  double first = 0, last = 0, min_ms = 1e30;
  auto t0 = Clock::now();
  for (long i = 0; i < o.steps; ++i) {
    auto ts = Clock::now();
    last = step(model, *opt, batches[size_t(i)]);
    min_ms = std::min(min_ms, ms_since(ts));
    if (i == 0) first = last;
  }
  const double ms = ms_since(t0) / double(o.steps);

  const double flops = step_flops(c, w.batch, w.task->length());
  const double gflops = flops / (ms / 1e3) / 1e9;
  const double peak = std::max(peak_before, measured_peak_gflops(int(o.threads)));
  double ghz = 0;
  int fpc = 0;
  const double theo = theoretical_gflops(int(o.threads), &ghz, &fpc);
  std::printf("ihlab_ms=%.4f ihlab_min_ms=%.4f\nloss_first=%.9g loss_last=%.9g\n", ms, min_ms, first, last);
  std::printf(
      "params=%lld tokens_per_step=%lld flops_per_step=%.6g gflops=%.4g peak_gflops=%.4g "
      "fraction_of_peak=%.3g theoretical_gflops=%.4g (%ld threads x %.2f GHz x %d flops/cycle) "
      "fraction_of_theoretical=%.3g peak_source=eigen-sgemm-1024-per-thread\n",
      (long long)model.params().numel(), (long long)(w.batch * w.task->length()), flops, gflops, peak, gflops / peak,
      theo, o.threads, ghz, fpc, gflops / theo);

  if (o.profile) {
    // Pieces of a step on a fresh copy, summed over the same batches.
    Transformer<T> m(w.model, seed);
    auto po = Optimizer<T>::make(w.opt);
    double t_zero = 0, t_fwd = 0, t_bwd = 0, t_clip = 0, t_opt = 0;
    for (long i = 0; i < o.steps; ++i) {
      auto trainable = m.params().trainable();
      auto a = Clock::now();
      m.params().zero_grad();
      t_zero += ms_since(a);
      a = Clock::now();
      Var<T> loss = m.loss(batches[size_t(i)]);
      t_fwd += ms_since(a);
      a = Clock::now();
      backward(loss);
      t_bwd += ms_since(a);
      a = Clock::now();
      clip_grad_norm(trainable, w.clip);
      t_clip += ms_since(a);
      a = Clock::now();
      po->step(trainable, w.lr);
      t_opt += ms_since(a);
    }
    const double n = double(o.steps);
    std::printf(
        "profile_zero_grad_ms=%.4f profile_forward_ms=%.4f profile_backward_ms=%.4f profile_clip_ms=%.4f "
        "profile_optimizer_ms=%.4f\n",
        t_zero / n, t_fwd / n, t_bwd / n, t_clip / n, t_opt / n);
  }
  return 0;
}

int usage(const char* msg) {
  std::fprintf(stderr,
               "bench_transformer_step: %s\nusage: bench_transformer_step edelman-step|wide-step --dump DIR "
               "--steps N [--warmup W] [--threads T] [--profile 0|1] [--batch B] [--length L (edelman-step)]\n",
               msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage("missing WORKLOAD");
  Options o;
  o.workload = argv[1];
  if (o.workload != "edelman-step" && o.workload != "wide-step")
    return usage(("unknown workload '" + o.workload + "'").c_str());
  for (int i = 2; i < argc; ++i) {
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
    else if (a == "--profile")
      o.profile = v != "0";
    else if (a == "--batch" || a == "--length") {
      const long n = std::atol(v.c_str());
      if (n < 1 || n > (1 << 20)) return usage((a + " must be in 1..1048576").c_str());
      (a == "--batch" ? o.batch : o.length) = n;
    } else
      return usage(("unknown option " + a).c_str());
  }
  if (o.dir.empty() || o.steps < 1 || o.warmup < 0 || o.threads < 1) return usage("need --dump DIR and --steps >= 1");
  if (o.length > 0 && o.workload != "edelman-step") return usage("--length applies to edelman-step only");
  try {
    set_threads(int(o.threads));
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_transformer_step: %s\n", e.what());
    return 1;
  }
}
