#include "train/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace ihlab {

Progress::Progress(int64_t total_steps, bool quiet)
    : total_(total_steps),
      tty_(isatty(fileno(stderr)) == 1),
      quiet_(quiet),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

namespace {
std::string duration(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  if (s < 60) return fmt::format("{:.0f}s", s);
  if (s < 3600) return fmt::format("{}m{:02d}s", int(s) / 60, int(s) % 60);
  return fmt::format("{}h{:02d}m", int(s) / 3600, (int(s) / 60) % 60);
}
}  // namespace

void Progress::update(int64_t step, const std::string& line, bool is_log_step) {
  if (quiet_) return;
  auto now = std::chrono::steady_clock::now();
  if (start_step_ < 0) {
    start_step_ = step - 1;  // a resumed run measures its rate from where it restarted
    start_ = now;
  }
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double rate = elapsed > 0 ? double(step - start_step_) / elapsed : 0;
  double eta = rate > 0 ? double(total_ - step) / rate : -1;
  if (tty_) {
    if (std::chrono::duration<double>(now - last_draw_).count() < 0.1 && step < total_) return;
    last_draw_ = now;
    int width = 28, filled = total_ > 0 ? int(width * std::min<int64_t>(step, total_) / total_) : 0;
    fmt::print(stderr, "\r[{}{}] {}/{} {:.1f} step/s ETA {}  {}\x1b[K", std::string(filled, '#'),
               std::string(width - filled, '.'), step, total_, rate, duration(eta), line);
    std::fflush(stderr);
  } else if (is_log_step) {
    fmt::print(stderr, "step {}/{}  {}  ({:.1f} step/s, ETA {})\n", step, total_, line, rate, duration(eta));
  }
}

void Progress::finish(const std::string& line) {
  if (quiet_) return;
  if (tty_) fmt::print(stderr, "\n");
  if (!line.empty()) fmt::print(stderr, "{}\n", line);
}

}  // namespace ihlab
