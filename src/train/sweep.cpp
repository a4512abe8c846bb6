#include "train/sweep.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "analysis/fits.h"
#include "core/error.h"
#include "io/config.h"
#include "io/run_dir.h"
#include "train/run.h"
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

// A config value by dotted key ("task.vocab", "stages.0.lr"), or null.
nlohmann::json lookup(const nlohmann::json& cfg, const std::string& key) {
  const nlohmann::json* j = &cfg;
  for (auto& part : split(key, '.')) {
    if (j->is_array() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      size_t i = std::stoul(part);
      if (i >= j->size()) return nullptr;
      j = &(*j)[i];
    } else if (j->is_object() && j->contains(part)) {
      j = &(*j)[part];
    } else {
      return nullptr;
    }
  }
  return *j;
}

double as_number(const nlohmann::json& j) { return j.is_number() ? j.get<double>() : NAN; }

// A directory name part: the key's last component and the value, filesystem-safe.
std::string name_part(const std::string& key, const std::string& value) {
  std::string k = key.substr(key.rfind('.') == std::string::npos ? 0 : key.rfind('.') + 1);
  std::string out = k + "=";
  for (char c : value) out += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '_';
  return out;
}

}  // namespace

SweepAxis parse_sweep_axis(const std::string& text) {
  size_t eq = text.find('=');
  IHLAB_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < text.size(),
              "sweep: --vary '{}' must look like KEY=V1,V2,... (e.g. task.vocab=4,8,16)", text);
  SweepAxis a{text.substr(0, eq), split(text.substr(eq + 1), ',')};
  for (auto& v : a.values) IHLAB_CHECK(!v.empty(), "sweep: --vary '{}' has an empty value", text);
  return a;
}

SweepFit parse_sweep_fit(const std::string& text) {
  size_t colon = text.find(':');
  IHLAB_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < text.size(),
              "sweep: --fit '{}' must look like X_KEY:Y_METRIC (e.g. task.vocab:val_loss)", text);
  return {text.substr(0, colon), text.substr(colon + 1)};
}

nlohmann::json scaling_fit_json(const std::string& name, const std::string& x_key, const std::string& y_key,
                                const std::vector<double>& x, const std::vector<double>& y) {
  nlohmann::json points = nlohmann::json::array();
  std::vector<double> lx, ly;
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i] > 0 && y[i] > 0 && std::isfinite(x[i]) && std::isfinite(y[i])) {
      points.push_back({x[i], y[i]});
      lx.push_back(std::log(x[i]));
      ly.push_back(std::log(y[i]));
    }
  nlohmann::json out = {{"name", name}, {"x", x_key}, {"y", y_key}, {"points", points}};
  if (lx.size() < 2) return out;
  LineFitCI f = fit_line_ci(lx, ly);
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  out["fit"] = {{"slope", f.fit.slope},        {"intercept", f.fit.intercept}, {"r2", f.fit.r2},  {"n", f.fit.n},
                {"slope_lo", num(f.slope_lo)}, {"slope_hi", num(f.slope_hi)},  {"level", f.level}};
  nlohmann::json band = nlohmann::json::array();
  const double lo = *std::min_element(lx.begin(), lx.end()), hi = *std::max_element(lx.begin(), lx.end());
  if (std::isfinite(f.t) && hi > lo)
    for (int i = 0; i < 50; ++i) {
      double u = lo + (hi - lo) * i / 49.0;
      auto [blo, bhi] = f.band(u);
      band.push_back({std::exp(u), std::exp(blo), std::exp(bhi)});
    }
  out["band"] = band;
  return out;
}

