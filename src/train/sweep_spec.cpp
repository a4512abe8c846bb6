#include "train/sweep_spec.h"

#include <cmath>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "core/rng.h"
#include "io/config.h"
#include "io/sweep_store.h"
#include "train/run_schema.h"

namespace ihlab {
namespace fs = std::filesystem;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

std::string join(const std::set<std::string>& s) {
  std::string out;
  for (auto& k : s) out += (out.empty() ? "" : ", ") + k;
  return out;
}

// Rejects keys of `table` outside `allowed`, naming the table path and the allowed keys.
void only_keys(const nlohmann::json& table, const std::string& path, const std::set<std::string>& allowed) {
  for (auto& [k, v] : table.items())
    IHLAB_CHECK(allowed.count(k), "sweep: unknown key '{}{}' (allowed{}: {})", path.empty() ? "" : path + ".", k,
                path.empty() ? " at the top level" : " in " + path, join(allowed));
}

double number(const nlohmann::json& t, const std::string& path, const std::string& key) {
  IHLAB_CHECK(t.contains(key), "sweep: missing key '{}.{}' (a number)", path, key);
  IHLAB_CHECK(t[key].is_number(), "sweep: key '{}.{}' = {} must be a number", path, key, toml_value(t[key]));
  return t[key].get<double>();
}

int64_t count(const nlohmann::json& t, const std::string& path, const std::string& key, int64_t lo, int64_t hi) {
  IHLAB_CHECK(t.contains(key), "sweep: missing key '{}.{}' (an integer, {} .. {})", path, key, lo, hi);
  IHLAB_CHECK(t[key].is_number_integer() && t[key].get<int64_t>() >= lo && t[key].get<int64_t>() <= hi,
              "sweep: key '{}.{}' = {} must be an integer in {} .. {}", path, key, toml_value(t[key]), lo, hi);
  return t[key].get<int64_t>();
}

std::vector<nlohmann::json> spaced(const nlohmann::json& t, const std::string& path, bool log) {
  only_keys(t, path, {"from", "to", "num"});
  const double from = number(t, path, "from"), to = number(t, path, "to");
  const int64_t n = count(t, path, "num", 1, 100000);
  if (log)
    IHLAB_CHECK(from > 0 && to > 0, "sweep: key '{}' = {{from = {}, to = {}}}: logspace needs from > 0 and to > 0",
                path, from, to);
  std::vector<nlohmann::json> v;
  for (int64_t i = 0; i < n; ++i) {
    const double u = n == 1 ? 0.0 : double(i) / double(n - 1);
    v.push_back(log ? std::exp(std::log(from) + u * (std::log(to) - std::log(from))) : from + u * (to - from));
  }
  // The ends exactly as written (exp(log(x)) can be off by an ulp).
  v.front() = from;
  if (n > 1) v.back() = to;
  return v;
}

std::vector<nlohmann::json> sampled(const nlohmann::json& t, const std::string& path) {
  only_keys(t, path, {"distribution", "low", "high", "count", "seed"});
  static const std::set<std::string> kinds = {"uniform", "log-uniform", "normal", "int-uniform"};
  IHLAB_CHECK(
      t.contains("distribution") && t["distribution"].is_string() && kinds.count(t["distribution"].get<std::string>()),
      "sweep: key '{}.distribution' = {} is not allowed (choose one of: {})", path,
      t.contains("distribution") ? toml_value(t["distribution"]) : "(missing)", join(kinds));
  const std::string dist = t["distribution"];
  const double lo = number(t, path, "low"), hi = number(t, path, "high");
  const int64_t n = count(t, path, "count", 1, 100000);
  const int64_t seed = t.contains("seed") ? count(t, path, "seed", 0, INT64_MAX) : 0;
  if (dist == "normal")
    IHLAB_CHECK(hi > 0, "sweep: key '{}.high' = {} is the normal's standard deviation and must be > 0", path, hi);
  else
    IHLAB_CHECK(lo < hi && (dist != "log-uniform" || lo > 0),
                "sweep: key '{}' has low = {}, high = {}: needs low < high{}", path, lo, hi,
                dist == "log-uniform" ? " and low > 0" : "");
  // Counter-based stream: the samples depend on the seed only, never on the machine.
  RandomStream r(uint64_t(seed), StreamKind::Test, 0x5eedu);
  std::vector<nlohmann::json> v;
  for (int64_t i = 0; i < n; ++i) {
    if (dist == "uniform") v.push_back(lo + (hi - lo) * r.uniform());
    if (dist == "log-uniform") v.push_back(std::exp(std::log(lo) + (std::log(hi) - std::log(lo)) * r.uniform()));
    if (dist == "normal") v.push_back(lo + hi * r.normal());
    if (dist == "int-uniform")
      v.push_back(int64_t(std::ceil(lo)) + r.randint(int64_t(std::floor(hi) - std::ceil(lo)) + 1));
  }
  return v;
}

SweepAxisSpec parse_axis(const nlohmann::json& a, const std::string& path) {
  IHLAB_CHECK(a.is_object(), "sweep: '{}' must be a table ([[axis]] with key and values)", path);
  only_keys(a, path, {"key", "values", "linspace", "logspace", "random"});
  IHLAB_CHECK(a.contains("key") && a["key"].is_string() && !a["key"].get<std::string>().empty(),
              "sweep: missing key '{}.key' (the dotted config key to vary, e.g. \"task.vocab\")", path);
  SweepAxisSpec ax;
  ax.key = a["key"];
  int given = 0;
  for (auto k : {"values", "linspace", "logspace", "random"}) given += a.contains(k);
  IHLAB_CHECK(given == 1, "sweep: axis '{}' ({}) needs exactly one of values, linspace, logspace, random (found {})",
              path, ax.key, given);
  if (a.contains("values")) {
    IHLAB_CHECK(a["values"].is_array() && !a["values"].empty(), "sweep: key '{}.values' = {} must be a non-empty list",
                path, toml_value(a["values"]));
    for (auto& v : a["values"]) ax.values.push_back(v);
    ax.source = {{"values", a["values"]}};
  } else {
    for (auto k : {"linspace", "logspace", "random"})
      if (a.contains(k)) {
        IHLAB_CHECK(a[k].is_object(),
                    "sweep: key '{}.{}' must be an inline table, e.g. {{ from = 1, to = 10, num = 4 }}", path, k);
        const std::string sub = path + "." + k;
        ax.values = std::string(k) == "random" ? sampled(a[k], sub) : spaced(a[k], sub, std::string(k) == "logspace");
        ax.source = {{k, a[k]}};
      }
  }
  return ax;
}

// A directory-name part: the key's last component and the value, filesystem-safe.
std::string name_part(const std::string& key, const std::string& value) {
  std::string k = key.substr(key.rfind('.') == std::string::npos ? 0 : key.rfind('.') + 1);
  std::string out = k + "=";
  for (char c : value) out += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '_';
  return out;
}

}  // namespace

