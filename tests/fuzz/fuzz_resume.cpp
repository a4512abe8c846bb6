// Fuzzes what `ihlab train --resume DIR` reads from a run directory, through the trainer itself:
// checkpoints/latest.json, the checkpoint it names (parameters, optimizer and integrator state,
// the meta the trainer restores its loop from), metrics.csv and attention.jsonl.
//
// At start it trains a tiny two-stage run (Adam, then gradient flow) twice, interrupted once in
// each stage, to get two real run directories. Each input replaces one file of one of them:
//   byte 0: bits 0-1 pick the file (latest.json, the checkpoint, metrics.csv, attention.jsonl),
//           bit 2 the directory (interrupted in the Adam stage, or in the flow stage)
//   the rest: the file's new contents
// and the run is resumed to its end. A bad file must be refused with an ihlab::Error.
// With IHLAB_FUZZ_WRITE_SEEDS=DIR set, it writes the eight untouched files as seeds and exits.
#include "fuzz_util.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "io/config.h"
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

const char* const kFiles[4] = {"checkpoints/latest.json", "<checkpoint>", "metrics.csv", "attention.jsonl"};

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

// The path of file `which` in run directory `dir`.
fs::path file_in(const fs::path& dir, int which) {
  if (which == 1) return latest_checkpoint_path((dir / "checkpoints").string());
  return dir / kFiles[which];
}

void write_seeds(const fs::path& out) {
  fs::create_directories(out);
  for (int d = 0; d < 2; ++d)
    for (int which = 0; which < 4; ++which) {
      const std::string bytes = fuzz::read_scratch(file_in(fixture().pristine[d], which).string());
      std::ofstream f(out / ("dir" + std::to_string(d) + "-file" + std::to_string(which)), std::ios::binary);
      f.put(char(which | (d << 2)));
      f << bytes;
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
  const Fixture& f = fixture();
  const int which = data[0] & 3, dir = (data[0] >> 2) & 1;
  fs::remove_all(f.work);
  fs::copy(f.pristine[dir], f.work, fs::copy_options::recursive);
  fuzz::write_scratch(fs::relative(file_in(f.work, which), fuzz::scratch_dir()).string(),
                      fuzz::as_text(data + 1, size - 1));
  TrainOptions o;
  o.resume = true;
  o.quiet = true;
  try {
    (void)run_config(f.config, f.work.string(), o);
  } catch (const Error&) {
  }
  return 0;
}
