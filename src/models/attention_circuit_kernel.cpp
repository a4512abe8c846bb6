// The attention circuit's per-sequence pass, written once for a value type V that is either one
// sequence (double) or kLanes sequences in lock-step (Lanes); see attention_circuit_kernel.h.
#include "models/attention_circuit_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/eigen.h"

#include "core/error.h"
#include "core/parallel.h"

namespace ihlab::circuit_kernel {

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

// Lane-wise forms of the scalar operations that are not plain arithmetic. Each lane computes
// exactly what the double overload computes (std::max(m, z) is m < z ? z : m).
double splat(double x, double) { return x; }
Lanes splat(double x, Lanes) {
  Lanes v;
  for (int i = 0; i < kLanes; ++i) v[i] = x;
  return v;
}
double lane_max(double m, double z) { return std::max(m, z); }
Lanes lane_max(Lanes m, Lanes z) { return m < z ? z : m; }

// exp through Eigen's vectorized exp on a whole register (within about 1 ulp of libm, and each
// lane independent of the others) when Eigen's double packet is as wide as Lanes; libm's, one
// lane at a time, was a third of a layer-2 gradient. One sequence at a time computes the same
// register with the value in every lane, so both ways give the same bits.
using ExpPacket = Eigen::internal::packet_traits<double>::type;
constexpr bool kVectorExp = sizeof(ExpPacket) == sizeof(Lanes);
Lanes lane_exp(Lanes x) {
  if constexpr (kVectorExp) {
    ExpPacket p;
    std::memcpy(&p, &x, sizeof x);
    p = Eigen::internal::pexp(p);
    std::memcpy(&x, &p, sizeof x);
  } else {
    for (int i = 0; i < kLanes; ++i) x[i] = std::exp(x[i]);
  }
  return x;
}
double lane_exp(double x) {
  if constexpr (kVectorExp) return lane_exp(splat(x, Lanes{}))[0];
  return std::exp(x);
}
double& lane(double& v, int) { return v; }
double& lane(Lanes& v, int i) { return reinterpret_cast<double*>(&v)[i]; }
double lane(const double& v, int) { return v; }
double lane(const Lanes& v, int i) { return v[i]; }

// In-place max-subtracted softmax of z[lo..hi].
template <class V>
void softmax(V* z, int64_t lo, int64_t hi) {
  V m = splat(-INFINITY, V{});
  for (int64_t s = lo; s <= hi; ++s) m = lane_max(m, z[s]);
  V total = V{};
  for (int64_t s = lo; s <= hi; ++s) total += (z[s] = lane_exp(z[s] - m));
  for (int64_t s = lo; s <= hi; ++s) z[s] /= total;
}

void softmax_rows(double* z, int64_t lo, int64_t hi) { softmax(z, lo, hi); }

// Per-chunk buffers, reused across the sequences of a chunk (no allocation per sequence).
template <class V>
struct Scratch {
  std::vector<std::vector<V>> state;    // state[l] = stream after layer l, [L, F], when layer l writes
  std::vector<const V*> stream;         // stream[l] = the stream after layer l (start, or a state)
  std::vector<std::vector<V>> dot_att;  // dot heads: [L, L]
  std::vector<V> start, y, pred, dstate, dprev, dpred, da;
  std::vector<V> dwv, dscore;  // per head: d/dw_V, and d/dp (positional) or d/dc (dot)
};

// What run_sequence is asked for besides the forward pass.
template <class V>
struct Outputs {
  bool grad = false;         // fill w.dwv and w.dscore for the heads of layers P.first..top
  V* pred = nullptr;         // [d]
  V* head_out = nullptr;     // [heads, d], zeroed by the caller
  V* state_after = nullptr;  // [L, F]: stop after the forward pass and copy the stream here
};

// One sequence (or kLanes of them). start = the stream after layer P.first - 1, [L, F].
// Forward through layers P.first..top (top = 1 for the copy objective, else the last); y = [d]
// (loss objective). Returns the objective.
template <class V>
V run_sequence(const Pass& P, const V* start, int top, const V* y, bool copy_objective, const Outputs<V>& o,
               Scratch<V>& w) {
  const auto& heads = P.cfg.heads;
  const int64_t L = P.L, d = P.d, F = P.F;
  auto& state = w.state;
  auto& stream = w.stream;
  state.resize(size_t(top + 1));
  stream.assign(size_t(top + 1), nullptr);
  stream[P.first - 1] = start;
  w.pred.assign(size_t(d), V{});
  std::vector<V>& pred = w.pred;
  auto& dot_att = w.dot_att;
  dot_att.resize(heads.size());
  for (int l = P.first; l <= top; ++l) {
    // A layer whose heads all write the prediction leaves the stream as it was: no copy.
    const V* in = stream[l - 1];
    V* written = nullptr;
    for (auto& H : heads)
      if (H.layer == l && H.write >= 0 && !written) {
        state[l].assign(in, in + L * F);
        written = state[l].data();
      }
    stream[l] = written ? written : in;
    for (size_t h = 0; h < heads.size(); ++h) {
      const CircuitHead& H = heads[h];
      if (H.layer != l) continue;
      const double wv = P.value_w(h);
      // Rows are written for the keys they read before being read, so they need no clearing.
      if (!positional(H) && dot_att[h].size() != size_t(L * L)) dot_att[h].assign(size_t(L * L), V{});
      for (int64_t t = 0; t < L; ++t) {
        if (!P.queried(h, t)) continue;
        auto [lo, hi] = key_range(H, t);
        if (hi < lo) continue;
        V* out = H.write >= 0 ? written + t * F + H.write * d : pred.data();
        V* head_out = o.head_out && H.write < 0 ? o.head_out + h * d : nullptr;
        // a: the attention row, double (positional, shared by all sequences) or V (dot). Each
        // output sums over the keys in a register, in key order (as `out[j] +=` would, without
        // the store-to-load chain through memory).
        auto attend = [&](const auto* a) {
          for (int64_t j = 0; j < d; ++j) {
            V acc = out[j];
            for (int64_t s = lo; s <= hi; ++s) acc += wv * a[s] * in[s * F + H.value * d + j];
            out[j] = acc;
          }
          if (head_out)
            for (int64_t j = 0; j < d; ++j) {
              V acc = head_out[j];
              for (int64_t s = lo; s <= hi; ++s) acc += wv * a[s] * in[s * F + H.value * d + j];
              head_out[j] = acc;
            }
        };
        if (positional(H)) {
          attend(P.pos_att[h].data() + t * L);
        } else {
          V* z = dot_att[h].data() + t * L;
          const double c = P.kq(h);
          for (int64_t s = lo; s <= hi; ++s) {
            V dot = V{};
            for (int64_t j = 0; j < d; ++j) dot += in[t * F + H.query * d + j] * in[s * F + H.key * d + j];
            z[s] = c * dot;
          }
          softmax(z, lo, hi);
          attend(static_cast<const V*>(z));
        }
      }
    }
  }
  if (o.state_after) {
    std::copy(stream[top], stream[top] + L * F, o.state_after);
    return V{};
  }
  if (o.pred) std::copy(pred.begin(), pred.end(), o.pred);

  // Objective and its gradient with respect to the top state (copy) or the prediction (loss).
  w.dstate.assign(size_t(L * F), V{});
  w.dpred.assign(size_t(d), V{});
  std::vector<V>& dstate = w.dstate;
  std::vector<V>& dpred = w.dpred;
  V value = V{};
  if (copy_objective) {
    const int ws = heads[0].write;  // validated: every layer-1 head writes this slot
    for (int64_t t = 1; t < L; ++t)
      for (int64_t j = 0; j < d; ++j) {
        const V written = stream[1][t * F + ws * d + j] - stream[0][t * F + ws * d + j];
        const V r = written - stream[0][(t - 1) * F + j];
        value += 0.5 * r * r / double(L - 1);
        dstate[t * F + ws * d + j] = r / double(L - 1);
      }
  } else {
    for (int64_t j = 0; j < d; ++j) {
      const V e = pred[j] - y[j];
      value += 0.5 * e * e;
      dpred[j] = e;
    }
  }
  if (!o.grad) return value;

  // Backward, layer by layer: heads of layer l read d(objective)/d(state[l]) and add into the
  // gradient of state[l-1] (the residual path passes it through unchanged), which only a layer
  // above P.first needs.
  w.dwv.assign(heads.size(), V{});
  w.dscore.assign(heads.size(), V{});
  for (int l = top; l >= P.first; --l) {
    const bool below = l > P.first;
    if (below) w.dprev = dstate;
    std::vector<V>& dprev = w.dprev;
    const V* in = stream[l - 1];
    for (size_t h = 0; h < heads.size(); ++h) {
      const CircuitHead& H = heads[h];
      if (H.layer != l) continue;
      const double wv = P.value_w(h);
      V dwv = V{}, dscore_param = V{};
      w.da.assign(size_t(L), V{});
      std::vector<V>& da = w.da;
      for (int64_t t = 0; t < L; ++t) {
        if (!P.queried(h, t)) continue;
        auto [lo, hi] = key_range(H, t);
        if (hi < lo) continue;
        const V* g = H.write >= 0 ? &dstate[t * F + H.write * d] : dpred.data();
        auto back = [&](const auto* a) {
          V abar = V{};  // sum_s a_s da_s
          for (int64_t s = lo; s <= hi; ++s) {
            V gv = V{};
            for (int64_t j = 0; j < d; ++j) {
              gv += g[j] * in[s * F + H.value * d + j];
              if (below) dprev[s * F + H.value * d + j] += wv * a[s] * g[j];
            }
            dwv += a[s] * gv;
            da[s] = wv * gv;
            abar += a[s] * da[s];
          }
          for (int64_t s = lo; s <= hi; ++s) {
            const V dz = a[s] * (da[s] - abar);
            if (positional(H)) {
              dscore_param -= dz * distance(H, t, s);
            } else {
              const double c = P.kq(h);
              V dot = V{};
              for (int64_t j = 0; j < d; ++j) {
                const V q = in[t * F + H.query * d + j], k = in[s * F + H.key * d + j];
                dot += q * k;
                if (!below) continue;
                dprev[t * F + H.query * d + j] += c * dz * k;
                dprev[s * F + H.key * d + j] += c * dz * q;
              }
              dscore_param += dz * dot;
            }
          }
        };
        if (positional(H))
          back(P.pos_att[h].data() + t * L);
        else
          back(static_cast<const V*>(dot_att[h].data() + t * L));
      }
      w.dwv[h] = dwv;
      w.dscore[h] = dscore_param;
    }
    if (below) dstate.swap(dprev);
  }
  return value;
}

// The calling thread's buffers: kept across calls, so that a gradient evaluation allocates
// nothing once the first has run (one per lane width; parallel loops run one chunk per thread).
template <class V>
Scratch<V>& scratch() {
  static thread_local Scratch<V> w;
  return w;
}

// Loads sequences r0 .. r0 + m - 1 (m <= lanes) of src ([rows, count] of float or double) into
// dst[count] lane-wise; lanes past m repeat sequence r0 so that they compute finite numbers that
// nobody reads.
template <class V, class Src>
void load(const Src* src, int64_t count, int64_t r0, int64_t m, std::vector<V>& dst) {
  dst.resize(size_t(count));
  for (int k = 0; k < lanes_of<V>; ++k) {
    const Src* row = src + (r0 + (k < m ? k : 0)) * count;
    for (int64_t i = 0; i < count; ++i) lane(dst[i], k) = double(row[i]);
  }
}

// The stream a group of sequences starting at r0 (a multiple of the lanes) starts from, [L, F].
template <class V>
const V* load_start(const Pass& P, const Start<V>& in, int64_t r0, int64_t m, Scratch<V>& w) {
  const int64_t LF = P.L * P.F;
  if (in.cached) return in.cached + (r0 / lanes_of<V>)*LF;
  load(in.b.features.data(), LF, r0, m, w.start);
  return w.start.data();
}

// Lane k of src[count] into row[count].
template <class V>
void store(const V* src, int64_t count, int k, double* row) {
  for (int64_t i = 0; i < count; ++i) row[i] = lane(src[i], k);
}

}  // namespace