nlohmann::json SweepDefinition::to_json() const {
  nlohmann::json axes_j = nlohmann::json::array();
  for (auto& a : axes) axes_j.push_back({{"key", a.key}, {"values", a.values}, {"source", a.source}});
  nlohmann::json fits_j = nlohmann::json::array();
  for (auto& f : fits) fits_j.push_back({{"x", f.x}, {"y", f.y}});
  return {{"base", base},   {"base_source", base_source},      {"overrides", overrides},
          {"axes", axes_j}, {"combine", zip ? "zip" : "grid"}, {"seeds", seeds},
          {"fits", fits_j}};
}

SweepDefinition parse_sweep_json(const nlohmann::json& f, const std::string& source, const std::string& dir) {
  only_keys(f, "", {"base", "overrides", "seeds", "combine", "axis", "fit"});
  SweepDefinition d;
  IHLAB_CHECK(f.contains("base"),
              "sweep: {}: missing key 'base' (a run config file, relative to the sweep file, or an inline [base] "
              "table)",
              source);
  if (f["base"].is_string()) {
    fs::path p = f["base"].get<std::string>();
    if (p.is_relative()) p = fs::path(dir) / p;
    IHLAB_CHECK(fs::exists(p), "sweep: key 'base' = \"{}\": no such file ({})", f["base"].get<std::string>(),
                p.string());
    d.base = parse_toml_file(p.string());
    d.base_source = p.lexically_normal().string();
  } else {
    IHLAB_CHECK(f["base"].is_object(), "sweep: key 'base' = {} must be a file name or a [base] table",
                toml_value(f["base"]));
    d.base = f["base"];
    d.base_source = "inline";
  }
  if (f.contains("overrides")) {
    IHLAB_CHECK(f["overrides"].is_array(), "sweep: key 'overrides' must be a list of \"key=value\" strings");
    for (auto& o : f["overrides"]) {
      IHLAB_CHECK(o.is_string(), "sweep: key 'overrides' has {}, not a \"key=value\" string", toml_value(o));
      d.overrides.push_back(o);
    }
  }
  if (f.contains("seeds")) d.seeds = int(count(f, "", "seeds", 1, 100000));
  if (f.contains("combine")) {
    IHLAB_CHECK(f["combine"] == "grid" || f["combine"] == "zip",
                "sweep: key 'combine' = {} is not allowed (choose one of: grid, zip)", toml_value(f["combine"]));
    d.zip = f["combine"] == "zip";
  }
  IHLAB_CHECK(f.contains("axis") && f["axis"].is_array() && !f["axis"].empty(),
              "sweep: {}: no [[axis]] (each needs key and one of values, linspace, logspace, random)", source);
  std::set<std::string> keys;
  for (size_t i = 0; i < f["axis"].size(); ++i) {
    d.axes.push_back(parse_axis(f["axis"][i], fmt::format("axis[{}]", i)));
    IHLAB_CHECK(keys.insert(d.axes.back().key).second, "sweep: key '{}' is varied twice (axis[{}])", d.axes.back().key,
                i);
  }
  IHLAB_CHECK(!(d.seeds > 0 && keys.count("seed")), "sweep: 'seeds = {}' and an axis on 'seed' both set the seed",
              d.seeds);
  if (d.zip)
    for (size_t i = 1; i < d.axes.size(); ++i)
      IHLAB_CHECK(d.axes[i].values.size() == d.axes[0].values.size(),
                  "sweep: combine = \"zip\" pairs the axes value by value, but axis[0] ({}) has {} values and "
                  "axis[{}] ({}) has {}",
                  d.axes[0].key, d.axes[0].values.size(), i, d.axes[i].key, d.axes[i].values.size());
  if (f.contains("fit")) {
    IHLAB_CHECK(f["fit"].is_array(), "sweep: 'fit' must be [[fit]] tables with x and y");
    for (size_t i = 0; i < f["fit"].size(); ++i) {
      const std::string path = fmt::format("fit[{}]", i);
      auto& t = f["fit"][i];
      only_keys(t, path, {"x", "y"});
      IHLAB_CHECK(t.contains("x") && t["x"].is_string() && t.contains("y") && t["y"].is_string(),
                  "sweep: '{}' needs x (a swept key) and y (a final metric), both strings", path);
      IHLAB_CHECK(keys.count(t["x"].get<std::string>()) || (t["x"] == "seed" && d.seeds > 0),
                  "sweep: key '{}.x' = \"{}\" is not a swept key (swept: {})", path, t["x"].get<std::string>(),
                  join(keys));
      d.fits.push_back({t["x"], t["y"]});
    }
  }
  return d;
}

