#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "analysis/head_scores.h"
#include "analysis/reference_kl.h"
#include "core/parallel.h"
#include "io/attention_log.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "io/run_dir.h"
#include "train/flow_cvode.h"
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
  Trainer(const RunSpec& spec, const Task& task, Model<T>& model, std::string dir, TrainOptions opt)
      : spec_(spec), task_(task), model_(model), dir_(std::move(dir)), opt_(opt) {}

  RunResult run();

 private:
  // ---- data ----
  void prepare_data();
  Batch train_batch(int64_t step) const;
  // ---- one stage ----
  bool run_optimizer_stage(size_t si);
  bool run_flow_stage(size_t si);
  bool after_step(size_t si, bool stage_end);  // logging, checkpoints, interrupts
  // ---- bookkeeping ----
  Scalars measure();
  void log_row(bool stage_end = false);
  void snapshot_attention(bool stage_end);
  int64_t next_snapshot_after(int64_t step) const;
  std::string save_checkpoint(bool stage_end);
  void load_latest();
  RunResult finish(std::string status, std::string message);
  bool diverged(const std::string& what, double value);

  const RunSpec& spec_;
  const Task& task_;
  Model<T>& model_;
  std::string dir_;
  TrainOptions opt_;

  Batch train_set_, val_set_;
  Scalars references_;
  std::vector<ReferencePrediction> reference_predictions_;  // on val_set_, for the kl.* columns
  std::vector<std::pair<std::string, Batch>> eval_sets_;      // the task's named evaluation sets
  std::unique_ptr<MetricsLog> log_;
  std::unique_ptr<AttentionLog> attention_log_;
  int64_t total_steps_ = 0;       // optimizer steps over all stages (flow stages count 0)
  int64_t next_snapshot_ = 0;     // the next step at or after which attention is saved
  bool has_attention_ = true;     // until model.attention() returns nothing
  std::unique_ptr<Progress> progress_;
  std::unique_ptr<Optimizer<T>> optimizer_;
  FlowState flow_;
  bool has_flow_state_ = false;
  bool any_flow_stage_ = false;  // the run logs flow_evals
  int64_t flow_evals_ = 0;       // gradient evaluations of every flow stage so far (checkpointed)

  int64_t step_ = 0;         // updates done, over all stages
  size_t stage_ = 0;         // current stage index
  int64_t stage_step_ = 0;   // updates done within the current stage
  bool stage_done_ = false;  // the checkpoint was taken at the end of stage_
  double last_loss_ = NAN, last_grad_norm_ = NAN, last_lr_ = NAN;
  std::string last_checkpoint_;
  std::vector<std::string> periodic_;
  std::chrono::steady_clock::time_point start_;
  double wall_before_ = 0;  // wall time of earlier sessions of a resumed run
  RunResult result_;
  std::string status_ = "finished", message_;
};

template <typename T>
void Trainer<T>::prepare_data() {
  std::tie(train_set_, val_set_) = run_datasets(spec_, task_);
  references_ = task_.reference_losses(val_set_);
  for (auto& kv : opt_.extra_references) references_.push_back(kv);
  reference_predictions_ = task_.reference_predictions(val_set_);
  for (auto& set : task_.eval_sets()) {
    std::string slug = set;
    std::replace(slug.begin(), slug.end(), '-', '_');
    eval_sets_.push_back({slug, task_.sample_eval(set, spec_.data.val_size, spec_.seed)});
  }
}

template <typename T>
Batch Trainer<T>::train_batch(int64_t step) const {
  const DataSpec& d = spec_.data;
  if (d.mode == DataMode::Fresh) return task_.sample(d.batch_size, spec_.seed, StreamKind::Data, uint64_t(step) + 1);
  if (d.batch_size == 0 || d.batch_size >= d.train_size) return train_set_;
  // A mini-batch without replacement: partial Fisher-Yates driven by a stream keyed on the step.
  RandomStream rng(spec_.seed, StreamKind::Data, uint64_t(1) << 40, uint64_t(step));
  std::vector<int64_t> idx(d.train_size);
  std::iota(idx.begin(), idx.end(), 0);
  for (int64_t i = 0; i < d.batch_size; ++i) std::swap(idx[i], idx[i + rng.randint(d.train_size - i)]);
  idx.resize(d.batch_size);
  return train_set_.select(idx);
}

