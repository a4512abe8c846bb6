#pragma once
// The two-layer attention-only transformer with a disentangled (concatenated) residual stream of
// Musat et al. 2025, for the "item-label" task (tasks/item_label.h): "disentangled", and the same
// model restricted to its pseudo-parameters: "disentangled-reduced".
//
// Full model, per sequence (h_i = [x_i ; q_i] in R^{2D}, the task's features; Q = L - 1 the query):
//   layer 1: A1[j, k] = softmax_{k < j}(h_k^T W1 h_j)       strictly causal, key-first scores
//            o1_j = sum_k A1[j, k] h_k;  h'_j = [h_j ; o1_j]              [L, 4D]
//   layer 2 (only the query's output is read, so only its row is computed):
//            A2[k] = softmax_{k < Q}(h'_k^T W2 h'_Q);  o2 = sum_k A2[k] h'_k    [4D]
//   readout: yhat = W3 [h'_Q ; o2]                                         [D]
//   loss = 1/2 mean_b ||yhat_b - y_b||^2
// Parameters (zero init; the flow starts at the saddle W = 0 and W3 moves first):
//   "W1" W1 [2D, 2D], "W2" W2 [4D, 4D], "W3" W3 [D, 8D], row-major as in the formulas (a
//   bilinear form and a matrix acting on column vectors, not ihlab's [in, out] linear layers).
// W3's positional column blocks (pos, o1.pos, o2.pos, o2.o1.pos) have zero population gradient
// (E[label] = 0) and only collect sampling noise, so by default they are masked to zero
// (readout_positional = false); docs/models/disentangled.md#the-model.
// probes(): the 19 pseudo-parameters "pp.<name>" (exact least-squares projection, see
// models/pseudo_params.h), "pp_residual" = ||W - sum theta_k B_k||_F and "pp_residual_rel" =
// that over ||W||_F (0 when W = 0).
//
// Reduced model: W = sum_k theta_k B_k over the selected entries (all 19, or the three that grow:
// alpha_3, beta_2, gamma_3), computed through per-sequence Gram matrices (models/pseudo_kernel.h,
// cost independent of D). Its trained parameter is phi = L^T theta, with G = L L^T the Gram
// matrix of the selected basis blocks: gradient flow on phi with unit rate is then exactly
// d theta / dt = -G^{-1} grad_theta, the full model's flow projected onto the subspace, so both
// run on one time axis. probes(): the 19 "pp.<name>" (unselected ones are 0).
#include <memory>

#include "models/disentangled_kernel.h"
#include "models/model.h"
#include "models/pseudo_kernel.h"
#include "models/pseudo_params.h"

namespace ihlab {

struct DisentangledConfig {
  int64_t dim = 32;  // D
  int64_t length = 17;
  bool readout_positional = false;
  std::vector<double> rotation;  // M [D, D], from the task (for the probes)

  template <class V>
  void fields(V& v) {  // dim, length and rotation come from the task
    v("readout_positional", readout_positional, "train W3's positional column blocks too (default: kept at zero)");
  }
};

// Reads D, L and M from a retrieval task (Task::label_rotation); fails with a clear message for any
// other task.
DisentangledConfig disentangled_config_from_task(const Task& task, const std::string& model_name);

template <typename T>
class DisentangledModel : public Model<T> {
 public:
  explicit DisentangledModel(DisentangledConfig cfg);
  std::string name() const override { return "disentangled"; }
  Var<T> loss(const Batch& b) override;  // the fused kernel (models/disentangled_kernel.h)
  // The same loss built from generic autograd ops (each checked by finite differences): the
  // reference the fused kernel is tested against.
  Var<T> loss_from_ops(const Batch& b);
  Scalars probes() const override;
  // Layer 1 [L, L] and layer 2 (the query row only; other rows 0) of sequence `example`.
  std::vector<AttentionMap> attention(const Batch& b, int64_t example) override;
  // Predictions [B, D] (no gradients).
  std::vector<double> predict(const Batch& b);
  DisentangledWeights weights() const;
  void set_weights(const DisentangledWeights& w);
  const DisentangledConfig& config() const { return cfg_; }

 private:
  Var<T> forward(const Batch& b, Tensor<T>* A1, Tensor<T>* A2);  // yhat [B, D]
  DisentangledConfig cfg_;
  Var<T> W1_, W2_, W3_;
  Var<T> readout_mask_;                                  // [D, 8D] constant: 1 on token-type column blocks
  std::shared_ptr<DisentangledWorkspace<T>> workspace_;  // the fused loss's buffers, reused across steps
};

// NoBeta2: alpha_3 and gamma_3 only, beta_2 clamped at 0 (a negative control: without beta_2 the
// label cannot be matched to its item, so the loss must not drop).
enum class PseudoSet { All, Three, NoBeta2 };
constexpr auto enum_choices(PseudoSet) {
  return std::array<EnumChoice<PseudoSet>, 3>{
      {{PseudoSet::All, "all"}, {PseudoSet::Three, "three"}, {PseudoSet::NoBeta2, "no-beta2"}}};
}

struct PseudoReducedConfig {
  int64_t dim = 32;
  std::vector<double> rotation;       // M [D, D]
  std::vector<std::string> train;     // names of the trained entries (table order is kept)
  PseudoSet pseudo = PseudoSet::All;  // the key; the registry turns it into `train`

  template <class V>
  void fields(V& v) {
    v("pseudo", pseudo,
      "trained pseudo-parameters: all (19), three (alpha_3, beta_2, gamma_3) or no-beta2 (alpha_3, gamma_3)");
  }
};

template <typename T>
class PseudoReducedModel : public Model<T> {
 public:
  explicit PseudoReducedModel(PseudoReducedConfig cfg);
  std::string name() const override { return "disentangled-reduced"; }
  Var<T> loss(const Batch& b) override;
  Scalars probes() const override;
  std::vector<AttentionMap> attention(const Batch& b, int64_t example) override;
  // theta over the full 19-entry table (zeros where not trained).
  std::vector<double> theta() const;
  void set_theta(const std::vector<double>& theta19);  // only the trained entries are read

 private:
  const PseudoGrams& grams(const Batch& b);
  std::vector<double> selected_theta() const;  // theta of the trained entries
  PseudoReducedConfig cfg_;
  std::vector<int> index_;    // table index of each trained entry
  PseudoKernelPlan plan_;     // over the trained entries
  std::vector<double> chol_;  // L of G = L L^T, [K, K] row-major (lower)
  Var<T> phi_;                // [K]
  // Gram matrices of the last two batches seen (the training set and the validation set).
  std::vector<std::shared_ptr<PseudoGrams>> cache_;
};

}  // namespace ihlab
