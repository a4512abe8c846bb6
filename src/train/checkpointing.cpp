#include "train/checkpointing.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "io/checkpoint.h"
#include "io/run_dir.h"

namespace ihlab {

namespace {

// Reading the loop position from a checkpoint's meta on resume. Each value is checked, so that a
// damaged checkpoint is refused naming the key rather than failing inside nlohmann (a missing key
// or a wrong type) or restarting the loop from a nonsense position (a negative count). Found by
// the fuzz_resume target (tests/fuzz/).
const nlohmann::json& meta_value(const std::string& path, const nlohmann::json& obj, const std::string& key,
                                 const std::string& name) {
  const auto it = obj.find(key);  // end() for a non-object too
  IHLAB_CHECK(it != obj.end(), "resume: checkpoint '{}' is damaged: its meta has no \"{}\"", path, name);
  return *it;
}

int64_t meta_count(const std::string& path, const nlohmann::json& obj, const std::string& key,
                   const std::string& name) {
  const nlohmann::json& v = meta_value(path, obj, key, name);
  IHLAB_CHECK(v.is_number_unsigned() ? v.get<uint64_t>() <= uint64_t(INT64_MAX)
                                     : v.is_number_integer() && v.get<int64_t>() >= 0,
              "resume: checkpoint '{}' is damaged: meta \"{}\" = {} must be an integer >= 0", path, name, v.dump());
  return v.get<int64_t>();
}

// Finite and, with `nonnegative`, >= 0; null (how JSON writes NaN) only where `null_is_nan`.
double meta_number(const std::string& path, const nlohmann::json& obj, const std::string& key, const std::string& name,
                   bool nonnegative, bool null_is_nan = false) {
  const nlohmann::json& v = meta_value(path, obj, key, name);
  if (null_is_nan && v.is_null()) return NAN;
  IHLAB_CHECK(v.is_number() && std::isfinite(v.get<double>()) && (!nonnegative || v.get<double>() >= 0),
              "resume: checkpoint '{}' is damaged: meta \"{}\" = {} must be a finite number{}", path, name, v.dump(),
              nonnegative ? " >= 0" : "");
  return v.get<double>();
}

bool meta_flag(const std::string& path, const nlohmann::json& obj, const std::string& key, const std::string& name) {
  const nlohmann::json& v = meta_value(path, obj, key, name);
  IHLAB_CHECK(v.is_boolean(), "resume: checkpoint '{}' is damaged: meta \"{}\" = {} must be true or false", path, name,
              v.dump());
  return v.get<bool>();
}

}  // namespace
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

// The configuration a checkpoint was written with against this run's. Keys added to the schema
// after the checkpoint was written are absent from it; at their neutral value they change nothing,
// so they are dropped from this run's configuration before the comparison (a run of an earlier
// version resumes).
namespace {
bool same_config(const nlohmann::json& saved, nlohmann::json now) {
  static const std::vector<std::pair<std::string, nlohmann::json>> added = {{"/data/shards", 1},
                                                                            {"/model/token_loss", "cross-entropy"}};
  for (auto& [pointer, neutral] : added) {
    const nlohmann::json::json_pointer ptr(pointer);
    if (!saved.contains(ptr) && now.contains(ptr) && now.at(ptr) == neutral)
      now.at(ptr.parent_pointer()).erase(ptr.back());
  }
  return saved == now;
}
}  // namespace

template <typename T>
Resumed<T> Checkpointer<T>::resume(ParamStore<T>& params) {
  const std::string latest = dir_ + "/checkpoints/latest.json";
  IHLAB_CHECK(fs::exists(latest), "resume: no checkpoint in '{}' (missing {})", dir_, latest);
  const std::string path = latest_checkpoint_path(dir_ + "/checkpoints");
  Checkpoint<T> c = load_checkpoint<T>(path);
  IHLAB_CHECK(c.meta.is_object(), "resume: checkpoint '{}' is damaged: its meta is not a JSON object", path);
  IHLAB_CHECK(same_config(c.meta.value("config", nlohmann::json()), spec_.config),
              "resume: checkpoint '{}' was written with a different configuration than this run's; "
              "resume with the run's own config.toml",
              path);
  restore_params(c, params);
  Resumed<T> r;
  r.position.step = meta_count(path, c.meta, "step", "step");
  r.position.stage = size_t(meta_count(path, c.meta, "stage", "stage"));
  r.position.stage_step = meta_count(path, c.meta, "stage_step", "stage_step");
  IHLAB_CHECK(r.position.stage_step <= r.position.step,
              "resume: checkpoint '{}' is damaged: meta \"stage_step\" = {} is more than \"step\" = {}", path,
              r.position.stage_step, r.position.step);
  r.position.stage_done = meta_flag(path, c.meta, "stage_done", "stage_done");
  r.position.flow_evals = c.meta.contains("flow_evals") ? meta_count(path, c.meta, "flow_evals", "flow_evals") : 0;
  r.wall_seconds =
      c.meta.contains("wall_seconds") ? meta_number(path, c.meta, "wall_seconds", "wall_seconds", true) : 0.0;
  if (c.meta.contains("extra_references")) {
    const auto& refs = c.meta["extra_references"];
    IHLAB_CHECK(refs.is_object(), "resume: checkpoint '{}' is damaged: meta \"extra_references\" must be an object",
                path);
    for (auto& [k, v] : refs.items())
      r.extra_references.push_back({k, meta_number(path, refs, k, "extra_references." + k, false, true)});
  }
  // A caller that gives no extra references (`ihlab train --resume`) keeps the first session's,
  // in this session's rows and in the checkpoints it writes.
  if (extra_references_.empty()) extra_references_ = r.extra_references;
  IHLAB_CHECK(r.position.stage < spec_.stages.size(),
              "resume: checkpoint '{}' is at stage {} but the run has {} stages", path, r.position.stage,
              spec_.stages.size());
  r.optimizer = Optimizer<T>::make(spec_.stages[r.position.stage].optimizer);
  r.optimizer->load_state(
      meta_count(path, meta_value(path, c.meta, "optimizer", "optimizer"), "steps_taken", "optimizer.steps_taken"),
      c.optimizer_state);
  if (c.meta.contains("flow")) {
    auto& f = c.meta["flow"];
    FlowState s;
    s.t = meta_number(path, f, "t", "flow.t", true);
    s.h = meta_number(path, f, "h", "flow.h", true);
    s.accepted = meta_count(path, f, "accepted", "flow.accepted");
    s.rejected = meta_count(path, f, "rejected", "flow.rejected");
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
