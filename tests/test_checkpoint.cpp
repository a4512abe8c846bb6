// Safetensors I/O and checkpoints: bit-exact round trips, a format check independent of our
// reader, helpful errors for every kind of damaged file, and parameter restore mismatches.
#include "io/checkpoint.h"
#include "io/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

namespace ihlab {
namespace {

namespace fs = std::filesystem;

// Runs f and returns the ihlab::Error message ("" plus a test failure if nothing was thrown).
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

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}
// A safetensors file assembled by hand: [u64 LE length][header][data].
void write_handmade(const std::string& path, const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(uint8_t((uint64_t(header.size()) >> (8 * i)) & 0xff));
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.insert(bytes.end(), data.begin(), data.end());
  write_bytes(path, bytes);
}

template <typename T>
void expect_bitwise_equal(const Tensor<T>& a, const Tensor<T>& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  ASSERT_EQ(a.numel(), b.numel()) << what;
  if (a.numel() > 0) {
    EXPECT_EQ(std::memcmp(a.data(), b.data(), size_t(a.numel()) * sizeof(T)), 0) << what;
  }
}

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = fmt::format("ihlab_{}_{}_{}", info->test_suite_name(), info->name(), ::getpid());
    std::replace(name.begin(), name.end(), '/', '_');  // typed tests are named "Suite/0"
    dir_ = fs::temp_directory_path() / name;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<std::string> files_in_dir() const {
    std::vector<std::string> names;
    for (auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  fs::path dir_;
};

// Values chosen to expose any lossy conversion: signed zero, infinities, NaN, denormals.
template <typename T>
Tensor<T> awkward_values(Shape shape) {
  const T specials[] = {T(-0.0),
                        std::numeric_limits<T>::infinity(),
                        -std::numeric_limits<T>::infinity(),
                        std::numeric_limits<T>::quiet_NaN(),
                        std::numeric_limits<T>::denorm_min(),
                        T(1) / T(3),
                        std::numeric_limits<T>::max(),
                        T(-1e-30)};
  Tensor<T> t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = specials[i % 8] + (i >= 8 ? T(i) : T(0));
  return t;
}

template <typename T>
Checkpoint<T> sample_checkpoint() {
  Checkpoint<T> c;
  c.meta = {{"step", 17},
            {"stage", 1},
            {"rng", uint64_t(18446744073709551615ULL)},
            {"config", {{"lr", 0.1}, {"name", "run ü"}}}};
  c.params = {{"attn.w", awkward_values<T>({2, 5})},
              {"bias", Tensor<T>::scalar(T(0.5))},
              {"empty", Tensor<T>({0})},
              {"empty3", Tensor<T>({3, 0, 2})},
              {"a_last", awkward_values<T>({3})}};
  c.optimizer_state = {{"m.attn.w", awkward_values<T>({2, 5})}, {"step.attn.w", Tensor<T>::scalar(T(3))}};
  c.extra = {{"flow.t", Tensor<double>::scalar(0.1)},
             {"flow.y", awkward_values<double>({4})},
             {"flow.none", Tensor<double>({0, 7})}};
  return c;
}

template <typename T>
void expect_same_section(const std::vector<std::pair<std::string, Tensor<T>>>& a,
                         const std::vector<std::pair<std::string, Tensor<T>>>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);  // saved order is kept
    expect_bitwise_equal(a[i].second, b[i].second, a[i].first);
  }
}

template <typename T>
class CheckpointRoundTrip : public TempDirTest {};
using ElementTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(CheckpointRoundTrip, ElementTypes);

