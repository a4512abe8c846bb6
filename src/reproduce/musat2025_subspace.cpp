// musat2025-subspace: Musat et al. 2025's Theorem 1 (the training dynamics of the disentangled
// model stay in the 19-dimensional span of the pseudo-parameter basis) with isotropic Gaussian
// items at large D, D = 32 .. 1024.
//
// What is measured, and why not ||W_off|| / ||W|| of a trained model: a fresh-batch run adds
// sampling noise in all 28 D^2 weight directions, and the share of one batch's gradient outside
// the span grows with D (0.72 at D = 32, 0.999 at D = 1024), so a trained model's off-span
// fraction at large D is a statement about the batch size. The theorem is about the expected
// gradient. models/subspace_gradient.h estimates the off-span part of E[grad] without bias from K
// independent batches (a U-statistic over batch pairs, jackknife interval); the claims read its
// structured part (along I, M, M^T, M^2, M^T^2 in every D x D block: 5 directions a block, so
// resolved to about +-0.002 where the all-direction share is noise-limited). The points W: the
// main run trains the 19-parameter model (disentangled-reduced, pseudo = all) at D = 32, and its
// weights at four times (zero init, the plateau, t_ICL, the end) are placed at every D (the
// reduced trajectory in pseudo-parameter coordinates does not depend on D to first order:
// musat2025-full-scaling's header). If a span is invariant, E[grad] at a point in it has no
// off-span part. Two spans: the configured 19 entries, and the 24-entry table closed under
// M <-> M^T (models/pseudo_params.h).
//
// Control: fixed positional vectors (drawn once instead of per sequence). The spec records that W1's
// position block then leaves span{I, M, M^T}; the estimator must see even the closed span fail.
#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "analysis/fits.h"
#include "train/sweep.h"
#include "io/run_dir.h"
#include "models/pseudo_params.h"
#include "models/subspace_gradient.h"
#include "reproduce/musat2025.h"
#include "reproduce/musat2025_common.h"
#include "tasks/registry.h"
#include "train/run.h"

