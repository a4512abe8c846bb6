// musat2025-bridge: the standard-transformer bridge of Musat et al. 2025 on DISCRETE tokens
// (docs/musat2025-bridge.md). A two-layer, one-head, attention-only transformer (learned absolute
// positions, no LayerNorm, strictly causal attention, small init) learns item-label retrieval on
// the "item-label-tokens" task: items and labels are tokens of a 32-token vocabulary with a token
// embedding T and an unembedding W_o, so cross-entropy is over the vocabulary (the spec's reading
// of the paper's setting). The continuous bridge inside musat2025-emergence uses cross-entropy
// over the N labels in context, which sits at a symmetric saddle and never drops; here the
// cross-entropy run drops, and the claims compare its drop with the squared-error run's.
//
// Trainer: gradient descent (SGD, lr 0.5, fresh batches of 128) with the global gradient norm
// clipped at 1, which acts only during the drop (see the configuration). Runs, each an ordinary
// run directory (the main run, DIR itself, is cross-entropy at N = 8): cross-entropy and the
// squared error on the same logits (model.token_loss = "mse": 1/2 ||W_o h - onehot||^2) at
// N = 4, 6, 8, and both losses under Adam at N = 8. The three progress measures
// (analysis/bridge_measures.h, with T the token embedding) are read from a checkpoint every 20
// steps into each run's bridge.csv (musat2025_bridge_tokens_measures.cpp).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "reproduce/musat2025.h"
#include "reproduce/musat2025_bridge_tokens.h"
#include "reproduce/run_config.h"
#include "reproduce/variants.h"
#include "tasks/item_label_tokens.h"
#include "tasks/registry.h"
#include "train/run.h"

