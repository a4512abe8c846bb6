#pragma once
// One exception type for every user-facing failure: bad config, bad checkpoint, shape mismatch.
// Messages name the key or tensor, the offending value and what is allowed.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace ihlab {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

#define IHLAB_CHECK(cond, ...)               \
  do {                                       \
    if (!(cond)) ::ihlab::fail(__VA_ARGS__); \
  } while (0)

}  // namespace ihlab
