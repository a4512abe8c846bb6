#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "analysis/bridge_measures.h"
#include "analysis/emergence.h"
#include "core/eigen.h"
#include "io/checkpoint.h"
#include "reproduce/musat2025_bridge_tokens.h"
#include "reproduce/musat2025_common.h"

namespace ihlab::musat_tokens {

namespace fs = std::filesystem;

namespace {
using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

const NamedMatrix& get(const ParamMap& p, const std::string& name) {
  auto it = p.find(name);
  IHLAB_CHECK(it != p.end(),
              "musat2025-bridge: the checkpoint has no parameter '{}' (needs the 2-layer attention-only transformer "
              "with learned positions and an untied unembedding)",
              name);
  return it->second;
}

Mat mat(const ParamMap& p, const std::string& name) {
  const NamedMatrix& m = get(p, name);
  return Eigen::Map<const Mat>(m.v.data(), m.rows, m.cols);
}

// bridge_measures is written for feature inputs (T = the first D rows of embed.W_in, U [width, D]);
// on tokens T is the whole embedding table, so it goes in that place with D = V.
BridgeMeasures token_measures(ParamMap p) {
  const NamedMatrix E = get(p, "embed.E");
  p["embed.W_in"] = E;
  return bridge_measures(p, E.rows);
}

bool periodic(const fs::path& f) {
  return f.filename().string().rfind("step", 0) == 0 && f.extension() == ".safetensors";
}
}  // namespace

MetricsTable bridge_table(const std::string& run_dir) {
  const std::string path = run_dir + "/bridge.csv";
  if (fs::exists(path)) return read_metrics(path);
  IHLAB_CHECK(fs::exists(run_dir + "/checkpoints"), "musat2025-bridge: '{}' has neither bridge.csv nor checkpoints",
              run_dir);
  std::vector<std::pair<int64_t, BridgeMeasures>> rows;
  for (auto& e : fs::directory_iterator(run_dir + "/checkpoints")) {
    if (e.path().extension() != ".safetensors") continue;
    Checkpoint<float> ck = load_checkpoint<float>(e.path().string());
    rows.emplace_back(ck.meta.at("step").get<int64_t>(), token_measures(musat::checkpoint_param_map(ck)));
  }
  std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.first < b.first; });
  rows.erase(std::unique(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.first == b.first; }), rows.end());
  {
    std::ofstream f(path + ".tmp");
    f << "step,alpha3,beta2,gamma3\n";
    for (auto& [step, m] : rows) f << step << "," << m.alpha3 << "," << m.beta2 << "," << m.gamma3 << "\n";
    f.flush();
    IHLAB_CHECK(f.good(), "musat2025-bridge: could not write '{}'", path + ".tmp");
  }
  fs::rename(path + ".tmp", path);
  // Only now: a crash before the rename leaves the checkpoints to rebuild the file from.
  for (auto& e : fs::directory_iterator(run_dir + "/checkpoints"))
    if (periodic(e.path())) fs::remove(e.path());
  return read_metrics(path);
}

double drop_step(const MetricsTable& m) {
  const std::vector<double> step = m.column("step"), v = m.column("val_loss");
  if (v.size() < 2 || !(v.back() < 0.5 * v.front())) return NAN;
  const double mid = 0.5 * (v.front() + v.back());
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] <= mid) return step[i - 1] + (v[i - 1] - mid) / (v[i - 1] - v[i]) * (step[i] - step[i - 1]);
  return NAN;
}

double reach(const MetricsTable& bridge, const std::string& col, double frac) {
  const std::vector<double> t = bridge.column("step"), y = bridge.column(col);
  if (y.empty()) return NAN;
  if (frac < 0) return first_reach(t, y, -frac);
  const double top = *std::max_element(y.begin(), y.end());
  return top > 0 ? first_reach(t, y, frac * top) : NAN;
}

nlohmann::json transformed_weights(const std::string& run_dir, const std::string& out_dir, const std::string& prefix) {
  std::string last;
  for (auto& e : fs::directory_iterator(run_dir + "/checkpoints"))
    if (e.path().extension() == ".safetensors" && e.path().filename().string().rfind("stage", 0) == 0 &&
        e.path().string() > last)
      last = e.path().string();
  IHLAB_CHECK(!last.empty(), "musat2025-bridge: '{}/checkpoints' holds no stage-end checkpoint", run_dir);
  const ParamMap p = musat::checkpoint_param_map(load_checkpoint<float>(last));
  const Mat P = mat(p, "pos.P"), T = mat(p, "embed.E"), U = mat(p, "unembed.U");   // [L, w], [V, w], [w, V]
  const Mat Q1 = P * mat(p, "layer0.attn.Wq"), K1 = P * mat(p, "layer0.attn.Wk");  // [L, w]
  const Mat K2 = T * mat(p, "layer0.attn.Wv") * mat(p, "layer0.attn.Wo") * mat(p, "layer1.attn.Wk");  // [V, w]
  const Mat Q2 = T * mat(p, "layer1.attn.Wq");                                                        // [V, w]
  struct Block {
    std::string name, row, col;
    Mat m;
  };
  const std::vector<Block> blocks = {
      {"alpha_positions", "query position", "key position", Q1 * K1.transpose()},
      {"beta_tokens", "key token (copied by layer 1)", "query token", K2 * Q2.transpose()},
      {"gamma_tokens", "attended token", "output logit", T * mat(p, "layer1.attn.Wv") * mat(p, "layer1.attn.Wo") * U}};
  nlohmann::json out = nlohmann::json::object();
  fs::create_directories(out_dir + "/weights");
  for (auto& b : blocks) {
    nlohmann::json values = nlohmann::json::array();
    const std::string path = fmt::format("{}/weights/{}_{}.csv", out_dir, prefix, b.name);
    std::ofstream f(path);
    for (int64_t r = 0; r < b.m.rows(); ++r) {
      std::vector<double> row(b.m.cols());
      for (int64_t c = 0; c < b.m.cols(); ++c) row[c] = b.m(r, c);
      f << fmt::format("{:.6g}", fmt::join(row, ",")) << "\n";
      values.push_back(row);
    }
    f.flush();
    IHLAB_CHECK(f.good(), "musat2025-bridge: could not write '{}'", path);
    out[b.name] = {{"rows", b.m.rows()}, {"cols", b.m.cols()}, {"row", b.row}, {"col", b.col}, {"values", values}};
  }
  return out;
}

}  // namespace ihlab::musat_tokens