namespace ihlab {

namespace {

const char* kConfig = R"(
name = "musat2025-subspace"
seed = 0
dtype = "float64"
threads = 0
[task]
name = "item-label"
pairs = 4
dim = 32
vectors = "gaussian"
positions = "random"
query = "uniform"
query_position = "own"
[model]
name = "disentangled-reduced"
pseudo = "all"
[data]
mode = "fresh"
batch_size = 1024
val_size = 512
[log]
every = 5
geometric = false
attention_snapshots = 0
head_scores = 0
checkpoint_every = 0
[[stages]]
name = "gd"
optimizer = "sgd"
lr = 8.0            # eta = D / 4
steps = 300
)";

// Sequences per estimate: batch_size * 256 / D (clamped to [1/4, 4] times), and 4 times more at
// the plateau point, whose expected gradient is about 10 times smaller than at t_ICL while the
// sampling noise is not. Why fewer at large D: the noise of the U-statistic falls with the number
// of weight directions the sampling noise spreads over (28 D^2), while a gradient costs ~ D^2 per
// sequence (at D = 256, 12 batches of 512 resolve the t_ICL share to +-0.002).
struct Budget {
  std::vector<int64_t> dims;
  int batches = 12;
  int64_t batch_size = 512;
  int64_t plateau_factor = 4;
  int64_t sequences(int64_t D, bool plateau) const {
    const int64_t base = std::clamp<int64_t>(batch_size * 256 / D, batch_size / 4, batch_size * 4);
    return base * (plateau ? plateau_factor : 1);
  }
};
Budget budget(bool quick) {
  if (quick) return {{16, 32}, 8, 256, 4};
  return {{32, 64, 128, 256, 512, 1024}, 12, 512, 4};
}

const char* kPoints[] = {"init", "plateau", "t_icl", "end"};
constexpr int kNumPoints = 4;
constexpr int64_t kLargeD = 128;  // "large D" of the closed-span claim (its basis says why)

// Rows of the main run's metrics at the four times, as pseudo-parameter vectors (table order).
std::vector<std::vector<double>> trajectory_points(const MetricsTable& m, double lr, std::vector<double>* times) {
  const std::vector<double> t = musat::time_axis(m, lr);
  const IclTime icl = icl_time(t, m.column("val_loss"));
  const double want[kNumPoints] = {0, std::isfinite(icl.t_icl) ? icl.t_icl / 2 : NAN, icl.t_icl, t.back()};
  const auto& table = pseudo_parameter_table();
  std::vector<std::vector<double>> points;
  for (int p = 0; p < kNumPoints; ++p) {
    IHLAB_CHECK(std::isfinite(want[p]), "musat2025-subspace: the main run shows no t_ICL (its loss never drops)");
    size_t row = 0;
    for (size_t i = 0; i < t.size(); ++i)
      if (std::abs(t[i] - want[p]) < std::abs(t[row] - want[p])) row = i;
    std::vector<double> theta;
    for (const auto& b : table) theta.push_back(m.column("pp." + b.name)[row]);
    points.push_back(theta);
    times->push_back(t[row]);
  }
  return points;
}

// The spans tested: the configured 19-entry table and the table closed under M <-> M^T.
struct TableName {
  const char* name;
  const char* what;
};
const TableName kTables[] = {{"19", "the 19 pseudo-parameters"}, {"24", "the 24-entry table closed under M <-> M^T"}};
std::vector<NamedBasisTable> tables() {
  return {{kTables[0].name, &pseudo_parameter_table()}, {kTables[1].name, &closed_pseudo_parameter_table()}};
}
std::string key(const std::string& point, int64_t D, const std::string& table) {
  return fmt::format("{}/D{}/span{}", point, D, table);
}

std::string estimates_path(const std::string& dir) { return dir + "/subspace_gradient.json"; }

nlohmann::json read_estimates(const std::string& dir) {
  std::ifstream f(estimates_path(dir));
  if (!f) return nlohmann::json::object();
  return nlohmann::json::parse(f);
}

// Every (point, D) estimate, each written as soon as it is done so that an interrupted run keeps
// what it measured and a rerun computes only what is missing.
RunResult run_all(ReproContext& c, const TrainOptions& o) {
  RunResult main = run_spec(c.spec, c.data(), c.out_dir, o);
  if (!main.finished()) return main;
  const double lr = c.spec.config["stages"][0]["lr"].get<double>();
  std::vector<double> times;
  const auto points = trajectory_points(main.metrics, lr, &times);
  const Budget b = budget(c.quick);
  nlohmann::json est = read_estimates(c.out_dir);
  for (int64_t D : b.dims) {
    nlohmann::json task_cfg = c.spec.config["task"];
    task_cfg["dim"] = D;
    std::unique_ptr<Task> task = make_task(task_cfg);
    const auto* il = dynamic_cast<const ItemLabelTask*>(task.get());
    IHLAB_CHECK(il != nullptr, "musat2025-subspace: task '{}' is not item-label", task->name());
    for (int p = 0; p < kNumPoints; ++p) {
      if (est.contains(key(kPoints[p], D, kTables[0].name))) continue;
      SubspaceGradientOptions so;
      so.batches = b.batches, so.batch_size = b.sequences(D, p == 1),
      so.seed = c.spec.config["seed"].get<uint64_t>() + 1000;
      const DisentangledWeights W = build_pseudo_weights(points[p], il->rotation(), D);
      for (const SubspaceGradientEstimate& e : estimate_subspace_gradient(*il, W, tables(), so)) {
        nlohmann::json& j = est[key(kPoints[p], D, e.table)];
        j = e.to_json();
        j["point"] = kPoints[p], j["t"] = times[p], j["theta"] = points[p];
        if (!o.quiet)
          fmt::print(
              "  {:8s} D = {:5d} span {:>2s}: off-span share of E[grad] {:.4f} [{:.4f}, {:.4f}], structured "
              "{:.4f} [{:.4f}, {:.4f}], one batch {:.3f}\n",
              kPoints[p], D, e.table, e.share, e.share_lo, e.share_hi, e.structured_share, e.structured_share_lo,
              e.structured_share_hi, e.batch_share);
      }
      write_json_atomic(estimates_path(c.out_dir), est);
    }
  }
  return main;
}

double field(const nlohmann::json& est, const std::string& point, int64_t D, const std::string& table,
             const char* name) {
  const std::string k = key(point, D, table);
  IHLAB_CHECK(est.contains(k), "musat2025-subspace: no estimate '{}' in subspace_gradient.json", k);
  return est[k][name].get<double>();
}

std::string interval(const nlohmann::json& est, const std::string& point, int64_t D, const std::string& table) {
  return fmt::format("{:.4f} [{:.4f}, {:.4f}]", field(est, point, D, table, "structured_share"),
                     field(est, point, D, table, "structured_share_lo"),
                     field(est, point, D, table, "structured_share_hi"));
}

void claims(ReproContext& c) {
  const nlohmann::json est = read_estimates(c.out_dir);
  const Budget b = budget(c.quick);
  nlohmann::json scaling = nlohmann::json::array();
  std::vector<double> dims;
  for (int64_t D : b.dims) dims.push_back(double(D));
  for (const TableName& t : kTables) {
    double worst_hi = 0;
    std::string worst, text;
    for (int p = 0; p < kNumPoints; ++p)
      for (int64_t D : b.dims) {
        const double hi = field(est, kPoints[p], D, t.name, "structured_share_hi");
        if (hi >= worst_hi) worst_hi = hi, worst = fmt::format("{} at D = {}", kPoints[p], D);
      }
    std::vector<double> share, batch;
    for (int64_t D : b.dims) {
      share.push_back(field(est, "t_icl", D, t.name, "structured_share"));
      batch.push_back(field(est, "t_icl", D, t.name, "batch_share"));
      text += fmt::format("{}D = {}: {} (all directions {:.3f} [{:.3f}, {:.3f}])", text.empty() ? "" : "; ", D,
                          interval(est, "t_icl", D, t.name), field(est, "t_icl", D, t.name, "share"),
                          field(est, "t_icl", D, t.name, "share_lo"), field(est, "t_icl", D, t.name, "share_hi"));
    }
    c.claim(fmt::format("the expected gradient stays in the span of {}", t.what), [&] {
      return Measured{{worst_hi}, fmt::format("largest upper end {:.4f} ({}); at t_ICL: {}", worst_hi, worst, text)};
    });
    if (t.name == kTables[0].name) {
      const LineFitCI f = fit_line_ci(
          [&] {
            std::vector<double> l;
            for (double d : dims) l.push_back(std::log(d));
            return l;
          }(),
          [&] {
            std::vector<double> l;
            for (double x : share) l.push_back(std::log(std::max(x, 1e-6)));
            return l;
          }());
      c.claim("the share the 19 pseudo-parameters miss does not fall with D", [&] {
        return Measured{{f.fit.slope},
                        fmt::format("log-log slope {:.3f} [{:.3f}, {:.3f}] of the structured share at "
                                    "t_ICL vs D",
                                    f.fit.slope, f.slope_lo, f.slope_hi)};
      });
    }
    scaling.push_back(
        scaling_fit_json(fmt::format("structured off-span share of E[grad] at t_ICL vs D (span {})", t.name),
                         "task.dim", "share", dims, share));
    scaling.push_back(scaling_fit_json(fmt::format("single-batch off-span share at t_ICL vs D (span {})", t.name),
                                       "task.dim", "batch_share", dims, batch));
  }
  // Closing the span under M <-> M^T: what is left of the structured share at the three points
  // away from zero (at W = 0 both spans hold the expected gradient), as a fraction of the 19
  // entries' share there.
  double worst_ratio = 0;
  std::string text;
  for (int p = 1; p < kNumPoints; ++p)
    for (int64_t D : b.dims) {
      const double s19 = field(est, kPoints[p], D, kTables[0].name, "structured_share");
      const double s24 = field(est, kPoints[p], D, kTables[1].name, "structured_share");
      const double ratio = s19 > 0 ? s24 / s19 : (s24 > 0 ? INFINITY : 0.0);
      if (ratio >= worst_ratio)
        worst_ratio = ratio, text = fmt::format("{} at D = {}: 24 entries {}, 19 entries {}", kPoints[p], D,
                                                interval(est, kPoints[p], D, "24"), interval(est, kPoints[p], D, "19"));
    }
  c.claim("closing the span under M <-> M^T removes the structured off-span part", [&] {
    return Measured{{worst_ratio}, "largest ratio: " + text};
  });
  // The closed span at large D only: the largest upper end over the four points at D >= kLargeD.
  double large_hi = 0;
  std::string large;
  for (int p = 0; p < kNumPoints; ++p)
    for (int64_t D : b.dims) {
      if (D < kLargeD) continue;
      const double hi = field(est, kPoints[p], D, kTables[1].name, "structured_share_hi");
      if (hi >= large_hi) large_hi = hi, large = fmt::format("{} at D = {}", kPoints[p], D);
    }
  c.claim(fmt::format("at large D (D >= {}) the expected gradient stays in the closed span", kLargeD),
          [&]() -> Measured {
            if (large.empty()) return not_evaluated(fmt::format("no D >= {} in this run", kLargeD));
            return Measured{{large_hi}, fmt::format("largest upper end {:.4f} ({})", large_hi, large)};
          });
  c.extra["scaling"] = scaling;
  c.extra["subspace_gradient"] = est;
}

}  // namespace

