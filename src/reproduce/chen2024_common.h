#pragma once
// Shared pieces of the chen2024 reproductions (chen2024.cpp, chen2024_generalization.cpp).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/chi_square_mi.h"
#include "models/gih_kernel.h"
#include "reproduce/reproduction.h"

namespace ihlab::chen {

// The authors' data setting with the given run name, log interval and [model] table (TOML text).
std::string base_config(const std::string& name, int log_every, const std::string& model_table);
// The simplified model TF(3, 3, 3, 2) of the paper's main figures, paper mode.
extern const char* kGihModel;
extern const std::vector<std::string> kCodeCompat;  // --compat code overrides
// Training with the GIH limiting model's loss at its best a as reference columns (on the
// validation set training uses, sampled once).
RunResult run_with_limit_reference(ReproContext& c, const TrainOptions& o);
RunResult run_spec_with_limit_reference(ReproContext& c, const TrainOptions& o, const RunSpec& spec);  // this spec
// A reproduction with the paper name, --compat code and the limit reference filled in.
Reproduction chen_base(std::string name);

// Subset of parent offsets as a bit string over heads (head h <-> offset -(h+1)), leftmost = head 0.
std::string bits_of_offsets(const std::vector<int>& offsets, int heads);
// The subset labels of the p.<bits> columns.
std::vector<std::string> subset_labels(const MetricsTable& m);

// S* predicted by the modified chi-square MI averaged over the prior; the ranking is also stored
// in summary.json as `chi_square_mi`.
struct SelectorPrediction {
  MiSurvey survey;
  std::string s_star;  // bits over heads
};
SelectorPrediction predict_selector(ReproContext& c);

}  // namespace ihlab::chen
