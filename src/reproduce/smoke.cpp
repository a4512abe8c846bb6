// The smoke reproduction: the claims a one-layer attention model must meet on previous-token
// copying. It exercises the reproduction machinery end to end in seconds.
#include <algorithm>

#include <fmt/format.h>

#include "reproduce/run_config.h"
#include "reproduce/smoke.h"

namespace ihlab {

Reproduction smoke_reproduction() {
  Reproduction r;
  r.name = "smoke";
  r.paper = "(none: engine check)";
  r.description = "one-layer attention learns previous-token copying; attention peaks on offset 1";
  r.runtime = "1 s a seed; 5 seeds: about 5 s";
  // Fresh batches every step: a full run judges its claims over 5 seeds, each in every seed.
  r.default_seeds = 5;
  r.config_toml = R"(
name = "smoke"
seed = 1
dtype = "float32"
[task]
name = "previous-token"
vocab = 8
length = 16
[model]
name = "attn1"
width = 16
window = 4
[data]
mode = "fresh"
batch_size = 32
val_size = 256
[log]
every = 25
checkpoint_every = 100
[[stages]]
name = "adam"
optimizer = "adam"
lr = 0.02
steps = 300
schedule = "cosine"
warmup_steps = 20
clip = 1.0
)";
  r.quick_overrides = {"stages.0.steps=120", "log.every=20"};
  const std::string bar = "engine check, no paper: a bar a one-layer model meets when it copies";
  r.claims = {
      {"copies the previous token", {ge("val accuracy", 0.95)}, bar},
      {"loss far below uniform", {lt("val_loss / ln V", 0.1)}, bar},
      {"attention bias peaks on offset 1", {within("argmax_k rpe.o<k>", 1, 1)}, "the offset the task copies from"},
  };
  r.evaluate = [](ReproContext& c) {
    const MetricsTable& m = c.main.metrics;
    c.claim("copies the previous token", [&] { return Measured{{m.column("val_acc").back()}, ""}; });
    c.claim("loss far below uniform", [&] {
      const double loss = m.column("val_loss").back(), uniform = m.column("ref.uniform").back();
      return Measured{{loss / uniform}, fmt::format("val_loss {:.4g}, ln V = {:.4g}", loss, uniform)};
    });
    c.claim("attention bias peaks on offset 1", [&] {
      std::vector<double> w;
      for (int k = 0; k < int(attn1_config(c.spec).window); ++k)
        w.push_back(m.column(fmt::format("rpe.o{}", k)).back());
      return Measured{{double(std::max_element(w.begin(), w.end()) - w.begin())}, ""};
    });
  };
  // Untrained (learning rate 0): what the claims read at initialization.
  r.controls = {{"untrained",
                 "learning rate 0: the model stays at its initialization",
                 {"stages.0.lr=0.0"},
                 {},
                 {"copies the previous token", "loss far below uniform", "attention bias peaks on offset 1"}}};
  return r;
}

}  // namespace ihlab
