#pragma once
// `ihlab export RUN_DIR --format transformer-lens --out DIR` (models/transformer_export.h).
#include <string>

namespace ihlab {

// Writes DIR/model.safetensors, DIR/config.json and, when Debian's python3 with torch is there,
// DIR/model.pt (the same state dict through torch.save). Returns the exit status.
int cmd_export(const std::string& run_dir, const std::string& format, const std::string& out,
               const std::string& checkpoint);

}  // namespace ihlab
