// Dumps one float64 forward/backward of the transformer for tests/torch_check_transformer.py:
//   tool_dump_transformer OUT.safetensors 'CONFIG_JSON'
// CONFIG_JSON: the [model] keys of "transformer" (layers, heads, width, attention_only, mlp_width,
// norm, positional, rel_window, self_attention, tied_unembedding, dropout, attn_bias, rope_base,
// ln_eps; missing keys take the model's defaults) plus the task side: vocab, max_len, feature_dim,
// and the batch: batch, length (<= max_len), seed. Regression: value_dim > 0 (the task side),
// regression_loss ("mse" | "candidates"), candidates (how many per sequence; default 3).
// Tensors: "param.<name>", "grad.<name>" (every parameter, after one training-mode loss and
// backward, so with dropout when dropout > 0); "tokens", "targets" (I64 [B, L], about a quarter of
// the targets -1); "features" ([B, L, F], F > 0); "loss" ([], training mode); "logits" ([B, L, V]),
// "attention.l<l>" ([B, H, L, L]), "per_position" ([B, L], NaN where no target), all without
// dropout; "ov.l<l>.h<h>" ([V, V]); regression instead of logits, per_position and ov: "values"
// ([B, Dv]), "prediction" ([B, Dv], no dropout), with candidates "candidates" ([B, C, Dv]) and
// "candidate_target" (I64 [B]); with dropout the multipliers the training pass used:
// "drop.l<l>.probs" [B, H, L, L], "drop.l<l>.attn_out" and "drop.l<l>.mlp_out" [B, L, D].
// __metadata__["config"] is the resolved configuration as JSON.
// Parameters are random, not the init (whose zero RPE and unit gains would hide mistakes): gains
// 1 + N(0, 0.3^2), everything else N(0, 0.5^2).
#include <cmath>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "io/safetensors.h"
#include "models/transformer.h"
#include "models/transformer_detail.h"

