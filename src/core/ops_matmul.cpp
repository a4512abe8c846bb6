// Matrix products through Eigen. Eigen's own threading is off (EIGEN_DONT_PARALLELIZE): we
// parallelize over the batch ourselves, so the summation order never depends on the thread count.
#include "core/ops.h"
#include "core/ops_common.h"

#include "core/eigen.h"

namespace ihlab::ops {
namespace {

template <typename T>
using Mat = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
template <typename T>
using CMat = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

// c (+)= op(a) @ op(b) for one matrix; a stored [ra, ca], b stored [rb, cb], c [m, n].
template <typename T>
void gemm(const T* a, int64_t ra, int64_t ca, bool ta, const T* b, int64_t rb, int64_t cb, bool tb, T* c, int64_t m,
          int64_t n, bool accumulate) {
  CMat<T> A(a, ra, ca), B(b, rb, cb);
  Mat<T> C(c, m, n);
  if (!accumulate) C.setZero();
  if (!ta && !tb)
    C.noalias() += A * B;
  else if (ta && !tb)
    C.noalias() += A.transpose() * B;
  else if (!ta && tb)
    C.noalias() += A * B.transpose();
  else
    C.noalias() += A.transpose() * B.transpose();
}

struct BmmDims {
  int64_t batch, m, k, n, ra, ca, rb, cb;
};

template <typename T>
BmmDims bmm_dims(const char* op, const Shape& sa, const Shape& sb, bool ta, bool tb) {
  IHLAB_CHECK(sa.size() >= 2 && sa.size() == sb.size(), "{}: need equal ranks >= 2, got {} and {}", op, shape_str(sa),
              shape_str(sb));
  IHLAB_CHECK(std::equal(sa.begin(), sa.end() - 2, sb.begin()), "{}: leading dims differ: {} vs {}", op, shape_str(sa),
              shape_str(sb));
  BmmDims d;
  d.ra = sa[sa.size() - 2], d.ca = sa.back(), d.rb = sb[sb.size() - 2], d.cb = sb.back();
  d.m = ta ? d.ca : d.ra;
  d.k = ta ? d.ra : d.ca;
  int64_t kb = tb ? d.cb : d.rb;
  d.n = tb ? d.rb : d.cb;
  IHLAB_CHECK(d.k == kb, "{}: inner dims differ: {}{} @ {}{}", op, shape_str(sa), ta ? "^T" : "", shape_str(sb),
              tb ? "^T" : "");
  d.batch = numel_of(Shape(sa.begin(), sa.end() - 2));
  return d;
}

// Forward and backward of a (batched) product; batch == 1 with 2-D shapes is plain matmul.
template <typename T>
Var<T> product(const char* op, const Var<T>& a, const Var<T>& b, bool ta, bool tb) {
  BmmDims d = bmm_dims<T>(op, a.shape(), b.shape(), ta, tb);
  Shape out_shape(a.shape().begin(), a.shape().end() - 2);
  out_shape.push_back(d.m);
  out_shape.push_back(d.n);
  Tensor<T> out(out_shape);
  const T *pa = a.value().data(), *pb = b.value().data();
  T* pc = out.data();
  int64_t sa = d.ra * d.ca, sb = d.rb * d.cb, sc = d.m * d.n;
  // Enough products per chunk that a parallel region pays for itself (tiny bmm stays serial).
  int64_t grain = std::max<int64_t>(1, detail::kGrain / std::max<int64_t>(d.m * d.n * d.k, 1));
  parallel_for(d.batch, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      gemm(pa + i * sa, d.ra, d.ca, ta, pb + i * sb, d.rb, d.cb, tb, pc + i * sc, d.m, d.n, false);
  });

  return make_result<T>(op, std::move(out), {a, b}, [d, ta, tb, sa, sb, sc, grain](Node<T>& n) {
    const T* g = n.grad.data();
    const T* va = n.parents[0]->value.data();
    const T* vb = n.parents[1]->value.data();
    Tensor<T>* ga = detail::grad_of(n, 0);
    Tensor<T>* gb = detail::grad_of(n, 1);
    parallel_for(d.batch, grain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const T *gi = g + i * sc, *ai = va + i * sa, *bi = vb + i * sb;
        // C = op(A) op(B). dA stored shape [ra, ca]:
        //   !ta: dA = G op(B)^T   ta: dA = (G op(B)^T)^T = op(B) G^T
        if (ga) {
          T* dA = ga->data() + i * sa;
          if (!ta)
            gemm(gi, d.m, d.n, false, bi, d.rb, d.cb, !tb, dA, d.ra, d.ca, true);
          else
            gemm(bi, d.rb, d.cb, tb, gi, d.m, d.n, true, dA, d.ra, d.ca, true);
        }
        //   !tb: dB = op(A)^T G   tb: dB = G^T op(A)
        if (gb) {
          T* dB = gb->data() + i * sb;
          if (!tb)
            gemm(ai, d.ra, d.ca, !ta, gi, d.m, d.n, false, dB, d.rb, d.cb, true);
          else
            gemm(gi, d.m, d.n, true, ai, d.ra, d.ca, ta, dB, d.rb, d.cb, true);
        }
      }
    });
  });
}

}  // namespace

template <typename T>
Var<T> matmul(const Var<T>& a, const Var<T>& b, bool ta, bool tb) {
  IHLAB_CHECK(a.value().ndim() == 2 && b.value().ndim() == 2, "matmul: need 2-D operands, got {} and {}",
              shape_str(a.shape()), shape_str(b.shape()));
  return product("matmul", a, b, ta, tb);
}

template <typename T>
Var<T> bmm(const Var<T>& a, const Var<T>& b, bool ta, bool tb) {
  return product("bmm", a, b, ta, tb);
}

template <typename T>
Var<T> linear(const Var<T>& x, const Var<T>& w) {
  IHLAB_CHECK(w.value().ndim() == 2 && x.value().ndim() >= 1 && x.shape().back() == w.dim(0),
              "linear: x {} does not match weight {} (need x[..., k], w[k, n])", shape_str(x.shape()),
              shape_str(w.shape()));
  Shape out = x.shape();
  out.back() = w.dim(1);
  int64_t rows = x.value().numel() / w.dim(0);
  auto x2 = reshape(x, Shape{rows, w.dim(0)});
  return reshape(matmul(x2, w), out);
}

#define INST(T)                                                     \
  template Var<T> matmul(const Var<T>&, const Var<T>&, bool, bool); \
  template Var<T> bmm(const Var<T>&, const Var<T>&, bool, bool);    \
  template Var<T> linear(const Var<T>&, const Var<T>&);
IHLAB_INSTANTIATE_OPS(INST)

}  // namespace ihlab::ops
