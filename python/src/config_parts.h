#pragma once
// Parts of the run's schema (train/run_schema.h) for objects that need only some tables: a task
// needs [task], a model needs seed, dtype, [task] and [model]. Built from the run schema's own
// entries, so keys, defaults and error messages are the command line's.
#include <string>
#include <vector>

#include "io/config.h"

namespace ihlab::py {

// The entries of the run schema named in `keep`; other top-level keys of a config are ignored by
// resolve_part (a whole run configuration can be passed).
Schema run_schema_part(const std::vector<std::string>& keep);
nlohmann::json resolve_part(const nlohmann::json& raw, const std::vector<std::string>& keep);

}  // namespace ihlab::py
