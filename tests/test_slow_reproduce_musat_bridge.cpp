// musat2025-bridge in its --quick form with its negative controls: it runs end to end, every claim
// a quick run can judge holds (the others are declared with a --quick reason), both controls fail
// the claim they must fail, and the run directory holds the bridge measures and the transformed
// weights. (Slow under sanitizers, so left out of that run.)
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "io/run_dir.h"
#include "reproduce/musat2025_bridge_tokens.h"
#include "reproduce/reproduction.h"
#include "scratch_dir.h"

namespace ihlab {
namespace {
namespace fs = std::filesystem;

TEST(Reproduce, Musat2025BridgeQuick) {
  ReproduceOptions o;
  o.quick = true, o.quiet = true, o.controls = true;
  const std::string dir = test::scratch_dir("ihlab_test_repro_musat_bridge");
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
  // Each block's one-number summary: its squared Frobenius norm on the expected band over that of
  // the cells it can use; alpha's band is the previous position among the strictly causal cells.
  const auto& a = w["alpha_positions"];
  EXPECT_EQ(a["band"], -1);
  EXPECT_EQ(a["max_band"], -1);
  double on = 0, all = 0;
  for (int r = 0; r < 9; ++r)
    for (int c = 0; c < r; ++c) {
      const double v = a["values"][r][c].get<double>();
      all += v * v;
      if (c == r - 1) on += v * v;
    }
  EXPECT_NEAR(a["share"].get<double>(), on / all, 1e-12);
  EXPECT_NEAR(a["norm"].get<double>(), std::sqrt(all), 1e-9 * std::sqrt(all));
  EXPECT_NEAR(a["chance"].get<double>(), 8.0 / 36.0, 1e-12);  // 8 of the 36 cells below the diagonal
  for (const char* k : {"beta_tokens", "gamma_tokens"}) {
    EXPECT_EQ(w[k]["band"], 0) << k;
    EXPECT_NEAR(w[k]["chance"].get<double>(), 1.0 / 32, 1e-12) << k;
  }
  // The cross-entropy run's readout is identity-like (the copy of the attended label).
  EXPECT_GT(w["gamma_tokens"]["share"].get<double>(), 5 * w["gamma_tokens"]["chance"].get<double>());
  fs::remove_all(dir);
}

TEST(MusatBridgeWeights, BandShare) {
  // [[1, 2], [3, 4]]: the diagonal holds 1 + 16 of 30; below it (col - row <= -1) only 3 is used.
  const nlohmann::json m = {{1.0, 2.0}, {3.0, 4.0}};
  auto s = musat_tokens::band_share(m, 0, 1);
  EXPECT_NEAR(s.share, 17.0 / 30.0, 1e-15);
  EXPECT_NEAR(s.chance, 0.5, 1e-15);
  EXPECT_NEAR(s.norm, std::sqrt(30.0), 1e-14);
  s = musat_tokens::band_share(m, -1, -1);
  EXPECT_NEAR(s.share, 1.0, 1e-15);
  EXPECT_NEAR(s.chance, 1.0, 1e-15);
  s = musat_tokens::band_share(m, 1, 0);  // the band lies outside the usable cells
  EXPECT_NEAR(s.share, 0.0, 1e-15);
  EXPECT_TRUE(std::isnan(musat_tokens::band_share(nlohmann::json::array({nlohmann::json::array({0.0})}), 0, 0).share));
}

}  // namespace
}  // namespace ihlab
