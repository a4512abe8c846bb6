#pragma once
// Training checkpoints: everything needed to resume a run bit-exactly, in one safetensors file.
//
// Tensors are stored under prefixed names so one file holds several kinds of state:
//   "param.<name>"  model parameters (dtype of T)
//   "opt.<key>"     optimizer state, keys as returned by Optimizer::state_tensors() (dtype of T)
//   "extra.<key>"   anything else, always F64 (e.g. flow integrator state)
// __metadata__ holds "format" = "ihlab-checkpoint-1", "dtype" = "F32"/"F64" and "ihlab" = the
// free-form `meta` JSON as a string (step, stage, config, rng state, optimizer steps_taken...).
// The file is written atomically and checksummed (see io/safetensors.h).
#include "core/params.h"

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace ihlab {

inline constexpr const char* kCheckpointFormat = "ihlab-checkpoint-1";

template <typename T>
struct Checkpoint {
  nlohmann::json meta;
  std::vector<std::pair<std::string, Tensor<T>>> params;
  std::vector<std::pair<std::string, Tensor<T>>> optimizer_state;
  std::vector<std::pair<std::string, Tensor<double>>> extra;
};

// Atomic write; throws ihlab::Error on an I/O failure or a duplicate name within one section.
template <typename T>
void save_checkpoint(const std::string& path, const Checkpoint<T>& ckpt);

// Reads and validates the file (see read_safetensors); additionally throws ihlab::Error if it is
// not an ihlab checkpoint, holds a dtype other than T's, has an unparsable "ihlab" meta string,
// or a tensor name without one of the three prefixes. Sections keep the order they were saved in.
template <typename T>
Checkpoint<T> load_checkpoint(const std::string& path);

// The checkpoint that CHECKPOINTS_DIR/latest.json points to, as a path in that directory. The
// trainer writes latest.json as {"file": "<name>.safetensors", "step": N} after each checkpoint;
// this reads it back on resume. Throws ihlab::Error naming latest.json when it is missing, is not
// JSON, or its "file" is not the plain name of a file (a string without '/' or NUL, not "." or
// "..": a pointer out of the directory is refused, not followed).
std::string latest_checkpoint_path(const std::string& checkpoints_dir);

// Copies checkpoint params into the store's existing tensors (Vars keep their identity). Checks
// everything before copying anything, so on error the store is unchanged. Throws ihlab::Error on a
// parameter missing from the checkpoint or the model, a duplicate, or a shape mismatch
// ("parameter 'attn.w' has shape [3, 4] in checkpoint but [3, 5] in the model"). A dtype mismatch
// cannot reach here: load_checkpoint<T> already rejects a file of another dtype.
template <typename T>
void restore_params(const Checkpoint<T>& ckpt, ParamStore<T>& store);

// Deep copies of every parameter value, in store order.
template <typename T>
std::vector<std::pair<std::string, Tensor<T>>> snapshot_params(const ParamStore<T>& store);

}  // namespace ihlab
