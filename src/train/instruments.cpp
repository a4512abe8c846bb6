#include "train/instruments.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "analysis/head_scores.h"
#include "analysis/reference_kl.h"
#include "io/attention_log.h"

namespace ihlab {
namespace {

// val_loss and the model's evaluate() on the validation set and, where the task has reference
// strategies, the distance to each (the stages of in-context learning), KL(ref || model), for
// models that expose their next-token distributions. One Model::validate call, so a model that
// reads all three off one forward pass (the transformer) runs it once per log row, not three times.
template <typename T>
class Validation : public Instrument<T> {
 public:
  explicit Validation(std::vector<ReferencePrediction> refs) : refs_(std::move(refs)) {}
  std::string name() const override { return "validation"; }
  void measure(const LogPoint<T>& p, Scalars& row) override {
    auto v = p.model.validate(p.val, !refs_.empty());
    row.push_back({"val_loss", v.loss});
    for (auto& [k, x] : v.scalars) row.push_back({"val_" + k, x});
    if (v.probs.empty()) return;  // a model that predicts one position only
    for (auto& ref : refs_) {
      std::string name = ref.name.rfind("ref.", 0) == 0 ? ref.name.substr(4) : ref.name;
      row.push_back({"kl." + name, mean_kl_to_reference(ref, v.probs, p.val)});
    }
  }

 private:
  std::vector<ReferencePrediction> refs_;  // on the validation set
};

// The task's named evaluation sets (e.g. bursty's in-context / in-weights): loss and evaluate().
template <typename T>
class EvalSets : public Instrument<T> {
 public:
  explicit EvalSets(std::vector<std::pair<std::string, Batch>> sets) : sets_(std::move(sets)) {}
  std::string name() const override { return "eval-sets"; }
  void measure(const LogPoint<T>& p, Scalars& row) override {
    for (auto& [set, b] : sets_) {
      auto v = p.model.validate(b, false);
      row.push_back({"val_" + set + "_loss", v.loss});
      for (auto& [k, x] : v.scalars) row.push_back({"val_" + set + "_" + k, x});
    }
  }

 private:
  std::vector<std::pair<std::string, Batch>> sets_;  // column slug, batch
};

template <typename T>
class Probes : public Instrument<T> {
 public:
  std::string name() const override { return "probes"; }
  void measure(const LogPoint<T>& p, Scalars& row) override {
    for (auto& kv : p.model.probes()) row.push_back(kv);
  }
};

// Per-head previous-token, induction and prefix-matching scores on the first `n` validation
// sequences (analysis/head_scores.h).
template <typename T>
class HeadScores : public Instrument<T> {
 public:
  explicit HeadScores(int64_t n) : n_(n) {}
  std::string name() const override { return "head-scores"; }
  void measure(const LogPoint<T>& p, Scalars& row) override {
    if (!has_attention_) return;
    std::vector<std::vector<AttentionMap>> maps;
    for (int64_t s = 0; s < std::min(n_, p.val.size); ++s) maps.push_back(p.model.attention(p.val, s));
    if (maps.empty() || maps[0].empty()) has_attention_ = false;  // a model without attention: stop asking
    for (auto& kv : attention_head_scores(maps, p.val)) row.push_back(kv);
  }

 private:
  int64_t n_;
  bool has_attention_ = true;
};

template <typename T>
class FlowEvals : public Instrument<T> {
 public:
  std::string name() const override { return "flow-evals"; }
  void measure(const LogPoint<T>& p, Scalars& row) override { row.push_back({"flow_evals", double(p.flow_evals)}); }
};

// Constant columns: reference predictors' losses on the validation set and a caller's extras.
template <typename T>
class References : public Instrument<T> {
 public:
  explicit References(Scalars values) : values_(std::move(values)) {}
  std::string name() const override { return "references"; }
  void measure(const LogPoint<T>&, Scalars& row) override {
    for (auto& kv : values_) row.push_back(kv);
  }

