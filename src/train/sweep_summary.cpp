// What a sweep directory holds, read from its store(s): summary.json (runs, aggregates over seeds,
// scaling fits), sweep.csv and `ihlab sweep status`.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>

#include "analysis/fits.h"
#include "core/error.h"
#include "train/sweep.h"
#include "train/sweep_shards.h"

namespace ihlab {
namespace fs = std::filesystem;

namespace {

double as_number(const nlohmann::json& j) { return j.is_number() ? j.get<double>() : NAN; }

// Seconds since the epoch of an ISO-8601 UTC stamp written by utc_now_iso(); NaN when empty.
double epoch_seconds(const std::string& iso) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &ms) != 7)
    return NAN;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return double(timegm(&tm)) + ms / 1000.0;
}

// Mean and 95% t-interval of each final metric over the done points that differ only in seed.
nlohmann::json aggregates(const std::vector<StorePoint>& points) {
  std::map<std::string, std::vector<const StorePoint*>> groups;
  std::vector<std::string> order;
  for (auto& p : points) {
    nlohmann::json key = p.overrides;
    key.erase("seed");
    const std::string k = key.dump();
    if (!groups.count(k)) order.push_back(k);
    groups[k].push_back(&p);
  }
  nlohmann::json out = nlohmann::json::array();
  for (auto& k : order) {
    auto& g = groups[k];
    std::map<std::string, std::vector<double>> values;
    int done = 0;
    for (auto* p : g) {
      if (p->status != PointStatus::Done) continue;
      ++done;
      for (auto& [m, v] : p->final_metrics.items())
        if (v.is_number()) values[m].push_back(v.get<double>());
    }
    nlohmann::json metrics = nlohmann::json::object();
    for (auto& [m, v] : values) {
      const int n = int(v.size());
      double mean = 0, ss = 0;
      for (double x : v) mean += x / n;
      for (double x : v) ss += (x - mean) * (x - mean);
      nlohmann::json e = {{"n", n}, {"mean", mean}};
      if (n >= 2) {
        const double sd = std::sqrt(ss / (n - 1)), half = student_t_quantile(0.95, n - 1) * sd / std::sqrt(n);
        e["sd"] = sd;
        e["lo"] = mean - half;
        e["hi"] = mean + half;
      }
      metrics[m] = e;
    }
    out.push_back(
        {{"overrides", nlohmann::json::parse(k)}, {"points", int(g.size())}, {"done", done}, {"metrics", metrics}});
  }
  return out;
}

void write_csv(const std::string& out_dir, const std::vector<StorePoint>& points) {
  std::vector<std::string> keys;
  std::set<std::string> metric_names;
  for (auto& p : points) {
    for (auto& [k, v] : p.overrides.items())
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    for (auto& [k, v] : p.final_metrics.items()) metric_names.insert(k);
  }
  std::ofstream csv(fs::path(out_dir) / "sweep.csv");
  csv << "run";
  for (auto& k : keys) csv << "," << k;
  csv << ",status,wall_s";
  for (auto& m : metric_names) csv << "," << m;
  csv << "\n";
  for (auto& p : points) {
    csv << p.dir;
    for (auto& k : keys) csv << "," << (p.overrides.contains(k) ? p.overrides[k].dump() : "");
    csv << "," << to_string(p.status) << "," << fmt::format("{:.3f}", p.wall_s);
    for (auto& m : metric_names)
      csv << ","
          << (p.final_metrics.contains(m) && p.final_metrics[m].is_number()
                  ? fmt::format("{:.17g}", p.final_metrics[m].get<double>())
                  : "");
    csv << "\n";
  }
}

}  // namespace

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

RunSummary write_sweep_summary(const std::string& out_dir, const std::string& command) {
  SweepContents c = read_sweep_contents(out_dir);
  nlohmann::json runs = nlohmann::json::array();
  int done = 0;
  for (auto& p : c.points) {
    done += p.status == PointStatus::Done;
    nlohmann::json r = {{"dir", p.dir},
                        {"overrides", p.overrides},
                        {"status", p.status == PointStatus::Done ? "finished" : std::string(to_string(p.status))},
                        {"final", p.final_metrics},
                        {"wall_s", p.wall_s},
                        {"attempts", p.attempts}};
    if (!p.error.empty()) r["error"] = p.error;
    runs.push_back(r);
  }
  nlohmann::json scaling = nlohmann::json::array();
  for (auto& f : c.definition.value("fits", nlohmann::json::array())) {
    const std::string x = f["x"], y = f["y"];
    std::vector<double> xs, ys;
    for (auto& p : c.points) {
      if (p.status != PointStatus::Done) continue;
      xs.push_back(as_number(p.overrides.value(x, nlohmann::json())));
      ys.push_back(as_number(p.final_metrics.value(y, nlohmann::json())));
    }
    scaling.push_back(scaling_fit_json(y + " vs " + x, x, y, xs, ys));
  }
  write_csv(out_dir, c.points);
  RunSummary s;
  s.kind = RunSummary::Kind::Sweep;
  s.name = fs::absolute(out_dir).lexically_normal().filename().string();
  s.status = done == int(c.points.size()) ? RunStatus::Finished : RunStatus::Incomplete;
  s.message = fmt::format("{} of {} points done", done, c.points.size());
  s.command = command;
  s.sections = {{"runs", runs}, {"aggregates", aggregates(c.points)}, {"scaling", scaling}, {"stores", c.stores}};
  write_summary(out_dir, s);
  return s;
}

std::string sweep_status_text(const std::string& out_dir) {
  SweepContents c = read_sweep_contents(out_dir);
  StoreCounts n;
  double first = INFINITY, last = -INFINITY, wall = 0;
  int ended = 0;
  for (auto& p : c.points) {
    switch (p.status) {
      case PointStatus::Pending: ++n.pending; break;
      case PointStatus::Running: ++n.running; break;
      case PointStatus::Done: ++n.done; break;
      case PointStatus::Failed: ++n.failed; break;
    }
    if (!p.started_at.empty()) first = std::min(first, epoch_seconds(p.started_at));
    if (p.status == PointStatus::Done || p.status == PointStatus::Failed) {
      last = std::max(last, epoch_seconds(p.ended_at));
      wall += p.wall_s;
      ++ended;
    }
  }
  std::string out = fmt::format("{}: {} points: {} done, {} running, {} failed, {} pending (stores: {})\n", out_dir,
                                n.total(), n.done, n.running, n.failed, n.pending, c.stores.size());
  const double now = double(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  if (ended > 0 && std::isfinite(first)) {
    const double span = std::max((n.running > 0 ? now : last) - first, 1e-3);
    const double rate = ended / span;
    const int left = int((n.pending + n.running) / rate);
    out += fmt::format("rate {:.3g} points/min over {:.0f} s (mean {:.2f} s per point); ETA {}:{:02d}:{:02d}\n",
                       rate * 60, span, wall / ended, left / 3600, left / 60 % 60, left % 60);
  }
  for (auto& p : c.points)
    if (p.status == PointStatus::Failed)
      out += fmt::format("  failed {} (exit {}, {} attempts): {}\n", p.name, p.exit_status, p.attempts, p.error);
  return out;
}

}  // namespace ihlab
