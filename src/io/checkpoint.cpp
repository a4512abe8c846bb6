#include "io/checkpoint.h"

#include "io/run_dir.h"
#include "io/safetensors.h"

#include <algorithm>
#include <map>

namespace ihlab {
namespace {

constexpr const char* kParamPrefix = "param.";
constexpr const char* kOptPrefix = "opt.";
constexpr const char* kExtraPrefix = "extra.";

bool strip_prefix(const std::string& s, const std::string& prefix, std::string* rest) {
  if (s.compare(0, prefix.size(), prefix) != 0) return false;
  *rest = s.substr(prefix.size());
  return true;
}

template <typename U>
void append_section(SafetensorsFile& f, const char* prefix,
                    const std::vector<std::pair<std::string, Tensor<U>>>& section) {
  for (auto& [name, t] : section) f.tensors.push_back(to_raw(prefix + name, t));
}

// from_raw's message names the tensor but not the file; a user with several runs needs both.
template <typename U>
Tensor<U> tensor_from_file(const std::string& path, const RawTensor& raw) {
  try {
    return from_raw<U>(raw);
  } catch (const Error& e) {
    fail("checkpoint {}: {}", path, e.what());
  }
}

std::string meta_string(const std::string& path, const nlohmann::json& meta) {
  try {
    return meta.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("cannot write checkpoint {}: meta is not serializable ({})", path, e.what());
  }
}

const std::string& required_metadata(const std::string& path, const SafetensorsFile& f, const std::string& key) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end())
    fail("{} is not an ihlab checkpoint: its __metadata__ has no \"{}\" (expected format {})", path, key,
         kCheckpointFormat);
  return it->second;
}

}  // namespace

template <typename T>
void save_checkpoint(const std::string& path, const Checkpoint<T>& ckpt) {
  SafetensorsFile f;
  f.metadata["format"] = kCheckpointFormat;
  f.metadata["dtype"] = dtype_of<T>();
  f.metadata["ihlab"] = meta_string(path, ckpt.meta);
  append_section(f, kParamPrefix, ckpt.params);
  append_section(f, kOptPrefix, ckpt.optimizer_state);
  append_section(f, kExtraPrefix, ckpt.extra);
  write_safetensors(path, f);
}

template <typename T>
Checkpoint<T> load_checkpoint(const std::string& path) {
  SafetensorsFile f = read_safetensors(path);
  const std::string& format = required_metadata(path, f, "format");
  IHLAB_CHECK(format == kCheckpointFormat, "{} is not a supported ihlab checkpoint: format '{}' (expected {})", path,
              format, kCheckpointFormat);
  const std::string& dtype = required_metadata(path, f, "dtype");
  IHLAB_CHECK(dtype == dtype_of<T>(), "checkpoint {} holds {} parameters but {} ({}) was expected", path, dtype,
              dtype_of<T>(), type_name_of<T>());

  Checkpoint<T> ckpt;
  const std::string& meta = required_metadata(path, f, "ihlab");
  // The meta nests a few levels (the config's tables); nlohmann copies, compares and prints
  // recursively, so a deeply nested one is dropped while parsing and refused, rather than
  // overflowing the stack wherever the trainer first copies it.
  constexpr int kMaxMetaDepth = 64;
  bool too_deep = false;
  auto limit_depth = [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    too_deep = too_deep || depth > kMaxMetaDepth;
    return depth <= kMaxMetaDepth;
  };
  try {
    ckpt.meta = nlohmann::json::parse(meta, limit_depth);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    fail("checkpoint {} is corrupt: its \"ihlab\" metadata is not valid JSON ({})", path, e.what());
  }
  IHLAB_CHECK(!too_deep, "checkpoint {} is corrupt: its \"ihlab\" metadata nests values more than {} levels deep", path,
              kMaxMetaDepth);
  for (auto& raw : f.tensors) {
    std::string key;
    if (strip_prefix(raw.name, kParamPrefix, &key)) {
      ckpt.params.emplace_back(key, tensor_from_file<T>(path, raw));
    } else if (strip_prefix(raw.name, kOptPrefix, &key)) {
      ckpt.optimizer_state.emplace_back(key, tensor_from_file<T>(path, raw));
    } else if (strip_prefix(raw.name, kExtraPrefix, &key)) {
      ckpt.extra.emplace_back(key, tensor_from_file<double>(path, raw));
    } else {
      fail("checkpoint {}: tensor '{}' has none of the prefixes {}, {}, {}", path, raw.name, kParamPrefix, kOptPrefix,
           kExtraPrefix);
    }
  }
  return ckpt;
}

