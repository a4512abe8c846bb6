// Writes the seed corpora of the io fuzz targets into OUT/<target>/: files shaped like the ones a
// run directory holds, written by the same functions the trainer uses (a float32 and a float64
// checkpoint with optimizer and integrator state, metrics.csv, attention.jsonl, latest.json), plus
// a few edge cases (scalar, empty and int64 tensors, a row cut off by a crash). Safetensors seeds
// are written in both input forms of fuzz::safetensors_input. The config seeds come from
// examples/*.toml (scripts/fuzz.sh).
//   fuzz_seeds OUT
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/attention_log.h"
#include "io/checkpoint.h"
#include "io/run_dir.h"
#include "io/safetensors.h"

namespace {

using namespace ihlab;
namespace fs = std::filesystem;
using json = nlohmann::json;

template <typename T>
Tensor<T> ramp(Shape shape, double scale) {
  Tensor<T> t(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = T(scale * double(i + 1));
  return t;
}

// The meta and sections the trainer writes (train/trainer.cpp save_checkpoint).
template <typename T>
Checkpoint<T> trainer_like_checkpoint(bool flow) {
  Checkpoint<T> c;
  json config = {{"name", "smoke"},
                 {"seed", 1},
                 {"dtype", sizeof(T) == 4 ? "float32" : "float64"},
                 {"task", {{"name", "previous-token"}, {"vocab", 4}, {"length", 6}}},
                 {"stages", json::array({{{"name", "adam"}, {"steps", 6}, {"lr", 0.02}}})}};
  c.meta = {{"step", 100},
            {"stage", 0},
            {"stage_step", 100},
            {"stage_done", false},
            {"rng", {{"seed", 1}, {"data_index", 100}}},
            {"optimizer", {{"kind", "adam"}, {"steps_taken", 100}}},
            {"flow_evals", 0},
            {"wall_seconds", 0.25},
            {"config", config}};
  c.params = {{"embed", ramp<T>({4, 3}, 0.1)}, {"attn.w", ramp<T>({3, 3}, -0.01)}, {"bias", ramp<T>({}, 2)}};
  for (auto& [name, t] : c.params) {
    c.optimizer_state.push_back({"m." + name, ramp<T>(t.shape(), 1e-3)});
    c.optimizer_state.push_back({"v." + name, ramp<T>(t.shape(), 1e-6)});
    c.optimizer_state.push_back({"step." + name, Tensor<T>(Shape{}, T(100))});
  }
  if (flow) {
    c.meta["flow"] = {{"t", 0.5}, {"h", 0.01}, {"accepted", 12}, {"rejected", 1}};
    c.extra.push_back({"flow.y", ramp<double>({22}, 0.5)});
    c.extra.push_back({"flow.k_last", ramp<double>({22}, -0.5)});
  }
  return c;
}

// Rewrites a safetensors seed in the two forms the targets take (fuzz::safetensors_input): byte 0
// even + the file, and byte 0 odd + the header text + NUL + the data.
void split_seed(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[i])) << (8 * i);
  std::ofstream(file.string() + ".raw", std::ios::binary) << '\0' << bytes;
  std::ofstream(file.string() + ".text", std::ios::binary) << '\1' << bytes.substr(8, n) << '\0' << bytes.substr(8 + n);
  fs::remove(file);
}

void write_metrics(const std::string& path, bool cut_last_row) {
  fs::remove(path);
  MetricsLog log(path);
  for (int64_t step = 0; step <= 300; step += 25) {
    std::vector<std::pair<std::string, double>> row = {{"loss", 2.0 / double(step + 1)}, {"lr", 0.02}};
    if (step % 50 == 0) row.push_back({"val_loss", step == 150 ? std::nan("") : 1.5 / double(step + 1)});
    log.log(step, row);
  }
  if (cut_last_row) {
    std::FILE* f = std::fopen(path.c_str(), "a");
    std::fputs("325,0.006", f);
    std::fclose(f);
  }
}

void write_attention(const std::string& path) {
  fs::remove(path);
  AttentionLog log(path, /*keep=*/4);
  const std::vector<int32_t> tokens = {3, 1, 4, 1, 5, 2};
  for (int64_t step : {0, 1, 3, 10, 50, 120, 300}) {
    AttentionMap m;
    m.layer = 0, m.head = int(step % 2), m.queries = m.keys = 6;
    for (int64_t q = 0; q < 6; ++q)
      for (int64_t k = 0; k < 6; ++k) m.weights.push_back(k <= q ? 1.0 / double(q + 1) : 0.0);
    log.write(step, step > 100 ? 1 : 0, tokens, {m});
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds OUT\n");
    return 2;
  }
  try {
    const fs::path out = argv[1];
    for (const char* d : {"safetensors", "checkpoint", "metrics", "attention_log", "latest"})
      fs::create_directories(out / d);
    save_checkpoint((out / "checkpoint/adam-f32.safetensors").string(), trainer_like_checkpoint<float>(false));
    save_checkpoint((out / "checkpoint/flow-f64.safetensors").string(), trainer_like_checkpoint<double>(true));
    for (const char* f : {"adam-f32.safetensors", "flow-f64.safetensors"})
      fs::copy_file(out / "checkpoint" / f, out / "safetensors" / f, fs::copy_options::overwrite_existing);
    SafetensorsFile plain;  // no checkpoint metadata; int64, empty and scalar tensors
    plain.metadata["note"] = "written by fuzz_seeds";
    plain.tensors.push_back(to_raw("tokens", ramp<int64_t>({2, 3}, 1)));
    plain.tensors.push_back(to_raw("empty", Tensor<float>(Shape{0, 4})));
    plain.tensors.push_back(to_raw("scalar", Tensor<double>(Shape{}, 0.5)));
    write_safetensors((out / "safetensors/plain.safetensors").string(), plain);
    for (const char* d : {"safetensors", "checkpoint"})
      for (const auto& e : std::vector<fs::directory_entry>(fs::directory_iterator(out / d), {})) split_seed(e.path());

    write_metrics((out / "metrics/metrics.csv").string(), false);
    write_metrics((out / "metrics/cut.csv").string(), true);
    write_attention((out / "attention_log/attention.jsonl").string());
    write_json_atomic((out / "latest/latest.json").string(), {{"file", "step00000100.safetensors"}, {"step", 100}});
    write_json_atomic((out / "latest/stage.json").string(),
                      {{"file", "stage0-adam-step00000300.safetensors"}, {"step", 300}});
  } catch (const Error& e) {
    std::fprintf(stderr, "fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
