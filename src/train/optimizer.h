#pragma once
// First-order optimizers with the update rules of torch.optim (SGD, Adam, AdamW), plus global
// gradient-norm clipping.
//
// State (momentum buffers, Adam moments) is keyed by parameter NAME, not by position, so the list
// passed to step() may change between calls: a group frozen in one stage and trained in the next
// starts (or resumes) its own state, exactly as a torch param whose .grad was None is skipped.
// Updates are element-wise in T (float stays float, as in PyTorch's CPU kernels) and run in one
// fixed order, so the same inputs give bit-identical parameters.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/params.h"
#include "io/fields.h"

namespace ihlab {

enum class OptimizerKind { Sgd, Adam, AdamW };
constexpr auto enum_choices(OptimizerKind) {
  using K = OptimizerKind;
  return std::array<EnumChoice<K>, 3>{{{K::Sgd, "sgd"}, {K::Adam, "adam"}, {K::AdamW, "adamw"}}};
}

// The optimizer keys of a [[stages]] table (they sit flat in the stage, beside lr and steps).
struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::Adam;
  double momentum = 0;                            // sgd only
  bool nesterov = false;                          // sgd only; needs momentum > 0
  double weight_decay = 0;                        // sgd/adam: L2 added to the gradient; adamw: decoupled
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam/adamw only

  template <class V>
  void fields(V& v) {
    v("optimizer", kind, "update rule (optimizer stages)");
    v("momentum", momentum, "SGD momentum", in(0, 1));
    v("nesterov", nesterov, "Nesterov momentum (SGD)");
    v("weight_decay", weight_decay, "weight decay (L2 for sgd/adam, decoupled for adamw)", in(0, 1e3));
    v("beta1", beta1, "Adam beta1", in(0, 1));
    v("beta2", beta2, "Adam beta2", in(0, 1));
    v("eps", eps, "Adam epsilon", in(0, 1));
  }
};

template <typename T>
class Optimizer {
 public:
  // Validates `cfg`; throws ihlab::Error naming a bad kind (and the allowed ones) or a bad value.
  static std::unique_ptr<Optimizer> make(const OptimizerConfig& cfg);
  virtual ~Optimizer() = default;

  // One update of each param from p->var.grad() at learning rate lr. Grads are read, not zeroed.
  // A param whose gradient was never allocated (not reached by backward) is skipped, like a torch
  // param with .grad None: no decay, no state change.
  virtual void step(const std::vector<Param<T>*>& params, double lr) = 0;
  int64_t steps_taken() const { return steps_; }

  // Checkpoint state as (key, tensor) with key "<slot>.<param name>", sorted by key. Slots:
  //   sgd with momentum: "buf" (momentum buffer, param shape)
  //   adam/adamw:        "m", "v" (moments, param shape) and "step" (shape [], that param's update
  //                      count, which drives its bias correction; exact in float up to 2^24)
  // Tensors are deep copies.
  virtual std::vector<std::pair<std::string, Tensor<T>>> state_tensors() const;
  // Replaces all state (deep copies). Throws ihlab::Error on a malformed key, an unknown slot, a
  // param with only some of its slots, or a bad "step" value. A state shape that disagrees with
  // the param itself can only be seen once the param is known: the next step() reports it.
  virtual void load_state(int64_t steps_taken, const std::vector<std::pair<std::string, Tensor<T>>>& tensors);

 protected:
  explicit Optimizer(std::vector<std::string> slots) : slots_(std::move(slots)) {}
  // The state tensor of `slot` for param `name`, or nullptr if it has none yet. Throws if the
  // stored shape is not `want` (a checkpoint from a different model).
  Tensor<T>* find_state(const std::string& slot, const std::string& name, const Shape& want);
  // Stores `t` as the state of param `name` in `slot` and returns it.
  Tensor<T>& put_state(const std::string& slot, const std::string& name, Tensor<T> t);

  int64_t steps_ = 0;

 private:
  std::vector<std::string> slots_;                                 // the slots this kind uses
  std::map<std::string, std::map<std::string, Tensor<T>>> state_;  // slot -> param name -> tensor
};

// L2 norm of all gradients together: sqrt of the sum of squares, accumulated in double over
// params in order and elements in order. Params without an allocated gradient contribute nothing.
template <typename T>
double grad_norm(const std::vector<Param<T>*>& params);

// torch.nn.utils.clip_grad_norm_: with n = grad_norm(params), if c = max_norm / (n + 1e-6) < 1
// every gradient is multiplied by c (so the norm ends up just under max_norm). Returns the
// pre-clip norm n. A non-finite n leaves the gradients untouched (the caller sees it and decides).
template <typename T>
double clip_grad_norm(const std::vector<Param<T>*>& params, double max_norm);

}  // namespace ihlab
