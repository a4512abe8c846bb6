// Sweeps in one process: sweep files expanded into plans, the store's transitions, and a small
// sweep end to end (records, never reruns, failed points, aggregates, fits). Worker processes,
// SIGKILL, shards, MPI and the command line are tested by tests/sweep_check.py.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "io/run_dir.h"
#include "io/sweep_store.h"
#include "io/config.h"
#include "train/run.h"
#include "train/run_schema.h"
#include "train/sweep.h"
#include "train/sweep_spec.h"
#include "scratch_dir.h"

namespace ihlab {
namespace {
namespace fs = std::filesystem;

const char* kTiny = R"(
name = "tiny"
seed = 3
dtype = "float64"
[task]
name = "previous-token"
vocab = 5
length = 8
[model]
name = "attn1"
width = 8
window = 3
[data]
batch_size = 8
val_size = 16
[log]
every = 5
checkpoint_every = 5
[[stages]]
name = "adam"
optimizer = "adam"
lr = 0.05
steps = 10
)";

std::string fresh_dir(const std::string& name) { return test::scratch_dir("ihlab_test_sweep_" + name); }

nlohmann::json sweep_file(const std::string& axes) {
  nlohmann::json f = nlohmann::json::parse(R"({"base": {"task": {"name": "previous-token"}}})");
  f["axis"] = nlohmann::json::parse(axes);
  return f;
}

// The message of the ihlab::Error that `f` throws ("" when it throws none).
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SweepSpec, ExpandsValuesRangesSamplesAndSeeds) {
  nlohmann::json f = sweep_file(R"([
    {"key": "task.vocab", "values": [4, 8]},
    {"key": "stages.0.lr", "logspace": {"from": 0.001, "to": 0.1, "num": 3}},
    {"key": "model.width", "random": {"distribution": "int-uniform", "low": 8, "high": 32, "count": 2, "seed": 5}}])");
  f["base"]["stages"] = nlohmann::json::parse(R"([{"lr": 0.1, "steps": 1}])");
  f["base"]["model"] = {{"name", "attn1"}};
  f["seeds"] = 2;
  SweepDefinition d = parse_sweep_json(f, "test", ".");
  ASSERT_EQ(d.axes.size(), 3u);
  EXPECT_DOUBLE_EQ(d.axes[1].values[0].get<double>(), 0.001);
  EXPECT_NEAR(d.axes[1].values[1].get<double>(), 0.01, 1e-15);
  EXPECT_DOUBLE_EQ(d.axes[1].values[2].get<double>(), 0.1);
  for (auto& w : d.axes[2].values) EXPECT_TRUE(w.get<int>() >= 8 && w.get<int>() <= 32) << w;
  // Samples are a function of their seed only.
  EXPECT_EQ(parse_sweep_json(f, "test", ".").axes[2].values, d.axes[2].values);
  SweepPlan plan = plan_sweep(d);
  ASSERT_EQ(plan.points.size(), 2u * 3u * 2u * 2u);
  EXPECT_EQ(plan.points[0].name.rfind("p000_vocab=4_lr=0.001_width=", 0), 0u) << plan.points[0].name;
  EXPECT_EQ(plan.points[1].seed, 1);  // base seed 0, then 1
  EXPECT_EQ(plan.points[1].resolved["seed"], 1);
  EXPECT_EQ(plan.points.back().resolved["task"]["vocab"], 8);
  // A rerun plans the same; another axis value plans differently.
  EXPECT_EQ(plan_sweep(d).hash, plan.hash);
  d.axes[0].values[1] = 9;
  EXPECT_NE(plan_sweep(d).hash, plan.hash);
  // zip pairs the axes value by value.
  f = sweep_file(
      R"([{"key": "task.vocab", "values": [4, 8]}, {"key": "task.length", "linspace": {"from": 8, "to": 16, "num": 2}}])");
  f["combine"] = "zip";
  SweepPlan z = plan_sweep(parse_sweep_json(f, "test", "."));
  ASSERT_EQ(z.points.size(), 2u);
  EXPECT_EQ(z.points[1].values["task.length"], 16.0);
}

