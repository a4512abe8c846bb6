#pragma once
// How close a model's next-token distributions are to a reference predictor's (Edelman et al.
// 2024 track the distance to the uniform, unigram and bigram strategies to see the stages of
// ICL-MC): KL(reference || model), the quantity torch's kl_div(log m, r) computes, averaged over
// the positions whose target is >= 0 (kl_divergences in induction_metrics.h does the rows).
#include <vector>

#include "tasks/batch.h"
#include "tasks/reference.h"

namespace ihlab {

// model: [size, length, vocab] like ref.probs. NaN when the batch has no target.
double mean_kl_to_reference(const ReferencePrediction& ref, const std::vector<double>& model, const Batch& b);

}  // namespace ihlab
