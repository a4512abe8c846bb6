// ihlab.train / ihlab.reproduce: the command line's runtime with the GIL released, Python
// callbacks, and Ctrl-C turned into KeyboardInterrupt once the checkpoint is written.
#include <csignal>
#include <memory>
#include <optional>

#include "bindings.h"
#include "core/parallel.h"
#include "io/config.h"
#include "io/run_summary.h"
#include "models/transformer_export.h"
#include "report/report.h"
#include "reproduce/reproduction.h"
#include "train/interrupt.h"
#include "train/run.h"
#include "train/run_schema.h"

namespace ihlab::py {
namespace {

// While a run trains, SIGINT / SIGTERM go to the trainer's handler (train/interrupt.h), which the
// trainer polls between steps; Python's handlers are put back afterwards. Signals can only be
// handled on Python's main thread; elsewhere nothing is installed and Ctrl-C reaches Python later.
class InterruptScope {
 public:
  InterruptScope() {
    pyb::module_ threading = pyb::module_::import("threading");
    active_ = threading.attr("current_thread")().is(threading.attr("main_thread")());
    clear_interrupt();
    if (!active_) return;
    old_int_ = std::signal(SIGINT, SIG_IGN);
    old_term_ = std::signal(SIGTERM, SIG_IGN);
    install_interrupt_handler();
  }
  ~InterruptScope() {
    if (!active_) return;
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
  }
  // True when a signal (not a callback) stopped the run; clears the flag for the next run.
  bool signalled() {
    bool s = interrupt_requested();
    clear_interrupt();
    return s;
  }

 private:
  bool active_ = false;
  void (*old_int_)(int) = SIG_DFL;
  void (*old_term_)(int) = SIG_DFL;
};

[[noreturn]] void raise_keyboard_interrupt(const std::string& message) {
  PyErr_SetString(PyExc_KeyboardInterrupt, message.c_str());
  throw pyb::error_already_set();
}

nlohmann::json resolve_run(const pyb::object& config, const std::vector<std::string>& overrides) {
  return run_schema().resolve(raw_config(config, overrides));
}

pyb::object train(const pyb::object& config, const std::string& out, const std::vector<std::string>& overrides,
                  bool resume, const pyb::object& callback, int64_t every, bool quiet, bool report) {
  nlohmann::json resolved;
  if (resume) {
    IHLAB_CHECK(config.is_none() && overrides.empty(),
                "train: resume=True continues the run in `out` with its own config.toml; give no config or overrides");
    resolved = load_config(out + "/config.toml", {}, run_schema());  // as `ihlab train --resume`
  } else {
    IHLAB_CHECK(!config.is_none(), "train: a configuration (dict or TOML path) is required (or resume=True)");
    resolved = resolve_run(config, overrides);
  }
  IHLAB_CHECK(every >= 1, "train: every = {} is out of range (allowed: every >= 1)", every);
  TrainOptions opt;
  opt.resume = resume;
  opt.quiet = quiet;
  std::shared_ptr<pyb::error_already_set> callback_error;
  if (!callback.is_none()) {
    opt.on_step = [&](int64_t step, const Scalars& row, bool logged) {
      if (step % every != 0) return true;
      pyb::gil_scoped_acquire hold;
      try {
        pyb::dict d = scalars_dict(row);
        d["step"] = step;
        d["logged"] = logged;
        pyb::object r = callback(step, d);
        return !(r.is(pyb::bool_(false)));
      } catch (pyb::error_already_set& e) {
        callback_error = std::make_shared<pyb::error_already_set>(std::move(e));
        return false;  // stops the run as Ctrl-C does: checkpoint, status interrupted
      }
    };
  }
  RunResult r;
  bool signalled;
  {
    InterruptScope interrupts;
    {
      pyb::gil_scoped_release free;
      r = run_config(resolved, out, opt);
      if (report && r.finished()) write_report(out, {.figures = false, .quiet = true}, {&r.summary, &r.metrics});
    }
    signalled = interrupts.signalled();
  }
  if (callback_error) throw std::move(*callback_error);
  if (signalled && r.summary.status == RunStatus::Interrupted) raise_keyboard_interrupt(r.summary.message);
  return from_json(summary_to_json(r.summary));
}

pyb::object reproduce(const std::string& name, const std::string& out, bool quick, const std::string& compat,
                      const std::vector<std::string>& overrides, bool evaluate_only, bool quiet, int seeds) {
  IHLAB_CHECK(seeds >= 0, "reproduce: seeds = {} is not allowed (allowed: 0 for the reproduction's default, or >= 1)",
              seeds);
  ReproduceOptions o;
  o.seeds = seeds;  // in this process, one seed after another (worker processes need the CLI)
  o.quick = quick;
  o.compat = compat;
  o.overrides = overrides;
  o.evaluate_only = evaluate_only;
  o.quiet = quiet;
  ReproResult r;
  bool signalled;
  {
    InterruptScope interrupts;
    pyb::gil_scoped_release free;
    r = run_reproduction(name, out, o);
    signalled = interrupts.signalled();
  }
  if (signalled && r.run.summary.status == RunStatus::Interrupted) raise_keyboard_interrupt(r.run.summary.message);
  return from_json(summary_to_json(r.run.summary));
}

}  // namespace

void bind_train(pyb::module_& m) {
  m.def("resolve_config", &resolve_run, pyb::arg("config"), pyb::arg("overrides") = std::vector<std::string>{},
        "The resolved run configuration (every default filled in), or ConfigError with the CLI's message.");
  m.def("train", &train, pyb::arg("config"), pyb::arg("out"), pyb::arg("overrides"), pyb::arg("resume"),
        pyb::arg("callback"), pyb::arg("every"), pyb::arg("quiet"), pyb::arg("report"));
  m.def("reproduce", &reproduce, pyb::arg("name"), pyb::arg("out"), pyb::arg("quick"), pyb::arg("compat"),
        pyb::arg("overrides"), pyb::arg("evaluate_only"), pyb::arg("quiet"), pyb::arg("seeds"));
  m.def(
      "write_report",
      [](const std::string& dir, bool figures) {
        ReportResult r;
        {
          pyb::gil_scoped_release free;
          r = write_report(dir, {.figures = figures, .quiet = true});
        }
        return pyb::make_tuple(r.html, r.warnings);
      },
      pyb::arg("dir"), pyb::arg("figures") = false);
  m.def(
      "export_transformer_lens",
      [](const std::string& run_dir, const std::string& out, const std::string& checkpoint) {
        TransformerLensExport e = export_transformer_lens(run_dir, out, checkpoint);
        pyb::dict d;
        d["safetensors"] = e.safetensors;
        d["config_path"] = e.config;
        d["config"] = from_json(e.cfg);
        d["names"] = e.names;
        return d;
      },
      pyb::arg("run_dir"), pyb::arg("out"), pyb::arg("checkpoint") = "");
  m.def("list_reproductions", [] {
    pyb::dict d;
    for (auto& r : reproduction_registry()) d[pyb::str(r.name)] = r.description;
    return d;
  });
  m.def("set_threads", &set_threads, pyb::arg("n"), "Worker threads (0 = all cores); results do not depend on it.");
  m.def("num_threads", &num_threads);
}

}  // namespace ihlab::py
