#pragma once
// Bursty few-shot classification (tasks/bursty.h) as a Task: "bursty".
//
// Layout of a Batch (length() = 2N + 1, feature_dim() = D, vocab() = L + 1):
//   tokens   [n, 2N+1]: ITEM, label_1, ITEM, label_2, ..., ITEM, label_N, ITEM (the query);
//            labels are token ids 0 .. L-1 and ITEM = L.
//   features [n, 2N+1, D]: the item vector at every ITEM position, zeros at label positions.
//   targets  [n, 2N+1]: the query's label at the last position, -1 elsewhere; with
//            targets = "all" every item position also has its own label as target (Chan et al.).
// Training batches (sample) follow the bursty / i.i.d. mixture; eval_sets() are "in-context" and
// "in-weights", sampled by sample_eval(set, n, seed) from RandomStream(seed, Eval,
// kEvalSetIndex + set number, r), never the validation set's substream.
//
// Reference losses (mean over the targets, nats):
//   ref.uniform  uniform over the L labels: ln L.
//   ref.copy     in-context copy: the label distribution of the EARLIER context items within
//                match_threshold() (squared distance) of the item being labelled, uniform over
//                the labels when none matches; -log(p + 1e-12), so a false match costs ~27.6
//                instead of infinity. It sees only tokens and features, so it applies to any
//                batch of this task, eval sets included.
#include "tasks/bursty.h"
#include "tasks/task.h"

namespace ihlab {

class BurstyTask : public Task {
 public:
  explicit BurstyTask(BurstyConfig cfg);  // validates
  std::string name() const override { return "bursty"; }
  int64_t vocab() const override { return cfg_.labels + 1; }
  int64_t length() const override { return cfg_.length(); }
  int64_t feature_dim() const override { return cfg_.dim; }
  // Sequence r is RandomStream(seed, kind, index, r); the world comes from the seed alone.
  Batch sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const override;
  std::vector<std::string> eval_sets() const override { return {"in-context", "in-weights"}; }
  Batch sample_eval(const std::string& set, int64_t n, uint64_t seed) const override;
  Scalars reference_losses(const Batch& b) const override;

  // The sequences behind a batch (class ids, labels), for tests and analyses.
  std::vector<BurstySequence> sequences(BurstySet set, int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const;
  // In-context copy prediction over the L labels for the item at `pos` (an ITEM position) of row r.
  std::vector<double> copy_prediction(const Batch& b, int64_t r, int64_t pos) const;
  const BurstyConfig& config() const { return cfg_; }

  static constexpr uint64_t kEvalSetIndex = uint64_t(1) << 61;

 private:
  Batch layout(const std::vector<BurstySequence>& seqs) const;
  void check_layout(const Batch& b) const;  // shapes, and labels at every label position
  BurstyConfig cfg_;
};

}  // namespace ihlab
