#include "tools/cli/progress.hpp"

#include <unistd.h>

#include <fmt/format.h>

namespace herdsim::cli {

namespace {
std::string format_seconds(double s) {
  if (s < 60.0) return fmt::format("{:.0f}s", s);
  if (s < 3600.0)
    return fmt::format("{}m{:02.0f}s", static_cast<int>(s / 60.0), s - 60.0 * static_cast<int>(s / 60.0));
  return fmt::format("{:.1f}h", s / 3600.0);
}
}  // namespace

Progress::Progress(std::string label, bool quiet, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      quiet_(quiet),
      tty_(isatty(fileno(stderr)) != 0),
      start_(Clock::now()),
      last_print_(start_) {}

void Progress::update(int done, int total) {
  if (quiet_ || total <= 0) return;
  const auto now = Clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const int percent = static_cast<int>(100.0 * done / total);
  const double eta = done > 0 ? elapsed * (total - done) / done : 0.0;
  if (tty_) {
    // Redraw at most ~20 times a second.
    if (done < total && now - last_print_ < std::chrono::milliseconds(50) && drawn_) return;
    constexpr int width = 30;
    const int filled = width * done / total;
    fmt::print(stderr, "\r{} [{}{}] {:3d}%  {} {}/{}  elapsed {}  ETA {}   ", label_,
               std::string(static_cast<std::size_t>(filled), '#'),
               std::string(static_cast<std::size_t>(width - filled), '.'), percent, unit_, done, total,
               format_seconds(elapsed), format_seconds(eta));
    std::fflush(stderr);
    drawn_ = true;
  } else {
    // Plain lines: every 10 % or every 10 s, whichever comes first.
    if (percent / 10 == last_percent_ / 10 && now - last_print_ < std::chrono::seconds(10) && done < total)
      return;
    fmt::print(stderr, "{}: {:3d}% ({} {}/{}), elapsed {}, ETA {}\n", label_, percent, unit_, done, total,
               format_seconds(elapsed), format_seconds(eta));
  }
  last_percent_ = percent;
  last_print_ = now;
}

void Progress::restart(std::string label) {
  if (label == label_) return;
  finish();
  label_ = std::move(label);
  start_ = Clock::now();
  last_print_ = start_;
  last_percent_ = -1;
}

void Progress::finish() {
  if (tty_ && drawn_ && !quiet_) fmt::print(stderr, "\n");
  drawn_ = false;
}

}  // namespace herdsim::cli
