#pragma once
// A reproduction's claims as data: each is declared once (its name, the quantities it measures,
// their comparisons and thresholds, and where the thresholds come from), its "expected" text is
// generated from the declaration, and its verdict is a function of what a finished run measured.
//
//   declare   ClaimDef{"loss collapses", {lt("final val_loss / ln V", 0.1)}, "basis"}   (Reproduction::claims)
//   measure   ctx.claim("loss collapses", [&] { return Measured{{val / lnV}, "detail"}; })  (its evaluate)
//   judge     judge(def, measured) for one run; judge_runs(def, {per-run measured}) for seeds
//
// A run that cannot judge a claim (a --quick run too short for it, a quantity it does not log, a
// control missing the other runs the claim compares with) reports it as not evaluated, with the
// reason: neither held nor failed.
//
// Negative controls: variants of a reproduction that must not show the effect; each names the
// claims it must fail, and a control that passes one of them (or cannot judge it) makes the
// reproduction fail (`ihlab reproduce NAME --controls`).
#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/run_summary.h"

namespace ihlab {

// How a measured value is compared with its threshold. Yes: the value is a yes/no finding (1 or 0).
enum class Cmp { Lt, Le, Gt, Ge, Within, Yes };

struct Condition {
  std::string quantity{};  // what is measured, in words
  Cmp cmp = Cmp::Yes;
  double bound = NAN, upper = NAN;  // Within: bound <= value <= upper
  bool holds(double value) const;   // a NaN value never holds
  std::string text() const;         // e.g. "final val_loss / ln V < 0.1"
};
Condition lt(std::string quantity, double bound);
Condition le(std::string quantity, double bound);
Condition gt(std::string quantity, double bound);
Condition ge(std::string quantity, double bound);
Condition within(std::string quantity, double lo, double hi);
Condition yes(std::string finding);  // holds when the measured value is 1

// How a claim measured over several runs (seeds) is decided.
struct SeedRule {
  enum class Kind { Every, AtLeast, Interval };
  Kind kind = Kind::Every;
  double fraction = 1.0;  // AtLeast: the fraction of runs in which it must hold
  std::string text() const;
};
SeedRule seeds_at_least(double fraction);
SeedRule seeds_interval();  // the 95% interval of the first quantity's mean lies within its threshold

struct ClaimDef {
  std::string name;
  std::vector<Condition> conditions;  // all must hold; the first is the claim's measured quantity
  std::string basis{};                // where the thresholds come from: the paper, a measurement
  std::string quick_skip{};           // non-empty: why a --quick run is too short to judge it
  SeedRule rule{};
  std::string compat{};          // non-empty: the claim belongs to this --compat mode only ("paper", "code")
  std::string expected() const;  // the conditions' texts joined by "and"
};

// What one run measured for one claim.
struct Measured {
  std::vector<double> values;  // one per condition, in order
  std::string detail{};
  std::string not_evaluated{};  // non-empty: this run cannot judge the claim, and why
};
Measured not_evaluated(std::string why);
// summary.json "measured": {claim: {values (null for NaN), detail, not_evaluated}}: what each claim
// measured in this run, so that the claims of several runs (seeds) are judged without re-measuring.
nlohmann::json measured_to_json(const std::map<std::string, Measured>& measured);
std::map<std::string, Measured> measured_from_json(const nlohmann::json& j);
inline double yes_no(bool b) { return b ? 1.0 : 0.0; }

// The verdict of one run's measurement. Throws ihlab::Error when the number of values is not the
// number of conditions (a bug in the reproduction).
Claim judge(const ClaimDef& def, const Measured& m);
// The verdict over several runs (seeds): the first quantity per run, the fraction of runs where
// the claim holds, a Student-t 95% interval of its mean, and the verdict by def.rule over the runs
// that could judge it (not evaluated when none could). One run: judge(def, runs[0]).
Claim judge_runs(const ClaimDef& def, const std::vector<Measured>& runs);

// A negative control: a variant of the reproduction's configuration that must not show the effect.
struct Control {
  std::string name;                    // run directory DIR/runs/control-<name>/
  std::string description;             // what it changes and why the effect should vanish
  std::vector<std::string> overrides;  // applied to the main run's resolved configuration
  // Optional: builds the control's configuration from the main run's resolved one (before the
  // overrides), for changes an override cannot express (e.g. replacing the [model] table).
  std::function<nlohmann::json(const nlohmann::json& main)> config{};
  std::vector<std::string> must_fail{};  // names of the reproduction's claims it must fail
  // true: run through the reproduction's own run function (a reproduction made of several runs,
  // or one whose claims need its reference columns); false: one plain training run.
  bool pipeline = false;
};

struct ControlResult {
  std::string name, description, dir, message;  // message: why it did not run to the end
  std::vector<std::string> must_fail, failed, not_evaluated;
  bool ok = false;  // ran, and every must_fail claim was evaluated and failed
  std::vector<Claim> claims;
};
// Checks a control's claims against what it must fail.
ControlResult judge_control(const Control& control, const std::vector<Claim>& claims);
nlohmann::json controls_json(const std::vector<ControlResult>& controls);

}  // namespace ihlab
