#include "reproduce/reproduction.h"

#include <fmt/format.h>

#include "io/config.h"
#include "train/run.h"
#include "train/run_schema.h"

namespace ihlab {

const Reproduction& find_reproduction(const std::string& name) {
  std::string known;
  for (auto& r : reproduction_registry()) {
    if (r.name == name) return r;
    known += (known.empty() ? "" : ", ") + r.name;
  }
  fail("reproduce: unknown reproduction '{}' (known: {})", name, known);
}

nlohmann::json reproduction_config(const Reproduction& r, const ReproduceOptions& o) {
  nlohmann::json raw = parse_toml_string(r.config_toml, "reproduction " + r.name);
  if (o.compat != "paper") {
    auto it = r.compat_overrides.find(o.compat);
    IHLAB_CHECK(it != r.compat_overrides.end(), "reproduce: --compat {} is not available for {} (allowed: paper{})",
                o.compat, r.name, r.compat_overrides.empty() ? "" : ", code");
    for (auto& a : it->second) apply_override(raw, a);
  }
  if (o.quick)
    for (auto& a : r.quick_overrides) apply_override(raw, a);
  for (auto& a : o.overrides) apply_override(raw, a);
  return run_schema().resolve(raw);
}

bool ReproResult::all_pass() const {
  for (auto& c : claims)
    if (!c.pass) return false;
  return !claims.empty();
}

ReproResult run_reproduction(const std::string& name, const std::string& out_dir, const ReproduceOptions& o) {
  const Reproduction& r = find_reproduction(name);
  ReproContext ctx;
  ctx.out_dir = out_dir;
  ctx.config = reproduction_config(r, o);
  ctx.quick = o.quick;
  ctx.compat = o.compat;
  TrainOptions topt;
  topt.quiet = o.quiet;
  if (o.evaluate_only) {
    nlohmann::json s = read_json(out_dir + "/summary.json");
    IHLAB_CHECK(s.value("status", "") == "finished", "reproduce --evaluate-only: the run in '{}' is '{}', not finished",
                out_dir, s.value("status", "missing"));
    ctx.result.status = "finished";
    ctx.result.steps = s.value("steps", int64_t(0));
    ctx.result.wall_seconds = s.value("wall_seconds", 0.0);
    ctx.result.checkpoint = s.value("checkpoint", "");
  } else {
    ctx.result = r.run ? r.run(ctx, topt) : run_config(ctx.config, out_dir, topt);
  }
  ReproResult out;
  out.run = ctx.result;
  if (ctx.result.status != "finished") return out;  // claims need a finished run
  ctx.metrics = read_metrics(out_dir + "/metrics.csv");
  out.claims = r.evaluate(ctx);

  std::string command = fmt::format("ihlab reproduce {} --out {}{}{}", name, out_dir, o.quick ? " --quick" : "",
                                    o.compat != "paper" ? " --compat " + o.compat : "");
  for (auto& a : o.overrides) command += " " + a;
  nlohmann::json summary = read_json(out_dir + "/summary.json");
  summary["claims"] = claims_to_json(out.claims);
  summary["reproduction"] = {{"name", name},    {"paper", r.paper},     {"quick", o.quick},
                             {"compat", o.compat}, {"command", command}, {"all_pass", out.all_pass()}};
  for (auto& [k, v] : ctx.extra.items()) summary[k] = v;
  write_json_atomic(out_dir + "/summary.json", summary);
  return out;
}

std::string claims_table(const std::vector<Claim>& claims) {
  size_t wn = 5, we = 8;
  for (auto& c : claims) wn = std::max(wn, c.name.size()), we = std::max(we, c.expected.size());
  std::string s = fmt::format("{:<{}}  {:<{}}  {:>12}  {}\n", "claim", wn, "expected", we, "measured", "result");
  for (auto& c : claims) {
    s += fmt::format("{:<{}}  {:<{}}  {:>12.5g}  {}\n", c.name, wn, c.expected, we, c.measured, c.pass ? "PASS" : "FAIL");
    if (!c.detail.empty()) s += fmt::format("{:<{}}  {}\n", "", wn, c.detail);
  }
  return s;
}

}  // namespace ihlab
