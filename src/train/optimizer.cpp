// SGD / Adam / AdamW with torch.optim's arithmetic, step by step and in the same operand order as
// its single-tensor CPU path, so float results agree with PyTorch to the last bit or two (PyTorch
// may fuse a multiply-add where we do not).
#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace ihlab {

// ---- state bookkeeping shared by every kind ----

template <typename T>
Tensor<T>* Optimizer<T>::find_state(const std::string& slot, const std::string& name, const Shape& want) {
  auto s = state_.find(slot);
  if (s == state_.end()) return nullptr;
  auto it = s->second.find(name);
  if (it == s->second.end()) return nullptr;
  IHLAB_CHECK(it->second.shape() == want, "optimizer: state '{}.{}' has shape {} but the parameter needs {}", slot,
              name, shape_str(it->second.shape()), shape_str(want));
  return &it->second;
}

template <typename T>
Tensor<T>& Optimizer<T>::put_state(const std::string& slot, const std::string& name, Tensor<T> t) {
  return state_[slot][name] = std::move(t);
}

template <typename T>
std::vector<std::pair<std::string, Tensor<T>>> Optimizer<T>::state_tensors() const {
  // Keys go through a std::map so the order is by key, independent of slot declaration order.
  std::map<std::string, Tensor<T>> sorted;
  for (auto& [slot, per_param] : state_)
    for (auto& [name, t] : per_param) sorted.emplace(slot + "." + name, t.clone());
  return {sorted.begin(), sorted.end()};
}

template <typename T>
void Optimizer<T>::load_state(int64_t steps_taken, const std::vector<std::pair<std::string, Tensor<T>>>& tensors) {
  IHLAB_CHECK(steps_taken >= 0, "optimizer: negative steps_taken {} in checkpoint", steps_taken);
  std::string allowed = ParamStore<T>::join(slots_);
  if (allowed.empty()) allowed = "none: this optimizer keeps no state";
  // Build the new state aside so a bad checkpoint leaves the optimizer untouched.
  std::map<std::string, std::map<std::string, Tensor<T>>> next;
  std::set<std::string> names;
  for (auto& [key, t] : tensors) {
    // Slot names have no '.', param names may ("attn.w"): split at the first dot.
    auto dot = key.find('.');
    IHLAB_CHECK(dot != std::string::npos && dot > 0 && dot + 1 < key.size(),
                "optimizer: state key '{}' is not '<slot>.<param name>'", key);
    std::string slot = key.substr(0, dot), name = key.substr(dot + 1);
    IHLAB_CHECK(std::find(slots_.begin(), slots_.end(), slot) != slots_.end(),
                "optimizer: unknown state slot '{}' in key '{}' (allowed slots: {})", slot, key, allowed);
    IHLAB_CHECK(t.defined(), "optimizer: state '{}' has no data", key);
    IHLAB_CHECK(next[slot].emplace(name, t.clone()).second, "optimizer: duplicate state key '{}'", key);
    names.insert(name);
  }
  // Every slot is created together for a param, so a checkpoint holding only some is damaged.
  for (auto& name : names)
    for (auto& slot : slots_)
      IHLAB_CHECK(next[slot].count(name), "optimizer: state for '{}' lacks slot '{}' (needs: {})", name, slot, allowed);
  state_ = std::move(next);
  steps_ = steps_taken;
}

namespace {

void check_lr(double lr) {
  IHLAB_CHECK(std::isfinite(lr) && lr >= 0, "optimizer: learning rate must be finite and >= 0, got {}", lr);
}

// ---- torch.optim.SGD (dampening 0) ----
//   d = g + wd * p
//   momentum: b = d on a param's first step, else b = mu * b + d;  d = nesterov ? d + mu * b : b
//   p = p - lr * d
template <typename T>
class Sgd final : public Optimizer<T> {
 public:
  explicit Sgd(const OptimizerConfig& c)
      : Optimizer<T>(c.momentum != 0 ? std::vector<std::string>{"buf"} : std::vector<std::string>{}), c_(c) {}

