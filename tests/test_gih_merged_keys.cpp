// The GIH kernel's merged keys (GihRequest::reused_batch, models/gih_key_cache.h): on a batch that
// comes back call after call, positions that read the same patterns and hold the same token run as
// one key with a count. Checked here:
//  - the loss, predictions and every gradient equal those of running every position, up to
//    rounding, in both modes, both losses, float64 and float32 (test_gih_model.cpp checks the
//    merged forward pass against its loop reference too);
//  - the keys are built once and kept: a call served from the cache gives the same bits as the
//    call that built them, and as a fresh build from a copy of the tokens;
//  - a token changed in place between calls is never served from the stale keys;
//  - 1 and 2 threads give the same bits; the trainer marks the whole fixed training set and the
//    validation set as reused, mini-batches and fresh draws not.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "models/gih_kernel.h"
#include "tasks/ngram_task.h"
#include "io/config.h"
#include "train/run_data.h"
#include "train/run_schema.h"
#include "train/run_spec.h"

namespace ihlab {
namespace {

Batch markov_batch(int n, int L, uint64_t seed) {
  NgramMarkovConfig tc;
  tc.vocab = 3, tc.length = L;
  tc.parents = {-1, -2};
  tc.alpha = 0.1;
  return NgramMarkovTask(tc).sample(n, seed, StreamKind::Test, 0);
}

GihConfig chen_config(GihMode mode, GihLoss loss) {
  GihConfig c;
  c.vocab = 3, c.heads = 3, c.window = 3, c.max_subset = 2;
  c.mode = mode, c.loss = loss, c.kernel = GihKernel::Table;
  return c;
}

struct Out {
  std::vector<double> all;  // loss, dw, dc, da, y, per-sequence losses
  int64_t keys = 0;
};

template <typename T>
Out run(const GihConfig& cfg, const Batch& b, bool reused, double a = 2.5) {
  const int64_t nS = int64_t(gih_subsets(cfg.heads, cfg.max_subset).size());
  std::vector<T> w(cfg.heads * cfg.window), c(nS);
  for (size_t i = 0; i < w.size(); ++i) w[i] = T(0.3 * std::sin(1.7 * double(i) + 0.2));
  for (int64_t S = 0; S < nS; ++S) c[S] = T(0.4 + 0.1 * double(S));
  GihRequest req;
  req.grad_w = req.grad_c = req.grad_a = true;
  req.y = req.seq_loss = true;
  req.reused_batch = reused;
  auto r = gih_compute(cfg, w.data(), c.data(), T(a), b.tokens.data(), b.size, b.length, req);
  Out o;
  o.all = {r.loss, r.da};
  o.all.insert(o.all.end(), r.dw.begin(), r.dw.end());
  o.all.insert(o.all.end(), r.dc.begin(), r.dc.end());
  for (T y : r.y) o.all.push_back(double(y));
  o.all.insert(o.all.end(), r.seq_loss.begin(), r.seq_loss.end());
  o.keys = r.keys;
  return o;
}

void expect_close(const Out& a, const Out& b, double rel, const std::string& what) {
  ASSERT_EQ(a.all.size(), b.all.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < a.all.size(); ++i)
    worst = std::max(worst, std::abs(a.all[i] - b.all[i]) / std::max(1e-3, std::abs(b.all[i])));
  EXPECT_LE(worst, rel) << what;
}

const std::vector<std::pair<GihMode, GihLoss>> kModeLoss = {{GihMode::Paper, GihLoss::Nll},
                                                            {GihMode::Paper, GihLoss::CeOnProbs},
                                                            {GihMode::Code, GihLoss::Nll},
                                                            {GihMode::Code, GihLoss::CeOnProbs}};

TEST(GihMergedKeys, GiveTheLossPredictionsAndGradientsOfEveryPosition) {
  const Batch b = markov_batch(600, 100, 3);
  for (auto [mode, loss] : kModeLoss) {
    const GihConfig cfg = chen_config(mode, loss);
    const std::string what = fmt::format("mode {}, loss {}", int(mode), gih_loss_name(loss));
    const Out every = run<double>(cfg, b, false), merged = run<double>(cfg, b, true);
    expect_close(merged, every, 1e-11, what + ", float64");
    expect_close(run<float>(cfg, b, true), every, 2e-4, what + ", float32");
    // The Markov chains repeat themselves: far fewer keys than positions (about a quarter here).
    EXPECT_EQ(every.keys, 600 * 100) << what;
    EXPECT_LT(merged.keys, 600 * 100 / 2) << what;
    EXPECT_GT(merged.keys, 600) << what;
  }
}

TEST(GihMergedKeys, AreBuiltOnceAndKeptWithoutChangingABit) {
  const GihConfig cfg = chen_config(GihMode::Paper, GihLoss::Nll);
  Batch b = markov_batch(700, 60, 4);
  const Out built = run<double>(cfg, b, true);
  const Out cached = run<double>(cfg, b, true);
  Batch copy = b;  // same tokens elsewhere in memory: served from the same keys or rebuilt, same bits
  const Out from_copy = run<double>(cfg, copy, true);
  EXPECT_EQ(built.all, cached.all);
  EXPECT_EQ(built.all, from_copy.all);
  const int saved = num_threads();
  set_threads(1);
  const Out one = run<double>(cfg, b, true);
  set_threads(2);
  const Out two = run<double>(cfg, b, true);
  set_threads(saved);
  EXPECT_EQ(one.all, built.all);
  EXPECT_EQ(two.all, built.all);
}

TEST(GihMergedKeys, ATokenChangedInPlaceIsNeverServedFromStaleKeys) {
  const GihConfig cfg = chen_config(GihMode::Code, GihLoss::CeOnProbs);
  Batch b = markov_batch(900, 50, 5);
  const Out before = run<double>(cfg, b, true);
  // Change one token in a late chunk and one in the first: both chunks must be rebuilt.
  for (int64_t i : {int64_t(850 * 51 + 20), int64_t(3 * 51 + 7)}) b.tokens[i] = (b.tokens[i] + 1) % 3;
  const Out after = run<double>(cfg, b, true), every = run<double>(cfg, b, false);
  expect_close(after, every, 1e-11, "after the change");
  double moved = 0;
  for (size_t i = 0; i < after.all.size(); ++i) moved = std::max(moved, std::abs(after.all[i] - before.all[i]));
  EXPECT_GT(moved, 1e-6);  // the change is visible, so a stale key would have been caught above
}

TEST(GihMergedKeys, TheTrainerMarksOnlyBatchesThatComeBack) {
  auto spec_with = [](const std::string& data) {
    return run_spec_from_config(run_schema().resolve(parse_toml_string(R"(name = "t"
dtype = "float64"
[task]
name = "ngram-markov"
vocab = 3
length = 20
[model]
name = "gih"
[[stages]]
lr = 1.0
steps = 1
)" + data,
                                                                       "test")));
  };
  const RunSpec whole = spec_with("[data]\nmode = \"fixed\"\ntrain_size = 50\nval_size = 10\nbatch_size = 0\n");
  const RunData d = make_run_data(whole);
  EXPECT_TRUE(d.train.reused);
  EXPECT_TRUE(d.val.reused);
  EXPECT_EQ(whole_train_batch(whole, d), &d.train);
  const RunSpec mini = spec_with("[data]\nmode = \"fixed\"\ntrain_size = 50\nval_size = 10\nbatch_size = 8\n");
  const RunData dm = make_run_data(mini);
  EXPECT_FALSE(dm.train.reused);
  EXPECT_EQ(whole_train_batch(mini, dm), nullptr);
  EXPECT_FALSE(train_batch(mini, dm, 3).reused);
  const RunSpec fresh = spec_with("[data]\nmode = \"fresh\"\nbatch_size = 8\nval_size = 10\n");
  const RunData df = make_run_data(fresh);
  EXPECT_FALSE(train_batch(fresh, df, 3).reused);
  EXPECT_TRUE(df.val.reused);
}

}  // namespace
}  // namespace ihlab
