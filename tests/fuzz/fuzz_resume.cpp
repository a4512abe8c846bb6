// Fuzzes what `ihlab train --resume DIR` reads from a run directory, through the trainer itself:
// checkpoints/latest.json, the checkpoint it names (parameters, optimizer and integrator state,
// the meta the trainer restores its loop from), metrics.csv and attention.jsonl.
//
// At start it trains a tiny two-stage run (Adam, then gradient flow) twice, interrupted once in
// each stage, to get two real run directories. Each input replaces one file of one of them and
// the run is resumed to its end; a bad file must be refused with an ihlab::Error.
//   byte 0, bit 3: the directory (interrupted in the Adam stage, or in the flow stage)
//   byte 0, bits 0-2: what the rest of the input is (7 counts as 0)
//     0 latest.json
//     1 the checkpoint file, as it is
//     2 the checkpoint's header text (the target adds the length field and keeps the data)
//     3 the checkpoint's "ihlab" meta JSON without its "config" (the target adds the run's, which
//       the trainer compares first and which would otherwise take most mutations, and writes it
//       into the checkpoint)
//     4 bytes over the start of the checkpoint's tensor data (the target fixes the checksum)
//     5 metrics.csv
//     6 attention.jsonl
// Forms 2-4 let mutations reach the trainer past the framing and the checksum.
// With IHLAB_FUZZ_WRITE_SEEDS=DIR set, it writes one seed per form and directory and exits.
#include "fuzz_util.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "train/run.h"
#include "train/run_schema.h"

namespace {

using namespace ihlab;
namespace fs = std::filesystem;

constexpr const char* kConfig = R"(
name = "fuzz-resume"
seed = 3
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
mode = "fixed"
train_size = 16
val_size = 4
batch_size = 0
[log]
every = 1
checkpoint_every = 2
attention_snapshots = 4
attention_tokens = 4
[[stages]]
name = "adam"
optimizer = "adam"
lr = 0.05
steps = 6
[[stages]]
name = "flow"
method = "flow"
lr = 1.0
time = 0.5
)";

enum Form { kLatest, kCheckpoint, kHeader, kMeta, kData, kMetrics, kAttention, kForms };

struct Fixture {
  nlohmann::json config;
  fs::path pristine[2];  // interrupted in stage 0 (Adam), in stage 1 (flow)
  fs::path work;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture x;
    x.config = run_schema().resolve(parse_toml_string(kConfig, "fuzz_resume config"));
    const int64_t stop_after[2] = {3, 8};
    for (int i = 0; i < 2; ++i) {
      x.pristine[i] = fuzz::scratch_dir() / ("pristine" + std::to_string(i));
      TrainOptions o;
      o.quiet = true;
      o.stop_after = stop_after[i];
      RunResult r = run_config(x.config, x.pristine[i].string(), o);
      if (r.status != "interrupted") {
        std::fprintf(stderr, "fuzz_resume: the setup run %d ended '%s', not interrupted\n", i, r.status.c_str());
        std::abort();
      }
    }
    x.work = fuzz::scratch_dir() / "run";
    return x;
  }();
  return f;
}

std::string checkpoint_of(const fs::path& dir) { return latest_checkpoint_path((dir / "checkpoints").string()); }

// The header text and the data section of a safetensors file.
std::pair<std::string, std::string> split_file(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[i])) << (8 * i);
  return {bytes.substr(8, n), bytes.substr(8 + n)};
}

// The untouched contents of `form` in run directory `dir`: the seed of that form.
std::string pristine_contents(const fs::path& dir, Form form) {
  switch (form) {
    case kLatest: return fuzz::read_scratch((dir / "checkpoints/latest.json").string());
    case kCheckpoint: return fuzz::read_scratch(checkpoint_of(dir));
    case kHeader: return split_file(fuzz::read_scratch(checkpoint_of(dir))).first;
    case kMeta: {
      nlohmann::json meta = nlohmann::json::parse(read_safetensors(checkpoint_of(dir)).metadata.at("ihlab"));
      meta.erase("config");
      return meta.dump();
    }
    case kData: return split_file(fuzz::read_scratch(checkpoint_of(dir))).second;
    case kMetrics: return fuzz::read_scratch((dir / "metrics.csv").string());
    default: return fuzz::read_scratch((dir / "attention.jsonl").string());
  }
}

void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// Puts `bytes` into run directory `dir` in the given form.
void apply(const fs::path& dir, Form form, std::string_view bytes) {
  switch (form) {
    case kLatest: return write_file((dir / "checkpoints/latest.json").string(), bytes);
    case kCheckpoint: return write_file(checkpoint_of(dir), bytes);
    case kHeader: {
      const std::string path = checkpoint_of(dir);
      return write_file(path, fuzz::safetensors_file(bytes, split_file(fuzz::read_scratch(path)).second));
    }
    case kMeta: {
      const std::string path = checkpoint_of(dir);
      SafetensorsFile f = read_safetensors(path);
      nlohmann::json meta = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
      if (meta.is_object() && !meta.contains("config")) {
        meta["config"] = fixture().config;
        f.metadata["ihlab"] = meta.dump();
      } else {
        f.metadata["ihlab"] = std::string(bytes);
      }
      return write_safetensors(path, f);
    }
    case kData: {
      const std::string path = checkpoint_of(dir);
      SafetensorsFile f = read_safetensors(path);
      size_t at = 0;
      for (RawTensor& t : f.tensors)
        for (uint8_t& b : t.bytes)
          if (at < bytes.size()) b = uint8_t(bytes[at++]);
      return write_safetensors(path, f);  // a new checksum
    }
    case kMetrics: return write_file((dir / "metrics.csv").string(), bytes);
    default: return write_file((dir / "attention.jsonl").string(), bytes);
  }
}

void write_seeds(const fs::path& out) {
  fs::create_directories(out);
  for (int d = 0; d < 2; ++d)
    for (int form = 0; form < kForms; ++form) {
      std::ofstream f(out / ("dir" + std::to_string(d) + "-form" + std::to_string(form)), std::ios::binary);
      f.put(char(form | (d << 3)));
      f << pristine_contents(fixture().pristine[d], Form(form));
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* out = std::getenv("IHLAB_FUZZ_WRITE_SEEDS")) {
    write_seeds(out);
    std::exit(0);
  }
  (void)fixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  fuzz::restart_syscalls_after_alarm();
  const Fixture& f = fixture();
  const Form form = Form((data[0] & 7) % kForms);
  const int dir = (data[0] >> 3) & 1;
  fs::remove_all(f.work);
  fs::copy(f.pristine[dir], f.work, fs::copy_options::recursive);
  TrainOptions o;
  o.resume = true;
  o.quiet = true;
  // The whole run takes 11 steps. Parameters the fuzzer wrote can make the gradient flow
  // stiff enough to need millions of (valid) steps: stop as if interrupted, which also saves a
  // checkpoint of the resumed state.
  o.stop_after = 64;
  try {
    // (apply's own write_safetensors refuses a meta that is not UTF-8: such an input is skipped.)
    apply(f.work, form, fuzz::as_text(data + 1, size - 1));
    (void)run_config(f.config, f.work.string(), o);
  } catch (const Error&) {
  }
  return 0;
}
