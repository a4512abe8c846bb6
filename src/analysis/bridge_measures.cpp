#include "analysis/bridge_measures.h"

#include "core/eigen.h"

#include "core/error.h"

namespace ihlab {

namespace {
using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Mat get(const ParamMap& p, const std::string& name, int64_t cols) {
  auto it = p.find(name);
  IHLAB_CHECK(it != p.end(),
              "bridge measures: the model has no parameter '{}' (needs a 2-layer attention-only "
              "transformer with learned positions and feature inputs)",
              name);
  const NamedMatrix& m = it->second;
  IHLAB_CHECK(cols < 0 || m.cols == cols, "bridge measures: '{}' has {} columns, expected {}", name, m.cols, cols);
  return Eigen::Map<const Mat>(m.v.data(), m.rows, m.cols);
}
}  // namespace

BridgeMeasures bridge_measures(const ParamMap& p, int64_t D) {
  Mat P = get(p, "pos.P", -1);
  const int64_t w = P.cols();
  Mat Win = get(p, "embed.W_in", w);
  IHLAB_CHECK(Win.rows() >= D, "bridge measures: embed.W_in has {} rows, fewer than D = {}", Win.rows(), D);
  Mat T = Win.topRows(D);  // [D, w]
  Mat Wq1 = get(p, "layer0.attn.Wq", w), Wk1 = get(p, "layer0.attn.Wk", w);
  Mat Wv1 = get(p, "layer0.attn.Wv", w), Wo1 = get(p, "layer0.attn.Wo", w);
  Mat Wq2 = get(p, "layer1.attn.Wq", w), Wk2 = get(p, "layer1.attn.Wk", w);
  Mat Wv2 = get(p, "layer1.attn.Wv", w), Wo2 = get(p, "layer1.attn.Wo", w);
  Mat U = get(p, "unembed.U", D);
  BridgeMeasures m;
  Mat K1 = P * Wk1, Q1 = P * Wq1;  // [L, w]
  for (int64_t i = 1; i < P.rows(); ++i) m.alpha3 += K1.row(i - 1).dot(Q1.row(i));
  Mat K2 = T * Wv1 * Wo1 * Wk2, Q2 = T * Wq2;  // [D, w]
  m.beta2 = (K2.array() * Q2.array()).sum();
  m.gamma3 = (T * Wv2 * Wo2 * U).trace();
  return m;
}

}  // namespace ihlab
