#pragma once
// A model owns named parameter groups and builds its loss graph for a batch.
#include <string>
#include <vector>

#include "core/attention_map.h"
#include "core/params.h"
#include "io/fields.h"
#include "tasks/task.h"

namespace ihlab {

template <typename T>
class Model {
 public:
  virtual ~Model() = default;
  virtual std::string name() const = 0;
  ParamStore<T>& params() { return params_; }
  const ParamStore<T>& params() const { return params_; }

  // Selects what loss() minimizes (the stage key `objective`). "loss" is the task's own loss and
  // the only objective most models have; models with auxiliary objectives (e.g. a layer trained on
  // its own target before the next one exists) override this. Throws ihlab::Error naming the value.
  virtual void set_objective(const std::string& objective) {
    IHLAB_CHECK(objective == "loss",
                "config: stage key 'objective' = \"{}\" is not supported by model '{}' "
                "(allowed: loss)",
                objective, name());
  }
  // Mean loss over the batch's targets, as a graph ready for backward().
  virtual Var<T> loss(const Batch& b) = 0;
  // Scalars measured on a batch without gradients (accuracy, ...), logged with a "val_" prefix.
  virtual Scalars evaluate(const Batch& b) { return {}; }
  // Scalars read off the parameters (e.g. the RPE weight per offset), logged every log step.
  virtual Scalars probes() const { return {}; }
  // Attention patterns of sequence `example` of the batch, per layer and head; empty for models
  // without attention. Computed without gradients.
  virtual std::vector<AttentionMap> attention(const Batch& b, int64_t example) { return {}; }
  // Next-token distributions at every position, [size, length, vocab] (softmax of the logits),
  // without gradients; empty for models that predict only one position.
  virtual std::vector<double> next_token_probs(const Batch& b) { return {}; }

  // What a log row measures on a validation batch, without gradients: loss(b), evaluate(b) and,
  // with `with_probs`, next_token_probs(b). A model whose three share one forward pass (the
  // transformer: all three read the logits) overrides this to run it once; the values are the
  // same bits as the three calls'.
  struct Validation {
    double loss = 0;
    Scalars scalars;
    std::vector<double> probs;
  };
  virtual Validation validate(const Batch& b, bool with_probs) {
    Validation v{double(loss(b).item()), evaluate(b), {}};
    if (with_probs) v.probs = next_token_probs(b);
    return v;
  }

 protected:
  ParamStore<T> params_;
};

}  // namespace ihlab
