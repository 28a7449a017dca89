#pragma once
// One name table per enum. Each enum's spellings (scenario files, HDF5 attributes, analysis JSON, CLI
// flags, messages) are written once, next to the enum, as a function found by argument-dependent lookup:
//
//   constexpr std::array<NamedValue<Policy>, 3> enum_names(Policy) {
//     return {{{Policy::plan, "plan"}, {Policy::replan, "replan"}, {Policy::adaptive, "adaptive"}}};
//   }
//
// and read only through to_name, from_name, names_of and quoted_names below.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herdsim {

/// One entry of a name table: a value and its spelling.
template <class E>
struct NamedValue {
  E value;
  std::string_view name;
};

/// A type with a name table (an enum_names overload in its namespace).
template <class E>
concept Named = requires(E e) {
  enum_names(e);
};

/// The spelling of value ("unknown" if the table lacks it, e.g. a custom lottery convention).
template <Named E>
[[nodiscard]] constexpr std::string_view to_name(E value) {
  for (const auto& entry : enum_names(value)) {
    if (entry.value == value) return entry.name;
  }
  return "unknown";
}

/// The value spelt name, or nullopt.
template <Named E>
[[nodiscard]] constexpr std::optional<E> from_name(std::string_view name) {
  for (const auto& entry : enum_names(E{})) {
    if (entry.name == name) return entry.value;
  }
  return std::nullopt;
}

/// Every spelling, in table order (CLI choices).
template <Named E>
[[nodiscard]] std::vector<std::string> names_of() {
  std::vector<std::string> out;
  for (const auto& entry : enum_names(E{})) out.emplace_back(entry.name);
  return out;
}

/// Every spelling quoted and comma-separated, for messages: "\"plan\", \"replan\", \"adaptive\"".
template <Named E>
[[nodiscard]] std::string quoted_names() {
  std::string out;
  for (const auto& entry : enum_names(E{})) {
    if (!out.empty()) out += ", ";
    out += '"';
    out += entry.name;
    out += '"';
  }
  return out;
}

}  // namespace herdsim
