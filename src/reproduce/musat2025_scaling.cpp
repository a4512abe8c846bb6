// musat2025-scaling: the time to in-context learning grows like N^2 in the number N of
// item-label pairs, the readout's emergence time T_gamma like N. One run per (query rule, N, seed)
// of the reduced three-parameter model (alpha_3, beta_2, gamma_3; models/disentangled.h), whose
// Gram-matrix kernel costs O(N^2) per sequence whatever D is: the full model at N = 64 needs
// D >= 128 and 28 D^2 weights, far beyond a 15-minute budget (README: full-model runtimes).
//
// Two sweeps over N, because the query rule changes the law:
//   last:    the query asks item N. t_ICL = c N^2 (measured: t_ICL / N^2 constant within 1-3%).
//   uniform: the query asks an item drawn uniformly, here stratified (sequence r asks item r mod N,
//            the exact average over q; a uniform draw makes t_ICL vary by 25% between samples at
//            N = 64). Early in the plateau the induction score of label q is its layer-1 weight on
//            its own item, 1 / (2q - 1) at zero init, so the plateau's escape rate is proportional
//            to E_q[1 / (2q - 1)] ~ ln N / (2N) instead of 1 / (2N - 1): t_ICL = c N^2 / ln N
//            (measured constant within 2% over N = 4..64), a pure log-log slope of 2 - 1 / ln N.
// Gradient flow (Dormand-Prince, unit rate) on a fixed sample from zero init; D = 128 for every N
// (items and labels orthonormal need D >= 2N; t_ICL / D is the same at D = 128, 256, 512 and 1024
// to 0.3%); every accepted step logged. A run ends when its loss reaches 0.01 (stop_loss: the
// flow after the drop is stiff and would take most of the steps), so the final loss in the t_ICL
// midpoint is 0.01 in every run. Fits (all runs as points, Student-t 95% intervals): ln t against
// ln N over all N and over the upper half of N, and t = a N^2 + b N.
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
query = "last"      # the main run and the "last" sweep; the "uniform" sweep sets "stratified"
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
every = 1
attention_snapshots = 4
head_scores = 0
[[stages]]
name = "flow"
method = "flow"
lr = 1.0
time = 20800.0      # horizon(4) at D = 128; each run sets its own
stop_loss = 0.01
)";

struct Grid {
  std::vector<int> pairs;
  int seeds;
};
Grid grid(bool quick) { return quick ? Grid{{4, 8, 16}, 1} : Grid{{4, 6, 8, 12, 16, 24, 32, 48, 64}, 3}; }

const std::vector<std::string>& sweeps() {
  static const std::vector<std::string> s = {"last", "uniform"};
  return s;
}

// Twice the t_ICL of the fixed-query law measured at D = 128 (650 N^2, scaled by D / 128): the
// uniform sweep drops earlier, and stop_loss ends every run soon after its drop.
double horizon(int N, int64_t D) { return 2.0 * 650.0 * N * N * double(D) / 128.0; }

std::string run_name(const std::string& sweep, int N, int seed) {
  return fmt::format("{}-N{:03d}-seed{}", sweep, N, seed);
}
bool is_main(const std::string& sweep, int N, int seed, const Grid& g) {
  return sweep == sweeps()[0] && N == g.pairs[0] && seed == 0;
}

