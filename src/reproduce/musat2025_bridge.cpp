// The standard-transformer bridge of musat2025-emergence: a two-layer attention-only transformer
// (learned positions, one head per layer, no LayerNorm, regression readout; models/transformer.h)
// trained on the same item-label task with the positional half of the features left empty (it
// learns its own positions), once with the squared error and once with cross-entropy over the N
// labels in context. The three progress measures (analysis/bridge_measures.h) are read from the
// run's checkpoints (one every 10 steps: the measures rise within about 300 steps) into
// DIR/bridge_<run>.csv when the run ends; the periodic checkpoints are then deleted (300 of them
// would take 150 MB), the stage-end one is kept.
//
// Emergence of a measure: its first reach of 1% of its largest value in the run (the measures have
// no common scale, so a fixed threshold would mean nothing). Under Adam the measures keep drifting
// after the transition (beta~_2 grows eightfold after the loss has dropped), so late fractions time
// the drift, not the emergence; 10% and 50% are reported beside it.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "analysis/bridge_measures.h"
#include "analysis/emergence.h"
#include "io/checkpoint.h"
#include "reproduce/musat2025_common.h"
#include "reproduce/run_config.h"
#include "reproduce/variants.h"

namespace ihlab::musat {

namespace fs = std::filesystem;

std::vector<Variant> bridge_variants() { return {{"transformer-mse", {}}, {"transformer-ce", {}}}; }

nlohmann::json bridge_config(const nlohmann::json& main, const std::string& variant, bool quick) {
  nlohmann::json c = main;
  const int64_t steps = quick ? 600 : 3000;
  c["dtype"] = "float32";
  c["task"]["positions"] = "none";
  c["model"] = {{"name", "transformer"},
                {"layers", 2},
                {"heads", 1},
                {"width", 64},
                {"attention_only", true},
                {"norm", "none"},
                {"positional", "learned"},
                {"self_attention", true},
                {"regression_loss", variant == "transformer-ce" ? "candidates" : "mse"}};
  c["data"] = {{"mode", "fresh"}, {"batch_size", 256}, {"val_size", 512}};
  c["log"] = {{"every", 25},      {"geometric", true},      {"attention_snapshots", 8},
              {"head_scores", 0}, {"checkpoint_every", 10}, {"keep_checkpoints", 1000000}};
  c["stages"] = nlohmann::json::array({{{"name", "adam"}, {"optimizer", "adam"}, {"lr", 2e-3}, {"steps", steps}}});
  return c;
}

namespace {
struct BridgeRow {
  int64_t step;
  BridgeMeasures m;
};

std::vector<BridgeRow> read_bridge(const std::string& dir, int64_t D) {
  std::vector<BridgeRow> rows;
  for (auto& e : fs::directory_iterator(dir + "/checkpoints")) {
    if (e.path().extension() != ".safetensors") continue;
    Checkpoint<float> ck = load_checkpoint<float>(e.path().string());
    rows.push_back({ck.meta.at("step").get<int64_t>(), bridge_measures(checkpoint_param_map(ck), D)});
  }
  std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.step < b.step; });
  rows.erase(std::unique(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.step == b.step; }), rows.end());
  return rows;
}
}  // namespace

void bridge_finish(const std::string& out_dir, const std::string& variant, int64_t D) {
  const std::string dir = out_dir + "/runs/" + variant;
  std::vector<BridgeRow> rows = read_bridge(dir, D);
  {
    std::ofstream f(out_dir + "/bridge_" + variant + ".csv.tmp");
    f << "step,alpha3,beta2,gamma3\n";
    for (auto& r : rows) f << r.step << "," << r.m.alpha3 << "," << r.m.beta2 << "," << r.m.gamma3 << "\n";
  }
  fs::rename(out_dir + "/bridge_" + variant + ".csv.tmp", out_dir + "/bridge_" + variant + ".csv");
  for (auto& e : fs::directory_iterator(dir + "/checkpoints"))
    if (e.path().filename().string().rfind("step", 0) == 0 && e.path().extension() == ".safetensors")
      fs::remove(e.path());
}

namespace {
// The step at which a bridge run's validation loss first falls below the midpoint of its first
// and last logged values (interpolated); NaN when it never fell by 10%. Fresh-batch training
// losses are too noisy for the plateau detection of analysis/emergence.h, and the MSE run falls
// in one long slope rather than off a plateau.
double loss_drop_step(const MetricsTable& m) {
  const std::vector<double> step = m.column("step"), v = m.column("val_loss");
  if (v.size() < 2 || !(v.back() < 0.9 * v.front())) return NAN;
  const double mid = 0.5 * (v.front() + v.back());
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] <= mid) return step[i - 1] + (v[i - 1] - mid) / (v[i - 1] - v[i]) * (step[i] - step[i - 1]);
  return NAN;
}
}  // namespace

