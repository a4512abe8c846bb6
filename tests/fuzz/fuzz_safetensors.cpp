// Fuzzes read_safetensors (io/safetensors.h): the input is a whole file, or its header's text and
// its data (fuzz::safetensors_input). A file that reads must convert to tensors of its dtype, and
// write_safetensors + read_safetensors must give it back unchanged (the writer adds its checksum
// to the metadata).
#include "fuzz_util.h"
#include "io/safetensors.h"

#include <cstring>

namespace {

using namespace ihlab;

void check_converts(const RawTensor& t) {
  int64_t numel = 0;
  if (t.dtype == "F32")
    numel = from_raw<float>(t).numel();
  else if (t.dtype == "F64")
    numel = from_raw<double>(t).numel();
  else if (t.dtype == "I64")
    numel = from_raw<int64_t>(t).numel();
  else
    IHLAB_FUZZ_CHECK(false, "read_safetensors returned an unsupported dtype");
  IHLAB_FUZZ_CHECK(uint64_t(numel) * uint64_t(dtype_itemsize(t.dtype)) == t.bytes.size(),
                   "tensor bytes do not match numel * itemsize");
}

bool same_tensors(const SafetensorsFile& a, const SafetensorsFile& b) {
  if (a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const RawTensor &x = a.tensors[i], &y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.bytes != y.bytes) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_scratch("in.safetensors", fuzz::safetensors_input(data, size));
  SafetensorsFile f;
  try {
    f = read_safetensors(path);
  } catch (const Error&) {
    return 0;  // rejected cleanly
  }
  for (const RawTensor& t : f.tensors) check_converts(t);

  const std::string copy = (fuzz::scratch_dir() / "copy.safetensors").string();
  write_safetensors(copy, f);
  SafetensorsFile g = read_safetensors(copy);
  IHLAB_FUZZ_CHECK(same_tensors(f, g), "write_safetensors + read_safetensors changed the tensors");
  g.metadata.erase(kChecksumKey);
  f.metadata.erase(kChecksumKey);
  IHLAB_FUZZ_CHECK(f.metadata == g.metadata, "write_safetensors + read_safetensors changed the metadata");
  return 0;
}
