// musat2025-scaling: the time to in-context learning grows like N^2 in the number N of
// item-label pairs, the readout's emergence time T_gamma like N. One run per (N, seed) of the
// reduced three-parameter model (alpha_3, beta_2, gamma_3; models/disentangled.h), whose Gram-matrix
// kernel costs O(N^2) per sequence whatever D is: the full model at N = 64 needs D >= 128 and
// 28 D^2 weights, far beyond a 15-minute budget (README: full-model runtimes per N).
//
// Gradient flow (Dormand-Prince, unit rate) on a fixed sample, from zero init; D = 128 for every N
// (orthonormal items and labels need D >= 2N), so only N changes. Each run integrates to
// horizon(N) = 1.3 x (135 N^2 + 800 N) x D / 128, about 1.3 x the t_ICL measured at D = 128 (the
// flow after the drop is stiff: most of a run's steps come after t_ICL, so the margin is kept small).
// Fits (all runs as points, Student-t 95% intervals): ln t against ln N over all N and over the
// upper half of N, and t = a N^2 + b N (the spec: a pure power law over small N understates 2).
#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "analysis/fits.h"
#include "reproduce/musat2025.h"
#include "reproduce/musat2025_common.h"
#include "reproduce/variants.h"
#include "train/run.h"
#include "train/sweep.h"

