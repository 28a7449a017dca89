#pragma once
// Shared by the fuzz harnesses (docs/fuzzing.md): reading structured values from the fuzz bytes, and the
// property check that turns a broken invariant into a crash libFuzzer records (abort, in any build).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace herdsim::fuzz {

/// A broken property: prints where and what, then aborts (libFuzzer saves the input as a crash).
[[noreturn]] inline void fail(const char* file, int line, const char* what, const std::string& detail) {
  std::fprintf(stderr, "%s:%d: fuzz property failed: %s\n%s\n", file, line, what, detail.c_str());
  std::abort();
}

}  // namespace herdsim::fuzz

/// Checks a property of the code under test (not an assert: active in every build type).
#define FUZZ_CHECK(cond, detail)                                             \
  do {                                                                       \
    if (!(cond)) ::herdsim::fuzz::fail(__FILE__, __LINE__, #cond, (detail)); \
  } while (false)

namespace herdsim::fuzz {

/// Structured values drawn from the fuzz bytes, front to back; an exhausted input reads as zeros, so
/// every input decodes to something.
class FuzzInput {
 public:
  FuzzInput(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  [[nodiscard]] bool empty() const { return pos_ >= size_; }
  [[nodiscard]] std::size_t remaining() const { return size_ - pos_; }

  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : std::uint8_t{0}; }

  bool boolean() { return (byte() & 1U) != 0; }

  /// An integer in [lo, hi] from up to 4 bytes.
  std::int64_t integer(std::int64_t lo, std::int64_t hi) {
    const auto range = static_cast<std::uint64_t>(hi - lo);
    std::uint64_t v = 0;
    for (std::uint64_t span = range; span > 0 && !empty(); span >>= 8) v = (v << 8) | byte();
    return lo + static_cast<std::int64_t>(range == UINT64_MAX ? v : v % (range + 1));
  }

  /// 8 raw bytes as a double: every bit pattern, NaN, infinities and subnormals included.
  double raw_double() {
    std::uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits = (bits << 8) | byte();
    double d = 0.0;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }

  /// Mostly ordinary values (a fraction in hundredths within [lo, hi]), sometimes any bit pattern.
  double number(double lo, double hi) {
    if ((byte() & 7U) == 0) return raw_double();
    const auto steps = integer(0, 1'000'000);
    return lo + (hi - lo) * static_cast<double>(steps) / 1e6;
  }

  /// Up to max_size bytes: a length byte pair, then the bytes.
  std::string text(std::size_t max_size) {
    const auto n = static_cast<std::size_t>(integer(0, static_cast<std::int64_t>(max_size)));
    const std::size_t take = n < remaining() ? n : remaining();
    std::string out(reinterpret_cast<const char*>(data_ + pos_), take);
    pos_ += take;
    return out;
  }

  /// What is left, as text.
  std::string_view rest() {
    const std::string_view out(reinterpret_cast<const char*>(data_ + pos_), size_ - pos_);
    pos_ = size_;
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace herdsim::fuzz
