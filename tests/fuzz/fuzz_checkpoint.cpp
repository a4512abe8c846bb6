// Fuzzes load_checkpoint (io/checkpoint.h): the input is a whole safetensors file, or its
// header's text and its data (fuzz::safetensors_input), read as a float32 and as a float64
// checkpoint. A checkpoint that loads restores into a parameter store of the same names and
// shapes, and the store then holds its values.
#include "fuzz_util.h"
#include "io/checkpoint.h"

#include <cstring>

namespace {

using namespace ihlab;

template <typename T>
void load_and_restore(const std::string& path) {
  Checkpoint<T> c;
  try {
    c = load_checkpoint<T>(path);
  } catch (const Error&) {
    return;
  }
  ParamStore<T> store;
  try {
    for (auto& [name, t] : c.params) store.add(name, "g", Tensor<T>::zeros(t.shape()));
  } catch (const Error&) {
    return;  // a name twice: restore_params reports that too
  }
  restore_params(c, store);
  for (size_t i = 0; i < c.params.size(); ++i) {
    const Tensor<T>& want = c.params[i].second;
    const Tensor<T>& got = store.all()[i].var.value();
    IHLAB_FUZZ_CHECK(got.shape() == want.shape() &&
                         (want.numel() == 0 || std::memcmp(got.data(), want.data(), sizeof(T) * want.numel()) == 0),
                     "restore_params did not copy the checkpoint's values");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_scratch("in.safetensors", fuzz::safetensors_input(data, size));
  load_and_restore<float>(path);
  load_and_restore<double>(path);
  return 0;
}