namespace {
const char* kMseClaim = "bridge (MSE): transformer learns retrieval, order gamma~ < beta~ < alpha~";
const char* kCeClaim = "bridge (cross-entropy): the loss drops, later than with MSE";

// The steps to a fraction of each measure's largest value in the bridge run's csv, and a text.
struct BridgeTimes {
  double tg, tb, ta;
  std::string order, later;
  std::vector<double> a, b, g;
};
BridgeTimes bridge_times(ReproContext& c, const std::string& variant) {
  // Read back on purpose: the claim is defined on the file's values (6 significant digits), and
  // the file is also what a rerun finds when the bridge run finished before a restart.
  MetricsTable csv = read_metrics(c.out_dir + "/bridge_" + variant + ".csv");
  BridgeTimes r;
  const std::vector<double> t = csv.column("step");
  r.a = csv.column("alpha3"), r.b = csv.column("beta2"), r.g = csv.column("gamma3");
  auto reach = [&](const std::vector<double>& y, double frac) {
    const double top = y.empty() ? NAN : *std::max_element(y.begin(), y.end());
    return top > 0 ? first_reach(t, y, frac * top) : NAN;
  };
  r.tg = reach(r.g, 0.01), r.tb = reach(r.b, 0.01), r.ta = reach(r.a, 0.01);
  for (double frac : {0.1, 0.5})
    r.later += fmt::format("; at {:.0f}%: gamma~_3 {:.0f}, beta~_2 {:.0f}, alpha~_3 {:.0f}", 100 * frac,
                           reach(r.g, frac), reach(r.b, frac), reach(r.a, frac));
  for (auto& n : emergence_order({"gamma~_3", "beta~_2", "alpha~_3"}, {r.tg, r.tb, r.ta}))
    r.order += (r.order.empty() ? "" : " < ") + n;
  return r;
}
}  // namespace

std::vector<ClaimDef> bridge_claim_defs() {
  return {
      {kMseClaim,
       {lt("val mse / mse of predicting 0", 0.25),
        yes("steps to 1% of each measure's largest value in the order gamma~_3, beta~_2, alpha~_3")},
       "paper: the standard transformer follows the pseudo-parameters' order",
       "the MSE transformer runs 600 steps at a smaller size; beta~_2 and alpha~_3 start within a few steps of each "
       "other",
       seeds_interval()},
      {kCeClaim,
       {yes("the cross-entropy run's validation loss drops (last value < 0.9 x first)"),
        gt("step of its drop / step of the MSE run's drop (first step below the midpoint of first and last values)",
           1)},
       "paper: cross-entropy delays the drop; a run whose loss never drops shows no drop at all, so it cannot hold. "
       "The full run fails it: the loss is still ln 8 (2.0797) after 3000 steps, the MSE run drops at step 449; "
       "the drop needs a run far beyond this reproduction's budget",
       "600 steps end long before the cross-entropy plateau at ln N could"},
  };
}

void bridge_claims(ReproContext& c) {
  c.claim(kMseClaim, [&] {
    const MetricsTable& m = c.variant("transformer-mse").metrics;
    BridgeTimes b = bridge_times(c, "transformer-mse");
    // Learned: the squared error far below predicting 0; then the order of the three measures.
    const double mse = m.column("val_mse").back(), zero = m.column("ref.zero").back(), acc = m.column("val_acc").back();
    const bool ordered =
        std::isfinite(b.tg) && std::isfinite(b.tb) && std::isfinite(b.ta) && b.tg < b.tb && b.tb < b.ta;
    return Measured{
        {mse / zero, yes_no(ordered)},
        fmt::format("val mse {:.4f} (zero predictor {:.4f}), val acc {:.3f}; steps to 1%: gamma~_3 {:.0f}, beta~_2 "
                    "{:.0f}, alpha~_3 {:.0f} ({}){}; final alpha~_3 {:.3g}, beta~_2 {:.3g}, gamma~_3 {:.3g}",
                    mse, zero, acc, b.tg, b.tb, b.ta, b.order, b.later, b.a.empty() ? NAN : b.a.back(),
                    b.b.empty() ? NAN : b.b.back(), b.g.empty() ? NAN : b.g.back())};
  });
  // Cross-entropy over the N labels in context: at uniform attention every label gets the same
  // logit whatever the readout, so the readout has no gradient until attention breaks the symmetry
  // and the plateau at ln N is long. The paper's claim: the loss drop comes later than with MSE
  // (docs/models/disentangled.md#where-ihlab-differs-from-the-paper). A run whose loss never drops
  // does not show it.
  c.claim(kCeClaim, [&] {
    const MetricsTable& m = c.variant("transformer-ce").metrics;
    const MetricsTable& mm = c.variant("transformer-mse").metrics;
    BridgeTimes b = bridge_times(c, "transformer-ce");
    const double t_mse = loss_drop_step(mm), t_ce = loss_drop_step(m);
    const double steps = m.column("step").back(), acc = m.column("val_acc").back();
    const int64_t pairs = item_label_config(c.spec).pairs;
    return Measured{
        {yes_no(std::isfinite(t_ce)), t_ce / t_mse},
        fmt::format("MSE drop at step {:.0f}; cross-entropy: {} (loss {:.4f} at the end, ln N = {:.4f}; val acc "
                    "{:.3f}, chance {:.3f}); measures at 1%: gamma~_3 {:.0f}, beta~_2 {:.0f}, alpha~_3 {:.0f}{}",
                    t_mse,
                    std::isfinite(t_ce) ? fmt::format("drop at step {:.0f}", t_ce)
                                        : fmt::format("no drop in {:.0f} steps", steps),
                    m.column("loss").back(), std::log(double(pairs)), acc, 1.0 / double(pairs), b.tg, b.tb, b.ta,
                    b.later)};
  });
}

}  // namespace ihlab::musat
