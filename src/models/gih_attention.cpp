#include "models/gih_attention.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace ihlab {

std::vector<AttentionMap> gih_attention_maps(const GihConfig& cfg, const std::vector<GihSubset>& subsets,
                                             const std::vector<double>& w, const std::vector<double>& c, double a,
                                             const int32_t* tokens, int64_t row_len) {
  const int H = cfg.heads, M = cfg.window;
  const int64_t L = row_len - 1, d = cfg.vocab, P = row_len;
  IHLAB_CHECK(L >= 1, "gih attention: a row needs at least 2 tokens, got {}", row_len);
  std::vector<AttentionMap> maps;
  // vbar[h][i]: the normalized layer-1 output of head h at position i, [d].
  std::vector<std::vector<double>> vbar(size_t(H) * P, std::vector<double>(d, 0.0));
  for (int h = 0; h < H; ++h) {
    AttentionMap m{0, h, P, P, std::vector<double>(size_t(P * P), 0.0)};
    const int o = cfg.offset(h);
    for (int64_t i = 0; i < P; ++i) {
      const int valid = int(std::clamp<int64_t>(i - o, 0, M));
      if (valid == 0) continue;
      double mx = -INFINITY, z = 0;
      for (int k = 0; k < valid; ++k) mx = std::max(mx, w[size_t(h) * M + k]);
      std::vector<double> p(valid);
      for (int k = 0; k < valid; ++k) z += p[k] = std::exp(w[size_t(h) * M + k] - mx);
      auto& v = vbar[size_t(h) * P + i];
      for (int k = 0; k < valid; ++k) {
        const int64_t key = i - o - 1 - k;
        m.weights[size_t(i * P + key)] = p[k] / z;
        v[size_t(tokens[key])] += p[k] / z;
      }
      double norm = 0;
      for (double x : v) norm += x * x;
      norm = std::sqrt(norm) + 1e-7;
      for (double& x : v) x /= norm;
    }
    maps.push_back(std::move(m));
  }
  // Layer 2: the query slot L against every earlier position.
  double csum = 0;
  for (double x : c) csum += x * x;
  std::vector<double> score(size_t(L), 0.0);
  for (int64_t j = 0; j < L; ++j) {
    for (size_t s = 0; s < subsets.size(); ++s) {
      double kappa = 1;
      for (int h : subsets[s].heads) {
        double g = 0;
        for (int64_t t = 0; t < d; ++t) g += vbar[size_t(h) * P + L][size_t(t)] * vbar[size_t(h) * P + j][size_t(t)];
        kappa *= std::max(g, 0.0);
      }
      score[size_t(j)] += c[s] * c[s] / csum * kappa;
    }
    score[size_t(j)] *= a;
  }
  const double mx = *std::max_element(score.begin(), score.end());
  double z = 0;
  for (double& s : score) z += s = std::exp(s - mx);
  AttentionMap top{1, 0, P, P, std::vector<double>(size_t(P * P), 0.0)};
  for (int64_t j = 0; j < L; ++j) top.weights[size_t(L * P + j)] = score[size_t(j)] / z;
  maps.push_back(std::move(top));
  return maps;
}

}  // namespace ihlab