Pass make_pass(const AttentionCircuitConfig& cfg, const std::vector<std::vector<int>>& hp,
               const std::vector<double>& theta, const Batch& b) {
  Pass P{cfg, hp, theta, b.length, cfg.dim, cfg.slots, cfg.slots * cfg.dim, 0, 1, {}};
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
      softmax_rows(z, lo, hi);
    }
  }
  return P;
}

template <class V>
std::vector<double> objective_sums(const Pass& P, const Start<V>& in, bool copy, bool grads) {
  constexpr int W = lanes_of<V>;
  const auto& heads = P.cfg.heads;
  const int top = copy ? 1 : P.layers;
  const int64_t n = in.b.size, np = int64_t(P.theta.size()), chunks = (n + kGrain - 1) / kGrain;
  // Per chunk: [objective sum, gradient sums...], added in sequence order within a chunk and in
  // chunk order across chunks, whatever the lane width.
  std::vector<std::vector<double>> part(size_t(chunks), std::vector<double>(size_t(np + 1), 0.0));
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    Scratch<V>& w = scratch<V>();
    Outputs<V> o;
    o.grad = grads;
    for (int64_t c = c0; c < c1; ++c) {
      double* acc = part[c].data();
      const int64_t end = std::min(n, (c + 1) * kGrain);
      for (int64_t r0 = c * kGrain; r0 < end; r0 += W) {
        const int64_t m = std::min<int64_t>(W, end - r0);
        const V* start = load_start(P, in, r0, m, w);
        if (!copy) load(in.b.values.data(), P.d, r0, m, w.y);
        V value = run_sequence(P, start, top, copy ? nullptr : w.y.data(), copy, o, w);
        for (int k = 0; k < m; ++k) {
          acc[0] += lane(value, k);
          if (!grads) continue;
          double* grad = acc + 1;
          for (size_t h = 0; h < heads.size(); ++h) {
            if (heads[h].layer < P.first || heads[h].layer > top) continue;
            const auto& idx = P.hp[h];
            const double dscore_param = lane(w.dscore[h], k);
            grad[idx.back()] += lane(w.dwv[h], k);
            if (positional(heads[h]) || !heads[h].kq_product()) {
              grad[idx[0]] += dscore_param;
            } else {  // c = w_K w_Q
              grad[idx[0]] += dscore_param * P.theta[idx[1]];
              grad[idx[1]] += dscore_param * P.theta[idx[0]];
            }
          }
        }
      }
    }
  });
  std::vector<double> total(size_t(np + 1), 0.0);
  for (auto& p : part)
    for (int64_t i = 0; i <= np; ++i) total[i] += p[i];
  return total;
}

