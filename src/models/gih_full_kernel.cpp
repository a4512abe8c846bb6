// The gih-full kernel (math: gih_full_model.h): the per-sequence forward and backward over the
// plan's pattern tables (gih_full_plan.cpp), the parallel loop over sequences in fixed chunks,
// and the fused autograd op.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "core/error.h"
#include "core/ops_common.h"
#include "core/parallel.h"
#include "models/gih_full_model.h"
#include "models/gih_full_plan.h"
#include "models/key_table.h"

namespace ihlab {

namespace {

using gih_full_detail::Plan;

struct ChunkAcc {
  double loss = 0, da = 0;
  std::vector<double> G;   // [nS]: sum over sequences and keys of dscore_j kappa_S(j)
  std::vector<double> dU;  // [H * NC * d]: dL/du per pattern (sum over sequences, not yet / n)
  bool bad = false;
};

// A sequence's positions with the same token and the same pattern under every head have equal
// terms in the loss, so they run as one key with a count (Markov chains repeat themselves: several
// times fewer keys than positions in the chen2024 setting).
struct Work {
  int64_t n = 0;                             // keys of the current sequence
  std::vector<int64_t> kcode;                // [H, n]: each key's pattern
  std::vector<int64_t> qcode;                // [H]: the query's pattern
  std::vector<int32_t> ktok;                 // [n]
  std::vector<double> kcount;                // [n]: positions merged into the key
  std::vector<double> r, kap, F, s, ds, dr;  // [H, n], [nS, n], [n] x 4
  std::vector<double> y, gy;                 // [d]
  KeyTable keys;                             // the keys seen so far in the sequence
  int maxlag = 0;                            // the farthest key any head reads: off + M
  int64_t top = 0;                           // (d + 1)^(maxlag - 1): the weight of the oldest lag in the window
  bool mergeable = false;                    // the token and maxlag lags pack into 62 bits
  explicit Work(const Plan& P) {
    const int64_t L = P.L;
    kcode.resize(P.H * L), qcode.resize(P.H), ktok.resize(L), kcount.resize(L);
    r.resize(P.H * L);
    kap.resize(P.nS * L);
    F.resize(L), s.resize(L), ds.resize(L), dr.resize(L);
    y.resize(P.d), gy.resize(P.d);
    keys.reserve(L);
    for (int h = 0; h < P.H; ++h) maxlag = std::max(maxlag, P.off[h] + P.M);
    mergeable = double(maxlag + 1) * std::log2(double(P.d + 1)) < 62;
    top = 1;
    for (int l = 1; mergeable && l < maxlag; ++l) top *= P.d + 1;
  }
};

// Head h's pattern at position i (i = L: the query): x[i] (d at the query) plus, for k < M, the
// token at i - (o_h + 1 + k) (d before the sequence) times (d + 1)^(1 + k).
int64_t pattern(const Plan& P, const int32_t* x, int h, int64_t i) {
  int64_t cd = i < P.L ? x[i] : P.d;
  for (int k = 0; k < P.M; ++k) {
    const int64_t at = i - (P.off[h] + 1 + k);
    cd += P.pw[1 + k] * (at >= 0 ? x[at] : P.d);
  }
  return cd;
}

// The keys in the order of their first position (wk.n, kcode, ktok, kcount) and the query's
// patterns (qcode).  x: [L+1].
// A position's key is its token and the maxlag tokens before it (base d + 1, d before the
// sequence), kept as a rolling window; every head's pattern is a function of it, so the patterns
// are computed once per key, not per position.
void merge_keys(const Plan& P, const int32_t* x, Work& wk) {
  const int64_t L = P.L, D1 = P.d + 1;
  const int H = P.H;
  for (int h = 0; h < H; ++h) wk.qcode[h] = pattern(P, x, h, L);
  wk.keys.clear();
  int64_t window = wk.top * D1 - 1;  // lags 1..maxlag, lag 1 lowest: all d before the sequence
  for (int64_t j = 0; j < L; ++j) {
    const int64_t key = wk.mergeable ? x[j] + D1 * window : j;
    if (wk.mergeable) {
      const int64_t oldest = j - wk.maxlag >= 0 ? x[j - wk.maxlag] : P.d;
      window = x[j] + D1 * (window - oldest * wk.top);
    }
    bool added;
    const int32_t u = wk.keys.insert(key, added);
    if (!added) {
      wk.kcount[u] += 1.0;
      continue;
    }
    for (int h = 0; h < H; ++h) wk.kcode[h * L + u] = pattern(P, x, h, j);  // stride L for now
    wk.ktok[u] = x[j];
    wk.kcount[u] = 1.0;
  }
  const int64_t n = wk.keys.size();
  for (int h = 1; h < H; ++h)  // to stride n
    std::copy_n(wk.kcode.data() + h * L, n, wk.kcode.data() + h * n);
  wk.n = n;
}

// ---- Layer 1: r_h(key) = ReLU(<u_L^h, u_key^h>).  wk.r: [H, n] out.
void layer1(const Plan& P, Work& wk) {
  const int64_t NC = P.NC, n = wk.n;
  const int d = P.d;
  for (int h = 0; h < P.H; ++h) {
    const int64_t* cd = wk.kcode.data() + h * n;
    const double* Uh = P.U.data() + h * NC * d;
    const double* uq = Uh + wk.qcode[h] * d;
    double* r = wk.r.data() + h * n;
    for (int64_t j = 0; j < n; ++j) {
      const double* uj = Uh + cd[j] * d;
      double g = 0;
      for (int e = 0; e < d; ++e) g += uq[e] * uj[e];
      r[j] = std::max(g, 0.0);
    }
  }
}

// Backward of layer1 from ds (dL/dscore of each key): dL/dg_h(j) = a ds_j sum_{S ni h} p_S
// kappa_{S \ h}(j) where g_h(j) > 0, then into dL/du of the key patterns and of the query pattern.
//   wk.ds, wk.kap, wk.r, wk.kcode: as made by the forward;  acc.dU: [H, NC, d] added to.
void layer1_backward(const Plan& P, Work& wk, ChunkAcc& acc) {
  const int64_t n = wk.n, NC = P.NC;
  const int d = P.d;
  const double a = P.a;
  const double* ds = wk.ds.data();
  double* dr = wk.dr.data();
  size_t pi = 0;
  for (int h = 0; h < P.H; ++h) {
    std::fill_n(dr, n, 0.0);
    for (; pi < P.pairs.size() && P.pairs[pi].h == h; ++pi) {
      const double pS = P.p[P.pairs[pi].S];
      const double* km = wk.kap.data() + P.pairs[pi].Sm * n;
      for (int64_t j = 0; j < n; ++j) dr[j] += pS * km[j];
    }
    const int64_t* cd = wk.kcode.data() + h * n;
    const double* Uh = P.U.data() + h * NC * d;
    const double* uq = Uh + wk.qcode[h] * d;
    const double* rh = wk.r.data() + h * n;
    double* dUh = acc.dU.data() + h * NC * d;
    double dq[256] = {};
    for (int64_t j = 0; j < n; ++j) {
      if (!(rh[j] > 0)) continue;
      const double dg = a * ds[j] * dr[j];
      const double* uj = Uh + cd[j] * d;
      double* duj = dUh + cd[j] * d;
      for (int e = 0; e < d; ++e) {
        duj[e] += dg * uq[e];
        dq[e] += dg * uj[e];
      }
    }
    double* duq = dUh + wk.qcode[h] * d;
    for (int e = 0; e < d; ++e) duq[e] += dq[e];
  }
}

// ---- Layer 2: kappa_S, F = sum_S p_S kappa_S, s = softmax(a F) over the positions (a key
// weighs count exp(a F)), y = sum_j s_j onehot(x_j).  wk.r: [H, n] -> wk.kap: [nS, n], wk.F,
// wk.s: [n], wk.y: [d].
void layer2(const Plan& P, Work& wk) {
  const int64_t n = wk.n;
  double* kap = wk.kap.data();
  double* F = wk.F.data();
  double* s = wk.s.data();
  std::fill_n(kap, n, 1.0);
  std::fill_n(F, n, P.p[0]);
  for (int S = 1; S < P.nS; ++S) {
    const double* kp = kap + P.sub_parent[S] * n;
    const double* rh = wk.r.data() + P.sub_last[S] * n;
    double* ks = kap + S * n;
    for (int64_t j = 0; j < n; ++j) {
      ks[j] = kp[j] * rh[j];
      F[j] += P.p[S] * ks[j];
    }
  }
  const double a = P.a;
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, a * F[j]);
  double z = 0;
  for (int64_t j = 0; j < n; ++j) z += (s[j] = wk.kcount[j] * std::exp(a * F[j] - mx));
  for (int64_t j = 0; j < n; ++j) s[j] /= z;
  double* y = wk.y.data();
  std::fill_n(y, P.d, 0.0);
  for (int64_t j = 0; j < n; ++j) y[wk.ktok[j]] += s[j];
}

// Backward of layer2 from gy = dL/dy down to ds = dL/dscore_j = s_j (gy[x_j] - <y, gy>); adds
// the selector's and a's parts: acc.G[S] += sum_j ds_j kappa_S(j), acc.da += sum_j ds_j F_j.
//   wk.y, wk.gy: [d];  wk.s, wk.F: [n];  wk.kap: [nS, n]  ->  wk.ds: [n].
void layer2_backward(const Plan& P, Work& wk, ChunkAcc& acc) {
  const int64_t n = wk.n;
  const double* y = wk.y.data();
  const double* gy = wk.gy.data();
  const double* s = wk.s.data();
  double ybar = 0;
  for (int k = 0; k < P.d; ++k) ybar += y[k] * gy[k];
  double* ds = wk.ds.data();
  for (int64_t j = 0; j < n; ++j) ds[j] = s[j] * (gy[wk.ktok[j]] - ybar);
  for (int64_t j = 0; j < n; ++j) acc.da += ds[j] * wk.F[j];
  for (int S = 0; S < P.nS; ++S) {
    const double* ks = wk.kap.data() + S * n;
    double gs = 0;
    for (int64_t j = 0; j < n; ++j) gs += ds[j] * ks[j];
    acc.G[S] += gs;
  }
}

// ---- The loss of one sequence and gy = dL/dy.  y: [d];  gy: [d] out;  t: the target token.
double loss_and_dy(const GihConfig& cfg, int d, int t, const double* y, double* gy) {
  double loss;
  if (cfg.loss == GihLoss::Nll) {
    const double yt = y[t] + cfg.guard;
    loss = -std::log(yt);
    std::fill_n(gy, d, 0.0);
    gy[t] = -1.0 / yt;
  } else {
    double zz = 0;
    for (int k = 0; k < d; ++k) zz += std::exp(y[k]);
    loss = std::log(zz) - y[t];
    for (int k = 0; k < d; ++k) gy[k] = std::exp(y[k]) / zz - (k == t ? 1.0 : 0.0);
  }
  return loss;
}

// One sequence x [L+1]: its loss; with grad, its gradient parts added into acc.
double run_sequence(const Plan& P, const GihFullConfig& cfg, bool grad, const int32_t* x, Work& wk, ChunkAcc& acc) {
  merge_keys(P, x, wk);
  layer1(P, wk);
  layer2(P, wk);
  const double loss = loss_and_dy(cfg.base, P.d, x[P.L], wk.y.data(), wk.gy.data());
  if (!grad) return loss;
  layer2_backward(P, wk, acc);
  layer1_backward(P, wk, acc);
  return loss;
}

inline bool tokens_ok(const int32_t* x, int64_t n, int d) {
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) ok &= unsigned(x[i]) < unsigned(d);
  return ok;
}

