#pragma once
// "attention-circuit": a model assembled from a list of single-parameter attention heads given in
// the configuration, so that small theoretical constructions (e.g. the six-parameter two-layer
// model of Wang et al. 2024) are TOML files rather than hard-wired code.
//
// Residual stream. Position t of a sequence holds S slots of d numbers (d = task.value_dim(),
// S = task.feature_dim() / d), initialised from Batch::features (slot 0 = the token for
// "mixed-target"). Layers run in increasing order; every head of layer l reads the stream as it was
// before layer l and adds its output into its write slot (heads of one layer act in parallel).
// A head with write = -1 writes the prediction instead: it is evaluated only at the last position,
// and the prediction yhat [d] is the sum of those heads.
//
// One head, query position t, keys s with first_key <= s <= t - min_back (no keys: output 0):
//   score  "alibi":    z_s = -p * max(0, t - offset - s)
//          "distance": z_s = -p * |t - offset - s|
//          "dot":      z_s = c * <R_query(t), R_key(s)>, c = w_K * w_Q (kq = "product", both
//                      trained, both initialised at sigma_init: the product is what makes the
//                      induction output cubic in small weights and creates the plateau) or one
//                      trained w_KQ (kq = "single")
//   output o_t = w_V * sum_s softmax_s(z)_s R_value(s)
// Parameters (shape {1} each, named "<head name>.<slope|value|wk|wq|wkq>") are grouped per layer:
// group "layer<l>", so stages can train layer 1, then freeze it and train layer 2.
//
// Objectives (the stage key `objective`, see Model::set_objective):
//   "loss"           the task's regression loss 1/2 mean_b ||yhat_b - y_b||^2;
//   "copy-previous"  layer 1's own objective: 1/2 mean over sequences and positions t >= 1 of
//                    ||W(t) - x(t-1)||^2, W = what the layer-1 heads wrote into their write slot
//                    (all layer-1 heads must write one slot), x = slot 0. The paper trains the
//                    previous-token layer this way before the output layer exists.
// Error split (logged as val_err_<part>): a head may name a component of the task's target
// (Batch::part_names, e.g. "4gram", "induction"); err_<part> = 1/2 mean_b ||sum of the heads naming
// <part> - part_b||^2. With the positional head on "4gram" and the dot-product head on "induction",
// the loss is err_4gram + err_induction + the cross term mean_b <e4_b, eind_b> (logged as err_cross).
//
// Forward and backward are fused and hand-written (double internally, parallel over sequences in
// fixed chunks, so results do not depend on the thread count, and several sequences in lock-step
// as the lanes of a vector: attention_circuit_kernel.h); the loss is one autograd node whose
// backward adds the precomputed gradient times the incoming one into the trained parameters.
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"

namespace ihlab {

namespace circuit_kernel {
struct PackedStream;  // attention_circuit_kernel.h
}

enum class CircuitScore { Alibi, Distance, Dot };
constexpr auto enum_choices(CircuitScore) {
  using S = CircuitScore;
  return std::array<EnumChoice<S>, 3>{{{S::Alibi, "alibi"}, {S::Distance, "distance"}, {S::Dot, "dot"}}};
}
enum class CircuitKq { Product, Single };
constexpr auto enum_choices(CircuitKq) {
  return std::array<EnumChoice<CircuitKq>, 2>{{{CircuitKq::Product, "product"}, {CircuitKq::Single, "single"}}};
}

// One [[model.heads]] table.
struct CircuitHead {
  using Score = CircuitScore;
  std::string name;  // probe and parameter prefix
  int layer = 1;     // >= 1
  Score score = Score::Alibi;
  int64_t offset = 0;                 // positional scores: preferred distance back
  int64_t min_back = 0;               // keys s <= t - min_back (1 masks the query's own position)
  int64_t first_key = 0;              // keys s >= first_key (0-based)
  int query = 0, key = 0, value = 0;  // slots read (query/key: dot only)
  int write = -1;                     // slot written; -1 = the prediction
  CircuitKq kq = CircuitKq::Product;  // dot: w_K * w_Q, or one w_KQ
  double slope_init = 0.0;            // positional: initial p
  std::string component;              // target component this head is scored against ("" = none)

