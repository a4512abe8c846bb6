// chen2024-generalization: a model trained at L = 100 evaluated at L in {10..1000} and
// alpha in {0.05, 0.1, 0.2} (docs/reproductions.md#chen2024-generalization).
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "analysis/fits.h"
#include "io/checkpoint.h"
#include "models/gih_limit.h"
#include "models/registry.h"
#include "reproduce/chen2024.h"
#include "reproduce/chen2024_common.h"
#include "reproduce/run_config.h"
#include "tasks/ngram_task.h"

namespace ihlab {
namespace {
using namespace chen;
namespace fs = std::filesystem;

const std::vector<int> kLengths = {10, 20, 50, 100, 200, 400, 700, 1000};
const std::vector<double> kAlphas = {0.05, 0.1, 0.2};

struct GeneralizationRow {
  int length;
  double alpha, loss, loss_excl_unseen, unseen_frac, bayes, unigram, limit;
  double limit_best;  // the limit's loss at a* (its best a on the training length's validation set)
};

template <typename T>
std::vector<GeneralizationRow> evaluate_lengths(const ReproContext& c, int n_test) {
  // The trained parameters: the run's newest checkpoint (the summary names it; the file name is
  // looked up in this directory, which may have moved since).
  const std::string file = fs::path(c.main.summary.checkpoint).filename().string();
  IHLAB_CHECK(!file.empty(), "chen2024-generalization: the run in '{}' wrote no checkpoint", c.out_dir);
  Checkpoint<T> trained = load_checkpoint<T>(c.out_dir + "/checkpoints/" + file);
  const GihConfig gih = gih_config(c.spec);
  double a = 0;
  // A reference that does not move with the model: the limit at its own best a (target.a).
  const double a_star = c.main.metrics.column("target.a").back();
  std::vector<GeneralizationRow> rows;
  for (double alpha : kAlphas) {
    for (int L : kLengths) {
      NgramMarkovConfig task_cfg = ngram_config(c.spec);
      task_cfg.length = L;
      task_cfg.alpha = alpha;
      NgramMarkovTask task(task_cfg);
      // Test sequences from the evaluation stream, one substream per (L, alpha).
      Batch test = task.sample(n_test, c.spec.seed, StreamKind::Eval, 1000 + uint64_t(L) * 10 + uint64_t(alpha * 100));
      auto model = make_model<T>(model_table(c.spec), task, c.spec.seed);
      restore_params(trained, model->params());
      NoGradScope<T> no_grad(model->params());
      GeneralizationRow r{L, alpha, double(model->loss(test).item()), NAN, NAN, NAN, NAN, NAN, NAN};
      for (auto& [k, v] : model->evaluate(test)) {
        if (k == "loss_excl_unseen") r.loss_excl_unseen = v;
        if (k == "unseen_frac") r.unseen_frac = v;
      }
      for (auto& [k, v] : model->probes())
        if (k == "a") a = v;
      for (auto& [k, v] : task.reference_losses(test)) {
        if (k == "ref.bayes") r.bayes = v;
        if (k == "ref.unigram") r.unigram = v;
      }
      GihLimitModel limit(task.vocab(), task_cfg.parents, gih.loss, gih.guard);
      r.limit = limit.loss(test, a);
      r.limit_best = limit.loss(test, a_star);
      rows.push_back(r);
    }
  }
  return rows;
}

void generalization_claims(ReproContext& c) {
  int n_test = c.quick ? 300 : 1000;
  auto rows = c.spec.dtype == Dtype::Float64 ? evaluate_lengths<double>(c, n_test) : evaluate_lengths<float>(c, n_test);
  {
    const std::string path = c.out_dir + "/generalization.csv";
    std::ofstream csv(path);
    csv << "length,alpha,loss,loss_excl_unseen,unseen_frac,ref.bayes,ref.unigram,ref.gih_limit\n";
    for (auto& r : rows)
      csv << fmt::format("{},{},{:.17g},{:.17g},{:.17g},{:.17g},{:.17g},{:.17g}\n", r.length, r.alpha, r.loss,
                         r.loss_excl_unseen, r.unseen_frac, r.bayes, r.unigram, r.limit);
    csv.flush();
    IHLAB_CHECK(csv.good(), "chen2024-generalization: could not write '{}'", path);
  }
  nlohmann::json table = nlohmann::json::array();
  for (auto& r : rows)
    table.push_back({{"length", r.length},
                     {"alpha", r.alpha},
                     {"loss", r.loss},
                     {"loss_excl_unseen", r.loss_excl_unseen},
                     {"ref.bayes", r.bayes},
                     {"ref.gih_limit", r.limit},
                     {"ref.gih_limit_at_best_a", r.limit_best}});
  c.extra["generalization"] = table;

  for (double alpha : kAlphas) {
    c.claim(fmt::format("loss falls as L grows (alpha {})", alpha), [&] {
      std::vector<double> Ls, losses;
      double first = NAN, last = NAN;
      std::string detail;
      for (auto& r : rows) {
        if (r.alpha != alpha) continue;
        // The loss without the sequences whose target never occurred (there every model of the
        // family assigns probability 0 and only the guard decides the loss).
        double l = r.loss_excl_unseen;
        Ls.push_back(r.length);
        losses.push_back(l);
        if (std::isnan(first)) first = l;
        last = l;
        detail += fmt::format("L={}: {:.3f}  ", r.length, l);
      }
      return Measured{{spearman(Ls, losses), yes_no(last < first)}, detail};
    });
  }
  c.claim("stays near the GIH limit from L = 10 to 1000 and other alpha", [&] {
    double worst = -INFINITY;
    std::string at;
    for (auto& r : rows)
      if (r.loss - r.limit_best > worst)
        worst = r.loss - r.limit_best, at = fmt::format("L = {}, alpha {}", r.length, r.alpha);
    return Measured{
        {worst},
        fmt::format("largest gap at {}; the limit's a* = {:.4g}", at, c.main.metrics.column("target.a").back())};
  });
  c.claim("keeps working from L = 10 to 1000 and other alpha", [&] {
    int beaten = 0, total = 0;
    for (auto& r : rows) {
      ++total;
      beaten += r.loss_excl_unseen < r.unigram;
    }
    return Measured{{double(beaten) / total}, fmt::format("{} of {} settings", beaten, total)};
  });
}

std::vector<ClaimDef> generalization_claim_defs() {
  std::vector<ClaimDef> defs;
  for (double alpha : kAlphas)
    defs.push_back({fmt::format("loss falls as L grows (alpha {})", alpha),
                    {lt("Spearman(L, loss excluding unseen targets) over L = 10..1000", -0.8),
                     yes("loss(L = 1000) < loss(L = 10)")},
                    "paper: the GIH generalizes to longer contexts, where its estimate of the transition improves. "
                    "Weak alone: the untrained control holds it at alpha 0.05 and 0.2 (--quick), as longer contexts "
                    "help any in-context estimate"});
  defs.push_back({"stays near the GIH limit from L = 10 to 1000 and other alpha",
                  {le("largest loss - the GIH limit's loss at a* over the 24 (L, alpha) settings", 0.1)},
                  "paper: the learned model is the GIH at every length; 0.1 nats is ihlab's margin between the "
                  "trained model (measured 0.056 on the full run, at L = 10, alpha 0.1; 0.020 in --quick) and the "
                  "untrained control (0.51 in --quick)"});
  defs.push_back({"keeps working from L = 10 to 1000 and other alpha",
                  {ge("fraction of the 24 (L, alpha) settings where the loss beats the in-context unigram", 1)},
                  "ihlab: a baseline an induction head must beat everywhere; the untrained GIH model beats it too "
                  "(measured, control 'untrained'): the structure alone does, so it is no evidence of learning"});
  return defs;
}

}  // namespace

Reproduction chen2024_generalization() {
  Reproduction r = chen_base("chen2024-generalization");
  r.description = "train at L = 100 (CW jointly, then a), evaluate L in {10..1000} x alpha in {0.05, 0.1, 0.2}";
  r.runtime = "2.1 min; --quick 4 s";
  // The paper trains CW for 500000 steps before the a stage; 20000 reach the same selector and
  // copiers here (stages.0.steps=500000 restores the paper's budget).
  r.config_toml = base_config(r.name, 250, kGihModel) + R"(
[[stages]]
name = "CW"
train = ["C", "W"]
optimizer = "sgd"
lr = 1.0
steps = 20000
[[stages]]
name = "a"
train = ["a"]
optimizer = "sgd"
lr = 1.0
steps = 5000
)";
  r.quick_overrides = {"data.train_size=2000", "data.val_size=500", "stages.0.steps=1500", "stages.1.steps=500",
                       "log.every=50"};
  r.claims = generalization_claim_defs();
  r.evaluate = generalization_claims;
  r.controls = {{"untrained",
                 "both stages at learning rate 0: the model evaluated at its initialization",
                 {"stages.0.lr=0.0", "stages.1.lr=0.0"},
                 {},
                 {"stays near the GIH limit from L = 10 to 1000 and other alpha"},
                 true}};
  return r;
}

}  // namespace ihlab
