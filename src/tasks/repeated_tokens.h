#pragma once
// Repeated random tokens (Olsson et al. 2022, "In-context Learning and Induction Heads"):
// "repeated-tokens".
//
// A sequence is [BOS] r r ... r: `repeats` copies of a block r of `block` tokens drawn i.i.d.
// uniformly from [0, vocab). BOS is its own token id `vocab`, so the task's vocab() is vocab + 1
// (BOS is never a target). `repeats` counts the copies: Olsson's prefix-matching probe
// "25 tokens, 4 repeats" is block = 25, repeats = 4 (101 tokens); "50 tokens repeated once" is
// block = 50, repeats = 2.
//
// Layout of a Batch (length() = 1 + block * repeats; see block_min for variable blocks):
//   tokens  [n, length]: BOS, r, r, ..., r.
//   targets [n, length]: next-token targets, targets[i] = tokens[i + 1], the last position -1.
//     targets = "repeats" keeps only the positions whose target lies in copies 2.. (i >= block),
//     the positions an induction head can predict; "all" also scores BOS and the first block.
//
// Reference predictors (exact, per position; column names):
//   ref.uniform  uniform over the vocab content tokens: ln vocab at every target.
//   ref.oracle   knows the layout ("copy"): uniform on the first block (ln vocab), then the token
//                one block back with probability 1 (loss 0). A perfect induction head reaches it
//                except where r itself repeats a token (then earlier-match copying is ambiguous).
#include <string>
#include <vector>

#include "tasks/reference.h"
#include "io/fields.h"
#include "tasks/task.h"

namespace ihlab {

enum class RepeatedTargets { All, Repeats };
constexpr auto enum_choices(RepeatedTargets) {
  return std::array<EnumChoice<RepeatedTargets>, 2>{
      {{RepeatedTargets::All, "all"}, {RepeatedTargets::Repeats, "repeats"}}};
}

struct RepeatedTokensConfig {
  int64_t vocab = 64;   // content tokens; BOS = vocab
  int64_t block = 25;   // tokens in r (the largest block when block_min > 0)
  int64_t repeats = 4;  // copies of r (>= 2)
  RepeatedTargets targets = RepeatedTargets::All;
  // 0: every block has `block` tokens. Else each sequence draws its block length uniformly from
  // [block_min, block] and pads the end with random filler tokens (no targets), so no fixed
  // offset copies the next token: only an induction head (match the current token, copy what
  // followed it) does. Needs targets = "repeats": a sequence's block length is then its first
  // target position, which is how the references recover the layout from a batch.
  int64_t block_min = 0;

  bool repeats_only() const { return targets == RepeatedTargets::Repeats; }
  template <class V>
  void fields(V& v) {
    v("vocab", vocab, "content tokens (BOS is the extra id vocab)", in(2, 1 << 20));
    v("block", block, "tokens in the repeated block", in(1, 1 << 20));
    v("repeats", repeats, "copies of the block (2 = the block repeated once)", in(2, 1 << 20));
    v("block_min", block_min,
      "0 = fixed blocks; else block lengths uniform in [block_min, block] with random filler after the copies, so "
      "no fixed offset solves the task (needs targets = repeats)",
      in(0, 1 << 20));
    v("targets", targets, "which next-token targets count: all, or only those inside the repeats");
  }

  void validate() const;  // throws ihlab::Error naming the key (task.vocab, ...)
};

class RepeatedTokensTask : public Task {
 public:
  explicit RepeatedTokensTask(RepeatedTokensConfig cfg);  // validates
  std::string name() const override { return "repeated-tokens"; }
  int64_t vocab() const override { return cfg_.vocab + 1; }
  int64_t length() const override { return 1 + cfg_.block * cfg_.repeats; }
  int32_t bos() const { return int32_t(cfg_.vocab); }
  // Sequence r is RandomStream(seed, kind, index, r): the same for any thread count or batch size.
  Batch sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const override;
  // Mean over the batch's targets of ref.uniform and ref.oracle.
  Scalars reference_losses(const Batch& b) const override;

  // [size, length, vocab()] per reference, in the order uniform, oracle.
  std::vector<ReferencePrediction> predictions(const Batch& b) const;
  // Exact expected loss at every position ([length], NaN where there is no target).
  std::vector<PositionLosses> expected_position_losses() const;
  const RepeatedTokensConfig& config() const { return cfg_; }

 private:
  int64_t block_of(const Batch& b, int64_t row) const;  // the row's block length
  RepeatedTokensConfig cfg_;
};

}  // namespace ihlab
