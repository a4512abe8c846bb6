#pragma once
// The six-parameter model of Wang et al. 2024 as [[model.heads]] tables (the heads of
// examples/wang2024-mixed-target.toml), shared by the attention-circuit tests and the PyTorch dump
// tool so the three describe one model (bench/bench_circuit.cpp times it too).
#include <string>

namespace ihlab::circuit_test {

inline std::string six_parameter_heads() {
  return R"(
[[model.heads]]
name = "prev"
layer = 1
score = "alibi"
offset = 1
min_back = 1
write = 1
[[model.heads]]
name = "ind"
layer = 2
score = "dot"
key = 1
min_back = 1
first_key = 1
component = "induction"
[[model.heads]]
name = "pos"
layer = 2
score = "distance"
offset = 2
min_back = 1
first_key = 1
component = "4gram"
)";
}

}  // namespace ihlab::circuit_test