 private:
  Scalars values_;
};

// attention.jsonl: snapshots at steps 0 and ~total^(k/(n-1)), k = 1..n-1 (the first logged step at
// or after each), and at every stage end: early formation gets as many frames as the long tail.
template <typename T>
class AttentionSnapshots : public Instrument<T> {
 public:
  AttentionSnapshots(const std::string& out_dir, const LogSpec& log, int64_t total_steps, int64_t resume_step)
      : n_(log.attention_snapshots), total_steps_(total_steps) {
    if (resume_step < 0) {
      log_ = std::make_unique<AttentionLog>(out_dir + "/attention.jsonl", log.attention_tokens);
      return;
    }
    log_ = std::make_unique<AttentionLog>(out_dir + "/attention.jsonl", log.attention_tokens, resume_step);
    // The schedule's state is a function of the last snapshot kept: the next target after it.
    next_ = log_->last_step() < 0 ? 0 : next_after(log_->last_step());
  }
  std::string name() const override { return "attention-snapshots"; }
  void after_row(const LogPoint<T>& p) override {
    if (!log_ || (p.step < next_ && !p.stage_end)) return;
    std::vector<AttentionMap> maps = p.model.attention(p.val, 0);
    if (maps.empty()) {  // a model without attention: stop asking
      log_.reset();
      return;
    }
    std::vector<int32_t> tokens(p.val.tokens.begin(), p.val.tokens.begin() + p.val.length);
    log_->write(p.step, p.stage, tokens, maps);
    next_ = next_after(p.step);
  }

 private:
  int64_t next_after(int64_t s) const {
    const double base = std::max<double>(double(total_steps_), 1.0);
    for (int64_t k = 1; k < n_; ++k) {
      int64_t t = int64_t(std::ceil(std::pow(base, double(k) / double(n_ - 1))));
      if (t > s) return t;
    }
    return std::numeric_limits<int64_t>::max();
  }

  int64_t n_, total_steps_;
  int64_t next_ = 0;  // the next step at or after which attention is saved
  std::unique_ptr<AttentionLog> log_;
};

}  // namespace

template <typename T>
Instruments<T> make_instruments(const RunSpec& spec, const RunData& data, const InstrumentSetup& setup) {
  const Task& task = *data.task;
  Instruments<T> list;
  list.push_back(std::make_unique<Validation<T>>(task.reference_predictions(data.val)));
  std::vector<std::pair<std::string, Batch>> sets;
  for (auto& set : task.eval_sets()) {
    std::string slug = set;
    std::replace(slug.begin(), slug.end(), '-', '_');
    sets.push_back({slug, task.sample_eval(set, spec.data.val_size, spec.seed)});
  }
  if (!sets.empty()) list.push_back(std::make_unique<EvalSets<T>>(std::move(sets)));
  list.push_back(std::make_unique<Probes<T>>());
  if (spec.log.head_scores > 0) list.push_back(std::make_unique<HeadScores<T>>(spec.log.head_scores));
  bool any_flow = false;
  for (auto& s : spec.stages) any_flow |= s.method == StageMethod::Flow;
  if (any_flow) list.push_back(std::make_unique<FlowEvals<T>>());
  Scalars references = task.reference_losses(data.val);
  for (auto& kv : setup.extra_references) references.push_back(kv);
  list.push_back(std::make_unique<References<T>>(std::move(references)));
  if (spec.log.attention_snapshots > 0 && data.val.size > 0)
    list.push_back(
        std::make_unique<AttentionSnapshots<T>>(setup.out_dir, spec.log, setup.total_steps, setup.resume_step));
  return list;
}

template Instruments<float> make_instruments<float>(const RunSpec&, const RunData&, const InstrumentSetup&);
template Instruments<double> make_instruments<double>(const RunSpec&, const RunData&, const InstrumentSetup&);

}  // namespace ihlab