// Every (sweep, N, seed) except the main run (last, the first N, seed 0, which lives in DIR).
std::vector<Variant> variants(const RunSpec& spec, bool quick) {
  const int64_t D = item_label_config(spec).dim, train = spec.data.train_size;
  const int64_t seed0 = int64_t(spec.seed);
  Grid g = grid(quick);
  std::vector<Variant> v;
  for (auto& sw : sweeps())
    for (int N : g.pairs)
      for (int s = 0; s < g.seeds; ++s) {
        if (is_main(sw, N, s, g)) continue;
        std::vector<std::string> o = {fmt::format("task.pairs={}", N), fmt::format("seed={}", seed0 + s),
                                      fmt::format("stages.0.time={}", horizon(N, D))};
        if (sw == "uniform") {
          // A multiple of N, so every item is asked equally often.
          o.push_back("task.query=\"stratified\"");
          o.push_back(fmt::format("data.train_size={}", N * ((train + N - 1) / N)));
        }
        v.push_back({run_name(sw, N, s), o});
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

// One run's emergence times.
struct Row {
  std::string sweep;
  int N, seed;
  musat::RunEmergence e;
};

// The fits of one sweep (or of both: sweep = "").
struct SweepFits {
  std::vector<double> N, t_icl, t_icl_log;  // t_icl_log = t_ICL ln N
  LineFitCI icl, icl_upper, icl_log;
  QuadFit quad;
  double upper = 0;
};
SweepFits fit_sweep(const std::vector<Row>& rows, const std::string& sweep, const Grid& g) {
  SweepFits f;
  for (auto& r : rows) {
    if (r.sweep != sweep) continue;
    f.N.push_back(r.N), f.t_icl.push_back(r.e.icl.t_icl), f.t_icl_log.push_back(r.e.icl.t_icl * std::log(double(r.N)));
  }
  f.upper = g.pairs[g.pairs.size() / 2];  // the upper half of the N values
  f.icl = loglog(f.N, f.t_icl), f.icl_upper = loglog(f.N, f.t_icl, f.upper), f.icl_log = loglog(f.N, f.t_icl_log);
  f.quad = fit_quadratic(f.N, f.t_icl);
  return f;
}
std::string sweep_text(const SweepFits& f) {
  return fmt::format(
      "all N: {}; N >= {:.0f}: {}; t = a N^2 + b N: a = {:.1f} [{:.1f}, {:.1f}], b = {:.0f} [{:.0f}, "
      "{:.0f}]; t_ICL ln N: {}",
      slope_text(f.icl), f.upper, slope_text(f.icl_upper), f.quad.a, f.quad.a_lo, f.quad.a_hi, f.quad.b, f.quad.b_lo,
      f.quad.b_hi, slope_text(f.icl_log));
}

// The largest relative residual |t - (a N^2 + b N)| / t of a quadratic fit over the finite points.
// (and the N where it is)
std::pair<double, double> worst_quadratic_residual(const std::vector<double>& N, const std::vector<double>& t,
                                                   const QuadFit& f) {
  std::pair<double, double> worst{f.n >= 3 ? 0.0 : NAN, NAN};
  for (size_t i = 0; i < N.size(); ++i)
    if (std::isfinite(t[i]) && t[i] > 0) {
      const double r = std::abs(t[i] - f.a * N[i] * N[i] - f.b * N[i]) / t[i];
      if (r > worst.first) worst = {r, N[i]};
    }
  return worst;
}

// "a N^2 + b N" with the fitted constants (the sign of b written out).
std::string quad_text(const QuadFit& q) {
  return fmt::format("{:.4g} N^2 {} {:.4g} N", q.a, q.b < 0 ? '-' : '+', std::abs(q.b));
}

// summary.json "theory": each law of the header comment drawn over the runs with its relative
// residuals (train/theory_curve.h). Last query: t = a N^2 + b N (the fit above), also as t / N^2 =
// a + b / N; uniform query: t = c N^2 / ln N with c the mean of t ln N / N^2 over the runs; the
// growing parameters' times (threshold 0.1, last query) against their own a N^2 + b N.
nlohmann::json theory_json(const SweepFits& last, const SweepFits& uni, const std::vector<Row>& rows) {
  nlohmann::json out = nlohmann::json::array();
  const std::string fitted = "a, b: least squares t = a N^2 + b N over every run here";
  const QuadFit& q = last.quad;
  out.push_back(theory_curve_json("t_ICL vs N (query last)", "N (item-label pairs)", "t_ICL", true, true,
                                  "t_ICL = " + quad_text(q), "paper: t_ICL ~ N^2 (Musat et al. 2025); " + fitted,
                                  last.N, last.t_icl, [&](double N) { return q.a * N * N + q.b * N; }));
  std::vector<double> per_n2;
  for (size_t i = 0; i < last.N.size(); ++i) per_n2.push_back(last.t_icl[i] / (last.N[i] * last.N[i]));
  out.push_back(
      theory_curve_json("t_ICL / N^2 vs N (query last)", "N (item-label pairs)", "t_ICL / N^2", true, false,
                        fmt::format("t_ICL / N^2 = {:.4g} {} {:.4g} / N", q.a, q.b < 0 ? '-' : '+', std::abs(q.b)),
                        "paper: t_ICL ~ N^2 (a constant for large N); " + fitted, last.N, per_n2,
                        [&](double N) { return q.a + q.b / N; }));
  // Uniform query: the constant c of t = c N^2 / ln N, the mean of the compensated times.
  std::vector<double> comp;
  double sum = 0;
  int n = 0;
  for (size_t i = 0; i < uni.N.size(); ++i) {
    comp.push_back(uni.t_icl_log[i] / (uni.N[i] * uni.N[i]));
    if (std::isfinite(comp.back())) sum += comp.back(), ++n;
  }
  const double cu = n ? sum / n : NAN;
  const std::string usrc =
      "paper's N^2 with the uniform query's escape rate ~ ln N / (2N) (musat2025_scaling.cpp header); c: mean of "
      "t_ICL ln N / N^2 over every run here";
  out.push_back(theory_curve_json("t_ICL vs N (query uniform)", "N (item-label pairs)", "t_ICL", true, true,
                                  fmt::format("t_ICL = {:.4g} N^2 / ln N", cu), usrc, uni.N, uni.t_icl,
                                  [&](double N) { return cu * N * N / std::log(N); }));
  out.push_back(theory_curve_json("t_ICL ln N / N^2 vs N (query uniform)", "N (item-label pairs)", "t_ICL ln N / N^2",
                                  true, false, fmt::format("t_ICL ln N / N^2 = {:.4g}", cu), usrc, uni.N, comp,
                                  [&](double) { return cu; }));
  for (auto name : {"beta_2", "alpha_3"}) {
    std::vector<double> x, y;
    for (auto& r : rows)
      if (r.sweep == "last") x.push_back(r.N), y.push_back(r.e.time(name, 0.1));
    const QuadFit qn = fit_quadratic(x, y);
    out.push_back(theory_curve_json(
        fmt::format("T_{} (0.1) vs N (query last)", name), "N (item-label pairs)", fmt::format("T_{}", name), true,
        true, fmt::format("T_{} = {}", name, quad_text(qn)), "paper: the emergence times are quadratic in N; " + fitted,
        x, y, [&](double N) { return qn.a * N * N + qn.b * N; }));
  }
  return out;
}

void claims(ReproContext& c) {
  const double lr = c.spec.stages[0].lr;
  const Grid g = grid(c.quick);
  auto vs = variants(c.spec, c.quick);
  c.extra["runs"] = variants_json(c, vs);
  std::vector<Row> rows;
  for (auto& sw : sweeps())
    for (int N : g.pairs)
      for (int s = 0; s < g.seeds; ++s) {
        MetricsTable m = is_main(sw, N, s, g) ? c.main.metrics : c.variant(run_name(sw, N, s)).metrics;
        rows.push_back({sw, N, s, musat::read_emergence(m, lr)});
      }
  auto series = [&](const std::string& sweep, const std::string& name, double th) {
    std::vector<double> x, y;
    for (auto& r : rows)
      if (sweep.empty() || r.sweep == sweep) x.push_back(r.N), y.push_back(r.e.time(name, th));
    return std::make_pair(x, y);
  };
  int found = 0, ordered = 0;
  // Found and deep: a small dip below the plateau also has a midpoint crossing (measured: with
  // beta_2 clamped at 0 the loss goes from 0.50 to 0.44 and "t_ICL" is found).
  for (auto& r : rows)
    found += r.e.icl.found && r.e.icl.final_loss < 0.1 * r.e.icl.plateau, ordered += r.e.expected_order(0.1);
  c.claim("t_ICL found in every run", [&] {
    return Measured{{double(found) / double(rows.size())}, fmt::format("{} of {} runs", found, rows.size())};
  });

  SweepFits last = fit_sweep(rows, "last", g), uni = fit_sweep(rows, "uniform", g);
  c.claim("t_ICL ~ N^2 (query: the last item)", [&] {
    const LineFitCI f16 = loglog(last.N, last.t_icl, 16);
    return Measured{{f16.fit.slope}, fmt::format("N >= 16: {}; {}", slope_text(f16), sweep_text(last))};
  });
  // With a uniform query the law is N^2 / ln N (header comment): its pure slope, 2 - 1 / ln N,
  // understates 2 at every finite N, so the claim is on t_ICL ln N; the pure slope is reported.
  c.claim("t_ICL ~ N^2 / ln N (query uniform, stratified)", [&] {
    return Measured{{uni.icl_log.fit.slope}, sweep_text(uni)};
  });
  auto [xg, yg] = series("", "gamma_3", 0.1);
  auto [xg5, yg5] = series("", "gamma_3", 0.5);
  LineFitCI fg = loglog(xg, yg), fg5 = loglog(xg5, yg5);
  c.claim("T_gamma ~ N", [&] {
    auto [xgl, ygl] = series("last", "gamma_3", 0.1);
    auto [xgu, ygu] = series("uniform", "gamma_3", 0.1);
    return Measured{{fg.fit.slope},
                    fmt::format("threshold 0.1: {} (last {}, uniform {}); threshold 0.5: {}", slope_text(fg),
                                slope_text(loglog(xgl, ygl)), slope_text(loglog(xgu, ygu)), slope_text(fg5))};
  });
  c.claim("T_beta_2, T_alpha_3 ~ a N^2 + b N (query: the last item)", [&] {
    double worst = 0;
    std::string detail;
    for (auto n : {"beta_2", "alpha_3"}) {
      auto [x, y] = series("last", n, 0.1);
      const QuadFit q = fit_quadratic(x, y);
      const auto [w, at] = worst_quadratic_residual(x, y, q);
      worst = std::isfinite(w) ? std::max(worst, w) : NAN;
      detail += fmt::format(
          "{}T_{}: a = {:.3g} [{:.3g}, {:.3g}], b = {:.3g} [{:.3g}, {:.3g}], largest relative "
          "residual {:.3g} at N = {}",
          detail.empty() ? "" : "; ", n, q.a, q.a_lo, q.a_hi, q.b, q.b_lo, q.b_hi, w, at);
    }
    return Measured{{worst}, detail};
  });
  std::string slopes;
  for (auto& sw : sweeps())
    for (auto n : {"beta_2", "alpha_3"}) {
      auto [x, y] = series(sw, n, 0.1);
      slopes += fmt::format("; {} T_{} {}", sw, n, slope_text(loglog(x, y)));
    }
  c.claim("order gamma_3 < beta_2 < alpha_3 in every run", [&] {
    return Measured{{double(ordered) / double(rows.size())},
                    fmt::format("{} of {} runs; slopes at 0.1{}", ordered, rows.size(), slopes)};
  });

  // summary.json: per-run times, the fits, and "scaling" entries in the sweep format (points,
  // log-log fit with its slope interval and 95% band) for the report's log-log plots.
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json runs = nlohmann::json::array();
  std::ofstream f(c.out_dir + "/emergence_times.csv");
  f << "query,N,seed,t_icl,plateau,t_gamma_3_0.1,t_beta_2_0.1,t_alpha_3_0.1,t_gamma_3_0.5,t_beta_2_0.5,t_alpha_3_0.5\n";
  for (auto& r : rows) {
    nlohmann::json j = r.e.to_json();
    j["query"] = r.sweep, j["N"] = r.N, j["seed"] = r.seed;
    j["dir"] = is_main(r.sweep, r.N, r.seed, g) ? "." : "runs/" + run_name(r.sweep, r.N, r.seed);
    runs.push_back(j);
    f << r.sweep << "," << r.N << "," << r.seed << "," << r.e.icl.t_icl << "," << r.e.icl.plateau;
    for (double th : musat::thresholds())
      for (auto& n : musat::growing()) f << "," << r.e.time(n, th);
    f << "\n";
  }
  auto fit_json = [&](const LineFitCI& l) {
    return nlohmann::json{{"slope", l.fit.slope},
                          {"slope_lo", num(l.slope_lo)},
                          {"slope_hi", num(l.slope_hi)},
                          {"intercept", l.fit.intercept},
                          {"r2", l.fit.r2},
                          {"n", l.fit.n}};
  };
  auto sweep_json = [&](const SweepFits& s) {
    return nlohmann::json{{"t_icl", fit_json(s.icl)},
                          {"t_icl_upper_half", fit_json(s.icl_upper)},
                          {"upper_half_from_N", s.upper},
                          {"t_icl_times_ln_N", fit_json(s.icl_log)},
                          {"t_icl_quadratic",
                           {{"a", num(s.quad.a)},
                            {"a_lo", num(s.quad.a_lo)},
                            {"a_hi", num(s.quad.a_hi)},
                            {"b", num(s.quad.b)},
                            {"b_lo", num(s.quad.b_lo)},
                            {"b_hi", num(s.quad.b_hi)},
                            {"n", s.quad.n}}}};
  };
  c.extra["scaling_runs"] = runs;
  nlohmann::json fits = {{"last", sweep_json(last)},
                         {"uniform", sweep_json(uni)},
                         {"t_gamma_3_0.1", fit_json(fg)},
                         {"t_gamma_3_0.5", fit_json(fg5)}};
  for (auto& sw : sweeps())
    for (auto n : {"beta_2", "alpha_3"}) {
      auto [x, y] = series(sw, n, 0.1);
      fits[sw][fmt::format("t_{}_0.1", n)] = fit_json(loglog(x, y));
    }
  c.extra["fits"] = fits;
  nlohmann::json scaling = nlohmann::json::array();
  scaling.push_back(scaling_fit_json("t_ICL vs N (query last)", "task.pairs", "t_icl", last.N, last.t_icl));
  scaling.push_back(scaling_fit_json("t_ICL vs N (query uniform)", "task.pairs", "t_icl", uni.N, uni.t_icl));
  scaling.push_back(
      scaling_fit_json("t_ICL ln N vs N (query uniform)", "task.pairs", "t_icl_ln_N", uni.N, uni.t_icl_log));
  for (auto& sw : sweeps())
    for (auto& n : musat::growing()) {
      auto [x, y] = series(sw, n, 0.1);
      scaling.push_back(scaling_fit_json("T_" + n + " (0.1) vs N (query " + sw + ")", "task.pairs", "t_" + n, x, y));
    }
  c.extra["scaling"] = scaling;
  c.extra["theory"] = theory_json(last, uni, rows);
  f.flush();
  IHLAB_CHECK(f.good(), "musat2025-scaling: could not write '{}'", c.out_dir + "/emergence_times.csv");
}

}  // namespace

Reproduction musat2025_scaling() {
  Reproduction r;
  r.name = "musat2025-scaling";
  r.paper = "Musat et al. 2025";
  r.description =
      "N = 4..64 item-label pairs x 3 seeds x {query last, query uniform}, reduced 3-parameter flow: "
      "t_ICL ~ N^2 (last) and N^2 / ln N (uniform), T_gamma ~ N, with 95% intervals";
  r.runtime = "1.8 min (CPU 3.5 min); --quick 7 s";
  r.config_toml = kConfig;
  r.quick_overrides = {"task.dim=32", "data.train_size=64", "data.val_size=32", "stages.0.time=5200", "threads=1"};
  r.run = [](ReproContext& c, const TrainOptions& o) {
    return run_main_then_variants(c, o, variants(c.spec, c.quick));
  };
  r.claims = {
      {"t_ICL found in every run",
       {ge("fraction of runs whose loss drops below the plateau-final midpoint and ends below 0.1 x the plateau", 1)},
       "paper: every run learns in context (stop_loss ends each run at 0.01, about 0.02 x the plateau)"},
      {"t_ICL ~ N^2 (query: the last item)",
       {within("log-log slope of t_ICL vs N over N >= 16", 1.9, 2.1)},
       "paper: t_ICL grows like N^2; +-0.1 around 2 where the N term of a N^2 + b N no longer matters (measured "
       "2.007 [2.006, 2.008] on the full run; the old all-N band [1.7, 2.3] was 50 times the fit's interval)",
       "N >= 16 is one point in --quick (N = 4, 8, 16)"},
      {"t_ICL ~ N^2 / ln N (query uniform, stratified)",
       {within("log-log slope of t_ICL ln N vs N, all N (the pure slope of t_ICL is 2 - 1 / ln N)", 1.9, 2.1)},
       "paper (N^2) with the uniform query's 1 / ln N (header comment); +-0.1 around 2 (measured 1.988 [1.983, 1.993] "
       "on the full run)"},
      {"T_gamma ~ N",
       {within("log-log slope of T_gamma (threshold 0.1) vs N, both sweeps", 0.7, 1.3)},
       "paper: the readout emerges in time ~ N"},
      {"T_beta_2, T_alpha_3 ~ a N^2 + b N (query: the last item)",
       {le("largest |T - (a N^2 + b N)| / T over N, T_beta_2 and T_alpha_3 at threshold 0.1", 0.05)},
       "paper: the emergence times are quadratic in N; 5% is ihlab's margin. Measured on the full run: T_alpha_3 "
       "within 2.0%, T_beta_2 within 0.5% for N >= 12 but 5% off at N = 6 and 11.5% at N = 4 (a small-N term the "
       "form lacks), so the claim fails"},
      {"order gamma_3 < beta_2 < alpha_3 in every run",
       {ge("fraction of runs with first reach of 0.1 in this order", 1)},
       "paper"},
  };
  r.evaluate = claims;
  // beta_2 clamped at 0 in every run of both sweeps: no run may drop.
  r.controls = {{"no-beta2",
                 "every run with beta_2 clamped at 0 (the reduced model without it): no in-context learning",
                 {"model.pseudo=\"no-beta2\""},
                 {},
                 {"t_ICL found in every run"},
                 true}};
  return r;
}

}  // namespace ihlab
