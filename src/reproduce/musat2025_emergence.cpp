// musat2025-emergence: one run of the disentangled two-layer attention-only model on item-label
// retrieval, from zero init. Claims: only alpha_3, beta_2, gamma_3 grow (the other 16
// pseudo-parameters stay small, and the weights stay near the 19-dimensional subspace); they
// emerge in the order gamma_3 < beta_2 < alpha_3; the reduced dynamics (the same model trained
// only in its pseudo-parameters, on the same batches) track the full model.
//
// Training (docs/models/disentangled.md#training-setting): orthonormal items and labels, positions redrawn per
// sequence, query uniform with its own positional vector, a fresh batch every step, and gradient
// descent with step eta = D/4 on the time axis t = eta * steps (it matched smaller steps, i.e. the
// flow). A fixed sample would let the full model (16 D^2 + 12 D^2 weights) fit its noise: measured
// at D = 16, N = 4 on 512 fixed sequences, the flow ended with train loss 0.003, validation loss
// 0.14 and 58% of ||W|| outside the subspace; with fresh batches the two losses agree.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "models/pseudo_params.h"
#include "reproduce/musat2025.h"
#include "reproduce/musat2025_common.h"
#include "reproduce/run_config.h"
#include "reproduce/variants.h"
#include "train/run.h"

