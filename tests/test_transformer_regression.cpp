// The transformer's regression output (models/transformer.h, "Regression output"): one vector per
// sequence read from the last position, trained by 1/2 ||yhat - y||^2 or by cross-entropy over
// candidate answers.
//  - central finite differences in float64 of both losses (with dropout and without);
//  - the loss and evaluate()'s "mse"/"acc" against sums written out here;
//  - token-only instruments refuse clearly, bad configurations and batches name the key;
//  - Adam learns to copy the first position's vector.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "models/transformer.h"
#include "train/optimizer.h"
#include "transformer_test_util.h"

namespace ihlab {
namespace {

using namespace transformer_test;

TransformerConfig regression_config(TransformerRegressionLoss loss) {
  TransformerConfig c;
  c.vocab = 2, c.max_len = 6, c.feature_dim = 3, c.value_dim = 4;
  c.layers = 2, c.heads = 2, c.width = 8, c.regression_loss = loss;
  return c;
}

// random_batch plus regression targets and, for the candidates loss, C candidates per sequence.
Batch regression_batch(const TransformerConfig& c, int64_t B, uint64_t seed, int64_t C = 3) {
  Batch b = random_batch(B, c.max_len, c.vocab, seed, c.feature_dim);
  RandomStream rs(seed, StreamKind::Test, 78);
  b.value_dim = c.value_dim;
  for (int64_t i = 0; i < B * c.value_dim; ++i) b.values.push_back(rs.normal());
  if (c.regression_loss == TransformerRegressionLoss::Candidates) {
    b.num_candidates = C;
    for (int64_t i = 0; i < B * C * c.value_dim; ++i) b.candidates.push_back(rs.normal());
    for (int64_t r = 0; r < B; ++r) b.candidate_target.push_back(int32_t(rs.randint(C)));
  }
  return b;
}

TEST(TransformerRegression, MseGradientsMatchFiniteDifferences) {
  auto c = regression_config(TransformerRegressionLoss::Mse);
  c.positional = TransformerPositional::Learned, c.attention_only = false, c.mlp_width = 6;
  Transformer<double> m(c, 3);
  randomize(m, 12);
  EXPECT_TRUE(model_gradcheck(m, regression_batch(c, 3, 22)));
}

TEST(TransformerRegression, CandidateGradientsMatchFiniteDifferencesWithDropout) {
  auto c = regression_config(TransformerRegressionLoss::Candidates);
  c.dropout = 0.3, c.norm = TransformerNorm::None;
  Transformer<double> m(c, 4);
  randomize(m, 13);
  EXPECT_TRUE(model_gradcheck(m, regression_batch(c, 3, 23)));
}

TEST(TransformerRegression, LossAndEvaluationAreTheWrittenOutSums) {
  for (auto kind : {TransformerRegressionLoss::Mse, TransformerRegressionLoss::Candidates}) {
    auto c = regression_config(kind);
    Transformer<double> m(c, 5);
    randomize(m, 14);
    const int64_t B = 5, C = 3, Dv = c.value_dim;
    Batch b = regression_batch(c, B, 24, C);
    m.params().set_trainable({});  // no training mode: no dropout anyway, and no graph
    const Tensor<double> y = m.predict(b).value();
    ASSERT_EQ(y.shape(), (Shape{B, Dv}));
    double mse = 0, ce = 0;
    int64_t correct = 0;
    for (int64_t r = 0; r < B; ++r) {
      for (int64_t d = 0; d < Dv; ++d) mse += 0.5 * std::pow(y[r * Dv + d] - b.values[r * Dv + d], 2) / B;
      if (kind == TransformerRegressionLoss::Mse) continue;
      std::vector<double> s(C, 0.0);
      for (int64_t j = 0; j < C; ++j)
        for (int64_t d = 0; d < Dv; ++d) s[j] += y[r * Dv + d] * b.candidates[(r * C + j) * Dv + d];
      double mx = *std::max_element(s.begin(), s.end()), z = 0;
      for (double v : s) z += std::exp(v - mx);
      ce += (mx + std::log(z) - s[b.candidate_target[r]]) / B;
      correct += std::max_element(s.begin(), s.end()) - s.begin() == b.candidate_target[r];
    }
    const double expected_loss = kind == TransformerRegressionLoss::Mse ? mse : ce;
    EXPECT_NEAR(m.loss(b).item(), expected_loss, 1e-12);
    const Scalars ev = m.evaluate(b);
    ASSERT_EQ(ev[0].first, "mse");
    EXPECT_NEAR(ev[0].second, mse, 1e-12);
    if (kind == TransformerRegressionLoss::Candidates) {
      ASSERT_EQ(ev.size(), 2u);
      EXPECT_EQ(ev[1].first, "acc");
      EXPECT_DOUBLE_EQ(ev[1].second, double(correct) / B);
    } else {
      EXPECT_EQ(ev.size(), 1u);
    }
    // validate(): loss and evaluate() from one forward pass, the same bits as the two calls.
    const auto v = m.validate(b, true);
    EXPECT_EQ(v.loss, m.loss(b).item());
    EXPECT_EQ(v.scalars, ev);
    EXPECT_TRUE(v.probs.empty());  // no next-token distributions
  }
}

TEST(TransformerRegression, TokenInstrumentsRefuseAndBadInputsNameTheKey) {
  auto c = regression_config(TransformerRegressionLoss::Mse);
  Transformer<double> m(c, 6);
  Batch b = regression_batch(c, 2, 25);
  EXPECT_TRUE(m.next_token_probs(b).empty());
  EXPECT_EQ(m.attention(b, 0).size(), size_t(c.layers * c.heads));  // attention maps still work
  for (auto& [k, v] : m.probes()) EXPECT_NE(k.rfind("ov_", 0), 0u) << k;
  try {
    m.logits(b);
    ADD_FAILURE() << "logits() of a regression model did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("regression output"), std::string::npos) << e.what();
  }
  Batch wrong = b;
  wrong.value_dim = 3, wrong.values.resize(2 * 3);
  EXPECT_THROW(m.loss(wrong), Error);

  auto tied = c;
  tied.tied_unembedding = true;
  try {
    Transformer<double> bad(tied, 1);
    ADD_FAILURE() << "tied unembedding with a regression output did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.tied_unembedding"), std::string::npos) << e.what();
  }
  Transformer<double> cand(regression_config(TransformerRegressionLoss::Candidates), 7);
  try {
    cand.loss(b);  // b has no candidates
    ADD_FAILURE() << "the candidates loss without candidates did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.regression_loss = \"candidates\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_transformer_regression_loss("huber"), Error);
}

TEST(TransformerRegression, AdamLearnsToCopyTheFirstVector) {
  OneThread one_thread;
  TransformerConfig c;
  c.vocab = 1, c.max_len = 6, c.feature_dim = 4, c.value_dim = 4;
  c.layers = 1, c.heads = 1, c.width = 16, c.init_std = 0.3, c.positional = TransformerPositional::Learned;
  c.norm = TransformerNorm::None;
  Transformer<float> m(c, 2);
  m.params().set_trainable({"all"});
  OptimizerConfig oc;
  oc.kind = OptimizerKind::Adam;
  auto opt = Optimizer<float>::make(oc);
  // Target: the features of position 0, so the last position must attend back to the first.
  auto batch = [&](uint64_t s) {
    Batch b = random_batch(32, 6, 1, s, 4);
    b.value_dim = 4;
    for (int64_t r = 0; r < 32; ++r)
      for (int64_t d = 0; d < 4; ++d) b.values.push_back(b.features[r * 6 * 4 + d]);
    return b;
  };
  Batch test = batch(1000);
  const double before = m.evaluate(test)[0].second;
  for (int step = 0; step < 300; ++step) {
    m.params().zero_grad();
    backward(m.loss(batch(step)));
    opt->step(m.params().trainable(), 0.01);
  }
  const double after = m.evaluate(test)[0].second;
  EXPECT_LT(after, 0.1 * before) << "mse before " << before << ", after " << after;
}

}  // namespace
}  // namespace ihlab