namespace ihlab {

namespace {

namespace mt = musat_tokens;

const char* kConfig = R"(
name = "musat2025-bridge"
seed = 0
dtype = "float32"
[task]
name = "item-label-tokens"
pairs = 8
items = 16            # items and labels: N_E = 32 token embeddings in all (the reviews' number)
labels = 16
query = "uniform"
[model]
name = "transformer"
layers = 2
heads = 1
width = 32
attention_only = true
norm = "none"
positional = "learned"
self_attention = false    # strictly causal, as the idealised model (no diagonal)
init_std = 0.1            # small next to 1/sqrt(width) = 0.18; 0.05 stayed on the plateau for 8000 steps
token_loss = "cross-entropy"
[data]
mode = "fresh"
batch_size = 128
val_size = 512
[log]
every = 20
geometric = true
attention_snapshots = 4
head_scores = 0
checkpoint_every = 20     # the bridge measures are read from these (then deleted)
keep_checkpoints = 1000000
[[stages]]
name = "gd"
optimizer = "sgd"
lr = 0.5                  # lr = 1 diverged after the drop (N = 8, seed 0); 0.5 did not
steps = 6000              # the drop of N = 8 came near step 3400 (seed 0)
clip = 1.0                # the plateau's gradient norms are 0.2-1 (seed 2), so this acts only in the drop;
                          # unclipped, seeds 1-4 diverged there (steps 3486-3547), seed 0 did not
)";

// Runs: <loss>-<trainer>-n<N>; the main run (DIR itself) is ce-gd-n<task.pairs>.
std::string run_name(const std::string& loss, const std::string& trainer, int64_t n) {
  return fmt::format("{}-{}-n{}", loss, trainer, n);
}
std::string loss_key(const std::string& loss) {
  return std::string("model.token_loss=") + (loss == "ce" ? "cross-entropy" : "mse");
}
// The N of the gradient-descent runs and their steps (the drop of N = 4 and 6 came near steps
// 1200 and 1700 in seed 0; N = 16 had not left the plateau after 8000 steps, too long for here).
struct Size {
  int64_t n, steps;
};
const std::vector<Size>& sizes(bool quick) {
  static const std::vector<Size> full = {{4, 3000}, {6, 4000}, {8, 6000}}, small = {{4, 2000}};
  return quick ? small : full;
}
int64_t main_pairs(const ReproContext& c) { return task_config<ItemLabelTokensConfig>(task_table(c.spec)).pairs; }

std::vector<Variant> variants(bool quick, int64_t n_main) {
  std::vector<Variant> v;
  for (auto [n, steps] : sizes(quick))
    for (std::string loss : {"ce", "mse"}) {
      if (loss == "ce" && n == n_main) continue;  // the main run
      v.push_back({run_name(loss, "gd", n),
                   {fmt::format("task.pairs={}", n), loss_key(loss), fmt::format("stages.0.steps={}", steps)}});
    }
  if (quick) return v;
  // Adam (lr 2e-3): the drops came at steps 766-940 (squared error) and 1157-1746 (cross-entropy) in
  // seeds 0-4, except seed 3's cross-entropy run, still on its plateau at step 3000 (it dropped near
  // step 3500 in a separate 8000-step run): hence 6000 steps.
  for (std::string loss : {"ce", "mse"})
    v.push_back({run_name(loss, "adam", n_main),
                 {loss_key(loss), "stages.0.optimizer=adam", "stages.0.lr=2e-3", "stages.0.steps=6000"}});
  return v;
}

RunResult run_all(ReproContext& c, const TrainOptions& o) {
  const auto vs = variants(c.quick, main_pairs(c));
  RunResult main = run_main_then_variants(c, o, vs);
  // The measures now, while the checkpoints are there (bridge_table deletes the periodic ones).
  if (main.finished()) {
    mt::bridge_table(c.out_dir);
    for (auto& v : vs) mt::bridge_table(c.variant_dir(v.name));
  }
  return main;
}

// One run's numbers for the claims.
struct RunView {
  double drop = NAN, last = NAN;      // step of the loss drop (NaN: none), last step
  double acc = NAN, loss = NAN;       // final val_acc and val_loss
  double a = NAN, b = NAN, g = NAN;   // final alpha~_3, beta~_2, gamma~_3
  double onset[3] = {NAN, NAN, NAN};  // steps to 1% of the largest value: gamma~, beta~, alpha~
  double level[3] = {NAN, NAN, NAN};  // steps to the level 0.5
  static bool ordered(const double* t) {
    return std::isfinite(t[0]) && std::isfinite(t[1]) && std::isfinite(t[2]) && t[0] < t[1] && t[1] < t[2];
  }
  static std::string times(const double* t) {
    return fmt::format("gamma~ {:.0f}, beta~ {:.0f}, alpha~ {:.0f}", t[0], t[1], t[2]);
  }
  // The drop step, or the last step when there was none: a lower bound of a later drop.
  double drop_or_last() const { return std::isfinite(drop) ? drop : last; }
  std::string drop_text() const {
    return std::isfinite(drop) ? fmt::format("{:.0f}", drop) : fmt::format("none in {:.0f} steps", last);
  }
};

RunView view(ReproContext& c, const std::string& name, bool main) {
  const MetricsTable& m = main ? c.main.metrics : c.variant(name).metrics;
  const MetricsTable br = mt::bridge_table(main ? c.out_dir : c.variant_dir(name));
  RunView r;
  r.drop = mt::drop_step(m), r.last = m.column("step").back();
  r.acc = m.column("val_acc").back(), r.loss = m.column("val_loss").back();
  r.a = br.column("alpha3").back(), r.b = br.column("beta2").back(), r.g = br.column("gamma3").back();
  const char* cols[3] = {"gamma3", "beta2", "alpha3"};
  for (int k = 0; k < 3; ++k) r.onset[k] = mt::reach(br, cols[k], 0.01), r.level[k] = mt::reach(br, cols[k], -0.5);
  return r;
}

const char* kDrops = "the cross-entropy loss drops (gradient descent)";
const char* kOnset = "onset order gamma~ < beta~ < alpha~ (cross-entropy, gradient descent)";
const char* kLevel = "order gamma~ < beta~ < alpha~ at the paper's threshold 0.5 (cross-entropy, gradient descent)";
const char* kLater = "the cross-entropy drop comes later than the squared-error one (gradient descent)";
const char* kGrowsN = "the drop comes later for larger N (cross-entropy, gradient descent)";
const char* kAdamLater = "with Adam the cross-entropy drop comes later than the squared-error one";
const char* kAdamOrder = "with Adam the order gamma~ < beta~ < alpha~ at 0.5 holds for both losses";
const char* kAdamLarger = "with Adam gamma~ and beta~ end larger with cross-entropy";

void claims(ReproContext& c) {
  const int64_t n_main = main_pairs(c);
  const std::string main_name = run_name("ce", "gd", n_main), mse_name = run_name("mse", "gd", n_main);
  if (!c.control) c.extra["runs"] = variants_json(c, variants(c.quick, n_main));
  // Runs are read on first use inside the claims: a control (one plain run) has only its main run,
  // and a claim that needs another one is then reported as not evaluated.
  std::map<std::string, RunView> cache;
  auto run = [&](const std::string& name) -> const RunView& {
    auto it = cache.find(name);
    return it != cache.end() ? it->second : cache[name] = view(c, name, name == main_name);
  };
  c.claim(kDrops, [&] {
    const RunView& ce = run(main_name);
    return Measured{{ce.loss / std::log(double(n_main)), yes_no(std::isfinite(ce.drop))},
                    fmt::format("N = {}: val_loss {:.4f} (ln N = {:.4f}), val_acc {:.3f}; drop at step {}", n_main,
                                ce.loss, std::log(double(n_main)), ce.acc, ce.drop_text())};
  });
  c.claim(kOnset, [&] {
    const RunView& ce = run(main_name);
    return Measured{{yes_no(RunView::ordered(ce.onset))},
                    fmt::format("steps to 1%: {}; to 0.5: {}; final alpha~ {:.3g}, beta~ {:.3g}, gamma~ {:.3g}",
                                RunView::times(ce.onset), RunView::times(ce.level), ce.a, ce.b, ce.g)};
  });
  c.claim(kLevel, [&] {
    const RunView& ce = run(main_name);
    return Measured{{yes_no(RunView::ordered(ce.level))}, "steps to 0.5: " + RunView::times(ce.level)};
  });
  // The squared-error run may not drop at all: its drop is then bounded below by the run's last
  // step, and the ratio above by the cross-entropy drop over that step.
  c.claim(kLater, [&] {
    std::string d;
    bool every = true;
    for (auto [n, steps] : sizes(c.quick)) {
      const RunView &ce = run(run_name("ce", "gd", n)), &mse = run(run_name("mse", "gd", n));
      const double ratio = ce.drop / mse.drop_or_last();
      every = every && ratio > 1;
      d += fmt::format("{}N = {}: cross-entropy {}, squared error {} (ratio {}{:.2f}; final val_acc {:.2f} vs {:.2f})",
                       d.empty() ? "" : "; ", n, ce.drop_text(), mse.drop_text(),
                       std::isfinite(mse.drop) ? "" : "<= ", ratio, ce.acc, mse.acc);
    }
    const RunView &ce = run(main_name), &mse = run(mse_name);
    d += fmt::format("; final gamma~ {:.3g} vs {:.3g}, beta~ {:.3g} vs {:.3g} (N = {})", ce.g, mse.g, ce.b, mse.b,
                     n_main);
    return Measured{{ce.drop / mse.drop_or_last(), yes_no(every)}, d};
  });
  c.claim(kGrowsN, [&] {
    bool grows = sizes(c.quick).size() >= 3;
    std::string d = "drops at";
    std::vector<double> t;
    for (auto [n, steps] : sizes(c.quick)) {
      t.push_back(run(run_name("ce", "gd", n)).drop);
      d += fmt::format(" {:.0f} (N = {})", t.back(), n);
      grows = grows && std::isfinite(t.back()) && (t.size() == 1 || t.back() > t[t.size() - 2]);
    }
    const double slope =
        std::log(t.back() / t.front()) / std::log(double(sizes(c.quick).back().n) / double(sizes(c.quick).front().n));
    return Measured{{yes_no(grows)},
                    d + fmt::format("; log-log slope from the smallest to the largest N {:.2f}", slope)};
  });
  {  // Adam (full runs only: a --quick run reports these claims as not evaluated without measuring)
    const std::string ca_name = run_name("ce", "adam", n_main), ma_name = run_name("mse", "adam", n_main);
    c.claim(kAdamLater, [&] {
      const RunView &ca = run(ca_name), &ma = run(ma_name);
      return Measured{{ca.drop / ma.drop, yes_no(std::isfinite(ca.drop) && std::isfinite(ma.drop))},
                      fmt::format("drops: cross-entropy {}, squared error {}; final val_acc {:.3f}, {:.3f}",
                                  ca.drop_text(), ma.drop_text(), ca.acc, ma.acc)};
    });
    c.claim(kAdamOrder, [&] {
      const RunView &ca = run(ca_name), &ma = run(ma_name);
      return Measured{
          {yes_no(RunView::ordered(ca.level)), yes_no(RunView::ordered(ma.level))},
          fmt::format("steps to 0.5: cross-entropy {}; squared error {}; to 1% of the largest value: {}; {}",
                      RunView::times(ca.level), RunView::times(ma.level), RunView::times(ca.onset),
                      RunView::times(ma.onset))};
    });
    c.claim(kAdamLarger, [&] {
      const RunView &ca = run(ca_name), &ma = run(ma_name);
      return Measured{{ca.g / ma.g, ca.b / ma.b},
                      fmt::format("final gamma~ {:.3g} vs {:.3g}, beta~ {:.3g} vs {:.3g}, alpha~ {:.3g} vs {:.3g} "
                                  "(cross-entropy vs squared error)",
                                  ca.g, ma.g, ca.b, ma.b, ca.a, ma.a)};
    });
  }
  if (c.control) return;
  // The trained weights in the paper's transformed form: the main run and its squared-error twin.
  c.extra["weights"] = {{main_name, mt::transformed_weights(c.out_dir, c.out_dir, main_name)},
                        {mse_name, mt::transformed_weights(c.variant_dir(mse_name), c.out_dir, mse_name)}};
}

}  // namespace