namespace ihlab {

namespace {

const char* kConfig = R"(
name = "musat2025-scaling"
seed = 0
dtype = "float64"
threads = 0
[task]
name = "item-label"
pairs = 4
dim = 128
vectors = "orthonormal"
positions = "random"
query = "uniform"
query_position = "own"
[model]
name = "disentangled-reduced"
pseudo = "three"
[data]
mode = "fixed"
train_size = 256
val_size = 64
batch_size = 0
[log]
every = 1000000
geometric = true
attention_snapshots = 4
head_scores = 0
[[stages]]
name = "flow"
method = "flow"
lr = 1.0
time = 6968.0       # horizon(4) at D = 128; each variant sets its own
)";

struct Grid {
  std::vector<int> pairs;
  int seeds;
};
Grid grid(bool quick) { return quick ? Grid{{4, 8, 16}, 1} : Grid{{4, 6, 8, 12, 16, 24, 32, 48, 64}, 3}; }

double horizon(int N, int64_t D) { return 1.3 * (135.0 * N * N + 800.0 * N) * double(D) / 128.0; }

std::string run_name(int N, int seed) { return fmt::format("N{:03d}-seed{}", N, seed); }

// Every (N, seed) except the main run (the first N, seed 0, which lives in DIR itself).
std::vector<Variant> variants(const nlohmann::json& config, bool quick) {
  const int64_t D = config.at("task").at("dim");
  const int64_t seed0 = config.at("seed");
  Grid g = grid(quick);
  std::vector<Variant> v;
  for (int N : g.pairs)
    for (int s = 0; s < g.seeds; ++s) {
      if (N == g.pairs[0] && s == 0) continue;
      v.push_back({run_name(N, s), {fmt::format("task.pairs={}", N), fmt::format("seed={}", seed0 + s),
                                    fmt::format("stages.0.time={}", horizon(N, D))}});
    }
  return v;
}

// t = a N^2 + b N by least squares, with Student-t intervals (n - 2 degrees of freedom).
struct QuadFit {
  double a = NAN, b = NAN, a_lo = NAN, a_hi = NAN, b_lo = NAN, b_hi = NAN;
  int n = 0;
};
QuadFit fit_quadratic(const std::vector<double>& N, const std::vector<double>& t) {
  QuadFit f;
  double s44 = 0, s43 = 0, s33 = 0, y2 = 0, y1 = 0;
  for (size_t i = 0; i < N.size(); ++i) {
    if (!std::isfinite(t[i])) continue;
    const double x = N[i];
    s44 += x * x * x * x, s43 += x * x * x, s33 += x * x, y2 += x * x * t[i], y1 += x * t[i], ++f.n;
  }
  if (f.n < 3) return f;
  const double det = s44 * s33 - s43 * s43;
  f.a = (y2 * s33 - y1 * s43) / det;
  f.b = (s44 * y1 - s43 * y2) / det;
  double rss = 0;
  for (size_t i = 0; i < N.size(); ++i)
    if (std::isfinite(t[i])) rss += std::pow(t[i] - f.a * N[i] * N[i] - f.b * N[i], 2);
  const double s2 = rss / (f.n - 2), q = student_t_quantile(0.95, f.n - 2);
  const double ea = q * std::sqrt(s2 * s33 / det), eb = q * std::sqrt(s2 * s44 / det);
  f.a_lo = f.a - ea, f.a_hi = f.a + ea, f.b_lo = f.b - eb, f.b_hi = f.b + eb;
  return f;
}

LineFitCI loglog(const std::vector<double>& N, const std::vector<double>& t, double min_N = 0) {
  std::vector<double> lx, ly;
  for (size_t i = 0; i < N.size(); ++i)
    if (N[i] >= min_N && t[i] > 0 && std::isfinite(t[i])) lx.push_back(std::log(N[i])), ly.push_back(std::log(t[i]));
  return fit_line_ci(lx, ly);
}

std::string slope_text(const LineFitCI& f) {
  return fmt::format("{:.3f} [{:.3f}, {:.3f}] (n = {})", f.fit.slope, f.slope_lo, f.slope_hi, f.fit.n);
}

std::vector<Claim> claims(ReproContext& c) {
  std::vector<Claim> out;
  const double lr = musat::stage_lr(c.config);
  const Grid g = grid(c.quick);
  auto vs = variants(c.config, c.quick);
  c.extra["runs"] = variants_json(c.out_dir, vs);
  // One row per run: N, seed, t_ICL and every emergence time.
  struct Row {
    int N, seed;
    musat::RunEmergence e;
  };
  std::vector<Row> rows;
  for (int N : g.pairs)
    for (int s = 0; s < g.seeds; ++s) {
      const bool main = N == g.pairs[0] && s == 0;
      MetricsTable m = main ? c.metrics : variant_metrics(c.out_dir, run_name(N, s));
      rows.push_back({N, s, musat::read_emergence(m, lr)});
    }
  std::vector<double> xN, t_icl;
  for (auto& r : rows) xN.push_back(r.N), t_icl.push_back(r.e.icl.t_icl);
  auto series = [&](const std::string& name, double th) {
    std::vector<double> y;
    for (auto& r : rows) y.push_back(r.e.time(name, th));
    return y;
  };
  const double upper = g.pairs[g.pairs.size() / 2];  // the upper half of the N values
  int found = 0, ordered = 0;
  for (auto& r : rows) found += r.e.icl.found, ordered += r.e.expected_order(0.1);

  out.push_back({"t_ICL found in every run", "the loss drops below the plateau-final midpoint in every run",
                 double(found), found == int(rows.size()), fmt::format("{} of {} runs", found, rows.size())});
  LineFitCI fi = loglog(xN, t_icl), fi_up = loglog(xN, t_icl, upper);
  QuadFit q = fit_quadratic(xN, t_icl);
  out.push_back({"t_ICL ~ N^2", "log-log slope of t_ICL vs N (all N) in [1.7, 2.3]", fi.fit.slope,
                 fi.fit.slope >= 1.7 && fi.fit.slope <= 2.3,
                 fmt::format("all N: {}; N >= {:.0f}: {}; t = a N^2 + b N: a = {:.1f} [{:.1f}, {:.1f}], b = {:.0f} "
                             "[{:.0f}, {:.0f}]",
                             slope_text(fi), upper, slope_text(fi_up), q.a, q.a_lo, q.a_hi, q.b, q.b_lo, q.b_hi)});
  // The spec: t = a N^2 + b N with b / a of several units, so the slope over all N understates 2
  // and the upper half of N is closer to the asymptotic exponent; both are claimed, neither hides
  // the other.
  out.push_back({"t_ICL ~ N^2 over the upper half of N", fmt::format("log-log slope of t_ICL vs N for N >= {:.0f} in [1.7, 2.3]", upper),
                 fi_up.fit.slope, fi_up.fit.slope >= 1.7 && fi_up.fit.slope <= 2.3, slope_text(fi_up)});
  out.push_back({"t = a N^2 + b N has a quadratic term", "95% interval of a above 0", q.a, q.a_lo > 0,
                 fmt::format("a = {:.1f} [{:.1f}, {:.1f}], b = {:.0f} [{:.0f}, {:.0f}] (n = {})", q.a, q.a_lo, q.a_hi, q.b,
                             q.b_lo, q.b_hi, q.n)});
  LineFitCI fg = loglog(xN, series("gamma_3", 0.1)), fg5 = loglog(xN, series("gamma_3", 0.5));
  out.push_back({"T_gamma ~ N", "log-log slope of T_gamma (threshold 0.1) vs N in [0.7, 1.3]", fg.fit.slope,
                 fg.fit.slope >= 0.7 && fg.fit.slope <= 1.3,
                 fmt::format("threshold 0.1: {}; threshold 0.5: {}", slope_text(fg), slope_text(fg5))});
  LineFitCI fb = loglog(xN, series("beta_2", 0.1)), fa = loglog(xN, series("alpha_3", 0.1));
  out.push_back({"order gamma_3 < beta_2 < alpha_3 in every run", "first reach of 0.1 in this order",
                 double(ordered), ordered == int(rows.size()),
                 fmt::format("{} of {} runs; slopes at 0.1: T_beta {}, T_alpha {}", ordered, rows.size(),
                             slope_text(fb), slope_text(fa))});

  // summary.json: per-run times, the fits, and "scaling" entries in the sweep format (points,
  // log-log fit with its slope interval and 95% band) for the report's log-log plots.
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json runs = nlohmann::json::array();
  std::ofstream f(c.out_dir + "/emergence_times.csv");
  f << "N,seed,t_icl,plateau,t_gamma_3_0.1,t_beta_2_0.1,t_alpha_3_0.1,t_gamma_3_0.5,t_beta_2_0.5,t_alpha_3_0.5\n";
  for (auto& r : rows) {
    nlohmann::json j = r.e.to_json();
    j["N"] = r.N, j["seed"] = r.seed, j["dir"] = r.N == g.pairs[0] && r.seed == 0 ? "." : "runs/" + run_name(r.N, r.seed);
    runs.push_back(j);
    f << r.N << "," << r.seed << "," << r.e.icl.t_icl << "," << r.e.icl.plateau;
    for (double th : musat::thresholds())
      for (auto& n : musat::growing()) f << "," << r.e.time(n, th);
    f << "\n";
  }
  auto fit_json = [&](const LineFitCI& l) {
    return nlohmann::json{{"slope", l.fit.slope}, {"slope_lo", num(l.slope_lo)}, {"slope_hi", num(l.slope_hi)},
                          {"intercept", l.fit.intercept}, {"r2", l.fit.r2}, {"n", l.fit.n}};
  };
  c.extra["scaling_runs"] = runs;
  c.extra["fits"] = {{"t_icl", fit_json(fi)},
                     {"t_icl_upper_half", fit_json(fi_up)},
                     {"upper_half_from_N", upper},
                     {"t_icl_quadratic", {{"a", q.a}, {"a_lo", q.a_lo}, {"a_hi", q.a_hi}, {"b", q.b}, {"b_lo", q.b_lo},
                                          {"b_hi", q.b_hi}, {"n", q.n}}},
                     {"t_gamma_3_0.1", fit_json(fg)},
                     {"t_gamma_3_0.5", fit_json(fg5)},
                     {"t_beta_2_0.1", fit_json(fb)},
                     {"t_alpha_3_0.1", fit_json(fa)}};
  nlohmann::json scaling = nlohmann::json::array();
  scaling.push_back(scaling_fit_json("t_ICL vs N", "task.pairs", "t_icl", xN, t_icl));
  for (auto& n : musat::growing())
    scaling.push_back(scaling_fit_json("T_" + n + " (0.1) vs N", "task.pairs", "t_" + n, xN, series(n, 0.1)));
  c.extra["scaling"] = scaling;
  return out;
}

}  // namespace

Reproduction musat2025_scaling() {
  Reproduction r;
  r.name = "musat2025-scaling";
  r.paper = "Musat et al. 2025";
  r.description = "N = 4..64 item-label pairs x 3 seeds, reduced 3-parameter flow: log-log slopes of t_ICL (~2) and "
                  "T_gamma (~1) with 95% intervals, and t = a N^2 + b N";
  r.runtime = "11.5 min (9.2 min CPU); --quick 10 s";
  r.config_toml = kConfig;
  r.quick_overrides = {"task.dim=32", "data.train_size=64", "data.val_size=32", "stages.0.time=1742", "threads=1"};
  r.run = [](const ReproContext& c, const TrainOptions& o) {
    return run_main_then_variants(c, o, variants(c.config, c.quick));
  };
  r.evaluate = claims;
  return r;
}

}  // namespace ihlab
