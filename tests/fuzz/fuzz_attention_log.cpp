// Fuzzes AttentionLog's resume (io/attention_log.h), as `ihlab train --resume` reopens the
// attention.jsonl of an interrupted run: it keeps the snapshots up to the checkpoint's step and
// reports the last one kept, from which the trainer schedules the next snapshot.
//   property: last_step() is at most the resume step; after one more snapshot every line of the
//   file is a JSON object with an integer "step", the new snapshot last.
#include "fuzz_util.h"
#include "core/error.h"
#include "io/attention_log.h"

namespace {

using namespace ihlab;

constexpr int64_t kResumeStep = 100;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_scratch("attention.jsonl", fuzz::as_text(data, size));
  try {
    AttentionLog log(path, /*keep=*/4, kResumeStep);
    IHLAB_FUZZ_CHECK(log.last_step() <= kResumeStep, "resume kept a snapshot after the resume step");
    AttentionMap m;
    m.queries = m.keys = 2;
    m.weights = {1.0, 0.0, 0.25, 0.75};
    log.write(kResumeStep + 1, 0, {1, 2, 3}, {m});
  } catch (const Error&) {
    return 0;
  }
  const std::string text = fuzz::read_scratch(path);
  IHLAB_FUZZ_CHECK(!text.empty() && text.back() == '\n', "the file does not end with a complete line");
  nlohmann::json last;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    last = nlohmann::json::parse(text.substr(start, nl - start), nullptr, false);
    IHLAB_FUZZ_CHECK(last.is_object() && last.contains("step") && last["step"].is_number_integer(),
                     "resume kept a line that is not a snapshot");
  }
  IHLAB_FUZZ_CHECK(last["step"] == kResumeStep + 1, "the new snapshot is not the last line");
  return 0;
}