TYPED_TEST(CheckpointRoundTrip, IsBitExactIncludingScalarAndEmptyTensors) {
  using T = TypeParam;
  Checkpoint<T> saved = sample_checkpoint<T>();
  std::string p = this->path("ckpt.safetensors");
  save_checkpoint(p, saved);
  Checkpoint<T> loaded = load_checkpoint<T>(p);
  EXPECT_EQ(loaded.meta, saved.meta);
  expect_same_section(saved.params, loaded.params);
  expect_same_section(saved.optimizer_state, loaded.optimizer_state);
  expect_same_section(saved.extra, loaded.extra);
  EXPECT_EQ(this->files_in_dir(), std::vector<std::string>{"ckpt.safetensors"});  // no .tmp left behind
}

TYPED_TEST(CheckpointRoundTrip, SnapshotRestoreCycleRecoversParameters) {
  using T = TypeParam;
  ParamStore<T> store;
  Var<T> w = store.add("w", "W", awkward_values<T>({4, 3}));
  store.add("s", "a", Tensor<T>::scalar(T(2)));
  Checkpoint<T> c;
  c.params = snapshot_params(store);
  save_checkpoint(this->path("c.safetensors"), c);
  Tensor<T> before = w.value().clone();
  w.value().fill(T(9));
  store.find("s")->var.value().fill(T(7));
  restore_params(load_checkpoint<T>(this->path("c.safetensors")), store);
  expect_bitwise_equal(w.value(), before, "w");  // the Var held outside the store sees the restore
  EXPECT_EQ(store.get("s").var.value().item(), T(2));
}

// Reads the file the way any safetensors implementation must, without using our reader.
class SafetensorsFormat : public TempDirTest {};

uint64_t reference_fnv1a64(const uint8_t* p, size_t n) {
  uint64_t h = 14695981039346656037ULL;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

TEST_F(SafetensorsFormat, FileFollowsTheSpecification) {
  Checkpoint<float> c = sample_checkpoint<float>();
  std::string p = path("ckpt.safetensors");
  save_checkpoint(p, c);
  std::vector<uint8_t> file = read_bytes(p);
  ASSERT_GE(file.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[i];
  ASSERT_LE(n, file.size() - 8);
  EXPECT_EQ(n % 8, 0u);
  std::string header_text(file.begin() + 8, file.begin() + 8 + std::ptrdiff_t(n));
  EXPECT_EQ(header_text.front(), '{');
  size_t json_end = header_text.find_last_of('}');
  for (size_t i = json_end + 1; i < header_text.size(); ++i) EXPECT_EQ(header_text[i], ' ') << "padding byte " << i;

  nlohmann::json header = nlohmann::json::parse(header_text);
  const uint8_t* data = file.data() + 8 + n;
  const uint64_t data_size = file.size() - 8 - n;
  ASSERT_TRUE(header.contains("__metadata__"));
  for (auto& [k, v] : header["__metadata__"].items()) EXPECT_TRUE(v.is_string()) << k;
  EXPECT_EQ(header["__metadata__"]["format"], "ihlab-checkpoint-1");
  EXPECT_EQ(header["__metadata__"]["dtype"], "F32");
  EXPECT_EQ(nlohmann::json::parse(header["__metadata__"]["ihlab"].get<std::string>()), c.meta);
  EXPECT_EQ(header["__metadata__"]["ihlab.checksum"], fmt::format("{:016x}", reference_fnv1a64(data, data_size)));

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [name, t] : header.items()) {
    if (name == "__metadata__") continue;
    std::string dtype = t["dtype"];
    uint64_t itemsize = dtype == "F32" ? 4 : 8;
    EXPECT_TRUE(dtype == "F32" || dtype == "F64") << name;
    EXPECT_EQ(dtype == "F64", name.rfind("extra.", 0) == 0) << name;
    uint64_t numel = 1;
    for (auto d : t["shape"]) numel *= d.get<uint64_t>();
    uint64_t b = t["data_offsets"][0], e = t["data_offsets"][1];
    EXPECT_EQ(e - b, numel * itemsize) << name;
    ranges.emplace_back(b, e);
  }
  EXPECT_EQ(ranges.size(), c.params.size() + c.optimizer_state.size() + c.extra.size());
  std::sort(ranges.begin(), ranges.end());
  uint64_t cursor = 0;
  for (auto [b, e] : ranges) {
    EXPECT_EQ(b, cursor);  // contiguous: no holes, no overlap
    cursor = e;
  }
  EXPECT_EQ(cursor, data_size);

  // Decode "param.attn.w" by hand: little-endian IEEE binary32.
  auto& w = header["param.attn.w"];
  EXPECT_EQ(w["shape"], nlohmann::json::array({2, 5}));
  const uint8_t* wd = data + w["data_offsets"][0].get<uint64_t>();
  const Tensor<float>& expected = c.params[0].second;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    uint32_t bits = uint32_t(wd[4 * i]) | uint32_t(wd[4 * i + 1]) << 8 | uint32_t(wd[4 * i + 2]) << 16 |
                    uint32_t(wd[4 * i + 3]) << 24;
    EXPECT_EQ(bits, std::bit_cast<uint32_t>(expected[i])) << "element " << i;
  }
  EXPECT_EQ(header["param.bias"]["shape"], nlohmann::json::array());  // 0-d is shape []
}

