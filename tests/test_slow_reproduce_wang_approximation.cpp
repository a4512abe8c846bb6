// wang2024-approximation in its --quick form with its negative controls: IH_3 at H = 1 and 2 heads
// runs end to end, every claim a quick run can judge holds (the others are declared with a --quick
// reason), both controls fail the claims they must fail, and the run directory holds the error
// table. (Slow under sanitizers, so left out of that run.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "io/run_dir.h"
#include "reproduce/reproduction.h"
#include "scratch_dir.h"

namespace ihlab {
namespace {
namespace fs = std::filesystem;

TEST(Reproduce, Wang2024ApproximationQuick) {
  ReproduceOptions o;
  o.quick = true, o.quiet = true, o.controls = true;
  const std::string dir = test::scratch_dir("ihlab_test_repro_wang_approx");
  ReproResult r = run_reproduction("wang2024-approximation", dir, o);
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
  EXPECT_EQ(evaluated, 3);  // learned at H = n - 1, the drop from H = 1 to 2, no rise with H
  ASSERT_EQ(r.controls.size(), 2u);
  for (auto& c : r.controls) EXPECT_TRUE(c.ok) << "control " << c.name << " " << c.message;
  EXPECT_EQ(r.all_pass(), !::testing::Test::HasFailure());
  // The error table: one row per (n, H) point of the quick grid, and each point's own run.
  std::ifstream csv(dir + "/approximation.csv");
  int lines = 0;
  for (std::string line; std::getline(csv, line);) ++lines;
  EXPECT_EQ(lines, 3);  // header, ih3-h1, ih3-h2
  EXPECT_TRUE(fs::exists(dir + "/runs/ih3-h1-s0/metrics.csv"));
  EXPECT_TRUE(fs::exists(dir + "/runs/ih3-h2-s0/metrics.csv"));
  auto summary = read_json(dir + "/summary.json");
  ASSERT_TRUE(summary.contains("approximation"));
  EXPECT_EQ(summary["approximation"]["points"].size(), 2u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ihlab
