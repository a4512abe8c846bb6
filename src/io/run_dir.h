#pragma once
// Files a run leaves in its directory: metrics.csv (one row per logged step), JSON documents
// (checkpoints/latest.json; summary.json through io/run_summary.h), all written so that a crash
// never leaves a torn file.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ihlab {

// The rows of metrics.csv as numbers. columns[0] is "step"; empty cells are NaN.
struct MetricsTable {
  std::vector<std::string> columns;
  std::vector<std::vector<double>> rows;
  // All values of one column, in row order; throws ihlab::Error naming an unknown column.
  std::vector<double> column(const std::string& name) const;
};
// metrics.csv read back (a run directory another process wrote; tests). A last line without a
// newline (an unfinished row) is ignored.
MetricsTable read_metrics(const std::string& path);

// metrics.csv: header "step,<col1>,<col2>,..."; one row per log() call. Values are written with
// full precision ("%.17g", so they read back bit-exactly); a column not given in a call is left
// empty; a logged NaN is written "nan" (it was logged, unlike an empty cell). Each row is flushed
// to the OS as soon as it is written, so a crash of the process loses no finished row.
class MetricsLog {
 public:
  // Creates/truncates `path`. If resume_after_step >= 0 and the file exists, keeps its header and
  // only the rows with step <= resume_after_step (rewritten atomically), then appends; a last line
  // without a newline (a row cut off by a crash) is dropped. Throws ihlab::Error on I/O failure or
  // a malformed existing file.
  explicit MetricsLog(const std::string& path, int64_t resume_after_step = -1);
  MetricsLog(MetricsLog&&) noexcept = default;
  MetricsLog& operator=(MetricsLog&&) noexcept = default;

  // The first call fixes the columns (in the given order) unless the file already has a header.
  // Throws ihlab::Error naming an unknown column, a column given twice, or an invalid column name
  // (empty, "step", or containing ',', '"' or a line break).
  void log(int64_t step, const std::vector<std::pair<std::string, double>>& values);

  const std::vector<std::string>& columns() const { return columns_; }  // without "step"
  // Every row of the file as it now stands (rows kept on resume, then each log() call), equal bit
  // for bit to what read_metrics(path) would return: the run's metrics without reading them back.
  const MetricsTable& table() const { return table_; }

 private:
  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  void write_line(const std::string& line);

  std::string path_;
  std::vector<std::string> columns_;
  bool has_header_ = false;
  std::unique_ptr<std::FILE, FileCloser> file_;
  MetricsTable table_;
};

// Pretty-printed (2-space indent), written via "<path>.tmp" + fsync + rename.
void write_json_atomic(const std::string& path, const nlohmann::json& j);
// Throws ihlab::Error naming the file when it is missing or not valid JSON.
nlohmann::json read_json(const std::string& path);

}  // namespace ihlab