TEST(SweepSpec, BadFilesNameTheKeyTheValueAndWhatIsAllowed) {
  auto err = [](const nlohmann::json& f) { return error_of([&] { parse_sweep_json(f, "test", "."); }); };
  nlohmann::json f = sweep_file(R"([{"key": "task.vocab", "values": [4]}])");
  f["sedes"] = 3;
  EXPECT_NE(err(f).find("unknown key 'sedes'"), std::string::npos) << err(f);
  EXPECT_NE(err(f).find("seeds"), std::string::npos) << err(f);
  f = sweep_file(R"([{"key": "task.vocab", "values": [4], "linspace": {"from": 1, "to": 2, "num": 2}}])");
  EXPECT_NE(err(f).find("exactly one of values, linspace, logspace, random"), std::string::npos) << err(f);
  f = sweep_file(R"([{"key": "stages.0.lr", "logspace": {"from": 0, "to": 1, "num": 3}}])");
  EXPECT_NE(err(f).find("axis[0].logspace"), std::string::npos) << err(f);
  EXPECT_NE(err(f).find("from > 0"), std::string::npos) << err(f);
  f = sweep_file(R"([{"key": "stages.0.lr", "linspace": {"from": 0.1, "to": 1, "num": 0}}])");
  EXPECT_NE(err(f).find("'axis[0].linspace.num' = 0"), std::string::npos) << err(f);
  f = sweep_file(R"([{"key": "x", "random": {"distribution": "cauchy", "low": 0, "high": 1, "count": 2}}])");
  EXPECT_NE(err(f).find("'axis[0].random.distribution' = \"cauchy\""), std::string::npos) << err(f);
  EXPECT_NE(err(f).find("log-uniform"), std::string::npos) << err(f);
  f = sweep_file(R"([{"key": "task.vocab", "values": [4]}])");
  f["fit"] = nlohmann::json::parse(R"([{"x": "task.length", "y": "val_loss"}])");
  EXPECT_NE(err(f).find("'fit[0].x' = \"task.length\" is not a swept key"), std::string::npos) << err(f);
  f = sweep_file(R"([{"key": "task.vocab", "values": [4, 5]}, {"key": "task.length", "values": [8]}])");
  f["combine"] = "zip";
  EXPECT_NE(err(f).find("has 2 values"), std::string::npos) << err(f);
  f = sweep_file(R"([{"key": "task.vocab", "values": [4]}])");
  f.erase("base");
  EXPECT_NE(err(f).find("missing key 'base'"), std::string::npos) << err(f);
}

std::vector<StorePoint> rows(int n) {
  std::vector<StorePoint> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    out[static_cast<size_t>(i)].id = i;
    out[static_cast<size_t>(i)].name = fmt::format("p{}", i);
    out[static_cast<size_t>(i)].dir = fmt::format("runs/p{}", i);
    out[static_cast<size_t>(i)].config = {{"i", i}};
  }
  return out;
}

TEST(SweepStore, ClaimsInOrderRecordsAndPutsBack) {
  std::string dir = fresh_dir("store");
  SweepStore s = SweepStore::open(dir, true);
  EXPECT_FALSE(s.initialized());
  s.init({{"what", "test"}}, "h1", "", rows(4));
  EXPECT_TRUE(s.initialized());
  EXPECT_EQ(s.meta("format"), "ihlab-sweep-1");
  auto a = s.claim_next("w1", "host"), b = s.claim_next("w2", "host");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->id, 0);
  EXPECT_EQ(b->id, 1);
  EXPECT_EQ(a->attempts, 1);
  PointOutcome done;
  done.final_metrics = {{"val_loss", 0.25}};
  s.finish(a->id, done);
  PointOutcome failed;
  failed.status = PointStatus::Failed;
  failed.exit_status = 3;
  failed.error = "diverged";
  s.finish(b->id, failed);
  auto c = s.claim_next("w1", "host");
  StoreCounts n = s.counts();
  EXPECT_EQ(n.done, 1);
  EXPECT_EQ(n.failed, 1);
  EXPECT_EQ(n.running, 1);
  EXPECT_EQ(n.pending, 1);
  // A worker that died: its point goes back, and is taken again with one more attempt.
  EXPECT_EQ(s.running_of("w1").size(), 1u);
  EXPECT_EQ(s.reset_running("w1"), 1);
  auto again = s.claim_next("w3", "host");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, c->id);
  EXPECT_EQ(again->attempts, 2);
  EXPECT_EQ(s.reset_failed(), 1);
  EXPECT_EQ(s.counts().pending, 2);
  // Reopened from the file: the same rows, JSON columns included.
  SweepStore r = SweepStore::open(dir + "/sweep.db", false);
  auto pts = r.points();
  ASSERT_EQ(pts.size(), 4u);
  EXPECT_EQ(pts[0].final_metrics["val_loss"], 0.25);
  EXPECT_EQ(pts[0].status, PointStatus::Done);
  // Rerunning the same plan changes nothing; another plan is refused, naming the directory.
  r.init({{"what", "test"}}, "h1", "", rows(4));
  EXPECT_EQ(r.points().size(), 4u);
  std::string e = error_of([&] { r.init({}, "h2", "", rows(2)); });
  EXPECT_NE(e.find("holds another sweep"), std::string::npos) << e;
}