template <typename T>
Scalars Trainer<T>::measure() {
  NoGradScope<T> no_grad(model_.params());
  Scalars row;
  double t = has_flow_state_ && spec_.stages[stage_].method == StageMethod::Flow ? flow_.t : NAN;
  double loss = last_loss_;
  if (step_ == 0 || std::isnan(loss)) loss = double(model_.loss(train_batch(step_)).item());
  row.push_back({"stage", double(stage_)});
  row.push_back({"t", t});
  row.push_back({"lr", last_lr_});
  row.push_back({"loss", loss});
  row.push_back({"grad_norm", last_grad_norm_});
  row.push_back({"val_loss", double(model_.loss(val_set_).item())});
  for (auto& [k, v] : model_.evaluate(val_set_)) row.push_back({"val_" + k, v});
  // Distance to each reference strategy (the stages of in-context learning), KL(ref || model).
  if (!reference_predictions_.empty()) {
    std::vector<double> probs = model_.next_token_probs(val_set_);
    if (!probs.empty())
      for (auto& ref : reference_predictions_) {
        std::string name = ref.name.rfind("ref.", 0) == 0 ? ref.name.substr(4) : ref.name;
        row.push_back({"kl." + name, mean_kl_to_reference(ref, probs, val_set_)});
      }
  }
  for (auto& [set, b] : eval_sets_) {
    row.push_back({"val_" + set + "_loss", double(model_.loss(b).item())});
    for (auto& [k, v] : model_.evaluate(b)) row.push_back({"val_" + set + "_" + k, v});
  }
  for (auto& kv : model_.probes()) row.push_back(kv);
  if (has_attention_ && spec_.log.head_scores > 0) {
    std::vector<std::vector<AttentionMap>> maps;
    for (int64_t s = 0; s < std::min(spec_.log.head_scores, val_set_.size); ++s) maps.push_back(model_.attention(val_set_, s));
    if (maps.empty() || maps[0].empty()) has_attention_ = false;  // a model without attention: stop asking
    for (auto& kv : attention_head_scores(maps, val_set_)) row.push_back(kv);
  }
  if (any_flow_stage_) row.push_back({"flow_evals", double(flow_evals_)});
  for (auto& kv : references_) row.push_back(kv);
  return row;
}

template <typename T>
void Trainer<T>::log_row(bool stage_end) {
  Scalars row = measure();
  log_->log(step_, row);
  result_.final_metrics = row;
  snapshot_attention(stage_end);
}

// Snapshots at steps 0 and ~total^(k/(n-1)), k = 1..n-1 (the first logged step at or after each),
// and at every stage end: early formation gets as many frames as the long tail.
template <typename T>
void Trainer<T>::snapshot_attention(bool stage_end) {
  const int64_t n = spec_.log.attention_snapshots;
  if (!attention_log_ || n <= 0 || (step_ < next_snapshot_ && !stage_end)) return;
  std::vector<AttentionMap> maps;
  {
    NoGradScope<T> no_grad(model_.params());
    maps = model_.attention(val_set_, 0);
  }
  if (maps.empty()) {  // a model without attention: stop asking
    attention_log_.reset();
    return;
  }
  std::vector<int32_t> tokens(val_set_.tokens.begin(), val_set_.tokens.begin() + val_set_.length);
  attention_log_->write(step_, int64_t(stage_), tokens, maps);
  next_snapshot_ = next_snapshot_after(step_);
}

template <typename T>
int64_t Trainer<T>::next_snapshot_after(int64_t s) const {
  const int64_t n = spec_.log.attention_snapshots;
  const double base = std::max<double>(double(total_steps_), 1.0);
  for (int64_t k = 1; k < n; ++k) {
    int64_t t = int64_t(std::ceil(std::pow(base, double(k) / double(n - 1))));
    if (t > s) return t;
  }
  return std::numeric_limits<int64_t>::max();
}