  bool kq_product() const { return kq == CircuitKq::Product; }
  template <class V>
  void fields(V& v) {
    v("name", name, "parameter and probe prefix (default h<index>)");
    v("layer", layer, "layer, 1-based; heads of a layer read the stream before it", in(1, 64));
    v("score", score,
      "alibi: -p max(0, t - offset - s); distance: -p |t - offset - s|; dot: w_K w_Q <query(t), key(s)>");
    v("offset", offset, "positional scores: the distance back they prefer", in(-65536, 65536));
    v("min_back", min_back, "keys s <= t - min_back (1 masks the query's own position)", in(0, 65536));
    v("first_key", first_key, "keys s >= first_key (0-based)", in(0, 65536));
    v("query", query, "dot: slot the query reads", in(0, 64));
    v("key", key, "dot: slot the key reads", in(0, 64));
    v("value", value, "slot the value reads", in(0, 64));
    v("write", write, "slot the output is added into; -1 = the prediction (last layer, last position)", in(-1, 64));
    v("kq", kq, "dot: w_K * w_Q (two trained scalars) or one trained w_KQ");
    v("slope_init", slope_init, "positional: initial slope p", in(-1e6, 1e6));
    v("component", component,
      "target component (task part, e.g. 4gram, induction) this head's output is scored against in "
      "val_err_<component>; empty = none");
  }
};

struct AttentionCircuitConfig {
  int64_t length = 0, dim = 1, slots = 1;  // from the task
  double sigma_init = 0.01;                // initial value weights and key/query weights
  std::vector<CircuitHead> heads;

  template <class V>
  void fields(V& v) {  // length, dim and slots come from the task
    v("sigma_init", sigma_init, "initial value weights and key/query weights", in(-1e6, 1e6));
    v.table_array("heads", heads, 1, "the heads, in order");
  }
};

template <typename T>
class AttentionCircuit : public Model<T> {
 public:
  explicit AttentionCircuit(AttentionCircuitConfig cfg);  // validates
  std::string name() const override { return "attention-circuit"; }
  void set_objective(const std::string& objective) override;
  Var<T> loss(const Batch& b) override;
  Scalars evaluate(const Batch& b) override;  // task_loss, copy_loss, err_<part>, err_cross
  Scalars probes() const override;            // every parameter, and <head>.wkq for products

  // Predictions [n, d] and the per-head outputs at the last position [n, heads, d] (zeros for
  // heads that write a slot), without gradients.
  void predict(const Batch& b, std::vector<double>& yhat, std::vector<double>& head_out) const;
  const AttentionCircuitConfig& config() const { return cfg_; }
  // Runs one sequence at a time instead of circuit_kernel::kLanes in lock-step. Results are bit-identical either way;
  // the tests check that and bench_circuit times both.
  void set_one_sequence_at_a_time(bool on) { one_at_a_time_ = on; }

 private:
  // Objective value and, when grads != nullptr, its gradient per parameter (in parameter order).
  double objective_and_grad(const Batch& b, const std::string& objective, std::vector<double>* grads) const;
  std::vector<double> param_values() const;
  // Values of the parameters of layers 1..layers (the cache key besides the data).
  std::vector<double> layer_params(int layers, const std::vector<double>& theta) const;
  // The residual stream after `layers` layers for every sequence of b, lane-packed (see
  // circuit_kernel::PackedStream), from a two-entry cache keyed by the features (compared bit for
  // bit) and the values of those layers' parameters.
  const circuit_kernel::PackedStream& prefix_stream(const Batch& b, int layers, const std::vector<double>& theta) const;
  struct StreamCache {
    std::vector<float> features;
    int64_t n = 0;
    int layers = 0;
    bool one_at_a_time = false;
    std::vector<double> theta;
    std::shared_ptr<const circuit_kernel::PackedStream> stream;
  };
  mutable std::vector<StreamCache> cache_;

  AttentionCircuitConfig cfg_;
  std::string objective_ = "loss";
  bool one_at_a_time_ = false;
  std::vector<std::vector<int>> head_params_;  // per head: indices into params().all()
};

}  // namespace ihlab