TEST_F(SafetensorsFormat, ReadsAFileFromAnotherWriter) {
  // As Python's safetensors might write it: no metadata, no checksum, unpadded header, keys out
  // of data order.
  std::vector<uint8_t> data(8 + 16 + 8);
  float a[2] = {1.5f, -2.0f};
  double b[2] = {0.25, 1e300};
  int64_t c[1] = {-42};
  std::memcpy(data.data(), a, 8);
  std::memcpy(data.data() + 8, b, 16);
  std::memcpy(data.data() + 24, c, 8);
  write_handmade(path("x.safetensors"),
                 R"({"b":{"dtype":"F64","shape":[2],"data_offsets":[8,24]},)"
                 R"("a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},)"
                 R"("c":{"dtype":"I64","shape":[],"data_offsets":[24,32]}})",
                 data);
  SafetensorsFile f = read_safetensors(path("x.safetensors"));
  EXPECT_TRUE(f.metadata.empty());
  ASSERT_EQ(f.tensors.size(), 3u);
  EXPECT_EQ(f.tensors[0].name, "b");  // header order
  Tensor<float> ta = from_raw<float>(*f.find("a"));
  EXPECT_EQ(ta.shape(), (Shape{1, 2}));
  EXPECT_EQ(ta[1], -2.0f);
  EXPECT_EQ(from_raw<double>(*f.find("b"))[1], 1e300);
  EXPECT_EQ(from_raw<int64_t>(*f.find("c")).item(), -42);
  EXPECT_EQ(f.find("missing"), nullptr);
}

TEST_F(SafetensorsFormat, RawRoundTripKeepsMetadataAndInt64) {
  SafetensorsFile f;
  f.metadata["note"] = "hello";
  f.tensors.push_back(to_raw("ids", Tensor<int64_t>({3}, std::vector<int64_t>{1, -2, INT64_MAX})));
  f.tensors.push_back(to_raw("zero_d", Tensor<double>::scalar(-0.0)));
  write_safetensors(path("r.safetensors"), f);
  SafetensorsFile g = read_safetensors(path("r.safetensors"));
  EXPECT_EQ(g.metadata.at("note"), "hello");
  EXPECT_EQ(g.metadata.at("ihlab.checksum").size(), 16u);
  ASSERT_EQ(g.tensors.size(), 2u);
  EXPECT_EQ(g.tensors[0].bytes, f.tensors[0].bytes);
  EXPECT_EQ(from_raw<int64_t>(g.tensors[0])[2], INT64_MAX);
  EXPECT_TRUE(std::signbit(from_raw<double>(g.tensors[1]).item()));
}

