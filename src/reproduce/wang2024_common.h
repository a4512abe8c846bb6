#pragma once
// Shared by the wang2024 reproductions: the layer-2 stage's curves from a run's metrics table and
// its phase segmentation.
#include <string>
#include <vector>

#include "analysis/phases.h"
#include "io/run_dir.h"

namespace ihlab {

// Rows of one stage with t > 0 (the flow's own time axis), in order.
struct StageCurve {
  std::vector<double> t;
  std::vector<std::vector<double>> cols;  // parallel to `names`
  std::vector<std::string> names;
  const std::vector<double>& col(const std::string& name) const;
  // The value of `name` at the first row with t >= at (the last row if none).
  double at(const std::string& name, double time) const;
};
StageCurve stage_curve(const MetricsTable& m, int stage, const std::vector<std::string>& names);

// First t at which column `col` reaches `level` (log-linear interpolation between rows); NaN if never.
double crossing_time(const StageCurve& c, const std::string& col, double level);

// Phase segmentation of the stage's training loss against t (defaults of analysis/phases.h).
PhaseSegmentation layer2_phases(const StageCurve& c);

}  // namespace ihlab
