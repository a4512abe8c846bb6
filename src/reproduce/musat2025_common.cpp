#include "reproduce/musat2025_common.h"

#include <cmath>

#include <fmt/format.h>

namespace ihlab::musat {

ParamMap checkpoint_param_map(const Checkpoint<float>& ck) {
  ParamMap p;
  for (auto& [name, t] : ck.params) {
    const std::string n = name.rfind("param.", 0) == 0 ? name.substr(6) : name;
    NamedMatrix m;
    m.rows = t.shape().size() >= 1 ? t.shape()[0] : 1;
    m.cols = t.shape().size() >= 2 ? t.shape()[1] : 1;
    m.v.assign(t.span().begin(), t.span().end());
    p[n] = std::move(m);
  }
  return p;
}

std::vector<double> time_axis(const MetricsTable& m, double lr) {
  std::vector<double> t = m.column("t"), step = m.column("step");
  bool flow = false;
  for (double v : t) flow |= std::isfinite(v);
  for (size_t i = 0; i < t.size(); ++i) {
    if (!flow)
      t[i] = lr * step[i];
    else if (!std::isfinite(t[i]))
      t[i] = 0;  // row 0 of a flow stage
  }
  return t;
}

RunEmergence read_emergence(const MetricsTable& m, double lr) {
  RunEmergence e;
  e.t = time_axis(m, lr);
  for (auto& name : growing()) {
    std::vector<double> y = m.column("pp." + name), row;
    for (double th : thresholds()) row.push_back(first_reach(e.t, y, th));
    e.times.push_back(row);
  }
  e.icl = icl_time(e.t, m.column("loss"));
  return e;
}

double RunEmergence::time(const std::string& name, double threshold) const {
  for (size_t i = 0; i < growing().size(); ++i)
    for (size_t j = 0; j < thresholds().size(); ++j)
      if (growing()[i] == name && thresholds()[j] == threshold) return times[i][j];
  return NAN;
}

std::vector<std::string> RunEmergence::order(double threshold) const {
  std::vector<double> t;
  for (auto& n : growing()) t.push_back(time(n, threshold));
  return emergence_order(growing(), t);
}

bool RunEmergence::expected_order(double threshold) const {
  for (auto& n : growing())
    if (!std::isfinite(time(n, threshold))) return false;
  return order(threshold) == growing();
}

nlohmann::json RunEmergence::to_json() const {
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json j = {{"t_icl", num(icl.t_icl)},
                      {"plateau", num(icl.plateau)},
                      {"plateau_t", num(icl.plateau_t)},
                      {"final_loss", num(icl.final_loss)}};
  for (double th : thresholds()) {
    nlohmann::json at = nlohmann::json::object();
    for (auto& n : growing()) at[n] = num(time(n, th));
    at["order"] = order(th);
    j[fmt::format("emergence_{}", th)] = at;
  }
  return j;
}

}  // namespace ihlab::musat
