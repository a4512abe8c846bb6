#pragma once
// The TF(M, H, d, D) model of Chen, Sheen, Wang, Yang (2024) as one fused forward+backward kernel
// (docs/models/gih.md#the-model-tfmhdd).
//
// Notation (0-based): a sequence row holds L+1 tokens x[0..L]; x[L] is the target and is never
// read as input (the query slot's input is the zero vector). Positions i = 0..L.
//   Layer 1, head h, window offset index k = 0..M-1 <-> offset o_h + 1 + k, o_h = 0 (paper) or h
//   (code). Row i has m = clamp(i - o_h, 0, M) valid keys (the smallest offsets); its attention is
//   softmax(w[h][0..m-1]) and v_i^h = sum_k A[k] onehot(x[i - o_h - 1 - k]); m = 0 gives v = 0.
//   vbar = v / (||v|| + 1e-7).  g_h(j) = <vbar_L^h, vbar_j^h>, r_h(j) = ReLU(g_h(j)), j = 0..L-1.
//   kappa_S(j) = prod_{h in S} r_h(j); p_S = c_S^2 / sum_T c_T^2; score_j = a sum_S p_S kappa_S(j);
//   s = softmax_j(score); y = sum_j s_j onehot(x[j]).
//   Loss per sequence: nll = -log(y[t] + guard); ce_on_probs = -y[t] + log sum_k exp(y[k]).
//   The batch loss is the mean over sequences.
//
// How it is fast. A layer-1 row depends on the data only through its "pattern": the number m of
// valid keys and the m tokens under them. With P = sum_{m<=M} d^m patterns per head (40 for d = 3,
// M = 3), the table path computes every pattern's vbar once per call, then the Gram matrix between
// the query patterns (all queries of a batch have the same m) and all patterns, ReLU applied;
// per sequence, r_h(j) is one table lookup (in-register permutes when P <= 64), and the backward
// pass adds dL/dg into banked per-chunk Gram accumulators, which are pushed back through the
// tables once per call. Patterns are shared by all heads: head h at position i reads the pattern
// of position i - o_h under the paper-mode window. When the tables would be large (d^M big) the
// direct path computes each row from its (weight, token) pairs instead (O(L M^2) per head, about
// 10x slower at the default sizes). Both give the same numbers up to rounding (the tests check
// it). The per-sequence loops use explicit native-width vectors (gih_simd.h), arrays padded to whole vectors, a
// branch-free exp, and flush denormals to zero. Sequences run in parallel in chunks that depend
// only on n, each writing its own partial sums, which are added in chunk order: results do not
// depend on the thread count. The loss gradient is computed in the same pass as the loss (the
// op's backward only scales it by the upstream gradient).
#include <cstdint>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "io/fields.h"
#include "tasks/batch.h"

namespace ihlab {

enum class GihMode { Paper, Code };     // layer-1 windows: paper = offsets 1..M; code = h+1..h+M
enum class GihLoss { Nll, CeOnProbs };  // -log(y[t] + guard) | softmax cross-entropy on y itself
enum class GihKernel { Auto, Table, Direct };
// The configuration key `loss`: auto = nll in paper mode, ce_on_probs in code mode.
enum class GihLossChoice { Auto, Nll, CeOnProbs };
constexpr auto enum_choices(GihMode) {
  return std::array<EnumChoice<GihMode>, 2>{{{GihMode::Paper, "paper"}, {GihMode::Code, "code"}}};
}
constexpr auto enum_choices(GihLossChoice) {
  using L = GihLossChoice;
  return std::array<EnumChoice<L>, 3>{{{L::Auto, "auto"}, {L::Nll, "nll"}, {L::CeOnProbs, "ce_on_probs"}}};
}
constexpr auto enum_choices(GihKernel) {
  using K = GihKernel;
  return std::array<EnumChoice<K>, 3>{{{K::Auto, "auto"}, {K::Table, "table"}, {K::Direct, "direct"}}};
}

// Help texts of the keys gih and gih-full share but describe differently.
struct GihKeyHelp {
  const char* window;
  const char* w_plus;
  const char* w_minus;
};

struct GihConfig {
  int64_t vocab = 3;   // d
  int heads = 3;       // H
  int window = 3;      // M: RPE offsets per head (the authors' code uses M = H)
  int max_subset = 2;  // D: subsets S of heads with |S| <= D (empty set included)
  GihMode mode = GihMode::Paper;
  GihLoss loss = GihLoss::Nll;
  // Added to y[t] inside the log of the nll loss. A target that never occurs in the context gets
  // y[t] = 0 exactly from every model of this family, so its loss is -log(guard) (27.6 for 1e-12).
  double guard = 1e-12;
  double w_plus = 3, w_minus = 0.1, c_init = 0.01, a_init = 0.01;  // initialization
  GihKernel kernel = GihKernel::Auto;
  GihLossChoice loss_choice = GihLossChoice::Auto;  // the key `loss`; with_resolved_loss() sets `loss`

