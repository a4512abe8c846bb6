// musat2025-bridge in its --quick form with its negative controls: it runs end to end, every claim
// a quick run can judge holds (the others are declared with a --quick reason), both controls fail
// the claim they must fail, and the run directory holds the bridge measures and the transformed
// weights. (Slow under sanitizers, so left out of that run.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "io/run_dir.h"
#include "reproduce/reproduction.h"

namespace ihlab {
namespace {
namespace fs = std::filesystem;

TEST(Reproduce, Musat2025BridgeQuick) {
  ReproduceOptions o;
  o.quick = true, o.quiet = true, o.controls = true;
  const std::string dir =
      (fs::temp_directory_path() / ("ihlab_test_repro_musat_bridge_" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  ReproResult r = run_reproduction("musat2025-bridge", dir, o);
  ASSERT_EQ(r.run.summary.status, RunStatus::Finished) << r.run.summary.message;
  int evaluated = 0;
  for (auto& c : r.claims) {
    if (!c.evaluated) {
      EXPECT_NE(c.reason.find("--quick"), std::string::npos) << c.name << ": " << c.reason;
      continue;
    }
    ++evaluated;
    EXPECT_TRUE(c.pass) << c.name << " measured " << c.measured << " " << c.detail;
  }
  EXPECT_GE(evaluated, 2);  // the loss drop and the order at 0.5
  ASSERT_EQ(r.controls.size(), 2u);
  for (auto& c : r.controls) EXPECT_TRUE(c.ok) << "control " << c.name << " " << c.message;
  EXPECT_EQ(r.all_pass(), !::testing::Test::HasFailure());
  // The measures of every run, and the weights in the paper's transformed form.
  EXPECT_TRUE(fs::exists(dir + "/bridge.csv"));
  EXPECT_TRUE(fs::exists(dir + "/runs/mse-gd-n4/bridge.csv"));
  MetricsTable b = read_metrics(dir + "/bridge.csv");
  EXPECT_GT(b.rows.size(), 10u);
  auto summary = read_json(dir + "/summary.json");
  ASSERT_TRUE(summary.contains("weights")) << "no transformed weights in summary.json";
  const auto& w = summary["weights"]["ce-gd-n4"];
  EXPECT_EQ(w["alpha_positions"]["rows"], 9);  // 2N + 1 positions (N = 4)
  EXPECT_EQ(w["beta_tokens"]["rows"], 32);     // items + labels
  EXPECT_EQ(w["gamma_tokens"]["cols"], 32);
  EXPECT_TRUE(fs::exists(dir + "/weights/ce-gd-n4_gamma_tokens.csv"));
  // gamma~_3 in bridge.csv is the trace of the exported gamma block (same final checkpoint).
  double trace = 0;
  for (int i = 0; i < 32; ++i) trace += w["gamma_tokens"]["values"][i][i].get<double>();
  EXPECT_NEAR(trace, b.column("gamma3").back(), 1e-3 * std::abs(trace) + 1e-6);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ihlab
