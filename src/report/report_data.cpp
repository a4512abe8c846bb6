// Collects what a run or sweep directory holds into the DATA object that report.js draws.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "core/error.h"
#include "io/run_dir.h"
#include "report/report.h"

namespace ihlab {
namespace fs = std::filesystem;

namespace {

// Six significant digits are plenty on screen and keep long runs' reports small.
nlohmann::json short_number(double v) {
  if (!std::isfinite(v)) return nullptr;
  return std::strtod(fmt::format("{:.6g}", v).c_str(), nullptr);
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// metrics.csv as {columns: [...], data: {column: [values]}} (column-major: one array per curve).
nlohmann::json metrics_json(const MetricsTable& t) {
  nlohmann::json out = {{"columns", nlohmann::json::array()}, {"data", nlohmann::json::object()}};
  out["columns"] = t.columns;
  for (size_t c = 0; c < t.columns.size(); ++c) {
    nlohmann::json values = nlohmann::json::array();
    for (auto& row : t.rows) values.push_back(c < row.size() ? short_number(row[c]) : nullptr);
    out["data"][t.columns[c]] = std::move(values);
  }
  return out;
}

// attention.jsonl: at most `keep` snapshots, evenly spread, always the first and the last.
nlohmann::json attention_json(const fs::path& path, size_t keep = 40) {
  nlohmann::json snaps = nlohmann::json::array();
  if (!fs::exists(path)) return snaps;
  std::ifstream f(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) lines.push_back(line);
  if (!f.eof() && !lines.empty()) lines.pop_back();
  std::vector<size_t> pick;
  for (size_t i = 0; i < lines.size(); ++i) {
    size_t k = lines.size() <= keep ? i : size_t(std::llround(double(i) * (keep - 1) / (lines.size() - 1)));
    if (lines.size() <= keep)
      pick.push_back(i);
    else if (pick.empty() || pick.back() != k)
      pick.push_back(k);
    if (lines.size() > keep && pick.size() == keep) break;
  }
  for (size_t i : pick) {
    nlohmann::json s = nlohmann::json::parse(lines[i], nullptr, false);
    if (s.is_discarded()) continue;  // a line cut off by a crash
    for (auto& m : s["maps"])
      for (auto& w : m["weights"]) w = short_number(w.get<double>());
    snaps.push_back(std::move(s));
  }
  return snaps;
}

// Any other *.csv a reproduction wrote (e.g. generalization.csv): {columns, rows}, numbers parsed.
nlohmann::json tables_json(const fs::path& dir, size_t max_rows = 5000) {
  nlohmann::json tables = nlohmann::json::object();
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".csv" && e.path().filename() != "metrics.csv") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (auto& p : files) {
    std::ifstream f(p);
    std::string line;
    if (!std::getline(f, line)) continue;
    auto split = [](const std::string& s) {
      std::vector<std::string> v;
      std::stringstream ss(s);
      for (std::string x; std::getline(ss, x, ',');) v.push_back(x);
      return v;
    };
    nlohmann::json t = {{"columns", split(line)}, {"rows", nlohmann::json::array()}};
    while (std::getline(f, line) && t["rows"].size() < max_rows) {
      nlohmann::json row = nlohmann::json::array();
      for (auto& cell : split(line)) {
        char* end = nullptr;
        double v = std::strtod(cell.c_str(), &end);
        if (!cell.empty() && end == cell.c_str() + cell.size())
          row.push_back(short_number(v));
        else
          row.push_back(cell);
      }
      t["rows"].push_back(std::move(row));
    }
    tables[p.stem().string()] = std::move(t);
  }
  return tables;
}

// figures/index.json as written by figures.py: [{"name", "caption"}, ...].
nlohmann::json figures_json(const fs::path& dir) {
  nlohmann::json out = nlohmann::json::array();
  fs::path index = dir / "figures" / "index.json";
  if (!fs::exists(index)) return out;
  nlohmann::json j = nlohmann::json::parse(read_text(index), nullptr, false);
  if (j.is_object() && j.contains("figures")) j = j["figures"];
  if (!j.is_array()) return out;
  for (auto& f : j) {
    if (!f.is_object() || !f.contains("name")) continue;
    std::string name = f["name"];
    if (!fs::exists(dir / "figures" / (name + ".svg"))) continue;  // never link a missing file
    out.push_back({{"name", name}, {"caption", f.value("caption", "")}});
  }
  return out;
}

}  // namespace

nlohmann::json report_data(const std::string& dir_str, const ReportInputs& in) {
  fs::path dir(dir_str);
  IHLAB_CHECK(fs::is_directory(dir), "report: '{}' is not a directory", dir_str);
  IHLAB_CHECK(in.summary || in.metrics || fs::exists(dir / "metrics.csv") || fs::exists(dir / "summary.json"),
              "report: '{}' holds neither metrics.csv nor summary.json; give a run or sweep directory", dir_str);
  nlohmann::json summary = in.summary                         ? summary_to_json(*in.summary)
                           : fs::exists(dir / "summary.json") ? read_json((dir / "summary.json").string())
                                                              : nlohmann::json::object();
  MetricsTable read;
  if (!in.metrics && fs::exists(dir / "metrics.csv")) read = read_metrics((dir / "metrics.csv").string());
  const MetricsTable& metrics = in.metrics ? *in.metrics : read;
  std::string command;
  if (summary.contains("reproduction") && summary["reproduction"].contains("command"))
    command = summary["reproduction"]["command"];
  else if (summary.contains("command"))
    command = summary["command"];
  std::string name = summary.value("name", fs::absolute(dir).lexically_normal().filename().string());
  return {{"name", name},
          {"version", "0.1.0"},
          {"generated", fmt::format("{:%Y-%m-%d %H:%M:%S} UTC", fmt::gmtime(std::time(nullptr)))},
          {"summary", summary},
          {"command", command},
          {"config_toml", fs::exists(dir / "config.toml") ? read_text(dir / "config.toml") : ""},
          {"metrics", metrics_json(metrics)},
          {"attention", attention_json(dir / "attention.jsonl")},
          {"tables", tables_json(dir)},
          {"figures", figures_json(dir)}};
}

}  // namespace ihlab
