// The discrete item-label retrieval task (tasks/item_label_tokens.h): layout, disjoint item and
// label vocabularies, draws without repetition, query and target, the label_rule control, its
// reference losses, determinism of sample() and configuration errors that name the key.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "tasks/item_label_tokens.h"
#include "tasks/registry.h"
#include "expect_error.h"

namespace ihlab {
namespace {

ItemLabelTokensConfig config(int64_t N, int64_t items, int64_t labels) {
  ItemLabelTokensConfig c;
  c.pairs = N, c.items = items, c.labels = labels;
  return c;
}

TEST(ItemLabelTokens, LayoutQueryAndTarget) {
  ItemLabelTokensTask t(config(5, 7, 9));
  EXPECT_EQ(t.vocab(), 16);
  EXPECT_EQ(t.length(), 11);
  Batch b = t.sample(300, 3, StreamKind::Data, 2);
  ASSERT_EQ(b.size, 300);
  ASSERT_EQ(b.length, 11);
  ASSERT_EQ(int64_t(b.tokens.size()), 300 * 11);
  EXPECT_EQ(b.num_targets(), 300);
  std::vector<int> asked(5, 0);
  for (int64_t r = 0; r < b.size; ++r) {
    const int32_t* tok = b.tokens.data() + r * 11;
    const int32_t* tgt = b.targets.data() + r * 11;
    std::set<int32_t> items, labels;
    for (int64_t i = 0; i < 5; ++i) {
      EXPECT_TRUE(t.is_item(tok[2 * i])) << tok[2 * i];
      EXPECT_GE(tok[2 * i], 0);
      EXPECT_LT(tok[2 * i], 7);
      EXPECT_TRUE(t.is_label(tok[2 * i + 1])) << tok[2 * i + 1];
      EXPECT_GE(tok[2 * i + 1], 7);
      EXPECT_LT(tok[2 * i + 1], 16);
      items.insert(tok[2 * i]);
      labels.insert(tok[2 * i + 1]);
    }
    EXPECT_EQ(items.size(), 5u) << "items repeat in sequence " << r;
    EXPECT_EQ(labels.size(), 5u) << "labels repeat in sequence " << r;
    for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(tgt[i], -1);
    // The query is one of the items, and the target is the label that follows it.
    int64_t q = -1;
    for (int64_t i = 0; i < 5; ++i)
      if (tok[2 * i] == tok[10]) q = i;
    ASSERT_GE(q, 0) << "the query is not an item of sequence " << r;
    EXPECT_EQ(tgt[10], tok[2 * q + 1]);
    ++asked[q];
  }
  for (int64_t i = 0; i < 5; ++i) EXPECT_GT(asked[i], 30) << "query index " << i << " is rarely asked";
}

TEST(ItemLabelTokens, EveryTokenOfEachVocabularyIsDrawn) {
  ItemLabelTokensTask t(config(3, 6, 4));
  Batch b = t.sample(200, 1, StreamKind::Data, 0);
  std::set<int32_t> seen(b.tokens.begin(), b.tokens.end());
  EXPECT_EQ(seen.size(), 10u);  // all 6 items and all 4 labels occur
}

TEST(ItemLabelTokens, QueryLastAsksTheLastItem) {
  auto c = config(4, 8, 8);
  c.query = TokenQuery::Last;
  ItemLabelTokensTask t(c);
  Batch b = t.sample(50, 2, StreamKind::Data, 1);
  for (int64_t r = 0; r < b.size; ++r) {
    EXPECT_EQ(b.tokens[r * 9 + 8], b.tokens[r * 9 + 6]);
    EXPECT_EQ(b.targets[r * 9 + 8], b.tokens[r * 9 + 7]);
  }
}

TEST(ItemLabelTokens, RandomLabelRuleUntiesTheTargetFromTheQuery) {
  auto c = config(4, 8, 8);
  c.label_rule = TokenLabelRule::Random;
  ItemLabelTokensTask t(c);
  Batch b = t.sample(400, 5, StreamKind::Data, 0);
  int64_t matches = 0;
  for (int64_t r = 0; r < b.size; ++r) {
    const int32_t* tok = b.tokens.data() + r * 9;
    std::set<int32_t> labels = {tok[1], tok[3], tok[5], tok[7]};
    EXPECT_TRUE(labels.count(b.targets[r * 9 + 8])) << "the target is not a label in context";
    for (int64_t i = 0; i < 4; ++i)
      if (tok[2 * i] == tok[8]) matches += b.targets[r * 9 + 8] == tok[2 * i + 1];
  }
  // Independent of the query: the query's own label about 1 time in N = 4.
  EXPECT_GT(matches, 60);
  EXPECT_LT(matches, 140);
  const Scalars ref = t.reference_losses(b);
  ASSERT_EQ(ref.size(), 3u);
  EXPECT_EQ(ref[0].first, "ref.bayes");
  EXPECT_NEAR(ref[0].second, std::log(4.0), 1e-12);
}

TEST(ItemLabelTokens, ReferenceLosses) {
  ItemLabelTokensTask t(config(8, 16, 16));
  const Scalars ref = t.reference_losses(t.sample(4, 0, StreamKind::Data, 0));
  ASSERT_EQ(ref.size(), 3u);
  EXPECT_EQ(ref[0].first, "ref.bayes");
  EXPECT_EQ(ref[0].second, 0.0);
  EXPECT_EQ(ref[1].first, "ref.context");
  EXPECT_NEAR(ref[1].second, std::log(8.0), 1e-12);
  EXPECT_EQ(ref[2].first, "ref.labels");
  EXPECT_NEAR(ref[2].second, std::log(16.0), 1e-12);
}

// Same batch for the same arguments, for 1 and 2 threads; row r independent of the batch size;
// other seeds, indices and stream kinds give other batches.
TEST(ItemLabelTokens, SampleIsAPureFunction) {
  ItemLabelTokensTask t(config(6, 12, 10));
  const int saved = omp_get_max_threads();
  Batch a = t.sample(100, 9, StreamKind::Data, 4);
  omp_set_num_threads(1);
  Batch one = t.sample(100, 9, StreamKind::Data, 4);
  omp_set_num_threads(2);
  Batch two = t.sample(100, 9, StreamKind::Data, 4);
  omp_set_num_threads(saved);
  EXPECT_EQ(a.tokens, one.tokens);
  EXPECT_EQ(a.tokens, two.tokens);
  EXPECT_EQ(a.targets, two.targets);
  Batch prefix = t.sample(13, 9, StreamKind::Data, 4);
  EXPECT_EQ(prefix.tokens, a.slice(0, 13).tokens);
  EXPECT_EQ(prefix.targets, a.slice(0, 13).targets);
  EXPECT_NE(t.sample(100, 10, StreamKind::Data, 4).tokens, a.tokens);
  EXPECT_NE(t.sample(100, 9, StreamKind::Data, 5).tokens, a.tokens);
  EXPECT_NE(t.sample(100, 9, StreamKind::Eval, 4).tokens, a.tokens);
}

TEST(ItemLabelTokens, BadConfigurationsNameTheKey) {
  expect_error([] { ItemLabelTokensTask t(config(9, 8, 16)); }, {"task.items", "= 8", "pairs = 9", "items >= pairs"});
  expect_error([] { ItemLabelTokensTask t(config(9, 16, 4)); }, {"task.labels", "= 4", "pairs = 9", "labels >= pairs"});
  expect_error([] { ItemLabelTokensTask t(config(0, 8, 8)); }, {"task.pairs", "= 0", "1 .. 4096"});
  // Through the registry: unknown choices name the key and the allowed values.
  const TaskEntry& e = find_task("item-label-tokens");
  expect_error([&] { e.schema.resolve({{"query", "first"}}); }, {"query", "first", "uniform", "last"});
  expect_error([&] { e.schema.resolve({{"label_rule", "shuffled"}}); }, {"label_rule", "shuffled", "pairs", "random"});
  expect_error([&] { e.schema.resolve({{"items", 0}}); }, {"items"});
  nlohmann::json c = e.schema.resolve({{"pairs", 4}, {"items", 5}, {"labels", 6}});
  c["name"] = "item-label-tokens";
  auto task = make_task(c);
  EXPECT_EQ(task->vocab(), 11);
  EXPECT_EQ(task->length(), 9);
}

}  // namespace
}  // namespace ihlab
