#include "io/run_dir.h"

#include "core/error.h"
#include "io/safetensors.h"  // write_file_atomic

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace ihlab {
namespace {

namespace fs = std::filesystem;

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("cannot read {}: file does not exist", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {}: {}", path, std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) fail("cannot read {}: {}", path, std::strerror(errno));
  return s.str();
}

// Only lines ended by '\n' count: an unterminated last line is a row cut off by a crash.
std::vector<std::string> complete_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(text.substr(start, nl - start));
  return lines;
}

std::vector<std::string> split_commas(const std::string& line) {
  std::vector<std::string> cells;
  size_t start = 0;
  for (size_t comma; (comma = line.find(',', start)) != std::string::npos; start = comma + 1)
    cells.push_back(line.substr(start, comma - start));
  cells.push_back(line.substr(start));
  return cells;
}

std::string join_commas(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
  return s;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "nan";  // one spelling, whatever the sign bit
  return fmt::format("{:.17g}", v);
}

// Empty cell -> NaN (not logged); anything else must parse completely.
double parse_cell(const std::string& path, size_t line_no, const std::string& cell) {
  if (cell.empty()) return std::nan("");
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(cell.c_str(), &end);
  // ERANGE on underflow still yields the correctly rounded denormal; only a partial parse is bad.
  if (end != cell.c_str() + cell.size()) fail("metrics file {} line {}: '{}' is not a number", path, line_no, cell);
  return v;
}

int64_t parse_step(const std::string& path, size_t line_no, const std::string& cell) {
  int64_t step = 0;
  auto [ptr, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), step);
  if (ec != std::errc() || ptr != cell.data() + cell.size())
    fail("metrics file {} line {}: step '{}' is not an integer", path, line_no, cell);
  return step;
}

void check_column_name(const std::string& path, const std::string& name) {
  IHLAB_CHECK(!name.empty() && name != "step" && name.find_first_of(",\"\r\n") == std::string::npos,
              "metrics {}: invalid column name '{}' (must be non-empty, not 'step', without commas, quotes or "
              "line breaks)",
              path, name);
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path, int64_t resume_after_step) : path_(path) {
  const char* mode = "w";
  std::error_code ec;
  if (resume_after_step >= 0 && fs::exists(path, ec)) {
    std::vector<std::string> lines = complete_lines(read_text_file(path));
    std::string kept;
    if (!lines.empty()) {
      std::vector<std::string> header = split_commas(lines[0]);
      IHLAB_CHECK(header[0] == "step", "metrics file {}: header must start with 'step', got '{}'", path, lines[0]);
      columns_.assign(header.begin() + 1, header.end());
      has_header_ = true;
      table_.columns = header;
      kept = lines[0] + "\n";
      for (size_t i = 1; i < lines.size(); ++i) {
        std::vector<std::string> cells = split_commas(lines[i]);
        IHLAB_CHECK(cells.size() == header.size(), "metrics file {} line {}: {} cells but the header has {}", path,
                    i + 1, cells.size(), header.size());
        if (parse_step(path, i + 1, cells[0]) > resume_after_step) continue;
        kept += lines[i] + "\n";
        std::vector<double> row;
        for (auto& c : cells) row.push_back(parse_cell(path, i + 1, c));
        table_.rows.push_back(std::move(row));
      }
    }
    // Atomic: a crash during resume must not lose the rows that were already there.
    write_file_atomic(path, kept);
    mode = "a";
  }
  file_.reset(std::fopen(path.c_str(), mode));
  if (!file_) fail("metrics: cannot open {}: {}", path, std::strerror(errno));
}

void MetricsLog::write_line(const std::string& line) {
  if (std::fputs(line.c_str(), file_.get()) < 0 || std::fputc('\n', file_.get()) == EOF ||
      std::fflush(file_.get()) != 0)
    fail("metrics: cannot write {}: {}", path_, std::strerror(errno));
}

void MetricsLog::log(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  IHLAB_CHECK(file_ != nullptr, "metrics: log() on a moved-from MetricsLog");
  if (!has_header_) {
    // Validate into a local first: a rejected call must not fix half the columns.
    std::vector<std::string> first_columns;
    for (auto& [name, v] : values) {
      check_column_name(path_, name);
      IHLAB_CHECK(std::find(first_columns.begin(), first_columns.end(), name) == first_columns.end(),
                  "metrics {}: column '{}' given twice", path_, name);
      first_columns.push_back(name);
    }
    write_line("step" + std::string(first_columns.empty() ? "" : ",") + join_commas(first_columns));
    columns_ = std::move(first_columns);
    has_header_ = true;
    table_.columns = {"step"};
    table_.columns.insert(table_.columns.end(), columns_.begin(), columns_.end());
  }
  std::vector<std::string> cells(columns_.size());
  std::vector<bool> given(columns_.size(), false);
  // The row as read_metrics would parse it back: an empty cell and any NaN read as std::nan("").
  std::vector<double> row(columns_.size() + 1, std::nan(""));
  row[0] = double(step);
  for (auto& [name, v] : values) {
    auto it = std::find(columns_.begin(), columns_.end(), name);
    IHLAB_CHECK(it != columns_.end(),
                "metrics {}: unknown column '{}' (columns are: {}; the first log call fixes them)", path_, name,
                join_commas(columns_));
    size_t i = size_t(it - columns_.begin());
    IHLAB_CHECK(!given[i], "metrics {}: column '{}' given twice", path_, name);
    given[i] = true;
    cells[i] = format_value(v);
    if (!std::isnan(v)) row[i + 1] = v;
  }
  write_line(std::to_string(step) + (cells.empty() ? "" : ",") + join_commas(cells));
  table_.rows.push_back(std::move(row));
}

std::vector<double> MetricsTable::column(const std::string& name) const {
  auto it = std::find(columns.begin(), columns.end(), name);
  IHLAB_CHECK(it != columns.end(), "metrics: no column '{}' (columns are: {})", name, join_commas(columns));
  size_t i = size_t(it - columns.begin());
  std::vector<double> out;
  for (auto& row : rows) out.push_back(row[i]);
  return out;
}

MetricsTable read_metrics(const std::string& path) {
  std::vector<std::string> lines = complete_lines(read_text_file(path));
  MetricsTable table;
  if (lines.empty()) return table;  // created but nothing logged yet
  table.columns = split_commas(lines[0]);
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> cells = split_commas(lines[i]);
    IHLAB_CHECK(cells.size() == table.columns.size(), "metrics file {} line {}: {} cells but the header has {}", path,
                i + 1, cells.size(), table.columns.size());
    std::vector<double> row;
    for (auto& c : cells) row.push_back(parse_cell(path, i + 1, c));
    table.rows.push_back(std::move(row));
  }
  return table;
}

void write_json_atomic(const std::string& path, const nlohmann::json& j) {
  std::string text;
  try {
    text = j.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {
    fail("cannot write {}: {}", path, e.what());
  }
  write_file_atomic(path, text);
}

nlohmann::json read_json(const std::string& path) {
  std::string text = read_text_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    fail("{} is not valid JSON: {}", path, e.what());
  }
}

}  // namespace ihlab
