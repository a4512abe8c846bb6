// Google Benchmark of one gradient evaluation of the attention circuit: the six-parameter model of
// Wang et al. 2024 (examples/wang2024-mixed-target.toml: L = 20, 20000 sequences), which is what
// gradient flow pays per derivative in the wang2024 reproductions. Each case runs twice in the
// same process: with the sequences in lock-step as vector lanes (what the model does) and one
// sequence at a time (set_one_sequence_at_a_time), whose results are the same bits; the ratio of
// the two is the lanes' gain.
//   build/bench_circuit --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Cases: layer1_copy (layer 1 on its previous-token objective, the first stage), layer2 (layer 1
// frozen and cached, the second stage), joint (both layers on the task loss, the joint variant).
// Thread count: IHLAB_THREADS (default 1: the reproductions train their variants one per core).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "core/parallel.h"
#include "io/config.h"
#include "models/attention_circuit.h"
#include "models/attention_circuit_kernel.h"
#include "models/registry.h"
#include "tasks/registry.h"
#include "train/run_schema.h"
#include "../tests/circuit_test_heads.h"

using namespace ihlab;

namespace {

// The six-parameter model as the tests and the PyTorch check describe it.
std::string config_text() {
  return "dtype = \"float64\"\n[task]\nname = \"mixed-target\"\nlength = 20\n[model]\nname = \"attention-circuit\"\n" +
         circuit_test::six_parameter_heads() + "\n[[stages]]\nsteps = 1\n";
}

// mode: 0 = layer1_copy, 1 = layer2, 2 = joint; lanes: 1 = vector lanes, 0 = one at a time.
void BM_circuit_gradient(benchmark::State& st) {
  const int mode = int(st.range(0));
  const bool lanes = st.range(1) != 0;
  nlohmann::json cfg = run_schema().resolve(parse_toml_string(config_text(), "bench_circuit"));
  auto task = make_task(cfg["task"]);
  auto model = make_model<double>(cfg["model"], *task, 1);
  const Batch batch = task->sample(20000, 3, StreamKind::Data, 0);
  // Mid-training values (away from the plateau's symmetric start).
  for (auto [name, v] : {std::pair{"prev.slope", 0.7},
                         {"prev.value", 0.8},
                         {"ind.wk", 0.9},
                         {"ind.wq", -1.1},
                         {"ind.value", 0.6},
                         {"pos.slope", 0.4},
                         {"pos.value", 0.3}})
    model->params().find(name)->var.value()[0] = v;
  auto& circuit = dynamic_cast<AttentionCircuit<double>&>(*model);
  circuit.set_one_sequence_at_a_time(!lanes);
  circuit.set_objective(mode == 0 ? "copy-previous" : "loss");
  model->params().set_trainable({mode == 0 ? "layer1" : mode == 1 ? "layer2" : "all"});
  for (auto _ : st) {
    model->params().zero_grad();
    Var<double> loss = model->loss(batch);
    backward(loss);
    benchmark::DoNotOptimize(loss.item());
  }
  st.SetItemsProcessed(st.iterations() * batch.size);  // sequences per second
  st.SetLabel(std::string(mode == 0   ? "layer1_copy"
                          : mode == 1 ? "layer2"
                                      : "joint") +
              (lanes ? " lanes" : " one_at_a_time"));
}
BENCHMARK(BM_circuit_gradient)
    ->ArgsProduct({{0, 1, 2}, {1, 0}})
    ->ArgNames({"mode", "lanes"})
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  const char* env = std::getenv("IHLAB_THREADS");
  set_threads(env ? std::atoi(env) : 1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("ihlab_threads", std::to_string(num_threads()));
  benchmark::AddCustomContext("lanes", std::to_string(circuit_kernel::kLanes));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