template <typename T>
std::string Trainer<T>::save_checkpoint(bool stage_end) {
  Checkpoint<T> c;
  c.meta = {{"step", step_},
            {"stage", stage_},
            {"stage_step", stage_step_},
            {"stage_done", stage_end},
            {"rng", {{"seed", spec_.seed}, {"data_index", step_}}},
            {"optimizer", {{"kind", enum_name(spec_.stages[stage_].optimizer.kind)},
                           {"steps_taken", optimizer_ ? optimizer_->steps_taken() : 0}}},
            {"flow_evals", flow_evals_},
            {"wall_seconds", wall_before_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count()},
            {"config", spec_.config}};
  // Reference columns a caller added (e.g. a reproduction's limiting model) survive a resume.
  for (auto& [k, v] : opt_.extra_references) c.meta["extra_references"][k] = v;
  c.params = snapshot_params(model_.params());
  if (optimizer_) c.optimizer_state = optimizer_->state_tensors();
  if (has_flow_state_) {
    c.meta["flow"] = {{"t", flow_.t}, {"h", flow_.h}, {"accepted", flow_.accepted}, {"rejected", flow_.rejected}};
    c.extra.push_back({"flow.y", Tensor<double>(Shape{int64_t(flow_.y.size())}, flow_.y)});
    c.extra.push_back({"flow.k_last", Tensor<double>(Shape{int64_t(flow_.k_last.size())}, flow_.k_last)});
  }
  std::string name = stage_end ? fmt::format("stage{}-{}-step{:08d}.safetensors", stage_, spec_.stages[stage_].name, step_)
                               : fmt::format("step{:08d}.safetensors", step_);
  std::string path = dir_ + "/checkpoints/" + name;
  ihlab::save_checkpoint(path, c);
  write_json_atomic(dir_ + "/checkpoints/latest.json", {{"file", name}, {"step", step_}});
  if (!stage_end) {
    periodic_.push_back(path);
    while (int64_t(periodic_.size()) > std::max<int64_t>(spec_.log.keep_checkpoints, 1)) {
      fs::remove(periodic_.front());
      periodic_.erase(periodic_.begin());
    }
  }
  last_checkpoint_ = path;
  return path;
}

template <typename T>
void Trainer<T>::load_latest() {
  std::string latest = dir_ + "/checkpoints/latest.json";
  IHLAB_CHECK(fs::exists(latest), "resume: no checkpoint in '{}' (missing {})", dir_, latest);
  std::string path = latest_checkpoint_path(dir_ + "/checkpoints");
  Checkpoint<T> c = load_checkpoint<T>(path);
  IHLAB_CHECK(c.meta.value("config", nlohmann::json()) == spec_.config,
              "resume: checkpoint '{}' was written with a different configuration than this run's; "
              "resume with the run's own config.toml", path);
  restore_params(c, model_.params());
  step_ = c.meta.at("step");
  stage_ = c.meta.at("stage");
  stage_step_ = c.meta.at("stage_step");
  stage_done_ = c.meta.at("stage_done");
  wall_before_ = c.meta.value("wall_seconds", 0.0);
  flow_evals_ = c.meta.value("flow_evals", int64_t(0));
  if (opt_.extra_references.empty() && c.meta.contains("extra_references"))
    for (auto& [k, v] : c.meta["extra_references"].items()) references_.push_back({k, v.template get<double>()});
  IHLAB_CHECK(stage_ < spec_.stages.size(), "resume: checkpoint '{}' is at stage {} but the run has {} stages",
              path, stage_, spec_.stages.size());
  const StageSpec& st = spec_.stages[stage_];
  model_.params().set_trainable(st.train);
  model_.set_objective(st.objective);
  optimizer_ = Optimizer<T>::make(st.optimizer);
  optimizer_->load_state(c.meta.at("optimizer").at("steps_taken"), c.optimizer_state);
  if (c.meta.contains("flow")) {
    auto& f = c.meta["flow"];
    flow_.t = f.at("t");
    flow_.h = f.at("h");
    flow_.accepted = f.at("accepted");
    flow_.rejected = f.at("rejected");
    for (auto& [k, v] : c.extra) {
      if (k == "flow.y") flow_.y.assign(v.span().begin(), v.span().end());
      if (k == "flow.k_last") flow_.k_last.assign(v.span().begin(), v.span().end());
    }
    has_flow_state_ = true;
  }
  last_checkpoint_ = path;
  // Periodic checkpoints of the earlier session keep rotating with the new ones.
  std::vector<std::string> periodic;
  for (auto& e : fs::directory_iterator(dir_ + "/checkpoints"))
    if (e.path().filename().string().rfind("step", 0) == 0 && e.path().extension() == ".safetensors")
      periodic.push_back(e.path().string());
  std::sort(periodic.begin(), periodic.end());  // zero-padded step numbers sort in step order
  periodic_ = periodic;
  if (stage_done_) {  // the checkpoint closed a stage: the next one starts fresh
    if (stage_ + 1 < spec_.stages.size()) model_.set_objective(spec_.stages[stage_ + 1].objective);
    ++stage_;
    stage_step_ = 0;
    optimizer_.reset();
    has_flow_state_ = false;
  }
}

template <typename T>
bool Trainer<T>::diverged(const std::string& what, double value) {
  status_ = "diverged";
  message_ = fmt::format("training diverged at step {} (stage '{}'): {} = {}. ", step_, spec_.stages[stage_].name,
                         what, value);
  // A non-finite loss or gradient leaves the parameters untouched: they are the last good state.
  if (all_finite(model_.params())) save_checkpoint(false);
  message_ += last_checkpoint_.empty() ? "No checkpoint had been written yet."
                                       : "Last good checkpoint: " + last_checkpoint_;
  return false;
}

