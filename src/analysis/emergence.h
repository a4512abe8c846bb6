#pragma once
// Emergence times on logged curves (Musat et al. 2025): when a pseudo-parameter first reaches a
// threshold, when the loss drops (t_ICL), and the order in which things emerge. Curves are logged
// points (t_i, y_i) with t increasing; times between points are interpolated linearly in t.
#include <cmath>
#include <string>
#include <vector>

namespace ihlab {

// First t at which y reaches `threshold` from below (y_i >= threshold), interpolated between the
// last point below and the first at or above it; NaN if it never does. If y starts at or above the
// threshold the answer is t_0.
double first_reach(const std::vector<double>& t, const std::vector<double>& y, double threshold);

// t_ICL: the time the loss falls below the midpoint between its plateau and its final value.
//   steepest = the logged point with the most negative slope d loss / d ln t (centered differences
//              over points with t > 0): the drop.
//   plateau  = the flattest point (smallest |d loss / d ln t|) before the drop, among the points
//              where the loss has already moved by at least 1% of its total fall (so the
//              untouched start, flat on a log axis, is not mistaken for the plateau); the first
//              point's loss when no point qualifies.
//   final    = the last logged loss.
//   t_icl    = the first crossing of (plateau + final) / 2 after the plateau point; not found
//              when the final loss is not below the plateau.
struct IclTime {
  bool found = false;
  double t_icl = NAN;
  double plateau = NAN, plateau_t = NAN;
  double final_loss = NAN;
  double steepest_t = NAN;
};
IclTime icl_time(const std::vector<double>& t, const std::vector<double>& loss);

// Names sorted by their time (NaN = never, last, in the given order); ties keep the given order.
std::vector<std::string> emergence_order(const std::vector<std::string>& names, const std::vector<double>& times);

}  // namespace ihlab
