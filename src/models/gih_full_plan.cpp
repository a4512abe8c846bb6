// The per-call plan of the gih-full kernel (gih_full_plan.h): parameters in double, the subsets,
// and the layer-1 pattern tables, with the backward through those tables beside their forward.
// Math and notation: gih_full_model.h.
#include "models/gih_full_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/ops_common.h"

namespace ihlab::gih_full_detail {

namespace {

// Sizes, windows, slot powers, and the parameters in double; B_h = Q_h K_h^T.
//   w: [H, M];  q, k, ov: [H, d, d];  gamma, beta: [d]  ->  pl.B: [H, d, d].
template <typename T>
void plan_parameters(Plan& pl, const GihFullConfig& cfg, const GihFullParams<T>& P, int64_t L) {
  const GihConfig& g = cfg.base;
  pl.H = g.heads, pl.M = g.window, pl.d = int(g.vocab), pl.D1 = pl.d + 1, pl.S1 = pl.M + 1, pl.L = L;
  pl.self = cfg.self_attention;
  pl.eps = cfg.ln_eps;
  const int H = pl.H, M = pl.M, d = pl.d;
  for (int h = 0; h < H; ++h) pl.off.push_back(g.offset(h));
  pl.pw.resize(pl.S1 + 1);
  pl.pw[0] = 1;
  for (int s = 1; s <= pl.S1; ++s) pl.pw[s] = pl.pw[s - 1] * pl.D1;
  pl.NC = pl.pw[pl.S1];

  pl.w.assign(P.w, P.w + H * M);
  pl.OV.assign(P.ov, P.ov + H * d * d);
  pl.gamma.assign(P.gamma, P.gamma + d);
  pl.beta.assign(P.beta, P.beta + d);
  pl.B.assign(int64_t(H) * d * d, 0.0);
  for (int h = 0; h < H; ++h)
    for (int x = 0; x < d; ++x)
      for (int y = 0; y < d; ++y) {
        double s = 0;
        for (int e = 0; e < d; ++e) s += double(P.q[(h * d + x) * d + e]) * double(P.k[(h * d + y) * d + e]);
        pl.B[(h * d + x) * d + y] = s;
      }
}

// The selector: subsets S (kappa_S = kappa_parent * r_last), the pairs (S, h, S \ h) that its
// backward walks, and p_S = c_S^2 / Z.  c: [nS].
template <typename T>
void plan_selector(Plan& pl, int max_subset, const GihFullParams<T>& P) {
  const int H = pl.H;
  auto subs = gih_subsets(H, max_subset);
  pl.nS = int(subs.size());
  auto index_of = [&](const std::vector<int>& heads) {
    for (int i = 0; i < pl.nS; ++i)
      if (subs[i].heads == heads) return i;
    fail("gih-full: internal error: subset not found");
  };
  pl.sub_parent.assign(pl.nS, -1);
  pl.sub_last.assign(pl.nS, -1);
  for (int S = 1; S < pl.nS; ++S) {
    auto hs = subs[S].heads;
    pl.sub_last[S] = hs.back();
    hs.pop_back();
    pl.sub_parent[S] = index_of(hs);
  }
  for (int h = 0; h < H; ++h)
    for (int S = 1; S < pl.nS; ++S) {
      auto hs = subs[S].heads;
      auto it = std::find(hs.begin(), hs.end(), h);
      if (it == hs.end()) continue;
      hs.erase(it);
      pl.pairs.push_back({S, h, index_of(hs)});
    }
  pl.Z = 0;
  for (int S = 0; S < pl.nS; ++S) pl.Z += double(P.c[S]) * double(P.c[S]);
  IHLAB_CHECK(pl.Z > 0 && std::isfinite(pl.Z), "gih-full: sum of c_S^2 is {} (need a positive finite number)", pl.Z);
  pl.p.resize(pl.nS);
  for (int S = 0; S < pl.nS; ++S) pl.p[S] = double(P.c[S]) * double(P.c[S]) / pl.Z;
  pl.a = double(P.a);
}

// ---- One pattern c of head h: attention over its slots, value v, LayerNorm u. Forward, then
// backward.

// A: [S1] out, softmax over the attended slots of logit = w (RPE, not on self) + B[self, key].
// Returns false when the row attends to nothing (A = 0, and then v = 0).  logit: [S1] scratch.
bool pattern_attention(const Plan& pl, int h, int64_t c, double* A, double* logit) {
  const int d = pl.d, M = pl.M, S1 = pl.S1;
  const double* Bh = pl.B.data() + h * d * d;
  const int sd = pl.digit(c, 0);
  double mx = -std::numeric_limits<double>::infinity();
  for (int s = 0; s < S1; ++s) {
    int tok;
    bool valid;
    pl.slot(c, s, tok, valid);
    if (!valid) continue;
    double l = s == 0 ? 0.0 : pl.w[h * M + s - 1];
    if (sd < d && tok >= 0) l += Bh[sd * d + tok];
    logit[s] = l;
    mx = std::max(mx, l);
  }
  double z = 0;
  for (int s = 0; s < S1; ++s) {
    int tok;
    bool valid;
    pl.slot(c, s, tok, valid);
    A[s] = valid ? std::exp(logit[s] - mx) : 0.0;
    z += A[s];
  }
  if (!(z > 0)) return false;
  for (int s = 0; s < S1; ++s) A[s] /= z;
  return true;
}

// v = sum_slots A OV_h[tok, :] (0 unless `attends`), then u = gamma * nhat + beta with
// nhat = (v - mean) * rstd.  A: [S1];  v: [d] scratch;  nhat, u: [d] out;  returns rstd.
double pattern_value_norm(const Plan& pl, int h, int64_t c, bool attends, const double* A, double* v, double* nh,
                          double* u) {
  const int d = pl.d, S1 = pl.S1;
  const double* OVh = pl.OV.data() + h * d * d;
  std::fill(v, v + d, 0.0);
  for (int s = 0; attends && s < S1; ++s) {
    int tok;
    bool valid;
    pl.slot(c, s, tok, valid);
    if (valid && tok >= 0)
      for (int e = 0; e < d; ++e) v[e] += A[s] * OVh[tok * d + e];
  }
  double mu = 0;
  for (int e = 0; e < d; ++e) mu += v[e];
  mu /= d;
  double var = 0;
  for (int e = 0; e < d; ++e) var += (v[e] - mu) * (v[e] - mu);
  var /= d;
  const double r = 1.0 / std::sqrt(var + pl.eps);
  for (int e = 0; e < d; ++e) {
    nh[e] = (v[e] - mu) * r;
    u[e] = pl.gamma[e] * nh[e] + pl.beta[e];
  }
  return r;
}

// Backward of pattern_value_norm's LayerNorm: dgamma += du nhat, dbeta += du,
// dv = rstd (dn - mean(dn) - nhat mean(dn nhat)) with dn = du gamma.
//   du, nhat: [d];  dn: [d] scratch;  dv: [d] out.
void pattern_norm_backward(const Plan& P, const double* du, const double* nh, double r, double* dn, double* dv,
                           GihFullGrads& g) {
  const int d = P.d;
  double mdn = 0, mdnn = 0;
  for (int e = 0; e < d; ++e) {
    g.gamma[e] += du[e] * nh[e];
    g.beta[e] += du[e];
    dn[e] = du[e] * P.gamma[e];
    mdn += dn[e];
    mdnn += dn[e] * nh[e];
  }
  mdn /= d, mdnn /= d;
  for (int e = 0; e < d; ++e) dv[e] = r * (dn[e] - mdn - nh[e] * mdnn);
}

// Backward of the values and of pattern_attention: dOV += A dv per slot token; the softmax's
// dlogit = A (dA - <A, dA>) into w (RPE slots) and B[self token, key token].
//   A: [S1];  dv: [d];  dA: [S1] scratch;  dB: [H, d, d].
void pattern_attention_backward(const Plan& P, int h, int64_t c, const double* A, const double* dv, double* dA,
                                GihFullGrads& g, std::vector<double>& dB) {
  const int d = P.d, M = P.M, S1 = P.S1;
  const double* OVh = P.OV.data() + h * d * d;
  double inner = 0;
  for (int s = 0; s < S1; ++s) {
    int tok;
    bool valid;
    P.slot(c, s, tok, valid);
    dA[s] = 0;
    if (!valid || tok < 0) continue;
    double dot = 0;
    for (int e = 0; e < d; ++e) {
      dot += dv[e] * OVh[tok * d + e];
      g.ov[(h * d + tok) * d + e] += A[s] * dv[e];
    }
    dA[s] = dot;
    inner += A[s] * dot;
  }
  const int sd = P.digit(c, 0);
  for (int s = 0; s < S1; ++s) {
    int tok;
    bool valid;
    P.slot(c, s, tok, valid);
    if (!valid) continue;
    const double dl = A[s] * (dA[s] - inner);
    if (s > 0) g.w[h * M + s - 1] += dl;
    if (sd < d && tok >= 0) dB[(h * d + sd) * d + tok] += dl;
  }
}

}  // namespace

template <typename T>
Plan make_plan(const GihFullConfig& cfg, const GihFullParams<T>& P, int64_t L) {
  Plan pl;
  plan_parameters(pl, cfg, P, L);
  plan_selector(pl, cfg.base.max_subset, P);
  // Pattern tables.
  const int H = pl.H, d = pl.d, S1 = pl.S1;
  const int64_t NC = pl.NC;
  pl.A.assign(H * NC * S1, 0.0);
  pl.nhat.assign(H * NC * d, 0.0);
  pl.rstd.assign(H * NC, 0.0);
  pl.U.assign(H * NC * d, 0.0);
  std::vector<double> logit(S1), v(d);
  for (int h = 0; h < H; ++h)
    for (int64_t c = 0; c < NC; ++c) {
      double* A = pl.A.data() + (h * NC + c) * S1;
      const bool attends = pattern_attention(pl, h, c, A, logit.data());
      pl.rstd[h * NC + c] = pattern_value_norm(pl, h, c, attends, A, v.data(), pl.nhat.data() + (h * NC + c) * d,
                                               pl.U.data() + (h * NC + c) * d);
    }
  return pl;
}

void pattern_backward(const Plan& P, const std::vector<double>& dU, GihFullGrads& g, std::vector<double>& dB) {
  const int H = P.H, M = P.M, d = P.d, S1 = P.S1;
  const int64_t NC = P.NC;
  g.w.assign(H * M, 0.0);
  g.ov.assign(H * d * d, 0.0);
  g.gamma.assign(d, 0.0);
  g.beta.assign(d, 0.0);
  dB.assign(H * d * d, 0.0);
  std::vector<double> dn(d), dv(d), dA(S1);
  for (int h = 0; h < H; ++h)
    for (int64_t c = 0; c < NC; ++c) {
      const double* du = dU.data() + (h * NC + c) * d;
      bool any = false;
      for (int e = 0; e < d; ++e) any |= du[e] != 0;
      if (!any) continue;  // a pattern no sequence of the batch used
      pattern_norm_backward(P, du, P.nhat.data() + (h * NC + c) * d, P.rstd[h * NC + c], dn.data(), dv.data(), g);
      pattern_attention_backward(P, h, c, P.A.data() + (h * NC + c) * S1, dv.data(), dA.data(), g, dB);
    }
}

#define IHLAB_GIH_FULL_PLAN_INSTANTIATE(T) \
  template Plan make_plan<T>(const GihFullConfig&, const GihFullParams<T>&, int64_t);
IHLAB_INSTANTIATE_OPS(IHLAB_GIH_FULL_PLAN_INSTANTIATE)
#undef IHLAB_GIH_FULL_PLAN_INSTANTIATE

}  // namespace ihlab::gih_full_detail