SweepDefinition parse_sweep_file(const std::string& path) {
  return parse_sweep_json(parse_toml_file(path), path, fs::path(path).parent_path().string());
}

SweepDefinition sweep_from_vary(const std::string& config_path, const std::vector<std::string>& vary,
                                const std::vector<std::string>& fits, const std::vector<std::string>& overrides) {
  IHLAB_CHECK(!vary.empty(), "sweep: give at least one --vary KEY=V1,V2,...");
  SweepDefinition d;
  d.base = parse_toml_file(config_path);
  d.base_source = config_path;
  d.overrides = overrides;
  std::set<std::string> keys;
  for (auto& text : vary) {
    size_t eq = text.find('=');
    IHLAB_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < text.size(),
                "sweep: --vary '{}' must look like KEY=V1,V2,... (e.g. task.vocab=4,8,16)", text);
    SweepAxisSpec a;
    a.key = text.substr(0, eq);
    for (auto& v : split(text.substr(eq + 1), ',')) {
      IHLAB_CHECK(!v.empty(), "sweep: --vary '{}' has an empty value", text);
      // The value as an override would read it (3 -> integer, adam -> string).
      nlohmann::json probe = nlohmann::json::object();
      apply_override(probe, "v=" + v);
      a.values.push_back(probe["v"]);
    }
    a.source = {{"vary", text}};
    IHLAB_CHECK(keys.insert(a.key).second, "sweep: key '{}' is varied twice", a.key);
    d.axes.push_back(std::move(a));
  }
  for (auto& text : fits) {
    size_t colon = text.find(':');
    IHLAB_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < text.size(),
                "sweep: --fit '{}' must look like X_KEY:Y_METRIC (e.g. task.vocab:val_loss)", text);
    SweepFitSpec f{text.substr(0, colon), text.substr(colon + 1)};
    IHLAB_CHECK(keys.count(f.x), "sweep: --fit '{}' needs '{}' among the --vary keys", text, f.x);
    d.fits.push_back(f);
  }
  return d;
}

