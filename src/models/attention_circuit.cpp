// Fused forward/backward of the attention circuit (see attention_circuit.h for the math).
#include "models/attention_circuit.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "models/attention_circuit_kernel.h"

namespace ihlab {

namespace {

bool positional(const CircuitHead& h) { return h.score != CircuitHead::Score::Dot; }

// The lane width the model runs at (see attention_circuit_kernel.h).
using V = circuit_kernel::Lanes;

}  // namespace

template <typename T>
AttentionCircuit<T>::AttentionCircuit(AttentionCircuitConfig cfg) : cfg_(std::move(cfg)) {
  const int64_t L = cfg_.length;
  IHLAB_CHECK(!cfg_.heads.empty(),
              "config: key 'model.heads' is empty (attention-circuit needs at least one "
              "[[model.heads]] table)");
  int max_layer = 0;
  for (size_t h = 0; h < cfg_.heads.size(); ++h) {
    CircuitHead& H = cfg_.heads[h];
    if (H.name.empty()) H.name = fmt::format("h{}", h);
    const std::string at = fmt::format("model.heads[{}]", h);
    for (auto [key, slot] : {std::pair{"query", H.query}, {"key", H.key}, {"value", H.value}})
      IHLAB_CHECK(slot >= 0 && slot < cfg_.slots,
                  "config: key '{}.{}' = {} is out of range (allowed: 0 <= slot < {}, the task's feature_dim / "
                  "value_dim)",
                  at, key, slot, cfg_.slots);
    IHLAB_CHECK(H.write >= -1 && H.write < cfg_.slots,
                "config: key '{}.write' = {} is out of range (allowed: -1 = the prediction, or a slot 0..{})", at,
                H.write, cfg_.slots - 1);
    IHLAB_CHECK(H.first_key < L, "config: key '{}.first_key' = {} is out of range (allowed: < task.length = {})", at,
                H.first_key, L);
    max_layer = std::max(max_layer, H.layer);
  }
  for (size_t h = 0; h < cfg_.heads.size(); ++h) {
    const CircuitHead& H = cfg_.heads[h];
    if (H.write < 0)
      IHLAB_CHECK(H.layer == max_layer,
                  "config: key 'model.heads[{}].write' = -1 (the prediction) is only allowed "
                  "in the last layer ({}), but the head is in layer {}",
                  h, max_layer, H.layer);
    if (H.write >= 0)
      IHLAB_CHECK(H.layer < max_layer,
                  "config: key 'model.heads[{}].write' = {} writes a slot in the last layer "
                  "({}), where nothing reads it (use write = -1)",
                  h, H.write, max_layer);
  }
  for (int l = 1; l <= max_layer; ++l) {
    bool any = false;
    for (auto& H : cfg_.heads) any |= H.layer == l;
    IHLAB_CHECK(any, "config: model.heads has no head in layer {} (layers must be 1..{} without gaps)", l, max_layer);
  }
  auto& p = this->params_;
  auto scalar = [](double v) { return Tensor<T>(Shape{1}, T(v)); };
  for (auto& H : cfg_.heads) {
    const std::string group = "layer" + std::to_string(H.layer);
    std::vector<int> idx;
    auto add = [&](const std::string& what, double v) {
      idx.push_back(int(p.all().size()));
      p.add(H.name + "." + what, group, scalar(v));
    };
    if (positional(H)) {
      add("slope", H.slope_init);
    } else if (H.kq_product()) {
      add("wk", cfg_.sigma_init);
      add("wq", cfg_.sigma_init);
    } else {
      add("wkq", cfg_.sigma_init);
    }
    add("value", cfg_.sigma_init);
    head_params_.push_back(idx);
  }
}

template <typename T>
void AttentionCircuit<T>::set_objective(const std::string& objective) {
  IHLAB_CHECK(objective == "loss" || objective == "copy-previous",
              "config: stage key 'objective' = \"{}\" is not supported by model 'attention-circuit' (allowed: loss, "
              "copy-previous)",
              objective);
  if (objective == "copy-previous") {
    int ws = -2;
    for (auto& H : cfg_.heads)
      if (H.layer == 1) {
        IHLAB_CHECK(H.write >= 0 && (ws == -2 || H.write == ws),
                    "attention-circuit: objective 'copy-previous' needs every layer-1 head to write one and the same "
                    "slot (head '{}' writes {})",
                    H.name, H.write);
        ws = H.write;
      }
    IHLAB_CHECK(cfg_.heads[0].layer == 1, "attention-circuit: objective 'copy-previous' needs heads[0] in layer 1");
  }
  objective_ = objective;
}

template <typename T>
std::vector<double> AttentionCircuit<T>::param_values() const {
  std::vector<double> v;
  for (auto& p : this->params_.all()) v.push_back(double(p.var.value()[0]));
  return v;
}

template <typename T>
std::vector<double> AttentionCircuit<T>::layer_params(int layers, const std::vector<double>& theta) const {
  std::vector<double> v;
  for (size_t h = 0; h < cfg_.heads.size(); ++h)
    if (cfg_.heads[h].layer <= layers)
      for (int i : head_params_[h]) v.push_back(theta[i]);
  return v;
}

template <typename T>
const circuit_kernel::PackedStream& AttentionCircuit<T>::prefix_stream(const Batch& b, int layers,
                                                                       const std::vector<double>& theta) const {
  // The features are compared bit for bit, not by address or hash: the cache must never serve a
  // stream computed for different data that happens to reuse the same buffer.
  auto same_features = [&](const std::vector<float>& f) {
    return f.size() == b.features.size() && std::memcmp(f.data(), b.features.data(), f.size() * sizeof(float)) == 0;
  };
  const std::vector<double> key = layer_params(layers, theta);
  for (size_t i = 0; i < cache_.size(); ++i)
    if (cache_[i].n == b.size && cache_[i].layers == layers && cache_[i].one_at_a_time == one_at_a_time_ &&
        cache_[i].theta == key && same_features(cache_[i].features)) {
      if (i > 0) std::swap(cache_[0], cache_[i]);  // most recently used first
      return *cache_[0].stream;
    }
  StreamCache c{b.features, b.size, layers, one_at_a_time_, key, {}};
  c.stream = std::make_shared<const circuit_kernel::PackedStream>(
      circuit_kernel::stream_after(circuit_kernel::make_pass(cfg_, head_params_, theta, b), b, layers, one_at_a_time_));
  cache_.insert(cache_.begin(), std::move(c));
  if (cache_.size() > 2) cache_.pop_back();  // the training and the validation set
  return *cache_[0].stream;
}

template <typename T>
double AttentionCircuit<T>::objective_and_grad(const Batch& b, const std::string& objective,
                                               std::vector<double>* grads) const {
  const std::vector<double> theta = param_values();
  circuit_kernel::Pass P = circuit_kernel::make_pass(cfg_, head_params_, theta, b);
  const bool copy = objective == "copy-previous";
  const int top = copy ? 1 : P.layers;
  // Layers whose parameters (and all earlier layers') get no gradient are a fixed function of the
  // data: their output stream is computed once and cached (layer 1 frozen while layer 2 trains).
  int prefix = 0;
  if (!copy) {
    prefix = top - 1;
    if (grads)
      for (size_t i = 0; i < this->params_.all().size(); ++i)
        if (this->params_.all()[i].var.requires_grad())
          for (size_t h = 0; h < cfg_.heads.size(); ++h)
            for (int j : head_params_[h])
              if (j == int(i)) prefix = std::min(prefix, cfg_.heads[h].layer - 1);
  }
  const circuit_kernel::PackedStream* cached = prefix > 0 ? &prefix_stream(b, prefix, theta) : nullptr;
  P.first = prefix + 1;
  const std::vector<double> total =
      one_at_a_time_
          ? circuit_kernel::objective_sums<double>(P, {b, cached ? cached->one.data() : nullptr}, copy, grads)
          : circuit_kernel::objective_sums<V>(P, {b, cached ? cached->lanes.data() : nullptr}, copy, grads);
  const double n = double(b.size);
  if (grads) {
    grads->assign(total.begin() + 1, total.end());
    for (auto& g : *grads) g /= n;
  }
  return total[0] / n;
}

template <typename T>
Var<T> AttentionCircuit<T>::loss(const Batch& b) {
  std::vector<Var<T>> inputs;
  bool any = false;
  for (auto& p : this->params_.all()) inputs.push_back(p.var), any |= p.var.requires_grad();
  std::vector<double> grads;
  const double value = objective_and_grad(b, objective_, any ? &grads : nullptr);
  return make_result<T>("attention_circuit_loss", Tensor<T>(Shape{}, T(value)), inputs,
                        [grads = std::move(grads)](Node<T>& out) {
                          const double g = double(out.grad[0]);
                          for (size_t i = 0; i < out.parents.size(); ++i) {
                            Node<T>& p = *out.parents[i];
                            if (!p.requires_grad) continue;
                            p.grad_buffer()[0] += T(g * grads[i]);
                          }
                        });
}

template <typename T>
void AttentionCircuit<T>::predict(const Batch& b, std::vector<double>& yhat, std::vector<double>& head_out) const {
  const std::vector<double> theta = param_values();
  circuit_kernel::Pass P = circuit_kernel::make_pass(cfg_, head_params_, theta, b);
  const int prefix = P.layers - 1;
  const circuit_kernel::PackedStream* cached = prefix > 0 ? &prefix_stream(b, prefix, theta) : nullptr;
  P.first = prefix + 1;
  if (one_at_a_time_)
    circuit_kernel::predict_rows<double>(P, {b, cached ? cached->one.data() : nullptr}, yhat, head_out);
  else
    circuit_kernel::predict_rows<V>(P, {b, cached ? cached->lanes.data() : nullptr}, yhat, head_out);
}

template <typename T>
Scalars AttentionCircuit<T>::evaluate(const Batch& b) {
  Scalars out;
  out.push_back({"task_loss", objective_and_grad(b, "loss", nullptr)});
  bool copy_ok = true;
  for (auto& H : cfg_.heads) copy_ok &= H.layer != 1 || (H.write >= 0 && H.write == cfg_.heads[0].write);
  if (copy_ok && cfg_.heads[0].layer == 1)
    out.push_back({"copy_loss", objective_and_grad(b, "copy-previous", nullptr)});
  // Error split by target component.
  std::vector<std::string> parts;
  for (auto& H : cfg_.heads)
    if (!H.component.empty() && std::find(parts.begin(), parts.end(), H.component) == parts.end())
      parts.push_back(H.component);
  if (parts.empty()) return out;
  std::vector<double> yhat, head_out;
  predict(b, yhat, head_out);
  const int64_t n = b.size, d = cfg_.dim, K = int64_t(b.part_names.size()), NH = int64_t(cfg_.heads.size());
  std::vector<std::vector<double>> err(parts.size(), std::vector<double>(size_t(n * d), 0.0));
  for (size_t k = 0; k < parts.size(); ++k) {
    auto it = std::find(b.part_names.begin(), b.part_names.end(), parts[k]);
    IHLAB_CHECK(it != b.part_names.end(), "attention-circuit: a head names target component '{}' but the task has {}",
                parts[k], b.part_names.empty() ? std::string("none") : ParamStore<T>::join(b.part_names));
    const int64_t pk = int64_t(it - b.part_names.begin());
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < d; ++j) {
        double sum = 0;
        for (int64_t h = 0; h < NH; ++h)
          if (cfg_.heads[h].component == parts[k]) sum += head_out[(r * NH + h) * d + j];
        err[k][r * d + j] = sum - b.parts[(r * K + pk) * d + j];
      }
    double e2 = 0;
    for (double e : err[k]) e2 += e * e;
    out.push_back({"err_" + parts[k], 0.5 * e2 / double(n)});
  }
  if (parts.size() == 2) {
    double cross = 0;
    for (int64_t i = 0; i < n * d; ++i) cross += err[0][i] * err[1][i];
    out.push_back({"err_cross", cross / double(n)});
  }
  return out;
}

template <typename T>
Scalars AttentionCircuit<T>::probes() const {
  Scalars s;
  for (auto& p : this->params_.all()) s.push_back({p.name, double(p.var.value()[0])});
  const std::vector<double> theta = param_values();
  for (size_t h = 0; h < cfg_.heads.size(); ++h)
    if (!positional(cfg_.heads[h]) && cfg_.heads[h].kq_product())
      s.push_back({cfg_.heads[h].name + ".wkq", theta[head_params_[h][0]] * theta[head_params_[h][1]]});
  return s;
}

template class AttentionCircuit<float>;
template class AttentionCircuit<double>;

}  // namespace ihlab
