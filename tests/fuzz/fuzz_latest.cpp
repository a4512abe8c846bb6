// Fuzzes latest_checkpoint_path (io/checkpoint.h), which reads checkpoints/latest.json, the
// pointer to the newest checkpoint that `ihlab train --resume` follows.
//   property: an accepted pointer names a file directly inside the checkpoints directory.
#include "fuzz_util.h"
#include "io/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ihlab;
  namespace fs = std::filesystem;
  static const std::string dir = [] {
    fs::create_directories(fuzz::scratch_dir() / "checkpoints");
    return (fuzz::scratch_dir() / "checkpoints").string();
  }();
  fuzz::write_scratch("checkpoints/latest.json", fuzz::as_text(data, size));
  std::string path;
  try {
    path = latest_checkpoint_path(dir);
  } catch (const Error&) {
    return 0;
  }
  const fs::path p = fs::path(path).lexically_normal();
  IHLAB_FUZZ_CHECK(p.parent_path() == fs::path(dir).lexically_normal() && p.has_filename(),
                   "latest.json points outside the checkpoints directory");
  return 0;
}