template <typename T>
bool Trainer<T>::after_step(size_t si, bool stage_end) {
  const LogSpec& l = spec_.log;
  bool log_now = step_ % l.every == 0 || stage_end || (l.geometric && geometric_step(step_));
  if (log_now) log_row(stage_end);
  progress_->update(step_, fmt::format("loss {:.4g}", last_loss_), log_now);
  bool saved = true;
  if (stage_end) {
    save_checkpoint(true);
  } else if (l.checkpoint_every > 0 && step_ % l.checkpoint_every == 0) {
    save_checkpoint(false);
  } else {
    saved = false;
  }
  bool stop = interrupt_requested() || (opt_.stop_after >= 0 && step_ >= opt_.stop_after);
  if (stop && !saved) save_checkpoint(false);
  if (stop) {
    status_ = "interrupted";
    message_ = fmt::format("interrupted at step {}; resume with: ihlab train --resume {}", step_, dir_);
    return false;
  }
  return true;
}

template <typename T>
bool Trainer<T>::run_optimizer_stage(size_t si) {
  const StageSpec& st = spec_.stages[si];
  auto trainable = model_.params().trainable();
  for (int64_t k = stage_step_; k < st.steps; ++k) {
    last_lr_ = learning_rate(st.schedule, st.lr, k, st.steps);
    Batch b = train_batch(step_);
    model_.params().zero_grad();
    Var<T> loss = model_.loss(b);
    backward(loss);
    last_loss_ = double(loss.item());
    last_grad_norm_ = st.clip > 0 ? clip_grad_norm(trainable, st.clip) : grad_norm(trainable);
    if (!std::isfinite(last_loss_)) return diverged("loss", last_loss_);
    if (!std::isfinite(last_grad_norm_)) return diverged("gradient norm", last_grad_norm_);
    optimizer_->step(trainable, last_lr_);
    if (!all_finite(model_.params())) return diverged("a parameter", NAN);
    ++step_;
    stage_step_ = k + 1;
    const bool reached = st.stop_loss > 0 && last_loss_ <= st.stop_loss;
    if (!after_step(si, k + 1 == st.steps || reached)) return false;
    if (reached) break;
  }
  return true;
}

template <typename T>
bool Trainer<T>::run_flow_stage(size_t si) {
  const StageSpec& st = spec_.stages[si];
  auto trainable = model_.params().trainable();
  // dθ/dt = -lr ∇L(θ) on the fixed full training set.
  Derivative gradient = [&](double, const std::vector<double>& y, std::vector<double>& dydt) {
    ++flow_evals_;
    unpack_values(y, trainable);
    model_.params().zero_grad();
    Var<T> loss = model_.loss(train_set_);
    backward(loss);
    dydt = pack_grads(trainable);
    for (auto& g : dydt) g *= -st.lr;
  };
  const bool cvode = st.integrator == Integrator::CvodeBdf;
  DormandPrince dopri(gradient, st.flow);
  CvodeBdf bdf(gradient, st.flow);
  if (!has_flow_state_) {
    flow_ = FlowState{};
    flow_.y = pack_values(trainable);
    has_flow_state_ = true;
  }
  last_lr_ = st.lr;
  while (flow_.t < st.time) {
    if (cvode) {
      // One trainer step per segment; segment k = stage_step_ ends on a fixed geometric grid, so a
      // resumed run restarts the solver exactly where the uninterrupted one did.
      double t_end = cvode_segment_end(stage_step_, st.segment_first, st.segments_per_decade, st.time);
      IHLAB_CHECK(t_end > flow_.t, "flow (cvode-bdf): segment {} ends at {} but t is already {}", stage_step_, t_end,
                  flow_.t);
      bdf.integrate(flow_, t_end);
    } else {
      dopri.step(flow_, st.time);
    }
    unpack_values(flow_.y, trainable);
    ++step_;
    ++stage_step_;
    {
      NoGradScope<T> no_grad(model_.params());
      last_loss_ = double(model_.loss(train_set_).item());
    }
    last_grad_norm_ = NAN;
    if (!std::isfinite(last_loss_)) return diverged("loss", last_loss_);
    // stop_loss ends the stage at a step boundary, from the loss alone: a resumed run stops at
    // the same step as an uninterrupted one.
    const bool reached = st.stop_loss > 0 && last_loss_ <= st.stop_loss;
    if (!after_step(si, flow_.t >= st.time || reached)) return false;
    if (reached) break;
  }
  return true;
}