Reproduction musat2025_bridge() {
  Reproduction r;
  r.name = "musat2025-bridge";
  r.paper = "Musat et al. 2025";
  r.description =
      "discrete item-label tokens, standard 2-layer attention-only transformer by gradient descent (Adam as a "
      "variant): bridge measures gamma~, beta~, alpha~, cross-entropy over the vocabulary against the squared error";
  r.runtime = "5 seeds with --controls, 2 workers: 13.4 min (15 min CPU); --quick with --controls 24-27 s";
  // Fresh batches every step: the claims are judged over 5 seeds (--seeds 1: one).
  r.default_seeds = 5;
  r.config_toml = kConfig;
  // N = 4 only, whose drop came near step 1200 (seed 0).
  r.quick_overrides = {"task.pairs=4", "stages.0.steps=2000"};
  r.run = run_all;
  r.claims = {
      {kDrops,
       {lt("final val_loss / ln N", 0.25), yes("val_loss falls below the midpoint of its first and last values")},
       "paper: the induction head forms and in-context retrieval is learned; ln N is the loss of a model that finds "
       "the labels in context but not the queried one (ref.context), 0.25 of it is ihlab's margin",
       "",
       seeds_interval()},
      {kOnset,
       {yes("steps to 1% of each measure's largest value in the order gamma~_3, beta~_2, alpha~_3")},
       "paper: the standard transformer follows the pseudo-parameters' order; 1% onset as in musat2025-emergence's "
       "continuous bridge (the measures have no common scale)",
       "the largest value depends on how long a run goes on after its drop: under cross-entropy beta~ keeps "
       "growing (seed 0: 253 at the drop, step 3082, and 1476 at step 6000 in the full run; in an unclipped --quick "
       "run 5.5 at the drop and 986 at step 2000), so a 2000-step quick run cannot place the 1% points"},
      {kLevel,
       {yes("first reach of 0.5 in the order gamma~_3, beta~_2, alpha~_3")},
       "spec: 0.5 is the paper's main-text emergence threshold of the pseudo-parameters, applied here to the bridge "
       "measures as they are"},
      {kLater,
       {gt("step of the cross-entropy drop / step of the squared-error drop (main N; a squared-error run that never "
           "drops counts at its last step, which bounds the ratio from above)",
           1),
        yes("the ratio is > 1 at every N")},
       "paper (spec: with cross-entropy the loss drop comes later)",
       "the quick run's 2000 steps cannot show a squared-error drop (the full run's 3000-6000 steps did not in seed 0 "
       "either), so only a bound of the ratio would be measured",
       seeds_interval()},
      {kGrowsN,
       {yes("the drop step increases from N = 4 to 6 to 8")},
       "paper: t_ICL = Theta(N^2) for the idealised model; only the direction is claimed for the transformer",
       "--quick runs N = 4 only"},
      {kAdamLater,
       {gt("step of the cross-entropy drop / step of the squared-error drop (Adam)", 1), yes("both runs drop")},
       "paper (spec: with cross-entropy the loss drop comes later)",
       "--quick runs no Adam variant",
       seeds_interval()},
      {kAdamOrder,
       {yes("cross-entropy: first reach of 0.5 in the order gamma~_3, beta~_2, alpha~_3"),
        yes("squared error: the same")},
       "paper: the standard transformer follows the pseudo-parameters' order; spec: 0.5 is the paper's main-text "
       "threshold",
       "--quick runs no Adam variant"},
      {kAdamLarger,
       {gt("final gamma~_3 cross-entropy / squared error (Adam)", 1),
        gt("final beta~_2 cross-entropy / squared error (Adam)", 1)},
       "paper (spec: with cross-entropy gamma_3 and beta_2 get larger)",
       "--quick runs no Adam variant",
       seeds_interval()},
  };
  r.evaluate = claims;
  r.controls = {
      {"random-labels",
       "the target is the label of an independent pair (task.label_rule = random): nothing ties it to the query, so "
       "no mechanism can bring the loss below ln N",
       {"task.label_rule=random"},
       {},
       {kDrops}},
      {"frozen-layer1",
       "layer 1 frozen at its small random init: no previous-token head can form, so layer 2 has no copied item to "
       "match",
       {},
       [](const nlohmann::json& main) {
         nlohmann::json cfg = main;
         cfg["stages"][0]["train"] = {"embed", "pos", "layer1.attn", "unembed"};
         return cfg;
       },
       {kDrops}},
  };
  return r;
}

}  // namespace ihlab
