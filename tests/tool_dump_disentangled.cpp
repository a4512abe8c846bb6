// Dumps one float64 forward/backward of the disentangled model and of its pseudo-parameter kernel
// for tests/torch_check_disentangled.py:
//   tool_dump_disentangled OUT.safetensors 'CONFIG_JSON'
// CONFIG_JSON: the item-label task keys (pairs, dim, vectors, positions, query, query_position,
// rotation_seed), readout_positional, and batch, seed.
// Tensors: "features" [B, L, 2D], "values" [B, D], "M" [D, D]; "param.W1|W2|W3" (random, not the
// zero init, which would hide mistakes) and "grad.W1|W2|W3"; "loss" []; "pred" [B, D];
// "attention.l0" [B, L, L], "attention.l1" [B, L] (the query's layer-2 row); and for the reduced
// kernel: "theta" [19] (random), "pseudo_loss" [], "pseudo_grad" [19] (d loss / d theta).
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "io/safetensors.h"
#include "models/disentangled.h"
#include "tasks/item_label.h"
#include "models/pseudo_kernel.h"

using namespace ihlab;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: tool_dump_disentangled OUT.safetensors 'CONFIG_JSON'\n");
    return 2;
  }
  try {
    const nlohmann::json j = nlohmann::json::parse(argv[2]);
    ItemLabelConfig c;
    c.pairs = j.value("pairs", c.pairs);
    c.dim = j.value("dim", c.dim);
    c.vectors = parse_item_vectors(j.value("vectors", std::string("gaussian")));
    c.positions = parse_item_positions(j.value("positions", std::string("random")));
    c.query = parse_query_index(j.value("query", std::string("uniform")));
    c.query_position = parse_query_position(j.value("query_position", std::string("own")));
    c.rotation_seed = j.value("rotation_seed", uint64_t(0));
    const int64_t B = j.value("batch", int64_t(4));
    const uint64_t seed = j.value("seed", uint64_t(1));
    ItemLabelTask task(c);
    Batch b = task.sample(B, seed, StreamKind::Data, 0);
    const int64_t D = c.dim, L = task.length();

    DisentangledConfig dc = disentangled_config_from_task(task, "disentangled");
    dc.readout_positional = j.value("readout_positional", false);
    DisentangledModel<double> model(dc);
    RandomStream rs(seed, StreamKind::Test, 43);
    const double scale = j.value("scale", 0.6);
    for (auto& p : model.params().all())
      for (auto& x : p.var.value().span()) x = scale * rs.normal();
    model.params().set_trainable({"all"});
    Var<double> loss = model.loss(b);
    backward(loss);
    std::vector<double> pred = model.predict(b);
    Tensor<double> A1({B, L, L}), A2({B, L});
    for (int64_t s = 0; s < B; ++s) {
      auto maps = model.attention(b, s);
      std::copy(maps[0].weights.begin(), maps[0].weights.end(), A1.data() + s * L * L);
      std::copy(maps[1].weights.begin() + (L - 1) * L, maps[1].weights.end(), A2.data() + s * L);
    }

    std::vector<double> theta(pseudo_parameter_table().size());
    for (auto& t : theta) t = rs.normal();
    PseudoKernelPlan plan = make_pseudo_plan(pseudo_parameter_table());
    std::vector<double> pgrad;
    const double ploss = pseudo_loss(pseudo_grams(b, task.rotation(), D, plan), plan, theta, &pgrad);

    SafetensorsFile f;
    f.tensors.push_back(
        to_raw("features", Tensor<double>({B, L, 2 * D}, std::vector<double>(b.features.begin(), b.features.end()))));
    f.tensors.push_back(to_raw("values", Tensor<double>({B, D}, b.values)));
    f.tensors.push_back(to_raw("M", Tensor<double>({D, D}, task.rotation())));
    for (auto& p : model.params().all()) {
      f.tensors.push_back(to_raw("param." + p.name, p.var.value()));
      f.tensors.push_back(to_raw("grad." + p.name, p.var.grad()));
    }
    f.tensors.push_back(to_raw("loss", loss.value()));
    f.tensors.push_back(to_raw("pred", Tensor<double>({B, D}, pred)));
    f.tensors.push_back(to_raw("attention.l0", A1));
    f.tensors.push_back(to_raw("attention.l1", A2));
    const int64_t K = int64_t(theta.size());
    f.tensors.push_back(to_raw("theta", Tensor<double>({K}, theta)));
    f.tensors.push_back(to_raw("pseudo_loss", Tensor<double>::scalar(ploss)));
    f.tensors.push_back(to_raw("pseudo_grad", Tensor<double>({K}, pgrad)));
    nlohmann::json meta = j;
    meta["dim"] = D, meta["pairs"] = c.pairs, meta["batch"] = B;
    meta["readout_positional"] = dc.readout_positional;
    f.metadata["config"] = meta.dump();
    write_safetensors(argv[1], f);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tool_dump_disentangled: %s\n", e.what());
    return 1;
  }
  return 0;
}
