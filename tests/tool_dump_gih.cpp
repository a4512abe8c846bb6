// Dumps one float64 forward/backward of the GIH model for tests/torch_check_gih.py:
//   tool_dump_gih OUT.safetensors MODE LOSS KERNEL [n L vocab heads window max_subset seed]
// MODE = paper|code, LOSS = nll|ce_on_probs, KERNEL = auto|table|direct. Defaults: n 64, L 20,
// vocab 3, heads 3, window 3, max_subset 2, seed 1.
// Tensors: "param.<name>" and "grad.<name>" for w, c, a; "tokens" (I64 [n, L+1], last column the
// target); "loss" ([]); "y" ([n, vocab], the predictions); "seq_loss" ([n]).
// __metadata__["config"]: vocab, mode, loss, guard, subsets (labels in parameter order), ...
// The parameters are random (w ~ N(0, 1), c ~ N(0, 1) kept away from 0, a = 2 + N(0, 1)), so a
// wrong offset mapping or subset order cannot hide behind the symmetric initialization. Tokens
// come from the ngram-markov task (repetitive, as in training) for even seeds and are i.i.d.
// uniform for odd seeds (more distinct patterns, unseen targets).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "io/safetensors.h"
#include "models/gih_model.h"
#include "tasks/ngram_task.h"

using namespace ihlab;

int main(int argc, char** argv) {
  if (argc != 5 && argc != 12) {
    std::fprintf(stderr,
                 "usage: tool_dump_gih OUT.safetensors paper|code nll|ce_on_probs auto|table|direct "
                 "[n L vocab heads window max_subset seed]\n");
    return 2;
  }
  try {
    const std::string out = argv[1], mode = argv[2], loss = argv[3], kernel = argv[4];
    int64_t n = 64, L = 20;
    GihConfig cfg;
    uint64_t seed = 1;
    if (argc == 12) {
      n = std::atol(argv[5]), L = std::atol(argv[6]), cfg.vocab = std::atol(argv[7]);
      cfg.heads = std::atoi(argv[8]), cfg.window = std::atoi(argv[9]), cfg.max_subset = std::atoi(argv[10]);
      seed = std::strtoull(argv[11], nullptr, 10);
    }
    cfg.mode = parse_gih_mode(mode);
    cfg.loss = parse_gih_loss(loss, cfg.mode);
    IHLAB_CHECK(kernel == "auto" || kernel == "table" || kernel == "direct", "unknown kernel '{}'", kernel);
    cfg.kernel = kernel == "table" ? GihKernel::Table : kernel == "direct" ? GihKernel::Direct : GihKernel::Auto;

    GihModel<double> model(cfg);
    RandomStream rng(seed, StreamKind::Test, 31);
    for (auto& x : model.w().value().span()) x = rng.normal();
    for (auto& x : model.c().value().span()) {
      x = rng.normal();
      if (std::abs(x) < 0.2) x = x < 0 ? -0.2 : 0.2;
    }
    model.a().value()[0] = 2.0 + rng.normal();

    Batch b;
    if (seed % 2 == 0) {
      NgramMarkovConfig tc;
      tc.vocab = int(cfg.vocab), tc.length = int(L);
      b = NgramMarkovTask(tc).sample(n, seed, StreamKind::Test, 0);
    } else {
      b.size = n, b.length = L + 1;
      for (int64_t i = 0; i < n * (L + 1); ++i) b.tokens.push_back(int32_t(rng.randint(cfg.vocab)));
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
        {"model", "gih"},
        {"vocab", cfg.vocab},
        {"mode", mode},
        {"loss", gih_loss_name(cfg.loss)},
        {"kernel", kernel},
        {"guard", cfg.guard},
        {"heads", cfg.heads},
        {"window", cfg.window},
        {"max_subset", cfg.max_subset},
        {"subsets", labels},
        {"sequences", n},
        {"length", L},
        {"seed", seed},
        {"dtype", "float64"}}.dump();
    write_safetensors(out, f);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tool_dump_gih: %s\n", e.what());
    return 1;
  }
  return 0;
}
