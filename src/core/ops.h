#pragma once
// The differentiable ops. Each is coarse and fused (one kernel forward, one backward), and its
// backward sits beside its forward in ops_<family>.cpp. Shapes are written [dims] in comments.
//
// Broadcasting (elementwise binary ops, softmax bias/mask): the smaller operand's shape must equal
// a suffix of the larger's, e.g. [B, L, D] + [D] or [B, H, L, L] + [H, L, L]; its gradient is the
// sum over the leading dimensions it was repeated along.
#include "core/autograd.h"

#include <cstdint>
#include <vector>

namespace ihlab::ops {

// ---- matrix products (ops_matmul.cpp) ----
// a: [m, k] (or [k, m] if trans_a), b: [k, n] (or [n, k] if trans_b) -> [m, n]
template <typename T>
Var<T> matmul(const Var<T>& a, const Var<T>& b, bool trans_a = false, bool trans_b = false);
// a: [..., m, k], b: [..., k, n] (same leading dims) -> [..., m, n]; transposes as above.
template <typename T>
Var<T> bmm(const Var<T>& a, const Var<T>& b, bool trans_a = false, bool trans_b = false);
// x: [..., k] @ w: [k, n] -> [..., n]  (a linear layer; leading dims flattened)
template <typename T>
Var<T> linear(const Var<T>& x, const Var<T>& w);

// ---- elementwise (ops_elementwise.cpp) ----
template <typename T>
Var<T> add(const Var<T>& a, const Var<T>& b);  // broadcast suffix
template <typename T>
Var<T> sub(const Var<T>& a, const Var<T>& b);
template <typename T>
Var<T> mul(const Var<T>& a, const Var<T>& b);
template <typename T>
Var<T> div(const Var<T>& a, const Var<T>& b);
template <typename T>
Var<T> scale(const Var<T>& a, double s);
template <typename T>
Var<T> add_scalar(const Var<T>& a, double s);
template <typename T>
Var<T> square(const Var<T>& a);
template <typename T>
Var<T> exp(const Var<T>& a);
template <typename T>
Var<T> log(const Var<T>& a);
template <typename T>
Var<T> relu(const Var<T>& a);
template <typename T>
Var<T> gelu(const Var<T>& a);  // exact (erf) form, as torch's default

// ---- shape (ops_shape.cpp) ----
template <typename T>
Var<T> reshape(const Var<T>& a, Shape s);
template <typename T>
Var<T> transpose_last2(const Var<T>& a);  // [..., m, n] -> [..., n, m]
// Concatenate along the last axis: [..., n_i] -> [..., sum n_i]
template <typename T>
Var<T> concat_last(const std::vector<Var<T>>& parts);

// ---- reductions (ops_reduce.cpp) ----
template <typename T>
Var<T> sum(const Var<T>& a);  // -> []
template <typename T>
Var<T> mean(const Var<T>& a);  // -> []
template <typename T>
Var<T> sum_last(const Var<T>& a);  // [..., n] -> [...]

// ---- attention pieces (ops_attention.cpp) ----
// Softmax over the last axis of (logits + bias), restricted to entries where mask != 0.
// logits: [..., m, n]; bias: a suffix shape of logits (or undefined); mask: uint8 with a suffix
// shape (or empty = all valid). Rows with no valid entry output all zeros (not NaN).
template <typename T>
Var<T> masked_softmax(const Var<T>& logits, const Var<T>& bias, const std::vector<uint8_t>& mask = {},
                      const Shape& mask_shape = {});
// Relative-position bias: w: [H, K] -> [H, L, L] with out[h, i, j] = w[h, i - j] if 0 <= i - j < K,
// else 0. Pair with a banded causal mask (band_mask) so positions outside the window are excluded.
template <typename T>
Var<T> relative_bias(const Var<T>& w, int64_t length);
// uint8 [L, L] mask: 1 where lo <= i - j <= hi (e.g. lo=0 causal with self, lo=1 strictly causal).
std::vector<uint8_t> band_mask(int64_t length, int64_t lo, int64_t hi);

// ---- normalization (ops_norm.cpp) ----
// x / (||x||_2 + eps) along the last axis.
template <typename T>
Var<T> l2_normalize(const Var<T>& x, double eps = 1e-7);
// (x - mean) / sqrt(var + eps) * gamma + beta along the last axis; gamma, beta: [d] (may be undefined).
template <typename T>
Var<T> layer_norm(const Var<T>& x, const Var<T>& gamma, const Var<T>& beta, double eps = 1e-5);

// ---- embeddings and losses (ops_loss.cpp) ----
// table: [V, D], ids: any shape (given as ids_shape) -> [ids_shape..., D]
template <typename T>
Var<T> embedding(const Var<T>& table, const std::vector<int32_t>& ids, const Shape& ids_shape);
// Constant one-hot rows: ids -> [ids_shape..., V]; id < 0 gives a zero row.
template <typename T>
Tensor<T> one_hot(const std::vector<int32_t>& ids, const Shape& ids_shape, int64_t vocab);
// Mean over rows with target >= 0 of -log softmax(logits)[target]. logits: [N, V] (leading dims flattened).
template <typename T>
Var<T> cross_entropy(const Var<T>& logits, const std::vector<int32_t>& targets);
// Mean over rows with target >= 0 of -log(p[target] + guard). probs: [N, V].
template <typename T>
Var<T> nll_prob(const Var<T>& probs, const std::vector<int32_t>& targets, double guard = 1e-12);
// Mean of (a - b)^2 over all elements; b is a constant.
template <typename T>
Var<T> mse(const Var<T>& a, const Tensor<T>& b);

// ---- fused multi-head attention (ops_mha.cpp) ----
// Banded causal multi-head attention as one op. For sequence b and head h:
//   S = scale * Q_h K_h^T + bias[h]                        [L, L]
//   P = softmax of each row over the keys j with lo <= i - j <= hi (a row with none is all zero)
//   O_h = (P * drop[b, h]) V_h                             [L, dh]
// qkv: [B, L, 3 * H * dh] = [Q | K | V], each block with head h in columns h*dh .. h*dh + dh - 1
// (what norm_linear with W_Q, W_K, W_V gives; no head transposes). O: [B, L, H * dh], same head
// layout. bias: [H, L, L] or undefined (only entries inside the band are read). drop: undefined or
// constant [B, H, L, L] multipliers (a dropout mask divided by the keep probability). If probs is
// given it receives P [B, H, L, L] (before dropout). lo = 0 lets a query attend to itself, lo = 1
// only to earlier positions; hi >= L - 1 means no window.
struct BandedAttention {
  int64_t heads = 1;
  int64_t lo = 0, hi = 0;  // allowed offsets i - j
  double scale = 1.0;      // usually 1 / sqrt(dh)
};
template <typename T>
Var<T> banded_attention(const Var<T>& qkv, const Var<T>& bias, const BandedAttention& spec,
                        const Tensor<T>& drop = Tensor<T>(), Tensor<T>* probs = nullptr);

// ---- rotary position embedding (ops_rotary.cpp) ----
// RoPE (Su et al. 2021) in the half-split layout of GPT-NeoX and Hugging Face Llama
// ("rotate_half"), not the interleaved one of the paper and Mesh-TF: within each head of dh = 2m
// columns, column c < m pairs with column c + m, and at position i the pair turns by the angle
// i * base^(-2c / dh):
//   y[c] = x[c] cos - x[c + m] sin,   y[c + m] = x[c + m] cos + x[c] sin.
// x: [B, L, C], position i = index along L; the first `columns` columns of each row (a multiple of
// head_dim; 0 = all C) are rotated head by head, the rest pass through (e.g. Q and K of a packed
// [Q | K | V] with columns = 2 H dh). -> same shape.
template <typename T>
Var<T> rotary(const Var<T>& x, int64_t head_dim, double base = 10000.0, int64_t columns = 0);

// ---- fused transformer block pieces (ops_block.cpp) ----
// y = [h W_1 + b_1 | h W_2 + b_2 | ...] with h = layer_norm(x, gamma, beta, eps) if norm, else
// h = x: a LayerNorm followed by linear maps whose outputs are concatenated (the q|k|v projection,
// the final norm + unembedding), then the exact GELU if gelu (an MLP's first layer), in one op.
// x: [..., d]; gamma, beta: [d] or undefined; W_i: [d, n_i]; b: empty or one bias [n_i] (or
// undefined) per weight -> [..., sum n_i]. The float GELU uses Eigen's vectorized erf (a rational
// fit within a couple of ulp); double uses std::erf, like ops::gelu.
template <typename T>
Var<T> norm_linear(const Var<T>& x, bool norm, const Var<T>& gamma, const Var<T>& beta, double eps,
                   const std::vector<Var<T>>& W, const std::vector<Var<T>>& b = {}, bool gelu = false);
// y = x + (a W + b) * m: a linear branch added to a residual stream, with optional constant
// multipliers m on the branch (a dropout mask). x: [..., n]; a: [..., k] (same rows); W: [k, n];
// b: [n] or undefined; m: undefined or x's shape.
template <typename T>
Var<T> linear_residual(const Var<T>& x, const Var<T>& a, const Var<T>& W, const Var<T>& b,
                       const Tensor<T>& m = Tensor<T>());

}  // namespace ihlab::ops
