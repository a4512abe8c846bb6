// Rotary position embedding, half-split layout (see ops.h). The rotation is orthogonal, so the
// backward pass is the same rotation by the opposite angle.
#include <cmath>

#include "core/ops.h"
#include "core/ops_common.h"

namespace ihlab::ops {
namespace {

// cos and sin of i * base^(-2c / dh) for position i < L and pair c < dh / 2: [L, dh / 2] each.
// Angles are formed in double so float32 and float64 runs rotate by the same angles.
template <typename T>
void rotary_tables(int64_t L, int64_t dh, double base, std::vector<T>& cs, std::vector<T>& sn) {
  const int64_t half = dh / 2;
  cs.resize(L * half);
  sn.resize(L * half);
  for (int64_t c = 0; c < half; ++c) {
    const double inv_freq = std::pow(base, -2.0 * double(c) / double(dh));
    for (int64_t i = 0; i < L; ++i) {
      cs[i * half + c] = T(std::cos(double(i) * inv_freq));
      sn[i * half + c] = T(std::sin(double(i) * inv_freq));
    }
  }
}

// y = R(sign * angle) x on the first `cols` columns of every row of [B, L, C] (heads of dh), the
// rest copied (or, accumulating, added) unchanged. dst may not alias src.
template <typename T>
void rotate(const T* src, T* dst, bool accumulate, int64_t B, int64_t L, int64_t C, int64_t cols, int64_t dh,
            const T* cs, const T* sn, T sign) {
  const int64_t half = dh / 2;
  parallel_for(B * L, std::max<int64_t>(1, detail::kGrain / std::max<int64_t>(C, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t i = row % L;
      const T* c = cs + i * half;
      const T* s = sn + i * half;
      const T* x = src + row * C;
      T* y = dst + row * C;
      for (int64_t h0 = 0; h0 < cols; h0 += dh)
        for (int64_t p = 0; p < half; ++p) {
          const T a = x[h0 + p], b = x[h0 + p + half], si = sign * s[p];
          const T ya = a * c[p] - b * si, yb = b * c[p] + a * si;
          if (accumulate) {
            y[h0 + p] += ya;
            y[h0 + p + half] += yb;
          } else {
            y[h0 + p] = ya;
            y[h0 + p + half] = yb;
          }
        }
      for (int64_t j = cols; j < C; ++j) y[j] = accumulate ? y[j] + x[j] : x[j];
    }
  });
}

}  // namespace

template <typename T>
Var<T> rotary(const Var<T>& x, int64_t head_dim, double base, int64_t columns) {
  const Shape& s = x.shape();
  IHLAB_CHECK(s.size() == 3, "rotary: x must be [B, L, C], got {}", shape_str(s));
  const int64_t B = s[0], L = s[1], C = s[2], cols = columns == 0 ? C : columns;
  IHLAB_CHECK(head_dim >= 2 && head_dim % 2 == 0, "rotary: head_dim = {} must be even and >= 2", head_dim);
  IHLAB_CHECK(cols >= 0 && cols <= C && cols % head_dim == 0,
              "rotary: columns = {} must be a multiple of head_dim = {} within the {} columns of {}", columns, head_dim,
              C, shape_str(s));
  IHLAB_CHECK(base > 0, "rotary: base = {} must be positive", base);
  std::vector<T> cs, sn;
  rotary_tables(L, head_dim, base, cs, sn);
  Tensor<T> out(s);
  rotate(x.value().data(), out.data(), false, B, L, C, cols, head_dim, cs.data(), sn.data(), T(1));
  return make_result<T>("rotary", std::move(out), {x},
                        [B, L, C, cols, head_dim, cs = std::move(cs), sn = std::move(sn)](Node<T>& node) {
                          // dx = R^T g = R(-angle) g; the pass-through columns get g unchanged.
                          rotate(node.grad.data(), node.parents[0]->grad_buffer().data(), true, B, L, C, cols, head_dim,
                                 cs.data(), sn.data(), T(-1));
                        });
}

#define INST(T) template Var<T> rotary(const Var<T>&, int64_t, double, int64_t);
IHLAB_INSTANTIATE_OPS(INST)

}  // namespace ihlab::ops
