// End-to-end checks of the training runtime on the smoke task: it learns, it is deterministic
// across thread counts, a resumed run is bit-identical, divergence and bad input are reported.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/parallel.h"
#include "io/config.h"
#include "io/checkpoint.h"
#include "io/run_dir.h"
#include "io/run_summary.h"
#include "train/interrupt.h"
#include "train/run.h"
#include "train/run_schema.h"
#include "scratch_dir.h"

namespace ihlab {
namespace {
namespace fs = std::filesystem;

const char* kSmoke = R"(
name = "test"
seed = 7
dtype = "float64"
[task]
name = "previous-token"
vocab = 6
length = 10
[model]
name = "attn1"
width = 12
window = 3
[data]
batch_size = 16
val_size = 128
[log]
every = 10
checkpoint_every = 40
[[stages]]
name = "warm"
optimizer = "adam"
lr = 0.02
steps = 60
[[stages]]
name = "rest"
optimizer = "sgd"
momentum = 0.9
lr = 0.05
steps = 60
schedule = "cosine"
clip = 1.0
)";

nlohmann::json config(const std::vector<std::string>& overrides = {}) {
  nlohmann::json raw = parse_toml_string(kSmoke, "smoke");
  for (auto& o : overrides) apply_override(raw, o);
  return run_schema().resolve(raw);
}

std::string fresh_dir(const std::string& name) { return test::scratch_dir("ihlab_test_training_" + name); }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Bytes of the final checkpoint minus nothing: the file holds params, optimizer state and meta
// (which includes wall time), so compare the parameter tensors through the metrics and the file
// of the last stage's checkpoint instead.
std::string final_params(const std::string& dir) {
  std::string file = read_json(dir + "/checkpoints/latest.json").at("file");
  auto ck = load_checkpoint<double>(dir + "/checkpoints/" + file);
  std::string bytes;
  for (auto& [name, t] : ck.params)
    bytes += name + std::string(reinterpret_cast<const char*>(t.data()), t.numel() * sizeof(double));
  for (auto& [name, t] : ck.optimizer_state)
    bytes += name + std::string(reinterpret_cast<const char*>(t.data()), t.numel() * sizeof(double));
  return bytes;
}

TrainOptions quiet() {
  TrainOptions o;
  o.quiet = true;
  return o;
}

TEST(Training, OneLayerAttentionLearnsToCopyThePreviousToken) {
  std::string dir = fresh_dir("learn");
  RunResult r = run_config(config({"stages.0.steps=150", "stages.1.steps=150"}), dir, quiet());
  ASSERT_EQ(r.summary.status, RunStatus::Finished) << r.summary.message;
  EXPECT_EQ(r.summary.steps, 300);
  MetricsTable m = read_metrics(dir + "/metrics.csv");
  ASSERT_EQ(m.columns.front(), "step");
  double acc = m.column("val_acc").back(), loss = m.column("val_loss").back();
  double uniform = m.column("ref.uniform").back();
  EXPECT_GT(acc, 0.97) << "the model did not learn to copy the previous token";
  EXPECT_LT(loss, 0.2 * uniform);
  // It learned it the right way: the relative-position bias favours offset 1.
  EXPECT_GT(m.column("rpe.o1").back(), m.column("rpe.o0").back());
  EXPECT_GT(m.column("rpe.o1").back(), m.column("rpe.o2").back());
  auto summary = read_json(dir + "/summary.json");
  EXPECT_EQ(summary["status"], "finished");
  EXPECT_TRUE(summary["claims"].is_array());
  EXPECT_TRUE(fs::exists(dir + "/config.toml"));
}

TEST(Training, BitIdenticalForOneAndTwoThreads) {
  std::string d1 = fresh_dir("t1"), d2 = fresh_dir("t2");
  ASSERT_EQ(run_config(config({"threads=1"}), d1, quiet()).summary.status, RunStatus::Finished);
  ASSERT_EQ(run_config(config({"threads=2"}), d2, quiet()).summary.status, RunStatus::Finished);
  set_threads(0);
  EXPECT_EQ(slurp(d1 + "/metrics.csv"), slurp(d2 + "/metrics.csv"));
  EXPECT_EQ(final_params(d1), final_params(d2));
}

TEST(Training, ThreadsOfferedMidRunAreTakenUpAndChangeNoResult) {
  // A run on one thread is offered more cores part-way (a sibling run finished): in-process at
  // step 40, through a worker's offer file at step 80. It takes them between steps and its
  // metrics are those of a run that never had them.
  const int most = std::min(2, omp_get_num_procs());
  std::string d1 = fresh_dir("offer1"), d2 = fresh_dir("offer2"), file = fresh_dir("offer_file") + ".threads";
  ASSERT_EQ(run_config(config({"threads=1"}), d1, quiet()).summary.status, RunStatus::Finished);
  TrainOptions o = quiet();
  int threads_at_end = 0;
  o.on_step = [&](int64_t step, const Scalars&, bool) {
    if (step == 40) offer_threads(most);
    if (step == 60) {
      EXPECT_EQ(num_threads(), most);
    }
    if (step == 70) {
      offer_threads(0);
      set_threads(1);  // as a worker's next point starts: the file's offer comes back within 0.5 s
      std::ofstream(file) << most << "\n";
      set_thread_offer_file(file);
    }
    threads_at_end = num_threads();
    return true;
  };
  ASSERT_EQ(run_config(config({"threads=1"}), d2, o).summary.status, RunStatus::Finished);
  set_thread_offer_file("");
  offer_threads(0);
  set_threads(0);
  std::filesystem::remove(file);
  EXPECT_EQ(threads_at_end, most);
  EXPECT_EQ(slurp(d1 + "/metrics.csv"), slurp(d2 + "/metrics.csv"));
  EXPECT_EQ(final_params(d1), final_params(d2));
}

TEST(Training, ResumedRunIsBitIdentical) {
  std::string full = fresh_dir("full"), part = fresh_dir("part");
  ASSERT_EQ(run_config(config(), full, quiet()).summary.status, RunStatus::Finished);
  // Stop mid-way through the second stage (not on a checkpoint or log step), then resume.
  TrainOptions stop = quiet();
  stop.stop_after = 93;
  RunResult first = run_config(config(), part, stop);
  ASSERT_EQ(first.summary.status, RunStatus::Interrupted);
  EXPECT_EQ(first.summary.steps, 93);
  TrainOptions resume = quiet();
  resume.resume = true;
  RunResult second = run_config(config(), part, resume);
  ASSERT_EQ(second.summary.status, RunStatus::Finished) << second.summary.message;
  EXPECT_EQ(second.summary.steps, 120);
  EXPECT_EQ(slurp(full + "/metrics.csv"), slurp(part + "/metrics.csv"));
  EXPECT_EQ(final_params(full), final_params(part));
}

TEST(Training, StopOnACheckpointStepResumesBitIdenticallyTwice) {
  // Step 40 is also a periodic checkpoint step: the stop must not write it twice, and a second
  // interruption after resuming must still continue exactly.
  std::string full = fresh_dir("full2"), part = fresh_dir("part2");
  ASSERT_EQ(run_config(config(), full, quiet()).summary.status, RunStatus::Finished);
  TrainOptions stop = quiet();
  stop.stop_after = 40;
  ASSERT_EQ(run_config(config(), part, stop).summary.status, RunStatus::Interrupted);
  TrainOptions again = quiet();
  again.resume = true;
  again.stop_after = 101;
  ASSERT_EQ(run_config(config(), part, again).summary.status, RunStatus::Interrupted);
  TrainOptions resume = quiet();
  resume.resume = true;
  ASSERT_EQ(run_config(config(), part, resume).summary.status, RunStatus::Finished);
  EXPECT_EQ(slurp(full + "/metrics.csv"), slurp(part + "/metrics.csv"));
  EXPECT_EQ(final_params(full), final_params(part));
  // Periodic checkpoints keep rotating across sessions (keep_checkpoints = 3 by default).
  int periodic = 0;
  for (auto& e : fs::directory_iterator(part + "/checkpoints"))
    periodic += e.path().filename().string().rfind("step", 0) == 0;
  EXPECT_LE(periodic, 3);
}

TEST(Training, ExtraReferenceColumnsSurviveResumes) {
  std::string dir = fresh_dir("extra_refs");
  TrainOptions stop = quiet();
  stop.stop_after = 50;
  stop.extra_references = {{"ref.limit", 1.5}};
  ASSERT_EQ(run_config(config(), dir, stop).summary.status, RunStatus::Interrupted);
  TrainOptions again = quiet();  // as `ihlab train --resume` does: no extra references given
  again.resume = true;
  again.stop_after = 90;
  ASSERT_EQ(run_config(config(), dir, again).summary.status, RunStatus::Interrupted);
  TrainOptions resume = quiet();  // a second resume still finds them in the checkpoint
  resume.resume = true;
  ASSERT_EQ(run_config(config(), dir, resume).summary.status, RunStatus::Finished);
  for (double v : read_metrics(dir + "/metrics.csv").column("ref.limit")) EXPECT_EQ(v, 1.5);
}

// Bit for bit, NaN included (a NaN is not equal to itself).
bool same_bits(const MetricsTable& a, const MetricsTable& b) {
  if (a.columns != b.columns || a.rows.size() != b.rows.size()) return false;
  for (size_t i = 0; i < a.rows.size(); ++i) {
    if (a.rows[i].size() != b.rows[i].size()) return false;
    for (size_t j = 0; j < a.rows[i].size(); ++j)
      if (std::bit_cast<uint64_t>(a.rows[i][j]) != std::bit_cast<uint64_t>(b.rows[i][j])) return false;
  }
  return true;
}

// What train() returns is what it wrote: the caller never needs to read the directory back.
TEST(Training, ReturnedResultsEqualTheFiles) {
  std::string dir = fresh_dir("in_memory");
  TrainOptions stop = quiet();
  stop.stop_after = 70;
  stop.command = "ihlab train x.toml";
  RunResult first = run_config(config(), dir, stop);
  ASSERT_EQ(first.summary.status, RunStatus::Interrupted);
  EXPECT_TRUE(same_bits(first.metrics, read_metrics(dir + "/metrics.csv")));
  TrainOptions resume = quiet();
  resume.resume = true;
  RunResult r = run_config(config(), dir, resume);
  ASSERT_EQ(r.summary.status, RunStatus::Finished);
  MetricsTable file = read_metrics(dir + "/metrics.csv");
  EXPECT_TRUE(same_bits(r.metrics, file));  // the first session's rows included
  EXPECT_EQ(r.metrics.rows.size(), file.rows.size());
  EXPECT_TRUE(std::isnan(r.metrics.column("grad_norm").front()));  // row 0: no update yet
  EXPECT_EQ(summary_to_json(r.summary), read_json(dir + "/summary.json"));
  EXPECT_EQ(r.spec.config, config());
  RunSummary back = read_summary(dir);
  EXPECT_EQ(back.status, RunStatus::Finished);
  EXPECT_EQ(back.steps, 120);
  EXPECT_EQ(back.checkpoint, r.summary.checkpoint);
  EXPECT_EQ(summary_to_json(back), summary_to_json(r.summary));
}

TEST(Training, InterruptSavesACheckpointAndResumes) {
  std::string dir = fresh_dir("sigint");
  request_interrupt();  // as if Ctrl-C arrived before the first step ended
  RunResult r = run_config(config(), dir, quiet());
  clear_interrupt();
  EXPECT_EQ(r.summary.status, RunStatus::Interrupted);
  EXPECT_EQ(r.summary.steps, 1);
  EXPECT_TRUE(fs::exists(r.summary.checkpoint));
  TrainOptions resume = quiet();
  resume.resume = true;
  EXPECT_EQ(run_config(config(), dir, resume).summary.status, RunStatus::Finished);
}

TEST(Training, DivergenceStopsWithAClearMessageAndKeepsAGoodCheckpoint) {
  std::string dir = fresh_dir("diverge");
  RunResult r =
      run_config(config({"stages.0.optimizer=\"sgd\"", "stages.0.lr=1e12", "stages.0.steps=200"}), dir, quiet());
  EXPECT_EQ(r.summary.status, RunStatus::Diverged);
  EXPECT_NE(r.summary.message.find("diverged at step"), std::string::npos) << r.summary.message;
  auto summary = read_json(dir + "/summary.json");
  EXPECT_EQ(summary["status"], "diverged");
}

TEST(Training, RefusesToOverwriteARunAndRefusesAChangedConfigOnResume) {
  std::string dir = fresh_dir("twice");
  ASSERT_EQ(run_config(config({"stages.1.steps=5"}), dir, quiet()).summary.status, RunStatus::Finished);
  try {
    run_config(config({"stages.1.steps=5"}), dir, quiet());
    FAIL() << "second run into the same directory was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--resume"), std::string::npos) << e.what();
  }
  TrainOptions resume = quiet();
  resume.resume = true;
  try {
    run_config(config({"stages.1.steps=6"}), dir, resume);
    FAIL() << "resume with a different config was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("different configuration"), std::string::npos) << e.what();
  }
}