  void validate() const;                 // throws ihlab::Error naming the bad field
  GihConfig with_resolved_loss() const;  // loss from loss_choice and mode

  // The keys gih and gih-full share (vocab comes from the task).
  template <class V>
  void shared_fields(V& v, const GihKeyHelp& help) {
    v("heads", heads, "H: layer-1 heads", in(1, 16));
    v("window", window, help.window, in(1, 1024));
    v("max_subset", max_subset, "D: largest subset of heads the selector combines", in(0, 16));
    v("mode", mode, "paper: windows 1..M, loss nll; code: the authors' code");
    v("loss", loss_choice, "auto = nll in paper mode, ce_on_probs in code mode");
    v("guard", guard, "nll: loss = -log(y[target] + guard)", in(0, 1));
    v("w_plus", w_plus, help.w_plus, in(-1e6, 1e6));
    v("w_minus", w_minus, help.w_minus, in(-1e6, 1e6));
    v("c_init", c_init, "init of every c_S (nonzero)", in(-1e6, 1e6));
    v("a_init", a_init, "init of a", in(-1e6, 1e6));
  }
  template <class V>
  void fields(V& v) {
    shared_fields(v, {"M: RPE offsets per head (paper: 1..M; code: h+1..h+M; authors: M = H)",
                      "init RPE logit of head h on offset h+1", "init of every other RPE logit"});
    v("kernel", kernel, "implementation: auto, table (pattern tables) or direct");
  }
  int offset(int h) const { return mode == GihMode::Code ? h : 0; }  // o_h
};

GihMode parse_gih_mode(const std::string& s);                // "paper" | "code"
GihLoss parse_gih_loss(const std::string& s, GihMode mode);  // "nll" | "ce_on_probs" | "auto"
const char* gih_loss_name(GihLoss l);

// The subsets S of {0..H-1} with |S| <= D in canonical order: by size, then lexicographically by
// their sorted head lists. H = 3, D = 2: {}, {0}, {1}, {2}, {0,1}, {0,2}, {1,2}.
// Label: a bit string over heads, leftmost = head 0 ("000", "100", "010", "001", "110", "101", "011").
struct GihSubset {
  std::vector<int> heads;  // sorted
  std::string label;
};
std::vector<GihSubset> gih_subsets(int heads, int max_subset);
// Index of a subset (given as a label) in gih_subsets order, or -1.
int gih_subset_index(const std::vector<GihSubset>& subsets, const std::string& label);

struct GihRequest {
  bool grad_w = false, grad_c = false, grad_a = false;  // gradients of the mean loss
  bool y = false;                                       // the predictions y [n, d]
  bool seq_loss = false;                                // the loss of every sequence [n]
  // The same tokens come again in later calls (a fixed training set used whole, the validation
  // set). The table path then merges the positions of each sequence that read the same patterns
  // and hold the same token into one key with a count (their terms of the loss are equal), once
  // per batch, and runs on the merged keys: the same loss and gradients up to rounding, about
  // L / (distinct keys) times less work. Off, every position runs (merging would cost about as
  // much as it saves on a batch seen once). Results are a function of this flag and the inputs.
  bool reused_batch = false;
};

template <typename T>
struct GihResult {
  double loss = 0;             // mean over sequences
  std::vector<double> dw, dc;  // [H * M], [num subsets] (when requested)
  double da = 0;
  std::vector<T> y;              // [n, d]
  std::vector<double> seq_loss;  // [n]
  bool used_table = false;       // which path ran
  int64_t keys = 0;              // keys run over all sequences: n L unless merged (reused_batch)
};

// w: [H, M] row-major, c: [num subsets], tokens: [n, row_len] with row_len = L + 1 >= 2 and every
// token in [0, d). Throws ihlab::Error on a bad token or shape.
template <typename T>
GihResult<T> gih_compute(const GihConfig& cfg, const T* w, const T* c, T a, const int32_t* tokens, int64_t n,
                         int64_t row_len, const GihRequest& req);

// The fused op: the mean loss of the batch, differentiable in w [H, M], c [num subsets], a [].
template <typename T>
Var<T> gih_loss(const Var<T>& w, const Var<T>& c, const Var<T>& a, const Batch& b, const GihConfig& cfg);

}  // namespace ihlab
