// The disentangled model's fused loss (models/disentangled_kernel.h) against the same loss built
// from generic autograd ops (each of them checked by finite differences), in float64 and float32;
// bit-identical results for 1 and 2 threads; the reused workspace. The finite-difference check of
// the model's loss itself is in test_disentangled.cpp (FullModelGradientMatchesFiniteDifferences).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "models/disentangled.h"
#include "tasks/item_label.h"

namespace ihlab {
namespace {

struct LossAndGrads {
  double loss = 0;
  std::vector<double> grad;  // W1, W2, W3 concatenated
};

template <typename T>
LossAndGrads evaluate(DisentangledModel<T>& m, const Batch& b, bool fused) {
  m.params().set_trainable({"all"});
  m.params().zero_grad();
  Var<T> loss = fused ? m.loss(b) : m.loss_from_ops(b);
  backward(loss);
  LossAndGrads out;
  out.loss = double(loss.item());
  for (auto& p : m.params().all())
    for (T g : p.var.node()->grad.span()) out.grad.push_back(double(g));
  return out;
}

template <typename T>
DisentangledModel<T> random_model(const ItemLabelTask& task, uint64_t seed, double scale) {
  DisentangledModel<T> m(disentangled_config_from_task(task, "disentangled"));
  RandomStream rs(seed, StreamKind::Test, 0);
  for (auto& p : m.params().all())
    for (int64_t i = 0; i < p.var.value().numel(); ++i) p.var.value().data()[i] = T(scale * rs.normal());
  return m;
}

ItemLabelTask task(int64_t N, int64_t D, ItemVectors v, ItemPositions p = ItemPositions::Random) {
  ItemLabelConfig c;
  c.pairs = N, c.dim = D, c.vectors = v, c.positions = p, c.rotation_seed = 3;
  return ItemLabelTask(c);
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

TEST(DisentangledKernel, MatchesTheLossBuiltFromOpsInDouble) {
  // Shapes with L < 2D, L > 2D (no positions: D may then be below N) and a batch that is not a
  // multiple of any block size.
  struct Case {
    int64_t N, D, B;
    ItemVectors v;
    ItemPositions p;
  };
  for (const Case& c : {Case{3, 8, 7, ItemVectors::Orthonormal, ItemPositions::Random},
                        Case{9, 4, 5, ItemVectors::Gaussian, ItemPositions::None},
                        Case{4, 16, 133, ItemVectors::Orthonormal, ItemPositions::Fixed}}) {
    ItemLabelTask t = task(c.N, c.D, c.v, c.p);
    Batch b = t.sample(c.B, 11, StreamKind::Data, 2);
    auto m = random_model<double>(t, 5, 0.4);
    LossAndGrads fused = evaluate(m, b, true), ref = evaluate(m, b, false);
    EXPECT_NEAR(fused.loss, ref.loss, 1e-13 * std::max(1.0, ref.loss));
    ASSERT_EQ(fused.grad.size(), ref.grad.size());
    const double scale = max_abs(ref.grad);
    EXPECT_GT(scale, 1e-3);  // a check against zero gradients would prove nothing
    for (size_t i = 0; i < ref.grad.size(); ++i)
      ASSERT_NEAR(fused.grad[i], ref.grad[i], 1e-12 * scale) << "N " << c.N << " D " << c.D << " entry " << i;
  }
}

TEST(DisentangledKernel, MatchesTheLossBuiltFromOpsInFloat) {
  ItemLabelTask t = task(5, 12, ItemVectors::Orthonormal);
  Batch b = t.sample(19, 1, StreamKind::Data, 0);
  auto m = random_model<float>(t, 2, 0.4);
  LossAndGrads fused = evaluate(m, b, true), ref = evaluate(m, b, false);
  EXPECT_NEAR(fused.loss, ref.loss, 1e-5 * std::max(1.0, ref.loss));
  const double scale = max_abs(ref.grad);
  EXPECT_GT(scale, 1e-3);
  for (size_t i = 0; i < ref.grad.size(); ++i) ASSERT_NEAR(fused.grad[i], ref.grad[i], 1e-4 * scale) << i;
}

TEST(DisentangledKernel, BitIdenticalForAnyThreadCountAndWithAReusedWorkspace) {
  // 300 sequences of 17 tokens: several row blocks of every product and several sequence chunks.
  ItemLabelTask t = task(8, 32, ItemVectors::Orthonormal);
  Batch b = t.sample(300, 4, StreamKind::Data, 1);
  Batch other = t.sample(300, 4, StreamKind::Data, 2);
  auto m = random_model<double>(t, 8, 0.2);
  set_threads(1);
  LossAndGrads one = evaluate(m, b, true);
  set_threads(2);
  evaluate(m, other, true);  // fills the workspace with another batch first
  LossAndGrads two = evaluate(m, b, true);
  set_threads(0);
  EXPECT_EQ(one.loss, two.loss);
  EXPECT_EQ(one.grad, two.grad);
}

TEST(DisentangledKernel, AGraphStillHoldingTheWorkspaceKeepsItsValues) {
  // A second loss before the first one's backward (e.g. a validation loss) must not overwrite
  // the buffers the first graph's backward reads.
  ItemLabelTask t = task(3, 8, ItemVectors::Orthonormal);
  Batch b = t.sample(6, 1, StreamKind::Data, 0), other = t.sample(6, 1, StreamKind::Data, 9);
  auto m = random_model<double>(t, 1, 0.4);
  LossAndGrads ref = evaluate(m, b, true);
  m.params().zero_grad();
  Var<double> first = m.loss(b);
  Var<double> second = m.loss(other);
  EXPECT_NE(first.item(), second.item());
  backward(first);
  std::vector<double> grad;
  for (auto& p : m.params().all())
    for (double g : p.var.node()->grad.span()) grad.push_back(g);
  EXPECT_EQ(grad, ref.grad);
}

TEST(DisentangledKernel, RejectsABatchOfAnotherShape) {
  ItemLabelTask t = task(3, 8, ItemVectors::Orthonormal), longer = task(4, 8, ItemVectors::Orthonormal);
  auto m = random_model<double>(t, 1, 0.1);
  EXPECT_THROW(m.loss(longer.sample(2, 1, StreamKind::Data, 0)), Error);
}

}  // namespace
}  // namespace ihlab
