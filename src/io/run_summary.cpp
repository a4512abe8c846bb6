#include "io/run_summary.h"

#include <algorithm>
#include <cmath>
#include <ostream>

#include "core/error.h"
#include "io/run_dir.h"

namespace ihlab {
namespace {

constexpr std::pair<RunStatus, std::string_view> kStatusNames[] = {{RunStatus::Finished, "finished"},
                                                                   {RunStatus::Interrupted, "interrupted"},
                                                                   {RunStatus::Diverged, "diverged"},
                                                                   {RunStatus::Incomplete, "incomplete"}};

// The keys summary_to_json writes itself; anything else is a section.
const char* const kKnownKeys[] = {"kind",  "name", "status", "message",    "steps",  "wall_seconds", "threads",
                                  "dtype", "seed", "final",  "checkpoint", "claims", "command",      "reproduction"};

template <typename V>
V get_key(const nlohmann::json& j, const char* key, V fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<V>();
  } catch (const nlohmann::json::exception& e) {
    fail("summary.json: key '{}' = {} has the wrong type ({})", key, j[key].dump(), e.what());
  }
}

}  // namespace

std::string_view to_string(RunStatus s) {
  for (auto& [v, name] : kStatusNames)
    if (v == s) return name;
  return "unknown";
}

RunStatus parse_run_status(std::string_view s) {
  for (auto& [v, name] : kStatusNames)
    if (name == s) return v;
  fail(
      "summary.json: key 'status' = \"{}\" is not a run status (allowed: finished, interrupted, diverged, "
      "incomplete)",
      s);
}

std::ostream& operator<<(std::ostream& out, RunStatus s) { return out << to_string(s); }

nlohmann::json claims_to_json(const std::vector<Claim>& claims) {
  nlohmann::json out = nlohmann::json::array();
  for (auto& c : claims) {
    // JSON has no NaN/Infinity; null says "no measurement" explicitly instead of relying on dump().
    auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
    nlohmann::json j = {
        {"name", c.name},           {"expected", c.expected},
        {"basis", c.basis},         {"measured", num(c.measured)},
        {"evaluated", c.evaluated}, {"pass", c.evaluated ? nlohmann::json(c.pass) : nlohmann::json(nullptr)},
        {"reason", c.reason},       {"detail", c.detail}};
    if (!c.seed_values.empty()) {
      nlohmann::json values = nlohmann::json::array();
      for (double v : c.seed_values) values.push_back(num(v));
      j["seeds"] = {
          {"values", values}, {"holding", num(c.holding)}, {"lo", num(c.lo)}, {"hi", num(c.hi)}, {"rule", c.rule}};
    }
    out.push_back(j);
  }
  return out;
}

nlohmann::json summary_to_json(const RunSummary& s) {
  nlohmann::json j = s.sections.is_object() ? s.sections : nlohmann::json::object();
  j["name"] = s.name;
  j["status"] = std::string(to_string(s.status));
  j["message"] = s.message;
  j["claims"] = claims_to_json(s.claims);
  if (s.kind == RunSummary::Kind::Sweep) {
    j["kind"] = "sweep";
    j["command"] = s.command;
    return j;
  }
  nlohmann::json final_metrics = nlohmann::json::object();
  for (auto& [k, v] : s.final_metrics)
    if (std::isfinite(v)) final_metrics[k] = v;
  j["steps"] = s.steps;
  j["wall_seconds"] = s.wall_seconds;
  j["threads"] = s.threads;
  j["dtype"] = s.dtype;
  j["seed"] = s.seed;
  j["final"] = final_metrics;
  j["checkpoint"] = s.checkpoint;
  if (!s.command.empty()) j["command"] = s.command;
  if (s.reproduction) {
    const ReproductionInfo& r = *s.reproduction;
    j["reproduction"] = {{"name", r.name},     {"paper", r.paper},     {"quick", r.quick},
                         {"compat", r.compat}, {"command", r.command}, {"all_pass", r.all_pass}};
  }
  return j;
}