template <typename T>
RunResult Trainer<T>::finish(std::string status, std::string message) {
  result_.status = std::move(status);
  result_.message = std::move(message);
  result_.steps = step_;
  result_.wall_seconds = wall_before_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  result_.checkpoint = last_checkpoint_;
  nlohmann::json final_metrics = nlohmann::json::object();
  for (auto& [k, v] : result_.final_metrics)
    if (std::isfinite(v)) final_metrics[k] = v;
  nlohmann::json summary = {{"name", spec_.name},           {"status", result_.status},
                            {"message", result_.message},   {"steps", step_},
                            {"wall_seconds", result_.wall_seconds}, {"threads", num_threads()},
                            {"dtype", enum_name(spec_.dtype)},         {"seed", spec_.seed},
                            {"final", final_metrics},       {"checkpoint", last_checkpoint_},
                            {"claims", nlohmann::json::array()}};
  if (!opt_.command.empty()) summary["command"] = opt_.command;
  write_json_atomic(dir_ + "/summary.json", summary);
  progress_->finish(result_.status == "finished" ? "" : result_.message);
  return result_;
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
  prepare_data();
  int64_t total = 0;
  for (auto& s : spec_.stages) total += s.method == StageMethod::Flow ? 0 : s.steps;
  for (auto& s : spec_.stages) any_flow_stage_ |= s.method == StageMethod::Flow;
  total_steps_ = total;
  progress_ = std::make_unique<Progress>(total, opt_.quiet);
  const bool attention = spec_.log.attention_snapshots > 0 && val_set_.size > 0;
  if (opt_.resume) {
    load_latest();
    log_ = std::make_unique<MetricsLog>(dir_ + "/metrics.csv", step_);
    if (attention) {
      attention_log_ = std::make_unique<AttentionLog>(dir_ + "/attention.jsonl", spec_.log.attention_tokens, step_);
      // The schedule's state is a function of the last snapshot kept: the next target after it.
      next_snapshot_ = attention_log_->last_step() < 0 ? 0 : next_snapshot_after(attention_log_->last_step());
    }
  } else {
    IHLAB_CHECK(!fs::exists(dir_ + "/checkpoints/latest.json"),
                "train: '{}' already holds a run; pass --resume to continue it or choose another --out", dir_);
    std::ofstream(dir_ + "/config.toml") << to_toml(spec_.config);
    log_ = std::make_unique<MetricsLog>(dir_ + "/metrics.csv");
    model_.set_objective(spec_.stages[0].objective);
    if (attention) attention_log_ = std::make_unique<AttentionLog>(dir_ + "/attention.jsonl", spec_.log.attention_tokens);
    log_row();
  }
  for (; stage_ < spec_.stages.size(); ++stage_) {
    const StageSpec& st = spec_.stages[stage_];
    model_.params().set_trainable(st.train);
    model_.set_objective(st.objective);
    if (!optimizer_) optimizer_ = Optimizer<T>::make(st.optimizer);
    bool ok = st.method == StageMethod::Flow ? run_flow_stage(stage_) : run_optimizer_stage(stage_);
    if (!ok) return finish(status_, message_);
    optimizer_.reset();
    has_flow_state_ = false;
    stage_step_ = 0;
  }
  stage_ = spec_.stages.size() - 1;
  return finish("finished", "");
}

}  // namespace

std::pair<Batch, Batch> run_datasets(const RunSpec& spec, const Task& task) {
  const DataSpec& d = spec.data;
  if (d.mode == DataMode::Fixed) {
    // One pool from the data stream, split into training and validation sequences.
    Batch pool = task.sample(d.train_size + d.val_size, spec.seed, StreamKind::Data, 0);
    return {pool.slice(0, d.train_size), pool.slice(d.train_size, d.train_size + d.val_size)};
  }
  return {Batch{}, task.sample(d.val_size, spec.seed, StreamKind::Eval, 0)};
}

template <typename T>
RunResult train(const RunSpec& spec, const Task& task, Model<T>& model, const std::string& out_dir,
                const TrainOptions& options) {
  Trainer<T> t(spec, task, model, out_dir, options);
  return t.run();
}

template RunResult train<float>(const RunSpec&, const Task&, Model<float>&, const std::string&, const TrainOptions&);
template RunResult train<double>(const RunSpec&, const Task&, Model<double>&, const std::string&, const TrainOptions&);

}  // namespace ihlab
