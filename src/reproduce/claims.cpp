#include "reproduce/claims.h"

#include <algorithm>

#include <fmt/format.h>

#include "analysis/fits.h"
#include "core/error.h"

namespace ihlab {

bool Condition::holds(double v) const {
  if (!std::isfinite(v)) return false;
  switch (cmp) {
    case Cmp::Lt: return v < bound;
    case Cmp::Le: return v <= bound;
    case Cmp::Gt: return v > bound;
    case Cmp::Ge: return v >= bound;
    case Cmp::Within: return v >= bound && v <= upper;
    case Cmp::Yes: return v == 1.0;
  }
  return false;
}

std::string Condition::text() const {
  switch (cmp) {
    case Cmp::Lt: return fmt::format("{} < {:g}", quantity, bound);
    case Cmp::Le: return fmt::format("{} <= {:g}", quantity, bound);
    case Cmp::Gt: return fmt::format("{} > {:g}", quantity, bound);
    case Cmp::Ge: return fmt::format("{} >= {:g}", quantity, bound);
    case Cmp::Within: return fmt::format("{} in [{:g}, {:g}]", quantity, bound, upper);
    case Cmp::Yes: return quantity;
  }
  return quantity;
}

Condition lt(std::string q, double b) { return {std::move(q), Cmp::Lt, b}; }
Condition le(std::string q, double b) { return {std::move(q), Cmp::Le, b}; }
Condition gt(std::string q, double b) { return {std::move(q), Cmp::Gt, b}; }
Condition ge(std::string q, double b) { return {std::move(q), Cmp::Ge, b}; }
Condition within(std::string q, double lo, double hi) { return {std::move(q), Cmp::Within, lo, hi}; }
Condition yes(std::string finding) { return {std::move(finding), Cmp::Yes}; }

std::string SeedRule::text() const {
  switch (kind) {
    case Kind::Every: return "holds in every run";
    case Kind::AtLeast: return fmt::format("holds in at least {:g}% of the runs", 100 * fraction);
    case Kind::Interval:
      return "the 95% interval of the mean of the first quantity lies within its threshold, the other conditions "
             "hold in every run";
  }
  return "";
}
SeedRule seeds_at_least(double fraction) { return {SeedRule::Kind::AtLeast, fraction}; }
SeedRule seeds_interval() { return {SeedRule::Kind::Interval, 1.0}; }

std::string ClaimDef::expected() const {
  std::string s;
  for (auto& c : conditions) s += (s.empty() ? "" : "; and ") + c.text();
  return s;
}

Measured not_evaluated(std::string why) {
  Measured m;
  m.not_evaluated = std::move(why);
  return m;
}

namespace {

Claim blank(const ClaimDef& def) {
  Claim c{def.name, def.expected(), NAN, false, ""};
  c.basis = def.basis;
  return c;
}

bool all_hold(const ClaimDef& def, const Measured& m) {
  IHLAB_CHECK(m.values.size() == def.conditions.size(), "claim '{}': {} measured values for {} conditions", def.name,
              m.values.size(), def.conditions.size());
  for (size_t i = 0; i < m.values.size(); ++i)
    if (!def.conditions[i].holds(m.values[i])) return false;
  return true;
}

}  // namespace

Claim judge(const ClaimDef& def, const Measured& m) {
  Claim c = blank(def);
  c.detail = m.detail;
  if (!m.not_evaluated.empty()) {
    c.evaluated = false;
    c.reason = m.not_evaluated;
    return c;
  }
  c.pass = all_hold(def, m);
  c.measured = m.values[0];
  return c;
}

nlohmann::json measured_to_json(const std::map<std::string, Measured>& measured) {
  nlohmann::json out = nlohmann::json::object();
  for (auto& [name, m] : measured) {
    nlohmann::json values = nlohmann::json::array();
    for (double v : m.values) values.push_back(std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr));
    out[name] = {{"values", values}, {"detail", m.detail}, {"not_evaluated", m.not_evaluated}};
  }
  return out;
}

std::map<std::string, Measured> measured_from_json(const nlohmann::json& j) {
  std::map<std::string, Measured> out;
  for (auto& [name, e] : j.items()) {
    Measured m;
    for (auto& v : e.value("values", nlohmann::json::array()))
      m.values.push_back(v.is_number() ? v.get<double>() : NAN);
    m.detail = e.value("detail", "");
    m.not_evaluated = e.value("not_evaluated", "");
    out[name] = std::move(m);
  }
  return out;
}

