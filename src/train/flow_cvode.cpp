// CVODE (BDF + Newton + dense finite-difference Jacobian) for gradient flow; see flow_cvode.h.
#include "train/flow_cvode.h"

#include <cmath>
#include <exception>
#include <string>

#include <cvode/cvode.h>
#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunmatrix/sunmatrix_dense.h>

#include "core/error.h"

namespace ihlab {

namespace {

struct RhsData {
  const Derivative* f;
  std::vector<double> y, dydt;
  std::exception_ptr error;  // an exception from f, rethrown after CVODE returns
  std::string message;       // CVODE's last error message
};

int rhs(realtype t, N_Vector y, N_Vector ydot, void* user) {
  auto* d = static_cast<RhsData*>(user);
  const sunindextype n = N_VGetLength_Serial(y);
  const double* yp = N_VGetArrayPointer_Serial(y);
  d->y.assign(yp, yp + n);
  d->dydt.assign(size_t(n), 0.0);
  try {
    (*d->f)(t, d->y, d->dydt);
  } catch (...) {
    d->error = std::current_exception();
    return -1;  // unrecoverable: CVODE stops and returns CV_RHSFUNC_FAIL
  }
  double* out = N_VGetArrayPointer_Serial(ydot);
  for (sunindextype i = 0; i < n; ++i) {
    if (!std::isfinite(d->dydt[i])) return 1;  // recoverable: CVODE retries with a smaller step
    out[i] = d->dydt[i];
  }
  return 0;
}

void error_handler(int code, const char* module, const char* function, char* msg, void* user) {
  static_cast<RhsData*>(user)->message = std::string(function) + ": " + msg;
}

// Owns every SUNDIALS object of one segment; frees them in reverse order.
struct Solver {
  SUNContext ctx = nullptr;
  N_Vector y = nullptr;
  SUNMatrix A = nullptr;
  SUNLinearSolver LS = nullptr;
  void* mem = nullptr;
  ~Solver() {
    if (mem) CVodeFree(&mem);
    if (LS) SUNLinSolFree(LS);
    if (A) SUNMatDestroy(A);
    if (y) N_VDestroy(y);
    if (ctx) SUNContext_Free(&ctx);
  }
};

void check(int flag, const char* what, const RhsData& d) {
  IHLAB_CHECK(flag >= 0, "flow (cvode-bdf): {} failed with {} ({})", what, CVodeGetReturnFlagName(flag),
              d.message.empty() ? "no message" : d.message);
}

}  // namespace

CvodeBdf::CvodeBdf(Derivative f, FlowConfig cfg) : f_(std::move(f)), cfg_(cfg) {
  IHLAB_CHECK(bool(f_), "flow: no derivative function given");
  IHLAB_CHECK(cfg_.rtol >= 0, "flow: rtol must be >= 0, got {}", cfg_.rtol);
  IHLAB_CHECK(cfg_.atol > 0, "flow: atol must be > 0, got {}", cfg_.atol);
}

CvodeSegmentStats CvodeBdf::integrate(FlowState& s, double t_end) {
  IHLAB_CHECK(t_end > s.t, "flow: t_end {} is not after t {}", t_end, s.t);
  const sunindextype n = sunindextype(s.y.size());
  for (double v : s.y) IHLAB_CHECK(std::isfinite(v), "flow: state y is non-finite at t = {}", s.t);
  RhsData data{&f_, {}, {}, nullptr, {}};
  Solver S;
  IHLAB_CHECK(SUNContext_Create(nullptr, &S.ctx) == 0, "flow (cvode-bdf): SUNContext_Create failed");
  S.y = N_VNew_Serial(n, S.ctx);
  std::copy(s.y.begin(), s.y.end(), N_VGetArrayPointer_Serial(S.y));
  S.mem = CVodeCreate(CV_BDF, S.ctx);
  IHLAB_CHECK(S.mem != nullptr, "flow (cvode-bdf): CVodeCreate failed");
  check(CVodeSetErrHandlerFn(S.mem, error_handler, &data), "CVodeSetErrHandlerFn", data);
  check(CVodeInit(S.mem, rhs, s.t, S.y), "CVodeInit", data);
  check(CVodeSetUserData(S.mem, &data), "CVodeSetUserData", data);
  check(CVodeSStolerances(S.mem, cfg_.rtol, cfg_.atol), "CVodeSStolerances", data);
  S.A = SUNDenseMatrix(n, n, S.ctx);
  S.LS = SUNLinSol_Dense(S.y, S.A, S.ctx);
  check(CVodeSetLinearSolver(S.mem, S.LS, S.A), "CVodeSetLinearSolver", data);  // no Jacobian fn: finite differences
  check(CVodeSetMaxNumSteps(S.mem, 1000000), "CVodeSetMaxNumSteps", data);
  check(CVodeSetStopTime(S.mem, t_end), "CVodeSetStopTime", data);
  realtype tret = s.t;
  const int flag = CVode(S.mem, t_end, S.y, &tret, CV_NORMAL);
  if (data.error) std::rethrow_exception(data.error);
  check(flag, "CVode", data);
  long steps = 0, fails = 0, fevals = 0, jac_fevals = 0;
  CVodeGetNumSteps(S.mem, &steps);
  CVodeGetNumErrTestFails(S.mem, &fails);
  CVodeGetNumRhsEvals(S.mem, &fevals);
  CVodeGetNumLinRhsEvals(S.mem, &jac_fevals);
  const double* y = N_VGetArrayPointer_Serial(S.y);
  s.y.assign(y, y + n);
  s.t = t_end;  // the stop time is hit exactly; set it bit for bit regardless
  s.h = 0;
  s.k_last.clear();
  s.accepted += steps;
  s.rejected += fails;
  return {steps, fails, fevals + jac_fevals};
}

double cvode_segment_end(int64_t k, double first, double per_decade, double time) {
  return std::min(time, first * std::pow(10.0, double(k) / per_decade));
}

}  // namespace ihlab
