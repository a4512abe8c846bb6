// Dumps one float64 forward/backward of OneLayerAttention for tests/torch_check_attn1.py:
//   dump_attn1 OUT.safetensors [vocab length width window batch seed]   (default: the smoke config)
// Tensors: "param.<name>", "grad.<name>" (every parameter), "tokens", "targets" (I64, [B, L]),
// "loss" ([]), "attention" ([B, L, L]); __metadata__["config"] is the config as JSON.
// rpe.w starts at zero in the model, which would hide a wrong offset mapping, so it is overwritten
// with random values first.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "io/safetensors.h"
#include "models/one_layer_attention.h"
#include "tasks/previous_token.h"

using namespace ihlab;

int main(int argc, char** argv) {
  if (argc != 2 && argc != 8) {
    std::fprintf(stderr, "usage: dump_attn1 OUT.safetensors [vocab length width window batch seed]\n");
    return 2;
  }
  OneLayerAttentionConfig c;
  int64_t batch = 32;
  uint64_t seed = 1;
  if (argc == 8) {
    c.vocab = std::atol(argv[2]), c.length = std::atol(argv[3]), c.width = std::atol(argv[4]);
    c.window = std::atol(argv[5]), batch = std::atol(argv[6]), seed = std::strtoull(argv[7], nullptr, 10);
  }
  try {
    OneLayerAttention<double> model(c, seed);
    RandomStream rng(seed, StreamKind::Test);
    for (auto& x : model.params().find("rpe.w")->var.value().span()) x = 0.5 * rng.normal();
    Batch b = PreviousTokenTask(c.vocab, c.length).sample(batch, seed, StreamKind::Data, 0);

    Var<double> loss = model.loss(b);
    backward(loss);
    Tensor<double> att;
    {
      NoGradScope<double> no_grad(model.params());
      att = model.attention(b);
    }

    SafetensorsFile f;
    for (auto& p : model.params().all()) {
      f.tensors.push_back(to_raw("param." + p.name, p.var.value()));
      f.tensors.push_back(to_raw("grad." + p.name, p.var.grad()));
    }
    auto ids = [&](const char* name, const std::vector<int32_t>& v) {
      f.tensors.push_back(
          to_raw(name, Tensor<int64_t>(Shape{b.size, b.length}, std::vector<int64_t>(v.begin(), v.end()))));
    };
    ids("tokens", b.tokens);
    ids("targets", b.targets);
    f.tensors.push_back(to_raw("loss", loss.value()));
    f.tensors.push_back(to_raw("attention", att));
    f.metadata["config"] = nlohmann::json{{"vocab", c.vocab},   {"length", c.length}, {"width", c.width},
                                          {"window", c.window}, {"batch", batch},     {"seed", seed}}
                               .dump();
    write_safetensors(argv[1], f);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dump_attn1: %s\n", e.what());
    return 1;
  }
  return 0;
}