TEST_F(SafetensorsFormat, WriterRejectsBadInput) {
  SafetensorsFile f;
  f.tensors.push_back(to_raw("x", Tensor<float>({2})));
  f.tensors.push_back(to_raw("x", Tensor<float>({3})));
  EXPECT_CONTAINS(error_of([&] { write_safetensors(path("d.safetensors"), f); }), "tensor 'x' appears twice");
  f.tensors.pop_back();
  f.tensors[0].bytes.pop_back();
  EXPECT_CONTAINS(error_of([&] { write_safetensors(path("d.safetensors"), f); }), "has 7 bytes but shape [2]");
  f.tensors[0] = to_raw("x", Tensor<float>({2}));
  f.tensors[0].dtype = "BF16";
  EXPECT_CONTAINS(error_of([&] { write_safetensors(path("d.safetensors"), f); }), "unsupported dtype 'BF16'");
  EXPECT_TRUE(files_in_dir().empty());
}

// ---- damaged files ----

class CorruptFile : public TempDirTest {
 protected:
  std::string read_error(const std::string& p) {
    return error_of([&] { read_safetensors(p); });
  }
  // A one-tensor file whose header is `header` and data section 8 zero bytes.
  std::string handmade_error(const std::string& header, size_t data_size = 8) {
    write_handmade(path("h.safetensors"), header, std::vector<uint8_t>(data_size, 0));
    return read_error(path("h.safetensors"));
  }
};

TEST_F(CorruptFile, MissingFile) {
  std::string msg = read_error(path("nope.safetensors"));
  EXPECT_CONTAINS(msg, path("nope.safetensors"));
  EXPECT_CONTAINS(msg, "does not exist");
}

TEST_F(CorruptFile, ShorterThanLengthField) {
  write_bytes(path("s.safetensors"), {1, 2, 3, 4, 5});
  std::string msg = read_error(path("s.safetensors"));
  EXPECT_CONTAINS(msg, path("s.safetensors"));
  EXPECT_CONTAINS(msg, "file has 5 bytes, fewer than the 8-byte header length field");
}

TEST_F(CorruptFile, HeaderLengthLargerThanFile) {
  std::vector<uint8_t> bytes = {0xe8, 0x03, 0, 0, 0, 0, 0, 0, '{', '}'};  // claims 1000 header bytes
  write_bytes(path("l.safetensors"), bytes);
  EXPECT_CONTAINS(read_error(path("l.safetensors")), "header length 1000 is larger than the 2 bytes that follow it");
}

TEST_F(CorruptFile, GarbageHeader) {
  EXPECT_CONTAINS(handmade_error("{not json at all", 0), "header is not valid JSON");
  EXPECT_CONTAINS(handmade_error("[1, 2]", 0), "header must be a JSON object");
  EXPECT_CONTAINS(handmade_error(R"({"x": 3})"), "tensor 'x' must map to an object");
  EXPECT_CONTAINS(handmade_error(R"({"x": {"dtype": "F32", "shape": [2]}})"), "tensor 'x' has no \"data_offsets\"");
  EXPECT_CONTAINS(handmade_error(R"({"__metadata__": {"k": 1}})", 0), "__metadata__ value of 'k' must be a string");
  EXPECT_CONTAINS(handmade_error(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})"),
                  "shape entry must be a non-negative integer, got -2");
}

TEST_F(CorruptFile, UnknownDtype) {
  std::string msg = handmade_error(R"({"x":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}})");
  EXPECT_CONTAINS(msg, "is corrupt: tensor 'x' has unknown dtype 'BF16' (supported: F32, F64, I64)");
}

TEST_F(CorruptFile, BadDataOffsets) {
  EXPECT_CONTAINS(handmade_error(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                 R"("y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})"),
                  "overlap tensor 'x' [0, 8]");
  EXPECT_CONTAINS(handmade_error(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})"),
                  "data_offsets [0, 16] are out of range: the data section has 8 bytes");
  EXPECT_CONTAINS(handmade_error(R"({"x":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})"),
                  "span 8 bytes but shape [2] of F64 needs 16");
  EXPECT_CONTAINS(handmade_error(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})"),
                  "4 trailing bytes after the last tensor");
  EXPECT_CONTAINS(handmade_error(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})"),
                  "bytes [0, 4) of the data section belong to no tensor");
  EXPECT_CONTAINS(handmade_error(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})"),
                  "header names 'x' twice");
}