template <class V>
std::vector<V> packed_stream_after(const Pass& P, const Batch& b, int layers) {
  IHLAB_CHECK(P.first == 1, "attention-circuit: a stream is computed from the features");
  constexpr int W = lanes_of<V>;
  const int64_t LF = P.L * P.F;
  std::vector<V> stream(size_t((b.size + W - 1) / W * LF));
  parallel_for(b.size, kGrain, [&](int64_t lo, int64_t hi) {  // kGrain is a multiple of W
    Scratch<V>& w = scratch<V>();
    Outputs<V> o;
    for (int64_t r0 = lo; r0 < hi; r0 += W) {
      o.state_after = stream.data() + r0 / W * LF;
      const V* start = load_start(P, Start<V>{b}, r0, std::min<int64_t>(W, hi - r0), w);
      run_sequence(P, start, layers, static_cast<const V*>(nullptr), false, o, w);
    }
  });
  return stream;
}

template <class V>
void predict_rows(const Pass& P, const Start<V>& in, std::vector<double>& yhat, std::vector<double>& head_out) {
  constexpr int W = lanes_of<V>;
  const int64_t n = in.b.size, H = int64_t(P.cfg.heads.size()), d = P.d;
  yhat.assign(size_t(n * d), 0.0);
  head_out.assign(size_t(n * H * d), 0.0);
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    Scratch<V>& w = scratch<V>();
    std::vector<V> pred(static_cast<size_t>(d)), heads(static_cast<size_t>(H * d));
    Outputs<V> o;
    o.pred = pred.data();
    o.head_out = heads.data();
    for (int64_t r0 = lo; r0 < hi; r0 += W) {
      const int64_t m = std::min<int64_t>(W, hi - r0);
      const V* start = load_start(P, in, r0, m, w);
      load(in.b.values.data(), d, r0, m, w.y);
      std::fill(heads.begin(), heads.end(), V{});
      run_sequence(P, start, P.layers, w.y.data(), false, o, w);
      for (int k = 0; k < m; ++k) {
        store(pred.data(), d, k, yhat.data() + (r0 + k) * d);
        store(heads.data(), H * d, k, head_out.data() + (r0 + k) * H * d);
      }
    }
  });
}

template std::vector<double> objective_sums<double>(const Pass&, const Start<double>&, bool, bool);
template std::vector<double> objective_sums<Lanes>(const Pass&, const Start<Lanes>&, bool, bool);
template std::vector<double> packed_stream_after<double>(const Pass&, const Batch&, int);
template std::vector<Lanes> packed_stream_after<Lanes>(const Pass&, const Batch&, int);
template void predict_rows<double>(const Pass&, const Start<double>&, std::vector<double>&, std::vector<double>&);
template void predict_rows<Lanes>(const Pass&, const Start<Lanes>&, std::vector<double>&, std::vector<double>&);

}  // namespace ihlab::circuit_kernel
