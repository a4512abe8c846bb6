#pragma once
// `ihlab report DIR`: a self-contained DIR/report.html (claims, loss against reference floors,
// every logged family as small multiples, attention heat-maps over snapshots, the trained weight
// blocks of summary.json "weights" as diverging heat-maps, scaling fits of a sweep, extra tables,
// the resolved config and the command) and paper-style figures under
// DIR/figures/ (SVG and PNG, drawn by matplotlib through the embedded figures.py).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/run_dir.h"
#include "io/run_summary.h"

namespace ihlab {

struct ReportOptions {
  bool figures = true;  // run the figure script (needs python3 with matplotlib)
  bool quiet = false;
};

struct ReportResult {
  std::string html;                   // path of report.html
  std::vector<std::string> warnings;  // e.g. figures skipped because matplotlib is missing
};

// What the process that just made the run holds in memory: given, the report takes the summary
// and the metrics from here instead of reading DIR/summary.json and DIR/metrics.csv back.
struct ReportInputs {
  const RunSummary* summary = nullptr;
  const MetricsTable* metrics = nullptr;
};

// Throws ihlab::Error when DIR is not a run or sweep directory (no metrics.csv or summary.json).
ReportResult write_report(const std::string& dir, const ReportOptions& options = {}, const ReportInputs& in = {});

// The DATA object report.js draws from (exposed for tests).
nlohmann::json report_data(const std::string& dir, const ReportInputs& in = {});

// The filled HTML template for `data` (exposed for tests).
std::string render_report_html(const nlohmann::json& data);

// Runs the embedded figure script on DIR; returns an empty string on success, else why it did not.
std::string write_figures(const std::string& dir, bool quiet);

}  // namespace ihlab
