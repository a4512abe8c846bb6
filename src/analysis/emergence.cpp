#include "analysis/emergence.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace ihlab {

double first_reach(const std::vector<double>& t, const std::vector<double>& y, double threshold) {
  IHLAB_CHECK(t.size() == y.size(), "first_reach: {} times for {} values", t.size(), y.size());
  for (size_t i = 0; i < t.size(); ++i) {
    if (!std::isfinite(y[i]) || y[i] < threshold) continue;
    if (i == 0 || !std::isfinite(y[i - 1])) return t[i];
    const double f = (threshold - y[i - 1]) / (y[i] - y[i - 1]);
    return t[i - 1] + f * (t[i] - t[i - 1]);
  }
  return NAN;
}

IclTime icl_time(const std::vector<double>& t, const std::vector<double>& loss) {
  IHLAB_CHECK(t.size() == loss.size(), "icl_time: {} times for {} losses", t.size(), loss.size());
  IclTime r;
  std::vector<size_t> idx;  // points usable on a log axis
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i] > 0 && std::isfinite(loss[i])) idx.push_back(i);
  if (idx.size() < 3) return r;
  const size_t n = idx.size();
  std::vector<double> slope(n);
  for (size_t k = 0; k < n; ++k) {
    const size_t a = idx[k == 0 ? 0 : k - 1], b = idx[k + 1 == n ? n - 1 : k + 1];
    slope[k] = (loss[b] - loss[a]) / (std::log(t[b]) - std::log(t[a]));
  }
  const size_t steep = size_t(std::min_element(slope.begin(), slope.end()) - slope.begin());
  r.steepest_t = t[idx[steep]];
  r.final_loss = loss.back();
  const double start = loss[idx[0]], moved = 0.01 * (start - r.final_loss);
  size_t plat = 0;
  bool have = false;
  for (size_t k = 0; k < steep; ++k) {
    if (start - loss[idx[k]] < moved) continue;
    if (!have || std::abs(slope[k]) < std::abs(slope[plat])) plat = k, have = true;
  }
  r.plateau = loss[idx[plat]];
  r.plateau_t = t[idx[plat]];
  if (!(r.plateau > r.final_loss)) return r;  // no drop below the plateau: nothing to time
  const double mid = 0.5 * (r.plateau + r.final_loss);
  for (size_t k = plat + 1; k < n; ++k) {
    const size_t i = idx[k], p = idx[k - 1];
    if (loss[i] > mid) continue;
    const double f = (loss[p] - mid) / (loss[p] - loss[i]);
    r.t_icl = t[p] + f * (t[i] - t[p]);
    r.found = true;
    break;
  }
  return r;
}

std::vector<std::string> emergence_order(const std::vector<std::string>& names, const std::vector<double>& times) {
  IHLAB_CHECK(names.size() == times.size(), "emergence_order: {} names for {} times", names.size(), times.size());
  std::vector<size_t> o(names.size());
  std::iota(o.begin(), o.end(), 0);
  std::stable_sort(o.begin(), o.end(), [&](size_t a, size_t b) {
    const bool fa = std::isfinite(times[a]), fb = std::isfinite(times[b]);
    if (fa != fb) return fa;
    return fa && times[a] < times[b];
  });
  std::vector<std::string> out;
  for (size_t i : o) out.push_back(names[i]);
  return out;
}

}  // namespace ihlab
