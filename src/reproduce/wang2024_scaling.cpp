// wang2024-plateau-scaling: how long the plateau of the six-parameter model lasts, against the
// initialization scale sigma_init and the 4-gram weight alpha*. The plateau length is T_IH, the
// time of steepest descent of the layer-2 loss found by the phase segmentation (analysis/phases.h).
// T_IH is read two ways: the time w_KQ = w_K w_Q first reaches w*/2 (interpolated in ln t; defined
// for every run, also when sigma_init is so large that the plateau is too short to be flat), and the
// time of steepest descent found by the phase segmentation where it finds a plateau; the laws are
// fitted to the first, and the claims check that the two agree.
// Each point is an ordinary run directory under DIR/runs/ made from the wang2024-mixed-target
// configuration (20000 -> 5000 training sequences to keep nine runs affordable; the plateau is a
// population effect, see the README for the measured difference).
// Laws fitted (least squares, Student-t 95% intervals, analysis/fits.h):
//   T_IH = a ln(1/sigma_init) + b   (the paper's law; a power law in sigma is fitted for comparison)
//   ln T_IH = k ln(1/(1 - alpha*)) + c   (reference: k about 1.91)
// (docs/models/attention-circuit.md#plateau-length)
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "analysis/fits.h"
#include "reproduce/run_config.h"
#include "reproduce/variants.h"
#include "reproduce/wang2024.h"
#include "reproduce/wang2024_common.h"
#include "train/sweep.h"
#include "train/theory_curve.h"

