// musat2025-full-scaling: the full disentangled model (28 D^2 weights, models/disentangled.h), not
// the reduced three-parameter one, trained from zero init by gradient descent on fresh batches
// (query last) for N = 4 .. 24 item-label pairs, each N beside the reduced three-parameter model
// on the same batches. Claims: the full model learns at every N; its t_ICL / D grows like N^2
// (Musat et al. 2025's Theta(N^2)); the reduced model's law holds for the full model, i.e. the
// ratio of their t_ICL does not drift with N (Fig. 5: the three-parameter dynamics are
// self-contained); the emergence order.
//
// D per N: D = 2N, the smallest D for orthonormal items and labels. Why that suffices: t_ICL is
// proportional to D at fixed N with eta = D / 4 (measured with the reduced model on fresh batches
// at N = 8: t_ICL / D = 322, 320, 320 at D = 16, 32, 64; and by musat2025-scaling's flow, 0.3%
// between D = 128 and 1024), so the number of steps to t_ICL does not depend on D, and the law in N
// is read off t_ICL / D. A step costs ~ B L D^2, so D = 2N keeps N = 16 at ~0.1 s a step on two
// cores; D = 4N (musat2025-emergence's ratio) would cost 4 times more. What D = 2N changes: 2N
// orthonormal vectors then span R^D, a regime where the full model has directions the three
// parameters lack; the measured full/reduced ratio is reported per N, not assumed.
// Every run ends at stop_loss = 0.02 (a 25th of the plateau) or at 32 N^2 steps (1.5 times
// what the reduced model needs).
//
// Why N stops at 24: the issue asked for N beyond 16 as far as an hour per run allows. One thread,
// measured 2026-12-07: a full-model step costs 0.38 s at N = 24 and 0.78 s at N = 32, about half
// of it the per-sequence orthonormal draws; N = 24's full run took 5618 steps (about 40 min) and
// its 3-parameter twin about 12000 (about 70 min); at N = 32 the law puts the full run near 9000
// steps (2 h) and its twin near 21000. Larger N: data.shards over MPI ranks, each drawing only its
// rows (train/data_parallel.h), with the per-step times in summary.json's projection.
#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "analysis/fits.h"
#include "reproduce/musat2025.h"
#include "reproduce/musat2025_common.h"
#include "reproduce/run_config.h"
#include "reproduce/variants.h"
#include "train/run.h"
#include "train/sweep.h"
#include "train/theory_curve.h"

