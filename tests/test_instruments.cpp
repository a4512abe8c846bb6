// What the trainer logs beside the loss: per-head attention scores on hand-built heads, KL from
// reference strategies to the model, the task's evaluation sets, and multi-run reproductions'
// variants.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "analysis/head_scores.h"
#include "analysis/reference_kl.h"
#include "io/config.h"
#include "io/run_dir.h"
#include "reproduce/variants.h"
#include "train/instruments.h"
#include "train/run.h"
#include "train/run_schema.h"
#include "scratch_dir.h"

namespace ihlab {
namespace {
namespace fs = std::filesystem;

std::string fresh_dir(const std::string& name) { return test::scratch_dir("ihlab_test_instruments_" + name); }

// [BOS] r r with r = 0 1 2 3 (L = 9): a perfect previous-token head and a perfect induction head.
Batch repeated() {
  Batch b;
  b.size = 1, b.length = 9;
  b.tokens = {9, 0, 1, 2, 3, 0, 1, 2, 3};
  b.targets.assign(9, -1);
  return b;
}

AttentionMap head(int layer, int h, const std::vector<int64_t>& key_of_query) {
  AttentionMap m{layer, h, 9, 9, std::vector<double>(81, 0.0)};
  for (int64_t q = 0; q < 9; ++q) m.weights[q * 9 + key_of_query[q]] = 1.0;
  return m;
}

TEST(HeadScores, HandBuiltHeads) {
  // previous token: q -> q - 1 (q = 0 -> 0); induction: first copy parks on BOS, second copy
  // q -> q - 4 + 1 (the token after the earlier copy of the current token).
  AttentionMap prev = head(0, 0, {0, 0, 1, 2, 3, 4, 5, 6, 7});
  AttentionMap ind = head(1, 0, {0, 0, 0, 0, 0, 2, 3, 4, 5});
  Scalars s = attention_head_scores({{prev, ind}}, repeated());
  auto get = [&](const std::string& k) -> double {
    for (auto& [name, v] : s)
      if (name == k) return v;
    ADD_FAILURE() << "no column " << k;
    return NAN;
  };
  EXPECT_DOUBLE_EQ(get("prev.l0.h0"), 1.0);
  EXPECT_DOUBLE_EQ(get("pm.l1.h0"), 1.0);
  EXPECT_DOUBLE_EQ(get("prev.l1.h0"), 1.0 / 8.0);  // only q = 1 -> BOS is also "previous"
  EXPECT_LT(get("pm.l0.h0"), 0.01);
  // TransformerLens' induction score: only the second copy's 4 rows can match, out of 9.
  EXPECT_NEAR(get("ind.l1.h0"), 4.0 / 9.0, 1e-12);
}

TEST(ReferenceKl, ZeroForTheReferenceItselfPositiveOtherwise) {
  Batch b;
  b.size = 1, b.length = 2;
  b.tokens = {0, 1};
  b.targets = {1, -1};  // only position 0 counts
  ReferencePrediction ref{"ref.x", 1, 2, 2, {0.25, 0.75, 0.5, 0.5}};
  EXPECT_NEAR(mean_kl_to_reference(ref, ref.probs, b), 0.0, 1e-15);
  std::vector<double> model = {0.5, 0.5, 0.9, 0.1};  // position 1 is ignored
  double expect = 0.25 * std::log(0.25 / 0.5) + 0.75 * std::log(0.75 / 0.5);
  EXPECT_NEAR(mean_kl_to_reference(ref, model, b), expect, 1e-15);
  EXPECT_THROW(mean_kl_to_reference(ref, {0.5, 0.5}, b), Error);
}

nlohmann::json config(const std::string& toml) { return run_schema().resolve(parse_toml_string(toml, "test")); }

TEST(TrainerInstruments, IclMcRunLogsKlAndHeadScores) {
  auto cfg = config(R"(
name = "t"
seed = 1
[task]
name = "icl-mc"
states = 3
length = 21
[model]
name = "transformer"
layers = 2
[data]
batch_size = 8
val_size = 16
[log]
every = 5
head_scores = 4
[[stages]]
optimizer = "adamw"
lr = 0.01
steps = 10
)");
  std::string dir = fresh_dir("iclmc");
  TrainOptions o;
  o.quiet = true;
  ASSERT_EQ(run_config(cfg, dir, o).summary.status, RunStatus::Finished);
  MetricsTable m = read_metrics(dir + "/metrics.csv");
  for (const char* c : {"kl.uniform", "kl.unigram", "kl.bigram", "prev.l0.h0", "ind.l1.h0", "pm.l1.h0"}) {
    auto v = m.column(c);
    EXPECT_TRUE(std::isfinite(v.back())) << c;
  }
  // At initialization the model is close to uniform: KL to uniform is the smallest.
  EXPECT_LT(m.column("kl.uniform").front(), m.column("kl.bigram").front());
  EXPECT_LT(m.column("kl.uniform").front(), 0.05);
}

TEST(TrainerInstruments, BurstyRunLogsItsEvaluationSets) {
  auto cfg = config(R"(
name = "t"
[task]
name = "bursty"
classes = 16
labels = 4
pairs = 4
burstiness = 2
dim = 8
[model]
name = "transformer"
width = 16
positional = "learned"
[data]
batch_size = 8
val_size = 16
[log]
every = 5
[[stages]]
optimizer = "adam"
lr = 0.01
steps = 5
)");
  std::string dir = fresh_dir("bursty");
  TrainOptions o;
  o.quiet = true;
  ASSERT_EQ(run_config(cfg, dir, o).summary.status, RunStatus::Finished);
  MetricsTable m = read_metrics(dir + "/metrics.csv");
  for (const char* c : {"val_in_context_loss", "val_in_context_acc", "val_in_weights_loss", "val_in_weights_acc"}) {
    auto v = m.column(c);
    EXPECT_TRUE(std::isfinite(v.back())) << c;
  }
}

TEST(Variants, RunOnceAndAreListed) {
  auto cfg = config(R"(
name = "t"
[task]
name = "previous-token"
vocab = 4
length = 6
[model]
name = "attn1"
width = 4
window = 2
[data]
batch_size = 4
val_size = 8
[[stages]]
lr = 0.01
steps = 3
)");
  std::string dir = fresh_dir("variants");
  std::vector<Variant> vs = {{"a", {"seed=2"}}, {"b", {"task.vocab=5"}}};
  ReproContext ctx;
  ctx.out_dir = dir;
  ASSERT_TRUE(run_variants(ctx, cfg, vs, false));
  // Run here: the results are the ones training returned, equal to the files.
  ASSERT_EQ(ctx.variants().size(), 2u);
  EXPECT_EQ(ctx.variant("b").metrics.column("ref.uniform").back(), std::log(5.0));
  EXPECT_EQ(ctx.variant("a").metrics.column("val_loss"), read_metrics(dir + "/runs/a/metrics.csv").column("val_loss"));
  auto t = fs::last_write_time(dir + "/runs/a/metrics.csv");
  ReproContext later;  // a restarted reproduction
  later.out_dir = dir;
  ASSERT_TRUE(run_variants(later, cfg, vs, false));  // finished: not run again
  EXPECT_EQ(t, fs::last_write_time(dir + "/runs/a/metrics.csv"));
  // Read back from their directories (the growing store says they are done).
  EXPECT_EQ(later.variants().size(), 2u);
  EXPECT_EQ(later.variant("b").metrics.column("ref.uniform").back(), std::log(5.0));
  EXPECT_EQ(later.variant("b").spec.seed, ctx.variant("b").spec.seed);
  EXPECT_EQ(later.variant("b").summary.status, RunStatus::Finished);
  auto j = variants_json(ctx, vs);
  EXPECT_EQ(j[1]["dir"], "runs/b");
  EXPECT_EQ(j[1]["status"], "finished");
  EXPECT_EQ(j[1]["overrides"]["task.vocab"], "5");
  EXPECT_EQ(variants_json(later, {{"c", {}}})[0]["status"], "missing");
}

// The instruments of a run follow the spec and the task's capabilities, in column order.
TEST(TrainerInstruments, ListIsAssembledFromTheSpecAndTheTask) {
  auto names = [](const nlohmann::json& cfg) {
    RunSpec spec = run_spec_from_config(cfg);
    RunData data = make_run_data(spec);
    InstrumentSetup setup;
    setup.out_dir = fresh_dir("list");
    fs::create_directories(setup.out_dir);
    std::vector<std::string> out;
    for (auto& in : make_instruments<float>(spec, data, setup)) out.push_back(in->name());
    return out;
  };
  const char* base = R"(
name = "t"
[task]
name = "previous-token"
vocab = 4
length = 6
[model]
name = "attn1"
width = 4
window = 2
[[stages]]
lr = 0.01
steps = 3
)";
  EXPECT_EQ(names(config(base)),
            (std::vector<std::string>{"validation", "probes", "head-scores", "references", "attention-snapshots"}));
  nlohmann::json off = config(base);
  off["log"]["head_scores"] = 0;
  off["log"]["attention_snapshots"] = 0;
  EXPECT_EQ(names(off), (std::vector<std::string>{"validation", "probes", "references"}));
  nlohmann::json icl = config(base);
  icl["task"] = {{"name", "icl-mc"}, {"states", 3},  {"length", 12},
                 {"order", 2},       {"alpha", 1.0}, {"variant", "standard"}};
  EXPECT_EQ(names(icl), names(config(base)));  // its kl.* columns come from "validation"
  nlohmann::json flow = config(base);
  flow["data"]["mode"] = "fixed", flow["data"]["train_size"] = 8, flow["data"]["batch_size"] = 0;
  flow["stages"][0]["method"] = "flow", flow["stages"][0]["time"] = 1.0;
  auto f = names(flow);
  EXPECT_NE(std::find(f.begin(), f.end(), "flow-evals"), f.end());
}

}  // namespace
}  // namespace ihlab