// ---- The batch: sequences in fixed chunks (in parallel), each chunk with its own sums.
//   tokens: [n, L+1];  res.y: [n, d], res.seq_loss: [n] (when requested) written.
template <typename T>
std::vector<ChunkAcc> run_chunks(const Plan& P, const GihFullConfig& cfg, const int32_t* tokens, int64_t n,
                                 int64_t row_len, const GihFullRequest& req, GihFullResult<T>& res) {
  const int d = P.d;
  const int64_t grain = std::max<int64_t>(16, (n + 31) / 32);
  const int64_t chunks = (n + grain - 1) / grain;
  std::vector<ChunkAcc> acc(chunks);
  parallel_for(chunks, 1, [&](int64_t cb, int64_t ce) {
    Work wk(P);
    for (int64_t ci = cb; ci < ce; ++ci) {
      ChunkAcc& A = acc[ci];
      if (req.grad) {
        A.G.assign(P.nS, 0.0);
        A.dU.assign(P.H * P.NC * d, 0.0);
      }
      const int64_t end = std::min(n, (ci + 1) * grain);
      for (int64_t i = ci * grain; i < end; ++i) {
        const int32_t* x = tokens + i * row_len;
        if (!tokens_ok(x, row_len, d)) {
          A.bad = true;
          continue;
        }
        const double l = run_sequence(P, cfg, req.grad, x, wk, A);
        A.loss += l;
        if (req.seq_loss) res.seq_loss[i] = l;
        if (req.y)
          for (int k = 0; k < d; ++k) res.y[i * d + k] = T(wk.y[k]);
      }
    }
  });
  return acc;
}

