#pragma once
// Shared by the transformer tests: random batches and parameters, and a whole-model finite-difference
// gradient check in float64.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/autograd.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "models/transformer.h"

namespace ihlab::transformer_test {

// Random sequences; about a quarter of the targets are -1. F > 0 adds features.
inline Batch random_batch(int64_t B, int64_t L, int64_t V, uint64_t seed, int64_t F = 0) {
  RandomStream rs(seed, StreamKind::Test, 77);
  Batch b;
  b.size = B, b.length = L, b.feature_dim = F;
  for (int64_t i = 0; i < B * L; ++i) {
    b.tokens.push_back(int32_t(rs.randint(V)));
    b.targets.push_back(rs.uniform() < 0.25 ? -1 : int32_t(rs.randint(V)));
  }
  for (int64_t i = 0; i < B * L * F; ++i) b.features.push_back(float(rs.normal()));
  b.targets[0] = 1;  // at least one target
  return b;
}

// Every parameter drawn at random (the init's zero RPE, unit gains and tiny weights would hide
// mistakes): gains 1 + N(0, 0.3^2), everything else N(0, 0.5^2).
template <typename T>
void randomize(Transformer<T>& m, uint64_t seed) {
  RandomStream rs(seed, StreamKind::Test, 5);
  for (auto& p : m.params().all()) {
    const bool gain = p.name.find("ln_g") != std::string::npos;
    for (auto& x : p.var.value().span()) x = T(gain ? 1.0 + 0.3 * rs.normal() : 0.5 * rs.normal());
  }
}

// Sets one thread for its scope (tiny problems: parallel regions cost more than they save).
struct OneThread {
  int saved = num_threads();
  OneThread() { set_threads(1); }
  ~OneThread() { set_threads(saved); }
};

// Loss of the model at its current parameters, in training mode (so dropout, if any, applies
// with the batch's masks), without a backward pass.
inline double loss_at(Transformer<double>& m, const Batch& b) { return m.loss(b).item(); }

// Analytic gradient of every parameter element against central differences of the loss.
inline ::testing::AssertionResult model_gradcheck(Transformer<double>& m, const Batch& b, double h = 1e-5,
                                                  double rtol = 1e-6, double atol = 1e-8) {
  m.params().set_trainable({"all"});
  m.params().zero_grad();
  backward(m.loss(b));
  // Results do not depend on the thread count; many tiny evaluations run fastest on one thread.
  OneThread one_thread;
  int64_t bad = 0, checked = 0;
  std::string worst;
  double worst_ratio = -1;
  for (auto& p : m.params().all()) {
    Tensor<double> grad = p.var.has_grad() ? p.var.grad().clone() : Tensor<double>(p.var.shape(), 0.0);
    auto& v = p.var.value();
    for (int64_t i = 0; i < v.numel(); ++i) {
      const double x = v[i];
      v[i] = x + h;
      const double up = loss_at(m, b);
      v[i] = x - h;
      const double down = loss_at(m, b);
      v[i] = x;
      const double num = (up - down) / (2 * h), err = std::abs(grad[i] - num), bound = atol + rtol * std::abs(num);
      ++checked;
      if (!(err <= bound)) ++bad;
      if (err / bound > worst_ratio) {
        worst_ratio = err / bound;
        worst = fmt::format("{}[{}]: analytic {:.12g}, numeric {:.12g}", p.name, i, grad[i], num);
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess() << checked << " elements";
  return ::testing::AssertionFailure() << bad << " of " << checked << " elements off; worst " << worst;
}
}  // namespace ihlab::transformer_test