  void step(const std::vector<Param<T>*>& params, double lr) override {
    check_lr(lr);
    const T wd = T(c_.weight_decay), mu = T(c_.momentum), neg_lr = T(-lr);
    for (Param<T>* p : params) {
      if (!p->var.has_grad()) continue;
      Tensor<T>& w = p->var.value();       // [param shape]
      const Tensor<T>& g = p->var.grad();  // [param shape]
      const int64_t n = w.numel();
      Tensor<T> d(w.shape());  // [param shape] the direction actually applied
      for (int64_t i = 0; i < n; ++i) d[i] = c_.weight_decay != 0 ? g[i] + wd * w[i] : g[i];
      if (c_.momentum != 0) {
        Tensor<T>* b = this->find_state("buf", p->name, w.shape());
        if (b == nullptr) {
          b = &this->put_state("buf", p->name, d.clone());  // first step: buffer = d, no decay
        } else {
          for (int64_t i = 0; i < n; ++i) (*b)[i] = (*b)[i] * mu + d[i];
        }
        for (int64_t i = 0; i < n; ++i) d[i] = c_.nesterov ? d[i] + mu * (*b)[i] : (*b)[i];
      }
      for (int64_t i = 0; i < n; ++i) w[i] = w[i] + neg_lr * d[i];
    }
    ++this->steps_;
  }

 private:
  OptimizerConfig c_;
};

// ---- torch.optim.Adam / AdamW ----
// Per param, with k its own update count (1 on its first update):
//   adamw:  p = p * (1 - lr * wd)                      (decoupled decay, before the moments)
//   adam:   g = g + wd * p                             (L2 decay folded into the gradient)
//   m = b1 * m + (1 - b1) * g;   v = b2 * v + (1 - b2) * g * g
//   p = p - (lr / (1 - b1^k)) * m / (sqrt(v) / sqrt(1 - b2^k) + eps)
// Scalars (1 - b1, bias corrections, step size) are formed in double and rounded to T once, as
// PyTorch does with its Python-float hyperparameters.
template <typename T>
class Adam final : public Optimizer<T> {
 public:
  Adam(const OptimizerConfig& c, bool decoupled) : Optimizer<T>({"m", "step", "v"}), c_(c), decoupled_(decoupled) {}

  void step(const std::vector<Param<T>*>& params, double lr) override {
    check_lr(lr);
    const T b1 = T(c_.beta1), b2 = T(c_.beta2), one_m_b1 = T(1 - c_.beta1), one_m_b2 = T(1 - c_.beta2),
            wd = T(c_.weight_decay), eps = T(c_.eps);
    for (Param<T>* p : params) {
      if (!p->var.has_grad()) continue;
      Tensor<T>& w = p->var.value();       // [param shape]
      const Tensor<T>& g = p->var.grad();  // [param shape]
      const int64_t n = w.numel();
      Tensor<T>* m = this->find_state("m", p->name, w.shape());  // [param shape]
      Tensor<T>* v = this->find_state("v", p->name, w.shape());  // [param shape]
      Tensor<T>* k = this->find_state("step", p->name, {});      // [] update count
      if (m == nullptr) {
        m = &this->put_state("m", p->name, Tensor<T>(w.shape()));
        v = &this->put_state("v", p->name, Tensor<T>(w.shape()));
        k = &this->put_state("step", p->name, Tensor<T>::scalar(T(0)));
      }
      const double count = double((*k)[0]) + 1;
      (*k)[0] = T(count);
      const double bc1 = 1 - std::pow(c_.beta1, count);
      const double bc2_sqrt = std::sqrt(1 - std::pow(c_.beta2, count));
      const T neg_step_size = T(-(lr / bc1)), bc2s = T(bc2_sqrt);

      if (decoupled_ && c_.weight_decay != 0) {
        const T shrink = T(1 - lr * c_.weight_decay);
        for (int64_t i = 0; i < n; ++i) w[i] = w[i] * shrink;
      }
      for (int64_t i = 0; i < n; ++i) {
        const T gi = (!decoupled_ && c_.weight_decay != 0) ? g[i] + wd * w[i] : g[i];
        (*m)[i] = (*m)[i] * b1 + one_m_b1 * gi;
        (*v)[i] = (*v)[i] * b2 + one_m_b2 * gi * gi;
        const T denom = std::sqrt((*v)[i]) / bc2s + eps;
        w[i] = w[i] + neg_step_size * (*m)[i] / denom;
      }
    }
    ++this->steps_;
  }

