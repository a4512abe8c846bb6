// Claims as data (reproduce/claims.h): the generated expected text, the verdict of one run, the
// verdict over several runs (seeds) with its interval and rule, negative controls, and the
// declarations of every registered reproduction.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "reproduce/claims.h"
#include "reproduce/reproduction.h"

namespace ihlab {
namespace {

TEST(Claims, ConditionsCompareAndSayWhat) {
  EXPECT_TRUE(lt("x", 1).holds(0.5));
  EXPECT_FALSE(lt("x", 1).holds(1));
  EXPECT_TRUE(le("x", 1).holds(1));
  EXPECT_TRUE(gt("x", 1).holds(2));
  EXPECT_TRUE(ge("x", 1).holds(1));
  EXPECT_TRUE(within("x", 1, 2).holds(2));
  EXPECT_FALSE(within("x", 1, 2).holds(2.01));
  EXPECT_TRUE(yes("found").holds(1));
  EXPECT_FALSE(yes("found").holds(0));
  for (auto c : {lt("x", 1), le("x", 1), gt("x", 1), ge("x", 1), within("x", 1, 2), yes("x")})
    EXPECT_FALSE(c.holds(NAN)) << c.text();  // a missing measurement never holds
  ClaimDef d{"slope", {within("log-log slope", 1.9, 2.1), yes("every run dropped")}, "paper"};
  EXPECT_EQ(d.expected(), "log-log slope in [1.9, 2.1]; and every run dropped");
  EXPECT_EQ(lt("loss / ln V", 0.1).text(), "loss / ln V < 0.1");
}

TEST(Claims, OneRunVerdict) {
  ClaimDef d{"drop", {lt("final / plateau", 0.1), yes("t_ICL found")}, "paper"};
  Claim held = judge(d, {{0.05, 1}, "ok"});
  EXPECT_TRUE(held.evaluated);
  EXPECT_TRUE(held.pass);
  EXPECT_EQ(held.measured, 0.05);
  EXPECT_EQ(held.basis, "paper");
  EXPECT_FALSE(judge(d, {{0.05, 0}, ""}).pass);  // every condition must hold
  EXPECT_FALSE(judge(d, {{0.5, 1}, ""}).pass);
  Claim skipped = judge(d, not_evaluated("too short"));
  EXPECT_FALSE(skipped.evaluated);
  EXPECT_EQ(skipped.reason, "too short");
  EXPECT_TRUE(std::isnan(skipped.measured));
  EXPECT_THROW(judge(d, {{0.05}, ""}), Error);  // one value per condition
}

// Synthetic per-seed values: the interval is the Student-t 95% interval of the mean, and each
// rule decides from what it says it uses.
TEST(Claims, SeveralRunsAggregate) {
  const std::vector<double> v = {1.9, 2.0, 2.1, 2.05, 1.95};
  std::vector<Measured> runs;
  for (double x : v) runs.push_back({{x}, ""});
  // mean 2, sample sd sqrt(0.025 / 4), t(0.975, 4) = 2.776445
  const double half = 2.776445 * std::sqrt(0.025 / 4) / std::sqrt(5.0);
  ClaimDef wide{"slope", {within("slope", 1.8, 2.2)}, "paper"};
  Claim c = judge_runs(wide, runs);
  EXPECT_TRUE(c.evaluated);
  EXPECT_TRUE(c.pass);
  EXPECT_NEAR(c.measured, 2.0, 1e-12);
  EXPECT_NEAR(c.lo, 2.0 - half, 1e-5);
  EXPECT_NEAR(c.hi, 2.0 + half, 1e-5);
  EXPECT_EQ(c.holding, 1.0);
  EXPECT_EQ(c.seed_values, v);
  EXPECT_EQ(c.rule, "holds in every run");

  ClaimDef narrow{"slope", {within("slope", 1.95, 2.2)}, "paper"};  // 1.9 falls outside
  EXPECT_FALSE(judge_runs(narrow, runs).pass);
  EXPECT_DOUBLE_EQ(judge_runs(narrow, runs).holding, 0.8);
  narrow.rule = seeds_at_least(0.8);
  EXPECT_TRUE(judge_runs(narrow, runs).pass);
  narrow.rule = seeds_at_least(0.9);
  EXPECT_FALSE(judge_runs(narrow, runs).pass);
  narrow.rule = seeds_interval();  // lo = 1.90 < 1.95
  EXPECT_FALSE(judge_runs(narrow, runs).pass);
  wide.rule = seeds_interval();
  EXPECT_TRUE(judge_runs(wide, runs).pass);

  // A run that cannot judge is left out of the verdict and shows as NaN; none at all: not evaluated.
  runs[2] = not_evaluated("diverged");
  Claim partial = judge_runs(wide, runs);
  EXPECT_TRUE(partial.evaluated);
  EXPECT_TRUE(std::isnan(partial.seed_values[2]));
  EXPECT_NE(partial.detail.find("diverged"), std::string::npos);
  EXPECT_FALSE(judge_runs(wide, {not_evaluated("a"), not_evaluated("b")}).evaluated);
  // One run is the one-run verdict.
  EXPECT_TRUE(judge_runs(wide, {{{2.0}, ""}}).seed_values.empty());
}

TEST(Claims, ControlsMustFailWhatTheyName) {
  Control ctl{"one-layer", "no induction head", {"model.layers=1"}, {}, {"drop", "order"}};
  auto claim = [](const std::string& name, bool evaluated, bool pass) {
    Claim c{name, "", 0.0, pass, ""};
    c.evaluated = evaluated;
    return c;
  };
  EXPECT_TRUE(judge_control(ctl, {claim("drop", true, false), claim("order", true, false)}).ok);
  ControlResult held = judge_control(ctl, {claim("drop", true, true), claim("order", true, false)});
  EXPECT_FALSE(held.ok);
  EXPECT_EQ(held.failed, std::vector<std::string>{"order"});
  ControlResult unjudged = judge_control(ctl, {claim("drop", false, false), claim("order", true, false)});
  EXPECT_FALSE(unjudged.ok);  // a control that cannot judge a claim shows nothing
  EXPECT_EQ(unjudged.not_evaluated, std::vector<std::string>{"drop"});
  EXPECT_THROW(judge_control(ctl, {claim("drop", true, false)}), Error);  // "order" is no claim
  nlohmann::json j = controls_json({held});
  EXPECT_EQ(j[0]["held"], nlohmann::json::array({"drop"}));
  EXPECT_EQ(j[0]["ok"], false);
}

// Seeds drop in: what each seed's run measured, judged per declared claim of the mode.
TEST(Claims, JudgeSeedsUsesTheDeclarations) {
  const Reproduction& smoke = find_reproduction("smoke");
  std::vector<std::map<std::string, Measured>> seeds;
  for (double acc : {1.0, 0.97, 0.99})
    seeds.push_back({{"copies the previous token", {{acc}, ""}},
                     {"loss far below uniform", {{0.01}, ""}},
                     {"attention bias peaks on offset 1", {{1}, ""}}});
  seeds[1].erase("attention bias peaks on offset 1");  // not measured by seed 1
  std::vector<Claim> c = judge_seeds(smoke, "paper", seeds);
  ASSERT_EQ(c.size(), smoke.claims.size());
  EXPECT_EQ(c[0].seed_values, (std::vector<double>{1.0, 0.97, 0.99}));
  EXPECT_TRUE(c[0].pass);
  EXPECT_EQ(c[0].holding, 1.0);
  EXPECT_LT(c[0].lo, c[0].measured);
  EXPECT_TRUE(std::isnan(c[2].seed_values[1]));
  EXPECT_TRUE(c[2].pass);  // judged by the two seeds that measured it
}

// Every reproduction declares its claims once, with a threshold basis, and at least one negative
// control whose must-fail claims it declares; no claim is bookkeeping (a file written).
TEST(Claims, EveryReproductionDeclaresClaimsAndControls) {
  for (auto& r : reproduction_registry()) {
    SCOPED_TRACE(r.name);
    ASSERT_FALSE(r.claims.empty());
    std::set<std::string> names;
    for (auto& c : r.claims) {
      EXPECT_FALSE(c.conditions.empty()) << c.name;
      EXPECT_FALSE(c.basis.empty()) << c.name;
      EXPECT_EQ(c.expected().find("written"), std::string::npos) << c.name;
      EXPECT_TRUE(names.insert(c.name + "/" + c.compat).second) << "declared twice: " << c.name;
    }
    ASSERT_FALSE(r.controls.empty());
    for (auto& ctl : r.controls) {
      EXPECT_FALSE(ctl.must_fail.empty()) << ctl.name;
      for (auto& n : ctl.must_fail) EXPECT_NO_THROW(r.claim(n, "paper")) << ctl.name << ": " << n;
    }
  }
}

}  // namespace
}  // namespace ihlab