TEST_F(CorruptFile, TruncatedCheckpoint) {
  save_checkpoint(path("t.safetensors"), sample_checkpoint<float>());
  std::vector<uint8_t> bytes = read_bytes(path("t.safetensors"));
  ASSERT_GT(bytes.size(), 100u);
  bytes.erase(bytes.end() - 3, bytes.end());  // the last write() of a crashed writer never landed
  write_bytes(path("t.safetensors"), bytes);
  std::string msg = error_of([&] { load_checkpoint<float>(path("t.safetensors")); });
  EXPECT_CONTAINS(msg, path("t.safetensors"));
  EXPECT_CONTAINS(msg, "out of range");
  EXPECT_CONTAINS(msg, "truncated file?");
}

TEST_F(CorruptFile, FlippedDataByteFailsTheChecksum) {
  save_checkpoint(path("f.safetensors"), sample_checkpoint<double>());
  std::vector<uint8_t> bytes = read_bytes(path("f.safetensors"));
  bytes[bytes.size() - 20] ^= 0x10;
  write_bytes(path("f.safetensors"), bytes);
  std::string msg = error_of([&] { load_checkpoint<double>(path("f.safetensors")); });
  EXPECT_CONTAINS(msg, "checkpoint " + path("f.safetensors") + " is corrupt: checksum mismatch");
}

TEST_F(CorruptFile, WrongDtype) {
  save_checkpoint(path("f32.safetensors"), sample_checkpoint<float>());
  EXPECT_CONTAINS(error_of([&] { load_checkpoint<double>(path("f32.safetensors")); }),
                  "holds F32 parameters but F64 (float64) was expected");
  SafetensorsFile f = read_safetensors(path("f32.safetensors"));
  EXPECT_CONTAINS(error_of([&] { from_raw<double>(*f.find("param.bias")); }),
                  "tensor 'param.bias' is F32 but float64 was expected");
  // A file that lies about its dtype in the metadata is caught per tensor, naming the file.
  f.metadata["dtype"] = "F64";
  write_safetensors(path("liar.safetensors"), f);
  std::string msg = error_of([&] { load_checkpoint<double>(path("liar.safetensors")); });
  EXPECT_CONTAINS(msg, path("liar.safetensors"));
  EXPECT_CONTAINS(msg, "tensor 'param.attn.w' is F32 but float64 was expected");
}

TEST_F(CorruptFile, NotAnIhlabCheckpoint) {
  SafetensorsFile f;
  f.tensors.push_back(to_raw("w", Tensor<float>({2})));
  write_safetensors(path("plain.safetensors"), f);
  EXPECT_CONTAINS(error_of([&] { load_checkpoint<float>(path("plain.safetensors")); }),
                  "is not an ihlab checkpoint: its __metadata__ has no \"format\"");
  f.metadata = {{"format", "ihlab-checkpoint-1"}, {"dtype", "F32"}, {"ihlab", "{}"}};
  write_safetensors(path("noprefix.safetensors"), f);
  EXPECT_CONTAINS(error_of([&] { load_checkpoint<float>(path("noprefix.safetensors")); }),
                  "tensor 'w' has none of the prefixes");
  f.metadata["ihlab"] = "{broken";
  f.tensors.clear();
  write_safetensors(path("badmeta.safetensors"), f);
  EXPECT_CONTAINS(error_of([&] { load_checkpoint<float>(path("badmeta.safetensors")); }),
                  "its \"ihlab\" metadata is not valid JSON");
}

// ---- atomic writes ----

class AtomicWrite : public TempDirTest {};