const char* kQuickSkip =
    "--quick estimates from 8 batches of 1024 sequences (4096 at the plateau) at D = 16, 32, which resolve shares "
    "of about 0.05 to 0.1, not below the threshold";

Reproduction musat2025_subspace() {
  Reproduction r;
  r.name = "musat2025-subspace";
  r.paper = "Musat et al. 2025";
  r.description =
      "Theorem 1 at large D with isotropic Gaussian items: the off-span share of the expected gradient of the full "
      "model (unbiased over batch pairs, jackknife interval) at four points of the 19-parameter trajectory, "
      "D = 32..1024, for the 19-entry span and the 24-entry span closed under M <-> M^T";
  r.runtime = "11 min (22 min with --controls) on a shared 2-core machine (README); --quick 7-21 s";
  r.config_toml = kConfig;
  r.quick_overrides = {"task.dim=8", "stages.0.lr=2.0", "data.batch_size=256", "data.val_size=128", "threads=1"};
  r.run = run_all;
  r.claims = {
      {"the expected gradient stays in the span of the 19 pseudo-parameters",
       {lt("largest upper 95% end of the structured off-span share of ||E grad|| over D and the four points", 0.05)},
       "paper: Theorem 1 (the share is 0); 0.05: half the share the estimator finds along M in W2's position "
       "blocks (0.11 at t_ICL, measured)",
       kQuickSkip},
      {"the share the 19 pseudo-parameters miss does not fall with D",
       {gt("log-log slope of the 19-entry span's structured off-span share at t_ICL vs D", -0.1)},
       "design: a finite-D effect would fall like D^-1/2 or faster (slope -0.5); -0.1 separates the two over "
       "D = 32..1024 (a factor 0.7)",
       kQuickSkip},
      {"the expected gradient stays in the span of the 24-entry table closed under M <-> M^T",
       {lt("largest upper 95% end of the structured off-span share of ||E grad|| over D and the four points", 0.05)},
       "measurement: the 19-entry span misses M beside M^T in W2's position blocks (the first runs, README); "
       "0.05 as above",
       kQuickSkip},
      {"at large D (D >= 128) the expected gradient stays in the closed span",
       {lt("largest upper 95% end of the structured share outside the 24-entry span over D >= 128 and the four "
           "points",
           0.05)},
       "issue: Theorem 1 at large D; D >= 128 set after the first full run (2026-12-07), which resolved a residual "
       "along M^T^2 in W2's (key o1.pos, query pos) block at D = 32 (0.047 [0.022, 0.063] at the end point) and 64 "
       "(0.018 [0.013, 0.022]) and none from D = 128 on; 0.05 as above",
       kQuickSkip},
      {"closing the span under M <-> M^T removes the structured off-span part",
       {lt("largest ratio of the structured share, 24-entry span over 19-entry span, at the plateau, t_ICL and "
           "the end, every D",
           0.5)},
       "measurement: the 24-entry span's share is at the estimator's noise (0 to 0.03 at t_ICL) where the 19-entry "
       "span's is 0.08 to 0.16 (first full run); with fixed positions the largest ratio is 0.88 (full run) and 0.96 "
       "(--quick)"},
  };
  r.evaluate = claims;
  r.controls = {{"fixed-positions",
                 "positional vectors drawn once, not per sequence: W1's position block leaves span{I, M, M^T}",
                 {"task.positions=\"fixed\""},
                 {},
                 {"closing the span under M <-> M^T removes the structured off-span part"},
                 true}};
  return r;
}

}  // namespace ihlab