namespace ihlab {

namespace {

const char* kConfig = R"(
name = "musat2025-full-scaling"
seed = 0
dtype = "float64"
threads = 0
[task]
name = "item-label"
pairs = 4           # the main run; every other N is a variant
dim = 8             # D = 2N
vectors = "orthonormal"
positions = "random"
query = "last"
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
attention_snapshots = 4
head_scores = 0
checkpoint_every = 0
[[stages]]
name = "gd"
optimizer = "sgd"
lr = 2.0            # eta = D / 4
steps = 512         # 32 N^2
stop_loss = 0.02
)";

std::vector<int> pairs(bool quick) { return quick ? std::vector<int>{3, 4, 6} : std::vector<int>{4, 6, 8, 12, 16, 24}; }

std::string run_name(const std::string& model, int N) { return fmt::format("{}-N{:02d}", model, N); }

std::vector<std::string> size_overrides(int N) {
  const int D = 2 * N;
  return {fmt::format("task.pairs={}", N), fmt::format("task.dim={}", D), fmt::format("stages.0.lr={}", D / 4.0),
          fmt::format("stages.0.steps={}", 32 * N * N)};
}

// The variants are listed largest N first: the worker pool starts the longest runs first, so the
// small ones fill the other workers meanwhile (at N = 24 one run takes 30-60 min on one core).
std::vector<int> largest_first(bool quick) {
  std::vector<int> n = pairs(quick);
  std::reverse(n.begin(), n.end());
  return n;
}

// The full model at every N but the first (the main run).
std::vector<Variant> full_variants(bool quick) {
  std::vector<Variant> v;
  for (int N : largest_first(quick))
    if (N != pairs(quick)[0]) v.push_back({run_name("full", N), size_overrides(N)});
  return v;
}
// The reduced models at every N, in one pool: "reduced3" (alpha_3, beta_2, gamma_3) and "reduced19"
// (all 19 pseudo-parameters), on a configuration whose model is the 3-parameter one.
std::vector<Variant> reduced_variants(bool quick) {
  std::vector<Variant> v;
  for (int N : largest_first(quick)) {
    v.push_back({run_name("reduced3", N), size_overrides(N)});
    std::vector<std::string> all = size_overrides(N);
    all.push_back("model.pseudo=\"all\"");
    v.push_back({run_name("reduced19", N), all});
  }
  return v;
}

RunResult run_all(ReproContext& c, const TrainOptions& o) {
  RunResult main = run_main_then_variants(c, o, full_variants(c.quick));
  if (!main.finished()) return main;
  nlohmann::json cfg = c.spec.config;
  cfg["model"] = {{"name", "disentangled-reduced"}, {"pseudo", "three"}};
  if (!run_variants(c, cfg, reduced_variants(c.quick), !o.quiet)) main.summary.status = RunStatus::Interrupted;
  return main;
}

struct Row {
  int N = 0;
  musat::RunEmergence full, reduced, reduced19;
  double full_steps = 0, full_wall = 0;  // steps run and wall seconds of the full run
  bool has_reduced = false;
  double D() const { return 2.0 * N; }
};

bool learned(const musat::RunEmergence& e) { return e.icl.found && e.icl.final_loss < 0.1 * e.icl.plateau; }

LineFitCI loglog(const std::vector<double>& x, const std::vector<double>& y) {
  std::vector<double> lx, ly;
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i] > 0 && y[i] > 0 && std::isfinite(y[i])) lx.push_back(std::log(x[i])), ly.push_back(std::log(y[i]));
  return fit_line_ci(lx, ly);
}
std::string slope_text(const LineFitCI& f) {
  return fmt::format("{:.3f} [{:.3f}, {:.3f}] (n = {})", f.fit.slope, f.slope_lo, f.slope_hi, f.fit.n);
}

