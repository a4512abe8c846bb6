#include "models/gih_readout.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ihlab {

template <typename T>
Scalars gih_eval_scalars(const Batch& b, const T* y_all, const std::vector<double>& seq_loss, int64_t d) {
  if (b.size == 0) return {};
  const int64_t W = b.length;
  int64_t correct = 0, seen = 0;
  double seen_loss = 0;
  for (int64_t i = 0; i < b.size; ++i) {
    const int32_t* x = b.tokens.data() + i * W;
    const int t = x[W - 1];
    const T* y = y_all + i * d;
    correct += int64_t(std::max_element(y, y + d) - y) == t;
    if (std::find(x, x + W - 1, t) != x + W - 1) {
      ++seen;
      seen_loss += seq_loss[i];
    }
  }
  return {{"acc", double(correct) / double(b.size)},
          {"loss_excl_unseen", seen ? seen_loss / double(seen) : std::numeric_limits<double>::quiet_NaN()},
          {"unseen_frac", double(b.size - seen) / double(b.size)}};
}

template <typename T>
std::vector<double> gih_log_p(const Tensor<T>& c) {
  std::vector<double> lc(c.numel());
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t S = 0; S < c.numel(); ++S) {
    lc[S] = 2.0 * std::log(std::abs(double(c[S])));
    mx = std::max(mx, lc[S]);
  }
  double z = 0;
  for (double v : lc) z += std::exp(v - mx);
  for (double& v : lc) v -= mx + std::log(z);
  return lc;
}

template <typename T>
Scalars gih_probes(const GihConfig& cfg, const std::vector<GihSubset>& subsets, const Tensor<T>& w, const Tensor<T>& c,
                   T a) {
  Scalars s;
  s.push_back({"a", double(a)});
  auto lp = gih_log_p(c);
  for (size_t S = 0; S < subsets.size(); ++S) s.push_back({"p." + subsets[S].label, std::exp(lp[S])});
  for (size_t S = 0; S < subsets.size(); ++S) s.push_back({"logp." + subsets[S].label, lp[S]});
  const int M = cfg.window;
  for (int h = 0; h < cfg.heads; ++h)
    for (int k = 0; k < M; ++k)
      s.push_back({"rpe.h" + std::to_string(h) + ".o" + std::to_string(cfg.offset(h) + 1 + k), double(w[h * M + k])});
  return s;
}

#define INST(T)                                                                                                       \
  template Scalars gih_eval_scalars<T>(const Batch&, const T*, const std::vector<double>&, int64_t);                  \
  template std::vector<double> gih_log_p<T>(const Tensor<T>&);                                                        \
  template Scalars gih_probes<T>(const GihConfig&, const std::vector<GihSubset>&, const Tensor<T>&, const Tensor<T>&, \
                                 T);
INST(float)
INST(double)
#undef INST

}  // namespace ihlab
