#pragma once
// UTF-8 validation of model output (bytes: a generation cut inside a character, stray bytes, the
// overlong forms and surrogates a grammar may admit). Header-only and the standard library only, so that
// the inference plugins, which see this folder as the plugin API's (backends/CMakeLists.txt) and link no
// herdsim library, share it with sim (the InvestAlign answer parser).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace herdsim::utf8 {

/// Length of the UTF-8 sequence starting at s[i] (RFC 3629: no overlong form, surrogate or value past
/// U+10FFFF), or 0 when no valid sequence starts there. i < s.size().
[[nodiscard]] inline std::size_t length_at(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80U) return 1;
  std::size_t len = 0;
  std::uint32_t cp = 0;
  if ((c & 0xE0U) == 0xC0U) {
    len = 2;
    cp = c & 0x1FU;
  } else if ((c & 0xF0U) == 0xE0U) {
    len = 3;
    cp = c & 0x0FU;
  } else if ((c & 0xF8U) == 0xF0U) {
    len = 4;
    cp = c & 0x07U;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0U) != 0x80U) return 0;
    cp = (cp << 6U) | (cc & 0x3FU);
  }
  static constexpr std::uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  const bool ok = cp >= min_cp[len] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
  return ok ? len : 0;
}

[[nodiscard]] inline bool is_valid(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = length_at(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

/// s with every byte that starts no valid sequence replaced by U+FFFD, appended to out. ASCII bytes are
/// never replaced: braces, quotes and backslashes stay where they were.
inline void append_valid(std::string_view s, std::string& out) {
  out.reserve(out.size() + s.size() + 8);
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = length_at(s, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
}

}  // namespace herdsim::utf8