namespace ihlab {

namespace {

namespace fs = std::filesystem;

const char* kConfig = R"(
name = "musat2025-emergence"
seed = 0
dtype = "float64"
threads = 0
[task]
name = "item-label"
pairs = 8
dim = 32
vectors = "orthonormal"
positions = "random"
query = "uniform"
query_position = "own"
[model]
name = "disentangled"
[data]
mode = "fresh"
batch_size = 1024
val_size = 512
[log]
every = 10
geometric = true
attention_snapshots = 8
head_scores = 0
checkpoint_every = 0
[[stages]]
name = "gd"
optimizer = "sgd"
lr = 8.0            # eta = D / 4; t = eta * steps
steps = 1000        # t = 8000 (t_ICL is about 5200 at D = 32, N = 8)
)";

// The reduced models run on the main run's configuration with [model] replaced (same seed, so the
// same batches).
std::vector<Variant> variants() { return {{"reduced-19", {}}, {"reduced-3", {}}}; }

// The reduced models and the two bridge transformers do not depend on the main run: all of them
// train beside it (run_beside_variants: the main run on one thread here, the variants in worker
// processes, longest first), then each bridge run's checkpoints become its measures' csv.
RunResult run_all(ReproContext& c, const TrainOptions& o) {
  std::vector<Variant> vs;
  for (auto& v : musat::bridge_variants())
    vs.push_back({v.name, {}, musat::bridge_config(c.spec.config, v.name, c.quick)});
  for (auto& v : variants()) {
    nlohmann::json cfg = c.spec.config;
    cfg["model"] = {{"name", "disentangled-reduced"}, {"pseudo", v.name == "reduced-19" ? "all" : "three"}};
    vs.push_back({v.name, {}, cfg});
  }
  RunResult main =
      run_beside_variants(c, o, vs, [&](const RunSpec& spec) { return run_spec(spec, c.data(), c.out_dir, o); });
  for (auto& v : musat::bridge_variants()) {
    auto it = c.variants().find(v.name);
    if (it == c.variants().end() || !it->second.finished()) continue;
    if (!fs::exists(c.out_dir + "/bridge_" + v.name + ".csv"))
      musat::bridge_finish(c.out_dir, v.name, item_label_config(c.spec).dim);
  }
  return main;
}

std::string fmt_time(double t) { return std::isfinite(t) ? fmt::format("{:.0f}", t) : "never"; }

std::string order_text(const musat::RunEmergence& e, double th) {
  std::string s;
  for (auto& n : e.order(th)) s += (s.empty() ? "" : " < ") + n + " (" + fmt_time(e.time(n, th)) + ")";
  return s;
}

// Largest |theta - theta_full| of the three growing ones over the logged rows (same steps), over
// the largest |theta_full| of the three.
double trajectory_gap(const MetricsTable& full, const MetricsTable& red) {
  double gap = 0, scale = 0;
  const size_t n = std::min(full.rows.size(), red.rows.size());
  for (auto& name : musat::growing()) {
    auto a = full.column("pp." + name), b = red.column("pp." + name);
    for (size_t i = 0; i < n; ++i) gap = std::max(gap, std::abs(a[i] - b[i])), scale = std::max(scale, std::abs(a[i]));
  }
  return scale > 0 ? gap / scale : NAN;
}

void claims(ReproContext& c) {
  const double lr = c.spec.stages[0].lr;
  const auto& table = pseudo_parameter_table();
  const MetricsTable& m = c.main.metrics;
  musat::RunEmergence full = musat::read_emergence(m, lr);
  auto vs = variants();
  for (auto& v : musat::bridge_variants()) vs.push_back(v);
  if (!c.control) c.extra["runs"] = variants_json(c, vs);

  // Only three grow: at the end, the other 16 coefficients against the smallest of the three.
  double min_three = INFINITY, max_other = 0;
  std::string other_name;
  nlohmann::json blocks = nlohmann::json::array();
  for (auto& b : table) {
    const double v = m.column("pp." + b.name).back();
    const bool grows = std::find(musat::growing().begin(), musat::growing().end(), b.name) != musat::growing().end();
    if (grows)
      min_three = std::min(min_three, std::abs(v));
    else if (std::abs(v) > max_other)
      max_other = std::abs(v), other_name = b.name;
    blocks.push_back({{"name", b.name},
                      {"matrix", fmt::format("W{}", b.matrix)},
                      {"row_block", b.row_block},
                      {"col_block", b.col_block},
                      {"kind", block_kind_name(b.kind)},
                      {"meaning", b.meaning},
                      {"final", v}});
  }
  c.claim("only alpha_3, beta_2, gamma_3 grow", [&] {
    return Measured{
        {max_other / min_three},
        fmt::format("largest other: {} = {:.3f}; smallest of the three {:.3f}", other_name, max_other, min_three)};
  });
  // The weights stay near the subspace.
  c.claim("weights stay near the 19-dim subspace", [&] {
    auto res = m.column("pp_residual_rel");
    const double res_max = *std::max_element(res.begin() + 1, res.end());
    return Measured{{res.back()},
                    fmt::format("largest over the run (after step 0) {:.3f}; fresh-batch noise, shrinking with the "
                                "batch size",
                                res_max)};
  });
  // Emergence order.
  c.claim("emergence order gamma_3 < beta_2 < alpha_3", [&] {
    return Measured{{yes_no(full.expected_order(0.1))},
                    fmt::format("threshold 0.1: {}; threshold 0.5: {}", order_text(full, 0.1), order_text(full, 0.5))};
  });
  // The loss drops: in-context learning.
  c.claim("the loss drops after a plateau (t_ICL)", [&] {
    return Measured{{full.icl.final_loss / full.icl.plateau, yes_no(full.icl.found)},
                    fmt::format("plateau {:.4f} (t = {:.0f}), final {:.4f}, t_ICL = {:.0f}", full.icl.plateau,
                                full.icl.plateau_t, full.icl.final_loss, full.icl.t_icl)};
  });
  // Reduced dynamics track the full model.
  nlohmann::json emergence = {
      {"time_axis", "t = lr * step (gradient descent, lr = eta)"}, {"lr", lr}, {"full", full.to_json()}};
  c.claim("19-parameter dynamics track the full model", [&] {
    musat::RunEmergence e19 = musat::read_emergence(c.variant("reduced-19").metrics, lr);
    emergence["reduced-19"] = e19.to_json();
    const double gap19 = trajectory_gap(m, c.variant("reduced-19").metrics);
    const double dt19 = (e19.icl.t_icl - full.icl.t_icl) / full.icl.t_icl;
    return Measured{
        {gap19, std::abs(dt19)},
        fmt::format("t_ICL reduced-19 {:.0f} vs full {:.0f} ({:+.1f}%)", e19.icl.t_icl, full.icl.t_icl, 100 * dt19)};
  });
  c.claim("3-parameter dynamics reproduce order and drop", [&] {
    musat::RunEmergence e3 = musat::read_emergence(c.variant("reduced-3").metrics, lr);
    emergence["reduced-3"] = e3.to_json();
    const double dt3 = (e3.icl.t_icl - full.icl.t_icl) / full.icl.t_icl;
    return Measured{{dt3, yes_no(e3.expected_order(0.1) && e3.icl.found)},
                    fmt::format("t_ICL reduced-3 {:.0f} vs full {:.0f} (spec: 13-20% ahead); order {}", e3.icl.t_icl,
                                full.icl.t_icl, order_text(e3, 0.1))};
  });

  // The standard transformer shows the same order through the bridge measures.
  musat::bridge_claims(c);

  c.extra["pseudo_parameters"] = blocks;
  c.extra["emergence"] = emergence;
  // emergence_times.csv: one row per run and threshold (the report shows it as a table).
  const std::string path = c.out_dir + "/emergence_times.csv";
  std::ofstream f(path);
  f << "run,threshold,t_gamma_3,t_beta_2,t_alpha_3,t_icl\n";
  auto row = [&](const std::string& run, const musat::RunEmergence& e) {
    for (double th : musat::thresholds())
      f << run << "," << th << "," << e.time("gamma_3", th) << "," << e.time("beta_2", th) << ","
        << e.time("alpha_3", th) << "," << e.icl.t_icl << "\n";
  };
  row("full", full);
  if (!c.control)
    for (auto n : {"reduced-19", "reduced-3"}) row(n, musat::read_emergence(c.variant(n).metrics, lr));
  f.flush();
  IHLAB_CHECK(f.good(), "musat2025-emergence: could not write '{}'", path);
}

}  // namespace