TEST(Training, GradientFlowStageLowersTheLoss) {
  std::string dir = fresh_dir("flow");
  RunResult r =
      run_config(config({"data.mode=\"fixed\"", "data.train_size=64", "data.batch_size=0", "stages.0.method=\"flow\"",
                         "stages.0.time=5.0", "stages.0.lr=1.0", "stages.0.rtol=1e-5", "stages.1.steps=1"}),
                 dir, quiet());
  ASSERT_EQ(r.summary.status, RunStatus::Finished) << r.summary.message;
  MetricsTable m = read_metrics(dir + "/metrics.csv");
  auto t = m.column("t");
  auto loss = m.column("loss");
  // The flow stage reaches exactly t = 5 and the loss falls along it.
  double t_end = 0, loss_at_end = 0;
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i] == t[i]) t_end = t[i], loss_at_end = loss[i];
  EXPECT_DOUBLE_EQ(t_end, 5.0);
  EXPECT_LT(loss_at_end, loss.front());
}

// stop_loss ends a stage at the first step whose loss is at or below it; the next stage then runs,
// and a run interrupted before that step and resumed stops at the same step.
TEST(Training, StopLossEndsAStageEarlyAndResumesBitIdentically) {
  const std::vector<std::string> o = {"data.mode=\"fixed\"",      "data.train_size=64",   "data.batch_size=0",
                                      "stages.0.method=\"flow\"", "stages.0.time=1000.0", "stages.0.lr=1.0",
                                      "stages.0.rtol=1e-5",       "log.every=1",          "stages.1.steps=3"};
  std::string plain = fresh_dir("stop_plain");
  ASSERT_EQ(run_config(config(o), plain, quiet()).summary.status, RunStatus::Finished);
  MetricsTable m0 = read_metrics(plain + "/metrics.csv");
  // A level the flow reaches well before t = 1000: a third of the way down from the start.
  auto stage0 = m0.column("stage"), loss0 = m0.column("loss");
  double end = loss0.front();
  for (size_t i = 0; i < stage0.size(); ++i)
    if (stage0[i] == 0) end = loss0[i];
  const double start = loss0.front();
  const double level = end + (start - end) * 2.0 / 3.0;
  std::vector<std::string> os = o;
  os.push_back(fmt::format("stages.0.stop_loss={}", level));
  std::string full = fresh_dir("stop_full"), part = fresh_dir("stop_part");
  RunResult a = run_config(config(os), full, quiet());
  ASSERT_EQ(a.summary.status, RunStatus::Finished) << a.summary.message;
  MetricsTable m = read_metrics(full + "/metrics.csv");
  auto stage = m.column("stage"), t = m.column("t"), loss = m.column("loss");
  size_t last0 = 0;  // the last row of stage 0
  for (size_t i = 0; i < stage.size(); ++i)
    if (stage[i] == 0) last0 = i;
  EXPECT_LE(loss[last0], level);
  EXPECT_GT(loss[last0 - 1], level);  // it stopped at the first step below the level
  EXPECT_LT(t[last0], 1000.0);
  EXPECT_EQ(stage.back(), 1);  // the next stage ran
  EXPECT_LT(a.summary.steps, int64_t(m0.rows.size()) - 1);
  TrainOptions stop = quiet();
  stop.stop_after = int64_t(last0) - 2;
  ASSERT_EQ(run_config(config(os), part, stop).summary.status, RunStatus::Interrupted);
  TrainOptions resume = quiet();
  resume.resume = true;
  RunResult b = run_config(config(os), part, resume);
  ASSERT_EQ(b.summary.status, RunStatus::Finished) << b.summary.message;
  EXPECT_EQ(a.summary.steps, b.summary.steps);
  EXPECT_EQ(slurp(full + "/metrics.csv"), slurp(part + "/metrics.csv"));
  EXPECT_EQ(final_params(full), final_params(part));
}

TEST(Training, BadConfigNamesKeyValueAndAllowed) {
  try {
    config({"stages.0.optimizer=\"adagrad\""});
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("stages[0].optimizer"), std::string::npos) << m;
    EXPECT_NE(m.find("adagrad"), std::string::npos) << m;
    EXPECT_NE(m.find("adamw"), std::string::npos) << m;
  }
  try {
    config({"task.vocabb=3"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("task.vocab"), std::string::npos) << e.what();
  }
  try {
    config({"task.vocab=1"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ihlab
