#include "io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

// Tensor bytes are written and read as they lie in memory; the format is little-endian.
static_assert(std::endian::native == std::endian::little, "ihlab safetensors I/O needs a little-endian host");

namespace ihlab {
namespace {

namespace fs = std::filesystem;
// ordered_json keeps the header's key order, which is the order tensors were written in.
using ordered_json = nlohmann::ordered_json;

constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

uint64_t fnv1a64_update(uint64_t h, const uint8_t* data, size_t size) {
  for (size_t i = 0; i < size; ++i) {
    h ^= data[i];
    h *= kFnvPrime;
  }
  return h;
}

std::string hex16(uint64_t h) { return fmt::format("{:016x}", h); }

// -1 for an unsupported dtype, so the reader can phrase its own message.
int64_t itemsize_or_negative(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F64" || dtype == "I64") return 8;
  return -1;
}

constexpr const char* kSupportedDtypes = "F32, F64, I64";

// numel * itemsize, or -1 if a dimension is negative or the product overflows int64.
int64_t checked_byte_count(const Shape& shape, int64_t itemsize) {
  int64_t n = itemsize;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return -1;
  }
  return n;
}

std::string errno_text(int err) { return std::strerror(err); }

void write_all(int fd, const char* p, size_t n, const std::string& tmp) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail("cannot write {}: {}", tmp, errno_text(errno));
    p += w;
    n -= size_t(w);
  }
}

// Makes the rename itself durable. Best effort: some filesystems refuse fsync on a directory, and
// the file contents are already on disk by then.
void fsync_parent_directory(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) parent = ".";
  int dfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return;
  (void)::fsync(dfd);
  ::close(dfd);
}

