// wang2024-approximation: the approximation half of Wang, Yu, E & Wu (2024). Two-layer pre-LN
// transformers with a learned relative bias per head and offset (model.positional = "relative",
// the paper's RPE) trained with Adam on the in-context n-gram targets IH_n (task ngram-induction,
// n = 2, 3, 4) for H = 1, 2, 3, 4, 6, 8 heads per layer at a fixed width of 24 (head dim 24 / H):
// the relative error val_loss / ref.mean (= val_mse / Var(target), both in the 1/2 convention) per
// (n, H), power laws in H, the drop at H = n - 1 (the paper's construction puts one previous token
// x_{s-k}, k = 1..n-1, into its own first-layer head), and GIH_3 (distance similarity) with and
// without MLPs. Every point is a variant run DIR/runs/<point>-s<seed>/ at two seeds; the main
// directory's metrics.csv is the n = 3, H = 2 run of the first seed. docs/wang2024-approximation.md.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include "analysis/fits.h"
#include "reproduce/run_config.h"
#include "reproduce/variants.h"
#include "reproduce/wang2024.h"
#include "reproduce/wang2024_common.h"
#include "tasks/ngram_induction.h"
#include "tasks/registry.h"
#include "train/sweep.h"

namespace ihlab {

namespace {

const char* kConfig = R"(
name = "wang2024-approximation"
seed = 1
dtype = "float32"
[task]
name = "ngram-induction"
n = 3
length = 12
dim = 1
slots = 1
w_star = 1.0         # w0: each point uses w* = w0 / sqrt(n - 1) (the score's spread is w0 for every n)
similarity = "dot"
[model]
name = "transformer"
layers = 2
heads = 2
width = 24           # fixed: divisible by every H, head dim 24 / H >= 3 >= n - 1
attention_only = true
norm = "pre"
positional = "relative"
[data]
mode = "fresh"
batch_size = 64
val_size = 2000
[log]
every = 250
head_scores = 0
attention_snapshots = 0
[[stages]]
name = "adam"
optimizer = "adam"
lr = 1e-2
steps = 5000
schedule = "cosine"
warmup_steps = 100
)";

const std::vector<int64_t> kNs = {2, 3, 4};
const std::vector<int64_t> kHeads = {1, 2, 3, 4, 6, 8};
constexpr int kSeeds = 2;
constexpr int64_t kGihN = 3, kGihHeads = 4;
constexpr double kFloor = 0.01;  // relative errors below this count as solved (monotonicity claim)

// One trained model: task, similarity, heads, MLP or not, seed offset.
struct Point {
  int64_t n = 3, heads = 2;
  bool distance = false, mlp = false;
  int seed = 0;  // offset from the configuration's seed
  std::string name() const {
    return fmt::format("{}{}{}-h{}-s{}", distance ? "gih" : "ih", n, mlp ? "-mlp" : "", heads, seed);
  }
};

// The grid a run trains: the full one, or for --quick and the controls only what the claims they
// judge read (n = 3 at H = 1 and 2).
std::vector<Point> points(const ReproContext& c) {
  std::vector<Point> p;
  if (c.quick || c.control) {
    for (int64_t h : {1, 2}) p.push_back({3, h});
    return p;
  }
  for (int s = 0; s < kSeeds; ++s) {
    for (int64_t n : kNs)
      for (int64_t h : kHeads) p.push_back({n, h, false, false, s});
    p.push_back({kGihN, kGihHeads, true, false, s});
    p.push_back({kGihN, kGihHeads, true, true, s});
    p.push_back({kGihN, kGihHeads, false, true, s});
  }
  return p;
}

NgramInductionConfig task_of(const RunSpec& spec) {
  const nlohmann::json& t = task_table(spec);
  IHLAB_CHECK(t.value("name", "") == "ngram-induction",
              "task.name = \"{}\", but wang2024-approximation reads the keys of task \"ngram-induction\"",
              t.value("name", ""));
  return task_config<NgramInductionConfig>(t);
}

// Steps per point: the configured budget, 3 times that for n >= 4. Why: at 5000 steps one of
// the two n = 4 seeds at H = 3, 4 and 6 was still on the plateau at the H = 2 level; trained for
// 15000 they leave it (H = 3, 4 end at 0.0015, 0.00052), while H = 2 stays at 0.14-0.24 (measured,
// docs/wang2024-approximation.md).
int64_t steps_of(const ReproContext& c, const Point& p) {
  const int64_t base = c.spec.config["stages"][0]["steps"].get<int64_t>();
  return p.n >= 4 ? 3 * base : base;
}

std::vector<Variant> variants(const ReproContext& c) {
  const double w0 = task_of(c.spec).w_star;
  std::vector<Variant> v;
  for (auto& p : points(c)) {
    std::vector<std::string> o = {fmt::format("task.n={}", p.n),
                                  fmt::format("stages.0.steps={}", steps_of(c, p)),
                                  fmt::format("task.w_star={:.17g}", w0 / std::sqrt(double(p.n - 1))),
                                  fmt::format("task.similarity=\"{}\"", p.distance ? "distance" : "dot"),
                                  fmt::format("model.heads={}", p.heads),
                                  fmt::format("model.attention_only={}", p.mlp ? "false" : "true"),
                                  fmt::format("seed={}", c.spec.seed + uint64_t(p.seed)),
                                  fmt::format("name=\"{}-{}\"", c.spec.name, p.name())};
    v.push_back({p.name(), o});
  }
  return v;
}

RunResult run_points(ReproContext& c, const TrainOptions& o) {
  return run_wang_points(c, o, variants(c), Point{3, 2}.name(),
                         "metrics.csv is the n = 3, H = 2 run of the first seed; every point is under runs/");
}

// Final relative errors of one point: val_loss / ref.mean and val_loss / ref.lazy.
struct Errors {
  double rel = NAN, lazy = NAN;
};
Errors errors(ReproContext& c, const Point& p) {
  const MetricsTable& m = c.variant(p.name()).metrics;
  const double val = m.column("val_loss").back();
  return {val / m.column("ref.mean").back(), val / m.column("ref.lazy").back()};
}

// Mean over seeds with a Student-t 95% interval (NaN bounds for one seed).
struct Mean {
  std::vector<double> v;
  double mean = NAN, lo = NAN, hi = NAN;
};
Mean mean_of(std::vector<double> v) {
  Mean m{v};
  if (v.empty()) return m;
  double s = 0, ss = 0;
  for (double x : v) s += x;
  m.mean = s / double(v.size());
  if (v.size() < 2) return m;
  for (double x : v) ss += (x - m.mean) * (x - m.mean);
  const double half =
      student_t_quantile(0.95, int(v.size()) - 1) * std::sqrt(ss / double(v.size() - 1)) / std::sqrt(double(v.size()));
  m.lo = m.mean - half, m.hi = m.mean + half;
  return m;
}

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// Everything the claims read, gathered once from the runs a context holds.
struct Grid {
  std::vector<Point> pts;
  std::map<std::string, Mean> rel, lazy;  // keyed by the point's name without the seed
  std::vector<int64_t> ns;
  static std::string key(Point p) {  // the point of the first seed stands for all seeds
    p.seed = 0;
    return p.name();
  }
  bool has(const Point& p) const { return rel.count(key(p)) > 0; }
  double r(int64_t n, int64_t h) const { return rel.at(key({n, h})).mean; }
  std::vector<int64_t> heads(int64_t n) const {
    std::vector<int64_t> hs;
    for (int64_t h : kHeads)
      if (has({n, h})) hs.push_back(h);
    return hs;
  }
};

Grid gather(ReproContext& c) {
  Grid g;
  g.pts = points(c);
  std::map<std::string, std::vector<double>> rel, lazy;
  for (auto& p : g.pts) {
    const Errors e = errors(c, p);
    rel[Grid::key(p)].push_back(e.rel), lazy[Grid::key(p)].push_back(e.lazy);
    if (!p.distance && !p.mlp && std::find(g.ns.begin(), g.ns.end(), p.n) == g.ns.end()) g.ns.push_back(p.n);
  }
  for (auto& [k, v] : rel) g.rel[k] = mean_of(v);
  for (auto& [k, v] : lazy) g.lazy[k] = mean_of(v);
  std::sort(g.ns.begin(), g.ns.end());
  return g;
}

// ln rel = k ln H + c over every seed's run of task n with H >= h_min.
LineFitCI fit_heads(ReproContext& c, const Grid& g, int64_t n, int64_t h_min, std::vector<double>* hs = nullptr,
                    std::vector<double>* rs = nullptr) {
  std::vector<double> x, y;
  for (auto& p : g.pts)
    if (p.n == n && !p.distance && !p.mlp && p.heads >= h_min) {
      const double r = errors(c, p).rel;
      x.push_back(std::log(double(p.heads))), y.push_back(std::log(r));
      if (hs) hs->push_back(double(p.heads)), rs->push_back(r);
    }
  return fit_line_ci(x, y);
}

std::string fit_text(const LineFitCI& f) {
  return fmt::format("{:.3g} [{:.3g}, {:.3g}] (R^2 {:.3f}, {} runs)", f.fit.slope, f.slope_lo, f.slope_hi, f.fit.r2,
                     f.fit.n);
}

void write_table(ReproContext& c, const Grid& g) {
  const std::string path = c.out_dir + "/approximation.csv";
  std::ofstream csv(path);
  csv << "point,n,heads,similarity,mlp,seeds,rel_err,rel_err_lo,rel_err_hi,err_over_lazy\n";
  nlohmann::json rows = nlohmann::json::array();
  std::vector<std::string> done;
  for (auto& p : g.pts) {
    const std::string k = Grid::key(p);
    if (std::find(done.begin(), done.end(), k) != done.end()) continue;
    done.push_back(k);
    const Mean &r = g.rel.at(k), &l = g.lazy.at(k);
    const std::string sim = p.distance ? "distance" : "dot";
    csv << fmt::format("{},{},{},{},{},{},{:.6g},{:.6g},{:.6g},{:.6g}\n", k.substr(0, k.size() - 3), p.n, p.heads, sim,
                       p.mlp ? 1 : 0, r.v.size(), r.mean, r.lo, r.hi, l.mean);
    rows.push_back({{"n", p.n},
                    {"heads", p.heads},
                    {"similarity", sim},
                    {"mlp", p.mlp},
                    {"rel_err", r.v},
                    {"rel_err_mean", num(r.mean)},
                    {"rel_err_lo", num(r.lo)},
                    {"rel_err_hi", num(r.hi)},
                    {"err_over_lazy_mean", num(l.mean)}});
  }
  csv.flush();
  IHLAB_CHECK(csv.good(), "wang2024-approximation: could not write '{}'", path);
  c.extra["approximation"]["points"] = rows;
}

void claims(ReproContext& c) {
  const Grid g = gather(c);
  write_table(c, g);
  // The best model with at least n - 1 heads, per n: what the approximation result says exists.
  double worst_best = 0;
  std::string best_detail;
  for (int64_t n : g.ns) {
    double best = INFINITY;
    int64_t at = 0;
    for (int64_t h : g.heads(n))
      if (h >= n - 1 && g.lazy.at(Grid::key({n, h})).mean < best) best = g.lazy.at(Grid::key({n, h})).mean, at = h;
    worst_best = std::max(worst_best, best);
    best_detail += fmt::format("{}n = {}: {:.3g} at H = {}", best_detail.empty() ? "" : ", ", n, best, at);
  }
  c.claim("IH_n is learned with H >= n - 1 heads", [&] {
    return Measured{{worst_best}, "best val_loss / ref.lazy (seed mean): " + best_detail};
  });
  // The drop when H reaches n - 1.
  double drop = INFINITY;
  std::string drop_detail;
  for (int64_t n : g.ns) {
    if (n < 3 || !g.has({n, n - 2}) || !g.has({n, n - 1})) continue;
    const double ratio = g.r(n, n - 2) / g.r(n, n - 1);
    drop = std::min(drop, ratio);
    drop_detail += fmt::format("{}n = {}: rel. error {:.3g} at H = {} vs {:.3g} at H = {} ({:.3g}x)",
                               drop_detail.empty() ? "" : "; ", n, g.r(n, n - 2), n - 2, g.r(n, n - 1), n - 1, ratio);
  }
  c.claim("the error drops once H reaches n - 1", [&] {
    if (!std::isfinite(drop)) return not_evaluated("no n >= 3 with both H = n - 2 and H = n - 1");
    return Measured{{drop}, drop_detail};
  });
  // At a fixed H = 2 (two heads per layer, enough for IH_3 but not for IH_4): the same head count, so
  // whatever a head count does to optimization is the same on both sides.
  const bool fixed = g.has({3, 2}) && g.has({4, 2});
  c.claim("at H = 2, IH_4 is far harder than IH_3", [&] {
    if (!fixed) return not_evaluated("no n = 3 and n = 4 runs at H = 2");
    return Measured{{g.r(4, 2) / g.r(3, 2)},
                    fmt::format("rel. error at H = 2: {:.3g} for IH_4, {:.3g} for IH_3", g.r(4, 2), g.r(3, 2))};
  });
  // More heads never hurt beyond noise: (rel(H) + floor) / (min over fewer heads + floor).
  double worst_rise = 0;
  std::string rise_at = "none (a single H per n)";
  for (int64_t n : g.ns) {
    double best = INFINITY;
    for (int64_t h : g.heads(n)) {
      const double r = g.r(n, h);
      if (std::isfinite(best) && (r + kFloor) / (best + kFloor) > worst_rise)
        worst_rise = (r + kFloor) / (best + kFloor),
        rise_at = fmt::format("n = {}, H = {}: {:.3g} vs {:.3g}", n, h, r, best);
      best = std::min(best, r);
    }
  }
  c.claim("more heads never raise the error beyond noise", [&] {
    return Measured{{worst_rise}, "largest ratio: " + rise_at};
  });
  // Power laws in H: over every H, and beyond the construction's n - 1.
  nlohmann::json fits = nlohmann::json::array(), scaling = nlohmann::json::array();
  double all_hi = -INFINITY, beyond_hi = -INFINITY;
  std::string all_detail, beyond_detail;
  for (int64_t n : g.ns) {
    std::vector<double> hs, rs;
    const LineFitCI all = fit_heads(c, g, n, 1, &hs, &rs), beyond = fit_heads(c, g, n, n - 1);
    if (n >= 3) {
      all_hi = std::max(all_hi, std::isfinite(all.slope_hi) ? all.slope_hi : INFINITY);
      all_detail += fmt::format("{}n = {}: {}", all_detail.empty() ? "" : "; ", n, fit_text(all));
    }
    beyond_hi = std::max(beyond_hi, std::isfinite(beyond.slope_hi) ? beyond.slope_hi : INFINITY);
    beyond_detail +=
        fmt::format("{}n = {}, H >= {}: {}", beyond_detail.empty() ? "" : "; ", n, n - 1, fit_text(beyond));
    fits.push_back({{"n", n},
                    {"form", "ln rel_err = k ln H + c"},
                    {"all_heads", {{"k", all.fit.slope}, {"k_lo", num(all.slope_lo)}, {"k_hi", num(all.slope_hi)}}},
                    {"heads_at_least_n_minus_1",
                     {{"k", beyond.fit.slope}, {"k_lo", num(beyond.slope_lo)}, {"k_hi", num(beyond.slope_hi)}}}});
    scaling.push_back(
        scaling_fit_json(fmt::format("relative error vs H (IH_{})", n), "model.heads", "val_loss / ref.mean", hs, rs));
  }
  c.extra["approximation"]["fits"] = fits;
  c.extra["scaling"] = scaling;
  c.claim("the error falls with H as a power law (n = 3, 4)", [&] {
    return Measured{{all_hi}, "exponent per n over every H and seed: " + all_detail};
  });
  c.claim("beyond n - 1 heads the error keeps falling", [&] {
    return Measured{{beyond_hi}, "exponent per n over H >= n - 1: " + beyond_detail};
  });
  // GIH_3: does the FFN help, and more than it helps on IH_3?
  const Point attn{kGihN, kGihHeads, true, false}, mlp{kGihN, kGihHeads, true, true}, ih{kGihN, kGihHeads},
      ih_mlp{kGihN, kGihHeads, false, true};
  const bool gih = g.has(attn) && g.has(mlp) && g.has(ih) && g.has(ih_mlp);
  auto rel = [&](const Point& p) { return g.rel.at(Grid::key(p)).mean; };
  const double gain = gih ? rel(attn) / rel(mlp) : NAN, ih_gain = gih ? rel(ih) / rel(ih_mlp) : NAN;
  const std::string gih_detail =
      gih ? fmt::format(
                "GIH_3 (H = {}): rel. error {:.3g} attention-only, {:.3g} with MLPs ({:.3g}x); IH_3: {:.3g} "
                "attention-only, {:.3g} with MLPs ({:.3g}x)",
                kGihHeads, rel(attn), rel(mlp), gain, rel(ih), rel(ih_mlp), ih_gain)
          : "";
  c.claim("an FFN lowers the error on GIH_3", [&] {
    if (!gih) return not_evaluated("no GIH runs");
    return Measured{{gain}, gih_detail};
  });
  c.claim("the FFN's gain is specific to the general similarity", [&] {
    if (!gih) return not_evaluated("no GIH runs");
    return Measured{{gain / ih_gain}, gih_detail};
  });
  c.extra["runs"] = variants_json(c, variants(c));
}

}  // namespace