void claims(ReproContext& c) {
  // In a control only the main run exists: the claims that need every N are not evaluated.
  std::vector<Row> rows;
  for (int N : pairs(c.quick)) {
    if (c.control && N != pairs(c.quick)[0]) continue;
    const RunResult& full = N == pairs(c.quick)[0] ? c.main : c.variant(run_name("full", N));
    Row r;
    r.N = N;
    r.full = musat::read_emergence(full.metrics, N / 2.0);  // lr = eta = D / 4 = N / 2
    r.full_steps = full.metrics.rows.empty() ? 0 : full.metrics.column("step").back();
    r.full_wall = full.summary.wall_seconds;
    if (!c.control) {
      r.reduced = musat::read_emergence(c.variant(run_name("reduced3", N)).metrics, N / 2.0);
      r.reduced19 = musat::read_emergence(c.variant(run_name("reduced19", N)).metrics, N / 2.0);
    }
    r.has_reduced = !c.control;
    rows.push_back(r);
  }
  // summary.json's runs: full, then 3-parameter, then 19-parameter, each by N ascending.
  std::vector<Variant> all, reduced = reduced_variants(c.quick);
  for (auto& v : full_variants(c.quick)) all.insert(all.begin(), v);
  for (auto which : {"reduced3", "reduced19"})
    for (int N : pairs(c.quick))
      for (auto& v : reduced)
        if (v.name == run_name(which, N)) all.push_back(v);
  if (!c.control) c.extra["runs"] = variants_json(c, all);

  int ok = 0, ordered = 0;
  std::string per_n;
  for (auto& r : rows) {
    ok += learned(r.full), ordered += r.full.expected_order(0.1);
    per_n += fmt::format("{}N = {}: plateau {:.3f}, final {:.3f}, t_ICL / D = {:.1f}", per_n.empty() ? "" : "; ", r.N,
                         r.full.icl.plateau, r.full.icl.final_loss, r.full.icl.t_icl / r.D());
  }
  c.claim("the full model learns in context at every N", [&] {
    return Measured{{double(ok) / double(rows.size())}, fmt::format("{} of {} runs; {}", ok, rows.size(), per_n)};
  });

  // Query last: t_ICL = Theta(N^2). Query uniform (or stratified): the retrieval signal averages
  // 1 / (2q - 1) over the queried index q, ~ ln N / (2N), so t_ICL = Theta(N^2 / ln N) and the law
  // is read off t_ICL ln N (musat2025-scaling's header). `law` is that factor, `law_name` its text.
  const bool uniform_query = c.spec.config["task"].value("query", "last") != "last";
  const std::string law_name = uniform_query ? "t_ICL ln N / D" : "t_ICL / D";
  auto law = [&](int n) { return uniform_query ? std::log(double(n)) : 1.0; };
  std::vector<double> N, full_t, red_t, red19_t, ratio, ratio19;
  for (auto& r : rows) {
    N.push_back(r.N), full_t.push_back(r.full.icl.t_icl / r.D() * law(r.N));
    red_t.push_back(r.has_reduced ? r.reduced.icl.t_icl / r.D() * law(r.N) : NAN);
    red19_t.push_back(r.has_reduced ? r.reduced19.icl.t_icl / r.D() * law(r.N) : NAN);
    ratio.push_back(full_t.back() / red_t.back()), ratio19.push_back(full_t.back() / red19_t.back());
  }
  const LineFitCI ff = loglog(N, full_t), fr = loglog(N, red_t), fratio = loglog(N, ratio);
  c.claim("full model: t_ICL / D ~ N^2", [&]() -> Measured {
    if (rows.size() < 3) return not_evaluated("needs the runs at every N");
    return Measured{{ff.fit.slope},
                    fmt::format("{} vs N: full {}; reduced three-parameter model on the same "
                                "batches {}",
                                law_name, slope_text(ff), slope_text(fr))};
  });
  std::string gaps;
  double worst = 0;
  for (size_t i = 0; i < N.size(); ++i) {
    gaps += fmt::format("{}N = {}: {:.3f}", gaps.empty() ? "" : ", ", N[i], ratio[i]);
    worst = std::max(worst, std::abs(std::log(ratio[i])));
  }
  c.claim("the reduced model's law holds for the full model", [&]() -> Measured {
    if (rows.size() < 3) return not_evaluated("needs the runs at every N");
    return Measured{{fratio.fit.slope},
                    fmt::format("t_ICL full / reduced: {}; log-log slope of the ratio {}", gaps, slope_text(fratio))};
  });
  c.claim("the 19-parameter model tracks the full model at every N", [&]() -> Measured {
    if (rows.size() < 3) return not_evaluated("needs the runs at every N");
    double worst19 = 0;
    std::string text;
    for (size_t i = 0; i < N.size(); ++i) {
      worst19 = std::max(worst19, std::abs(ratio19[i] - 1));
      text += fmt::format("{}N = {}: {:.3f}", text.empty() ? "" : ", ", N[i], ratio19[i]);
    }
    return Measured{{worst19}, fmt::format("t_ICL full / reduced-19: {}", text)};
  });
  c.claim("emergence order gamma_3 < beta_2 < alpha_3 in every full run", [&] {
    return Measured{{double(ordered) / double(rows.size())}, fmt::format("{} of {} runs", ordered, rows.size())};
  });
  if (c.control) return;

  // Per-step cost of the full model and the projected wall time of larger N on this machine:
  // steps to 1.3 t_ICL from the fitted law (steps = 4 t_ICL / D), seconds per step from a
  // log-log fit over the measured N.
  std::vector<double> sec_per_step;
  for (auto& r : rows) sec_per_step.push_back(r.full_steps > 0 ? r.full_wall / r.full_steps : NAN);
  const LineFitCI fcost = loglog(N, sec_per_step);
  nlohmann::json projection = nlohmann::json::array();
  for (int n : {32, 64, 128}) {
    const double steps = 1.3 * 4 * std::exp(ff.fit.intercept) * std::pow(n, ff.fit.slope) / law(n);
    const double sps = std::exp(fcost.fit.intercept) * std::pow(n, fcost.fit.slope);
    projection.push_back(
        {{"N", n}, {"D", 2 * n}, {"steps", steps}, {"seconds_per_step", sps}, {"hours", steps * sps / 3600}});
  }
  c.extra["projection"] = {{"what",
                            "projected wall time of one full-model run to 1.3 t_ICL on this machine (2 cores): "
                            "steps from the fitted t_ICL / D law, seconds per step from a log-log fit of the "
                            "measured runs (batch 1024, float64); a data-parallel run over P machines divides "
                            "the per-step time by at most P"},
                           {"seconds_per_step_slope", fcost.fit.slope},
                           {"points", projection}};

  nlohmann::json runs = nlohmann::json::array();
  std::ofstream f(c.out_dir + "/full_scaling.csv");
  // t_icl_*_law: t_ICL / D, times ln N with a uniform query (the quantity whose law is N^2).
  f << "N,D,t_icl_full,t_icl_reduced3,t_icl_reduced19,t_icl_full_law,t_icl_reduced3_law,ratio,ratio19,"
       "plateau_full,final_full,steps_full,seconds_per_step_full\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    runs.push_back({{"N", r.N},
                    {"D", r.D()},
                    {"full", r.full.to_json()},
                    {"reduced3", r.reduced.to_json()},
                    {"reduced19", r.reduced19.to_json()},
                    {"ratio", ratio[i]},
                    {"ratio19", ratio19[i]},
                    {"seconds_per_step", sec_per_step[i]}});
    f << r.N << "," << r.D() << "," << r.full.icl.t_icl << "," << r.reduced.icl.t_icl << "," << r.reduced19.icl.t_icl
      << "," << full_t[i] << "," << red_t[i] << "," << ratio[i] << "," << ratio19[i] << "," << r.full.icl.plateau << ","
      << r.full.icl.final_loss << "," << r.full_steps << "," << sec_per_step[i] << "\n";
  }
  f.flush();
  IHLAB_CHECK(f.good(), "musat2025-full-scaling: could not write '{}'", c.out_dir + "/full_scaling.csv");
  c.extra["scaling_runs"] = runs;
  nlohmann::json scaling = nlohmann::json::array();
  scaling.push_back(scaling_fit_json(law_name + " vs N (full model)", "task.pairs", "t_icl_law", N, full_t));
  scaling.push_back(scaling_fit_json(law_name + " vs N (reduced 3)", "task.pairs", "t_icl_law", N, red_t));
  scaling.push_back(scaling_fit_json(law_name + " vs N (reduced 19)", "task.pairs", "t_icl_law", N, red19_t));
  scaling.push_back(scaling_fit_json("seconds per step vs N (full model)", "task.pairs", "seconds", N, sec_per_step));
  c.extra["scaling"] = scaling;
  // Theory: c N^2 through the reduced runs (c = mean of t / (D N^2)), drawn over the full model.
  double sum = 0;
  int n = 0;
  for (size_t i = 0; i < N.size(); ++i)
    if (std::isfinite(red_t[i])) sum += red_t[i] / (N[i] * N[i]), ++n;
  const double cr = n ? sum / n : NAN;
  c.extra["theory"] = nlohmann::json::array({theory_curve_json(
      "full model " + law_name + " vs N", "N (item-label pairs)", law_name, true, true,
      fmt::format("{} = {:.4g} N^2", law_name, cr),
      fmt::format("paper: {} ~ N^2; c: mean of {} / N^2 over the reduced model's runs here",
                  uniform_query ? "t_ICL ~ N^2 / ln N (query uniform), i.e. t_ICL ln N" : "t_ICL", law_name),
      N, full_t, [&](double x) { return cr * x * x; })});
}

}  // namespace