SweepResult run_sweep(const std::string& config_path, const std::string& out_dir, const SweepOptions& o) {
  IHLAB_CHECK(!o.axes.empty(), "sweep: give at least one --vary KEY=V1,V2,...");
  std::set<std::string> keys;
  for (auto& a : o.axes) IHLAB_CHECK(keys.insert(a.key).second, "sweep: key '{}' is varied twice", a.key);
  for (auto& f : o.fits)
    IHLAB_CHECK(keys.count(f.x), "sweep: --fit '{}:{}' needs '{}' among the --vary keys", f.x, f.y, f.x);
  // The grid, first axis slowest. Every point is resolved before anything runs, so a bad value
  // fails at once instead of after hours of earlier runs.
  std::vector<std::vector<size_t>> grid(1);
  for (auto& a : o.axes) {
    std::vector<std::vector<size_t>> next;
    for (auto& g : grid)
      for (size_t i = 0; i < a.values.size(); ++i) {
        next.push_back(g);
        next.back().push_back(i);
      }
    grid = std::move(next);
  }
  struct Point {
    std::string dir;
    std::map<std::string, std::string> values;
    nlohmann::json resolved;
  };
  std::vector<Point> points;
  for (size_t r = 0; r < grid.size(); ++r) {
    Point p;
    std::vector<std::string> overrides = o.overrides;
    std::string name = fmt::format("r{:03d}", r);
    for (size_t k = 0; k < o.axes.size(); ++k) {
      const std::string& v = o.axes[k].values[grid[r][k]];
      overrides.push_back(o.axes[k].key + "=" + v);
      p.values[o.axes[k].key] = v;
      name += fmt::format("_{}", name_part(o.axes[k].key, v));
    }
    p.dir = (fs::path(out_dir) / "runs" / name).string();
    p.resolved = load_config(config_path, overrides, run_schema());
    points.push_back(std::move(p));
  }
  fs::create_directories(fs::path(out_dir) / "runs");

  SweepResult res;
  res.runs = int(points.size());
  nlohmann::json runs = nlohmann::json::array();
  for (size_t r = 0; r < points.size(); ++r) {
    Point& p = points[r];
    // A run finished by an earlier sweep is read back; one run now is taken as train() returned it.
    std::optional<RunSummary> s;
    if (fs::exists(fs::path(p.dir) / "summary.json")) s = read_summary(p.dir);
    if (s && s->finished()) {
      ++res.skipped;
    } else {
      if (!o.quiet) fmt::print("sweep: run {} of {}: {}\n", r + 1, points.size(), p.dir);
      TrainOptions t;
      t.quiet = o.quiet;
      t.resume = fs::exists(fs::path(p.dir) / "checkpoints" / "latest.json");
      t.command = o.command;
      RunResult rr = run_config(p.resolved, p.dir, t);
      if (o.after_run) o.after_run(p.dir, rr);
      s = rr.summary;
      if (rr.summary.status == RunStatus::Interrupted) break;  // Ctrl-C stops the sweep; a rerun continues it
    }
    if (s->finished()) ++res.finished;
    nlohmann::json values = nlohmann::json::object();
    for (auto& [k, v] : p.values) values[k] = lookup(p.resolved, k);
    nlohmann::json sj = summary_to_json(*s);
    runs.push_back({{"dir", fs::relative(p.dir, out_dir).string()},
                    {"overrides", values},
                    {"status", sj["status"]},
                    {"final", sj["final"]},
                    {"summary", sj}});
  }

  // sweep.csv: one row per run, the swept keys, then every final metric any run has.
  std::set<std::string> metric_names;
  for (auto& r : runs)
    for (auto& [k, v] : r["final"].items()) metric_names.insert(k);
  std::ofstream csv(fs::path(out_dir) / "sweep.csv");
  csv << "run";
  for (auto& a : o.axes) csv << "," << a.key;
  csv << ",status";
  for (auto& m : metric_names) csv << "," << m;
  csv << "\n";
  for (auto& r : runs) {
    csv << r["dir"].get<std::string>();
    for (auto& a : o.axes) csv << "," << r["overrides"][a.key].dump();
    csv << "," << r["status"].get<std::string>();
    for (auto& m : metric_names)
      csv << "," << (r["final"].contains(m) ? fmt::format("{:.17g}", r["final"][m].get<double>()) : "");
    csv << "\n";
  }

  nlohmann::json scaling = nlohmann::json::array();
  for (auto& f : o.fits) {
    std::vector<double> xs, ys;
    for (auto& r : runs) {
      if (r["status"] != "finished") continue;
      double y =
          r["final"].contains(f.y) ? as_number(r["final"][f.y]) : as_number(r["summary"].value(f.y, nlohmann::json()));
      xs.push_back(as_number(r["overrides"][f.x]));
      ys.push_back(y);
    }
    scaling.push_back(scaling_fit_json(f.y + " vs " + f.x, f.x, f.y, xs, ys));
  }
  for (auto& r : runs) r.erase("summary");
  res.summary.kind = RunSummary::Kind::Sweep;
  res.summary.name = fs::absolute(out_dir).lexically_normal().filename().string();
  res.summary.status = res.finished == res.runs ? RunStatus::Finished : RunStatus::Incomplete;
  res.summary.message = fmt::format("{} of {} runs finished", res.finished, res.runs);
  res.summary.command = o.command;
  res.summary.sections = {{"runs", runs}, {"scaling", scaling}};
  write_summary(out_dir, res.summary);
  return res;
}

}  // namespace ihlab
