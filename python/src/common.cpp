// Shared helpers of the bindings (bindings.h) and the exception classes.
#include <filesystem>

#include "bindings.h"
#include "core/error.h"
#include "io/config.h"

namespace ihlab::py {

void bind_errors(pyb::module_& m) {
  // ihlab::Error carries the command line's message; configuration errors (messages starting
  // "config") raise the subclass ConfigError so callers can tell a bad key from a bad file.
  static pyb::exception<Error> error(m, "Error", PyExc_ValueError);
  static pyb::exception<Error> config_error(m, "ConfigError", error.ptr());
  pyb::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      const std::string msg = e.what();
      if (msg.rfind("config", 0) == 0)
        config_error(e.what());
      else
        error(e.what());
    }
  });
}

nlohmann::json to_json(const pyb::handle& obj) {
  pyb::module_ json = pyb::module_::import("json");
  // default=float/int: numpy scalars become plain numbers; allow_nan keeps NaN visible as an error later.
  std::string text =
      pyb::str(json.attr("dumps")(obj, pyb::arg("default") = pyb::module_::import("ihlab._util").attr("json_default")));
  return nlohmann::json::parse(text);
}

pyb::object from_json(const nlohmann::json& j) {
  return pyb::module_::import("json").attr("loads")(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

nlohmann::json raw_config(const pyb::object& config, const std::vector<std::string>& overrides) {
  nlohmann::json raw;
  if (pyb::isinstance<pyb::dict>(config)) {
    raw = to_json(config);
  } else {
    const std::string path = pyb::str(pyb::module_::import("os").attr("fspath")(config));
    raw = parse_toml_file(path);
  }
  for (auto& o : overrides) apply_override(raw, o);
  return raw;
}

pyb::dict scalars_dict(const Scalars& s) {
  pyb::dict d;
  for (auto& [k, v] : s) d[pyb::str(k)] = v;
  return d;
}

pyb::dict batch_to_dict(const Batch& b) {
  pyb::dict d;
  d["tokens"] = array_copy(b.tokens, {b.size, b.length});
  d["targets"] = array_copy(b.targets, {b.size, b.length});
  if (b.feature_dim > 0) d["features"] = array_copy(b.features, {b.size, b.length, b.feature_dim});
  if (b.value_dim > 0) d["values"] = array_copy(b.values, {b.size, b.value_dim});
  if (!b.part_names.empty()) {
    d["part_names"] = b.part_names;
    d["parts"] = array_copy(b.parts, {b.size, pyb::ssize_t(b.part_names.size()), std::max<int64_t>(b.value_dim, 1)});
  }
  if (b.num_candidates > 0) {
    d["candidates"] = array_copy(b.candidates, {b.size, b.num_candidates, b.value_dim});
    d["candidate_target"] = array_copy(b.candidate_target, {b.size});
  }
  return d;
}

namespace {
template <typename T>
std::vector<T> flat(const pyb::dict& d, const char* key, std::vector<pyb::ssize_t>* shape = nullptr) {
  auto a = pyb::array_t<T, pyb::array::c_style | pyb::array::forcecast>::ensure(d[key]);
  IHLAB_CHECK(bool(a), "batch: '{}' must be an array", key);
  if (shape) shape->assign(a.shape(), a.shape() + a.ndim());
  return std::vector<T>(a.data(), a.data() + a.size());
}
}  // namespace

Batch batch_from_dict(const pyb::dict& d) {
  Batch b;
  IHLAB_CHECK(d.contains("tokens"), "batch: a dict with 'tokens' [n, L] is required (as Task.sample returns)");
  std::vector<pyb::ssize_t> shape;
  b.tokens = flat<int32_t>(d, "tokens", &shape);
  IHLAB_CHECK(shape.size() == 2, "batch: 'tokens' must be 2-d [n, L], got {} dimensions", shape.size());
  b.size = shape[0];
  b.length = shape[1];
  if (d.contains("targets")) {
    b.targets = flat<int32_t>(d, "targets", &shape);
    IHLAB_CHECK(b.targets.size() == b.tokens.size(), "batch: 'targets' must have the shape of 'tokens'");
  } else {
    b.targets.assign(b.tokens.size(), -1);
  }
  if (d.contains("features")) {
    b.features = flat<float>(d, "features", &shape);
    IHLAB_CHECK(shape.size() == 3 && shape[0] == b.size && shape[1] == b.length,
                "batch: 'features' must be [n, L, F] with the n, L of 'tokens'");
    b.feature_dim = shape[2];
  }
  if (d.contains("values")) {
    b.values = flat<double>(d, "values", &shape);
    IHLAB_CHECK(shape.size() == 2 && shape[0] == b.size, "batch: 'values' must be [n, Dv]");
    b.value_dim = shape[1];
  }
  if (d.contains("parts")) {
    b.part_names = d["part_names"].cast<std::vector<std::string>>();
    b.parts = flat<double>(d, "parts");
  }
  if (d.contains("candidates")) {
    b.candidates = flat<double>(d, "candidates", &shape);
    IHLAB_CHECK(shape.size() == 3 && shape[0] == b.size, "batch: 'candidates' must be [n, C, Dv]");
    b.num_candidates = shape[1];
    b.candidate_target = flat<int32_t>(d, "candidate_target");
  }
  return b;
}

}  // namespace ihlab::py