Reproduction musat2025_full_scaling() {
  Reproduction r;
  r.name = "musat2025-full-scaling";
  r.paper = "Musat et al. 2025";
  r.description =
      "the full disentangled model (not the reduced one) by gradient descent on fresh batches, query last, "
      "N = 4..24 at D = 2N, beside the reduced 3-parameter model on the same batches: t_ICL / D ~ N^2, "
      "full/reduced ratio per N, projected cost of larger N";
  r.runtime = "about 2.5 h on 2 cores (N = 24's runs: 43, 61 and 30 min on one core each; README); --quick 15 s";
  r.config_toml = kConfig;
  r.quick_overrides = {"task.pairs=3",        "task.dim=6",        "stages.0.lr=1.5", "stages.0.steps=288",
                       "data.batch_size=256", "data.val_size=128", "threads=1"};  // main run at N = 3
  r.run = run_all;
  r.claims = {
      {"the full model learns in context at every N",
       {ge("fraction of full-model runs whose loss drops below the plateau-final midpoint and ends below 0.1 x the "
           "plateau",
           1)},
       "paper: the full model forms the induction head from zero init (stop_loss 0.02 ends a run at a 25th of "
       "the 0.5 plateau)"},
      {"full model: t_ICL / D ~ N^2",
       {within("log-log slope of the full model's t_ICL / D (times ln N with a uniform query) vs N (N = 4..24)", 1.8,
               2.2)},
       "paper: t_ICL = Theta(N^2); +-0.2 for the small-N term (musat2025-scaling's reduced flow: t = 635 N^2 - "
       "171 N at D = 128). Measured on the full run (2026-12-07): 1.70 [1.59, 1.82] over N = 4..16 and 1.71 [1.64, "
       "1.77] over N = 4..24 (1.76 between N = 16 and 24), so the claim fails; the 19-parameter model follows the "
       "full one within 2% at every N, so this is the law of the 19-dimensional dynamics, whose 16 other "
       "parameters speed the escape more as N grows",
       "--quick runs N = 3, 4, 6 at batch 256, where D = 2N = 6 is too small for the law"},
      {"the reduced model's law holds for the full model",
       {within("log-log slope of t_ICL(full) / t_ICL(reduced 3) vs N", -0.2, 0.2)},
       "paper (Fig. 5): the three-parameter dynamics are self-contained, so the two laws differ by at most a "
       "constant; a slope of +-0.2 is a factor 1.3 over N = 4..16. Measured on the full run: -0.25 [-0.33, "
       "-0.17] over N = 4..24 (the full model's t_ICL is 0.73 of the 3-parameter model's at N = 4, 0.54 at "
       "N = 16, 0.49 at N = 24), so the claim fails: the three parameters alone are not self-contained here",
       "--quick runs N = 3, 4, 6 at batch 256, where D = 2N = 6 is too small for the law"},
      {"the 19-parameter model tracks the full model at every N",
       {lt("largest |t_ICL(full) / t_ICL(reduced 19) - 1| over N", 0.1)},
       "paper: the 19-parameter dynamics are exact in the population limit; 10% as in musat2025-emergence "
       "(measured there: +0.5% at N = 8, D = 32, query uniform)",
       "--quick runs N = 3, 4, 6 at batch 256, where D = 2N = 6 is too small for the law"},
      {"emergence order gamma_3 < beta_2 < alpha_3 in every full run",
       {ge("fraction of full-model runs with first reach of 0.1 in this order", 1)},
       "paper. Measured on the full run: holds up to N = 16 and fails at N = 24, where alpha_3 reaches 0.1 3% "
       "before beta_2 (t = 13148 against 13550): beta_2's lead over alpha_3 shrinks with N (t_beta / t_alpha = "
       "0.48, 0.60, 0.69, 0.80, 0.89, 1.03 for N = 4..24; at the 0.5 level they swap from N = 12)"},
  };
  r.evaluate = claims;
  // Layer 2's key-query matrix frozen at zero: the query attends uniformly to the context, so the
  // readout cannot pick the queried item's label.
  r.controls = {{"w2-frozen",
                 "the full model with W2 frozen at zero (uniform layer-2 attention): no retrieval",
                 {"stages.0.train=[\"W1\", \"W3\"]"},
                 {},
                 {"the full model learns in context at every N"}}};
  return r;
}

}  // namespace ihlab