TEST_F(AtomicWrite, OverwriteReplacesAndLeavesNoTmp) {
  Checkpoint<float> c = sample_checkpoint<float>();
  save_checkpoint(path("c.safetensors"), c);
  c.meta["step"] = 18;
  c.params.resize(1);
  save_checkpoint(path("c.safetensors"), c);
  Checkpoint<float> loaded = load_checkpoint<float>(path("c.safetensors"));
  EXPECT_EQ(loaded.meta["step"], 18);
  EXPECT_EQ(loaded.params.size(), 1u);
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{"c.safetensors"});
}

TEST_F(AtomicWrite, FailedWriteKeepsTheOldFile) {
  Checkpoint<float> good = sample_checkpoint<float>();
  save_checkpoint(path("c.safetensors"), good);
  std::vector<uint8_t> before = read_bytes(path("c.safetensors"));
  Checkpoint<float> bad = good;
  bad.params.push_back(bad.params[0]);  // duplicate name: rejected before anything is written
  EXPECT_CONTAINS(error_of([&] { save_checkpoint(path("c.safetensors"), bad); }), "'param.attn.w' appears twice");
  EXPECT_EQ(read_bytes(path("c.safetensors")), before);
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{"c.safetensors"});
}

TEST_F(AtomicWrite, UnwritableDirectoryNamesThePath) {
  std::string p = path("no/such/dir/c.safetensors");
  std::string msg = error_of([&] { save_checkpoint(p, sample_checkpoint<float>()); });
  EXPECT_CONTAINS(msg, p);
  EXPECT_FALSE(fs::exists(p));
}

// ---- restore_params ----

class RestoreParams : public ::testing::Test {
 protected:
  void SetUp() override {
    store.add("attn.w", "W", Tensor<float>({3, 5}, 1.0f));
    store.add("b", "a", Tensor<float>({5}, 2.0f));
  }
  std::string restore_error(const Checkpoint<float>& c) {
    return error_of([&] { restore_params(c, store); });
  }
  void expect_store_unchanged() {
    for (float v : store.get("attn.w").var.value().span()) EXPECT_EQ(v, 1.0f);
    for (float v : store.get("b").var.value().span()) EXPECT_EQ(v, 2.0f);
  }
  ParamStore<float> store;
};

TEST_F(RestoreParams, ShapeMismatchNamesParameterAndBothShapes) {
  Checkpoint<float> c;
  c.params = {{"b", Tensor<float>({5}, 9.0f)}, {"attn.w", Tensor<float>({3, 4}, 9.0f)}};
  EXPECT_EQ(restore_error(c), "parameter 'attn.w' has shape [3, 4] in checkpoint but [3, 5] in the model");
  expect_store_unchanged();  // "b" matched but was not copied: all or nothing
}

TEST_F(RestoreParams, MissingExtraAndDuplicateParameters) {
  Checkpoint<float> c;
  c.params = {{"attn.w", Tensor<float>({3, 5}, 9.0f)}};
  EXPECT_CONTAINS(restore_error(c), "parameter 'b' is in the model but not in the checkpoint");
  c.params.push_back({"b", Tensor<float>({5}, 9.0f)});
  c.params.push_back({"gone", Tensor<float>({1})});
  EXPECT_CONTAINS(restore_error(c),
                  "parameter 'gone' is in the checkpoint but not in the model (model has: attn.w, b)");
  c.params.back() = {"b", Tensor<float>({5})};
  EXPECT_CONTAINS(restore_error(c), "checkpoint lists parameter 'b' twice");
  expect_store_unchanged();
}

TEST_F(RestoreParams, SnapshotIsADeepCopy) {
  auto snap = snapshot_params(store);
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_EQ(snap[0].first, "attn.w");
  store.find("attn.w")->var.value().fill(5.0f);
  EXPECT_EQ(snap[0].second[0], 1.0f);
  Checkpoint<float> c;
  c.params = snap;
  restore_params(c, store);
  expect_store_unchanged();
}

}  // namespace
}  // namespace ihlab
