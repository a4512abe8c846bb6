// Fuzzes the readers of metrics.csv (io/run_dir.h): read_metrics, as reports and reproductions
// read a finished run, and MetricsLog's resume, as `ihlab train --resume` reopens the file of an
// interrupted run (keeps the header and the rows up to the checkpoint's step, then appends).
//   property: a file that resume accepted, once a row is appended, reads with read_metrics, and
//   holds the kept rows plus the new one.
#include "fuzz_util.h"
#include "core/error.h"
#include "io/run_dir.h"

#include <set>

namespace {

using namespace ihlab;

constexpr int64_t kResumeStep = 100;  // the seeds (a real run's metrics.csv) log steps 0, 25, ...

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_scratch("metrics.csv", fuzz::as_text(data, size));
  try {
    MetricsTable t = read_metrics(path);
    for (auto& row : t.rows) IHLAB_FUZZ_CHECK(row.size() == t.columns.size(), "a row of the wrong width");
  } catch (const Error&) {
  }

  std::vector<std::string> columns;
  try {
    MetricsLog log(path, kResumeStep);
    columns = log.columns();
    std::set<std::string> distinct(columns.begin(), columns.end());
    std::vector<std::pair<std::string, double>> row;
    for (auto& c : distinct) row.push_back({c, 0.5});
    log.log(kResumeStep + 1, row);
  } catch (const Error&) {
    return 0;  // resume refused the file (or a column name): the run stops with a message
  }
  MetricsTable after;
  try {
    after = read_metrics(path);
  } catch (const Error& e) {
    std::fprintf(stderr, "read_metrics after resume: %s\n", e.what());
    IHLAB_FUZZ_CHECK(false, "resume kept a metrics.csv that read_metrics refuses");
  }
  IHLAB_FUZZ_CHECK(!after.rows.empty() && after.rows.back()[0] == double(kResumeStep + 1),
                   "the appended row is not the last one");
  for (auto& row : after.rows) IHLAB_FUZZ_CHECK(row[0] <= double(kResumeStep + 1), "resume kept a later row");
  return 0;
}
