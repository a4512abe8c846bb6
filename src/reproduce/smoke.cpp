// The smoke reproduction: the claims a one-layer attention model must meet on previous-token
// copying. It exercises the reproduction machinery end to end in seconds.
#include <algorithm>

#include "reproduce/run_config.h"
#include "reproduce/smoke.h"

namespace ihlab {

Reproduction smoke_reproduction() {
  Reproduction r;
  r.name = "smoke";
  r.paper = "(none: engine check)";
  r.description = "one-layer attention learns previous-token copying; attention peaks on offset 1";
  r.runtime = "1 s";
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
  r.evaluate = [](ReproContext& c) {
    std::vector<Claim> claims;
    double acc = c.main.metrics.column("val_acc").back();
    claims.push_back({"copies the previous token", "val accuracy >= 0.95", acc, acc >= 0.95, ""});
    double loss = c.main.metrics.column("val_loss").back(), uniform = c.main.metrics.column("ref.uniform").back();
    claims.push_back({"loss far below uniform", "val_loss < 0.1 * ln V", loss, loss < 0.1 * uniform,
                      "ln V = " + std::to_string(uniform)});
    const int window = int(attn1_config(c.spec).window);
    int best = 0;
    std::vector<double> w;
    for (int k = 0; k < window; ++k) w.push_back(c.main.metrics.column("rpe.o" + std::to_string(k)).back());
    best = int(std::max_element(w.begin(), w.end()) - w.begin());
    claims.push_back({"attention bias peaks on offset 1", "argmax_k rpe.o<k> = 1", double(best), best == 1, ""});
    return claims;
  };
  return r;
}

}  // namespace ihlab
