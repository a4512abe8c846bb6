#pragma once
// Automatic phase segmentation of a loss curve: fast initial drop, plateau(s), abrupt
// transition(s) (time of steepest descent), convergence.
//
// The curve is read on log-log axes (u = ln t, v = ln loss), where a plateau is a stretch of
// near-zero slope whatever its loss level and a power-law tail is a straight line:
//   1. points with t <= 0, loss <= 0 or non-finite values are dropped; a running median over 5
//      points clips isolated outliers;
//   2. v is resampled onto a uniform grid in u (spacing smooth_decades / 4) and smoothed with a
//      Gaussian kernel of width smooth_decades (a decade is ln 10 in u), which makes the slope
//      s = dv/du (central differences) usable on noisy curves and on irregular (e.g. log-spaced
//      or per-accepted-step) time axes;
//   3. flat runs: maximal intervals with |s| <= flat_slope lasting >= min_plateau_decades. A flat
//      run is a plateau when the loss falls by at least a factor min_drop between its end and the
//      start of the next flat run (or the end of the curve). A flat run at the very start of the
//      curve (before anything was learned) counts only when count_initial is set;
//   4. after each plateau, the transition: its steepest point is the most negative slope before
//      the next flat run; it starts at the plateau's end and ends where the slope has risen back
//      above end_fraction * (steepest slope);
//   5. the initial drop is everything before the first plateau; convergence is everything after
//      the last transition.
// Times are reported on the curve's own axis (t). Every threshold is an option below.
#include <string>
#include <vector>

namespace ihlab {

struct PhaseOptions {
  double smooth_decades = 0.1;       // Gaussian smoothing width in decades of t
  double flat_slope = 0.25;          // |d ln loss / d ln t| below this is flat
  double min_plateau_decades = 0.3;  // shortest plateau
  double min_drop = 3.0;             // a plateau must be followed by a loss drop of at least this factor
  double end_fraction = 0.25;        // transition ends when the slope is back above this * steepest
  bool count_initial = false;        // a flat run at the start of the curve may be a plateau
};

struct Plateau {
  double start = 0, end = 0;  // t
  double level = 0;           // smoothed loss at the plateau's geometric middle
};

struct Transition {
  double start = 0, steepest = 0, end = 0;  // t
  double slope = 0;                         // d ln loss / d ln t at the steepest point
  double drop = 0;                          // loss(start) / loss(end), smoothed
};

struct PhaseSegmentation {
  bool found = false;             // at least one plateau followed by a transition
  double initial_drop_end = 0;    // t where the first plateau starts
  double initial_drop = 0;        // loss(first point) / loss(initial_drop_end), smoothed
  std::vector<Plateau> plateaus;  // in time order; transitions[i] follows plateaus[i]
  std::vector<Transition> transitions;
  double convergence_start = 0;  // t where the last transition ends
  std::string summary() const;   // one line for logs and claims
};

// Throws ihlab::Error if t and loss differ in length or fewer than 8 usable points remain.
PhaseSegmentation segment_phases(const std::vector<double>& t, const std::vector<double>& loss,
                                 const PhaseOptions& opt = {});

}  // namespace ihlab
