// TransformerLens export of a trained `transformer` (models/transformer_export.h).
#include "models/transformer_export.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "io/checkpoint.h"
#include "io/config.h"
#include "io/run_dir.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "models/transformer.h"
#include "tasks/registry.h"

namespace ihlab {
namespace {
namespace fs = std::filesystem;

// Refuses what TransformerLens cannot express, naming the key and what the export allows.
void check_exportable(const TransformerConfig& c) {
  using P = TransformerPositional;
  IHLAB_CHECK(c.positional == P::Learned || c.positional == P::None || c.positional == P::Rotary,
              "export: key 'model.positional' = \"{}\" has no TransformerLens equivalent (allowed: learned, none, "
              "rotary)",
              transformer_positional_name(c.positional));
  IHLAB_CHECK(c.self_attention,
              "export: key 'model.self_attention' = false has no TransformerLens equivalent (its causal mask "
              "always includes the diagonal; allowed: true)");
  IHLAB_CHECK(c.feature_dim == 0,
              "export: the task's continuous inputs (feature_dim = {}, embed.W_in) have no TransformerLens "
              "equivalent (allowed: token tasks, feature_dim = 0)",
              c.feature_dim);
  IHLAB_CHECK(c.value_dim == 0,
              "export: the regression read-out (the task's value_dim = {}) has no TransformerLens equivalent "
              "(allowed: token tasks, value_dim = 0)",
              c.value_dim);
}

template <typename T>
RawTensor raw(const std::string& name, Shape shape, const std::vector<T>& v) {
  RawTensor r{name, dtype_of<T>(), std::move(shape), {}};
  IHLAB_CHECK(numel_of(r.shape) == int64_t(v.size()), "export: {} has {} values for shape {}", name, v.size(),
              shape_str(r.shape));
  r.bytes.resize(v.size() * sizeof(T));
  std::memcpy(r.bytes.data(), v.data(), r.bytes.size());
  return r;
}

template <typename T>
std::vector<RawTensor> tl_tensors(const TransformerConfig& c, const std::map<std::string, Tensor<T>>& p) {
  const int64_t D = c.width, H = c.heads, dh = c.head_dim(), V = c.vocab, M = c.mlp_hidden();
  const bool pre = c.norm == TransformerNorm::Pre;
  auto get = [&](const std::string& n) -> const Tensor<T>& {
    auto it = p.find(n);
    IHLAB_CHECK(it != p.end(), "export: the checkpoint has no parameter '{}'", n);
    return it->second;
  };
  auto vec = [](const Tensor<T>& t) { return std::vector<T>(t.span().begin(), t.span().end()); };
  auto zeros = [](int64_t n) { return std::vector<T>(size_t(n), T(0)); };
  auto bias_or_zero = [&](const std::string& n, int64_t size) { return p.count(n) ? vec(get(n)) : zeros(size); };
  std::vector<RawTensor> out;
  out.push_back(raw<T>("embed.W_E", {V, D}, vec(get("embed.E"))));
  if (c.positional == TransformerPositional::Learned)
    out.push_back(raw<T>("pos_embed.W_pos", {c.max_len, D}, vec(get("pos.P"))));
  else if (c.positional == TransformerPositional::None)  // TransformerLens always adds W_pos: zeros = none
    out.push_back(raw<T>("pos_embed.W_pos", {c.max_len, D}, zeros(c.max_len * D)));
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string a = fmt::format("layer{}.attn.", l), m = fmt::format("layer{}.mlp.", l),
                      b = fmt::format("blocks.{}.", l);
    if (pre) {
      out.push_back(raw<T>(b + "ln1.w", {D}, vec(get(a + "ln_g"))));
      out.push_back(raw<T>(b + "ln1.b", {D}, vec(get(a + "ln_b"))));
    }
    // W [D, D] with head h in columns h*dh .. h*dh+dh-1  ->  [H, D, dh].
    for (const char* n : {"q", "k", "v"}) {
      const std::vector<T> W = vec(get(a + "W" + n)), bias = bias_or_zero(a + "b" + n, D);
      std::vector<T> w(size_t(H * D * dh));
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < D; ++i)
          for (int64_t j = 0; j < dh; ++j) w[(h * D + i) * dh + j] = W[i * D + h * dh + j];
      const std::string up = n == std::string("q") ? "Q" : n == std::string("k") ? "K" : "V";
      out.push_back(raw<T>(b + "attn.W_" + up, {H, D, dh}, w));
      out.push_back(raw<T>(b + "attn.b_" + up, {H, dh}, bias));  // [D] = [H, dh] row-major
    }
    // Wo [D, D] with head h in rows h*dh .. -> [H, dh, D]: the same memory.
    out.push_back(raw<T>(b + "attn.W_O", {H, dh, D}, vec(get(a + "Wo"))));
    out.push_back(raw<T>(b + "attn.b_O", {D}, bias_or_zero(a + "bo", D)));
    if (!c.attention_only) {
      if (pre) {
        out.push_back(raw<T>(b + "ln2.w", {D}, vec(get(m + "ln_g"))));
        out.push_back(raw<T>(b + "ln2.b", {D}, vec(get(m + "ln_b"))));
      }
      out.push_back(raw<T>(b + "mlp.W_in", {D, M}, vec(get(m + "W1"))));
      out.push_back(raw<T>(b + "mlp.b_in", {M}, vec(get(m + "b1"))));
      out.push_back(raw<T>(b + "mlp.W_out", {M, D}, vec(get(m + "W2"))));
      out.push_back(raw<T>(b + "mlp.b_out", {D}, vec(get(m + "b2"))));
    }
  }
  if (pre) {
    out.push_back(raw<T>("ln_final.w", {D}, vec(get("unembed.ln_g"))));
    out.push_back(raw<T>("ln_final.b", {D}, vec(get("unembed.ln_b"))));
  }
  std::vector<T> U(size_t(D * V));
  if (c.tied_unembedding) {  // W_U = E^T
    const std::vector<T> E = vec(get("embed.E"));
    for (int64_t v = 0; v < V; ++v)
      for (int64_t d = 0; d < D; ++d) U[d * V + v] = E[v * D + d];
  } else {
    U = vec(get("unembed.U"));
  }
  out.push_back(raw<T>("unembed.W_U", {D, V}, U));
  out.push_back(raw<T>("unembed.b_U", {V}, zeros(V)));
  return out;
}

