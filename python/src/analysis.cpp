// ihlab.analysis: the C++ instruments and fits on numpy inputs (the same code the trainer and the
// reproductions' claims run).
#include <span>

#include "analysis/chi_square_mi.h"
#include "analysis/emergence.h"
#include "analysis/fits.h"
#include "analysis/head_scores.h"
#include "analysis/induction_metrics.h"
#include "analysis/phases.h"
#include "bindings.h"
#include "train/sweep.h"

namespace ihlab::py {
namespace {

using Doubles = pyb::array_t<double, pyb::array::c_style | pyb::array::forcecast>;
using Ints = pyb::array_t<int32_t, pyb::array::c_style | pyb::array::forcecast>;

std::span<const double> span_of(const Doubles& a) { return {a.data(), size_t(a.size())}; }
std::span<const int32_t> span_of(const Ints& a) { return {a.data(), size_t(a.size())}; }
std::vector<double> vec_of(const Doubles& a) { return {a.data(), a.data() + a.size()}; }

// attn [B, L, L] or [L, L]; tokens [B, L] or [L]. Returns L after checking the shapes agree.
int64_t square_len(const Doubles& attn, const Ints* tokens, const char* what) {
  IHLAB_CHECK(attn.ndim() >= 2 && attn.shape(attn.ndim() - 1) == attn.shape(attn.ndim() - 2),
              "{}: attention must be [L, L] or [B, L, L]", what);
  const int64_t L = attn.shape(attn.ndim() - 1);
  if (tokens)
    IHLAB_CHECK(tokens->size() * L == attn.size(), "{}: tokens must be [L] or [B, L] for attention [B, L, L]", what);
  return L;
}

pyb::dict fit_dict(const LineFit& f) {
  pyb::dict d;
  d["slope"] = f.slope;
  d["intercept"] = f.intercept;
  d["r2"] = f.r2;
  d["n"] = f.n;
  return d;
}

}  // namespace

void bind_analysis(pyb::module_& root) {
  pyb::module_ m = root.def_submodule("analysis", "Induction-head scores, chi-square MI, emergence, phases, fits.");
  m.def(
      "previous_token_score",
      [](const Doubles& attn) {
        return previous_token_score(span_of(attn), square_len(attn, nullptr, "previous_token_score"));
      },
      pyb::arg("attn"), "Mean attention from i to i-1 over q = 1..L-1 (attn [L, L] or [B, L, L]).");
  m.def(
      "prefix_matching_score",
      [](const Doubles& attn, const Ints& tokens, int64_t first_query) {
        return prefix_matching_score(span_of(attn), span_of(tokens), square_len(attn, &tokens, "prefix_matching_score"),
                                     first_query);
      },
      pyb::arg("attn"), pyb::arg("tokens"), pyb::arg("first_query") = 0,
      "Olsson's prefix-matching score: attention from each repeated token to the positions right after its "
      "earlier copies (NaN when no token repeats).");
  m.def(
      "tl_induction_score",
      [](const Doubles& attn, const Ints& tokens, bool exclude_bos, bool exclude_current_token) {
        TlDetectOptions o;
        o.exclude_bos = exclude_bos;
        o.exclude_current_token = exclude_current_token;
        return tl_induction_score(span_of(attn), span_of(tokens), square_len(attn, &tokens, "tl_induction_score"), o);
      },
      pyb::arg("attn"), pyb::arg("tokens"), pyb::arg("exclude_bos") = false, pyb::arg("exclude_current_token") = false,
      "TransformerLens' detect_head induction score, averaged over sequences.");
  m.def(
      "head_scores",
      [](const Doubles& attn, const Ints& tokens) {
        // attn [S, layers, heads, L, L], tokens [S, L] -> the prev./ind./pm. columns of metrics.csv.
        IHLAB_CHECK(attn.ndim() == 5, "head_scores: attention must be [S, layers, heads, L, L]");
        const int64_t S = attn.shape(0), NL = attn.shape(1), H = attn.shape(2), L = attn.shape(3);
        IHLAB_CHECK(tokens.ndim() == 2 && tokens.shape(0) == S && tokens.shape(1) == L,
                    "head_scores: tokens must be [S, L] for attention [S, layers, heads, L, L]");
        Batch b;
        b.size = S;
        b.length = L;
        b.tokens.assign(tokens.data(), tokens.data() + tokens.size());
        b.targets.assign(b.tokens.size(), -1);
        std::vector<std::vector<AttentionMap>> maps(S);
        const double* a = attn.data();
        for (int64_t s = 0; s < S; ++s)
          for (int l = 0; l < NL; ++l)
            for (int h = 0; h < H; ++h, a += L * L) maps[s].push_back({l, h, L, L, std::vector<double>(a, a + L * L)});
        pyb::dict d;
        for (auto& [k, v] : attention_head_scores(maps, b)) d[pyb::str(k)] = v;
        return d;
      },
      pyb::arg("attn"), pyb::arg("tokens"),
      "Every head's prev.l<l>.h<h>, ind.l<l>.h<h>, pm.l<l>.h<h> as the trainer logs them.");
  m.def(
      "ov_scores",
      [](const Doubles& M) {
        IHLAB_CHECK(M.ndim() == 2 && M.shape(0) == M.shape(1), "ov_scores: M must be a square [V, V] matrix");
        pyb::dict d;
        for (auto& [k, v] : ov_circuit_scalars("", span_of(M), M.shape(0))) d[pyb::str(k)] = v;
        return d;
      },
      pyb::arg("M"), "OV-circuit eigenvalue positivity, self-map fraction and copying score of M [V, V].");
  m.def(
      "chi_square_mi_survey",
      [](int vocab, std::vector<int> parents, double alpha, std::vector<int> candidates, int max_subset, int n_kernels,
         uint64_t seed, double power) {
        MiSurveyConfig c;
        c.task.vocab = vocab;
        c.task.parents = parents;
        c.task.alpha = alpha;
        c.candidates = candidates;
        c.max_subset = max_subset;
        c.n_kernels = n_kernels;
        c.seed = seed;
        c.power = power;
        MiSurvey s;
        {
          pyb::gil_scoped_release free;
          s = survey_chi_square_mi(c);
        }
        pyb::list ranked;
        for (auto& r : s.ranked) {
          pyb::dict d;
          d["subset"] = r.subset;
          d["mean"] = r.mean;
          d["std_error"] = r.std_error;
          d["argmax_fraction"] = r.argmax_fraction;
          ranked.append(d);
        }
        pyb::dict out;
        out["ranked"] = ranked;
        out["best"] = s.best;
        out["best_argmax_fraction"] = s.best_argmax_fraction;
        return out;
      },
      pyb::arg("vocab"), pyb::arg("parents"), pyb::arg("alpha"), pyb::arg("candidates") = std::vector<int>{-1, -2, -3},
      pyb::arg("max_subset") = 2, pyb::arg("n_kernels") = 200, pyb::arg("seed") = 0, pyb::arg("power") = 2.0,
      "Modified (power 2) or ordinary (power 1) chi-square MI of every candidate parent subset, averaged over "
      "n_kernels Dirichlet(alpha) n-gram kernels (Chen et al. 2024); ranked by mean.");
  m.def(
      "first_reach",
      [](const Doubles& t, const Doubles& y, double threshold) { return first_reach(vec_of(t), vec_of(y), threshold); },
      pyb::arg("t"), pyb::arg("y"), pyb::arg("threshold"),
      "First t at which y reaches threshold (interpolated; NaN if never).");
  m.def(
      "icl_time",
      [](const Doubles& t, const Doubles& loss) {
        IclTime r = icl_time(vec_of(t), vec_of(loss));
        pyb::dict d;
        d["found"] = r.found;
        d["t_icl"] = r.t_icl;
        d["plateau"] = r.plateau;
        d["plateau_t"] = r.plateau_t;
        d["final_loss"] = r.final_loss;
        d["steepest_t"] = r.steepest_t;
        return d;
      },
      pyb::arg("t"), pyb::arg("loss"), "t_ICL (Musat et al. 2025): the loss crossing the plateau/final midpoint.");
  m.def("emergence_order", &emergence_order, pyb::arg("names"), pyb::arg("times"),
        "Names sorted by their emergence time (NaN last).");
  m.def(
      "segment_phases",
      [](const Doubles& t, const Doubles& loss, double smooth_decades, double flat_slope, double min_plateau_decades,
         double min_drop, double end_fraction, bool count_initial) {
        PhaseOptions o{smooth_decades, flat_slope, min_plateau_decades, min_drop, end_fraction, count_initial};
        PhaseSegmentation s = segment_phases(vec_of(t), vec_of(loss), o);
        pyb::list plateaus, transitions;
        for (auto& p : s.plateaus)
          plateaus.append(pyb::dict(pyb::arg("start") = p.start, pyb::arg("end") = p.end, pyb::arg("level") = p.level));
        for (auto& x : s.transitions)
          transitions.append(pyb::dict(pyb::arg("start") = x.start, pyb::arg("steepest") = x.steepest,
                                       pyb::arg("end") = x.end, pyb::arg("slope") = x.slope,
                                       pyb::arg("drop") = x.drop));
        return pyb::dict(pyb::arg("found") = s.found, pyb::arg("initial_drop_end") = s.initial_drop_end,
                         pyb::arg("initial_drop") = s.initial_drop, pyb::arg("plateaus") = plateaus,
                         pyb::arg("transitions") = transitions, pyb::arg("convergence_start") = s.convergence_start,
                         pyb::arg("summary") = s.summary());
      },
      pyb::arg("t"), pyb::arg("loss"), pyb::arg("smooth_decades") = 0.1, pyb::arg("flat_slope") = 0.25,
      pyb::arg("min_plateau_decades") = 0.3, pyb::arg("min_drop") = 3.0, pyb::arg("end_fraction") = 0.25,
      pyb::arg("count_initial") = false,
      "Phase segmentation of a loss curve on log-log axes: initial drop, plateaus, transitions, convergence.");
  m.def(
      "fit_line", [](const Doubles& x, const Doubles& y) { return fit_dict(fit_line(vec_of(x), vec_of(y))); },
      pyb::arg("x"), pyb::arg("y"), "Least squares y = slope x + intercept over the finite pairs.");
  m.def(
      "fit_line_ci",
      [](const Doubles& x, const Doubles& y, double level) {
        LineFitCI f = fit_line_ci(vec_of(x), vec_of(y), level);
        pyb::dict d = fit_dict(f.fit);
        d["level"] = f.level;
        d["slope_lo"] = f.slope_lo;
        d["slope_hi"] = f.slope_hi;
        return d;
      },
      pyb::arg("x"), pyb::arg("y"), pyb::arg("level") = 0.95,
      "Least squares with the slope's Student-t confidence interval (NaN bounds when n < 3).");
  m.def(
      "scaling_fit",
      [](const Doubles& x, const Doubles& y, const std::string& x_key, const std::string& y_key) {
        return from_json(scaling_fit_json(y_key + " vs " + x_key, x_key, y_key, vec_of(x), vec_of(y)));
      },
      pyb::arg("x"), pyb::arg("y"), pyb::arg("x_key") = "x", pyb::arg("y_key") = "y",
      "The sweep's scaling fit (train/sweep.h): ln y = intercept + slope ln x over the positive finite points, "
      "with the slope's 95% interval and the band, as summary.json's `scaling` entries hold it.");
  m.def(
      "spearman", [](const Doubles& x, const Doubles& y) { return spearman(vec_of(x), vec_of(y)); }, pyb::arg("x"),
      pyb::arg("y"), "Spearman rank correlation over the finite pairs.");
  m.def("student_t_quantile", &student_t_quantile, pyb::arg("level"), pyb::arg("dof"));
  m.def(
      "steepest_change",
      [](const Doubles& steps, const Doubles& values, int window, bool fall) {
        SmoothingOptions o;
        o.window = window;
        SteepestChange c =
            steepest_change(span_of(steps), span_of(values), o, fall ? Direction::Fall : Direction::Rise);
        return pyb::dict(pyb::arg("found") = c.found, pyb::arg("index") = c.index, pyb::arg("step") = c.step,
                         pyb::arg("slope") = c.slope);
      },
      pyb::arg("steps"), pyb::arg("values"), pyb::arg("window") = 1, pyb::arg("fall") = false,
      "Steepest rise (or fall) of a smoothed logged series, e.g. a prefix-matching score.");
}

}  // namespace ihlab::py
