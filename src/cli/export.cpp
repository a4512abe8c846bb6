// `ihlab export`: a trained transformer in TransformerLens's layout (models/transformer_export.h).
#include "cli/export.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <sys/wait.h>

#include <fmt/format.h>

#include "core/error.h"
#include "models/transformer_export.h"

namespace ihlab {
namespace {

// Reads the safetensors file with the standard library and numpy, saves the same tensors with
// torch.save. Exit 77 when torch is missing (the .pt is then skipped, not an error).
constexpr const char* kToPt = R"(import json, struct, sys
import numpy as np
try:
    import torch
except ImportError:
    sys.exit(77)
src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
kinds = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
sd = {}
for name, t in header.items():
    if name == "__metadata__":
        continue
    a, b = t["data_offsets"]
    sd[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=kinds[t["dtype"]]).reshape(t["shape"]).copy())
torch.save(sd, dst)
)";

}  // namespace

int cmd_export(const std::string& run_dir, const std::string& format, const std::string& out,
               const std::string& checkpoint) {
  IHLAB_CHECK(format == "transformer-lens", "export: --format '{}' is not supported (allowed: transformer-lens)",
              format);
  TransformerLensExport r = export_transformer_lens(run_dir, out, checkpoint);
  fmt::print("export: {} tensors in {}\nexport: HookedTransformerConfig fields in {}\n", r.names.size(), r.safetensors,
             r.config);
  // The .pt file goes through Debian's python3 and torch (IHLAB_PYTHON overrides, as for figures).
  std::string python = "/usr/bin/python3";
  if (const char* env = std::getenv("IHLAB_PYTHON")) python = env;
  const std::string pt = out + "/model.pt";
  int rc = -1;
  if (std::filesystem::exists(python)) {
    FILE* p = popen(fmt::format("'{}' - '{}' '{}'", python, r.safetensors, pt).c_str(), "w");
    if (p) {
      std::fputs(kToPt, p);
      int status = pclose(p);
      rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
  }
  if (rc == 0)
    fmt::print("export: torch state dict in {}\n", pt);
  else
    fmt::print(stderr, "ihlab: warning: {} not written ({}); the safetensors file holds the same tensors\n", pt,
               rc == 77 ? python + " has no torch" : "could not run " + python);
  fmt::print("load: HookedTransformer(HookedTransformerConfig(**cfg)).load_state_dict(state_dict, strict=False)\n");
  return 0;
}

}  // namespace ihlab
