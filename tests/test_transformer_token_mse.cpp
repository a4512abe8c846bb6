// The transformer's squared-error token loss (model.token_loss = "mse", models/transformer.h):
// 1/2 mean over target positions of ||logits - onehot(target)||^2. Checked against finite
// differences in float64, against the sum written out here, and its configuration error.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "models/transformer.h"
#include "transformer_test_util.h"

namespace ihlab {
namespace {

using namespace transformer_test;

TransformerConfig mse_config() {
  TransformerConfig c;
  c.vocab = 5, c.max_len = 6, c.layers = 2, c.heads = 1, c.width = 8;
  c.norm = TransformerNorm::None, c.positional = TransformerPositional::Learned, c.self_attention = false;
  c.token_loss = TransformerTokenLoss::Mse;
  return c;
}

TEST(TransformerTokenMse, GradientsMatchFiniteDifferences) {
  auto c = mse_config();
  Transformer<double> m(c, 3);
  randomize(m, 21);
  EXPECT_TRUE(model_gradcheck(m, random_batch(3, 6, 5, 31)));
  // Also with LayerNorm, an MLP and dropout (the loss is only a different link on the logits).
  c.norm = TransformerNorm::Pre, c.attention_only = false, c.mlp_width = 6, c.dropout = 0.2;
  Transformer<double> m2(c, 4);
  randomize(m2, 22);
  EXPECT_TRUE(model_gradcheck(m2, random_batch(2, 6, 5, 32)));
}

TEST(TransformerTokenMse, LossIsTheWrittenOutSum) {
  auto c = mse_config();
  Transformer<double> m(c, 5);
  randomize(m, 23);
  Batch b = random_batch(4, 6, 5, 33);
  const Tensor<double> z = m.logits(b).value();  // [B, L, V]
  double sum = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < b.size * b.length; ++r) {
    if (b.targets[r] < 0) continue;
    ++n;
    for (int64_t v = 0; v < 5; ++v) {
      const double e = z[r * 5 + v] - (v == b.targets[r] ? 1.0 : 0.0);
      sum += e * e;
    }
  }
  ASSERT_GT(n, 0);
  EXPECT_NEAR(m.loss(b).item(), 0.5 * sum / double(n), 1e-12);
  // Cross-entropy on the same weights is a different number: the option is really used.
  c.token_loss = TransformerTokenLoss::CrossEntropy;
  Transformer<double> ce(c, 5);
  randomize(ce, 23);
  EXPECT_GT(std::abs(ce.loss(b).item() - m.loss(b).item()), 1e-3);
}

TEST(TransformerTokenMse, RefusedForRegressionTasks) {
  auto c = mse_config();
  c.value_dim = 3, c.feature_dim = 2;
  try {
    Transformer<double> m(c, 1);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.token_loss"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_enum<TransformerTokenLoss>("huber", "model.token_loss"), Error);
}

}  // namespace
}  // namespace ihlab
