#pragma once
// GihModel: the simplified two-attention-layer transformer TF(M, H, d, D) of Chen, Sheen, Wang,
// Yang (2024), "gih" in the model registry. The math and its fused kernel are in gih_kernel.h;
// the limiting GIH predictor is in gih_limit.h.
//
// Parameters (name / group / shape):
//   "w" / "W" / [H, M]   RPE logits; w[h][k] belongs to offset o_h + 1 + k, o_h = 0 (paper mode,
//                        every head sees offsets 1..M) or h (code mode, head h sees h+1..h+M).
//   "c" / "C" / [S]      c_S for every subset of heads with |S| <= D, in gih_subsets() order
//                        ({}, {0}, {1}, ..., {0,1}, ...), labelled by bit strings ("110" = {0,1}).
//   "a" / "a" / []       the layer-2 scale.
// Init: w = w_minus except w[h][offset h+1] = w_plus (head h starts near parent -(h+1)); c_S = c_init;
// a = a_init.
//
// A batch is the ngram-markov layout: rows of L+1 tokens, the last one the target (read from the
// tokens, so the same batch works with or without all_positions); the model predicts only that
// last token. Any L works (generalization runs evaluate one model at many lengths).
#include <vector>

#include "models/gih_kernel.h"
#include "models/model.h"

namespace ihlab {

template <typename T>
class GihModel : public Model<T> {
 public:
  explicit GihModel(const GihConfig& cfg);  // validates
  std::string name() const override { return "gih"; }

  Var<T> loss(const Batch& b) override;
  // acc (argmax y = target), loss_excl_unseen (mean loss over the sequences whose target occurs
  // among x_1..x_L: the others get y[t] = 0 from every model of this family, and in nll mode
  // their -log(guard) would dominate the mean), unseen_frac (the fraction left out there).
  Scalars evaluate(const Batch& b) override;
  // a; p.<bits> = p_S and logp.<bits> = ln p_S for every subset (computed from ln|c_S|, so it stays
  // finite far below the smallest float; ln(p_S*/p_S) = logp.S* - logp.S); rpe.h<h>.o<offset> for
  // every head and window offset (offset = distance back, 1-based).
  Scalars probes() const override;
  // Layer-1 RPE heads and the layer-2 query row (gih_attention.h) for sequence `example`.
  std::vector<AttentionMap> attention(const Batch& b, int64_t example) override;

  Tensor<T> predict(const Batch& b);                    // y: [n, d]
  std::vector<double> sequence_losses(const Batch& b);  // [n]

  const GihConfig& config() const { return cfg_; }
  const std::vector<GihSubset>& subsets() const { return subsets_; }
  std::vector<double> log_p() const;  // ln p_S in subset order

  Var<T>& w() { return w_; }
  Var<T>& c() { return c_; }
  Var<T>& a() { return a_; }

 private:
  GihResult<T> run(const Batch& b, GihRequest req);  // req.reused_batch is taken from b
  GihConfig cfg_;
  std::vector<GihSubset> subsets_;
  Var<T> w_, c_, a_;
};

}  // namespace ihlab
