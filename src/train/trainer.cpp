#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include <fmt/format.h>

#include "core/parallel.h"
#include "io/config.h"
#include "train/checkpointing.h"
#include "train/flow_cvode.h"
#include "train/instruments.h"
#include "train/interrupt.h"
#include "train/progress.h"

namespace ihlab {
namespace fs = std::filesystem;

namespace {

// About 20 steps per decade (1, 2, ..., 10, 11, 12, 14, 15, 17, 20, ...): early dynamics on a
// log-step axis get as many rows as late ones.
bool geometric_step(int64_t s) {
  if (s <= 10) return true;
  return std::floor(20 * std::log10(double(s))) != std::floor(20 * std::log10(double(s - 1)));
}

template <typename T>
bool all_finite(const ParamStore<T>& p) {
  for (auto& x : p.all())
    for (T v : x.var.value().span())
      if (!std::isfinite(v)) return false;
  return true;
}

template <typename T>
class Trainer {
 public:
  Trainer(const RunSpec& spec, const RunData& data, Model<T>& model, std::string dir, TrainOptions opt)
      : spec_(spec),
        data_(data),
        model_(model),
        dir_(std::move(dir)),
        opt_(std::move(opt)),
        checkpoints_(dir_, spec_, opt_.extra_references) {}

  RunResult run();

 private:
  void start();  // a fresh run or the resumed state, the logs and the instruments
  // One stage each; false when the run stopped (interrupted or diverged).
  bool run_optimizer_stage(const StageSpec& st);
  bool run_flow_stage(const StageSpec& st);
  bool after_step(bool stage_end);  // logging, checkpoints, interrupts
  void log_row(bool stage_end);
  std::string save_checkpoint(bool stage_end);
  bool diverged(const std::string& what, double value);
  double wall_seconds() const;
  RunResult finish(RunStatus status, std::string message);

  const RunSpec& spec_;
  const RunData& data_;
  Model<T>& model_;
  std::string dir_;
  TrainOptions opt_;

