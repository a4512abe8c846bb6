#include "train/checkpointing.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "io/checkpoint.h"
#include "io/run_dir.h"

namespace ihlab {
namespace fs = std::filesystem;

template <typename T>
Checkpointer<T>::Checkpointer(std::string dir, const RunSpec& spec, Scalars extra_references)
    : dir_(std::move(dir)), spec_(spec), extra_references_(std::move(extra_references)) {}

template <typename T>
bool Checkpointer<T>::has_run() const {
  return fs::exists(dir_ + "/checkpoints/latest.json");
}

template <typename T>
std::string Checkpointer<T>::save(const TrainPosition& pos, bool stage_end, double wall_seconds,
                                  const ParamStore<T>& params, const Optimizer<T>* optimizer, const FlowState* flow) {
  Checkpoint<T> c;
  c.meta = {{"step", pos.step},
            {"stage", pos.stage},
            {"stage_step", pos.stage_step},
            {"stage_done", stage_end},
            {"rng", {{"seed", spec_.seed}, {"data_index", pos.step}}},
            {"optimizer",
             {{"kind", enum_name(spec_.stages[pos.stage].optimizer.kind)},
              {"steps_taken", optimizer ? optimizer->steps_taken() : 0}}},
            {"flow_evals", pos.flow_evals},
            {"wall_seconds", wall_seconds},
            {"config", spec_.config}};
  // Reference columns a caller added (e.g. a reproduction's limiting model) survive a resume.
  for (auto& [k, v] : extra_references_) c.meta["extra_references"][k] = v;
  c.params = snapshot_params(params);
  if (optimizer) c.optimizer_state = optimizer->state_tensors();
  if (flow) {
    c.meta["flow"] = {{"t", flow->t}, {"h", flow->h}, {"accepted", flow->accepted}, {"rejected", flow->rejected}};
    c.extra.push_back({"flow.y", Tensor<double>(Shape{int64_t(flow->y.size())}, flow->y)});
    c.extra.push_back({"flow.k_last", Tensor<double>(Shape{int64_t(flow->k_last.size())}, flow->k_last)});
  }
  const std::string name =
      stage_end ? fmt::format("stage{}-{}-step{:08d}.safetensors", pos.stage, spec_.stages[pos.stage].name, pos.step)
                : fmt::format("step{:08d}.safetensors", pos.step);
  const std::string path = dir_ + "/checkpoints/" + name;
  save_checkpoint(path, c);
  write_json_atomic(dir_ + "/checkpoints/latest.json", {{"file", name}, {"step", pos.step}});
  if (!stage_end) {
    periodic_.push_back(path);
    while (int64_t(periodic_.size()) > std::max<int64_t>(spec_.log.keep_checkpoints, 1)) {
      fs::remove(periodic_.front());
      periodic_.erase(periodic_.begin());
    }
  }
  last_ = path;
  return path;
}

template <typename T>
Resumed<T> Checkpointer<T>::resume(ParamStore<T>& params) {
  const std::string latest = dir_ + "/checkpoints/latest.json";
  IHLAB_CHECK(fs::exists(latest), "resume: no checkpoint in '{}' (missing {})", dir_, latest);
  const std::string path = latest_checkpoint_path(dir_ + "/checkpoints");
  Checkpoint<T> c = load_checkpoint<T>(path);
  IHLAB_CHECK(c.meta.value("config", nlohmann::json()) == spec_.config,
              "resume: checkpoint '{}' was written with a different configuration than this run's; "
              "resume with the run's own config.toml",
              path);
  restore_params(c, params);
  Resumed<T> r;
  r.position.step = c.meta.at("step");
  r.position.stage = c.meta.at("stage");
  r.position.stage_step = c.meta.at("stage_step");
  r.position.stage_done = c.meta.at("stage_done");
  r.position.flow_evals = c.meta.value("flow_evals", int64_t(0));
  r.wall_seconds = c.meta.value("wall_seconds", 0.0);
  if (c.meta.contains("extra_references"))
    for (auto& [k, v] : c.meta["extra_references"].items()) r.extra_references.push_back({k, v.template get<double>()});
  // A caller that gives no extra references (`ihlab train --resume`) keeps the first session's,
  // in this session's rows and in the checkpoints it writes.
  if (extra_references_.empty()) extra_references_ = r.extra_references;
  IHLAB_CHECK(r.position.stage < spec_.stages.size(),
              "resume: checkpoint '{}' is at stage {} but the run has {} stages", path, r.position.stage,
              spec_.stages.size());
  r.optimizer = Optimizer<T>::make(spec_.stages[r.position.stage].optimizer);
  r.optimizer->load_state(c.meta.at("optimizer").at("steps_taken"), c.optimizer_state);
  if (c.meta.contains("flow")) {
    auto& f = c.meta["flow"];
    FlowState s;
    s.t = f.at("t");
    s.h = f.at("h");
    s.accepted = f.at("accepted");
    s.rejected = f.at("rejected");
    for (auto& [k, v] : c.extra) {
      if (k == "flow.y") s.y.assign(v.span().begin(), v.span().end());
      if (k == "flow.k_last") s.k_last.assign(v.span().begin(), v.span().end());
    }
    r.flow = std::move(s);
  }
  last_ = path;
  // Periodic checkpoints of the earlier session keep rotating with the new ones.
  periodic_.clear();
  for (auto& e : fs::directory_iterator(dir_ + "/checkpoints"))
    if (e.path().filename().string().rfind("step", 0) == 0 && e.path().extension() == ".safetensors")
      periodic_.push_back(e.path().string());
  std::sort(periodic_.begin(), periodic_.end());  // zero-padded step numbers sort in step order
  return r;
}

template class Checkpointer<float>;
template class Checkpointer<double>;

}  // namespace ihlab