Claim judge_runs(const ClaimDef& def, const std::vector<Measured>& runs) {
  IHLAB_CHECK(!runs.empty(), "claim '{}': no runs to judge", def.name);
  if (runs.size() == 1) return judge(def, runs[0]);
  Claim c = blank(def);
  c.rule = def.rule.text();
  std::vector<double> first;
  int held = 0;
  bool others_hold = true;  // the conditions after the first, in every run (the Interval rule)
  std::string reasons;
  for (size_t i = 0; i < runs.size(); ++i) {
    const Measured& m = runs[i];
    if (!m.not_evaluated.empty()) {
      c.seed_values.push_back(NAN);
      reasons += fmt::format("{}run {}: {}", reasons.empty() ? "" : "; ", i, m.not_evaluated);
      continue;
    }
    const bool h = all_hold(def, m);
    held += h;
    for (size_t k = 1; k < m.values.size(); ++k) others_hold = others_hold && def.conditions[k].holds(m.values[k]);
    first.push_back(m.values[0]);
    c.seed_values.push_back(m.values[0]);
  }
  const int n = int(first.size());
  if (n == 0) {
    c.evaluated = false;
    c.reason = "no run could judge it: " + reasons;
    return c;
  }
  double mean = 0, ss = 0;
  for (double v : first) mean += v / n;
  for (double v : first) ss += (v - mean) * (v - mean);
  c.measured = mean;
  c.holding = double(held) / n;
  if (n >= 2) {
    const double half = student_t_quantile(0.95, n - 1) * std::sqrt(ss / (n - 1) / n);
    c.lo = mean - half, c.hi = mean + half;
  }
  const Condition& head = def.conditions[0];
  switch (def.rule.kind) {
    case SeedRule::Kind::Every: c.pass = held == n; break;
    case SeedRule::Kind::AtLeast: c.pass = c.holding >= def.rule.fraction; break;
    case SeedRule::Kind::Interval:
      // A yes/no finding has no interval to speak of: it must hold in every run.
      c.pass = head.cmp == Cmp::Yes ? held == n : n >= 2 && head.holds(c.lo) && head.holds(c.hi) && others_hold;
      break;
  }
  c.detail = fmt::format("{} of {} runs hold; mean {:.4g}, 95% interval [{:.4g}, {:.4g}]; verdict: {}", held, n, mean,
                         c.lo, c.hi, c.rule);
  if (!reasons.empty()) c.detail += "; not judged by " + reasons;
  return c;
}

ControlResult judge_control(const Control& control, const std::vector<Claim>& claims) {
  ControlResult r;
  r.name = control.name;
  r.description = control.description;
  r.must_fail = control.must_fail;
  r.claims = claims;
  r.ok = true;
  for (auto& name : control.must_fail) {
    auto it = std::find_if(claims.begin(), claims.end(), [&](const Claim& c) { return c.name == name; });
    IHLAB_CHECK(it != claims.end(), "control '{}': must fail '{}', which is not a claim of the reproduction",
                control.name, name);
    if (!it->evaluated)
      r.not_evaluated.push_back(name);
    else if (!it->pass)
      r.failed.push_back(name);
  }
  r.ok = r.failed.size() == r.must_fail.size();
  return r;
}

nlohmann::json controls_json(const std::vector<ControlResult>& controls) {
  nlohmann::json out = nlohmann::json::array();
  for (auto& c : controls) {
    nlohmann::json held = nlohmann::json::array();  // the must-fail claims the control passed
    for (auto& n : c.must_fail)
      if (std::find(c.failed.begin(), c.failed.end(), n) == c.failed.end() &&
          std::find(c.not_evaluated.begin(), c.not_evaluated.end(), n) == c.not_evaluated.end())
        held.push_back(n);
    out.push_back({{"name", c.name},
                   {"description", c.description},
                   {"dir", c.dir},
                   {"must_fail", c.must_fail},
                   {"failed", c.failed},
                   {"held", held},
                   {"not_evaluated", c.not_evaluated},
                   {"message", c.message},
                   {"ok", c.ok},
                   {"claims", claims_to_json(c.claims)}});
  }
  return out;
}

}  // namespace ihlab
