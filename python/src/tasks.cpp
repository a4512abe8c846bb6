// ihlab.Task: any registered task sampled to numpy arrays.
#include "tasks.h"

#include "config_parts.h"
#include "tasks/registry.h"

namespace ihlab::py {

PyTask::PyTask(const pyb::object& config) {
  nlohmann::json raw = to_json(config);
  // A bare [task] table ({"name": ..., ...}) or a whole run configuration with a [task] table.
  if (!raw.contains("task")) raw = nlohmann::json{{"task", raw}};
  config_ = resolve_part(raw, {"task"}).at("task");
  task = make_task(config_);
}

namespace {
StreamKind stream_kind(const std::string& s) {
  if (s == "data") return StreamKind::Data;
  if (s == "eval") return StreamKind::Eval;
  if (s == "init") return StreamKind::Init;
  if (s == "test") return StreamKind::Test;
  fail("sample: stream = \"{}\" is not allowed (choose one of: data, eval, init, test)", s);
}

pyb::dict sample_dict(const Task& t, const Batch& b, bool references) {
  pyb::dict d = batch_to_dict(b);
  if (references) d["reference_losses"] = scalars_dict(t.reference_losses(b));
  return d;
}
}  // namespace

void bind_tasks(pyb::module_& m) {
  pyb::class_<PyTask, std::shared_ptr<PyTask>>(m, "Task", R"(A registered task (see ihlab.list_tasks()).

Task(config): config is the [task] table as a dict, e.g. {"name": "repeated-tokens", "vocab": 64},
or a whole run configuration with a "task" key. Unknown keys and bad values raise ConfigError with
the command line's message. Batches are pure functions of (seed, stream, index), as in training.)")
      .def(pyb::init<const pyb::object&>(), pyb::arg("config"))
      .def_property_readonly("name", [](const PyTask& t) { return t.task->name(); })
      .def_property_readonly(
          "config", [](const PyTask& t) { return from_json(t.config_); },
          "the resolved [task] table (every default filled in)")
      .def_property_readonly("vocab", [](const PyTask& t) { return t.task->vocab(); })
      .def_property_readonly("length", [](const PyTask& t) { return t.task->length(); })
      .def_property_readonly("feature_dim", [](const PyTask& t) { return t.task->feature_dim(); })
      .def_property_readonly("value_dim", [](const PyTask& t) { return t.task->value_dim(); })
      .def_property_readonly("eval_sets", [](const PyTask& t) { return t.task->eval_sets(); })
      .def(
          "sample",
          [](const PyTask& t, int64_t n, uint64_t seed, const std::string& stream, uint64_t index, bool references) {
            Batch b;
            {
              pyb::gil_scoped_release free;
              b = t.task->sample(n, seed, stream_kind(stream), index);
            }
            return sample_dict(*t.task, b, references);
          },
          pyb::arg("n"), pyb::arg("seed") = 0, pyb::arg("stream") = "data", pyb::arg("index") = 0,
          pyb::arg("references") = true,
          R"(n sequences from one random stream: a dict of numpy arrays tokens, targets [n, L] (int32, -1 =
no target), and for tasks that have them features [n, L, F], values [n, Dv], parts, candidates,
candidate_target; plus reference_losses {ref.*: loss} of the task's reference predictors on it.)")
      .def(
          "batch",
          [](const PyTask& t, int64_t n, uint64_t seed, int64_t step, bool references) {
            Batch b;
            {
              pyb::gil_scoped_release free;
              b = t.task->sample(n, seed, StreamKind::Data, uint64_t(step) + 1);  // as train/run_data.cpp
            }
            return sample_dict(*t.task, b, references);
          },
          pyb::arg("n"), pyb::arg("seed"), pyb::arg("step"), pyb::arg("references") = true,
          "The training batch of update `step` (0-based) of a run with data.mode = \"fresh\", batch_size = n and "
          "this seed: exactly what the trainer feeds the model at that step.")
      .def(
          "validation",
          [](const PyTask& t, int64_t n, uint64_t seed, bool references) {
            Batch b;
            {
              pyb::gil_scoped_release free;
              b = t.task->sample(n, seed, StreamKind::Eval, 0);
            }
            return sample_dict(*t.task, b, references);
          },
          pyb::arg("n"), pyb::arg("seed"), pyb::arg("references") = true,
          "The validation set of a fresh-mode run with data.val_size = n and this seed.")
      .def(
          "sample_eval",
          [](const PyTask& t, const std::string& set, int64_t n, uint64_t seed) {
            return sample_dict(*t.task, t.task->sample_eval(set, n, seed), true);
          },
          pyb::arg("set"), pyb::arg("n"), pyb::arg("seed"), "A named evaluation set (Task.eval_sets).")
      .def(
          "reference_losses",
          [](const PyTask& t, const pyb::dict& batch) {
            return scalars_dict(t.task->reference_losses(batch_from_dict(batch)));
          },
          pyb::arg("batch"), "Losses {ref.*: nats} of the task's reference predictors on a batch.")
      .def(
          "reference_predictions",
          [](const PyTask& t, const pyb::dict& batch) {
            pyb::dict d;
            for (auto& p : t.task->reference_predictions(batch_from_dict(batch)))
              d[pyb::str(p.name)] = array_copy(p.probs, {p.size, p.length, p.vocab});
            return d;
          },
          pyb::arg("batch"), "Reference predictors' next-token distributions {ref.*: [n, L, V]} (empty if none).");

  m.def("list_tasks", [] {
    pyb::dict d;
    for (auto& t : task_registry()) d[pyb::str(t.name)] = t.description;
    return d;
  });
}

}  // namespace ihlab::py
