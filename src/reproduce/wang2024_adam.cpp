// wang2024-adam-multiplateau: a standard two-layer attention-only transformer (pre-LN, learned
// positions, 2 heads, width 32) trained with Adam on the d-dimensional mixed target (d = 8) in the
// transformer's regression mode (yhat = LN(x_last) U, loss 1/2 ||yhat - y||^2). The paper reports
// several plateaus in this setting; the claims count the plateaus that the phase segmentation
// (analysis/phases.h, on the validation loss against the step, the flat run at the start included)
// finds and say where they are.
#include <cmath>

#include <fmt/format.h>

#include "analysis/phases.h"
#include "reproduce/wang2024.h"

namespace ihlab {

namespace {

const char* kConfig = R"(
name = "wang2024-adam-multiplateau"
seed = 1
dtype = "float32"
threads = 1
[task]
name = "mixed-target"
length = 20
dim = 8
slots = 1          # the transformer brings its own residual width
w_star = 1.0
alpha_star = 0.5
[model]
name = "transformer"
layers = 2
heads = 2
width = 32
attention_only = true
norm = "pre"
positional = "learned"
[data]
mode = "fresh"
batch_size = 64
val_size = 1000
[log]
every = 25
geometric = true
head_scores = 0
attention_snapshots = 0
[[stages]]
name = "adam"
optimizer = "adam"
lr = 1e-3
steps = 12000
)";

std::vector<Claim> claims(ReproContext& c) {
  std::vector<Claim> out;
  auto step = c.main.metrics.column("step"), val = c.main.metrics.column("val_loss");
  PhaseOptions opt;
  opt.count_initial = true;  // Adam's first plateau sits at the initial loss
  PhaseSegmentation p = segment_phases(step, val, opt);
  nlohmann::json plateaus = nlohmann::json::array();
  for (size_t i = 0; i < p.plateaus.size(); ++i)
    plateaus.push_back({{"start", p.plateaus[i].start},
                        {"end", p.plateaus[i].end},
                        {"level", p.plateaus[i].level},
                        {"steepest", p.transitions[i].steepest},
                        {"drop", p.transitions[i].drop}});
  c.extra["phases"] = {{"axis", "step"}, {"plateaus", plateaus}, {"summary", p.summary()}};
  out.push_back({"several plateaus with Adam",
                 "phase segmentation of val_loss finds >= 2 plateaus, each followed by "
                 "a drop of >= 3x",
                 double(p.plateaus.size()), p.plateaus.size() >= 2, p.summary()});
  const double lazy = c.main.metrics.column("ref.lazy").back(), final_loss = val.back();
  out.push_back({"ends below the lazy predictor", "final val_loss / ref.lazy < 0.25 (the induction head formed)",
                 final_loss / lazy, final_loss / lazy < 0.25,
                 fmt::format("val_loss {:.4g}, ref.lazy {:.4g}, ref.4gram_only {:.4g}", final_loss, lazy,
                             c.main.metrics.column("ref.4gram_only").back())});
  return out;
}

}  // namespace

Reproduction wang2024_adam_multiplateau() {
  Reproduction r;
  r.name = "wang2024-adam-multiplateau";
  r.paper = "Wang, Yu, E & Wu 2024";
  r.description = "standard 2-layer transformer + Adam on the 8-dimensional mixed target: the plateaus of its loss";
  r.runtime = "2.1 min (CPU 69 s), contended 2 cores; --quick 30-50 s";
  r.config_toml = kConfig;
  // A 3x larger learning rate brings the transition from step ~4500 to ~2400.
  r.quick_overrides = {"data.val_size=300", "stages.0.lr=3e-3", "stages.0.steps=3500"};
  r.evaluate = claims;
  return r;
}

}  // namespace ihlab
