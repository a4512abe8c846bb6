// Inputs the fuzz targets (tests/fuzz/, scripts/fuzz.sh) found to crash a parser or break one of
// its properties, each reduced by hand to what triggers it. Every one must now be refused with an
// ihlab::Error whose message says what is wrong, or, where noted, be read correctly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/attention_log.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "io/run_dir.h"
#include "io/safetensors.h"
#include "train/run.h"
#include "train/run_schema.h"

namespace ihlab {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected ihlab::Error, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected ihlab::Error, nothing was thrown";
  return "";
}
#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "'" << (text) << "' lacks '" << (part) << "'"

class FuzzRegression : public ::testing::Test {
 protected:
  void SetUp() override {
    auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / fmt::format("ihlab_fuzzreg_{}_{}", info->name(), ::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    fs::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name, std::ios::binary) << bytes;
    return (dir_ / name).string();
  }
  std::string read(const std::string& name) {
    std::ifstream in(dir_ / name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  fs::path dir_;
};

// A safetensors file: the 8-byte little-endian header length, the header, the data.
std::string safetensors_bytes(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

// fuzz_toml: an override whose key or bare-string value is not UTF-8 was accepted, and to_toml then
// wrote a config.toml that does not parse (so the run could not be resumed).
TEST(FuzzRegressionConfig, OverrideKeyMustBeABareKey) {
  json raw = parse_toml_string("[[stages]]\nlr = 0.1\n");
  EXPECT_CONTAINS(error_of([&] { apply_override(raw, "stages.\xfb\xfb.lr=0.5"); }),
                  "a key may only hold letters, digits, '_' and '-'");
  EXPECT_CONTAINS(error_of([&] { apply_override(raw, "task.vo cab=3"); }), "malformed override 'task.vo cab=3'");
  EXPECT_EQ(raw, parse_toml_string("[[stages]]\nlr = 0.1\n"));  // untouched
}

TEST(FuzzRegressionConfig, OverrideBareValueMustBeUtf8) {
  json raw = json::object();
  EXPECT_CONTAINS(error_of([&] { apply_override(raw, "name=dC\xfb"); }),
                  "config: malformed override 'name=dC\xfb': the value is not valid UTF-8");
  EXPECT_CONTAINS(error_of([&] { apply_override(raw, "name=\xed\xa0\x80"); }), "not valid UTF-8");  // a surrogate
  EXPECT_CONTAINS(error_of([&] { apply_override(raw, "name=\xc0\xae"); }), "not valid UTF-8");      // overlong '.'
  // Text that is UTF-8 still works as a bare string, and survives config.toml.
  apply_override(raw, "name=caf\xc3\xa9 \xf0\x9f\x98\x80");
  EXPECT_EQ(raw["name"], "caf\xc3\xa9 \xf0\x9f\x98\x80");
  EXPECT_EQ(parse_toml_string(to_toml(raw)), raw);
}

// fuzz_latest: a number too large for a double in latest.json escaped read_json as
// nlohmann's out_of_range (only parse_error was caught) and ended the process.
TEST_F(FuzzRegression, LatestJsonNumberOverflow) {
  write("checkpoints/latest.json", "{\"file\": \"step00000002.safetensors\", \"x\": 1e30930}");
  EXPECT_CONTAINS(error_of([&] { latest_checkpoint_path((dir_ / "checkpoints").string()); }),
                  "latest.json is not valid JSON");
  EXPECT_CONTAINS(error_of([&] { read_json(write("a.json", "[-1e400]")); }), "a.json is not valid JSON");
}

// The trainer read latest.json with .at("file").get<std::string>(): nlohmann exceptions for a
// pointer that is not an object or has no string "file"; and it followed any path.
TEST_F(FuzzRegression, LatestJsonMustNameAFileInTheDirectory) {
  const std::string ckpts = (dir_ / "checkpoints").string();
  auto latest_error = [&](const std::string& text) {
    write("checkpoints/latest.json", text);
    return error_of([&] { latest_checkpoint_path(ckpts); });
  };
  EXPECT_CONTAINS(latest_error("[1]"), "must be a JSON object");
  EXPECT_CONTAINS(latest_error("{\"step\": 2}"), "has no \"file\"");
  EXPECT_CONTAINS(latest_error("{\"file\": 7}"), "\"file\" must be a file name (a string), got number");
  EXPECT_CONTAINS(latest_error("{\"file\": \"../../other/x.safetensors\"}"), "must name a file in");
  EXPECT_CONTAINS(latest_error("{\"file\": \"..\"}"), "must name a file in");
  EXPECT_CONTAINS(latest_error("{\"file\": \"\"}"), "must name a file in");
  write("checkpoints/latest.json", "{\"file\": \"step00000002.safetensors\", \"step\": 2}");
  EXPECT_EQ(latest_checkpoint_path(ckpts), ckpts + "/step00000002.safetensors");
}

// Found alongside the latest.json overflow (same catch of parse_error only): in a safetensors
// header and in a checkpoint's "ihlab" metadata.
TEST_F(FuzzRegression, SafetensorsHeaderNumberOverflow) {
  const std::string p = write(
      "a.safetensors", safetensors_bytes(R"({"x":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}})", "abcd"));
  EXPECT_CONTAINS(error_of([&] { read_safetensors(p); }), "header is not valid JSON");
}

TEST_F(FuzzRegression, CheckpointMetaNumberOverflow) {
  SafetensorsFile f;
  f.metadata = {{"format", kCheckpointFormat}, {"dtype", "F32"}, {"ihlab", "{\"step\": 1e999}"}};
  write_safetensors((dir_ / "c.safetensors").string(), f);
  EXPECT_CONTAINS(error_of([&] { load_checkpoint<float>((dir_ / "c.safetensors").string()); }),
                  "its \"ihlab\" metadata is not valid JSON");
}

// Found by reading the code around the overflow above, then confirmed with fuzz_safetensors on
// these inputs: nlohmann parses nesting of any depth, but copies (an ordered_json object copies its
// values when it grows) and prints it recursively, so a deeply nested header value overflowed the
// stack while parsing or while writing the error message.
TEST_F(FuzzRegression, SafetensorsHeaderNestedTooDeep) {
  const int depth = 100000;
  const std::string deep = std::string(depth, '[') + std::string(depth, ']');
  for (const std::string& header :
       {"{\"x\":" + deep + "}", R"({"x":{"dtype":"F32","shape":[)" + deep + R"(],"data_offsets":[0,0]}})",
        R"({"__metadata__":{"a":)" + deep + "}}"}) {
    const std::string p = write("deep.safetensors", safetensors_bytes(header));
    EXPECT_CONTAINS(error_of([&] { read_safetensors(p); }), "header nests values more than 16 levels deep");
  }
  // Values in messages are cut short.
  std::string sevens = "7";
  for (int i = 0; i < 1000; ++i) sevens += ",7";
  const std::string p = write("long.safetensors", safetensors_bytes("{\"x\":[" + sevens + "]}"));
  const std::string m = error_of([&] { read_safetensors(p); });
  EXPECT_CONTAINS(m, "tensor 'x' must map to an object, got [7,7,7,");
  EXPECT_LT(m.size(), 300u);
}

// The same for the JSON in a checkpoint's "ihlab" metadata, which the trainer copies on resume.
TEST_F(FuzzRegression, CheckpointMetaNestedTooDeep) {
  SafetensorsFile f;
  f.metadata = {{"format", kCheckpointFormat},
                {"dtype", "F32"},
                {"ihlab", "{\"config\": " + std::string(100000, '[') + std::string(100000, ']') + "}"}};
  write_safetensors((dir_ / "c.safetensors").string(), f);
  EXPECT_CONTAINS(error_of([&] { load_checkpoint<float>((dir_ / "c.safetensors").string()); }),
                  "its \"ihlab\" metadata nests values more than 64 levels deep");
}

// fuzz_metrics: resume kept a row whose cell is not a number (only the step was parsed), so the
// run went on and reports failed on the file afterwards.
TEST_F(FuzzRegression, MetricsResumeChecksKeptCells) {
  const std::string p = write("metrics.csv", "step,loss,lr\n0,2,0.02\n25,0.076923076923076.9,0.02\n");
  EXPECT_CONTAINS(error_of([&] { MetricsLog log(p, 100); }), "line 3: '0.076923076923076.9' is not a number");
  // Rows after the resume step are dropped unread, as before.
  write("metrics.csv", "step,loss,lr\n0,2,0.02\n125,garbage,0.02\n");
  MetricsLog log(p, 100);
  log.log(101, {{"loss", 1.0}, {"lr", 0.5}});
  EXPECT_EQ(read_metrics(p).rows.size(), 2u);
}

// fuzz_attention_log: resume kept a line that is not a snapshot (an object without "step"), and a
// line that is JSON but not an object ("1") threw nlohmann's type_error from json::value().
TEST_F(FuzzRegression, AttentionLogResumeRefusesNonSnapshots) {
  const std::string good = R"({"step":0,"stage":0,"offset":0,"tokens":[1],"maps":[]})";
  const std::vector<std::string> bad_lines = {R"({"maps":[{"head":0}],"offset":2,"stage":0})",
                                              "1",
                                              R"({"step":"3"})",
                                              R"({"step":-4})",
                                              R"({"step":1.5})",
                                              R"({"step":18446744073709551615})",
                                              "{\"step\": 1"};
  for (const std::string& bad : bad_lines) {
    const std::string p = write("attention.jsonl", good + "\n" + bad + "\n");
    EXPECT_CONTAINS(error_of([&] { AttentionLog log(p, 4, 100); }), "attention.jsonl line 2: not a snapshot");
  }
  // A last line without a newline (cut off by a crash) is still dropped.
  const std::string p = write("attention.jsonl", good + "\n{\"step\": 1");
  AttentionLog log(p, 4, 100);
  EXPECT_EQ(log.last_step(), 0);
  EXPECT_EQ(read("attention.jsonl"), good + "\n");
}

// fuzz_resume: the trainer read its loop position from the checkpoint meta with .at() and
// implicit conversions, so a meta with a key missing or of the wrong type ended the process with
// nlohmann's exceptions, and negative counts were taken as they were.
class FuzzRegressionResume : public FuzzRegression {
 protected:
  // A tiny run, interrupted at step 3, with an extra reference column that is NaN (JSON null in
  // the meta); returns its checkpoint's meta.
  nlohmann::json interrupted_run() {
    config_ = run_schema().resolve(parse_toml_string(R"(
      threads = 1
      [task]
      name = "previous-token"
      vocab = 4
      length = 6
      [model]
      name = "attn1"
      width = 4
      window = 2
      [data]
      batch_size = 4
      val_size = 4
      [log]
      attention_snapshots = 0
      head_scores = 0
      [[stages]]
      steps = 6
    )"));
    TrainOptions o;
    o.quiet = true;
    o.stop_after = 3;
    o.extra_references = {{"ref.limit", std::nan("")}};
    EXPECT_EQ(run_config(config_, run_dir(), o).summary.status, RunStatus::Interrupted);
    return json::parse(read_safetensors(checkpoint()).metadata.at("ihlab"));
  }
  std::string run_dir() const { return (dir_ / "run").string(); }
  std::string checkpoint() const { return latest_checkpoint_path(run_dir() + "/checkpoints"); }
  // Resumes with `meta` written into the checkpoint; "" when the run finished.
  std::string resume_with(const json& meta) {
    SafetensorsFile f = read_safetensors(checkpoint());
    f.metadata["ihlab"] = meta.dump();
    write_safetensors(checkpoint(), f);
    TrainOptions o;
    o.quiet = true;
    o.resume = true;
    try {
      RunResult r = run_config(config_, run_dir(), o);
      return r.finished() ? "" : "status " + std::string(to_string(r.summary.status));
    } catch (const Error& e) {
      return e.what();
    } catch (const std::exception& e) {
      return std::string("not an ihlab::Error: ") + e.what();
    }
  }
  json config_;
};

TEST_F(FuzzRegressionResume, MetaValuesAreChecked) {
  const json meta = interrupted_run();
  auto with = [&](const std::string& key, const json& value) {
    json m = meta;
    if (value.is_discarded())
      m.erase(key);
    else
      m[key] = value;
    return m;
  };
  const json missing = json::value_t::discarded;
  EXPECT_CONTAINS(resume_with(with("stage_step", missing)), "is damaged: its meta has no \"stage_step\"");
  EXPECT_CONTAINS(resume_with(with("step", "3")), "meta \"step\" = \"3\" must be an integer >= 0");
  EXPECT_CONTAINS(resume_with(with("step", -5)), "meta \"step\" = -5 must be an integer >= 0");
  EXPECT_CONTAINS(resume_with(with("stage_step", 9)), "meta \"stage_step\" = 9 is more than \"step\" = 3");
  EXPECT_CONTAINS(resume_with(with("stage_done", 0)), "meta \"stage_done\" = 0 must be true or false");
  EXPECT_CONTAINS(resume_with(with("wall_seconds", "x")), "meta \"wall_seconds\" = \"x\" must be a finite number >= 0");
  EXPECT_CONTAINS(resume_with(with("optimizer", 7)), "its meta has no \"optimizer.steps_taken\"");
  EXPECT_CONTAINS(resume_with(with("optimizer", {{"steps_taken", "x"}})),
                  "meta \"optimizer.steps_taken\" = \"x\" must be an integer >= 0");
  EXPECT_CONTAINS(resume_with(with("extra_references", {{"ref", "x"}})),
                  "meta \"extra_references.ref\" = \"x\" must be a finite number");
  EXPECT_CONTAINS(resume_with(with("flow", {{"t", 0.1}})), "its meta has no \"flow.h\"");
  EXPECT_CONTAINS(resume_with(json::array({meta})), "its meta is not a JSON object");
  // The meta as the trainer wrote it resumes, its NaN reference (null) read as NaN.
  ASSERT_TRUE(meta["extra_references"]["ref.limit"].is_null());
  EXPECT_EQ(resume_with(meta), "");
}

}  // namespace
}  // namespace ihlab
