// Fused forward/backward of the attention circuit (see attention_circuit.h for the math).
#include "models/attention_circuit.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/parallel.h"

namespace ihlab {

namespace {

constexpr int64_t kGrain = 64;  // sequences per parallel chunk (fixed: results ignore thread count)

bool positional(const CircuitHead& h) { return h.score != CircuitHead::Score::Dot; }

// Distance that a positional score multiplies by -p.
double distance(const CircuitHead& h, int64_t t, int64_t s) {
  const double u = double(t - h.offset - s);
  return h.score == CircuitHead::Score::Alibi ? std::max(0.0, u) : std::abs(u);
}

// Keys of query t: [lo, hi] inclusive (empty when hi < lo).
std::pair<int64_t, int64_t> key_range(const CircuitHead& h, int64_t t) { return {h.first_key, t - h.min_back}; }

// In-place max-subtracted softmax of z[lo..hi].
void softmax(double* z, int64_t lo, int64_t hi) {
  double m = -INFINITY;
  for (int64_t s = lo; s <= hi; ++s) m = std::max(m, z[s]);
  double total = 0;
  for (int64_t s = lo; s <= hi; ++s) total += (z[s] = std::exp(z[s] - m));
  for (int64_t s = lo; s <= hi; ++s) z[s] /= total;
}

// Everything one evaluation needs, shared read-only by the sequence loops.
struct CircuitPass {
  const AttentionCircuitConfig& cfg;
  const std::vector<std::vector<int>>& hp;  // per head: parameter indices
  const std::vector<double>& theta;         // parameter values
  int64_t L, d, S, F;                       // F = S * d floats per position
  int layers;
  int first = 1;                             // the first layer computed; earlier ones come cached
  std::vector<std::vector<double>> pos_att;  // positional heads: [L queries, L keys] (sequence-free)