template <typename T>
std::vector<RawTensor> tensors_from(const std::string& path, const TransformerConfig& c) {
  Checkpoint<T> ck = load_checkpoint<T>(path);
  std::map<std::string, Tensor<T>> p(ck.params.begin(), ck.params.end());
  return tl_tensors<T>(c, p);
}

// The HookedTransformerConfig fields that describe this model.
nlohmann::json tl_config(const TransformerConfig& c, const std::string& dtype, const std::string& name) {
  using P = TransformerPositional;
  nlohmann::json j = {{"model_name", name},
                      {"n_layers", c.layers},
                      {"d_model", c.width},
                      {"n_ctx", c.max_len},
                      {"d_head", c.head_dim()},
                      {"n_heads", c.heads},
                      {"d_mlp", c.attention_only ? nlohmann::json(nullptr) : nlohmann::json(c.mlp_hidden())},
                      {"d_vocab", c.vocab},
                      {"d_vocab_out", c.vocab},
                      {"act_fn", c.attention_only ? nlohmann::json(nullptr) : nlohmann::json("gelu")},
                      {"attn_only", c.attention_only},
                      {"normalization_type", c.norm == TransformerNorm::Pre ? nlohmann::json("LN") : nlohmann::json()},
                      {"eps", c.ln_eps},
                      {"positional_embedding_type", c.positional == P::Rotary ? "rotary" : "standard"},
                      {"use_attn_scale", true},
                      {"attn_scale", std::sqrt(double(c.head_dim()))},
                      {"default_prepend_bos", false},
                      {"tokenizer_name", nullptr},
                      {"dtype", dtype}};
  if (c.positional == P::Rotary) {
    j["rotary_dim"] = c.head_dim();
    j["rotary_base"] = c.rope_base;
    j["rotary_adjacent_pairs"] = false;  // ihlab's rotary is the half-split (rotate_half) layout
  }
  return j;
}

}  // namespace

TransformerLensExport export_transformer_lens(const std::string& run_dir, const std::string& out_dir,
                                              const std::string& checkpoint) {
  const std::string cfg_path = run_dir + "/config.toml";
  IHLAB_CHECK(fs::exists(cfg_path), "export: '{}' is not a run directory (no config.toml)", run_dir);
  // config.toml is the resolved configuration (every default written), so it is read as it stands.
  const nlohmann::json cfg = parse_toml_file(cfg_path);
  const std::string model = cfg.at("model").at("name");
  IHLAB_CHECK(model == "transformer",
              "export: key 'model.name' = \"{}\" cannot be exported to TransformerLens (allowed: transformer)", model);
  auto task = make_task(cfg.at("task"));
  TransformerConfig c = model_config<TransformerConfig>(cfg.at("model"));
  c.vocab = task->vocab();
  c.max_len = task->length();
  c.feature_dim = task->feature_dim();
  c.value_dim = task->value_dim();
  check_exportable(c);
  const std::string path = checkpoint.empty() ? latest_checkpoint_path(run_dir + "/checkpoints") : checkpoint;
  const std::string dtype = cfg.value("dtype", "float32");
  SafetensorsFile f;
  f.tensors = dtype == "float64" ? tensors_from<double>(path, c) : tensors_from<float>(path, c);
  f.metadata["format"] = "pt";
  f.metadata["source"] = "ihlab export --format transformer-lens";
  f.metadata["checkpoint"] = fs::path(path).filename().string();
  fs::create_directories(out_dir);
  TransformerLensExport r;
  r.safetensors = out_dir + "/model.safetensors";
  r.config = out_dir + "/config.json";
  r.cfg = tl_config(c, dtype, cfg.value("name", "ihlab"));
  for (auto& t : f.tensors) r.names.push_back(t.name);
  write_safetensors(r.safetensors, f);
  write_json_atomic(r.config, r.cfg);
  return r;
}

}  // namespace ihlab
