#include <algorithm>
#include <limits>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "analysis/bridge_measures.h"
#include "analysis/emergence.h"
#include "core/eigen.h"
#include "io/checkpoint.h"
#include "io/config.h"
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

BandShare band_share(const nlohmann::json& values, int64_t band, int64_t max_band) {
  double on = 0, all = 0;
  int64_t n_on = 0, n_all = 0;
  for (size_t r = 0; r < values.size(); ++r)
    for (size_t c = 0; c < values[r].size(); ++c) {
      const int64_t d = int64_t(c) - int64_t(r);
      if (d > max_band) continue;
      const double v = values[r][c].get<double>();
      all += v * v, ++n_all;
      if (d == band) on += v * v, ++n_on;
    }
  return {all > 0 ? on / all : NAN, n_all > 0 ? double(n_on) / double(n_all) : NAN, std::sqrt(all)};
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
  // Strictly causal (the default here) or with the diagonal: the query-key cells layer 1 can use.
  const nlohmann::json cfg = parse_toml_file(run_dir + "/config.toml");
  const bool self = cfg.contains("model") && cfg["model"].value("self_attention", true);
  struct Block {
    std::string name, row, col;
    Mat m;
    int64_t band;  // the expected structure: the cells with col - row == band
    std::string expected;
    bool causal;  // only the cells a causal query can reach (col < row, or <= with self_attention)
  };
  const std::vector<Block> blocks = {
      {"alpha_positions", "query position", "key position", Q1 * K1.transpose(), -1,
       "shift: a label's position attends to the one before it, its item", true},
      {"beta_tokens", "key token (copied by layer 1)", "query token", K2 * Q2.transpose(), 0,
       "diagonal: the query matches the same token copied by layer 1", false},
      {"gamma_tokens", "attended token", "output logit", T * mat(p, "layer1.attn.Wv") * mat(p, "layer1.attn.Wo") * U, 0,
       "diagonal: the attended token's own logit goes up", false}};
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
    const BandShare s = band_share(values, b.band, b.causal ? (self ? 0 : -1) : std::numeric_limits<int64_t>::max());
    out[b.name] = {{"rows", b.m.rows()}, {"cols", b.m.cols()}, {"row", b.row},           {"col", b.col},
                   {"values", values},   {"band", b.band},     {"expected", b.expected}, {"share", s.share},
                   {"chance", s.chance}, {"norm", s.norm}};
    if (b.causal) out[b.name]["max_band"] = self ? 0 : -1;
  }
  return out;
}

}  // namespace ihlab::musat_tokens
