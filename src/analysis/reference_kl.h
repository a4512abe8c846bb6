#pragma once
// How close a model's next-token distributions are to each reference predictor's (Edelman et al.
// 2024 track KL to the uniform, unigram and bigram strategies to see the stages of ICL-MC).
//
// Convention [choice]: KL(reference || model) = sum_t r(t) (ln r(t) - ln m(t)), the quantity torch's
// kl_div(log m, r) computes, averaged over the positions whose target is >= 0. Model
// probabilities are floored at 1e-300 so a confident model gives a large finite value.
#include <vector>

#include "tasks/batch.h"
#include "tasks/reference.h"

namespace ihlab {

// model: [size, length, vocab] like ref.probs. Returns the mean over target positions.
double mean_kl_to_reference(const ReferencePrediction& ref, const std::vector<double>& model, const Batch& b);
// Per position: [length], NaN where no sequence has a target.
std::vector<double> position_kl_to_reference(const ReferencePrediction& ref, const std::vector<double>& model,
                                             const Batch& b);

}  // namespace ihlab
