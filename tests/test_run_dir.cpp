// metrics.csv (full precision, missing columns, resume truncation, crash-cut rows) and the JSON
// files of a run directory.
#include "io/run_dir.h"
#include "io/run_summary.h"

#include "core/error.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace ihlab {
namespace {

namespace fs = std::filesystem;

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected ihlab::Error";
  return "";
}
#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "'" << (text) << "' lacks '" << (part) << "'"

class RunDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / fmt::format("ihlab_{}_{}_{}", info->test_suite_name(), info->name(), ::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string text_of(const std::string& name) const {
    std::ifstream in(path(name), std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  void write_text(const std::string& name, const std::string& text) const {
    std::ofstream(path(name), std::ios::binary) << text;
  }
  std::vector<std::string> files_in_dir() const {
    std::vector<std::string> names;
    for (auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  // Logs steps first..last with loss = step / 10 and acc = step.
  void log_steps(MetricsLog& log, int64_t first, int64_t last) {
    for (int64_t s = first; s <= last; ++s) log.log(s, {{"loss", double(s) / 10}, {"acc", double(s)}});
  }
  fs::path dir_;
};

class Metrics : public RunDirTest {};

TEST_F(Metrics, WritesHeaderAndReadsBackBitExact) {
  const std::vector<double> values = {
      0.1, 1.0 / 3, 1e-300, std::numeric_limits<double>::denorm_min(), -2.5e17, 123456789.123456789, -0.0};
  {
    MetricsLog log(path("metrics.csv"));
    for (size_t i = 0; i < values.size(); ++i) log.log(int64_t(i), {{"x", values[i]}, {"y", -values[i]}});
  }
  EXPECT_EQ(text_of("metrics.csv").substr(0, 52), "step,x,y\n0,0.10000000000000001,-0.10000000000000001\n");
  MetricsTable t = read_metrics(path("metrics.csv"));
  EXPECT_EQ(t.columns, (std::vector<std::string>{"step", "x", "y"}));
  ASSERT_EQ(t.rows.size(), values.size());
  std::vector<double> x = t.column("x"), y = t.column("y"), step = t.column("step");
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint64_t>(x[i]), std::bit_cast<uint64_t>(values[i])) << i;
    EXPECT_EQ(std::bit_cast<uint64_t>(y[i]), std::bit_cast<uint64_t>(-values[i])) << i;
    EXPECT_EQ(step[i], double(i));
  }
  EXPECT_CONTAINS(error_of([&] { t.column("nope"); }), "no column 'nope' (columns are: step,x,y)");
}

TEST_F(Metrics, MissingColumnsAreEmptyAndLoggedNaNIsKept) {
  {
    MetricsLog log(path("m.csv"));
    log.log(0, {{"loss", 1.5}, {"acc", 0.25}, {"gnorm", 3}});
    log.log(1, {{"acc", 0.5}});  // any order, any subset
    log.log(2, {{"gnorm", std::nan("")}, {"loss", std::numeric_limits<double>::infinity()}});
    log.log(3, {});
  }
  EXPECT_EQ(text_of("m.csv"), "step,loss,acc,gnorm\n0,1.5,0.25,3\n1,,0.5,\n2,inf,,nan\n3,,,\n");
  MetricsTable t = read_metrics(path("m.csv"));
  ASSERT_EQ(t.rows.size(), 4u);
  EXPECT_TRUE(std::isnan(t.rows[1][1]));
  EXPECT_EQ(t.rows[1][2], 0.5);
  EXPECT_TRUE(std::isinf(t.rows[2][1]));
  EXPECT_TRUE(std::isnan(t.rows[2][3]));
}

TEST_F(Metrics, UnknownDuplicateAndInvalidColumnsAreErrors) {
  MetricsLog log(path("m.csv"));
  EXPECT_CONTAINS(error_of([&] { log.log(0, {{"a,b", 1}}); }), "invalid column name 'a,b'");
  EXPECT_CONTAINS(error_of([&] { log.log(0, {{"step", 1}}); }), "invalid column name 'step'");
  EXPECT_CONTAINS(error_of([&] { log.log(0, {{"a", 1}, {"a", 2}}); }), "column 'a' given twice");
  log.log(0, {{"loss", 1}, {"acc", 2}});
  std::string msg = error_of([&] { log.log(1, {{"loss", 1}, {"lr", 0.1}}); });
  EXPECT_CONTAINS(msg, "unknown column 'lr' (columns are: loss,acc");
  EXPECT_CONTAINS(msg, path("m.csv"));
  EXPECT_EQ(text_of("m.csv"), "step,loss,acc\n0,1,2\n");  // failed calls wrote nothing
}

TEST_F(Metrics, EveryRowIsOnDiskAsSoonAsItIsLogged) {
  MetricsLog log(path("m.csv"));
  log_steps(log, 0, 2);
  // The log is still open: what a crash right now would leave behind.
  EXPECT_EQ(read_metrics(path("m.csv")).rows.size(), 3u);
}

TEST_F(Metrics, ResumeKeepsExactlyTheRowsUpToTheStep) {
  {
    MetricsLog log(path("m.csv"));
    log_steps(log, 0, 10);
  }
  {
    MetricsLog log(path("m.csv"), 6);
    EXPECT_EQ(log.columns(), (std::vector<std::string>{"loss", "acc"}));  // taken from the file
    EXPECT_EQ(read_metrics(path("m.csv")).column("step"), (std::vector<double>{0, 1, 2, 3, 4, 5, 6}));
    log.log(7, {{"acc", 70}, {"loss", 0.7}});  // the header fixes the columns, not the first call
    EXPECT_CONTAINS(error_of([&] { log.log(8, {{"lr", 1}}); }), "unknown column 'lr'");
  }
  MetricsTable t = read_metrics(path("m.csv"));
  EXPECT_EQ(t.columns, (std::vector<std::string>{"step", "loss", "acc"}));
  EXPECT_EQ(t.column("step"), (std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(t.column("acc").back(), 70);
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{"m.csv"});  // the atomic rewrite left no .tmp
}

TEST_F(Metrics, ResumeFiltersByStepValueAndHandlesEdges) {
  // A file from a run that was already resumed once without truncation: steps 0..4 then 3..5.
  write_text("m.csv", "step,loss\n0,0\n1,1\n2,2\n3,3\n4,4\n3,30\n4,40\n5,50\n");
  { MetricsLog log(path("m.csv"), 3); }
  EXPECT_EQ(text_of("m.csv"), "step,loss\n0,0\n1,1\n2,2\n3,3\n3,30\n");
  { MetricsLog log(path("m.csv"), 0); }
  EXPECT_EQ(text_of("m.csv"), "step,loss\n0,0\n");
  { MetricsLog log(path("m.csv"), 1000); }
  EXPECT_EQ(text_of("m.csv"), "step,loss\n0,0\n");
}

TEST_F(Metrics, ResumeDropsARowCutOffByACrash) {
  write_text("m.csv", "step,loss,acc\n0,1,2\n1,3,4\n2,5");  // no newline: the write of row 2 died
  {
    MetricsLog log(path("m.csv"), 100);
    log.log(2, {{"loss", 6}});
  }
  EXPECT_EQ(text_of("m.csv"), "step,loss,acc\n0,1,2\n1,3,4\n2,6,\n");
  write_text("cut.csv", "step,lo");  // even the header was cut off: start afresh
  {
    MetricsLog log(path("cut.csv"), 100);
    log.log(0, {{"loss", 1}});
  }
  EXPECT_EQ(text_of("cut.csv"), "step,loss\n0,1\n");
  EXPECT_EQ(read_metrics(path("m.csv")).rows.size(), 3u);
}

TEST_F(Metrics, ResumeWithoutFileStartsFreshAndNoResumeTruncates) {
  {
    MetricsLog log(path("new.csv"), 5);
    log_steps(log, 0, 1);
  }
  EXPECT_EQ(read_metrics(path("new.csv")).rows.size(), 2u);
  { MetricsLog log(path("new.csv")); }
  EXPECT_EQ(text_of("new.csv"), "");
  EXPECT_TRUE(read_metrics(path("new.csv")).columns.empty());
}

TEST_F(Metrics, MalformedFilesAreReportedWithTheLine) {
  write_text("bad.csv", "step,loss\n0,1\nx,2\n");
  EXPECT_CONTAINS(error_of([&] { MetricsLog m(path("bad.csv"), 5); }), "line 3: step 'x' is not an integer");
  write_text("bad.csv", "step,loss\n0,1,7\n");
  EXPECT_CONTAINS(error_of([&] { read_metrics(path("bad.csv")); }), "line 2: 3 cells but the header has 2");
  write_text("bad.csv", "step,loss\n0,abc\n");
  EXPECT_CONTAINS(error_of([&] { read_metrics(path("bad.csv")); }), "line 2: 'abc' is not a number");
  write_text("bad.csv", "loss,step\n");
  EXPECT_CONTAINS(error_of([&] { MetricsLog m(path("bad.csv"), 0); }), "header must start with 'step'");
  EXPECT_CONTAINS(error_of([&] { read_metrics(path("missing.csv")); }), "does not exist");
  EXPECT_CONTAINS(error_of([&] { MetricsLog m(path("no/dir/m.csv")); }), "cannot open");
}

class JsonFiles : public RunDirTest {};

TEST_F(JsonFiles, AtomicPrettyRoundTrip) {
  nlohmann::json j = {{"name", "run"}, {"lr", 0.1}, {"steps", {1, 2, 3}}, {"nested", {{"ok", true}}}};
  write_json_atomic(path("config.json"), j);
  write_json_atomic(path("config.json"), j);  // overwrite
  EXPECT_EQ(read_json(path("config.json")), j);
  EXPECT_CONTAINS(text_of("config.json"), "\n  \"lr\": 0.1");
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{"config.json"});
}

TEST_F(Metrics, TableInMemoryEqualsTheFileBitForBit) {
  auto same = [](const MetricsTable& a, const MetricsTable& b) {
    if (a.columns != b.columns || a.rows.size() != b.rows.size()) return false;
    for (size_t i = 0; i < a.rows.size(); ++i)
      for (size_t j = 0; j < a.rows[i].size(); ++j)
        if (std::bit_cast<uint64_t>(a.rows[i][j]) != std::bit_cast<uint64_t>(b.rows[i][j])) return false;
    return true;
  };
  {
    MetricsLog log(path("m.csv"));
    log.log(0, {{"loss", 1.0 / 3}, {"acc", -0.0}, {"gnorm", -std::nan("")}});
    log.log(1, {{"acc", 0.5}});  // missing columns read back as NaN
    log.log(2, {{"gnorm", std::numeric_limits<double>::infinity()}, {"loss", 1e-310}});
    EXPECT_TRUE(same(log.table(), read_metrics(path("m.csv"))));
    EXPECT_EQ(log.table().rows.size(), 3u);
  }
  MetricsLog resumed(path("m.csv"), 1);  // keeps rows 0 and 1, parsed from the file
  EXPECT_EQ(resumed.table().rows.size(), 2u);
  resumed.log(2, {{"loss", 0.25}});
  EXPECT_TRUE(same(resumed.table(), read_metrics(path("m.csv"))));
}

class Summary : public RunDirTest {};

TEST_F(Summary, RoundTripsThroughTheFileWithTheSameKeys) {
  RunSummary s;
  s.name = "r";
  s.status = RunStatus::Diverged;
  s.message = "diverged at step 3";
  s.steps = 3, s.wall_seconds = 0.125, s.threads = 2, s.dtype = "float64", s.seed = 7;
  s.final_metrics = {{"loss", 0.5}, {"t", std::nan("")}};  // non-finite values are left out
  s.checkpoint = "d/checkpoints/step00000003.safetensors";
  s.claims = {{"c", "x > 1", 2.0, true, ""}};
  s.reproduction = ReproductionInfo{"smoke", "(none)", "paper", "ihlab reproduce smoke", true, true};
  s.sections["runs"] = nlohmann::json::array({{{"dir", "runs/a"}}});
  write_summary(dir_.string(), s);
  nlohmann::json j = read_json(path("summary.json"));
  std::vector<std::string> keys;
  for (auto& [k, v] : j.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"checkpoint", "claims", "dtype", "final", "message", "name", "reproduction",
                                            "runs", "seed", "status", "steps", "threads", "wall_seconds"}));
  EXPECT_EQ(j["status"], "diverged");
  EXPECT_EQ(j["final"], (nlohmann::json{{"loss", 0.5}}));
  RunSummary back = read_summary(dir_.string());
  EXPECT_EQ(back.status, RunStatus::Diverged);
  EXPECT_EQ(back.claims.size(), 1u);
  EXPECT_EQ(back.reproduction->command, "ihlab reproduce smoke");
  EXPECT_EQ(summary_to_json(back), j);
  // A sweep's summary: its own keys, command always present.
  RunSummary sweep;
  sweep.kind = RunSummary::Kind::Sweep;
  sweep.status = RunStatus::Incomplete;
  nlohmann::json sj = summary_to_json(sweep);
  EXPECT_EQ(sj["kind"], "sweep");
  EXPECT_EQ(sj["status"], "incomplete");
  EXPECT_TRUE(sj.contains("command") && !sj.contains("steps") && !sj.contains("final"));
  EXPECT_EQ(summary_to_json(summary_from_json(sj)), sj);
}

