// ihlab.Model: any registered model built from a config, evaluated at given weights.
#include <memory>

#include "config_parts.h"
#include "core/autograd.h"
#include "io/checkpoint.h"
#include "models/registry.h"
#include "models/transformer.h"
#include "tasks.h"

namespace ihlab::py {
namespace {

struct PyModel {
  nlohmann::json config;  // resolved seed, dtype, [task], [model]
  std::shared_ptr<PyTask> task;
  std::unique_ptr<Model<float>> f32;
  std::unique_ptr<Model<double>> f64;

  // Calls fn on the model of whichever dtype was built; fn returns a pybind11 object.
  template <class F>
  pyb::object visit(F&& fn) {
    return f64 ? fn(*f64) : fn(*f32);
  }
};

std::shared_ptr<PyModel> make_py_model(const pyb::object& config, const std::vector<std::string>& overrides) {
  auto m = std::make_shared<PyModel>();
  m->config = resolve_part(raw_config(config, overrides), {"seed", "dtype", "task", "model"});
  m->task = std::make_shared<PyTask>(from_json(nlohmann::json{{"task", m->config["task"]}}));
  const uint64_t seed = m->config["seed"].get<uint64_t>();
  if (m->config["dtype"] == "float64")
    m->f64 = make_model<double>(m->config["model"], *m->task->task, seed);
  else
    m->f32 = make_model<float>(m->config["model"], *m->task->task, seed);
  return m;
}

// The number type of a model (float or double), for generic lambdas.
template <typename T>
T elem_of(Model<T>&);

template <typename T>
pyb::dict param_views(Model<T>& m) {
  pyb::dict d;
  for (auto& p : m.params().all()) d[pyb::str(p.name)] = tensor_view(p.var.value());
  return d;
}

template <typename T>
void set_params(Model<T>& m, const pyb::dict& values) {
  // Checked in full before anything is written, so a bad entry leaves the model unchanged.
  std::vector<std::pair<Param<T>*, pyb::array_t<T, pyb::array::c_style | pyb::array::forcecast>>> todo;
  for (auto [k, v] : values) {
    const std::string name = pyb::str(k);
    Param<T>* p = m.params().find(name);
    IHLAB_CHECK(p != nullptr, "set_params: model '{}' has no parameter '{}'", m.name(), name);
    auto a = pyb::array_t<T, pyb::array::c_style | pyb::array::forcecast>::ensure(v);
    IHLAB_CHECK(bool(a), "set_params: '{}' is not an array of numbers", name);
    Shape s(a.shape(), a.shape() + a.ndim());
    IHLAB_CHECK(s == p->var.value().shape(), "set_params: '{}' has shape {} but the model's is {}", name, shape_str(s),
                shape_str(p->var.value().shape()));
    todo.emplace_back(p, a);
  }
  for (auto& [p, a] : todo) std::copy(a.data(), a.data() + a.size(), p->var.value().data());
}

template <typename T>
pyb::object loss_and_grad(Model<T>& m, const Batch& b) {
  // Every parameter gets a gradient, whatever a stage would freeze; the trainable set is restored.
  std::vector<bool> saved;
  for (auto& p : m.params().all()) saved.push_back(p.var.requires_grad());
  double loss;
  {
    pyb::gil_scoped_release free;
    m.params().set_trainable({"all"});
    m.params().zero_grad();
    Var<T> l = m.loss(b);
    backward(l);
    loss = double(l.item());
  }
  pyb::dict grads;
  for (auto& p : m.params().all()) {
    Tensor<T> g(p.var.value().shape());
    if (p.var.has_grad()) g.copy_from(p.var.grad());
    grads[pyb::str(p.name)] = tensor_view(g);
  }
  for (size_t i = 0; i < saved.size(); ++i) m.params().all()[i].var.set_requires_grad(saved[i]);
  return pyb::make_tuple(loss, grads);
}

template <typename T>
Transformer<T>& transformer(Model<T>& m, const char* what) {
  auto* t = dynamic_cast<Transformer<T>*>(&m);
  IHLAB_CHECK(t != nullptr, "{}: only the 'transformer' model has it (this model is '{}')", what, m.name());
  return *t;
}

template <typename T>
pyb::object var_array(const Var<T>& v) {
  return tensor_view(v.value());
}

}  // namespace

void bind_models(pyb::module_& m) {
  pyb::class_<PyModel, std::shared_ptr<PyModel>>(m, "Model", R"(A registered model (see ihlab.list_models()).

Model(config, overrides=()): config is a run configuration (dict or TOML path) with "task" and
"model" tables, "seed" (initialization) and "dtype" (float32 / float64); other keys (stages, data,
log) are ignored. Parameters are initialized exactly as `ihlab train` initializes them.)")
      .def(pyb::init(&make_py_model), pyb::arg("config"), pyb::arg("overrides") = std::vector<std::string>{})
      .def_property_readonly("name", [](PyModel& p) { return p.visit([](auto& x) { return pyb::str(x.name()); }); })
      .def_property_readonly("dtype", [](PyModel& p) { return p.f64 ? "float64" : "float32"; })
      .def_property_readonly(
          "config", [](PyModel& p) { return from_json(p.config); }, "the resolved seed, dtype, [task] and [model]")
      .def_property_readonly("task", [](PyModel& p) { return p.task; })
      .def_property_readonly(
          "params", [](PyModel& p) { return p.visit([](auto& x) -> pyb::object { return param_views(x); }); },
          "{name: array} viewing the parameters' storage (no copy): writing into an array changes the model")
      .def_property_readonly(
          "groups",
          [](PyModel& p) {
            return p.visit([](auto& x) -> pyb::object {
              pyb::dict d;
              for (auto& q : x.params().all()) d[pyb::str(q.name)] = q.group;
              return d;
            });
          },
          "{parameter: group} (the groups stages train or freeze)")
      .def(
          "set_params",
          [](PyModel& p, const pyb::dict& v) {
            p.visit([&](auto& x) -> pyb::object {
              set_params(x, v);
              return pyb::none();
            });
          },
          pyb::arg("values"), "Copies {name: array} into the parameters (shapes checked first; any subset).")
      .def(
          "load_checkpoint",
          [](PyModel& p, const std::string& path) {
            p.visit([&](auto& x) -> pyb::object {
              using T = decltype(elem_of(x));
              restore_params(load_checkpoint<T>(path), x.params());
              return pyb::none();
            });
          },
          pyb::arg("path"), "Parameters from an ihlab checkpoint (.safetensors) of this model and dtype.")
      .def(
          "loss",
          [](PyModel& p, const pyb::dict& batch) {
            Batch b = batch_from_dict(batch);
            return p.visit([&](auto& x) -> pyb::object {
              double l;
              {
                pyb::gil_scoped_release free;
                NoGradScope no_grad(x.params());
                l = double(x.loss(b).item());
              }
              return pyb::float_(l);
            });
          },
          pyb::arg("batch"), "Mean loss on a batch (no dropout, no gradients), as the trainer's val_loss.")
      .def(
          "loss_and_grad",
          [](PyModel& p, const pyb::dict& batch) {
            Batch b = batch_from_dict(batch);
            return p.visit([&](auto& x) { return loss_and_grad(x, b); });
          },
          pyb::arg("batch"),
          "(loss, {name: gradient array}) of a training step's loss (dropout applies, as in training).")
      .def(
          "set_objective",
          [](PyModel& p, const std::string& o) {
            p.visit([&](auto& x) -> pyb::object {
              x.set_objective(o);
              return pyb::none();
            });
          },
          pyb::arg("objective"), "What loss() minimizes (the stage key `objective`; most models: \"loss\").")
      .def(
          "evaluate",
          [](PyModel& p, const pyb::dict& batch) {
            Batch b = batch_from_dict(batch);
            return p.visit([&](auto& x) -> pyb::object {
              NoGradScope no_grad(x.params());
              return scalars_dict(x.evaluate(b));
            });
          },
          pyb::arg("batch"), "The model's own metrics on a batch (e.g. acc), logged with a val_ prefix.")
      .def(
          "probes", [](PyModel& p) { return p.visit([](auto& x) -> pyb::object { return scalars_dict(x.probes()); }); },
          "Scalars read off the parameters, as logged in metrics.csv.")
      .def(
          "attention",
          [](PyModel& p, const pyb::dict& batch, int64_t example) {
            Batch b = batch_from_dict(batch);
            return p.visit([&](auto& x) -> pyb::object {
              std::vector<AttentionMap> maps;
              {
                pyb::gil_scoped_release free;
                maps = x.attention(b, example);
              }
              pyb::list out;
              for (auto& a : maps) {
                pyb::dict d;
                d["layer"] = a.layer;
                d["head"] = a.head;
                d["weights"] = array_copy(a.weights, {a.queries, a.keys});
                out.append(d);
              }
              return out;
            });
          },
          pyb::arg("batch"), pyb::arg("example") = 0,
          "Attention maps of sequence `example`: a list of {layer, head, weights [queries, keys]} (0-based).")
      .def(
          "next_token_probs",
          [](PyModel& p, const pyb::dict& batch) {
            Batch b = batch_from_dict(batch);
            return p.visit([&](auto& x) -> pyb::object {
              std::vector<double> probs;
              {
                pyb::gil_scoped_release free;
                probs = x.next_token_probs(b);
              }
              if (probs.empty()) return pyb::none();
              return array_copy(probs, {b.size, b.length, pyb::ssize_t(probs.size()) / (b.size * b.length)});
            });
          },
          pyb::arg("batch"), "Next-token distributions [n, L, V] (float64), or None for models without them.")
      .def(
          "logits",
          [](PyModel& p, const pyb::dict& batch) {
            Batch b = batch_from_dict(batch);
            return p.visit([&](auto& x) -> pyb::object {
              auto& t = transformer(x, "logits");
              NoGradScope no_grad(x.params());
              Var<decltype(elem_of(x))> out;
              {
                pyb::gil_scoped_release free;
                out = t.logits(b);
              }
              return var_array(out);
            });
          },
          pyb::arg("batch"), "transformer: logits [n, L, V] in the model's dtype (no dropout).")
      .def(
          "predict",
          [](PyModel& p, const pyb::dict& batch) {
            Batch b = batch_from_dict(batch);
            return p.visit([&](auto& x) -> pyb::object {
              auto& t = transformer(x, "predict");
              NoGradScope no_grad(x.params());
              auto out = t.predict(b);
              return var_array(out);
            });
          },
          pyb::arg("batch"), "transformer on a regression task: the prediction [n, Dv] from the last position.")
      .def(
          "attention_probs",
          [](PyModel& p, const pyb::dict& batch) {
            Batch b = batch_from_dict(batch);
            return p.visit([&](auto& x) -> pyb::object {
              auto& t = transformer(x, "attention_probs");
              pyb::list out;
              for (auto& a : t.attention_probs(b)) out.append(tensor_view(a));
              return out;
            });
          },
          pyb::arg("batch"), "transformer: attention probabilities per layer, [n, H, L, L] each.")
      .def(
          "ov_circuit",
          [](PyModel& p, int64_t layer, int64_t head) {
            return p.visit([&](auto& x) -> pyb::object {
              const int64_t V = p.task->task->vocab();
              return array_copy(transformer(x, "ov_circuit").ov_circuit(layer, head), {V, V});
            });
          },
          pyb::arg("layer"), pyb::arg("head"), "transformer: one head's OV circuit W_E W_V W_O W_U, [V, V].");

  m.def("list_models", [] {
    pyb::dict d;
    for (auto& e : model_registry()) d[pyb::str(e.name)] = e.description;
    return d;
  });
}

}  // namespace ihlab::py
