#pragma once
// A trained `transformer` in TransformerLens's HookedTransformer state-dict layout, so that
//   model = HookedTransformer(HookedTransformerConfig(**cfg)); model.load_state_dict(sd, strict=False)
// computes the same logits (README "Python module", "TransformerLens export"). Layout, per layer l
// (D = d_model, H = n_heads, dh = d_head, M = d_mlp, V = d_vocab):
//   embed.W_E [V, D]    pos_embed.W_pos [n_ctx, D] (learned; zeros for positional = none; absent
//                       for rotary, which TransformerLens computes itself)
//   blocks.l.ln1.w, .b [D]   blocks.l.attn.W_Q, W_K, W_V [H, D, dh]   b_Q, b_K, b_V [H, dh]
//   blocks.l.attn.W_O [H, dh, D]   b_O [D]   blocks.l.ln2.w, .b [D]
//   blocks.l.mlp.W_in [D, M]  b_in [M]  W_out [M, D]  b_out [D]
//   ln_final.w, .b [D]   unembed.W_U [D, V]  b_U [V]
// Missing biases are written as zeros, a tied unembedding as E^T. Options with no
// TransformerLens equivalent (relative or ALiBi position biases, strictly causal attention,
// continuous feature inputs, regression read-outs) are refused with an error naming the key.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ihlab {

struct TransformerLensExport {
  std::string safetensors;  // path of the state dict written
  std::string config;       // path of the HookedTransformerConfig JSON written
  nlohmann::json cfg;       // what config holds
  std::vector<std::string> names;
};

// Reads RUN_DIR/config.toml and a checkpoint (checkpoint = "" takes checkpoints/latest.json's),
// writes OUT_DIR/model.safetensors (dtype of the run) and OUT_DIR/config.json. Throws ihlab::Error
// for another model, an option with no TransformerLens equivalent or a missing checkpoint.
TransformerLensExport export_transformer_lens(const std::string& run_dir, const std::string& out_dir,
                                              const std::string& checkpoint = "");

}  // namespace ihlab
