// Scratch run directories for tests, removed at the end of a passing run.
//
// Many tests train into a run directory under the system temp directory. Left behind, one run of
// the test programs adds ~14 MB to /tmp every time, so every path handed out here is recorded and
// a gtest global Environment removes them all once every test has passed. A failed run keeps its
// directories to look at and prints where they are.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

namespace ihlab::test {

class ScratchDirs : public ::testing::Environment {
 public:
  // The one instance, registered with gtest (which owns it) on first use.
  static ScratchDirs& get() {
    static ScratchDirs* const env = static_cast<ScratchDirs*>(::testing::AddGlobalTestEnvironment(new ScratchDirs));
    return *env;
  }

  std::string record(const std::filesystem::path& p) {
    std::lock_guard<std::mutex> lock(mu_);
    paths_.push_back(p);
    return p.string();
  }

  void TearDown() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (::testing::UnitTest::GetInstance()->Passed()) {
      for (const auto& p : paths_) {
        std::error_code ec;
        std::filesystem::remove_all(p, ec);
      }
    } else {
      std::error_code ec;
      bool any = false;
      for (const auto& p : paths_) {
        if (!std::filesystem::exists(p, ec)) continue;
        if (!any) std::cerr << "Tests failed; their scratch directories are kept for inspection:\n";
        any = true;
        std::cerr << "  " << p.string() << "\n";
      }
    }
    paths_.clear();
  }

 private:
  ScratchDirs() = default;
  std::mutex mu_;
  std::vector<std::filesystem::path> paths_;
};

// Registers the environment before RUN_ALL_TESTS starts (get() would also do it on first use).
inline ScratchDirs& scratch_dirs_registered = ScratchDirs::get();

// A fresh path <temp>/<name>_<pid>: removed if present (not created), and recorded for cleanup.
inline std::string scratch_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  return ScratchDirs::get().record(d);
}

// Records another path (a file beside a scratch directory, say) for the same cleanup; returns it.
inline std::string scratch_file(const std::string& path) { return ScratchDirs::get().record(path); }

}  // namespace ihlab::test