// The chunks' sums added in chunk order (so results do not depend on the thread count).
ChunkAcc sum_chunks(const Plan& P, const std::vector<ChunkAcc>& acc, bool grad) {
  ChunkAcc tot;
  tot.G.assign(P.nS, 0.0);
  tot.dU.assign(grad ? P.H * P.NC * P.d : 0, 0.0);
  for (auto& A : acc) {
    IHLAB_CHECK(!A.bad, "gih-full: a token is outside [0, {}) (the model's vocab)", P.d);
    tot.loss += A.loss;
    if (!grad) continue;
    tot.da += A.da;
    for (int S = 0; S < P.nS; ++S) tot.G[S] += A.G[S];
    for (size_t i = 0; i < tot.dU.size(); ++i) tot.dU[i] += A.dU[i];
  }
  return tot;
}

// The parameter gradients of the mean loss from the batch sums: a and c directly (dp_S/dc_T of
// the normalized mixture), the rest through the pattern tables and B = Q K^T (dQ = dB K,
// dK = dB^T Q).  tot.dU is scaled by 1/n in place.
template <typename T>
void parameter_grads(const Plan& P, const GihFullParams<T>& prm, ChunkAcc& tot, double inv_n, GihFullGrads& g) {
  const int H = P.H, d = P.d, nS = P.nS;
  g.a = tot.da * inv_n;
  double mean = 0;
  for (int S = 0; S < nS; ++S) mean += P.p[S] * tot.G[S];
  g.c.resize(nS);
  for (int S = 0; S < nS; ++S) g.c[S] = 2.0 * double(prm.c[S]) / P.Z * P.a * inv_n * (tot.G[S] - mean);
  for (auto& v : tot.dU) v *= inv_n;
  std::vector<double> dB;
  gih_full_detail::pattern_backward(P, tot.dU, g, dB);
  g.q.assign(H * d * d, 0.0);
  g.k.assign(H * d * d, 0.0);
  for (int h = 0; h < H; ++h)
    for (int x = 0; x < d; ++x)
      for (int y = 0; y < d; ++y) {
        const double gb = dB[(h * d + x) * d + y];
        if (gb == 0) continue;
        for (int e = 0; e < d; ++e) {
          g.q[(h * d + x) * d + e] += gb * double(prm.k[(h * d + y) * d + e]);
          g.k[(h * d + y) * d + e] += gb * double(prm.q[(h * d + x) * d + e]);
        }
      }
}

}  // namespace

