// Dumps one float64 forward/backward of the "full" GIH variant (gih-full) for
// tests/torch_check_gih_full.py:
//   tool_dump_gih_full OUT.safetensors MODE LOSS [n L vocab heads window max_subset seed self_attention]
// MODE = paper|code, LOSS = nll|ce_on_probs, self_attention = 0|1. Defaults: n 64, L 20, vocab 3,
// heads 3, window 3, max_subset 2, seed 2, self_attention 1.
// Tensors: "param.<name>" and "grad.<name>" for w, q, k, ov, ln_gamma, ln_beta, c, a; "tokens"
// (I64 [n, L+1], last column the target); "loss" ([]); "y" ([n, vocab]); "seq_loss" ([n]).
// __metadata__["config"]: model, vocab, mode, loss, guard, ln_eps, proj_init, self_attention,
// heads, window, max_subset, subsets (labels in parameter order), sequences, length, seed, dtype.
// The parameters are random, not the init (whose tiny Q, K, OV = 0.001 I would make the content
// part of the logits and the value projection invisible): w, Q, K, OV ~ N(0, 1), gamma = 1 + N(0,
// 0.5^2), beta ~ N(0, 0.3^2), c ~ N(0, 1) kept away from 0, a = 2 + N(0, 1). Tokens come from the
// ngram-markov task for even seeds and are i.i.d. uniform for odd seeds (more distinct layer-1
// patterns, targets that never occur in the context).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "io/safetensors.h"
#include "models/gih_full_model.h"
#include "tasks/ngram_task.h"

using namespace ihlab;

int main(int argc, char** argv) {
  if (argc != 4 && argc != 12) {
    std::fprintf(stderr,
                 "usage: tool_dump_gih_full OUT.safetensors paper|code nll|ce_on_probs "
                 "[n L vocab heads window max_subset seed self_attention]\n");
    return 2;
  }
  try {
    const std::string out = argv[1], mode = argv[2], loss = argv[3];
    int64_t n = 64, L = 20;
    GihFullConfig cfg;
    uint64_t seed = 2;
    if (argc == 12) {
      n = std::atol(argv[4]), L = std::atol(argv[5]), cfg.base.vocab = std::atol(argv[6]);
      cfg.base.heads = std::atoi(argv[7]), cfg.base.window = std::atoi(argv[8]);
      cfg.base.max_subset = std::atoi(argv[9]);
      seed = std::strtoull(argv[10], nullptr, 10);
      const std::string sa = argv[11];
      IHLAB_CHECK(sa == "0" || sa == "1", "self_attention must be 0 or 1, got '{}'", sa);
      cfg.self_attention = sa == "1";
    }
    cfg.base.mode = parse_gih_mode(mode);
    cfg.base.loss = parse_gih_loss(loss, cfg.base.mode);

    GihFullModel<double> model(cfg);
    RandomStream rng(seed, StreamKind::Test, 37);
    for (auto* v : {&model.w(), &model.q(), &model.k(), &model.ov()})
      for (auto& x : v->value().span()) x = rng.normal();
    for (auto& x : model.gamma().value().span()) x = 1.0 + 0.5 * rng.normal();
    for (auto& x : model.beta().value().span()) x = 0.3 * rng.normal();
    for (auto& x : model.c().value().span()) {
      x = rng.normal();
      if (std::abs(x) < 0.2) x = x < 0 ? -0.2 : 0.2;
    }
    model.a().value()[0] = 2.0 + rng.normal();

    Batch b;
    if (seed % 2 == 0) {
      NgramMarkovConfig tc;
      tc.vocab = int(cfg.base.vocab), tc.length = int(L);
      b = NgramMarkovTask(tc).sample(n, seed, StreamKind::Test, 0);
    } else {
      b.size = n, b.length = L + 1;
      for (int64_t i = 0; i < n * (L + 1); ++i) b.tokens.push_back(int32_t(rng.randint(cfg.base.vocab)));
      b.targets.assign(b.tokens.size(), -1);
    }

    Var<double> l = model.loss(b);
    backward(l);
    Tensor<double> y = model.predict(b);
    std::vector<double> seq = model.sequence_losses(b);

    SafetensorsFile f;
    for (auto& p : model.params().all()) {
      f.tensors.push_back(to_raw("param." + p.name, p.var.value()));
      f.tensors.push_back(to_raw("grad." + p.name, p.var.grad()));
    }
    std::vector<int64_t> ids(b.tokens.begin(), b.tokens.end());
    f.tensors.push_back(to_raw("tokens", Tensor<int64_t>(Shape{b.size, b.length}, std::move(ids))));
    f.tensors.push_back(to_raw("loss", l.value()));
    f.tensors.push_back(to_raw("y", y));
    f.tensors.push_back(to_raw("seq_loss", Tensor<double>(Shape{n}, seq)));
    nlohmann::json labels = nlohmann::json::array();
    for (auto& s : model.subsets()) labels.push_back(s.label);
    f.metadata["config"] = nlohmann::json{
        {"model", "gih-full"},
        {"vocab", cfg.base.vocab},
        {"mode", mode},
        {"loss", gih_loss_name(cfg.base.loss)},
        {"guard", cfg.base.guard},
        {"ln_eps", cfg.ln_eps},
        {"proj_init", cfg.proj_init},
        {"self_attention", cfg.self_attention},
        {"heads", cfg.base.heads},
        {"window", cfg.base.window},
        {"max_subset", cfg.base.max_subset},
        {"subsets", labels},
        {"sequences", n},
        {"length", L},
        {"seed", seed},
        {"dtype", "float64"}}.dump();
    write_safetensors(out, f);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tool_dump_gih_full: %s\n", e.what());
    return 1;
  }
  return 0;
}