// Writes the concatenation of `chunks` atomically, without first joining them (tensor data can be
// large and is already in memory once).
void write_chunks_atomic(const std::string& path, const std::vector<std::string_view>& chunks) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot write {}: cannot create {}: {}", path, tmp, errno_text(errno));
  try {
    for (auto c : chunks) write_all(fd, c.data(), c.size(), tmp);
    if (::fsync(fd) != 0) fail("cannot write {}: fsync failed: {}", tmp, errno_text(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail("cannot write {}: close failed: {}", tmp, errno_text(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail("cannot write {}: rename from {} failed: {}", path, tmp, errno_text(err));
  }
  fsync_parent_directory(path);
}

std::vector<uint8_t> read_whole_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("checkpoint {} does not exist", path);
  if (fs::is_directory(path, ec)) fail("checkpoint {} is a directory, not a file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("checkpoint {} cannot be opened: {}", path, errno_text(errno));
  std::vector<uint8_t> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("checkpoint {} cannot be read: {}", path, errno_text(errno));
  return buf;
}

[[noreturn]] void corrupt(const std::string& path, const std::string& problem) {
  fail("checkpoint {} is corrupt: {}", path, problem);
}

// A header entry after structural checks, before the offsets are checked against each other.
struct Entry {
  std::string name, dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

// A header value quoted in a message, cut to a readable length (ASCII, so the cut splits no character).
std::string brief(const ordered_json& v) {
  std::string s = v.dump(-1, ' ', /*ensure_ascii=*/true);
  return s.size() <= 80 ? s : s.substr(0, 77) + "...";
}

uint64_t as_u64(const ordered_json& v, const std::string& path, const std::string& what) {
  if (!v.is_number_unsigned()) corrupt(path, fmt::format("{} must be a non-negative integer, got {}", what, brief(v)));
  return v.get<uint64_t>();
}

Entry parse_entry(const std::string& path, const std::string& name, const ordered_json& v) {
  const std::string where = fmt::format("tensor '{}'", name);
  if (!v.is_object()) corrupt(path, fmt::format("{} must map to an object, got {}", where, brief(v)));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) corrupt(path, fmt::format("{} has no \"{}\"", where, key));
  Entry e;
  e.name = name;
  if (!v["dtype"].is_string()) corrupt(path, fmt::format("{} dtype must be a string", where));
  e.dtype = v["dtype"].get<std::string>();
  if (itemsize_or_negative(e.dtype) < 0)
    corrupt(path, fmt::format("{} has unknown dtype '{}' (supported: {})", where, e.dtype, kSupportedDtypes));
  if (!v["shape"].is_array()) corrupt(path, fmt::format("{} shape must be an array", where));
  for (auto& d : v["shape"]) {
    uint64_t dim = as_u64(d, path, where + " shape entry");
    if (dim > uint64_t(INT64_MAX)) corrupt(path, fmt::format("{} dimension {} is too large", where, dim));
    e.shape.push_back(int64_t(dim));
  }
  const auto& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    corrupt(path, fmt::format("{} data_offsets must be [begin, end], got {}", where, brief(off)));
  e.begin = as_u64(off[0], path, where + " data_offsets");
  e.end = as_u64(off[1], path, where + " data_offsets");
  return e;
}

// Every byte of the data section must belong to exactly one tensor: no overlap, no gap, nothing
// after the last tensor (as the safetensors specification requires).
void check_offsets(const std::string& path, const std::vector<Entry>& entries, uint64_t data_size) {
  for (auto& e : entries) {
    if (e.begin > e.end)
      corrupt(path, fmt::format("tensor '{}' data_offsets [{}, {}] end before they begin", e.name, e.begin, e.end));
    if (e.end > data_size)
      corrupt(path, fmt::format("tensor '{}' data_offsets [{}, {}] are out of range: the data section has {} bytes "
                                "(truncated file?)",
                                e.name, e.begin, e.end, data_size));
    int64_t want = checked_byte_count(e.shape, itemsize_or_negative(e.dtype));
    if (want < 0 || uint64_t(want) != e.end - e.begin)
      corrupt(path, fmt::format("tensor '{}' data_offsets [{}, {}] span {} bytes but shape {} of {} needs {}", e.name,
                                e.begin, e.end, e.end - e.begin, shape_str(e.shape), e.dtype,
                                want < 0 ? std::string("more than 2^63") : std::to_string(want)));
  }
  std::vector<size_t> order(entries.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::pair(entries[a].begin, entries[a].end) < std::pair(entries[b].begin, entries[b].end);
  });
  uint64_t cursor = 0;
  const Entry* prev = nullptr;
  for (size_t i : order) {
    const Entry& e = entries[i];
    if (e.begin < cursor)
      corrupt(path, fmt::format("tensor '{}' data_offsets [{}, {}] overlap tensor '{}' [{}, {}]", e.name, e.begin,
                                e.end, prev->name, prev->begin, prev->end));
    if (e.begin > cursor)
      corrupt(path, fmt::format("bytes [{}, {}) of the data section belong to no tensor (before tensor '{}')", cursor,
                                e.begin, e.name));
    cursor = e.end;
    prev = &e;
  }
  if (cursor != data_size)
    corrupt(path, fmt::format("{} trailing bytes after the last tensor (data section has {} bytes, tensors use {})",
                              data_size - cursor, data_size, cursor));
}

// A header is {name: {"dtype", "shape": [...], "data_offsets": [...]}, "__metadata__": {...}}:
// three levels. nlohmann copies and prints values recursively (an ordered_json object copies its
// values when it grows), so a deeply nested one would overflow the stack: such values are dropped
// while parsing and the header refused.
constexpr int kMaxHeaderDepth = 16;

ordered_json parse_header(const std::string& path, const uint8_t* begin, const uint8_t* end) {
  // nlohmann keeps the last of duplicate keys silently; a callback sees every top-level key.
  std::set<std::string> seen;
  std::string duplicate;
  bool too_deep = false;
  auto on_event = [&](int depth, ordered_json::parse_event_t event, ordered_json& parsed) {
    if (depth > kMaxHeaderDepth) {
      too_deep = true;
      return false;  // not stored
    }
    if (event == ordered_json::parse_event_t::key && depth == 1 && !seen.insert(parsed.get<std::string>()).second &&
        duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  ordered_json header;
  try {
    header = ordered_json::parse(begin, end, on_event);
  } catch (const ordered_json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    corrupt(path, fmt::format("header is not valid JSON ({})", e.what()));
  }
  if (too_deep) corrupt(path, fmt::format("header nests values more than {} levels deep", kMaxHeaderDepth));
  if (!duplicate.empty()) corrupt(path, fmt::format("header names '{}' twice", duplicate));
  if (!header.is_object()) corrupt(path, fmt::format("header must be a JSON object, got {}", header.type_name()));
  return header;
}

}  // namespace

int64_t dtype_itemsize(const std::string& dtype) {
  int64_t s = itemsize_or_negative(dtype);
  if (s < 0) fail("safetensors: unsupported dtype '{}' (supported: {})", dtype, kSupportedDtypes);
  return s;
}

std::string fnv1a64_hex(const uint8_t* data, size_t size) { return hex16(fnv1a64_update(kFnvOffsetBasis, data, size)); }

const RawTensor* SafetensorsFile::find(const std::string& name) const {
  for (auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void write_file_atomic(const std::string& path, std::string_view bytes) { write_chunks_atomic(path, {bytes}); }

void write_safetensors(const std::string& path, const SafetensorsFile& f) {
  std::set<std::string> names;
  uint64_t hash = kFnvOffsetBasis;
  uint64_t offset = 0;
  ordered_json header = ordered_json::object();
  header["__metadata__"] = ordered_json::object();  // first, as Python's writer does; filled below
  for (auto& t : f.tensors) {
    IHLAB_CHECK(!t.name.empty(), "safetensors: cannot write {}: a tensor has an empty name", path);
    IHLAB_CHECK(t.name != "__metadata__", "safetensors: cannot write {}: '__metadata__' is reserved", path);
    IHLAB_CHECK(names.insert(t.name).second, "safetensors: cannot write {}: tensor '{}' appears twice", path, t.name);
    int64_t want = checked_byte_count(t.shape, dtype_itemsize(t.dtype));
    IHLAB_CHECK(want >= 0 && uint64_t(want) == t.bytes.size(),
                "safetensors: cannot write {}: tensor '{}' has {} bytes but shape {} of {} needs {}", path, t.name,
                t.bytes.size(), shape_str(t.shape), t.dtype, want);
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
    hash = fnv1a64_update(hash, t.bytes.data(), t.bytes.size());
  }
  auto& meta = header["__metadata__"];
  for (auto& [k, v] : f.metadata) meta[k] = v;
  meta[kChecksumKey] = hex16(hash);

  std::string text;
  try {
    text = header.dump();
  } catch (const ordered_json::exception& e) {
    fail("safetensors: cannot write {}: a tensor name or metadata value is not valid UTF-8 ({})", path, e.what());
  }
  // Padding keeps the data section 8-byte aligned in the file, so readers can map it directly.
  text.append((8 - text.size() % 8) % 8, ' ');

  char length_le[8];
  for (int i = 0; i < 8; ++i) length_le[i] = char((uint64_t(text.size()) >> (8 * i)) & 0xff);
  std::vector<std::string_view> chunks{{length_le, 8}, text};
  for (auto& t : f.tensors) chunks.emplace_back(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  write_chunks_atomic(path, chunks);
}

SafetensorsFile read_safetensors(const std::string& path) {
  const std::vector<uint8_t> buf = read_whole_file(path);
  if (buf.size() < 8)
    corrupt(path, fmt::format("file has {} bytes, fewer than the 8-byte header length field", buf.size()));
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t(buf[i]) << (8 * i);
  if (header_len > buf.size() - 8)
    corrupt(path, fmt::format("header length {} is larger than the {} bytes that follow it (not a safetensors "
                              "file, or truncated?)",
                              header_len, buf.size() - 8));
  const uint8_t* data = buf.data() + 8 + header_len;
  const uint64_t data_size = buf.size() - 8 - header_len;

  ordered_json header = parse_header(path, buf.data() + 8, data);
  SafetensorsFile out;
  std::vector<Entry> entries;
  for (auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) corrupt(path, "__metadata__ must be an object of strings");
      for (auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          corrupt(path, fmt::format("__metadata__ value of '{}' must be a string, got {}", mk, brief(mv)));
        out.metadata[mk] = mv.get<std::string>();
      }
    } else {
      entries.push_back(parse_entry(path, key, value));
    }
  }
  check_offsets(path, entries, data_size);

  if (auto it = out.metadata.find(kChecksumKey); it != out.metadata.end()) {
    std::string actual = fnv1a64_hex(data, data_size);
    if (actual != it->second)
      corrupt(path, fmt::format("checksum mismatch (header says {}, data hashes to {})", it->second, actual));
  }
  for (auto& e : entries)
    out.tensors.push_back({e.name, e.dtype, e.shape, std::vector<uint8_t>(data + e.begin, data + e.end)});
  return out;
}

template <typename T>
RawTensor to_raw(const std::string& name, const Tensor<T>& t) {
  IHLAB_CHECK(t.defined(), "safetensors: tensor '{}' is undefined (no storage)", name);
  RawTensor r{name, dtype_of<T>(), t.shape(), std::vector<uint8_t>(size_t(t.numel()) * sizeof(T))};
  if (t.numel() > 0) std::memcpy(r.bytes.data(), t.data(), r.bytes.size());
  return r;
}

template <typename T>
Tensor<T> from_raw(const RawTensor& raw) {
  IHLAB_CHECK(raw.dtype == dtype_of<T>(), "tensor '{}' is {} but {} was expected", raw.name, raw.dtype,
              type_name_of<T>());
  int64_t want = checked_byte_count(raw.shape, sizeof(T));
  IHLAB_CHECK(want >= 0 && uint64_t(want) == raw.bytes.size(), "tensor '{}' has {} bytes but shape {} of {} needs {}",
              raw.name, raw.bytes.size(), shape_str(raw.shape), raw.dtype, want);
  std::vector<T> values(raw.bytes.size() / sizeof(T));
  if (!values.empty()) std::memcpy(values.data(), raw.bytes.data(), raw.bytes.size());
  return Tensor<T>(raw.shape, std::move(values));
}

template RawTensor to_raw<float>(const std::string&, const Tensor<float>&);
template RawTensor to_raw<double>(const std::string&, const Tensor<double>&);
template RawTensor to_raw<int64_t>(const std::string&, const Tensor<int64_t>&);
template Tensor<float> from_raw<float>(const RawTensor&);
template Tensor<double> from_raw<double>(const RawTensor&);
template Tensor<int64_t> from_raw<int64_t>(const RawTensor&);

}  // namespace ihlab