SweepPlan plan_from_points(const nlohmann::json& definition, std::vector<PlannedPoint> points) {
  SweepPlan plan;
  plan.definition = definition;
  std::string all;
  for (size_t i = 0; i < points.size(); ++i) {
    points[i].id = int64_t(i);
    all += points[i].name + "\n" + (points[i].resolved.is_null() ? points[i].error : points[i].resolved.dump()) + "\n";
  }
  plan.hash = fnv1a_hex(all);
  plan.points = std::move(points);
  return plan;
}

SweepPlan plan_sweep(const SweepDefinition& d) {
  // Index tuples over the axes: the cartesian product (first axis slowest) or the zip.
  std::vector<std::vector<size_t>> combos;
  if (d.zip) {
    for (size_t i = 0; i < d.axes[0].values.size(); ++i) combos.push_back(std::vector<size_t>(d.axes.size(), i));
  } else {
    combos.assign(1, {});
    for (auto& a : d.axes) {
      std::vector<std::vector<size_t>> next;
      for (auto& c : combos)
        for (size_t i = 0; i < a.values.size(); ++i) {
          next.push_back(c);
          next.back().push_back(i);
        }
      combos = std::move(next);
    }
  }
  nlohmann::json base = d.base;
  for (auto& o : d.overrides) apply_override(base, o);
  const int64_t base_seed = base.contains("seed") && base["seed"].is_number_integer() ? base["seed"].get<int64_t>() : 0;
  const int seeds = std::max(d.seeds, 1);
  const size_t total = combos.size() * size_t(seeds);
  const int width = std::max(3, int(fmt::format("{}", total - 1).size()));

  std::vector<PlannedPoint> points;
  for (auto& c : combos)
    for (int s = 0; s < seeds; ++s) {
      PlannedPoint p;
      p.name = fmt::format("p{:0{}d}", points.size(), width);
      for (size_t k = 0; k < d.axes.size(); ++k) {
        const nlohmann::json& v = d.axes[k].values[c[k]];
        p.values[d.axes[k].key] = v;
        p.name += fmt::format("_{}", name_part(d.axes[k].key, v.is_string() ? v.get<std::string>() : toml_value(v)));
      }
      if (d.seeds > 0) {
        p.values["seed"] = base_seed + s;
        p.name += fmt::format("_seed={}", base_seed + s);
      }
      try {
        nlohmann::json raw = base;
        for (auto& [key, v] : p.values.items()) apply_override(raw, fmt::format("{}={}", key, toml_value(v)));
        p.resolved = run_schema().resolve(raw);
        p.seed = p.resolved.value("seed", int64_t(0));
      } catch (const Error& e) {
        p.resolved = nullptr;
        p.error = e.what();
      }
      points.push_back(std::move(p));
    }
  return plan_from_points(d.to_json(), std::move(points));
}

}  // namespace ihlab
