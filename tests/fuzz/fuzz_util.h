#pragma once
// Shared by the libFuzzer targets in tests/fuzz/. Each target feeds one parser of outside input
// (a config file, an override, a file a run directory holds) and catches ihlab::Error, the one
// exception a parser may throw for bad input. Anything else is a finding: a crash, a sanitizer
// report, another exception type (it escapes LLVMFuzzerTestOneInput and aborts), a hang, or a
// broken property (fuzz_check traps).
#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace ihlab::fuzz {

// A property the parser promises (e.g. a written file reads back the same). __builtin_trap makes
// libFuzzer record the input as a crash, with the message on stderr.
#define IHLAB_FUZZ_CHECK(cond, what)                                                           \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "fuzz property violated at %s:%d: %s\n", __FILE__, __LINE__, what); \
      __builtin_trap();                                                                        \
    }                                                                                          \
  } while (0)

// libFuzzer's -timeout timer (SIGALRM, every few seconds) is installed without SA_RESTART, so it
// can interrupt a system call of the code under test (EINTR): a copy or a write then fails as a
// real run never does (seen in fuzz_resume: "cannot copy: Interrupted system call"). Adds
// SA_RESTART to it, once libFuzzer has installed it (before the first input).
inline void restart_syscalls_after_alarm() {
  static bool done = false;
  if (done) return;
  struct sigaction sa;
  if (sigaction(SIGALRM, nullptr, &sa) != 0 || sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN) return;
  sa.sa_flags |= SA_RESTART;
  done = sigaction(SIGALRM, &sa, nullptr) == 0;
}

// A directory of this process for the files the parsers read (on tmpfs when there is one: the
// writers fsync, which on a disk would dominate each execution). Removed at exit.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    namespace fs = std::filesystem;
    fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("ihlab-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return d;
  }();
  return dir;
}

// Writes `bytes` to scratch_dir()/name (replacing it) and returns the path.
inline std::string write_scratch(const std::string& name, std::string_view bytes) {
  restart_syscalls_after_alarm();  // every target that reads files comes here first
  const std::string path = (scratch_dir() / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

inline std::string read_scratch(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A safetensors file around `header` and `data`: the 8-byte little-endian header length first.
// Targets that take the header as text build the file with this, so that a mutation which changes
// the header's length still gives a well-framed file and reaches the header's checks.
inline std::string safetensors_file(std::string_view header, std::string_view data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
  out.append(header);
  out.append(data);
  return out;
}

// The input as a safetensors file. Byte 0 picks the form of the rest: even = the file's bytes as
// they are; odd = the header's JSON text, a NUL byte, then the data section (the target adds the
// length field). fuzz_seeds writes every seed file in both forms.
inline std::string safetensors_input(const uint8_t* data, size_t size) {
  if (size == 0) return {};
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) return std::string(rest);
  const size_t nul = rest.find('\0');
  if (nul == std::string_view::npos) return safetensors_file(rest, {});
  return safetensors_file(rest.substr(0, nul), rest.substr(nul + 1));
}

// Equal values of equal JSON types (an int is not a float), NaN equal to NaN: what "reads back the
// same" means for a config.
inline bool same_json(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case nlohmann::json::value_t::number_float: {
      const double x = a.get<double>(), y = b.get<double>();
      return (std::isnan(x) && std::isnan(y)) || x == y;
    }
    case nlohmann::json::value_t::array:
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i)
        if (!same_json(a[i], b[i])) return false;
      return true;
    case nlohmann::json::value_t::object:
      if (a.size() != b.size()) return false;
      for (auto it = a.begin(); it != a.end(); ++it)
        if (!b.contains(it.key()) || !same_json(it.value(), b.at(it.key()))) return false;
      return true;
    default: return a == b;
  }
}

}  // namespace ihlab::fuzz
