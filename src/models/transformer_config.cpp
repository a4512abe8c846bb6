// Transformer configuration: names of the choices, validation with messages that name the key,
// the value and what is allowed, and the fixed ALiBi slopes.
#include <cmath>

#include "models/transformer.h"

namespace ihlab {

TransformerNorm parse_transformer_norm(const std::string& s) { return parse_enum<TransformerNorm>(s, "model.norm"); }

TransformerPositional parse_transformer_positional(const std::string& s) {
  return parse_enum<TransformerPositional>(s, "model.positional");
}

const char* transformer_norm_name(TransformerNorm n) { return enum_name(n); }

const char* transformer_positional_name(TransformerPositional p) { return enum_name(p); }

TransformerRegressionLoss parse_transformer_regression_loss(const std::string& s) {
  return parse_enum<TransformerRegressionLoss>(s, "model.regression_loss");
}

int64_t TransformerConfig::rpe_size() const { return rel_window > 0 ? rel_window : max_len - min_offset(); }

void TransformerConfig::validate() const {
  IHLAB_CHECK(vocab >= 1, "transformer: the task's vocabulary size {} must be >= 1", vocab);
  IHLAB_CHECK(max_len >= 1, "transformer: the task's sequence length {} must be >= 1", max_len);
  IHLAB_CHECK(feature_dim >= 0, "transformer: the task's feature_dim {} must be >= 0", feature_dim);
  IHLAB_CHECK(value_dim >= 0, "transformer: the task's value_dim {} must be >= 0", value_dim);
  IHLAB_CHECK(!(value_dim > 0 && tied_unembedding),
              "config: key 'model.tied_unembedding' = true is not allowed for a regression task (value_dim = {}): "
              "the readout maps to target vectors, not tokens (allowed: false)",
              value_dim);
  IHLAB_CHECK(!(value_dim > 0 && token_loss == TransformerTokenLoss::Mse),
              "config: key 'model.token_loss' = \"mse\" is not allowed for a regression task (value_dim = {}): it "
              "scores token logits; use model.regression_loss (allowed: \"cross-entropy\")",
              value_dim);
  IHLAB_CHECK(layers >= 1, "config: key 'model.layers' = {} is out of range (allowed: layers >= 1)", layers);
  IHLAB_CHECK(heads >= 1, "config: key 'model.heads' = {} is out of range (allowed: heads >= 1)", heads);
  IHLAB_CHECK(width >= 1, "config: key 'model.width' = {} is out of range (allowed: width >= 1)", width);
  IHLAB_CHECK(width % heads == 0,
              "config: key 'model.heads' = {} does not divide model.width = {} (the head dim width / heads must be "
              "a whole number; allowed heads: divisors of {})",
              heads, width, width);
  IHLAB_CHECK(mlp_width >= 0, "config: key 'model.mlp_width' = {} is out of range (allowed: 0 = 4 * width, or >= 1)",
              mlp_width);
  IHLAB_CHECK(!(attention_only && mlp_width != 0),
              "config: key 'model.mlp_width' = {} has no effect with model.attention_only = true (allowed: 0, or set "
              "attention_only = false to add MLP blocks)",
              mlp_width);
  IHLAB_CHECK(rel_window >= 0,
              "config: key 'model.rel_window' = {} is out of range (allowed: 0 = every offset, or >= 1)", rel_window);
  IHLAB_CHECK(rel_window == 0 || positional == TransformerPositional::Relative,
              "config: key 'model.rel_window' = {} only applies to model.positional = \"relative\", not \"{}\" "
              "(allowed: 0)",
              rel_window, transformer_positional_name(positional));
  if (positional == TransformerPositional::Relative) {
    const int64_t most = max_len - min_offset();
    IHLAB_CHECK(most >= 1,
                "config: model.positional = \"relative\" with model.self_attention = false needs a task length >= 2 "
                "(got {}): no query has an earlier position",
                max_len);
    IHLAB_CHECK(rel_window <= most,
                "config: key 'model.rel_window' = {} is out of range (allowed: 0 = every offset, or 1..{}: offsets "
                "{}..{} of a length-{} sequence)",
                rel_window, most, min_offset(), max_len - 1, max_len);
  }
  IHLAB_CHECK(positional != TransformerPositional::Rotary || head_dim() % 2 == 0,
              "config: model.positional = \"rotary\" needs an even head dim, but model.width / model.heads = {} / {} "
              "= {}",
              width, heads, head_dim());
  IHLAB_CHECK(rope_base > 0 && std::isfinite(rope_base),
              "config: key 'model.rope_base' = {} is out of range (allowed: rope_base > 0)", rope_base);
  IHLAB_CHECK(dropout >= 0 && dropout < 1,
              "config: key 'model.dropout' = {} is out of range (allowed: 0 <= dropout < 1)", dropout);
  IHLAB_CHECK(init_std >= 0 && std::isfinite(init_std),
              "config: key 'model.init_std' = {} is out of range (allowed: init_std >= 0)", init_std);
  IHLAB_CHECK(ln_eps > 0 && std::isfinite(ln_eps),
              "config: key 'model.ln_eps' = {} is out of range (allowed: ln_eps > 0)", ln_eps);
}

std::vector<double> alibi_slopes(int64_t heads) {
  IHLAB_CHECK(heads >= 1, "alibi_slopes: heads = {} (need >= 1)", heads);
  // Power of two n: 2^(-8/n), 2^(-16/n), ..., 2^(-8).
  auto pow2 = [](int64_t n) {
    std::vector<double> s(n);
    for (int64_t i = 0; i < n; ++i) s[i] = std::exp2(-8.0 * double(i + 1) / double(n));
    return s;
  };
  int64_t n = 1;
  while (n * 2 <= heads) n *= 2;
  std::vector<double> s = pow2(n);
  if (n == heads) return s;
  // Otherwise (Press et al.'s reference code): the slopes of n, then every other slope of 2n.
  std::vector<double> extra = pow2(2 * n);
  for (int64_t i = 0; int64_t(s.size()) < heads; i += 2) s.push_back(extra[i]);
  return s;
}

}  // namespace ihlab
