#include "tasks/bursty.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace ihlab {

void BurstyConfig::validate() const {
  IHLAB_CHECK(classes >= 2 && classes <= 1 << 20, "task.classes = {} is out of range (allowed: 2 <= classes <= {})",
              classes, 1 << 20);
  IHLAB_CHECK(labels >= 2 && labels <= classes,
              "task.labels = {} is out of range (allowed: 2 <= labels <= task.classes = {})", labels, classes);
  IHLAB_CHECK(pairs >= 1 && pairs <= 4096, "task.pairs = {} is out of range (allowed: 1 <= pairs <= 4096)", pairs);
  IHLAB_CHECK(dim >= 1 && dim <= 65536, "task.dim = {} is out of range (allowed: 1 <= dim <= 65536)", dim);
  IHLAB_CHECK(noise >= 0 && std::isfinite(noise), "task.noise = {} is out of range (allowed: noise >= 0)", noise);
  IHLAB_CHECK(burstiness >= 1 && pairs % burstiness == 0,
              "task.burstiness = {} is not allowed (allowed: a divisor of task.pairs = {}; the context holds "
              "pairs / burstiness classes, burstiness copies each)",
              burstiness, pairs);
  IHLAB_CHECK(pairs / burstiness <= labels,
              "task.burstiness = {} gives {} classes per context, more than task.labels = {} (the in-context "
              "evaluation gives each context class a distinct label)",
              burstiness, pairs / burstiness, labels);
  IHLAB_CHECK(pairs / burstiness <= classes, "task.pairs / task.burstiness = {} exceeds task.classes = {}",
              pairs / burstiness, classes);
  IHLAB_CHECK(p_bursty >= 0 && p_bursty <= 1, "task.p_bursty = {} is out of range (allowed: 0 <= p_bursty <= 1)",
              p_bursty);
  IHLAB_CHECK(zipf_exponent >= 0 && zipf_exponent <= 16,
              "task.zipf_exponent = {} is out of range (allowed: 0 <= zipf_exponent <= 16)", zipf_exponent);
}

double BurstyConfig::match_threshold() const {
  // Far above the same-class distance (2 noise^2) yet far below the between-class one; the +1e-9
  // keeps exact duplicates (noise 0) matching.
  return std::min(8 * noise * noise, 1 + 2 * noise * noise) + 1e-9;
}

BurstySet parse_bursty_set(const std::string& s) {
  if (s == "in-context") return BurstySet::InContext;
  if (s == "in-weights") return BurstySet::InWeights;
  fail("bursty: evaluation set \"{}\" is not known (choose one of: in-context, in-weights)", s);
}

BurstyWorld make_world(const BurstyConfig& cfg, uint64_t seed) {
  cfg.validate();
  RandomStream rs(seed, StreamKind::Data, kWorldSubstream);
  BurstyWorld w;
  const double scale = 1.0 / std::sqrt(double(cfg.dim));
  w.prototypes.resize(size_t(cfg.classes) * cfg.dim);  // [classes, dim]
  for (auto& v : w.prototypes) v = rs.normal() * scale;
  std::vector<int> perm(cfg.classes);
  std::iota(perm.begin(), perm.end(), 0);
  for (int i = cfg.classes - 1; i > 0; --i) std::swap(perm[i], perm[rs.randint(i + 1)]);
  w.label_of.resize(cfg.classes);
  for (int j = 0; j < cfg.classes; ++j) w.label_of[perm[j]] = j % cfg.labels;
  w.zipf_cdf.resize(cfg.classes);
  double acc = 0;
  for (int c = 0; c < cfg.classes; ++c) w.zipf_cdf[c] = (acc += std::pow(double(c + 1), -cfg.zipf_exponent));
  for (auto& v : w.zipf_cdf) v /= acc;
  return w;
}