std::string latest_checkpoint_path(const std::string& checkpoints_dir) {
  const std::string latest = checkpoints_dir + "/latest.json";
  const nlohmann::json j = read_json(latest);
  IHLAB_CHECK(j.is_object(), "{}: must be a JSON object {{\"file\": ..., \"step\": ...}}, got {}", latest,
              j.type_name());
  const auto file = j.find("file");
  IHLAB_CHECK(file != j.end(), "{}: has no \"file\" (the name of the newest checkpoint)", latest);
  IHLAB_CHECK(file->is_string(), "{}: \"file\" must be a file name (a string), got {}", latest, file->type_name());
  const std::string name = file->get<std::string>();
  IHLAB_CHECK(
      !name.empty() && name != "." && name != ".." && name.find_first_of(std::string("/\0", 2)) == std::string::npos,
      "{}: \"file\" = {} must name a file in {} (no '/', not '.' or '..')", latest, file->dump(), checkpoints_dir);
  return checkpoints_dir + "/" + name;
}

template <typename T>
void restore_params(const Checkpoint<T>& ckpt, ParamStore<T>& store) {
  std::map<std::string, const Tensor<T>*> saved;
  for (auto& [name, t] : ckpt.params)
    IHLAB_CHECK(saved.emplace(name, &t).second, "checkpoint lists parameter '{}' twice", name);
  for (auto& p : store.all()) {
    auto it = saved.find(p.name);
    IHLAB_CHECK(it != saved.end(), "parameter '{}' is in the model but not in the checkpoint", p.name);
    IHLAB_CHECK(it->second->shape() == p.var.value().shape(),
                "parameter '{}' has shape {} in checkpoint but {} in the model", p.name, shape_str(it->second->shape()),
                shape_str(p.var.value().shape()));
  }
  std::vector<std::string> model_names;
  for (auto& p : store.all()) model_names.push_back(p.name);
  for (auto& [name, t] : ckpt.params)
    IHLAB_CHECK(std::find(model_names.begin(), model_names.end(), name) != model_names.end(),
                "parameter '{}' is in the checkpoint but not in the model (model has: {})", name,
                ParamStore<T>::join(model_names));
  // Copy into the existing storage: Vars held elsewhere (optimizer, model) must see the values.
  for (auto& p : store.all()) p.var.value().copy_from(*saved.at(p.name));
}

template <typename T>
std::vector<std::pair<std::string, Tensor<T>>> snapshot_params(const ParamStore<T>& store) {
  std::vector<std::pair<std::string, Tensor<T>>> out;
  for (auto& p : store.all()) out.emplace_back(p.name, p.var.value().clone());
  return out;
}

#define IHLAB_INSTANTIATE_CHECKPOINT(T)                                       \
  template void save_checkpoint<T>(const std::string&, const Checkpoint<T>&); \
  template Checkpoint<T> load_checkpoint<T>(const std::string&);              \
  template void restore_params<T>(const Checkpoint<T>&, ParamStore<T>&);      \
  template std::vector<std::pair<std::string, Tensor<T>>> snapshot_params<T>(const ParamStore<T>&);
IHLAB_INSTANTIATE_CHECKPOINT(float)
IHLAB_INSTANTIATE_CHECKPOINT(double)
#undef IHLAB_INSTANTIATE_CHECKPOINT

}  // namespace ihlab
