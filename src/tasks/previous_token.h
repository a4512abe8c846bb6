#pragma once
// The smoke task: uniform random tokens; the target at position i is the token at i - 1.
// A one-layer attention model solves it only by attending to offset 1 and copying (OV ~ identity),
// so learning it exercises every part of the engine.
#include "io/fields.h"
#include "tasks/task.h"

namespace ihlab {

struct PreviousTokenConfig {
  int64_t vocab = 8;
  int64_t length = 16;
  template <class V>
  void fields(V& v) {
    v("vocab", vocab, "vocabulary size", in(2, 65536));
    v("length", length, "tokens per sequence", in(2, 65536));
  }
};

class PreviousTokenTask : public Task {
 public:
  PreviousTokenTask(int64_t vocab, int64_t length);
  explicit PreviousTokenTask(const PreviousTokenConfig& c) : PreviousTokenTask(c.vocab, c.length) {}
  std::string name() const override { return "previous-token"; }
  int64_t vocab() const override { return vocab_; }
  int64_t length() const override { return length_; }
  Batch sample(int64_t n, uint64_t seed, StreamKind kind, uint64_t index) const override;
  Scalars reference_losses(const Batch& b) const override;

 private:
  int64_t vocab_, length_;
};

}  // namespace ihlab
