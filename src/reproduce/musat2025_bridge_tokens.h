#pragma once
// What musat2025-bridge reads off its runs (musat2025_bridge_tokens_measures.cpp): the bridge
// measures of every periodic checkpoint, the step of the loss drop, and the trained weights in the
// paper's transformed form.
#include <string>

#include <nlohmann/json.hpp>

#include "io/run_dir.h"

namespace ihlab::musat_tokens {

// DIR_OF_RUN/bridge.csv (step, alpha3, beta2, gamma3): analysis/bridge_measures.h on every
// checkpoint of the run, with the token embedding T = embed.E (all V rows: items and labels) in
// the place of the feature embedding and U = unembed.U [width, V]. Made on first use, after which
// the periodic checkpoints are deleted (the stage-end one stays); later calls read the file.
// Throws ihlab::Error when the run has neither the file nor checkpoints.
MetricsTable bridge_table(const std::string& run_dir);

// The step at which val_loss first falls below the midpoint of its first and last logged values
// (interpolated); NaN when the last value is not below half the first (no drop).
double drop_step(const MetricsTable& m);

// First step at which `col` of the bridge table reaches `frac` of its largest value (NaN when
// that value is not positive) or, with frac < 0, the absolute level -frac.
double reach(const MetricsTable& bridge, const std::string& col, double frac);

// The mechanism's blocks of the final (stage-end) checkpoint, written without the score scale
// 1/sqrt(d_head), row-vector convention (y = x W, p_i = pos.P[i], t_a = embed.E[a]):
//   alpha_positions [L, L]  (p_i W_Q1) . (p_j W_K1): query position i (row), key position j
//   beta_tokens     [V, V]  (t_a W_V1 W_O1 W_K2) . (t_b W_Q2): key token a copied by layer 1 (row),
//                           query token b (column); its trace is beta~_2
//   gamma_tokens    [V, V]  t_a W_V2 W_O2 U: attended token a (row), output logit c (column); its
//                           trace is gamma~_3
// As JSON {name: {rows, cols, row, col, values (row-major rows), band, expected, share, chance, norm}},
// and each as OUT_DIR/weights/<prefix>_<name>.csv (rows of comma-separated values). `band` is the
// diagonal the mechanism predicts (col - row: -1 for alpha, the previous position; 0 for beta and
// gamma) and `expected` says so in words; `share`, `chance` and `norm` are band_share's. alpha
// also has `max_band` (-1, or 0 with model.self_attention): only the cells a causal query reaches.
nlohmann::json transformed_weights(const std::string& run_dir, const std::string& out_dir, const std::string& prefix);

// How much of a block sits on its expected diagonal: over the cells with col - row <= max_band,
// share = the squared Frobenius norm of the cells with col - row == band over that of all of them
// (NaN for an all-zero block), chance = the fraction of the cells that are on the band (the share
// of a block with no structure), norm = the Frobenius norm of those cells (a share near chance at
// init scale is noise). `values` is a JSON array of rows.
struct BandShare {
  double share, chance, norm;
};
BandShare band_share(const nlohmann::json& values, int64_t band, int64_t max_band);

}  // namespace ihlab::musat_tokens
