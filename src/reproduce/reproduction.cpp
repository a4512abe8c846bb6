#include "reproduce/reproduction.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "core/parallel.h"
#include "io/config.h"
#include "reproduce/seeds.h"
#include "train/interrupt.h"
#include "train/run.h"
#include "train/run_schema.h"

namespace ihlab {
namespace fs = std::filesystem;

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

const RunData& ReproContext::data() {
  if (!data_) data_ = make_run_data(spec);
  return *data_;
}

std::string ReproContext::variant_dir(const std::string& name) const {
  return (fs::path(out_dir) / "runs" / name).string();
}

const RunResult& ReproContext::variant(const std::string& name) {
  auto it = variants_.find(name);
  if (it != variants_.end()) return it->second;
  // Finished by an earlier process (a restarted reproduction, --evaluate-only).
  return variants_[name] = read_run(variant_dir(name));
}

const ClaimDef& Reproduction::claim(const std::string& n, const std::string& compat) const {
  std::string known;
  for (auto& c : claims) {
    if (c.name == n && (c.compat.empty() || c.compat == compat)) return c;
    known += (known.empty() ? "'" : ", '") + c.name + "'";
  }
  fail("reproduction {}: no claim '{}' is declared (declared: {})", name, n, known);
}

void ReproContext::claim(const std::string& name, const std::function<Measured()>& measure) {
  IHLAB_CHECK(repro, "ReproContext::claim: no reproduction set");
  const ClaimDef& def = repro->claim(name, compat);  // an undeclared claim is a bug: fail loudly
  IHLAB_CHECK(!measured_.count(name), "reproduction {}: claim '{}' measured twice", repro->name, name);
  if (quick && !def.quick_skip.empty()) {
    measured_[name] = not_evaluated("a --quick run is too short: " + def.quick_skip);
    return;
  }
  if (!control) {
    measured_[name] = measure();
    return;
  }
  try {
    measured_[name] = measure();
  } catch (const std::exception& e) {  // a missing column or run: ihlab::Error, or a JSON lookup
    measured_[name] = not_evaluated(std::string("the control cannot measure it: ") + e.what());
  }
}

std::vector<Claim> ReproContext::judged_claims() const {
  std::vector<Claim> out;
  for (auto& def : repro->claims) {
    if (!def.compat.empty() && def.compat != compat) continue;  // another --compat mode's claim
    auto it = measured_.find(def.name);
    out.push_back(judge(def, it != measured_.end() ? it->second
                                                   : not_evaluated("this run gave no measurement (an earlier "
                                                                   "finding it depends on is missing)")));
  }
  return out;
}

std::vector<Claim> judge_seeds(const Reproduction& r, const std::string& compat,
                               const std::vector<std::map<std::string, Measured>>& seeds) {
  std::vector<Claim> out;
  for (auto& def : r.claims) {
    if (!def.compat.empty() && def.compat != compat) continue;
    std::vector<Measured> runs;
    for (auto& m : seeds) {
      auto it = m.find(def.name);
      runs.push_back(it != m.end() ? it->second : not_evaluated("this seed gave no measurement"));
    }
    out.push_back(judge_runs(def, runs));
  }
  return out;
}

bool ReproResult::all_pass() const {
  int evaluated = 0;
  for (auto& c : claims) {
    if (!c.evaluated) {
      if (!quick) return false;  // a full run must judge every claim
      continue;
    }
    ++evaluated;
    if (!c.pass) return false;
  }
  for (auto& c : controls)
    if (!c.ok) return false;
  if (!seeds_complete) return false;
  return evaluated > 0;
}

namespace {

// Runs (or reads back, when it finished before) one control and judges its claims.
ControlResult run_control(const Reproduction& r, const ReproContext& main, const Control& control,
                          const ReproduceOptions& o, RunResult& run_out) {
  ReproContext ctl;
  ctl.repro = &r;
  ctl.control = true;
  ctl.quick = o.quick;
  ctl.workers = o.workers;  // a control made of several runs spreads them like the main run
  ctl.compat = o.compat;
  ctl.out_dir = main.variant_dir("control-" + control.name);
  nlohmann::json raw = control.config ? control.config(main.spec.config) : main.spec.config;
  for (auto& a : control.overrides) apply_override(raw, a);
  ctl.spec = run_spec_from_config(run_schema().resolve(raw));
  const bool done = fs::exists(ctl.out_dir + "/summary.json") && read_summary(ctl.out_dir).finished();
  IHLAB_CHECK(done || !o.evaluate_only,
              "reproduce --evaluate-only --controls: control '{}' has no finished run in '{}' (run the "
              "reproduction with --controls first)",
              control.name, ctl.out_dir);
  if (done) {
    // Read back as it is, like the main run of --evaluate-only: a control made only of variant
    // runs (control.pipeline) holds no config.toml of its own.
    ctl.main.spec = ctl.spec;
    ctl.main.summary = read_summary(ctl.out_dir);
    ctl.main.metrics = read_metrics(ctl.out_dir + "/metrics.csv");
  } else {
    if (!o.quiet) fmt::print("control {}: {}\n", control.name, ctl.out_dir);
    TrainOptions t;
    t.quiet = true;
    t.resume = fs::exists(ctl.out_dir + "/checkpoints/latest.json");
    ctl.main = control.pipeline && r.run ? r.run(ctl, t) : run_spec(ctl.spec, ctl.data(), ctl.out_dir, t);
  }
  ControlResult res;
  std::string failed_evaluation;
  if (ctl.main.finished()) {
    // A control's evaluation that throws outside its claims' measurements (a shared quantity the
    // variant does not log) leaves those claims not evaluated: the control then fails, with why.
    try {
      r.evaluate(ctl);
    } catch (const std::exception& e) {
      failed_evaluation = e.what();
    }
    res = judge_control(control, ctl.judged_claims());
    if (!failed_evaluation.empty()) res.message = "its claims could not be evaluated: " + failed_evaluation;
    ctl.main.summary.claims = res.claims;
    ctl.main.summary.sections["control"] = {
        {"of", r.name}, {"description", control.description}, {"must_fail", control.must_fail}, {"ok", res.ok}};
    for (auto& [k, v] : ctl.extra.items()) ctl.main.summary.sections[k] = v;
    write_summary(ctl.out_dir, ctl.main.summary);
  } else {
    res.name = control.name, res.description = control.description, res.must_fail = control.must_fail;
    res.message = fmt::format("did not finish: {} {}", to_string(ctl.main.summary.status), ctl.main.summary.message);
  }
  res.dir = "runs/control-" + control.name;
  run_out = std::move(ctl.main);
  return res;
}

}  // namespace

ReproResult run_reproduction(const std::string& name, const std::string& out_dir, const ReproduceOptions& o) {
  const Reproduction& r = find_reproduction(name);
  ReproContext ctx;
  ctx.repro = &r;
  ctx.out_dir = out_dir;
  ctx.spec = run_spec_from_config(reproduction_config(r, o));
  ctx.quick = o.quick;
  ctx.workers = o.workers;
  ctx.compat = o.compat;
  set_threads(ctx.spec.threads);
  TrainOptions topt;
  topt.quiet = o.quiet;
  // Rerunning the same command continues a reproduction that was stopped (Ctrl-C, a kill): the
  // main run resumes from its checkpoint (a finished one logs nothing more) and the variant and
  // seed stores skip what finished. A directory holding a run of another configuration is refused
  // by the trainer as before.
  if (fs::exists(out_dir + "/checkpoints/latest.json")) {
    std::ifstream f(out_dir + "/config.toml");
    const std::string before((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    topt.resume = o.resume || before == to_toml(ctx.spec.config);
  }
  const int seeds = o.seeds > 0 ? o.seeds : o.quick ? 1 : r.default_seeds;
  if (o.evaluate_only) {
    // The run of an earlier process, read back as it is (its directory may hold no config.toml:
    // a reproduction made only of variants).
    ctx.main.spec = ctx.spec;
    ctx.main.summary = read_summary(out_dir);
    IHLAB_CHECK(ctx.main.summary.finished(), "reproduce --evaluate-only: the run in '{}' is '{}', not finished",
                out_dir, to_string(ctx.main.summary.status));
    ctx.main.metrics = read_metrics(out_dir + "/metrics.csv");
  } else {
    ctx.main = r.run ? r.run(ctx, topt) : run_spec(ctx.spec, ctx.data(), out_dir, topt);
  }
  ReproResult out;
  out.quick = o.quick;
  if (!ctx.main.finished()) {  // claims need a finished run
    out.run = std::move(ctx.main);
    return out;
  }
  r.evaluate(ctx);
  out.claims = ctx.judged_claims();
  out.measured = ctx.measured();
  ctx.extra["measured"] = measured_to_json(out.measured);
  if (seeds > 1) {
    SeedRuns more = run_seed_reproductions(r, out_dir, int64_t(ctx.spec.seed), seeds, o);
    if (more.interrupted) {
      ctx.main.summary.status = RunStatus::Interrupted;
      ctx.main.summary.message = "interrupted during the seed runs; rerun the command to resume";
      out.run = std::move(ctx.main);
      return out;
    }
    std::vector<std::map<std::string, Measured>> all = {out.measured};
    for (auto& m : more.measured) all.push_back(std::move(m));
    out.claims = judge_seeds(r, o.compat, all);
    out.seeds = seeds;
    out.seeds_complete = more.complete;
    ctx.extra["seeds"] = {{"count", seeds}, {"main_seed", int64_t(ctx.spec.seed)}, {"runs", more.runs}};
  }
  if (o.controls) {
    IHLAB_CHECK(!r.controls.empty(), "reproduce --controls: {} declares no control", name);
    for (auto& control : r.controls) {
      RunResult run;
      out.controls.push_back(run_control(r, ctx, control, o, run));
      if (run.summary.finished() || !run.metrics.rows.empty())
        ctx.add_variant("control-" + control.name, std::move(run));
      // An interrupted control stops the reproduction like an interrupted run.
      if (!out.controls.back().message.empty() && interrupt_requested()) {
        ctx.main.summary.status = RunStatus::Interrupted;
        ctx.main.summary.message = "interrupted during control " + control.name;
        out.run = std::move(ctx.main);
        return out;
      }
    }
    ctx.extra["controls"] = controls_json(out.controls);
  }

  std::string command = fmt::format("ihlab reproduce {} --out {}{}{}{}{}", name, out_dir, o.quick ? " --quick" : "",
                                    o.compat != "paper" ? " --compat " + o.compat : "", o.controls ? " --controls" : "",
                                    seeds != 1 ? fmt::format(" --seeds {}", seeds) : "");
  for (auto& a : o.overrides) command += " " + a;
  // The one rewrite of summary.json: the in-memory record of the run, with the claims added.
  RunSummary& summary = ctx.main.summary;
  summary.claims = out.claims;
  summary.reproduction = ReproductionInfo{name, r.paper, o.compat, command, o.quick, out.all_pass()};
  for (auto& [k, v] : ctx.extra.items()) summary.sections[k] = v;
  write_summary(out_dir, summary);
  out.run = std::move(ctx.main);
  out.variants = std::move(ctx.variants());
  return out;
}

std::string claims_table(const std::vector<Claim>& claims) {
  size_t wn = 5, we = 8;
  for (auto& c : claims) wn = std::max(wn, c.name.size()), we = std::max(we, c.expected.size());
  std::string s = fmt::format("{:<{}}  {:<{}}  {:>12}  {}\n", "claim", wn, "expected", we, "measured", "result");
  for (auto& c : claims) {
    s += fmt::format("{:<{}}  {:<{}}  {:>12.5g}  {}\n", c.name, wn, c.expected, we, c.measured,
                     !c.evaluated ? "NOT EVALUATED"
                     : c.pass     ? "PASS"
                                  : "FAIL");
    if (!c.evaluated) s += fmt::format("{:<{}}  {}\n", "", wn, c.reason);
    if (!c.basis.empty()) s += fmt::format("{:<{}}  threshold: {}\n", "", wn, c.basis);
    if (!c.detail.empty()) s += fmt::format("{:<{}}  {}\n", "", wn, c.detail);
  }
  return s;
}

std::string controls_table(const std::vector<ControlResult>& controls) {
  std::string s;
  for (auto& c : controls) {
    s += fmt::format("control {}: {} ({})\n", c.name, c.ok ? "OK, failed what it must fail" : "NOT OK", c.description);
    if (!c.message.empty()) s += fmt::format("  {}\n", c.message);
    for (auto& n : c.must_fail) {
      const bool failed = std::find(c.failed.begin(), c.failed.end(), n) != c.failed.end();
      const bool judged = std::find(c.not_evaluated.begin(), c.not_evaluated.end(), n) == c.not_evaluated.end();
      s += fmt::format("  must fail '{}': {}\n", n, failed ? "failed" : judged ? "HELD" : "not evaluated");
    }
  }
  return s;
}

}  // namespace ihlab