namespace ihlab {

namespace {

struct Point {
  std::string name;
  double sigma, alpha;
};

std::vector<Point> points(bool quick) {
  std::vector<Point> p;
  const std::vector<double> sigmas =
      quick ? std::vector<double>{1e-3, 1e-2, 1e-1} : std::vector<double>{1e-3, 3.16e-3, 1e-2, 3.16e-2, 1e-1};
  const std::vector<double> alphas = quick ? std::vector<double>{0.4, 0.6} : std::vector<double>{0.3, 0.4, 0.6, 0.7};
  for (double s : sigmas) p.push_back({fmt::format("sigma={}", s), s, 0.5});
  for (double a : alphas) p.push_back({fmt::format("alpha={}", a), 0.01, a});
  return p;
}

std::vector<Variant> variants(bool quick) {
  std::vector<Variant> v;
  for (auto& p : points(quick))
    v.push_back({p.name,
                 {fmt::format("model.sigma_init={}", p.sigma), fmt::format("task.alpha_star={}", p.alpha),
                  fmt::format("name=\"wang2024-plateau-{}\"", p.name)}});
  return v;
}

// Every point is a variant run; the main directory shows the sigma = 0.01, alpha* = 0.5 run.
RunResult run_points(ReproContext& c, const TrainOptions& o) {
  return run_wang_points(c, o, variants(c.quick), fmt::format("sigma={}", 0.01),
                         "metrics.csv is the sigma_init = 0.01, alpha* = 0.5 run's; every point is under runs/");
}

void claims(ReproContext& c) {
  std::vector<double> sx, sy, ax, ay;  // sigma -> T_IH; alpha -> T_IH
  nlohmann::json table = nlohmann::json::array();
  std::string missing, agree_detail;
  double worst_agree = 0;
  int segmented = 0;  // runs whose phase segmentation found a plateau
  const double wstar = mixed_target_config(c.spec).w_star;
  for (auto& p : points(c.quick)) {
    const MetricsTable& m = c.variant(p.name).metrics;
    StageCurve curve = stage_curve(m, 1, {"loss", "ind.wkq"});
    PhaseSegmentation seg = layer2_phases(curve);
    const double T = crossing_time(curve, "ind.wkq", wstar / 2);
    const double steep = seg.found ? seg.transitions[0].steepest : NAN;
    if (!std::isfinite(T)) missing += " " + p.name;
    if (seg.found) {
      ++segmented;
      worst_agree = std::max(worst_agree, std::abs(std::log(steep / T)));
      agree_detail += fmt::format("{}{}: {:.4g} vs {:.4g}", agree_detail.empty() ? "" : ", ", p.name, T, steep);
    } else {
      agree_detail += fmt::format("{}{}: {:.4g} vs no plateau found", agree_detail.empty() ? "" : ", ", p.name, T);
    }
    table.push_back({{"run", p.name},
                     {"sigma_init", p.sigma},
                     {"alpha_star", p.alpha},
                     {"T_IH", T},
                     {"steepest_descent", seg.found ? steep : NAN},
                     {"plateau_start", seg.found ? seg.plateaus[0].start : NAN},
                     {"plateau_end", seg.found ? seg.plateaus[0].end : NAN},
                     {"summary", seg.summary()}});
    if (p.alpha == 0.5) sx.push_back(p.sigma), sy.push_back(T);
    if (p.sigma == 0.01) ax.push_back(p.alpha), ay.push_back(T);
  }
  const double runs = double(points(c.quick).size()),
               emerged = runs - double(std::count(missing.begin(), missing.end(), ' '));
  c.claim("the induction head emerges in every run", [&] {
    return Measured{{emerged / runs}, missing.empty() ? "" : "not in:" + missing};
  });
  c.claim("T_IH agrees with the segmented transition", [&] {
    // Without a segmented plateau there is nothing to compare: not a pass.
    if (segmented == 0) return not_evaluated("no run's phase segmentation found a plateau: " + agree_detail);
    return Measured{{worst_agree}, "T_IH (w_KQ = w*/2) vs steepest descent: " + agree_detail};
  });
  // Plateau length against sigma_init.
  std::string pts;
  for (size_t i = 0; i < sx.size(); ++i) pts += fmt::format("{}sigma {}: T_IH {:.4g}", i ? ", " : "", sx[i], sy[i]);
  c.claim("the plateau lengthens as sigma_init shrinks", [&] { return Measured{{spearman(sx, sy)}, pts}; });
  std::vector<double> lninv, lnsig, lnT;
  for (size_t i = 0; i < sx.size(); ++i)
    lninv.push_back(std::log(1 / sx[i])), lnsig.push_back(std::log(sx[i])), lnT.push_back(std::log(sy[i]));
  LineFitCI lin = fit_line_ci(lninv, sy), pow = fit_line_ci(lnsig, lnT);
  // Model comparison on the same scale (T) with the same number of parameters (2): the AIC
  // difference is n ln(RSS_power / RSS_linear); > 2 = the data prefer the linear law.
  double rss_lin = 0, rss_pow = 0;
  for (size_t i = 0; i < sx.size(); ++i) {
    rss_lin += std::pow(sy[i] - (lin.fit.intercept + lin.fit.slope * lninv[i]), 2);
    rss_pow += std::pow(sy[i] - std::exp(pow.fit.intercept + pow.fit.slope * lnsig[i]), 2);
  }
  const double d_aic = double(sx.size()) * std::log(rss_pow / rss_lin);
  c.claim("T_IH is linear in ln(1/sigma_init)", [&] {
    return Measured{
        {lin.fit.r2, d_aic},
        fmt::format("a = {:.4g} [{:.4g}, {:.4g}] (95%), b = {:.4g}; power law T ~ sigma^{:.3g}: R^2 (of ln T) "
                    "{:.4f}; residual sums of squares of T: linear {:.4g}, power {:.4g} (spec: T = 89.4 "
                    "ln(1/sigma) - 2.0)",
                    lin.fit.slope, lin.slope_lo, lin.slope_hi, lin.fit.intercept, pow.fit.slope, pow.fit.r2, rss_lin,
                    rss_pow)};
  });
  // Plateau length against alpha*.
  std::string apts;
  std::vector<double> lna, lnTa;
  for (size_t i = 0; i < ax.size(); ++i) {
    apts += fmt::format("{}alpha* {}: T_IH {:.4g}", i ? ", " : "", ax[i], ay[i]);
    lna.push_back(std::log(1 / (1 - ax[i]))), lnTa.push_back(std::log(ay[i]));
  }
  c.claim("a larger alpha* delays the induction head", [&] { return Measured{{spearman(ax, ay)}, apts}; });
  LineFitCI af = fit_line_ci(lna, lnTa);
  const std::string k_text =
      fmt::format("k = {:.3g} [{:.3g}, {:.3g}] (95%), R^2 {:.4f}", af.fit.slope, af.slope_lo, af.slope_hi, af.fit.r2);
  c.claim("T_IH ~ (1 - alpha*)^-k", [&] { return Measured{{af.fit.slope}, k_text}; });
  c.claim("the alpha* exponent is consistent with 2", [&] {
    return Measured{{yes_no(af.slope_lo <= 2 && 2 <= af.slope_hi)}, k_text};
  });
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  c.extra["plateau_scaling"] = {{"points", table},
                                {"sigma_law",
                                 {{"form", "T_IH = a ln(1/sigma_init) + b"},
                                  {"a", lin.fit.slope},
                                  {"a_lo", num(lin.slope_lo)},
                                  {"a_hi", num(lin.slope_hi)},
                                  {"b", lin.fit.intercept},
                                  {"r2", lin.fit.r2}}},
                                {"alpha_law",
                                 {{"form", "ln T_IH = k ln(1/(1 - alpha*)) + c"},
                                  {"k", af.fit.slope},
                                  {"k_lo", num(af.slope_lo)},
                                  {"k_hi", num(af.slope_hi)},
                                  {"c", af.fit.intercept},
                                  {"r2", af.fit.r2}}}};
  std::vector<double> one_minus;
  for (double a : ax) one_minus.push_back(1 - a);
  c.extra["scaling"] = {scaling_fit_json("T_IH vs sigma_init", "model.sigma_init", "T_IH", sx, sy),
                        scaling_fit_json("T_IH vs 1 - alpha*", "1 - task.alpha_star", "T_IH", one_minus, ay)};
  // Both laws drawn over the points with their relative residuals (train/theory_curve.h).
  const double a = lin.fit.slope, b = lin.fit.intercept, k = af.fit.slope, ca = af.fit.intercept;
  c.extra["theory"] = nlohmann::json::array(
      {theory_curve_json("T_IH vs sigma_init", "sigma_init", "T_IH", true, false,
                         fmt::format("T_IH = {:.4g} ln(1/sigma_init) {} {:.4g}", a, b < 0 ? '-' : '+', std::abs(b)),
                         "paper: T = a ln(1/sigma) + b (spec: T = 89.4 ln(1/sigma) - 2.0); a, b fitted here", sx, sy,
                         [=](double s) { return a * std::log(1 / s) + b; }),
       theory_curve_json("T_IH vs alpha*", "alpha*", "T_IH", false, true,
                         fmt::format("T_IH = {:.4g} (1 - alpha*)^-{:.3g}", std::exp(ca), k),
                         "paper: T ~ (1 - alpha*)^-k (k about 1.91 in the spec, 2 in theory); k and the prefactor "
                         "fitted here (ln T on ln(1/(1 - alpha*)))",
                         ax, ay, [=](double al) { return std::exp(ca + k * std::log(1 / (1 - al))); })});
  c.extra["runs"] = variants_json(c, variants(c.quick));
}

}  // namespace

Reproduction wang2024_plateau_scaling() {
  Reproduction r;
  r.name = "wang2024-plateau-scaling";
  r.paper = "Wang, Yu, E & Wu 2024";
  r.description = "plateau length T_IH against sigma_init (5 values, 1e-3..1e-1) and alpha* (0.3..0.7); fitted laws";
  r.runtime = "42 s (9 runs; CPU 76 s); --quick about 1.5 min";
  // The mixed-target configuration with 5000 training sequences and its own name.
  r.config_toml = wang_points_config(r.name);
  r.quick_overrides = kWangPointsQuick;
  r.run = run_points;
  r.claims = {
      {"the induction head emerges in every run", {ge("fraction of runs where w_KQ reaches w*/2", 1)}, "paper"},
      {"T_IH agrees with the segmented transition",
       {le("largest |ln(steepest descent / T_IH)| where a plateau is found", 0.2)},
       "ihlab: two ways of timing the same transition"},
      {"the plateau lengthens as sigma_init shrinks", {le("Spearman(sigma_init, T_IH)", -0.999)}, "paper"},
      {"T_IH is linear in ln(1/sigma_init)",
       {ge("R^2 of T_IH = a ln(1/sigma) + b", 0.98),
        gt("AIC difference n ln(RSS_power / RSS_linear) against T ~ sigma^k (both 2 parameters, residuals of T)", 2)},
       "paper: T = a ln(1/sigma) + b; a power law scores R^2 0.970 on the same points, so the law must also be "
       "preferred by AIC (a difference > 2: the usual bar for one model over another)"},
      {"a larger alpha* delays the induction head", {ge("Spearman(alpha*, T_IH)", 0.999)}, "paper"},
      {"T_IH ~ (1 - alpha*)^-k",
       {gt("fitted k", 1)},
       "paper: k about 1.91 in the spec, 2 in theory; > 1 says the delay grows faster than 1 / (1 - alpha*)"},
      {"the alpha* exponent is consistent with 2",
       {yes("the 95% interval of the fitted k contains 2")},
       "paper: the theory's exponent 2",
       "two alpha* values give no interval"},
  };
  r.evaluate = claims;
  // One trained w_KQ instead of the product w_K w_Q: the induction output is no longer cubic in
  // small weights, so the plateau no longer grows like ln(1/sigma_init) (measured in --quick: T_IH
  // 100, 98, 82 for sigma 1e-3, 1e-2, 1e-1; R^2 of the law 0.82, AIC difference 0.39).
  r.controls = {{"single-wkq",
                 "every run with one trained w_KQ (kq = \"single\") instead of w_K w_Q: the plateau law must fail",
                 {"model.heads.1.kq=\"single\""},
                 {},
                 {"T_IH is linear in ln(1/sigma_init)"},
                 true}};
  return r;
}

}  // namespace ihlab