  double value_w(size_t h) const { return theta[hp[h].back()]; }
  double kq(size_t h) const { return cfg.heads[h].kq_product() ? theta[hp[h][0]] * theta[hp[h][1]] : theta[hp[h][0]]; }
  bool queried(size_t h, int64_t t) const { return cfg.heads[h].write >= 0 || t == L - 1; }
};

// Per-chunk buffers, reused across the sequences of a chunk (no allocation per sequence).
struct Scratch {
  std::vector<std::vector<double>> state;    // state[l] = stream after layer l, [L, F]
  std::vector<std::vector<double>> dot_att;  // dot heads: [L, L]
  std::vector<double> pred, dstate, dprev, dpred, da;
};

// One sequence. `start` is the stream after layer P.first - 1 ([L, F]: the features for
// P.first = 1). Forward through layers P.first..top (top = 1 for the copy objective, else the last).
// With state_out, stops there and copies the stream after `top` into it (the frozen-prefix cache).
// Otherwise returns the objective and, when grad != nullptr, adds its gradient into grad.
// y = [d] (loss objective); pred_out = [d] and head_out = [heads, d] (prediction heads) or null.
double run_sequence(const CircuitPass& P, const double* start, int top, const double* y, bool copy_objective,
                    double* grad, double* pred_out, double* head_out, double* state_out, Scratch& w) {
  const auto& heads = P.cfg.heads;
  const int64_t L = P.L, d = P.d, F = P.F;
  auto& state = w.state;
  state.resize(size_t(top + 1));
  state[P.first - 1].assign(start, start + L * F);
  w.pred.assign(size_t(d), 0.0);
  std::vector<double>& pred = w.pred;
  auto& dot_att = w.dot_att;
  dot_att.resize(heads.size());
  for (int l = P.first; l <= top; ++l) {
    state[l] = state[l - 1];
    const std::vector<double>& in = state[l - 1];
    for (size_t h = 0; h < heads.size(); ++h) {
      const CircuitHead& H = heads[h];
      if (H.layer != l) continue;
      const double wv = P.value_w(h);
      // Rows are written for the keys they read before being read, so they need no clearing.
      if (!positional(H) && dot_att[h].size() != size_t(L * L)) dot_att[h].assign(size_t(L * L), 0.0);
      for (int64_t t = 0; t < L; ++t) {
        if (!P.queried(h, t)) continue;
        auto [lo, hi] = key_range(H, t);
        if (hi < lo) continue;
        const double* a;
        if (positional(H)) {
          a = P.pos_att[h].data() + t * L;
        } else {
          double* z = dot_att[h].data() + t * L;
          const double c = P.kq(h);
          for (int64_t s = lo; s <= hi; ++s) {
            double dot = 0;
            for (int64_t j = 0; j < d; ++j) dot += in[t * F + H.query * d + j] * in[s * F + H.key * d + j];
            z[s] = c * dot;
          }
          softmax(z, lo, hi);
          a = z;
        }
        double* out = H.write >= 0 ? &state[l][t * F + H.write * d] : pred.data();
        for (int64_t s = lo; s <= hi; ++s)
          for (int64_t j = 0; j < d; ++j) out[j] += wv * a[s] * in[s * F + H.value * d + j];
        if (head_out && H.write < 0)
          for (int64_t s = lo; s <= hi; ++s)
            for (int64_t j = 0; j < d; ++j) head_out[h * d + j] += wv * a[s] * in[s * F + H.value * d + j];
      }
    }
  }
  if (state_out) {
    std::copy(state[top].begin(), state[top].end(), state_out);
    return 0;
  }
  if (pred_out) std::copy(pred.begin(), pred.end(), pred_out);

  // Objective and its gradient with respect to the top state (copy) or the prediction (loss).
  w.dstate.assign(size_t(L * F), 0.0);
  w.dpred.assign(size_t(d), 0.0);
  std::vector<double>& dstate = w.dstate;
  std::vector<double>& dpred = w.dpred;
  double value = 0;
  if (copy_objective) {
    const int ws = heads[0].write;  // validated: every layer-1 head writes this slot
    for (int64_t t = 1; t < L; ++t)
      for (int64_t j = 0; j < d; ++j) {
        const double w = state[1][t * F + ws * d + j] - state[0][t * F + ws * d + j];
        const double r = w - state[0][(t - 1) * F + j];
        value += 0.5 * r * r / double(L - 1);
        dstate[t * F + ws * d + j] = r / double(L - 1);
      }
  } else {
    for (int64_t j = 0; j < d; ++j) {
      const double e = pred[j] - y[j];
      value += 0.5 * e * e;
      dpred[j] = e;
    }
  }
  if (!grad) return value;

  // Backward, layer by layer: heads of layer l read d(objective)/d(state[l]) and add into the
  // gradient of state[l-1] (the residual path passes it through unchanged).
  for (int l = top; l >= P.first; --l) {
    w.dprev = dstate;
    std::vector<double>& dprev = w.dprev;
    const std::vector<double>& in = state[l - 1];
    for (size_t h = 0; h < heads.size(); ++h) {
      const CircuitHead& H = heads[h];
      if (H.layer != l) continue;
      const double wv = P.value_w(h);
      double dwv = 0, dscore_param = 0;  // d/dw_V, and d/dp (positional) or d/dc (dot)
      w.da.assign(size_t(L), 0.0);
      std::vector<double>& da = w.da;
      for (int64_t t = 0; t < L; ++t) {
        if (!P.queried(h, t)) continue;
        auto [lo, hi] = key_range(H, t);
        if (hi < lo) continue;
        const double* g = H.write >= 0 ? &dstate[t * F + H.write * d] : dpred.data();
        const double* a = positional(H) ? P.pos_att[h].data() + t * L : dot_att[h].data() + t * L;
        double abar = 0;  // sum_s a_s da_s
        for (int64_t s = lo; s <= hi; ++s) {
          double gv = 0;
          for (int64_t j = 0; j < d; ++j) {
            gv += g[j] * in[s * F + H.value * d + j];
            dprev[s * F + H.value * d + j] += wv * a[s] * g[j];
          }
          dwv += a[s] * gv;
          da[s] = wv * gv;
          abar += a[s] * da[s];
        }
        for (int64_t s = lo; s <= hi; ++s) {
          const double dz = a[s] * (da[s] - abar);
          if (positional(H)) {
            dscore_param -= dz * distance(H, t, s);
          } else {
            const double c = P.kq(h);
            double dot = 0;
            for (int64_t j = 0; j < d; ++j) {
              const double q = in[t * F + H.query * d + j], k = in[s * F + H.key * d + j];
              dot += q * k;
              dprev[t * F + H.query * d + j] += c * dz * k;
              dprev[s * F + H.key * d + j] += c * dz * q;
            }
            dscore_param += dz * dot;
          }
        }
      }
      const auto& idx = P.hp[h];
      grad[idx.back()] += dwv;
      if (positional(H) || !H.kq_product()) {
        grad[idx[0]] += dscore_param;
      } else {  // c = w_K w_Q
        grad[idx[0]] += dscore_param * P.theta[idx[1]];
        grad[idx[1]] += dscore_param * P.theta[idx[0]];
      }
    }
    dstate.swap(dprev);
  }
  return value;
}

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

namespace {
template <typename Cfg>
CircuitPass make_pass(const Cfg& cfg, const std::vector<std::vector<int>>& hp, const std::vector<double>& theta,
                      const Batch& b) {
  CircuitPass P{cfg, hp, theta, b.length, cfg.dim, cfg.slots, cfg.slots * cfg.dim, 0, 1, {}};
  IHLAB_CHECK(b.length == cfg.length && b.feature_dim == P.F && b.value_dim == cfg.dim,
              "attention-circuit: batch of length {}, feature_dim {}, value_dim {} but the model was built for {}, {}, "
              "{}",
              b.length, b.feature_dim, b.value_dim, cfg.length, P.F, cfg.dim);
  for (auto& H : cfg.heads) P.layers = std::max(P.layers, H.layer);
  P.pos_att.resize(cfg.heads.size());
  const int64_t L = P.L;
  for (size_t h = 0; h < cfg.heads.size(); ++h) {
    const CircuitHead& H = cfg.heads[h];
    if (!positional(H)) continue;
    const double slope = theta[hp[h][0]];
    P.pos_att[h].assign(size_t(L * L), 0.0);
    for (int64_t t = 0; t < L; ++t) {
      auto [lo, hi] = key_range(H, t);
      if (hi < lo) continue;
      double* z = P.pos_att[h].data() + t * L;
      for (int64_t s = lo; s <= hi; ++s) z[s] = -slope * distance(H, t, s);
      softmax(z, lo, hi);
    }
  }
  return P;
}
}  // namespace

namespace {
// Content hash of a batch's features (64-bit FNV-1a over the float bit patterns): the prefix cache
// must never serve a stream computed for different data that happens to reuse the same buffer.
uint64_t features_hash(const Batch& b) {
  uint64_t h = 1469598103934665603ull ^ uint64_t(b.size) ^ (uint64_t(b.length) << 32);
  for (float f : b.features) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    h = (h ^ u) * 1099511628211ull;
  }
  return h;
}
}  // namespace

template <typename T>
std::vector<double> AttentionCircuit<T>::layer_params(int layers, const std::vector<double>& theta) const {
  std::vector<double> v;
  for (size_t h = 0; h < cfg_.heads.size(); ++h)
    if (cfg_.heads[h].layer <= layers)
      for (int i : head_params_[h]) v.push_back(theta[i]);
  return v;
}

template <typename T>
const std::vector<double>& AttentionCircuit<T>::prefix_stream(const Batch& b, int layers,
                                                              const std::vector<double>& theta) const {
  const uint64_t hash = features_hash(b);
  const std::vector<double> key = layer_params(layers, theta);
  for (size_t i = 0; i < cache_.size(); ++i)
    if (cache_[i].hash == hash && cache_[i].n == b.size && cache_[i].layers == layers && cache_[i].theta == key) {
      if (i > 0) std::swap(cache_[0], cache_[i]);  // most recently used first
      return cache_[0].stream;
    }
  StreamCache c{hash, b.size, layers, key, {}};
  CircuitPass P = make_pass(cfg_, head_params_, theta, b);
  const int64_t LF = P.L * P.F;
  c.stream.assign(size_t(b.size * LF), 0.0);
  parallel_for(b.size, kGrain, [&](int64_t lo, int64_t hi) {
    Scratch w;
    std::vector<double> start;
    for (int64_t r = lo; r < hi; ++r) {
      start.assign(b.features.begin() + r * LF, b.features.begin() + (r + 1) * LF);
      run_sequence(P, start.data(), layers, nullptr, false, nullptr, nullptr, nullptr, c.stream.data() + r * LF, w);
    }
  });
  cache_.insert(cache_.begin(), std::move(c));
  if (cache_.size() > 2) cache_.pop_back();  // the training and the validation set
  return cache_[0].stream;
}

template <typename T>
double AttentionCircuit<T>::objective_and_grad(const Batch& b, const std::string& objective,
                                               std::vector<double>* grads) const {
  const std::vector<double> theta = param_values();
  CircuitPass P = make_pass(cfg_, head_params_, theta, b);
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
  const std::vector<double>* cached = prefix > 0 ? &prefix_stream(b, prefix, theta) : nullptr;
  P.first = prefix + 1;
  const int64_t n = b.size, np = int64_t(theta.size()), chunks = (n + kGrain - 1) / kGrain, LF = P.L * P.F;
  // Per chunk: [objective sum, gradient sums...], added in chunk order.
  std::vector<std::vector<double>> part(size_t(chunks), std::vector<double>(size_t(np + 1), 0.0));
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    Scratch w;
    std::vector<double> start;
    for (int64_t c = c0; c < c1; ++c) {
      double* acc = part[c].data();
      for (int64_t r = c * kGrain; r < std::min(n, (c + 1) * kGrain); ++r) {
        const double* in;
        if (cached) {
          in = cached->data() + r * LF;
        } else {
          start.assign(b.features.begin() + r * LF, b.features.begin() + (r + 1) * LF);
          in = start.data();
        }
        acc[0] += run_sequence(P, in, top, copy ? nullptr : b.values.data() + r * P.d, copy, grads ? acc + 1 : nullptr,
                               nullptr, nullptr, nullptr, w);
      }
    }
  });
  std::vector<double> total(size_t(np + 1), 0.0);
  for (auto& p : part)
    for (int64_t i = 0; i <= np; ++i) total[i] += p[i];
  if (grads) {
    grads->assign(total.begin() + 1, total.end());
    for (auto& g : *grads) g /= double(n);
  }
  return total[0] / double(n);
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
  CircuitPass P = make_pass(cfg_, head_params_, theta, b);
  const int64_t n = b.size, H = int64_t(cfg_.heads.size()), LF = P.L * P.F;
  const int prefix = P.layers - 1;
  const std::vector<double>* cached = prefix > 0 ? &prefix_stream(b, prefix, theta) : nullptr;
  P.first = prefix + 1;
  yhat.assign(size_t(n * P.d), 0.0);
  head_out.assign(size_t(n * H * P.d), 0.0);
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    Scratch w;
    std::vector<double> start;
    for (int64_t r = lo; r < hi; ++r) {
      const double* in;
      if (cached) {
        in = cached->data() + r * LF;
      } else {
        start.assign(b.features.begin() + r * LF, b.features.begin() + (r + 1) * LF);
        in = start.data();
      }
      run_sequence(P, in, P.layers, b.values.data() + r * P.d, false, nullptr, yhat.data() + r * P.d,
                   head_out.data() + r * H * P.d, nullptr, w);
    }
  });
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
