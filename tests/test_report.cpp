// Reports: the fit with its interval, attention snapshots in training (and after a
// resume), the GIH model's attention maps against its own predictions, the report's data and HTML;
// sweeps are in tests/test_sweep.cpp. The browser-side checks are in tests/report_check.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "analysis/fits.h"
#include "io/config.h"
#include "io/run_dir.h"
#include "models/gih_model.h"
#include "report/report.h"
#include "tasks/ngram_task.h"
#include "train/run.h"
#include "train/run_schema.h"
#include "train/sweep.h"
#include "scratch_dir.h"

namespace ihlab {
namespace {
namespace fs = std::filesystem;

const char* kTiny = R"(
name = "tiny"
seed = 3
dtype = "float64"
[task]
name = "previous-token"
vocab = 5
length = 8
[model]
name = "attn1"
width = 8
window = 3
[data]
batch_size = 8
val_size = 16
[log]
every = 5
checkpoint_every = 10
attention_snapshots = 6
attention_tokens = 6
[[stages]]
name = "adam"
optimizer = "adam"
lr = 0.05
steps = 30
)";

std::string fresh_dir(const std::string& name) { return test::scratch_dir("ihlab_test_report_" + name); }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

nlohmann::json tiny(const std::vector<std::string>& overrides = {}) {
  nlohmann::json raw = parse_toml_string(kTiny, "tiny");
  for (auto& o : overrides) apply_override(raw, o);
  return run_schema().resolve(raw);
}

TrainOptions quiet() {
  TrainOptions o;
  o.quiet = true;
  return o;
}

TEST(Fits, StudentTQuantilesMatchTables) {
  EXPECT_NEAR(student_t_quantile(0.95, 1), 12.706205, 1e-5);
  EXPECT_NEAR(student_t_quantile(0.95, 3), 3.182446, 1e-5);
  EXPECT_NEAR(student_t_quantile(0.95, 10), 2.228139, 1e-5);
  EXPECT_NEAR(student_t_quantile(0.99, 20), 2.845340, 1e-5);
  EXPECT_NEAR(student_t_quantile(0.95, 100000), 1.959987, 1e-4);
  EXPECT_TRUE(std::isnan(student_t_quantile(0.95, 0)));
}

TEST(Fits, IntervalAndBandOfANoisyLine) {
  // y = 2x + 1 + e with e = +-0.5 alternating: slope 2 sits inside its interval, the band is
  // narrowest at the mean x and contains the true line there.
  std::vector<double> x, y;
  for (int i = 0; i < 10; ++i) x.push_back(i), y.push_back(2 * i + 1 + (i % 2 ? 0.5 : -0.5));
  LineFitCI f = fit_line_ci(x, y);
  EXPECT_LT(f.slope_lo, 2.0);
  EXPECT_GT(f.slope_hi, 2.0);
  EXPECT_NEAR(f.slope_hi - f.fit.slope, f.fit.slope - f.slope_lo, 1e-12);
  auto mid = f.band(4.5), edge = f.band(0);
  EXPECT_LT(mid.second - mid.first, edge.second - edge.first);
  EXPECT_LT(mid.first, 10.0);
  EXPECT_GT(mid.second, 10.0);
  EXPECT_TRUE(std::isnan(fit_line_ci({1, 2}, {1, 2}).slope_lo));  // n < 3: no interval
}

TEST(Fits, ScalingJsonRecoversAnExactPowerLaw) {
  std::vector<double> x = {1, 2, 4, 8, 16}, y;
  for (double v : x) y.push_back(3 * std::pow(v, -0.5));
  x.push_back(-1), y.push_back(1);  // not on a log axis: left out
  nlohmann::json j = scaling_fit_json("t", "n", "loss", x, y);
  EXPECT_EQ(j["points"].size(), 5u);
  EXPECT_NEAR(j["fit"]["slope"].get<double>(), -0.5, 1e-12);
  EXPECT_NEAR(j["fit"]["intercept"].get<double>(), std::log(3.0), 1e-12);
  EXPECT_NEAR(j["fit"]["slope_lo"].get<double>(), -0.5, 1e-6);
  EXPECT_EQ(j["band"].size(), 50u);
  EXPECT_NEAR(j["band"][0][0].get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(j["band"][49][0].get<double>(), 16.0, 1e-9);
}

TEST(GihAttention, MapsReproduceThePrediction) {
  GihConfig cfg;
  cfg.vocab = 3, cfg.heads = 3, cfg.window = 3, cfg.max_subset = 2;
  for (GihMode mode : {GihMode::Paper, GihMode::Code}) {
    cfg.mode = mode;
    GihModel<double> m(cfg);
    // Move away from the symmetric init so every head and subset matters.
    for (int64_t i = 0; i < m.w().value().numel(); ++i) m.w().value()[i] = 0.3 * std::sin(1.7 * double(i));
    for (int64_t i = 0; i < m.c().value().numel(); ++i) m.c().value()[i] = 0.2 + 0.1 * double(i);
    m.a().value()[0] = 4.0;
    NgramMarkovConfig tc;
    tc.vocab = 3, tc.length = 12;
    Batch b = NgramMarkovTask(tc).sample(3, 5, StreamKind::Test, 0);
    Tensor<double> y = m.predict(b);
    for (int64_t e = 0; e < b.size; ++e) {
      auto maps = m.attention(b, e);
      ASSERT_EQ(maps.size(), 4u);
      const int64_t P = b.length, L = P - 1;
      for (int h = 0; h < 3; ++h)
        for (int64_t q = 0; q < P; ++q) {
          double row = 0;
          for (int64_t k = 0; k < P; ++k) {
            row += maps[h].weights[q * P + k];
            if (k >= q) {
              EXPECT_EQ(maps[h].weights[q * P + k], 0.0);  // strictly causal
            }
          }
          if (q - cfg.offset(h) > 0) {
            EXPECT_NEAR(row, 1.0, 1e-12);
          }
        }
      std::vector<double> pred(3, 0.0);
      for (int64_t j = 0; j < L; ++j) pred[b.tokens[e * P + j]] += maps[3].weights[L * P + j];
      for (int t = 0; t < 3; ++t) EXPECT_NEAR(pred[t], y[e * 3 + t], 1e-10) << "example " << e;
    }
  }
}

TEST(AttentionLog, SnapshotsAreGeometricAndSurviveAResume) {
  std::string full = fresh_dir("att_full"), part = fresh_dir("att_part");
  ASSERT_EQ(run_config(tiny(), full, quiet()).summary.status, RunStatus::Finished);
  std::vector<int64_t> steps;
  std::ifstream f(full + "/attention.jsonl");
  for (std::string line; std::getline(f, line);) {
    auto j = nlohmann::json::parse(line);
    steps.push_back(j["step"]);
    ASSERT_EQ(j["maps"].size(), 1u);
    EXPECT_EQ(j["maps"][0]["queries"], 6);  // the last attention_tokens positions of 8
    EXPECT_EQ(j["maps"][0]["query_offset"], 2);
    EXPECT_EQ(j["tokens"].size(), 6u);
  }
  // Targets ceil(30^(k/5)) = 2, 4, 8, 16, 30, each at the first logged step at or after it
  // (every = 5), plus step 0: 0, 5, 10, 20, 30.
  EXPECT_EQ(steps, (std::vector<int64_t>{0, 5, 10, 20, 30}));
  TrainOptions stop = quiet();
  stop.stop_after = 13;
  ASSERT_EQ(run_config(tiny(), part, stop).summary.status, RunStatus::Interrupted);
  TrainOptions resume = quiet();
  resume.resume = true;
  ASSERT_EQ(run_config(tiny(), part, resume).summary.status, RunStatus::Finished);
  EXPECT_EQ(slurp(full + "/attention.jsonl"), slurp(part + "/attention.jsonl"));
}

TEST(Report, DataAndHtmlOfARun) {
  std::string dir = fresh_dir("html");
  TrainOptions o = quiet();
  o.command = "ihlab train tiny.toml --out x";
  ASSERT_EQ(run_config(tiny(), dir, o).summary.status, RunStatus::Finished);
  std::ofstream(dir + "/extra.csv") << "length,loss\n10,0.5\n20,0.25\n";
  nlohmann::json d = report_data(dir);
  EXPECT_EQ(d["name"], "tiny");
  EXPECT_EQ(d["command"], "ihlab train tiny.toml --out x");
  EXPECT_EQ(d["metrics"]["columns"][0], "step");
  EXPECT_EQ(d["metrics"]["data"]["val_loss"].size(), d["metrics"]["data"]["step"].size());
  EXPECT_EQ(d["attention"].size(), 5u);
  EXPECT_EQ(d["tables"]["extra"]["rows"][1][1], 0.25);
  EXPECT_NE(d["config_toml"].get<std::string>().find("previous-token"), std::string::npos);
  // A "</script>" inside the data must not end the data element early.
  d["summary"]["message"] = "</script><script>alert(1)</script>";
  std::string html = render_report_html(d);
  for (const char* key : {"@TITLE@", "@CSS@", "@DATA@", "@PLOTLY@", "@APP@"})
    EXPECT_EQ(html.find(key), std::string::npos);
  EXPECT_EQ(html.find("</script><script>alert"), std::string::npos);
  EXPECT_NE(html.find("plotly.js"), std::string::npos);
  ReportResult r = write_report(dir, {.figures = false, .quiet = true});
  EXPECT_TRUE(fs::exists(r.html));
  EXPECT_GT(fs::file_size(r.html), 100000u);  // the charting library is inlined
}

// Any run whose summary.json has a "weights" entry ({run: {block: {values, ...}}}) gets the figure
// `weights` (one heat-map per block and run) from the figure script, listed in figures/index.json
// and in the report's data. Skipped without Debian's python3-matplotlib.
TEST(Report, WeightsFigureFromSummary) {
  if (std::system("/usr/bin/python3 -c 'import matplotlib, numpy' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "no /usr/bin/python3 with matplotlib";
  std::string dir = fresh_dir("weights");
  fs::create_directories(dir);
  std::ofstream(dir + "/metrics.csv") << "step,loss,val_loss\n0,2,2\n10,1,1.1\n";
  auto block = [](int n, int band) {
    nlohmann::json values = nlohmann::json::array();
    for (int r = 0; r < n; ++r) {
      std::vector<double> row(n);
      for (int c = 0; c < n; ++c) row[c] = (c - r == band ? 1.0 : 0.05 * std::sin(3.0 * r + c));
      values.push_back(row);
    }
    return nlohmann::json{{"rows", n},    {"cols", n},        {"row", "query"},
                          {"col", "key"}, {"values", values}, {"band", band}};
  };
  nlohmann::json shift = block(5, -1);
  shift["max_band"] = -1;
  nlohmann::json summary = {{"name", "fake-weights"},
                            {"status", "finished"},
                            {"weights",
                             {{"main", {{"shift", shift}, {"identity", block(8, 0)}}},
                              {"twin", {{"shift", shift}, {"identity", block(8, 0)}}}}}};
  std::ofstream(dir + "/summary.json") << summary.dump(1);
  ASSERT_EQ(write_figures(dir, true), "");
  nlohmann::json index = read_json(dir + "/figures/index.json");
  bool listed = false;
  for (auto& f : index["figures"])
    if (f["name"] == "weights") listed = f["caption"].get<std::string>().find("share") != std::string::npos;
  EXPECT_TRUE(listed) << index.dump(1);
  EXPECT_GT(fs::file_size(dir + "/figures/weights.svg"), 1000u);
  EXPECT_TRUE(fs::exists(dir + "/figures/weights.png"));
  bool in_report = false;
  const nlohmann::json data = report_data(dir);
  for (auto& f : data["figures"]) in_report = in_report || f["name"] == "weights";
  EXPECT_TRUE(in_report);
  // Without the entry the figure is skipped with its reason (and the old files are removed).
  summary.erase("weights");
  std::ofstream(dir + "/summary.json") << summary.dump(1);
  ASSERT_EQ(write_figures(dir, true), "");
  index = read_json(dir + "/figures/index.json");
  bool skipped = false;
  for (auto& f : index["skipped"]) skipped = skipped || f["name"] == "weights";
  EXPECT_TRUE(skipped) << index.dump(1);
  EXPECT_FALSE(fs::exists(dir + "/figures/weights.svg"));
  fs::remove_all(dir);
}

TEST(Report, RejectsADirectoryThatIsNotARun) {
  std::string dir = fresh_dir("empty");
  fs::create_directories(dir);
  try {
    report_data(dir);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.csv"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ihlab