using namespace ihlab;
namespace td = ihlab::transformer_detail;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: tool_dump_transformer OUT.safetensors 'CONFIG_JSON'\n");
    return 2;
  }
  try {
    const nlohmann::json j = nlohmann::json::parse(argv[2]);
    TransformerConfig c;
    c.vocab = j.value("vocab", c.vocab);
    c.max_len = j.value("max_len", c.max_len);
    c.feature_dim = j.value("feature_dim", c.feature_dim);
    c.value_dim = j.value("value_dim", c.value_dim);
    c.regression_loss = parse_transformer_regression_loss(j.value("regression_loss", std::string("mse")));
    c.layers = j.value("layers", c.layers);
    c.heads = j.value("heads", c.heads);
    c.width = j.value("width", c.width);
    c.attention_only = j.value("attention_only", c.attention_only);
    c.mlp_width = j.value("mlp_width", c.mlp_width);
    c.norm = parse_transformer_norm(j.value("norm", std::string(transformer_norm_name(c.norm))));
    c.positional =
        parse_transformer_positional(j.value("positional", std::string(transformer_positional_name(c.positional))));
    c.rel_window = j.value("rel_window", c.rel_window);
    c.self_attention = j.value("self_attention", c.self_attention);
    c.tied_unembedding = j.value("tied_unembedding", c.tied_unembedding);
    c.dropout = j.value("dropout", c.dropout);
    c.attn_bias = j.value("attn_bias", c.attn_bias);
    c.rope_base = j.value("rope_base", c.rope_base);
    c.ln_eps = j.value("ln_eps", c.ln_eps);
    const int64_t B = j.value("batch", int64_t(4)), L = j.value("length", c.max_len);
    const uint64_t seed = j.value("seed", uint64_t(1));

    Transformer<double> model(c, seed);
    RandomStream rs(seed, StreamKind::Test, 41);
    for (auto& p : model.params().all()) {
      const bool gain = p.name.find("ln_g") != std::string::npos;
      for (auto& x : p.var.value().span()) x = gain ? 1.0 + 0.3 * rs.normal() : 0.5 * rs.normal();
    }
    Batch b;
    b.size = B, b.length = L, b.feature_dim = c.feature_dim;
    for (int64_t i = 0; i < B * L; ++i) {
      b.tokens.push_back(int32_t(rs.randint(c.vocab)));
      b.targets.push_back(rs.uniform() < 0.25 ? -1 : int32_t(rs.randint(c.vocab)));
    }
    b.targets[0] = 0;
    for (int64_t i = 0; i < B * L * c.feature_dim; ++i) b.features.push_back(float(rs.normal()));
    const int64_t Dv = c.value_dim, C = j.value("candidates", int64_t(3));
    if (Dv > 0) {
      b.value_dim = Dv;
      for (int64_t i = 0; i < B * Dv; ++i) b.values.push_back(rs.normal());
      if (c.regression_loss == TransformerRegressionLoss::Candidates) {
        b.num_candidates = C;
        for (int64_t i = 0; i < B * C * Dv; ++i) b.candidates.push_back(rs.normal());
        for (int64_t r = 0; r < B; ++r) b.candidate_target.push_back(int32_t(rs.randint(C)));
      }
    }

    Var<double> loss = model.loss(b);  // training mode: every parameter is trainable
    backward(loss);
    Tensor<double> out;  // logits [B, L, V], or the regression prediction [B, Dv]
    {
      NoGradScope<double> no_grad(model.params());
      out = Dv > 0 ? model.predict(b).value() : model.logits(b).value();
    }
    const auto probs = model.attention_probs(b);

    SafetensorsFile f;
    for (auto& p : model.params().all()) {
      f.tensors.push_back(to_raw("param." + p.name, p.var.value()));
      f.tensors.push_back(to_raw("grad." + p.name, p.var.grad()));
    }
    auto ids = [&](const char* name, const std::vector<int32_t>& v) {
      f.tensors.push_back(to_raw(name, Tensor<int64_t>(Shape{B, L}, std::vector<int64_t>(v.begin(), v.end()))));
    };
    ids("tokens", b.tokens);
    ids("targets", b.targets);
    if (c.feature_dim > 0) {
      std::vector<double> feats(b.features.begin(), b.features.end());
      f.tensors.push_back(to_raw("features", Tensor<double>(Shape{B, L, c.feature_dim}, std::move(feats))));
    }
    f.tensors.push_back(to_raw("loss", loss.value()));
    if (Dv > 0) {
      f.tensors.push_back(to_raw("prediction", out));
      f.tensors.push_back(to_raw("values", Tensor<double>(Shape{B, Dv}, b.values)));
      if (b.num_candidates > 0) {
        f.tensors.push_back(to_raw("candidates", Tensor<double>(Shape{B, C, Dv}, b.candidates)));
        f.tensors.push_back(to_raw(
            "candidate_target",
            Tensor<int64_t>(Shape{B}, std::vector<int64_t>(b.candidate_target.begin(), b.candidate_target.end()))));
      }
    } else {
      f.tensors.push_back(to_raw("logits", out));
      f.tensors.push_back(to_raw("per_position", Tensor<double>(Shape{B, L}, model.per_position_losses(b))));
    }
    for (int64_t l = 0; l < c.layers; ++l) {
      f.tensors.push_back(to_raw("attention.l" + std::to_string(l), probs[l]));
      for (int64_t h = 0; h < c.heads && Dv == 0; ++h)
        f.tensors.push_back(
            to_raw(fmt::format("ov.l{}.h{}", l, h), Tensor<double>(Shape{c.vocab, c.vocab}, model.ov_circuit(l, h))));
      if (c.dropout > 0) {
        const uint64_t hash = td::batch_hash(b);
        f.tensors.push_back(to_raw(fmt::format("drop.l{}.probs", l),
                                   td::dropout_multipliers<double>({B, c.heads, L, L}, c.dropout, seed, hash,
                                                                   td::site_id(l, td::kAttnProbs))));
        f.tensors.push_back(to_raw(
            fmt::format("drop.l{}.attn_out", l),
            td::dropout_multipliers<double>({B, L, c.width}, c.dropout, seed, hash, td::site_id(l, td::kAttnOut))));
        if (!c.attention_only)
          f.tensors.push_back(to_raw(
              fmt::format("drop.l{}.mlp_out", l),
              td::dropout_multipliers<double>({B, L, c.width}, c.dropout, seed, hash, td::site_id(l, td::kMlpOut))));
      }
    }
    nlohmann::json meta = {
        {"vocab", c.vocab},
        {"max_len", c.max_len},
        {"feature_dim", c.feature_dim},
        {"value_dim", c.value_dim},
        {"regression_loss", c.regression_loss == TransformerRegressionLoss::Mse ? "mse" : "candidates"},
        {"layers", c.layers},
        {"heads", c.heads},
        {"width", c.width},
        {"attention_only", c.attention_only},
        {"mlp_width", c.mlp_hidden()},
        {"norm", transformer_norm_name(c.norm)},
        {"positional", transformer_positional_name(c.positional)},
        {"rel_window", c.rel_window},
        {"self_attention", c.self_attention},
        {"tied_unembedding", c.tied_unembedding},
        {"dropout", c.dropout},
        {"attn_bias", c.attn_bias},
        {"rope_base", c.rope_base},
        {"ln_eps", c.ln_eps},
        {"batch", B},
        {"length", L},
        {"seed", seed}};
    f.metadata["config"] = meta.dump();
    write_safetensors(argv[1], f);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tool_dump_transformer: %s\n", e.what());
    return 1;
  }
  return 0;
}