RunSummary summary_from_json(const nlohmann::json& j) {
  IHLAB_CHECK(j.is_object(), "summary.json: expected a JSON object, got {}", j.type_name());
  RunSummary s;
  std::string kind = get_key<std::string>(j, "kind", "run");
  IHLAB_CHECK(kind == "run" || kind == "sweep", "summary.json: key 'kind' = \"{}\" (allowed: run, sweep)", kind);
  s.kind = kind == "sweep" ? RunSummary::Kind::Sweep : RunSummary::Kind::Run;
  s.name = get_key<std::string>(j, "name", "");
  s.status = parse_run_status(get_key<std::string>(j, "status", ""));
  s.message = get_key<std::string>(j, "message", "");
  s.steps = get_key<int64_t>(j, "steps", 0);
  s.wall_seconds = get_key<double>(j, "wall_seconds", 0.0);
  s.threads = get_key<int>(j, "threads", 0);
  s.dtype = get_key<std::string>(j, "dtype", "");
  s.seed = get_key<uint64_t>(j, "seed", 0);
  s.checkpoint = get_key<std::string>(j, "checkpoint", "");
  s.command = get_key<std::string>(j, "command", "");
  if (j.contains("final")) {
    IHLAB_CHECK(j["final"].is_object(), "summary.json: key 'final' must be an object, got {}", j["final"].dump());
    for (auto& [k, v] : j["final"].items()) {
      IHLAB_CHECK(v.is_number(), "summary.json: key 'final.{}' = {} is not a number", k, v.dump());
      s.final_metrics.push_back({k, v.get<double>()});
    }
  }
  for (auto& c : j.value("claims", nlohmann::json::array())) {
    IHLAB_CHECK(c.is_object(), "summary.json: a claim must be an object, got {}", c.dump());
    Claim cl{get_key<std::string>(c, "name", ""), get_key<std::string>(c, "expected", ""),
             get_key<double>(c, "measured", NAN), false, get_key<std::string>(c, "detail", "")};
    cl.evaluated = get_key<bool>(c, "evaluated", true);  // files from before `evaluated` judged every claim
    if (cl.evaluated) cl.pass = get_key<bool>(c, "pass", false);
    cl.reason = get_key<std::string>(c, "reason", "");
    cl.basis = get_key<std::string>(c, "basis", "");
    if (c.contains("seeds")) {
      const nlohmann::json& sd = c["seeds"];
      IHLAB_CHECK(sd.is_object(), "summary.json: key 'claims.seeds' must be an object, got {}", sd.dump());
      for (auto& v : sd.value("values", nlohmann::json::array()))
        cl.seed_values.push_back(v.is_number() ? v.get<double>() : NAN);
      cl.holding = get_key<double>(sd, "holding", NAN);
      cl.lo = get_key<double>(sd, "lo", NAN);
      cl.hi = get_key<double>(sd, "hi", NAN);
      cl.rule = get_key<std::string>(sd, "rule", "");
    }
    s.claims.push_back(std::move(cl));
  }
  if (j.contains("reproduction")) {
    const nlohmann::json& r = j["reproduction"];
    IHLAB_CHECK(r.is_object(), "summary.json: key 'reproduction' must be an object, got {}", r.dump());
    s.reproduction = ReproductionInfo{get_key<std::string>(r, "name", ""),   get_key<std::string>(r, "paper", ""),
                                      get_key<std::string>(r, "compat", ""), get_key<std::string>(r, "command", ""),
                                      get_key<bool>(r, "quick", false),      get_key<bool>(r, "all_pass", false)};
  }
  for (auto& [k, v] : j.items())
    if (std::find(std::begin(kKnownKeys), std::end(kKnownKeys), k) == std::end(kKnownKeys)) s.sections[k] = v;
  return s;
}

void write_summary(const std::string& dir, const RunSummary& s) {
  write_json_atomic(dir + "/summary.json", summary_to_json(s));
}

RunSummary read_summary(const std::string& dir) {
  const std::string path = dir + "/summary.json";
  nlohmann::json j = read_json(path);
  try {
    return summary_from_json(j);
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
}

}  // namespace ihlab
