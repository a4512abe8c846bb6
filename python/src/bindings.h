#pragma once
// Shared helpers of the pybind11 bindings: JSON through Python's json module, batches as dicts of
// numpy arrays, arrays that view a tensor's storage without copying.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <nlohmann/json.hpp>

#include "core/scalars.h"
#include "core/tensor.h"
#include "tasks/batch.h"

namespace ihlab::py {
namespace pyb = pybind11;

void bind_errors(pyb::module_& m);
void bind_tasks(pyb::module_& m);
void bind_models(pyb::module_& m);
void bind_train(pyb::module_& m);
void bind_analysis(pyb::module_& m);

// Python object (dict, list, number, string) <-> JSON, through json.dumps / json.loads.
nlohmann::json to_json(const pyb::handle& obj);
pyb::object from_json(const nlohmann::json& j);

// A configuration given as a dict or as the path of a TOML file, with key=value overrides, as raw
// (unresolved) JSON: the same parsing and overrides as the command line.
nlohmann::json raw_config(const pyb::object& config, const std::vector<std::string>& overrides);

pyb::dict scalars_dict(const Scalars& s);

// Batch <-> dict of numpy arrays: tokens, targets [n, L] int32; features [n, L, F] float32;
// values [n, Dv], parts [n, P, max(Dv, 1)] (with part_names), candidates [n, C, Dv] float64,
// candidate_target [n] int32 (the last ones only when the task has them).
pyb::dict batch_to_dict(const Batch& b);
Batch batch_from_dict(const pyb::dict& d);

// A numpy array viewing `t`'s storage (no copy; the array keeps the storage alive).
template <typename T>
pyb::array_t<T> tensor_view(const Tensor<T>& t) {
  auto* keep = new Tensor<T>(t);  // a shallow copy: shares the storage
  pyb::capsule owner(keep, [](void* p) { delete static_cast<Tensor<T>*>(p); });
  std::vector<pyb::ssize_t> shape(t.shape().begin(), t.shape().end());
  return pyb::array_t<T>(shape, keep->data(), owner);
}

// A numpy array holding a copy of v with the given shape.
template <typename T>
pyb::array_t<T> array_copy(const std::vector<T>& v, std::vector<pyb::ssize_t> shape) {
  pyb::array_t<T> a(shape);
  if (!v.empty()) std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

}  // namespace ihlab::py
