#pragma once
// Shared by the wang2024 reproductions: the layer-2 stage's curves from a run's metrics table and
// its phase segmentation.
#include <string>
#include <vector>

#include "analysis/phases.h"
#include "io/run_dir.h"
#include "reproduce/reproduction.h"
#include "reproduce/variants.h"

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

// Reproductions made of many six-parameter runs (wang2024_points.cpp): the mixed-target
// configuration with 5000 training sequences (instead of 20000, to keep many runs affordable; the
// plateau is a population effect) under the reproduction's own name, and its --quick overrides.
std::string wang_points_config(const std::string& name);
extern const std::vector<std::string> kWangPointsQuick;
// Trains every point as a variant run (DIR/runs/<point>/). The main directory holds nothing but the
// claims: its metrics.csv and summary are the reference point's, and summary.json says so (`note`).
RunResult run_wang_points(ReproContext& c, const TrainOptions& o, const std::vector<Variant>& points,
                          const std::string& ref, const std::string& note);

}  // namespace ihlab
