#include "models/disentangled.h"

#include <cmath>

#include "core/ops.h"

namespace ihlab {

DisentangledConfig disentangled_config_from_task(const Task& task, const std::string& model_name) {
  DisentangledConfig c;
  c.rotation = task.label_rotation();
  IHLAB_CHECK(!c.rotation.empty(),
              "config: key 'model.name' = \"{}\" needs a retrieval task with a label rotation (task.name = "
              "\"item-label\"; got \"{}\")",
              model_name, task.name());
  c.dim = task.value_dim();
  c.length = task.length();
  return c;
}

template <typename T>
DisentangledModel<T>::DisentangledModel(DisentangledConfig cfg) : cfg_(std::move(cfg)) {
  const int64_t D = cfg_.dim;
  W1_ = this->params_.add("W1", "W1", Tensor<T>::zeros({2 * D, 2 * D}));
  W2_ = this->params_.add("W2", "W2", Tensor<T>::zeros({4 * D, 4 * D}));
  W3_ = this->params_.add("W3", "W3", Tensor<T>::zeros({D, 8 * D}));
  Tensor<T> mask = Tensor<T>::zeros({D, 8 * D});
  for (int64_t r = 0; r < D; ++r)
    for (int64_t c = 0; c < 8 * D; ++c)
      mask.data()[r * 8 * D + c] = (cfg_.readout_positional || (c / D) % 2 == 0) ? T(1) : T(0);
  readout_mask_ = Var<T>::leaf(std::move(mask));
}

template <typename T>
Var<T> DisentangledModel<T>::forward(const Batch& b, Tensor<T>* A1out, Tensor<T>* A2out) {
  const int64_t B = b.size, L = b.length, D = cfg_.dim;
  IHLAB_CHECK(b.feature_dim == 2 * D && L == cfg_.length,
              "disentangled: batch of length {} with feature_dim {} (expected {} and 2D = {})", L, b.feature_dim,
              cfg_.length, 2 * D);
  std::vector<T> f(b.features.begin(), b.features.end());
  Var<T> h = Var<T>::leaf(Tensor<T>({B, L, 2 * D}, std::move(f)));  // [B, L, 2D]
  // Layer 1: S1[j, k] = h_k^T W1 h_j (key first), keys k < j.
  Var<T> q1 = ops::reshape(ops::matmul(ops::reshape(h, {B * L, 2 * D}), W1_, false, true), {B, L, 2 * D});
  Var<T> s1 = ops::bmm(q1, h, false, true);                                            // [B, L, L]
  Var<T> a1 = ops::masked_softmax(s1, Var<T>(), ops::band_mask(L, 1, L - 1), {L, L});  // [B, L, L]
  Var<T> h1 = ops::concat_last<T>({h, ops::bmm(a1, h)});                               // [B, L, 4D]
  // Layer 2 at the query only: pick row Q with a constant one-hot selector.
  Tensor<T> sel = Tensor<T>::zeros({B, 1, L});
  for (int64_t r = 0; r < B; ++r) sel.data()[r * L + L - 1] = T(1);
  Var<T> hq = ops::reshape(ops::bmm(Var<T>::leaf(std::move(sel)), h1), {B, 4 * D});  // [B, 4D]
  Var<T> q2 = ops::reshape(ops::matmul(hq, W2_, false, true), {B, 1, 4 * D});
  Var<T> s2 = ops::bmm(q2, h1, false, true);  // [B, 1, L]
  std::vector<uint8_t> keys(L, 1);
  keys[L - 1] = 0;                                              // strictly causal: the query does not attend to itself
  Var<T> a2 = ops::masked_softmax(s2, Var<T>(), keys, {1, L});  // [B, 1, L]
  Var<T> o2 = ops::reshape(ops::bmm(a2, h1), {B, 4 * D});       // [B, 4D]
  Var<T> w3 = ops::mul(W3_, readout_mask_);
  if (A1out) *A1out = a1.value();
  if (A2out) *A2out = a2.value();
  return ops::matmul(ops::concat_last<T>({hq, o2}), w3, false, true);  // [B, D]
}

template <typename T>
Var<T> DisentangledModel<T>::loss(const Batch& b) {
  IHLAB_CHECK(b.length == cfg_.length, "disentangled: batch of length {} (expected {})", b.length, cfg_.length);
  return disentangled_loss(W1_, W2_, ops::mul(W3_, readout_mask_), b, cfg_.dim, &workspace_);
}

template <typename T>
Var<T> DisentangledModel<T>::loss_from_ops(const Batch& b) {
  const int64_t D = cfg_.dim;
  IHLAB_CHECK(b.value_dim == D, "disentangled: batch has value_dim {} (expected D = {})", b.value_dim, D);
  Var<T> y = forward(b, nullptr, nullptr);
  std::vector<T> v(b.values.begin(), b.values.end());
  // mse is the mean over B * D elements; 1/2 mean_b ||.||^2 is D/2 times that.
  return ops::scale(ops::mse(y, Tensor<T>({b.size, D}, std::move(v))), 0.5 * double(D));
}

template <typename T>
std::vector<double> DisentangledModel<T>::predict(const Batch& b) {
  NoGradScope<T> no_grad(this->params_);
  Var<T> y = forward(b, nullptr, nullptr);
  return std::vector<double>(y.value().span().begin(), y.value().span().end());
}

template <typename T>
std::vector<AttentionMap> DisentangledModel<T>::attention(const Batch& b, int64_t example) {
  NoGradScope<T> no_grad(this->params_);
  Batch one = b.slice(example, example + 1);
  Tensor<T> A1, A2;
  forward(one, &A1, &A2);
  const int64_t L = b.length;
  AttentionMap m1{0, 0, L, L, std::vector<double>(A1.span().begin(), A1.span().end())};
  AttentionMap m2{1, 0, L, L, std::vector<double>(L * L, 0.0)};
  for (int64_t k = 0; k < L; ++k) m2.weights[(L - 1) * L + k] = double(A2.data()[k]);
  return {m1, m2};
}

template <typename T>
DisentangledWeights DisentangledModel<T>::weights() const {
  DisentangledWeights w;
  w.D = cfg_.dim;
  auto copy = [](const Var<T>& v) { return std::vector<double>(v.value().span().begin(), v.value().span().end()); };
  w.W1 = copy(W1_), w.W2 = copy(W2_), w.W3 = copy(W3_);
  for (size_t i = 0; i < w.W3.size(); ++i) w.W3[i] *= double(readout_mask_.value().data()[i]);  // as used
  return w;
}

template <typename T>
void DisentangledModel<T>::set_weights(const DisentangledWeights& w) {
  IHLAB_CHECK(w.D == cfg_.dim, "disentangled: weights for D = {} (model has {})", w.D, cfg_.dim);
  auto put = [](Var<T>& v, const std::vector<double>& x) {
    for (size_t i = 0; i < x.size(); ++i) v.value().data()[i] = T(x[i]);
  };
  put(W1_, w.W1), put(W2_, w.W2), put(W3_, w.W3);
}

template <typename T>
Scalars DisentangledModel<T>::probes() const {
  PseudoProjection p = project_pseudo(weights(), cfg_.rotation);
  Scalars out;
  const auto& t = pseudo_parameter_table();
  for (size_t k = 0; k < t.size(); ++k) out.push_back({"pp." + t[k].name, p.coef[k]});
  out.push_back({"pp_residual", p.residual});
  out.push_back({"pp_residual_rel", p.norm > 0 ? p.residual / p.norm : 0.0});
  return out;
}

template class DisentangledModel<float>;
template class DisentangledModel<double>;

}  // namespace ihlab
