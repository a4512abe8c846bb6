#pragma once
// Learning-rate schedules within one training stage. A pure function of the step, so resuming at
// step s needs nothing but s.
#include <cstdint>
#include <string>

#include "io/fields.h"

namespace ihlab {

enum class ScheduleKind { Constant, Warmup, Cosine };
constexpr auto enum_choices(ScheduleKind) {
  using K = ScheduleKind;
  return std::array<EnumChoice<K>, 3>{{{K::Constant, "constant"}, {K::Warmup, "warmup"}, {K::Cosine, "cosine"}}};
}

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::Constant;
  int64_t warmup_steps = 0;   // W >= 0
  double min_lr_ratio = 0.0;  // r in [0, 1]: cosine ends at base * r

  template <class V>
  void fields(V& v) {
    v("schedule", kind, "learning-rate schedule within the stage");
    v("warmup_steps", warmup_steps, "linear warm-up steps", in(0, 1e12));
    v("min_lr_ratio", min_lr_ratio, "cosine: final lr as a fraction of lr", in(0, 1));
  }
};

// lr at 0-based `step` of a stage of `total_steps` steps (N). With base = base_lr:
//   constant: base
//   warmup:   base * (step + 1) / W   for step < W     (first step already trains: base / W)
//             base                    for step >= W
//   cosine:   base * (step + 1) / W   for step < W     (no warmup phase when W == 0)
//             base * (r + (1 - r) * (1 + cos(pi * q)) / 2)   for step >= W,
//               with q = min(1, (step - W) / (N - W)), so lr = base at step W and would reach
//               base * r at step N (the last step, N - 1, is one notch above it). If N <= W
//               there is nothing to decay over and lr = base.
// Throws ihlab::Error on an unknown kind, W < 0, r outside [0, 1] or step < 0.
double learning_rate(const ScheduleConfig& cfg, double base_lr, int64_t step, int64_t total_steps);

}  // namespace ihlab
