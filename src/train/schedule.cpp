// The formulas are spelled out in schedule.h; this file only follows them.
#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace ihlab {

double learning_rate(const ScheduleConfig& cfg, double base_lr, int64_t step, int64_t total_steps) {
  IHLAB_CHECK(cfg.warmup_steps >= 0, "schedule: warmup_steps must be >= 0, got {}", cfg.warmup_steps);
  IHLAB_CHECK(cfg.min_lr_ratio >= 0 && cfg.min_lr_ratio <= 1, "schedule: min_lr_ratio must be in [0, 1], got {}",
              cfg.min_lr_ratio);
  IHLAB_CHECK(step >= 0, "schedule: step must be >= 0, got {}", step);

  if (cfg.kind == ScheduleKind::Constant) return base_lr;
  const int64_t w = cfg.warmup_steps;
  if (step < w) return base_lr * double(step + 1) / double(w);
  if (cfg.kind == ScheduleKind::Warmup) return base_lr;

  const int64_t decay_steps = total_steps - w;
  if (decay_steps <= 0) return base_lr;
  const double q = std::min(1.0, double(step - w) / double(decay_steps));
  const double r = cfg.min_lr_ratio;
  return base_lr * (r + (1 - r) * 0.5 * (1 + std::cos(std::numbers::pi * q)));
}

}  // namespace ihlab
