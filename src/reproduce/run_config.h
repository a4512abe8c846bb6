#pragma once
// Typed reads of a resolved run's [task] and [model] tables for the reproductions: claims use
// these structs (each declares its keys once, io/fields.h) instead of indexing the configuration's
// JSON, after checking that the run uses that task or model.
//
// Each function expects the run to use that task or model (the reproduction's own embedded
// configuration guarantees it) and throws ihlab::Error naming the key when it does not.
#include <nlohmann/json.hpp>

#include "models/attention_circuit.h"
#include "models/gih_kernel.h"
#include "models/one_layer_attention.h"
#include "tasks/bursty.h"
#include "tasks/item_label.h"
#include "tasks/mixed_target.h"
#include "tasks/ngram_markov.h"
#include "train/run_spec.h"

namespace ihlab {

// The resolved [task] and [model] tables as a whole (for the task and model factories).
const nlohmann::json& task_table(const RunSpec& spec);
const nlohmann::json& model_table(const RunSpec& spec);

NgramMarkovConfig ngram_config(const RunSpec& spec);         // task "ngram-markov"
BurstyConfig bursty_config(const RunSpec& spec);             // task "bursty"
MixedTargetConfig mixed_target_config(const RunSpec& spec);  // task "mixed-target"
ItemLabelConfig item_label_config(const RunSpec& spec);      // task "item-label"

// Model "gih" or "gih-full" (the keys they share; vocab is the ngram-markov task's).
GihConfig gih_config(const RunSpec& spec);
OneLayerAttentionConfig attn1_config(const RunSpec& spec);  // model "attn1" (vocab, length: the task's)
// Model "attention-circuit": sigma_init and the heads (length, dim, slots come from the task).
AttentionCircuitConfig circuit_config(const RunSpec& spec);

}  // namespace ihlab