namespace {

int zipf_draw(const BurstyWorld& w, RandomStream& rs) {
  double u = rs.uniform();
  auto it = std::upper_bound(w.zipf_cdf.begin(), w.zipf_cdf.end(), u);
  return int(std::min<ptrdiff_t>(it - w.zipf_cdf.begin(), ptrdiff_t(w.zipf_cdf.size()) - 1));
}

// A Zipf draw outside `excluded`: rejection, then (after 1000 misses, when the excluded classes
// hold nearly all the mass) an explicit draw from the renormalized remainder.
int zipf_draw_excluding(const BurstyWorld& w, const std::vector<int>& excluded, RandomStream& rs) {
  auto taken = [&](int c) { return std::find(excluded.begin(), excluded.end(), c) != excluded.end(); };
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int c = zipf_draw(w, rs);
    if (!taken(c)) return c;
  }
  std::vector<double> p(w.zipf_cdf.size());
  for (size_t c = 0; c < p.size(); ++c) p[c] = taken(int(c)) ? 0.0 : w.zipf_cdf[c] - (c ? w.zipf_cdf[c - 1] : 0.0);
  return rs.categorical(p.data(), int(p.size()));
}

void add_item(BurstySequence& s, const double* prototype, double noise, int dim, RandomStream& rs) {
  const double scale = 1.0 / std::sqrt(double(dim));
  for (int d = 0; d < dim; ++d) s.items.push_back(float(prototype[d] + noise * rs.normal() * scale));
}

}  // namespace

BurstySequence sample_bursty_sequence(const BurstyConfig& cfg, const BurstyWorld& w, BurstySet set, RandomStream& rs) {
  const int N = cfg.pairs, groups = N / cfg.burstiness, D = cfg.dim;
  BurstySequence s;
  s.items.reserve(size_t(N + 1) * D);
  std::vector<int> context;           // [N] classes in order
  std::vector<double> novel;          // [groups, D] prototypes of novel classes
  std::vector<int32_t> novel_labels;  // [groups]
  int query = 0;
  bool bursty = set != BurstySet::InWeights && (set == BurstySet::InContext || rs.uniform() < cfg.p_bursty);
  s.bursty = bursty;
  if (bursty) {
    std::vector<int> picked;  // the context's distinct classes
    if (set == BurstySet::InContext) {
      novel.resize(size_t(groups) * D);
      for (auto& v : novel) v = rs.normal() / std::sqrt(double(D));
      std::vector<int32_t> all(cfg.labels);  // distinct labels: a partial Fisher-Yates shuffle
      std::iota(all.begin(), all.end(), 0);
      for (int g = 0; g < groups; ++g) {
        std::swap(all[g], all[g + rs.randint(cfg.labels - g)]);
        novel_labels.push_back(all[g]);
        picked.push_back(cfg.classes + g);
      }
    } else {
      for (int g = 0; g < groups; ++g) picked.push_back(zipf_draw_excluding(w, picked, rs));
    }
    for (int g = 0; g < groups; ++g) context.insert(context.end(), cfg.burstiness, picked[g]);
    for (int i = N - 1; i > 0; --i) std::swap(context[i], context[rs.randint(i + 1)]);
    query = picked[rs.randint(groups)];
  } else if (set == BurstySet::InWeights) {
    query = zipf_draw(w, rs);
    for (int i = 0; i < N; ++i) context.push_back(zipf_draw_excluding(w, {query}, rs));
  } else {
    for (int i = 0; i < N; ++i) context.push_back(zipf_draw(w, rs));
    query = zipf_draw(w, rs);
  }
  context.push_back(query);
  for (int c : context) {
    s.classes.push_back(c);
    if (c >= cfg.classes) {
      s.labels.push_back(novel_labels[c - cfg.classes]);
      add_item(s, novel.data() + size_t(c - cfg.classes) * D, cfg.noise, D, rs);
    } else {
      s.labels.push_back(w.label_of[c]);
      add_item(s, w.prototypes.data() + size_t(c) * D, cfg.noise, D, rs);
    }
  }
  return s;
}

}  // namespace ihlab
