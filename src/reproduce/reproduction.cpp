#include "reproduce/reproduction.h"

#include <filesystem>

#include <fmt/format.h>

#include "core/parallel.h"
#include "io/config.h"
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

bool ReproResult::all_pass() const {
  for (auto& c : claims)
    if (!c.pass) return false;
  return !claims.empty();
}

ReproResult run_reproduction(const std::string& name, const std::string& out_dir, const ReproduceOptions& o) {
  const Reproduction& r = find_reproduction(name);
  ReproContext ctx;
  ctx.out_dir = out_dir;
  ctx.spec = run_spec_from_config(reproduction_config(r, o));
  ctx.quick = o.quick;
  ctx.workers = o.workers;
  ctx.compat = o.compat;
  set_threads(ctx.spec.threads);
  TrainOptions topt;
  topt.quiet = o.quiet;
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
  if (!ctx.main.finished()) {  // claims need a finished run
    out.run = std::move(ctx.main);
    return out;
  }
  out.claims = r.evaluate(ctx);

  std::string command = fmt::format("ihlab reproduce {} --out {}{}{}", name, out_dir, o.quick ? " --quick" : "",
                                    o.compat != "paper" ? " --compat " + o.compat : "");
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
                     c.pass ? "PASS" : "FAIL");
    if (!c.detail.empty()) s += fmt::format("{:<{}}  {}\n", "", wn, c.detail);
  }
  return s;
}

}  // namespace ihlab