Reproduction musat2025_emergence() {
  Reproduction r;
  r.name = "musat2025-emergence";
  r.paper = "Musat et al. 2025";
  r.description =
      "item-label retrieval, disentangled 2-layer attention-only model: only alpha_3, beta_2, gamma_3 "
      "grow, in the order gamma_3 < beta_2 < alpha_3; reduced (19 / 3 parameters) dynamics track the full";
  r.runtime = "3.6 min a seed; 5 seeds with --workers 2: 20 min; --quick 40 s";
  // Fresh batches every step: the claims are judged over 5 seeds (--seeds 1: one). A claim on a measured
  // quantity holds when the 95% interval of its mean over the seeds lies within the threshold (the
  // effect is there on average, not in a lucky seed) and its other conditions hold in every seed; a
  // yes/no finding must hold in every seed.
  r.default_seeds = 5;
  r.config_toml = kConfig;
  r.quick_overrides = {"task.pairs=4",        "task.dim=16",       "stages.0.lr=4.0", "stages.0.steps=300",
                       "data.batch_size=512", "data.val_size=256", "threads=1"};
  r.run = run_all;
  r.claims = {
      {"only alpha_3, beta_2, gamma_3 grow",
       {lt("final max |other 16| / min(|alpha_3|, |beta_2|, |gamma_3|)", 0.5)},
       "paper: the dynamics stay on three pseudo-parameters",
       "",
       seeds_interval()},
      {"weights stay near the 19-dim subspace",
       {lt("final ||W - proj W|| / ||W||", 0.25)},
       "paper: from zero init the flow stays in the subspace; fresh-batch noise moves it off a little",
       "",
       seeds_interval()},
      {"emergence order gamma_3 < beta_2 < alpha_3",
       {yes("first reach of 0.1 in the order gamma_3, beta_2, alpha_3 (time t)")},
       "paper"},
      {"the loss drops after a plateau (t_ICL)",
       {lt("final loss / plateau loss", 0.1), yes("t_ICL found")},
       "paper: the abrupt drop of in-context learning",
       "",
       seeds_interval()},
      {"19-parameter dynamics track the full model",
       {lt("max |theta_reduced - theta_full| of the three growing / max |theta_full|", 0.1),
        lt("|t_ICL reduced-19 - full| / full", 0.1)},
       "paper: the reduced dynamics are exact in the population limit",
       "",
       seeds_interval()},
      {"3-parameter dynamics reproduce order and drop",
       {within("(t_ICL reduced-3 - full) / full", -0.25, -0.1),
        yes("reduced-3: order gamma_3 < beta_2 < alpha_3 and t_ICL found")},
       "reference: the spec measures reduced-3 13-20% ahead; measured -20.0% (full run), -17.6% (--quick); the "
       "old band +-35% also accepted a reduced model that drops later",
       "",
       seeds_interval()},
  };
  for (auto& d : musat::bridge_claim_defs()) r.claims.push_back(d);
  r.evaluate = claims;
  // beta_2 clamped at 0 (the reduced model without it): the label cannot be matched to its item.
  r.controls = {{"no-beta2",
                 "the reduced model with beta_2 clamped at 0: no induction, so no drop",
                 {},
                 [](const nlohmann::json& main) {
                   nlohmann::json cfg = main;
                   cfg["model"] = {{"name", "disentangled-reduced"}, {"pseudo", "no-beta2"}};
                   return cfg;
                 },
                 {"the loss drops after a plateau (t_ICL)", "emergence order gamma_3 < beta_2 < alpha_3"}}};
  return r;
}

}  // namespace ihlab
