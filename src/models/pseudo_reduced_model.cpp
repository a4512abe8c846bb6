// The disentangled model restricted to its pseudo-parameters (see models/disentangled.h).
#include <cmath>

#include "models/disentangled.h"

namespace ihlab {

template <typename T>
PseudoReducedModel<T>::PseudoReducedModel(PseudoReducedConfig cfg) : cfg_(std::move(cfg)) {
  const auto& table = pseudo_parameter_table();
  IHLAB_CHECK(!cfg_.train.empty(), "disentangled-reduced: no pseudo-parameters to train");
  for (size_t k = 0; k < table.size(); ++k)
    if (std::find(cfg_.train.begin(), cfg_.train.end(), table[k].name) != cfg_.train.end()) index_.push_back(int(k));
  for (auto& n : cfg_.train) pseudo_parameter_index(n);  // unknown names fail here
  std::vector<BasisBlock> sel;
  for (int k : index_) sel.push_back(table[k]);
  plan_ = make_pseudo_plan(sel);
  // Cholesky of the basis Gram restricted to the trained entries: G = L L^T.
  const int64_t K = int64_t(sel.size());
  std::vector<double> G = pseudo_basis_gram(cfg_.rotation, cfg_.dim, sel);
  chol_.assign(K * K, 0.0);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = G[i * K + j];
      for (int64_t k = 0; k < j; ++k) s -= chol_[i * K + k] * chol_[j * K + k];
      if (i == j) {
        IHLAB_CHECK(s > 0, "disentangled-reduced: the selected basis blocks are linearly dependent");
        chol_[i * K + i] = std::sqrt(s);
      } else {
        chol_[i * K + j] = s / chol_[j * K + j];
      }
    }
  phi_ = this->params_.add("pseudo.phi", "pseudo", Tensor<T>::zeros({K}));
}

template <typename T>
std::vector<double> PseudoReducedModel<T>::selected_theta() const {
  // theta = L^{-T} phi: back substitution with the upper triangle L^T.
  const int64_t K = int64_t(index_.size());
  std::vector<double> th(K);
  for (int64_t i = K - 1; i >= 0; --i) {
    double s = double(phi_.value().data()[i]);
    for (int64_t j = i + 1; j < K; ++j) s -= chol_[j * K + i] * th[j];
    th[i] = s / chol_[i * K + i];
  }
  return th;
}

template <typename T>
std::vector<double> PseudoReducedModel<T>::theta() const {
  std::vector<double> full(pseudo_parameter_table().size(), 0.0), th = selected_theta();
  for (size_t i = 0; i < index_.size(); ++i) full[index_[i]] = th[i];
  return full;
}

template <typename T>
void PseudoReducedModel<T>::set_theta(const std::vector<double>& theta19) {
  const int64_t K = int64_t(index_.size());
  for (int64_t i = 0; i < K; ++i) {  // phi = L^T theta
    double s = 0;
    for (int64_t j = i; j < K; ++j) s += chol_[j * K + i] * theta19[index_[j]];
    phi_.value().data()[i] = T(s);
  }
}

template <typename T>
const PseudoGrams& PseudoReducedModel<T>::grams(const Batch& b) {
  const uint64_t h = batch_content_hash(b);
  for (auto& g : cache_)
    if (g->hash == h && g->size == b.size && g->length == b.length) return *g;
  auto g = std::make_shared<PseudoGrams>(pseudo_grams(b, cfg_.rotation, cfg_.dim, plan_));
  if (cache_.size() >= 2) cache_.erase(cache_.begin());
  cache_.push_back(g);
  return *cache_.back();
}

template <typename T>
Var<T> PseudoReducedModel<T>::loss(const Batch& b) {
  const PseudoGrams& g = grams(b);
  const bool need_grad = phi_.requires_grad();
  std::vector<double> grad_theta;
  double loss = pseudo_loss(g, plan_, selected_theta(), need_grad ? &grad_theta : nullptr);
  std::vector<double> grad_phi;
  if (need_grad) {  // d loss / d phi = L^{-1} d loss / d theta: forward substitution
    const int64_t K = int64_t(index_.size());
    grad_phi.resize(K);
    for (int64_t i = 0; i < K; ++i) {
      double s = grad_theta[i];
      for (int64_t j = 0; j < i; ++j) s -= chol_[i * K + j] * grad_phi[j];
      grad_phi[i] = s / chol_[i * K + i];
    }
  }
  return make_result<T>("pseudo_reduced_loss", Tensor<T>::scalar(T(loss)), {phi_}, [grad_phi](Node<T>& n) {
    const double up = double(n.grad.item());
    Tensor<T>& gp = n.parents[0]->grad_buffer();
    for (size_t k = 0; k < grad_phi.size(); ++k) gp.data()[k] += T(up * grad_phi[k]);
  });
}

template <typename T>
Scalars PseudoReducedModel<T>::probes() const {
  Scalars out;
  const auto& t = pseudo_parameter_table();
  std::vector<double> th = theta();
  for (size_t k = 0; k < t.size(); ++k) out.push_back({"pp." + t[k].name, th[k]});
  return out;
}

template <typename T>
std::vector<AttentionMap> PseudoReducedModel<T>::attention(const Batch& b, int64_t example) {
  Batch one = b.slice(example, example + 1);
  PseudoGrams g = pseudo_grams(one, cfg_.rotation, cfg_.dim, plan_);
  std::vector<double> A1, A2;
  pseudo_attention(g, plan_, selected_theta(), 0, A1, A2);
  const int64_t L = b.length;
  AttentionMap m1{0, 0, L, L, A1};
  AttentionMap m2{1, 0, L, L, std::vector<double>(L * L, 0.0)};
  for (int64_t k = 0; k < L; ++k) m2.weights[(L - 1) * L + k] = A2[k];
  return {m1, m2};
}

template class PseudoReducedModel<float>;
template class PseudoReducedModel<double>;

}  // namespace ihlab
