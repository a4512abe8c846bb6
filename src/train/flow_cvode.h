#pragma once
// Stiff gradient flow: SUNDIALS CVODE with variable-order BDF (orders 1-5), Newton iteration and a
// dense Jacobian that CVODE builds itself by finite differences (n extra derivative evaluations
// per Jacobian; meant for small models, n up to a few hundred parameters).
//
// Why: near a sharp minimum the gradient flow is stiff (curvatures spread over many orders of
// magnitude); an explicit method such as Dormand-Prince must keep its step below the stability
// limit of the stiffest direction long after that direction has converged. BDF steps stay large.
//
// Resume semantics. CVODE's history (Nordsieck array, step-size and order controller, Jacobian
// age) cannot be saved and restored bit-identically through its public API. So the flow is cut
// into segments [t_a, t_b] and every segment is integrated by a *fresh* solver started from
// (t_a, y(t_a)) and stopped exactly at t_b (CVodeSetStopTime): the state between segments is
// (t, y) alone. A run resumed from a checkpoint taken at a segment boundary therefore repeats
// exactly what the uninterrupted run did. The cost is a restart (order 1, a small first step)
// per segment; the trainer spaces segments geometrically in t, so a run to t = 1e4 has a few
// dozen of them.
#include <cstdint>

#include "train/flow.h"

namespace ihlab {

struct CvodeSegmentStats {
  int64_t steps = 0;        // internal BDF steps
  int64_t error_fails = 0;  // local error test failures
  int64_t rhs_evals = 0;    // derivative evaluations CVODE reports (including finite-difference Jacobians)
};

class CvodeBdf {
 public:
  // Throws ihlab::Error on an invalid config (rtol >= 0, atol > 0). Uses rtol and atol of
  // FlowConfig (CVODE's scalar tolerances); step sizes are left to CVODE's own estimates.
  CvodeBdf(Derivative f, FlowConfig cfg);

  // Integrates s.y from s.t to t_end with a fresh solver, then sets s.t = t_end exactly and adds
  // the internal steps to s.accepted and the error-test failures to s.rejected; s.h and s.k_last
  // are left empty (nothing carries over). Throws ihlab::Error if t_end <= s.t, if y or f is
  // non-finite, or if CVODE fails (its flag and message are in the error).
  CvodeSegmentStats integrate(FlowState& s, double t_end);

 private:
  Derivative f_;
  FlowConfig cfg_;
};

// The end of segment k (0-based) of a flow stage run to `time`: first * 10^(k / per_decade),
// capped at `time`. Segment 0 starts at t = 0.
double cvode_segment_end(int64_t k, double first, double per_decade, double time);

}  // namespace ihlab
