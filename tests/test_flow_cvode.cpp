// The CVODE BDF gradient-flow integrator: accuracy on closed-form stiff problems, far fewer
// derivative evaluations than Dormand-Prince there, and a trainer run with cvode-bdf stages that
// is bit-identical after a stop and resume (a fresh solver per segment, see train/flow_cvode.h).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/config.h"
#include "io/run_dir.h"
#include "train/flow_cvode.h"
#include "train/run.h"
#include "train/run_schema.h"
#include "circuit_test_heads.h"
#include "scratch_dir.h"

namespace ihlab {
namespace {
namespace fs = std::filesystem;

TEST(FlowCvode, StiffLinearSystemMatchesClosedFormWithFewEvaluations) {
  // y' = -diag(1, 1e4) y: the fast direction dies at once, then limits an explicit method's step.
  int64_t evals = 0;
  Derivative f = [&](double, const std::vector<double>& y, std::vector<double>& dy) {
    ++evals;
    dy[0] = -y[0];
    dy[1] = -1e4 * y[1];
  };
  FlowConfig cfg;
  cfg.rtol = 1e-8, cfg.atol = 1e-12;
  FlowState s;
  s.y = {1.0, 1.0};
  CvodeBdf bdf(f, cfg);
  for (int64_t k = 0; s.t < 10.0; ++k) bdf.integrate(s, cvode_segment_end(k, 0.01, 10, 10.0));
  EXPECT_EQ(s.t, 10.0);
  EXPECT_NEAR(s.y[0], std::exp(-10.0), 1e-7);
  EXPECT_NEAR(s.y[1], 0.0, 1e-9);
  const int64_t bdf_evals = evals;
  evals = 0;
  FlowState e;
  e.y = {1.0, 1.0};
  DormandPrince dp(f, cfg);
  dp.integrate(e, 10.0);
  EXPECT_NEAR(e.y[0], std::exp(-10.0), 1e-7);
  std::printf("y' = -diag(1, 1e4) y to t = 10: cvode-bdf %lld evaluations, dopri5 %lld\n", (long long)bdf_evals,
              (long long)evals);
  EXPECT_LT(bdf_evals * 5, evals);
}

TEST(FlowCvode, SegmentGridIsGeometricAndCapped) {
  EXPECT_DOUBLE_EQ(cvode_segment_end(0, 0.01, 10, 100), 0.01);
  EXPECT_DOUBLE_EQ(cvode_segment_end(10, 0.01, 10, 100), 0.1);
  EXPECT_DOUBLE_EQ(cvode_segment_end(50, 0.01, 10, 100), 100);
}

TEST(FlowCvode, ErrorsFromTheDerivativeComeThrough) {
  Derivative f = [](double, const std::vector<double>&, std::vector<double>&) { fail("boom in the model"); };
  FlowState s;
  s.y = {1.0};
  CvodeBdf bdf(f, FlowConfig{});
  try {
    bdf.integrate(s, 1.0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("boom"), std::string::npos);
  }
}

const std::string kRun = std::string(R"(
name = "cvode"
seed = 3
dtype = "float64"
threads = 1
[task]
name = "mixed-target"
length = 8
[model]
name = "attention-circuit"
sigma_init = 0.1
)") + circuit_test::six_parameter_heads() +
                         R"(
[data]
mode = "fixed"
train_size = 200
val_size = 50
batch_size = 0
[log]
every = 1
checkpoint_every = 7
attention_snapshots = 0
head_scores = 0
[[stages]]
name = "layer1"
train = ["layer1"]
objective = "copy-previous"
method = "flow"
integrator = "cvode-bdf"
lr = 1.0
time = 30.0
[[stages]]
name = "layer2"
train = ["layer2"]
method = "flow"
integrator = "cvode-bdf"
lr = 1.0
time = 300.0
)";

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(FlowCvode, TrainerRunResumesBitIdentically) {
  auto cfg = run_schema().resolve(parse_toml_string(kRun, "cvode"));
  auto dir = [](const std::string& n) { return test::scratch_dir("ihlab_test_cvode_" + n); };
  std::string full = dir("full"), part = dir("part");
  TrainOptions quiet;
  quiet.quiet = true;
  RunResult a = run_config(cfg, full, quiet);
  ASSERT_EQ(a.summary.status, RunStatus::Finished) << a.summary.message;
  // Stop in the middle of the second stage, away from a checkpoint step, then resume.
  TrainOptions stop = quiet;
  stop.stop_after = a.summary.steps - 9;
  ASSERT_EQ(run_config(cfg, part, stop).summary.status, RunStatus::Interrupted);
  TrainOptions resume = quiet;
  resume.resume = true;
  RunResult b = run_config(cfg, part, resume);
  ASSERT_EQ(b.summary.status, RunStatus::Finished) << b.summary.message;
  EXPECT_EQ(a.summary.steps, b.summary.steps);
  EXPECT_EQ(slurp(full + "/metrics.csv"), slurp(part + "/metrics.csv"));
  // The flow learned: the loss fell, and flow_evals counts gradient evaluations.
  MetricsTable m = read_metrics(full + "/metrics.csv");
  EXPECT_LT(m.column("val_task_loss").back(), 0.5 * m.column("val_task_loss").front());
  EXPECT_GT(m.column("flow_evals").back(), 10);
  fs::remove_all(full);
  fs::remove_all(part);
}

}  // namespace
}  // namespace ihlab

namespace ihlab {
namespace {

TEST(FlowCvode, AnUnknownStageObjectiveIsRefusedBeforeAnythingRuns) {
  nlohmann::json raw = parse_toml_string(kRun, "cvode");
  apply_override(raw, "stages.1.objective=\"copy-next\"");
  auto cfg = run_schema().resolve(raw);
  const std::string d = test::scratch_dir("ihlab_test_cvode_bad");
  TrainOptions quiet;
  quiet.quiet = true;
  try {
    run_config(cfg, d, quiet);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("stages[1]"), std::string::npos) << m;
    EXPECT_NE(m.find("copy-next"), std::string::npos) << m;
    EXPECT_NE(m.find("copy-previous"), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(d + "/metrics.csv"));
  fs::remove_all(d);
}

}  // namespace
}  // namespace ihlab
