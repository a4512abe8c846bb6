// The GIH kernel: configuration, subsets, the per-call plan (layer-1 attention, pattern tables,
// Gram rows), the parallel loop over sequences (gih_sequence.cpp does one sequence), and the
// backward from dL/dgram or dL/dA to dL/dw. Math: gih_kernel.h.
#include "models/gih_kernel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "core/error.h"
#include "core/ops_common.h"
#include "core/parallel.h"
#include "models/gih_kernel_detail.h"
#include "models/gih_key_cache.h"

namespace ihlab {

// ---------------------------------------------------------------------------------------------
// Configuration and subsets.

void GihConfig::validate() const {
  IHLAB_CHECK(vocab >= 2 && vocab <= 256, "gih: vocab = {} is out of range (allowed: 2..256)", vocab);
  IHLAB_CHECK(heads >= 1 && heads <= 16, "gih: heads = {} is out of range (allowed: 1..16)", heads);
  IHLAB_CHECK(window >= 1 && window <= 1024, "gih: window = {} is out of range (allowed: 1..1024)", window);
  IHLAB_CHECK(max_subset >= 0 && max_subset <= heads, "gih: max_subset = {} is out of range (allowed: 0..heads = {})",
              max_subset, heads);
  IHLAB_CHECK(std::isfinite(guard) && guard >= 0, "gih: guard = {} is invalid (allowed: a finite number >= 0)", guard);
  IHLAB_CHECK(c_init != 0, "gih: c_init = 0 would make every p_S = 0/0 (allowed: any nonzero number)");
}

GihMode parse_gih_mode(const std::string& s) { return parse_enum<GihMode>(s, "model.mode"); }

GihLoss parse_gih_loss(const std::string& s, GihMode mode) {
  switch (parse_enum<GihLossChoice>(s, "model.loss")) {
    case GihLossChoice::Nll: return GihLoss::Nll;
    case GihLossChoice::CeOnProbs: return GihLoss::CeOnProbs;
    case GihLossChoice::Auto: break;
  }
  return mode == GihMode::Paper ? GihLoss::Nll : GihLoss::CeOnProbs;
}

GihConfig GihConfig::with_resolved_loss() const {
  GihConfig c = *this;
  c.loss = parse_gih_loss(enum_name(loss_choice), mode);
  return c;
}

const char* gih_loss_name(GihLoss l) { return l == GihLoss::Nll ? "nll" : "ce_on_probs"; }

std::vector<GihSubset> gih_subsets(int heads, int max_subset) {
  std::vector<GihSubset> out;
  for (int size = 0; size <= std::min(max_subset, heads); ++size) {
    // Lexicographic combinations of `size` heads out of `heads`.
    std::vector<int> idx(size);
    for (int i = 0; i < size; ++i) idx[i] = i;
    while (true) {
      GihSubset s;
      s.heads = idx;
      s.label.assign(heads, '0');
      for (int h : idx) s.label[h] = '1';
      out.push_back(std::move(s));
      int i = size - 1;
      while (i >= 0 && idx[i] == heads - size + i) --i;
      if (i < 0) break;
      ++idx[i];
      for (int k = i + 1; k < size; ++k) idx[k] = idx[k - 1] + 1;
    }
  }
  return out;
}

int gih_subset_index(const std::vector<GihSubset>& subsets, const std::string& label) {
  for (size_t i = 0; i < subsets.size(); ++i)
    if (subsets[i].label == label) return int(i);
  return -1;
}

// ---------------------------------------------------------------------------------------------
namespace {

using namespace gih_detail;

int64_t ipow(int64_t b, int e) {
  int64_t r = 1;
  for (int i = 0; i < e; ++i) r *= b;
  return r;
}

// Pattern tables: V, VB, norms of every pattern for every head, and the query x pattern Gram rows.
template <typename T>
void build_tables(Plan<T>& P) {
  const int H = P.H, M = P.M, d = P.d;
  const int64_t NP = P.NP;
  P.pm.resize(NP);
  for (int m = 0; m <= M; ++m)
    for (int64_t q = P.base[m]; q < P.base[m] + ipow(d, m); ++q) P.pm[q] = m;
  P.V.assign(H * NP * d, 0.0);
  P.VB.assign(H * NP * d, 0.0);
  P.nrm.assign(H * NP, 0.0);
  for (int h = 0; h < H; ++h) {
    for (int64_t q = 0; q < NP; ++q) {
      const int m = P.pm[q];
      const double* A = P.Arow(h, m);
      double* v = P.V.data() + (h * NP + q) * d;
      int64_t code = q - P.base[m];
      for (int k = 0; k < m; ++k, code /= d) v[code % d] += A[k];
      double n2 = 0;
      for (int x = 0; x < d; ++x) n2 += v[x] * v[x];
      const double n = std::sqrt(n2);
      P.nrm[h * NP + q] = n;
      double* vb = P.VB.data() + (h * NP + q) * d;
      for (int x = 0; x < d; ++x) vb[x] = v[x] / (n + kNormEps);
    }
  }
  P.qbase.resize(H);
  P.goff.resize(H);
  P.gsize = 0;
  for (int h = 0; h < H; ++h) {
    const int mq = int(std::clamp<int64_t>(P.L - P.off[h], 0, M));
    P.qbase[h] = P.base[mq];
    P.goff[h] = P.gsize;
    P.gsize += ipow(d, mq) * NP;
  }
  P.gram.assign(P.gsize, T(0));
  for (int h = 0; h < H; ++h) {
    const int64_t rows = (h + 1 < H ? P.goff[h + 1] : P.gsize) - P.goff[h];
    for (int64_t qr = 0; qr < rows / NP; ++qr) {
      const double* vq = P.VB.data() + (h * NP + P.qbase[h] + qr) * d;
      for (int64_t q = 0; q < NP; ++q) {
        const double* vk = P.VB.data() + (h * NP + q) * d;
        double g = 0;
        for (int x = 0; x < d; ++x) g += vq[x] * vk[x];
        P.gram[P.goff[h] + qr * NP + q] = T(std::max(g, 0.0));  // ReLU applied here
      }
    }
  }
  if (NP <= kLookupMax) {
    const int64_t rows = P.gsize / NP;
    P.gram64.assign(rows * kLookupMax, T(0));
    for (int64_t row = 0; row < rows; ++row)
      std::copy_n(P.gram.data() + row * NP, NP, P.gram64.data() + row * kLookupMax);
  }
}

template <typename T>
Plan<T> make_plan(const GihConfig& cfg, const T* w, const T* c, T a, int64_t L) {
  Plan<T> P;
  P.H = cfg.heads, P.M = cfg.window, P.d = int(cfg.vocab), P.L = L;
  P.Lp = (L + kPad - 1) / kPad * kPad;
  const int H = P.H, M = P.M, d = P.d;
  for (int h = 0; h < H; ++h) P.off.push_back(cfg.offset(h));

  // Subsets: parent (S minus its last head) and the pairs (S, h, S \ h).
  auto subs = gih_subsets(H, cfg.max_subset);
  P.nS = int(subs.size());
  auto index_of = [&](std::vector<int> heads) {
    for (int i = 0; i < P.nS; ++i)
      if (subs[i].heads == heads) return i;
    fail("gih: internal error: subset not found");
  };
  P.sub_parent.assign(P.nS, -1);
  P.sub_last.assign(P.nS, -1);
  for (int S = 1; S < P.nS; ++S) {
    auto hs = subs[S].heads;
    P.sub_last[S] = hs.back();
    hs.pop_back();
    P.sub_parent[S] = index_of(hs);
  }
  for (int h = 0; h < H; ++h)
    for (int S = 1; S < P.nS; ++S) {
      auto hs = subs[S].heads;
      auto it = std::find(hs.begin(), hs.end(), h);
      if (it == hs.end()) continue;
      hs.erase(it);
      P.pairs.push_back({S, h, index_of(hs)});
    }

  // p_S = c_S^2 / Z.
  P.Z = 0;
  for (int S = 0; S < P.nS; ++S) P.Z += double(c[S]) * double(c[S]);
  IHLAB_CHECK(P.Z > 0 && std::isfinite(P.Z), "gih: sum of c_S^2 is {} (need a positive finite number)", P.Z);
  P.pd.resize(P.nS);
  P.p.resize(P.nS);
  for (int S = 0; S < P.nS; ++S) {
    P.pd[S] = double(c[S]) * double(c[S]) / P.Z;
    P.p[S] = T(P.pd[S]);
  }
  P.a = a;

  // Layer-1 attention of a row with m valid keys: softmax of the first m window logits.
  P.A.assign(int64_t(H) * (M + 1) * M, 0.0);
  for (int h = 0; h < H; ++h)
    for (int m = 1; m <= M; ++m) {
      double* A = P.A.data() + (int64_t(h) * (M + 1) + m) * M;
      double mx = -std::numeric_limits<double>::infinity();
      for (int k = 0; k < m; ++k) mx = std::max(mx, double(w[h * M + k]));
      double s = 0;
      for (int k = 0; k < m; ++k) s += (A[k] = std::exp(double(w[h * M + k]) - mx));
      for (int k = 0; k < m; ++k) A[k] /= s;
    }

  // Table path when the pattern tables are small.
  bool table_ok = false;
  {
    int64_t np = 0, pw = 1;
    bool small = true;
    for (int m = 0; m <= M && small; ++m) {
      np += pw;
      if (m < M) pw *= d;
      small = np <= (int64_t(1) << 16);
    }
    if (small) {
      int64_t dmq = ipow(d, std::min<int64_t>(M, L));
      table_ok = dmq * np * H <= (int64_t(1) << 15);
      P.NP = np;
    }
  }
  IHLAB_CHECK(cfg.kernel != GihKernel::Table || table_ok,
              "gih: kernel = table was asked for, but the pattern tables for vocab {} and window {} are too large", d,
              M);
  P.table = cfg.kernel == GihKernel::Table || (cfg.kernel == GihKernel::Auto && table_ok);
  if (P.table) {
    // merge_keys packs a key as token * NP^H + sum_h pattern_h NP^h.
    double key_bits = std::log2(double(d));
    for (int h = 0; h < H; ++h) key_bits += std::log2(double(P.NP));
    P.mergeable = key_bits < 62;
    P.base.resize(M + 1);
    int64_t b = 0;
    for (int m = 0; m <= M; ++m) {
      P.base[m] = b;
      b += ipow(d, m);
    }
    build_tables(P);
  }
  return P;
}

inline bool tokens_ok(const int32_t* __restrict x, int n, int d) {
  int bad = 0;
  for (int i = 0; i < n; ++i) bad |= int(unsigned(x[i]) >= unsigned(d));
  return bad == 0;
}

// dW[g] += sum_u bank[row(g)][u][col(g)], and the banks back to zero.
template <typename T>
void fold_banks(const Plan<T>& P, Work<T>& wk, double* __restrict dW) {
  const int64_t NP = P.NP, rows = P.gsize / NP;
  for (int64_t row = 0; row < rows; ++row) {
    T* __restrict b = wk.bank.data() + row * kBanks * NP;
    double* __restrict out = dW + row * NP;
    for (int u = 0; u < kBanks; ++u)
      for (int64_t q = 0; q < NP; ++q) {
        out[q] += double(b[u * NP + q]);
        b[u * NP + q] = T(0);
      }
  }
}

// dL/dA (per head and row length m) -> dL/dw through the row softmaxes.
template <typename T>
void softmax_backward_to_w(const Plan<T>& P, const std::vector<double>& dA, std::vector<double>& dw) {
  const int H = P.H, M = P.M;
  dw.assign(int64_t(H) * M, 0.0);
  for (int h = 0; h < H; ++h)
    for (int m = 1; m <= M; ++m) {
      const double* A = P.Arow(h, m);
      const double* g = dA.data() + (int64_t(h) * (M + 1) + m) * M;
      double inner = 0;
      for (int k = 0; k < m; ++k) inner += A[k] * g[k];
      for (int k = 0; k < m; ++k) dw[h * M + k] += A[k] * (g[k] - inner);
    }
}

// Table path: dL/dgram -> dL/dvbar of every pattern -> dL/dv -> dL/dA.
template <typename T>
std::vector<double> gram_backward(const Plan<T>& P, const std::vector<double>& dgram) {
  const int H = P.H, M = P.M, d = P.d;
  const int64_t NP = P.NP;
  std::vector<double> dA(int64_t(H) * (M + 1) * M, 0.0), dVB(NP * d);
  for (int h = 0; h < H; ++h) {
    std::fill(dVB.begin(), dVB.end(), 0.0);
    const double* VB = P.VB.data() + h * NP * d;
    const int64_t rows = ((h + 1 < H ? P.goff[h + 1] : P.gsize) - P.goff[h]) / NP;
    for (int64_t qr = 0; qr < rows; ++qr) {
      const int64_t qp = P.qbase[h] + qr;
      const double* g = dgram.data() + P.goff[h] + qr * NP;
      for (int64_t q = 0; q < NP; ++q) {
        if (g[q] == 0) continue;
        for (int x = 0; x < d; ++x) {
          dVB[qp * d + x] += g[q] * VB[q * d + x];
          dVB[q * d + x] += g[q] * VB[qp * d + x];
        }
      }
    }
    for (int64_t q = 0; q < NP; ++q) {
      const int m = P.pm[q];
      if (m == 0) continue;
      const double n = P.nrm[h * NP + q];
      const double* v = P.V.data() + (h * NP + q) * d;
      const double* gq = dVB.data() + q * d;
      double proj = 0;
      for (int x = 0; x < d; ++x) proj += v[x] * gq[x];
      double* dAm = dA.data() + (int64_t(h) * (M + 1) + m) * M;
      int64_t code = q - P.base[m];
      for (int k = 0; k < m; ++k, code /= d) {
        const int tok = int(code % d);
        dAm[k] += gq[tok] / (n + kNormEps) - v[tok] * proj / (n * (n + kNormEps) * (n + kNormEps));
      }
    }
  }
  return dA;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

template <typename T>
GihResult<T> gih_compute(const GihConfig& cfg, const T* w, const T* c, T a, const int32_t* tokens, int64_t n,
                         int64_t row_len, const GihRequest& req) {
  cfg.validate();
  IHLAB_CHECK(row_len >= 2, "gih: sequences of {} tokens are too short (need L + 1 >= 2)", row_len);
  IHLAB_CHECK(n >= 1, "gih: empty batch");
  const int64_t L = row_len - 1;
  const Plan<T> P = make_plan(cfg, w, c, a, L);
  const bool any_grad = req.grad_w || req.grad_c || req.grad_a;

  GihResult<T> res;
  res.used_table = P.table;
  if (req.y) res.y.assign(n * P.d, T(0));
  if (req.seq_loss) res.seq_loss.assign(n, 0.0);

  // Fixed chunking (a function of n only): partial sums are added in chunk order.
  const int64_t grain = std::max<int64_t>(16, (n + 31) / 32);
  const int64_t chunks = (n + grain - 1) / grain;
  const int64_t dW_size = P.table ? P.gsize : int64_t(P.H) * (P.M + 1) * P.M;
  std::vector<ChunkAcc> acc(chunks);
  std::unique_ptr<KeyCacheEntry<T>> keys;
  if (P.table && req.reused_batch) keys = take_key_entry(P, tokens, n, grain);
  auto run_chunk = [&](int64_t ci, Work<T>& wk) {
    ChunkAcc& A = acc[ci];
    if (req.grad_c || req.grad_a) A.G.assign((P.nS + 1) * kLaneSlots, 0.0);
    if (req.grad_w) A.dW.assign(dW_size, 0.0);
    const int64_t begin = ci * grain, end = std::min(n, (ci + 1) * grain);
    KeyChunk<T>* kc = keys ? &keys->chunks[ci] : nullptr;
    if (kc && !kc->built_from(tokens + begin * row_len, end - begin, row_len))
      kc->build(P, tokens + begin * row_len, end - begin, row_len, wk);
    for (int64_t rI = begin; rI < end; ++rI) {
      const int32_t* x = tokens + rI * row_len;
      if (!tokens_ok(x, int(L + 1), P.d)) {
        A.bad = true;
        continue;
      }
      const SeqKeys<T> view = kc ? kc->view(P.H, rI - begin) : SeqKeys<T>{};
      A.keys += kc ? view.n : L;
      const double l =
          run_sequence(P, cfg, req, x, kc ? &view : nullptr, wk, A, req.y ? res.y.data() + rI * P.d : nullptr);
      A.loss += l;
      if (req.seq_loss) res.seq_loss[rI] = l;
    }
    if (req.grad_w && P.table && !kc) fold_banks(P, wk, A.dW.data());  // merged keys add into A.dW directly
  };
  // Chunks are handed out dynamically (a thread that was descheduled on a busy machine does not
  // hold up the others); every chunk writes only its own slot, so the result is the same for any
  // schedule and any thread count.
  if (chunks == 1 || omp_get_max_threads() == 1 || omp_in_parallel()) {
    FlushDenormals ftz;
    Work<T> wk(P);
    for (int64_t ci = 0; ci < chunks; ++ci) run_chunk(ci, wk);
  } else {
#pragma omp parallel
    {
      FlushDenormals ftz;
      Work<T> wk(P);
#pragma omp for schedule(dynamic, 1)
      for (int64_t ci = 0; ci < chunks; ++ci) run_chunk(ci, wk);
    }
  }

  if (keys) return_key_entry(std::move(keys));

  // Sum over chunks in chunk order; within a chunk, the kLaneSlots lanes pairwise (a fixed order).
  auto lane_sum = [](const double* l) {
    double t[kLaneSlots];
    std::copy_n(l, kLaneSlots, t);
    for (int w = kLaneSlots / 2; w >= 1; w /= 2)
      for (int u = 0; u < w; ++u) t[u] += t[u + w];
    return t[0];
  };
  double loss = 0, da = 0;
  std::vector<double> G(P.nS, 0.0), dW(req.grad_w ? dW_size : 0, 0.0);
  for (auto& A : acc) {
    IHLAB_CHECK(!A.bad, "gih: a token is outside [0, {}) (the model's vocab)", P.d);
    loss += A.loss;
    res.keys += A.keys;
    if (req.grad_a) da += lane_sum(A.G.data() + P.nS * kLaneSlots);
    if (req.grad_c)
      for (int S = 0; S < P.nS; ++S) G[S] += lane_sum(A.G.data() + S * kLaneSlots);
    if (req.grad_w)
      for (int64_t i = 0; i < dW_size; ++i) dW[i] += A.dW[i];
  }
  const double inv_n = 1.0 / double(n);
  res.loss = loss * inv_n;
  if (!any_grad) return res;
  if (req.grad_a) res.da = da * inv_n;
  if (req.grad_c) {
    // dL/dp_S = a G_S / n; p_T = c_T^2 / Z  =>  dL/dc_S = (2 c_S / Z) (dL/dp_S - sum_T p_T dL/dp_T).
    double mean = 0;
    for (int S = 0; S < P.nS; ++S) mean += P.pd[S] * G[S];
    res.dc.resize(P.nS);
    for (int S = 0; S < P.nS; ++S) res.dc[S] = 2.0 * double(c[S]) / P.Z * double(a) * inv_n * (G[S] - mean);
  }
  if (req.grad_w) {
    for (auto& v : dW) v *= inv_n;
    if (P.table) dW = gram_backward(P, dW);
    softmax_backward_to_w(P, dW, res.dw);
  }
  return res;
}

template <typename T>
Var<T> gih_loss(const Var<T>& w, const Var<T>& c, const Var<T>& a, const Batch& b, const GihConfig& cfg) {
  const int64_t nS = int64_t(gih_subsets(cfg.heads, cfg.max_subset).size());
  IHLAB_CHECK(w.shape() == (Shape{cfg.heads, cfg.window}), "gih: w has shape {}, expected [{}, {}]",
              shape_str(w.shape()), cfg.heads, cfg.window);
  IHLAB_CHECK(c.shape() == Shape{nS}, "gih: c has shape {}, expected [{}]", shape_str(c.shape()), nS);
  IHLAB_CHECK(a.value().numel() == 1, "gih: a has shape {}, expected []", shape_str(a.shape()));
  IHLAB_CHECK(int64_t(b.tokens.size()) == b.size * b.length, "gih: batch holds {} tokens, expected {} x {}",
              b.tokens.size(), b.size, b.length);
  GihRequest req;
  req.grad_w = w.requires_grad();
  req.grad_c = c.requires_grad();
  req.grad_a = a.requires_grad();
  req.reused_batch = b.reused;
  auto res = std::make_shared<GihResult<T>>(
      gih_compute(cfg, w.value().data(), c.value().data(), a.value()[0], b.tokens.data(), b.size, b.length, req));
  return make_result<T>("gih_loss", Tensor<T>::scalar(T(res->loss)), {w, c, a}, [res](Node<T>& node) {
    // The gradients were computed in the forward pass for the inputs that needed them then.
    const double g = double(node.grad[0]);
    auto* gw = ops::detail::grad_of(node, 0);
    if (gw && !res->dw.empty())
      for (int64_t i = 0; i < gw->numel(); ++i) (*gw)[i] += T(g * res->dw[i]);
    auto* gc = ops::detail::grad_of(node, 1);
    if (gc && !res->dc.empty())
      for (int64_t i = 0; i < gc->numel(); ++i) (*gc)[i] += T(g * res->dc[i]);
    if (auto* ga = ops::detail::grad_of(node, 2)) (*ga)[0] += T(g * res->da);
  });
}

#define IHLAB_GIH_INSTANTIATE(T)                                                                                  \
  template GihResult<T> gih_compute<T>(const GihConfig&, const T*, const T*, T, const int32_t*, int64_t, int64_t, \
                                       const GihRequest&);                                                        \
  template Var<T> gih_loss<T>(const Var<T>&, const Var<T>&, const Var<T>&, const Batch&, const GihConfig&);
IHLAB_INSTANTIATE_OPS(IHLAB_GIH_INSTANTIATE)
#undef IHLAB_GIH_INSTANTIATE

}  // namespace ihlab
