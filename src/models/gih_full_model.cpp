// The gih-full model: configuration checks, parameters and their initialization, readouts and
// probes. The kernel is gih_full_kernel.cpp (per sequence) and gih_full_plan.cpp (per call).
#include "models/gih_full_model.h"
#include "models/gih_readout.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "core/ops_common.h"

namespace ihlab {

void GihFullConfig::validate() const {
  base.validate();
  IHLAB_CHECK(std::isfinite(proj_init), "gih-full: proj_init = {} is invalid (allowed: a finite number)", proj_init);
  IHLAB_CHECK(std::isfinite(ln_eps) && ln_eps > 0, "gih-full: ln_eps = {} is invalid (allowed: a number > 0)", ln_eps);
  double np = 1;
  for (int s = 0; s <= base.window; ++s) np *= double(base.vocab + 1);
  IHLAB_CHECK(np <= double(1 << 20),
              "gih-full: (vocab + 1)^(window + 1) = {:.0f} layer-1 patterns is too many (allowed: at most 2^20; "
              "use a smaller vocab or window)",
              np);
}

template <typename T>
GihFullModel<T>::GihFullModel(const GihFullConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  const GihConfig& g = cfg_.base;
  subsets_ = gih_subsets(g.heads, g.max_subset);
  const int H = g.heads, M = g.window;
  const int64_t d = g.vocab;
  Tensor<T> w(Shape{H, M}, T(g.w_minus));
  for (int h = 0; h < H; ++h) {
    const int k = h - g.offset(h);  // window index of offset h + 1
    if (k >= 0 && k < M) w[h * M + k] = T(g.w_plus);
  }
  Tensor<T> eye(Shape{H, d, d}, T(0));
  for (int h = 0; h < H; ++h)
    for (int64_t x = 0; x < d; ++x) eye[(h * d + x) * d + x] = T(cfg_.proj_init);
  auto& p = this->params_;
  w_ = p.add("w", "W", std::move(w));
  q_ = p.add("q", "QK", eye.clone());
  k_ = p.add("k", "QK", eye.clone());
  ov_ = p.add("ov", "OV", eye.clone());
  gamma_ = p.add("ln_gamma", "LN", Tensor<T>(Shape{d}, T(1)));
  beta_ = p.add("ln_beta", "LN", Tensor<T>(Shape{d}, T(0)));
  c_ = p.add("c", "C", Tensor<T>(Shape{int64_t(subsets_.size())}, T(g.c_init)));
  a_ = p.add("a", "a", Tensor<T>::scalar(T(g.a_init)));
}

template <typename T>
Var<T> GihFullModel<T>::loss(const Batch& b) {
  return gih_full_loss(w_, q_, k_, ov_, gamma_, beta_, c_, a_, b, cfg_);
}

template <typename T>
GihFullResult<T> GihFullModel<T>::run(const Batch& b, const GihFullRequest& req) {
  IHLAB_CHECK(int64_t(b.tokens.size()) == b.size * b.length, "gih-full: batch holds {} tokens, expected {} x {}",
              b.tokens.size(), b.size, b.length);
  GihFullParams<T> prm{w_.value().data(),     q_.value().data(),    k_.value().data(), ov_.value().data(),
                       gamma_.value().data(), beta_.value().data(), c_.value().data(), a_.value()[0]};
  return gih_full_compute(cfg_, prm, b.tokens.data(), b.size, b.length, req);
}

template <typename T>
Tensor<T> GihFullModel<T>::predict(const Batch& b) {
  GihFullRequest req;
  req.y = true;
  auto r = run(b, req);
  return Tensor<T>(Shape{b.size, cfg_.base.vocab}, std::move(r.y));
}

template <typename T>
std::vector<double> GihFullModel<T>::sequence_losses(const Batch& b) {
  GihFullRequest req;
  req.seq_loss = true;
  return run(b, req).seq_loss;
}

template <typename T>
Scalars GihFullModel<T>::evaluate(const Batch& b) {
  if (b.size == 0) return {};
  GihFullRequest req;
  req.y = true;
  req.seq_loss = true;
  auto r = run(b, req);
  return gih_eval_scalars<T>(b, r.y.data(), r.seq_loss, cfg_.base.vocab);
}

template <typename T>
std::vector<double> GihFullModel<T>::log_p() const {
  return gih_log_p(c_.value());
}

template <typename T>
Scalars GihFullModel<T>::probes() const {
  Scalars s = gih_probes(cfg_.base, subsets_, w_.value(), c_.value(), a_.value()[0]);
  const GihConfig& g = cfg_.base;
  const int64_t d = g.vocab;
  for (int h = 0; h < g.heads; ++h) {
    double qk = 0, ov = 0;
    for (int64_t x = 0; x < d; ++x)
      for (int64_t y = 0; y < d; ++y) {
        double b = 0;
        for (int64_t e = 0; e < d; ++e)
          b += double(q_.value()[(h * d + x) * d + e]) * double(k_.value()[(h * d + y) * d + e]);
        qk += b * b;
        const double o = double(ov_.value()[(h * d + x) * d + y]);
        ov += o * o;
      }
    s.push_back({"qk_norm.h" + std::to_string(h), std::sqrt(qk)});
    s.push_back({"ov_norm.h" + std::to_string(h), std::sqrt(ov)});
  }
  return s;
}

#define IHLAB_GIH_FULL_INSTANTIATE(T) template class GihFullModel<T>;
IHLAB_INSTANTIATE_OPS(IHLAB_GIH_FULL_INSTANTIATE)
#undef IHLAB_GIH_FULL_INSTANTIATE

}  // namespace ihlab
