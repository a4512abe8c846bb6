// Dumps one float64 forward/backward of the attention-circuit model for tests/torch_check_circuit.py:
//   tool_dump_circuit OUT.safetensors CONFIG SEED      CONFIG = six | mixed
// six:   the six-parameter model of Wang et al. 2024 (L = 20, d = 1, 2 slots), as in the
//        wang2024-mixed-target reproduction;
// mixed: d = 2, 3 slots (one never written), L = 9: two layer-1 heads (alibi, and dot with a single
//        w_KQ, self-attention allowed) adding into slot 1, and in layer 2 a dot-product head with
//        the query from slot 1, keys from slot 0, and an alibi head with min_back 2, both valued on slot 1.
// Parameters are random (N(0, 0.8^2), slopes 0.5 + |N(0, 1)|) so that no symmetry hides a wrong
// index. Tensors: "param.<name>", "grad.<name>" (task loss), "copy_grad.<name>" (copy-previous
// objective), "features" [n, L, F], "values" [n, d], "parts" [n, 2, d], "loss", "copy_loss" ([]),
// "yhat" [n, d], "err_4gram", "err_induction" ([]). __metadata__["config"]: the resolved [model] and
// [task] tables (the heads in full), so the script rebuilds the model from the same description.
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "models/attention_circuit.h"
#include "models/registry.h"
#include "tasks/registry.h"
#include "train/run_schema.h"
#include "circuit_test_heads.h"

using namespace ihlab;

namespace {
const std::string kSix = std::string(R"(
[task]
name = "mixed-target"
length = 20
[model]
name = "attention-circuit"
)") + circuit_test::six_parameter_heads();

const char* kMixed = R"(
[task]
name = "mixed-target"
length = 9
dim = 2
slots = 3
w_star = 1.3
alpha_star = 0.3
[model]
name = "attention-circuit"
[[model.heads]]
name = "a"
layer = 1
offset = 1
min_back = 1
write = 1
[[model.heads]]
name = "b"
layer = 1
score = "dot"
kq = "single"
write = 1
[[model.heads]]
name = "c"
layer = 2
score = "dot"
query = 1
key = 0
value = 1
min_back = 1
component = "induction"
[[model.heads]]
name = "d"
layer = 2
offset = 2
min_back = 2
value = 1
component = "4gram"
)";
}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: tool_dump_circuit OUT.safetensors six|mixed SEED\n");
    return 2;
  }
  try {
    const std::string out = argv[1], which = argv[2];
    const uint64_t seed = std::strtoull(argv[3], nullptr, 10);
    IHLAB_CHECK(which == "six" || which == "mixed", "unknown configuration '{}'", which);
    nlohmann::json raw = parse_toml_string((which == "six" ? kSix : std::string(kMixed)) + "\n[[stages]]\nsteps = 1\n");
    nlohmann::json cfg = run_schema().resolve(raw);
    auto task = make_task(cfg["task"]);
    auto model = make_model<double>(cfg["model"], *task, 1);
    RandomStream rng(seed, StreamKind::Test, 41);
    for (auto& p : model->params().all()) {
      const bool slope = p.name.size() > 6 && p.name.substr(p.name.size() - 6) == ".slope";
      p.var.value()[0] = slope ? 0.5 + std::abs(rng.normal()) : 0.8 * rng.normal();
    }
    Batch b = task->sample(48, seed, StreamKind::Test, 0);

    SafetensorsFile f;
    auto scalar = [](double v) { return Tensor<double>(Shape{}, v); };
    model->params().set_trainable({"all"});
    Var<double> l = model->loss(b);
    backward(l);
    for (auto& p : model->params().all()) {
      f.tensors.push_back(to_raw("param." + p.name, p.var.value()));
      f.tensors.push_back(to_raw("grad." + p.name, p.var.grad()));
    }
    model->set_objective("copy-previous");
    model->params().zero_grad();
    Var<double> cl = model->loss(b);
    backward(cl);
    for (auto& p : model->params().all()) f.tensors.push_back(to_raw("copy_grad." + p.name, p.var.grad()));
    model->set_objective("loss");

    auto* circuit = dynamic_cast<AttentionCircuit<double>*>(model.get());
    std::vector<double> yhat, heads;
    circuit->predict(b, yhat, heads);
    Scalars ev = model->evaluate(b);
    std::map<std::string, double> m(ev.begin(), ev.end());
    const int64_t n = b.size, L = b.length, F = b.feature_dim, d = b.value_dim;
    std::vector<double> feats(b.features.begin(), b.features.end());
    f.tensors.push_back(to_raw("features", Tensor<double>(Shape{n, L, F}, feats)));
    f.tensors.push_back(to_raw("values", Tensor<double>(Shape{n, d}, b.values)));
    f.tensors.push_back(to_raw("parts", Tensor<double>(Shape{n, 2, d}, b.parts)));
    f.tensors.push_back(to_raw("loss", l.value()));
    f.tensors.push_back(to_raw("copy_loss", cl.value()));
    f.tensors.push_back(to_raw("yhat", Tensor<double>(Shape{n, d}, yhat)));
    f.tensors.push_back(to_raw("err_4gram", scalar(m.at("err_4gram"))));
    f.tensors.push_back(to_raw("err_induction", scalar(m.at("err_induction"))));
    f.metadata["config"] = nlohmann::json{{"model", cfg["model"]}, {"task", cfg["task"]}}.dump();
    write_safetensors(out, f);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tool_dump_circuit: %s\n", e.what());
    return 1;
  }
  return 0;
}
