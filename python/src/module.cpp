// The `ihlab._ihlab` extension: errors, then one binding file per area (bindings.h).
#include "bindings.h"

PYBIND11_MODULE(_ihlab, m) {
  m.doc() = "ihlab's C++ library (tasks, models, training, analysis); use the `ihlab` package.";
  ihlab::py::bind_errors(m);
  ihlab::py::bind_tasks(m);
  ihlab::py::bind_models(m);
  ihlab::py::bind_train(m);
  ihlab::py::bind_analysis(m);
}