TEST(SweepStore, AShardClaimsOnlyItsShare) {
  std::string dir = fresh_dir("shard");
  SweepStore s = SweepStore::open(dir + "/shard-1-of-3.db", true);
  s.init({}, "h", "1/3", rows(7));
  EXPECT_EQ(s.shard_count(), 3);
  EXPECT_EQ(s.counts().total(), 2);  // ids 1 and 4
  std::vector<int64_t> got;
  while (auto p = s.claim_next("w", "h")) got.push_back(p->id);
  EXPECT_EQ(got, (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(s.points().size(), 7u);
}

TEST(Sweep, RecordsEveryPointNeverRerunsAndGoesOnPastFailures) {
  std::string dir = fresh_dir("run"), cfg = test::scratch_file(dir + ".toml");
  std::ofstream(cfg) << kTiny;
  // task.vocab = -4 does not resolve: that point fails at once, the others run.
  SweepDefinition d = sweep_from_vary(cfg, {"task.vocab=3,5,-4", "seed=1,2"}, {"task.vocab:val_loss"}, {});
  SweepRunOptions o;
  o.quiet = true;
  SweepRunResult r = run_sweep(plan_sweep(d), dir, o);
  EXPECT_EQ(r.counts.done, 4);
  EXPECT_EQ(r.counts.failed, 2);
  EXPECT_FALSE(r.interrupted);
  SweepStore s = SweepStore::open(dir, false);
  auto pts = s.points();
  ASSERT_EQ(pts.size(), 6u);
  EXPECT_EQ(pts[4].status, PointStatus::Failed);
  EXPECT_EQ(pts[4].exit_status, 2);
  EXPECT_NE(pts[4].error.find("task.vocab"), std::string::npos) << pts[4].error;
  EXPECT_EQ(pts[0].status, PointStatus::Done);
  EXPECT_TRUE(pts[0].final_metrics.contains("val_loss"));
  EXPECT_TRUE(fs::exists(dir + "/" + pts[0].dir + "/metrics.csv"));
  EXPECT_TRUE(fs::exists(dir + "/" + pts[0].dir + "/report.html"));
  const auto stamp = fs::last_write_time(dir + "/" + pts[0].dir + "/metrics.csv");

  RunSummary sum = write_sweep_summary(dir, "test");
  EXPECT_EQ(sum.status, RunStatus::Incomplete);
  auto& agg = sum.sections["aggregates"];
  ASSERT_EQ(agg.size(), 3u);  // one per vocab, over the two seeds
  EXPECT_EQ(agg[0]["metrics"]["val_loss"]["n"], 2);
  EXPECT_LE(agg[0]["metrics"]["val_loss"]["lo"].get<double>(), agg[0]["metrics"]["val_loss"]["mean"].get<double>());
  EXPECT_EQ(agg[2]["done"], 0);
  EXPECT_EQ(sum.sections["scaling"][0]["points"].size(), 4u);
  std::ifstream csv(dir + "/sweep.csv");
  std::string head;
  std::getline(csv, head);
  EXPECT_EQ(head.rfind("run,seed,task.vocab,status,wall_s,", 0), 0u) << head;

  // The same sweep again: nothing reruns; --retry-failed takes the failed points once more.
  o.retry_failed = true;
  r = run_sweep(plan_sweep(d), dir, o);
  EXPECT_EQ(r.counts.done, 4);
  auto after = SweepStore::open(dir, false).points();
  EXPECT_EQ(after[0].attempts, 1);
  EXPECT_EQ(after[4].status, PointStatus::Failed);
  EXPECT_EQ(fs::last_write_time(dir + "/" + pts[0].dir + "/metrics.csv"), stamp);
  // Another sweep into the same directory is refused.
  SweepDefinition other = sweep_from_vary(cfg, {"task.vocab=3,6"}, {}, {});
  std::string e = error_of([&] { run_sweep(plan_sweep(other), dir, o); });
  EXPECT_NE(e.find("holds another sweep"), std::string::npos) << e;
}

// A sweep process killed after a run's last checkpoint but before its summary.json resumes that
// run with nothing left to train: it must still end with the uninterrupted run's final metrics.
TEST(Sweep, AResumeFromTheFinalCheckpointKeepsTheFinalMetrics) {
  std::string dir = fresh_dir("final"), cfg = test::scratch_file(dir + ".toml");
  std::ofstream(cfg) << kTiny;
  nlohmann::json resolved = load_config(cfg, {}, run_schema());
  TrainOptions t;
  t.quiet = true;
  RunResult first = run_config(resolved, dir + "/run", t);
  ASSERT_TRUE(first.finished());
  ASSERT_FALSE(first.summary.final_metrics.empty());
  fs::remove(dir + "/run/summary.json");
  t.resume = true;
  RunResult again = run_config(resolved, dir + "/run", t);
  EXPECT_TRUE(again.finished());
  EXPECT_EQ(summary_to_json(again.summary)["final"], summary_to_json(first.summary)["final"]);
}

}  // namespace
}  // namespace ihlab
