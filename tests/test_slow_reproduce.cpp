// The reproductions in their --quick form: each runs end to end, writes its run directory and
// claims, and every claim holds. (Slow under sanitizers, so left out of that run.)
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "io/run_dir.h"
#include "reproduce/reproduction.h"
#include "scratch_dir.h"

namespace ihlab {
namespace {
namespace fs = std::filesystem;

std::string fresh_dir(const std::string& name) { return test::scratch_dir("ihlab_test_repro_" + name); }

// Runs the --quick form with its negative controls: every claim carries `evaluated`, every
// evaluated claim holds (claims a quick run is too short for are declared so, with the reason,
// and reported as not evaluated), and every control fails the claims it must fail.
// recheck: also --evaluate-only --controls on the finished directory, which reads every run back
// (a control made only of variant runs holds no config.toml of its own) and must judge the same.
void expect_all_claims_hold(const std::string& name, const std::string& compat = "paper", bool recheck = false) {
  ReproduceOptions o;
  o.quick = true;
  o.quiet = true;
  o.compat = compat;
  o.controls = true;
  std::string dir = fresh_dir(name + compat);
  ReproResult r = run_reproduction(name, dir, o);
  ASSERT_EQ(r.run.summary.status, RunStatus::Finished) << r.run.summary.message;
  ASSERT_FALSE(r.claims.empty());
  int evaluated = 0;
  for (auto& c : r.claims) {
    if (!c.evaluated) {
      EXPECT_NE(c.reason.find("--quick"), std::string::npos) << name << ": " << c.name << ": " << c.reason;
      continue;
    }
    ++evaluated;
    EXPECT_TRUE(c.pass) << name << ": " << c.name << " measured " << c.measured << " " << c.detail;
  }
  EXPECT_GT(evaluated, 0);
  ASSERT_FALSE(r.controls.empty()) << name << " declares no negative control";
  for (auto& c : r.controls)
    EXPECT_TRUE(c.ok) << name << ": control " << c.name << " " << c.message << "; failed " << c.failed.size() << " of "
                      << c.must_fail.size() << " it must fail (" << c.not_evaluated.size() << " not evaluated)";
  EXPECT_EQ(r.all_pass(), !::testing::Test::HasFailure());
  auto summary = read_json(dir + "/summary.json");
  EXPECT_EQ(summary["claims"].size(), r.claims.size());
  for (auto& c : summary["claims"]) EXPECT_TRUE(c.contains("evaluated")) << c.dump();
  ASSERT_TRUE(summary.contains("controls"));
  EXPECT_EQ(summary["controls"].size(), r.controls.size());
  for (auto& c : summary["controls"]) EXPECT_TRUE(c["ok"].get<bool>()) << c.dump();
  EXPECT_EQ(summary["reproduction"]["name"], name);
  EXPECT_NE(summary["reproduction"]["command"].get<std::string>().find("--quick"), std::string::npos);
  EXPECT_NE(summary["reproduction"]["command"].get<std::string>().find("--controls"), std::string::npos);
  if (recheck) {
    o.evaluate_only = true;
    ReproResult again = run_reproduction(name, dir, o);
    ASSERT_EQ(again.controls.size(), r.controls.size());
    for (size_t i = 0; i < r.controls.size(); ++i)
      EXPECT_EQ(again.controls[i].failed, r.controls[i].failed) << name << ": control " << r.controls[i].name;
    EXPECT_EQ(again.all_pass(), r.all_pass());
  }
  fs::remove_all(dir);
}

TEST(Reproduce, Smoke) { expect_all_claims_hold("smoke"); }
TEST(Reproduce, Chen2024ThreeStagePaperMode) { expect_all_claims_hold("chen2024-three-stage"); }
TEST(Reproduce, Chen2024ThreeStageCodeMode) { expect_all_claims_hold("chen2024-three-stage", "code"); }
TEST(Reproduce, Chen2024Joint) { expect_all_claims_hold("chen2024-joint"); }
TEST(Reproduce, Chen2024Full) { expect_all_claims_hold("chen2024-full"); }
TEST(Reproduce, Chen2024Generalization) { expect_all_claims_hold("chen2024-generalization"); }
TEST(Reproduce, Olsson2022RepeatedTokens) { expect_all_claims_hold("olsson2022-repeated-tokens"); }
TEST(Reproduce, Edelman2024IclMc) { expect_all_claims_hold("edelman2024-icl-mc"); }
TEST(Reproduce, Reddy2023Bursty) { expect_all_claims_hold("reddy2023-bursty"); }
TEST(Reproduce, Wang2024MixedTarget) { expect_all_claims_hold("wang2024-mixed-target"); }
TEST(Reproduce, Wang2024PlateauScaling) { expect_all_claims_hold("wang2024-plateau-scaling"); }
TEST(Reproduce, Wang2024LengthStrength) { expect_all_claims_hold("wang2024-length-strength", "paper", true); }
TEST(Reproduce, Wang2024AdamMultiplateau) { expect_all_claims_hold("wang2024-adam-multiplateau"); }
TEST(Reproduce, Musat2025Emergence) { expect_all_claims_hold("musat2025-emergence"); }
TEST(Reproduce, Musat2025FullScaling) { expect_all_claims_hold("musat2025-full-scaling"); }
TEST(Reproduce, Musat2025Scaling) { expect_all_claims_hold("musat2025-scaling"); }
TEST(Reproduce, Musat2025Subspace) { expect_all_claims_hold("musat2025-subspace"); }

// A control that shows the effect it must not show fails the reproduction: smoke's "untrained"
// control judged on the trained main run's claims (which all hold).
TEST(Reproduce, AControlThatHoldsFailsTheReproduction) {
  ReproduceOptions o;
  o.quick = true, o.quiet = true;
  std::string dir = fresh_dir("control_holds");
  ReproResult res = run_reproduction("smoke", dir, o);
  ASSERT_TRUE(res.all_pass());
  const Reproduction& smoke = find_reproduction("smoke");
  ASSERT_EQ(smoke.controls.size(), 1u);
  ControlResult judged = judge_control(smoke.controls[0], res.claims);
  EXPECT_FALSE(judged.ok);
  EXPECT_TRUE(judged.failed.empty());
  res.controls = {judged};
  EXPECT_FALSE(res.all_pass());
  fs::remove_all(dir);
}

TEST(Reproduce, EvaluateOnlyRechecksAFinishedRun) {
  ReproduceOptions o;
  o.quick = true, o.quiet = true;
  std::string dir = fresh_dir("evaluate_only");
  ReproResult first = run_reproduction("smoke", dir, o);
  ASSERT_EQ(first.run.summary.status, RunStatus::Finished);
  auto metrics_before = fs::last_write_time(dir + "/metrics.csv");
  o.evaluate_only = true;
  ReproResult again = run_reproduction("smoke", dir, o);
  EXPECT_EQ(again.claims.size(), first.claims.size());
  EXPECT_EQ(again.claims[0].measured, first.claims[0].measured);
  EXPECT_EQ(fs::last_write_time(dir + "/metrics.csv"), metrics_before);  // nothing was trained
  EXPECT_THROW(run_reproduction("smoke", fresh_dir("evaluate_only_missing"), o), Error);
}

// --seeds K: the whole reproduction again at seeds main + 1 .. main + K - 1, each an ordinary
// reproduction directory runs/seed-<s>/ with its own claims, and the main directory's claims are
// judged over all K: per-seed values equal to the seed runs' own, the fraction holding, an
// interval. A rerun reads every seed back instead of training it again.
TEST(Reproduce, SeedsRunTheWholeReproductionAndJudgeOverThem) {
  ReproduceOptions o;
  o.quick = true, o.quiet = true, o.seeds = 3;
  std::string dir = fresh_dir("seeds");
  ReproResult r = run_reproduction("smoke", dir, o);
  ASSERT_EQ(r.run.summary.status, RunStatus::Finished) << r.run.summary.message;
  EXPECT_EQ(r.seeds, 3);
  EXPECT_TRUE(r.seeds_complete);
  ASSERT_FALSE(r.claims.empty());
  auto summary = read_json(dir + "/summary.json");
  ASSERT_EQ(summary["seeds"]["runs"].size(), 2u);
  const int64_t s0 = summary["seeds"]["main_seed"].get<int64_t>();
  const std::string second = "seed-" + std::to_string(s0 + 2);
  EXPECT_EQ(summary["seeds"]["runs"][1]["dir"], "runs/" + second);
  EXPECT_NE(summary["reproduction"]["command"].get<std::string>().find("--seeds 3"), std::string::npos);
  // The third seed as a reproduction of its own gives the values the judgement over seeds used.
  ReproduceOptions alone;
  alone.quick = true, alone.quiet = true, alone.overrides = {"seed=" + std::to_string(s0 + 2)};
  ReproResult two = run_reproduction("smoke", fresh_dir("seed2_alone"), alone);
  auto seed2 = read_json(dir + "/runs/" + second + "/summary.json");
  for (size_t i = 0; i < r.claims.size(); ++i) {
    const Claim& c = r.claims[i];
    ASSERT_EQ(c.seed_values.size(), 3u) << c.name;
    EXPECT_EQ(c.seed_values[2], two.claims[i].measured) << c.name;
    EXPECT_EQ(seed2["claims"][i]["measured"].get<double>(), two.claims[i].measured) << c.name;
    EXPECT_EQ(c.seed_values[0], read_json(dir + "/summary.json")["measured"][c.name]["values"][0].get<double>());
    EXPECT_FALSE(c.rule.empty());
    EXPECT_GE(c.holding, 0.0);
    EXPECT_LE(c.lo, c.measured);
    EXPECT_GE(c.hi, c.measured);
  }
  // The seeds differ: the per-seed values of the loss claim are not all equal.
  const Claim& loss = r.claims[1];
  ASSERT_EQ(loss.name, "loss far below uniform");
  EXPECT_FALSE(loss.seed_values[0] == loss.seed_values[1] && loss.seed_values[1] == loss.seed_values[2]);
  const std::string first = dir + "/runs/seed-" + std::to_string(s0 + 1) + "/metrics.csv";
  auto before = fs::last_write_time(first);
  o.evaluate_only = true;
  ReproResult again = run_reproduction("smoke", dir, o);
  EXPECT_EQ(fs::last_write_time(first), before);
  ASSERT_EQ(again.claims.size(), r.claims.size());
  for (size_t i = 0; i < r.claims.size(); ++i) EXPECT_EQ(again.claims[i].seed_values, r.claims[i].seed_values);
  fs::remove_all(dir);
}

TEST(Reproduce, UnknownNameListsTheKnownOnes) {
  try {
    find_reproduction("chen2025");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chen2024-joint"), std::string::npos) << e.what();
  }
}

TEST(Reproduce, CompatCodeSwitchesTheModelMode) {
  ReproduceOptions o;
  o.compat = "code";
  auto cfg = reproduction_config(find_reproduction("chen2024-joint"), o);
  EXPECT_EQ(cfg["model"]["mode"], "code");
  EXPECT_EQ(cfg["data"]["train_size"], 9000);
  EXPECT_EQ(cfg["data"]["val_size"], 1000);
  EXPECT_EQ(cfg["stages"][0]["steps"], 50000);
}

}  // namespace
}  // namespace ihlab
