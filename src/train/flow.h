#pragma once
// Gradient flow: integrate dθ/dt = -∇L(θ) with an adaptive ODE solver instead of taking SGD steps.
//
// DormandPrince is the explicit Runge–Kutta 5(4) pair of Dormand & Prince (1980): 7 stages, the
// 5th-order solution is propagated, the embedded 4th-order one only estimates the error, and the
// last stage is f at the new point, so it is reused as the next step's first stage ("first same
// as last", FSAL): 6 derivative evaluations per accepted step.
//
// Everything the next step depends on lives in FlowState (t, proposed h, y and the FSAL stage), so
// a copied or checkpointed state continues bit-identically.
#include <cstdint>
#include <functional>
#include <vector>

#include "core/params.h"

namespace ihlab {

struct FlowConfig {
  double rtol = 1e-6;    // >= 0
  double atol = 1e-9;    // > 0, so the error scale is never zero
  double h_init = 1e-3;  // first proposed step when FlowState::h == 0
  double h_min = 1e-14;  // a controller proposal below this is a failure (stiff or singular f)
  double h_max = 1e300;  // proposals are capped here
};

// dydt = f(t, y); dydt arrives sized like y and must be fully written.
using Derivative = std::function<void(double t, const std::vector<double>& y, std::vector<double>& dydt)>;

struct FlowState {
  double t = 0;
  double h = 0;                // next proposed step; 0 = use FlowConfig::h_init
  std::vector<double> y;       // [n]
  std::vector<double> k_last;  // [n] f(t, y) kept from the last step (FSAL); empty = compute it
  int64_t accepted = 0, rejected = 0;
};

class DormandPrince {
 public:
  // Throws ihlab::Error on an invalid config.
  DormandPrince(Derivative f, FlowConfig cfg);

  // Takes one accepted step, never past t_end: when the proposal would overshoot, h is cut to land
  // exactly on t_end (s.t becomes t_end bit for bit). Rejected tries are retried with smaller h.
  // Returns the step size used. Error control, per component i, with y the old and ŷ the new point:
  //   err = sqrt(mean_i (e_i / (atol + rtol * max(|y_i|, |ŷ_i|)))^2),  e = 5th − 4th order
  //   accept iff err <= 1;  next h = h * clamp(0.9 * err^(-1/5), 0.2, 5)   (5 if err == 0)
  //   after a rejection within the same call the next h may not grow. A non-finite err rejects
  //   with factor 0.2. A step cut to land on t_end does not shrink the proposal kept in s.h.
  // Throws ihlab::Error if t_end <= s.t, if y or f(t, y) is non-finite, if the proposal falls
  // below h_min, or if h is too small to move t.
  double step(FlowState& s, double t_end);

  // Steps until s.t == t_end, calling on_step(s) after each accepted step. No-op if s.t == t_end.
  void integrate(FlowState& s, double t_end, const std::function<void(const FlowState&)>& on_step = {});

 private:
  Derivative f_;
  FlowConfig cfg_;
  // Scratch for the stages, [n] each; fully rewritten every try, so not part of the state.
  std::vector<double> k2_, k3_, k4_, k5_, k6_, k7_, ytmp_, ynew_;
};

// Flat views of parameters for gradient flow, in list order, each param's elements in order.
template <typename T>
std::vector<double> pack_values(const std::vector<Param<T>*>& params);
// Writes y back into the values (rounded to T); throws ihlab::Error if y has the wrong length.
template <typename T>
void unpack_values(const std::vector<double>& y, const std::vector<Param<T>*>& params);
// A param with no allocated gradient contributes zeros.
template <typename T>
std::vector<double> pack_grads(const std::vector<Param<T>*>& params);

}  // namespace ihlab