  Checkpointer<T> checkpoints_;
  std::unique_ptr<MetricsLog> log_;
  Instruments<T> instruments_;
  std::unique_ptr<Progress> progress_;
  std::unique_ptr<Optimizer<T>> optimizer_;  // of the current stage
  std::optional<FlowState> flow_;            // the integrator inside a flow stage
  TrainPosition pos_;
  double last_loss_ = NAN, last_grad_norm_ = NAN, last_lr_ = NAN;  // of the last update
  Scalars last_row_;
  std::chrono::steady_clock::time_point start_;
  double wall_before_ = 0;  // wall time of earlier sessions of a resumed run
  RunStatus status_ = RunStatus::Finished;
  std::string message_;
};

template <typename T>
void Trainer<T>::start() {
  int64_t total = 0;
  for (auto& s : spec_.stages) total += s.method == StageMethod::Flow ? 0 : s.steps;
  progress_ = std::make_unique<Progress>(total, opt_.quiet);
  InstrumentSetup setup{dir_, -1, total, opt_.extra_references};
  if (opt_.resume) {
    Resumed<T> r = checkpoints_.resume(model_.params());
    pos_ = r.position;
    wall_before_ = r.wall_seconds;
    optimizer_ = std::move(r.optimizer);
    flow_ = std::move(r.flow);
    if (setup.extra_references.empty()) setup.extra_references = r.extra_references;
    if (pos_.stage_done) {  // the checkpoint closed a stage: the next one starts fresh
      ++pos_.stage;
      pos_.stage_step = 0;
      optimizer_.reset();
      flow_.reset();
    }
    setup.resume_step = pos_.step;
    log_ = std::make_unique<MetricsLog>(dir_ + "/metrics.csv", pos_.step);
    // The last row kept is the run's latest state: a run resumed from its final checkpoint logs
    // nothing more and must still end with the same final metrics as one never interrupted.
    const MetricsTable& kept = log_->table();
    if (!kept.rows.empty())
      for (size_t c = 0; c < kept.columns.size(); ++c)
        if (kept.columns[c] != "step") last_row_.emplace_back(kept.columns[c], kept.rows.back()[c]);
    instruments_ = make_instruments<T>(spec_, data_, setup);
    return;
  }
  IHLAB_CHECK(!checkpoints_.has_run(),
              "train: '{}' already holds a run; pass --resume to continue it or choose another --out", dir_);
  std::ofstream(dir_ + "/config.toml") << to_toml(spec_.config);
  log_ = std::make_unique<MetricsLog>(dir_ + "/metrics.csv");
  model_.set_objective(spec_.stages[0].objective);
  instruments_ = make_instruments<T>(spec_, data_, setup);
  log_row(false);
}

template <typename T>
void Trainer<T>::log_row(bool stage_end) {
  NoGradScope<T> no_grad(model_.params());
  const bool flow_stage = flow_ && spec_.stages[pos_.stage].method == StageMethod::Flow;
  double loss = last_loss_;
  if (pos_.step == 0 || std::isnan(loss)) loss = double(model_.loss(train_batch(spec_, data_, pos_.step)).item());
  Scalars row = {{"stage", double(pos_.stage)},
                 {"t", flow_stage ? flow_->t : NAN},
                 {"lr", last_lr_},
                 {"loss", loss},
                 {"grad_norm", last_grad_norm_}};
  LogPoint<T> p{model_, data_.val, pos_.step, int64_t(pos_.stage), stage_end, pos_.flow_evals};
  for (auto& in : instruments_) in->measure(p, row);
  log_->log(pos_.step, row);
  last_row_ = std::move(row);
  for (auto& in : instruments_) in->after_row(p);
}

template <typename T>
double Trainer<T>::wall_seconds() const {
  return wall_before_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

template <typename T>
std::string Trainer<T>::save_checkpoint(bool stage_end) {
  return checkpoints_.save(pos_, stage_end, wall_seconds(), model_.params(), optimizer_.get(),
                           flow_ ? &*flow_ : nullptr);
}

template <typename T>
bool Trainer<T>::diverged(const std::string& what, double value) {
  status_ = RunStatus::Diverged;
  message_ = fmt::format("training diverged at step {} (stage '{}'): {} = {}. ", pos_.step,
                         spec_.stages[pos_.stage].name, what, value);
  // A non-finite loss or gradient leaves the parameters untouched: they are the last good state.
  if (all_finite(model_.params())) save_checkpoint(false);
  message_ += checkpoints_.last().empty() ? "No checkpoint had been written yet."
                                          : "Last good checkpoint: " + checkpoints_.last();
  return false;
}

template <typename T>
bool Trainer<T>::after_step(bool stage_end) {
  adopt_offered_threads();  // cores a finished sibling run left (core/parallel.h)
  const LogSpec& l = spec_.log;
  const int64_t step = pos_.step;
  bool log_now = step % l.every == 0 || stage_end || (l.geometric && geometric_step(step));
  if (log_now) log_row(stage_end);
  progress_->update(step, fmt::format("loss {:.4g}", last_loss_), log_now);
  bool saved = true;
  if (stage_end) {
    save_checkpoint(true);
  } else if (l.checkpoint_every > 0 && step % l.checkpoint_every == 0) {
    save_checkpoint(false);
  } else {
    saved = false;
  }
  bool keep_going = true;
  if (opt_.on_step) {
    const Scalars brief = {
        {"stage", double(pos_.stage)}, {"lr", last_lr_}, {"loss", last_loss_}, {"grad_norm", last_grad_norm_}};
    keep_going = opt_.on_step(step, log_now ? last_row_ : brief, log_now);
  }
  bool stop = !keep_going || interrupt_requested() || (opt_.stop_after >= 0 && step >= opt_.stop_after);
  if (stop && !saved) save_checkpoint(false);
  if (stop) {
    status_ = RunStatus::Interrupted;
    message_ = fmt::format("interrupted at step {}; resume with: ihlab train --resume {}", step, dir_);
    return false;
  }
  return true;
}

template <typename T>
bool Trainer<T>::run_optimizer_stage(const StageSpec& st) {
  auto trainable = model_.params().trainable();
  for (int64_t k = pos_.stage_step; k < st.steps; ++k) {
    last_lr_ = learning_rate(st.schedule, st.lr, k, st.steps);
    // Under MPI each rank draws only the rows of its shards.
    const DataParallel& dp = opt_.data_parallel;
    Batch drawn;
    const Batch* b = dp.size == 1 ? whole_train_batch(spec_, data_) : nullptr;  // not copied every step
    if (!b) {
      if (dp.size == 1) {
        drawn = train_batch(spec_, data_, pos_.step);
      } else {
        const auto [begin, end] = rank_rows(train_batch_size(spec_), spec_.data.shards, dp);
        drawn = train_batch_rows(spec_, data_, pos_.step, begin, end);
      }
      b = &drawn;
    }
    last_loss_ = sharded_gradient(model_, *b, spec_.data.shards, dp);
    last_grad_norm_ = st.clip > 0 ? clip_grad_norm(trainable, st.clip) : grad_norm(trainable);
    if (!std::isfinite(last_loss_)) return diverged("loss", last_loss_);
    if (!std::isfinite(last_grad_norm_)) return diverged("gradient norm", last_grad_norm_);
    optimizer_->step(trainable, last_lr_);
    if (!all_finite(model_.params())) return diverged("a parameter", NAN);
    ++pos_.step;
    pos_.stage_step = k + 1;
    const bool reached = st.stop_loss > 0 && last_loss_ <= st.stop_loss;
    if (!after_step(k + 1 == st.steps || reached)) return false;
    if (reached) break;
  }
  return true;
}

template <typename T>
bool Trainer<T>::run_flow_stage(const StageSpec& st) {
  auto trainable = model_.params().trainable();
  // dθ/dt = -lr ∇L(θ) on the fixed full training set.
  Derivative gradient = [&](double, const std::vector<double>& y, std::vector<double>& dydt) {
    ++pos_.flow_evals;
    unpack_values(y, trainable);
    model_.params().zero_grad();
    Var<T> loss = model_.loss(data_.train);
    backward(loss);
    dydt = pack_grads(trainable);
    for (auto& g : dydt) g *= -st.lr;
  };
  const bool cvode = st.integrator == Integrator::CvodeBdf;
  DormandPrince dopri(gradient, st.flow);
  CvodeBdf bdf(gradient, st.flow);
  if (!flow_) {
    flow_ = FlowState{};
    flow_->y = pack_values(trainable);
  }
  FlowState& flow = *flow_;
  last_lr_ = st.lr;
  while (flow.t < st.time) {
    if (cvode) {
      // One trainer step per segment; segment k = stage_step ends on a fixed geometric grid, so a
      // resumed run restarts the solver exactly where the uninterrupted one did.
      double t_end = cvode_segment_end(pos_.stage_step, st.segment_first, st.segments_per_decade, st.time);
      IHLAB_CHECK(t_end > flow.t, "flow (cvode-bdf): segment {} ends at {} but t is already {}", pos_.stage_step, t_end,
                  flow.t);
      bdf.integrate(flow, t_end);
    } else {
      dopri.step(flow, st.time);
    }
    unpack_values(flow.y, trainable);
    ++pos_.step;
    ++pos_.stage_step;
    {
      NoGradScope<T> no_grad(model_.params());
      last_loss_ = double(model_.loss(data_.train).item());
    }
    last_grad_norm_ = NAN;
    if (!std::isfinite(last_loss_)) return diverged("loss", last_loss_);
    // stop_loss ends the stage at a step boundary, from the loss alone: a resumed run stops at
    // the same step as an uninterrupted one.
    const bool reached = st.stop_loss > 0 && last_loss_ <= st.stop_loss;
    if (!after_step(flow.t >= st.time || reached)) return false;
    if (reached) break;
  }
  return true;
}

template <typename T>
RunResult Trainer<T>::finish(RunStatus status, std::string message) {
  RunResult r;
  r.spec = spec_;
  r.metrics = log_->table();
  RunSummary& s = r.summary;
  s.name = spec_.name;
  s.status = status;
  s.message = std::move(message);
  s.steps = pos_.step;
  s.wall_seconds = wall_seconds();
  s.threads = num_threads();
  s.dtype = enum_name(spec_.dtype);
  s.seed = spec_.seed;
  s.final_metrics = last_row_;
  s.checkpoint = checkpoints_.last();
  s.command = opt_.command;
  write_summary(dir_, s);
  progress_->finish(s.finished() ? "" : s.message);
  return r;
}

template <typename T>
RunResult Trainer<T>::run() {
  start_ = std::chrono::steady_clock::now();
  // Every stage's objective is checked before anything runs, not when its stage starts.
  for (size_t i = 0; i < spec_.stages.size(); ++i) {
    try {
      model_.set_objective(spec_.stages[i].objective);
    } catch (const Error& e) {
      fail("stages[{}] (stage '{}'): {}", i, spec_.stages[i].name, e.what());
    }
  }
  fs::create_directories(dir_ + "/checkpoints");
  start();
  for (; pos_.stage < spec_.stages.size(); ++pos_.stage) {
    const StageSpec& st = spec_.stages[pos_.stage];
    model_.params().set_trainable(st.train);
    model_.set_objective(st.objective);
    if (!optimizer_) optimizer_ = Optimizer<T>::make(st.optimizer);
    bool ok = st.method == StageMethod::Flow ? run_flow_stage(st) : run_optimizer_stage(st);
    if (!ok) return finish(status_, message_);
    optimizer_.reset();
    flow_.reset();
    pos_.stage_step = 0;
  }
  pos_.stage = spec_.stages.size() - 1;
  return finish(RunStatus::Finished, "");
}

}  // namespace

template <typename T>
RunResult train(const RunSpec& spec, const RunData& data, Model<T>& model, const std::string& out_dir,
                const TrainOptions& options) {
  Trainer<T> t(spec, data, model, out_dir, options);
  return t.run();
}

template RunResult train<float>(const RunSpec&, const RunData&, Model<float>&, const std::string&, const TrainOptions&);
template RunResult train<double>(const RunSpec&, const RunData&, Model<double>&, const std::string&,
                                 const TrainOptions&);

}  // namespace ihlab