template <typename T>
GihFullResult<T> gih_full_compute(const GihFullConfig& cfg, const GihFullParams<T>& prm, const int32_t* tokens,
                                  int64_t n, int64_t row_len, const GihFullRequest& req) {
  cfg.validate();
  IHLAB_CHECK(row_len >= 2, "gih-full: sequences of {} tokens are too short (need L + 1 >= 2)", row_len);
  IHLAB_CHECK(n >= 1, "gih-full: empty batch");
  const Plan P = gih_full_detail::make_plan(cfg, prm, row_len - 1);
  GihFullResult<T> res;
  if (req.y) res.y.assign(n * P.d, T(0));
  if (req.seq_loss) res.seq_loss.assign(n, 0.0);
  ChunkAcc tot = sum_chunks(P, run_chunks(P, cfg, tokens, n, row_len, req, res), req.grad);
  const double inv_n = 1.0 / double(n);
  res.loss = tot.loss * inv_n;
  if (req.grad) parameter_grads(P, prm, tot, inv_n, res.grad);
  return res;
}

template <typename T>
Var<T> gih_full_loss(const Var<T>& w, const Var<T>& q, const Var<T>& k, const Var<T>& ov, const Var<T>& gamma,
                     const Var<T>& beta, const Var<T>& c, const Var<T>& a, const Batch& b, const GihFullConfig& cfg) {
  const int64_t H = cfg.base.heads, M = cfg.base.window, d = cfg.base.vocab;
  const int64_t nS = int64_t(gih_subsets(cfg.base.heads, cfg.base.max_subset).size());
  auto check = [](const char* what, const Var<T>& v, const Shape& s) {
    IHLAB_CHECK(v.shape() == s, "gih-full: {} has shape {}, expected {}", what, shape_str(v.shape()), shape_str(s));
  };
  check("w", w, {H, M});
  check("q", q, {H, d, d});
  check("k", k, {H, d, d});
  check("ov", ov, {H, d, d});
  check("ln_gamma", gamma, {d});
  check("ln_beta", beta, {d});
  check("c", c, {nS});
  IHLAB_CHECK(a.value().numel() == 1, "gih-full: a has shape {}, expected []", shape_str(a.shape()));
  IHLAB_CHECK(int64_t(b.tokens.size()) == b.size * b.length, "gih-full: batch holds {} tokens, expected {} x {}",
              b.tokens.size(), b.size, b.length);
  const std::vector<Var<T>> in = {w, q, k, ov, gamma, beta, c, a};
  GihFullRequest req;
  for (auto& v : in) req.grad |= v.requires_grad();
  GihFullParams<T> prm{w.value().data(),     q.value().data(),    k.value().data(), ov.value().data(),
                       gamma.value().data(), beta.value().data(), c.value().data(), a.value()[0]};
  auto res = std::make_shared<GihFullResult<T>>(gih_full_compute(cfg, prm, b.tokens.data(), b.size, b.length, req));
  return make_result<T>("gih_full_loss", Tensor<T>::scalar(T(res->loss)), in, [res](Node<T>& node) {
    const double g = double(node.grad[0]);
    const GihFullGrads& G = res->grad;
    const std::vector<double>* parts[] = {&G.w, &G.q, &G.k, &G.ov, &G.gamma, &G.beta, &G.c};
    for (size_t i = 0; i < 7; ++i)
      if (auto* gp = ops::detail::grad_of(node, i))
        for (int64_t e = 0; e < gp->numel(); ++e) (*gp)[e] += T(g * (*parts[i])[e]);
    if (auto* ga = ops::detail::grad_of(node, 7)) (*ga)[0] += T(g * G.a);
  });
}

#define IHLAB_GIH_FULL_INSTANTIATE(T)                                                                          \
  template GihFullResult<T> gih_full_compute<T>(const GihFullConfig&, const GihFullParams<T>&, const int32_t*, \
                                                int64_t, int64_t, const GihFullRequest&);                      \
  template Var<T> gih_full_loss<T>(const Var<T>&, const Var<T>&, const Var<T>&, const Var<T>&, const Var<T>&,  \
                                   const Var<T>&, const Var<T>&, const Var<T>&, const Batch&, const GihFullConfig&);
IHLAB_INSTANTIATE_OPS(IHLAB_GIH_FULL_INSTANTIATE)
#undef IHLAB_GIH_FULL_INSTANTIATE

}  // namespace ihlab
