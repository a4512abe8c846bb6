#pragma once
// What the musat2025 reproductions read off a run's metrics table: the time axis, the emergence
// time of each growing pseudo-parameter at the thresholds, and t_ICL.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/bridge_measures.h"
#include "analysis/emergence.h"
#include "io/checkpoint.h"
#include "io/run_dir.h"
#include "reproduce/reproduction.h"
#include "reproduce/variants.h"

namespace ihlab::musat {

inline const std::vector<std::string>& growing() {
  static const std::vector<std::string> g = {"gamma_3", "beta_2", "alpha_3"};  // the expected order
  return g;
}
inline const std::vector<double>& thresholds() {
  static const std::vector<double> t = {0.1, 0.5};  // 0.1 separates the three; 0.5 = the paper's main text
                                                    // (docs/metrics.md#emergence-times)
  return t;
}

// Gradient-flow time of every row: the `t` column in flow stages (row 0, logged before the
// integrator starts, is t = 0); lr * step in optimizer stages (gradient descent with step lr
// approximates the flow on the time axis lr * steps).
std::vector<double> time_axis(const MetricsTable& m, double lr);

struct RunEmergence {
  std::vector<double> t;                   // the time axis
  std::vector<std::vector<double>> times;  // [growing()][thresholds()] first reach
  IclTime icl;
  double time(const std::string& name, double threshold) const;
  // Names of growing() in emergence order at a threshold, and whether it is gamma_3, beta_2, alpha_3.
  std::vector<std::string> order(double threshold) const;
  bool expected_order(double threshold) const;
  nlohmann::json to_json() const;
};
RunEmergence read_emergence(const MetricsTable& m, double lr);

// A transformer checkpoint's parameters by name ("param." stripped), as bridge_measures reads them.
ParamMap checkpoint_param_map(const Checkpoint<float>& ck);

// The standard-transformer bridge (musat2025_bridge.cpp): its run names under DIR/runs/, the
// configuration of each (the main run's resolved configuration with its [model], [data], [log]
// and stages replaced), and its claims (declared by bridge_claim_defs, measured by bridge_claims
// from DIR/bridge_<run>.csv).
std::vector<Variant> bridge_variants();
nlohmann::json bridge_config(const nlohmann::json& main, const std::string& variant, bool quick);
std::vector<ClaimDef> bridge_claim_defs();
void bridge_claims(ReproContext& c);
// After a bridge run: its measures from every checkpoint into DIR/bridge_<variant>.csv, then the
// periodic checkpoints are deleted (the stage-end one stays).
void bridge_finish(const std::string& out_dir, const std::string& variant, int64_t D);

}  // namespace ihlab::musat