TEST_F(Summary, BadStatusIsNamed) {
  write_text("summary.json", R"({"name": "r", "status": "done"})");
  std::string msg = error_of([&] { read_summary(dir_.string()); });
  EXPECT_CONTAINS(msg, "key 'status' = \"done\"");
  EXPECT_CONTAINS(msg, "allowed: finished, interrupted, diverged, incomplete");
  EXPECT_CONTAINS(msg, path("summary.json"));
  EXPECT_EQ(parse_run_status("interrupted"), RunStatus::Interrupted);
  EXPECT_EQ(to_string(RunStatus::Finished), "finished");
}

TEST_F(JsonFiles, ReadErrorsNameTheFile) {
  EXPECT_CONTAINS(error_of([&] { read_json(path("none.json")); }), path("none.json") + ": file does not exist");
  write_text("bad.json", "{\"a\": ");
  EXPECT_CONTAINS(error_of([&] { read_json(path("bad.json")); }), path("bad.json") + " is not valid JSON");
  EXPECT_CONTAINS(error_of([&] { write_json_atomic(path("no/dir/x.json"), 1); }), path("no/dir/x.json"));
}

TEST_F(JsonFiles, ClaimsToJson) {
  nlohmann::json j = claims_to_json({{"grokking", "val acc > 0.99", 0.995, true, "at step 4000"},
                                     {"diverges", "loss finite", std::nan(""), false, ""}});
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0], (nlohmann::json{{"name", "grokking"},
                                  {"expected", "val acc > 0.99"},
                                  {"basis", ""},
                                  {"measured", 0.995},
                                  {"evaluated", true},
                                  {"pass", true},
                                  {"reason", ""},
                                  {"detail", "at step 4000"}}));
  EXPECT_TRUE(j[1]["measured"].is_null());
  EXPECT_EQ(j[1]["pass"], false);
  EXPECT_TRUE(claims_to_json({}).is_array());
  // Not evaluated: pass is null (neither held nor failed), and it reads back as not evaluated.
  Claim skipped{"slow", "t_ICL found", NAN, false, ""};
  skipped.evaluated = false;
  skipped.reason = "the run is too short";
  nlohmann::json k = claims_to_json({skipped});
  EXPECT_TRUE(k[0]["pass"].is_null());
  EXPECT_EQ(k[0]["evaluated"], false);
  RunSummary s;
  s.claims = {skipped};
  RunSummary back = summary_from_json(summary_to_json(s));
  ASSERT_EQ(back.claims.size(), 1u);
  EXPECT_FALSE(back.claims[0].evaluated);
  EXPECT_EQ(back.claims[0].reason, "the run is too short");
}

}  // namespace
}  // namespace ihlab