Reproduction wang2024_approximation() {
  Reproduction r;
  r.name = "wang2024-approximation";
  r.paper = "Wang, Yu, E & Wu 2024";
  r.description =
      "two-layer transformers (relative positions, width 24) on in-context n-gram targets IH_n, n = 2..4, with "
      "H = 1..8 heads: relative error vs H, the drop at H = n - 1, and GIH_3 with and without MLPs";
  r.runtime =
      "14.3 min wall, 28 min CPU with --controls and 2 workers (42 runs + 4 control runs, shared machine); --quick "
      "with controls 25 s CPU";
  r.config_toml = kConfig;
  r.quick_overrides = {"stages.0.steps=2000", "data.val_size=300"};
  r.run = run_points;
  const std::string no_grid = "the --quick grid is n = 3 at H = 1, 2 only";
  r.claims = {
      {"IH_n is learned with H >= n - 1 heads",
       {lt("largest over n of the best (H >= n - 1) seed-mean val_loss / ref.lazy", 0.1)},
       "paper: with n - 1 first-layer heads a two-layer transformer approximates IH_n; 0.1 (a tenth of what the "
       "lazy mean-token predictor leaves) is ihlab's margin"},
      {"the error drops once H reaches n - 1",
       {ge("smallest over n = 3, 4 of rel. error at H = n - 2 / rel. error at H = n - 1 (seed means)", 3)},
       "paper: the construction needs one first-layer head per previous token x_{s-1}..x_{s-n+1}; the factor 3 is "
       "ihlab's margin (the paper gives no constant). Measured on the full run: n = 3: 147x, n = 4: 211x (at 5000 "
       "steps for n = 4 it was 2.2x: a seed still on its plateau; n = 4 now trains 15000, "
       "docs/wang2024-approximation.md)"},
      {"at H = 2, IH_4 is far harder than IH_3",
       {ge("rel. error of IH_4 / rel. error of IH_3, both at H = 2 (seed means)", 3)},
       "paper: n - 1 heads are needed (IH_3 needs 2, IH_4 needs 3); at a fixed H the head count's effect on "
       "optimization cancels. The factor 3 is the drop claim's margin (ihlab); the claim was added after the full "
       "run's n = 2, H = 1 point (a single head did not learn IH_2) and before its n = 3, 4 points had run",
       no_grid},
      {"more heads never raise the error beyond noise",
       {le("largest (rel(H) + 0.01) / (min over fewer heads of rel + 0.01), over n and H (seed means)", 1.5)},
       "paper: the error bound is non-increasing in H; the 0.01 floor (a solved target) and the factor 1.5 (seed "
       "noise) are ihlab's margins"},
      {"the error falls with H as a power law (n = 3, 4)",
       {lt("largest over n = 3, 4 of the upper 95% bound of k in ln rel = k ln H + c (every H, every seed)", 0)},
       "paper: the approximation error bound falls with the number of heads (its constants and exponent are not "
       "available to us); the claim asks only for a negative exponent",
       no_grid},
      {"beyond n - 1 heads the error keeps falling",
       {lt("largest over n of the upper 95% bound of k in ln rel = k ln H + c over H >= n - 1", 0)},
       "paper: the bound keeps falling with H. With a learned bias per offset one head selects one offset exactly, "
       "so the construction is exact at H = n - 1 and ihlab expected a flat error beyond it. Measured on the full "
       "run: n = 3 keeps falling (-0.54 [-0.76, -0.31]), n = 4 is flat (-0.87 [-2.15, 0.42]), so it fails",
       no_grid},
      {"an FFN lowers the error on GIH_3",
       {ge("rel. error of GIH_3 attention-only / with MLPs (H = 4, seed means)", 1.5)},
       "paper: FFNs implement the general similarity of GIH_n; 1.5 is ihlab's margin",
       no_grid},
      {"the FFN's gain is specific to the general similarity",
       {ge("(GIH_3 attention-only / MLP) / (IH_3 attention-only / MLP), H = 4", 1.5)},
       "paper: IH_n needs no FFN, GIH_n does; 1.5 is ihlab's margin",
       no_grid},
  };
  r.evaluate = claims;
  // Neither can put x_{s-1}, x_{s-2} into separate subspaces: no window comparison at any H.
  r.controls = {{"no-positions",
                 "positional = none: the first layer cannot select the previous tokens by offset",
                 {"model.positional=\"none\""},
                 {},
                 {"IH_n is learned with H >= n - 1 heads", "the error drops once H reaches n - 1"},
                 true},
                {"one-layer",
                 "one layer: no previous-token head to compose with",
                 {"model.layers=1"},
                 {},
                 {"IH_n is learned with H >= n - 1 heads", "the error drops once H reaches n - 1"},
                 true}};
  return r;
}

}  // namespace ihlab