  void load_state(int64_t steps_taken, const std::vector<std::pair<std::string, Tensor<T>>>& tensors) override {
    // A step count must be a scalar non-negative whole number or bias correction is garbage.
    for (auto& [key, t] : tensors) {
      if (key.rfind("step.", 0) != 0) continue;
      IHLAB_CHECK(t.defined() && t.numel() == 1 && t[0] >= 0 && std::floor(t[0]) == t[0],
                  "optimizer: state '{}' must be one whole number >= 0", key);
    }
    Optimizer<T>::load_state(steps_taken, tensors);
  }

 private:
  OptimizerConfig c_;
  bool decoupled_;
};

}  // namespace

template <typename T>
std::unique_ptr<Optimizer<T>> Optimizer<T>::make(const OptimizerConfig& c) {
  IHLAB_CHECK(std::isfinite(c.weight_decay) && c.weight_decay >= 0,
              "optimizer: weight_decay must be finite and >= 0, got {}", c.weight_decay);
  if (c.kind == OptimizerKind::Sgd) {
    IHLAB_CHECK(std::isfinite(c.momentum) && c.momentum >= 0, "optimizer: momentum must be finite and >= 0, got {}",
                c.momentum);
    IHLAB_CHECK(!c.nesterov || c.momentum > 0, "optimizer: nesterov needs momentum > 0");
    return std::make_unique<Sgd<T>>(c);
  }
  // Catch a config that means sgd-style momentum but names adam: it would be silently ignored.
  IHLAB_CHECK(c.momentum == 0 && !c.nesterov, "optimizer: momentum/nesterov apply only to kind 'sgd' (kind is '{}')",
              enum_name(c.kind));
  IHLAB_CHECK(c.beta1 >= 0 && c.beta1 < 1, "optimizer: beta1 must be in [0, 1), got {}", c.beta1);
  IHLAB_CHECK(c.beta2 >= 0 && c.beta2 < 1, "optimizer: beta2 must be in [0, 1), got {}", c.beta2);
  IHLAB_CHECK(std::isfinite(c.eps) && c.eps >= 0, "optimizer: eps must be finite and >= 0, got {}", c.eps);
  return std::make_unique<Adam<T>>(c, c.kind == OptimizerKind::AdamW);
}

// ---- gradient norm and clipping ----

template <typename T>
double grad_norm(const std::vector<Param<T>*>& params) {
  double sum = 0;  // one running sum, params then elements in order: a fixed rounding sequence
  for (Param<T>* p : params) {
    if (!p->var.has_grad()) continue;
    for (T g : p->var.grad().span()) sum += double(g) * double(g);
  }
  return std::sqrt(sum);
}

template <typename T>
double clip_grad_norm(const std::vector<Param<T>*>& params, double max_norm) {
  IHLAB_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be > 0, got {}", max_norm);
  const double norm = grad_norm(params);
  if (!std::isfinite(norm)) return norm;
  const double coef = max_norm / (norm + 1e-6);  // torch's 1e-6 keeps a zero norm harmless
  if (coef >= 1) return norm;
  const T c = T(coef);
  for (Param<T>* p : params) {
    if (!p->var.has_grad()) continue;
    for (T& g : p->var.grad().span()) g *= c;
  }
  return norm;
}

template class Optimizer<float>;
template class Optimizer<double>;
template double grad_norm(const std::vector<Param<float>*>&);
template double grad_norm(const std::vector<Param<double>*>&);
template double clip_grad_norm(const std::vector<Param<float>*>&, double);
template double clip_grad_norm(const std::vector<Param<double>*>&, double);

}  // namespace ihlab
