#pragma once
// InvestAlign answer (docs/theory.md §4.5): a JSON object with "Decision Explanation" and a sequence (or one
// value) of percentages. This file holds the schema, the parser with its fallback rules, and the two
// machine-readable forms of the schema (JSON Schema, llama.cpp GBNF grammar) built from the same
// constants, so that every text the grammar admits parses as a valid answer.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sim/enum_names.hpp"

namespace herdsim::investalign {

/// JSON key of the free-text reasoning.
inline constexpr std::string_view key_explanation = "Decision Explanation";
/// JSON key of the absolute (and mutual) task's T proportions, percent.
inline constexpr std::string_view key_proportion_sequence = "Investment Proportion Sequence";
/// JSON key of the relative task's T - 1 year-to-year changes, percentage points.
inline constexpr std::string_view key_change_sequence = "Investment Proportion Change Sequence";
/// JSON key of the per-step task's single proportion, percent.
inline constexpr std::string_view key_single_proportion = "Investment Proportion";
/// Longest explanation the grammar admits, in characters (escape sequences count as one).
inline constexpr int default_max_explanation_chars = 400;

/// What an answer must contain. Values are written in percent; the parser returns fractions.
struct AnswerSchema {
  std::string key{key_proportion_sequence};                   ///< JSON key of the values
  int length = 10;                                            ///< number of values (1 when scalar)
  bool scalar = false;                                        ///< one JSON number instead of an array
  double min_percent = 0.0;                                   ///< smallest admissible value, percent
  double max_percent = 100.0;                                 ///< largest admissible value, percent
  int max_explanation_chars = default_max_explanation_chars;  ///< bound of the grammar's explanation
};

/// Absolute and mutual tasks: T proportions in 0..100 percent.
[[nodiscard]] AnswerSchema proportion_sequence_schema(int horizon_years);
/// Relative task: T - 1 changes in -100..100 percentage points (needs T >= 2).
[[nodiscard]] AnswerSchema change_sequence_schema(int horizon_years);
/// Per-step task: one proportion in 0..100 percent.
[[nodiscard]] AnswerSchema single_proportion_schema();

/// Why an answer was accepted, adjusted or replaced.
enum class AnswerStatus {
  ok,                   ///< exactly `length` numeric values in range
  no_json_object,       ///< no brace-balanced block of the text is valid JSON
  missing_key,          ///< the first JSON object lacks the values key
  wrong_type,           ///< the values key holds neither an array (sequence) nor a number/string (scalar)
  non_numeric_element,  ///< an element is not a number or a numeric string (NaN and inf included)
  out_of_range,         ///< an element lies outside [min_percent, max_percent]
  too_short,            ///< fewer values than `length`: padded with the fallback values
  too_long,             ///< more values than `length`: truncated
};
constexpr std::array<NamedValue<AnswerStatus>, 8> enum_names(AnswerStatus /*unused*/) {
  return {{{AnswerStatus::ok, "ok"},
           {AnswerStatus::no_json_object, "no_json_object"},
           {AnswerStatus::missing_key, "missing_key"},
           {AnswerStatus::wrong_type, "wrong_type"},
           {AnswerStatus::non_numeric_element, "non_numeric_element"},
           {AnswerStatus::out_of_range, "out_of_range"},
           {AnswerStatus::too_short, "too_short"},
           {AnswerStatus::too_long, "too_long"}}};
}
/// Stable snake_case name of a status (as written to files; the name table's spelling, as a C string).
[[nodiscard]] const char* answer_status_name(AnswerStatus status);

/// The parsed answer. `values` always has `length` entries; when `valid` is false they are the fallback.
struct ParsedAnswer {
  std::vector<double> values;              ///< fractions (percent / 100)
  bool valid = false;                      ///< values come from the answer (ok, too_short, too_long)
  AnswerStatus status = AnswerStatus::ok;  ///< what happened
  std::string message;                     ///< one line for logs, naming the offending element
  int padded = 0;                          ///< fallback values appended (too_short)
  int truncated = 0;                       ///< answer values dropped (too_long)
  std::optional<std::string> explanation;  ///< "Decision Explanation" when it is a string
};

/// The first brace-balanced `{...}` block of text that is valid JSON (braces inside JSON strings and
/// escaped quotes are respected while balancing); nullopt when there is none.
[[nodiscard]] std::optional<std::string> extract_json_object(std::string_view text);

/// Parses an LLM answer (docs/theory.md §4.6). Elements: a string is stripped of whitespace and one
/// trailing '%' and parsed as a decimal number; a JSON number (integer or float alike) is taken as is;
/// both are percent and divided by 100. Missing or unusable values (no object, missing key, wrong type,
/// non-numeric or out-of-range element) give the fallback values with valid = false; a short sequence is
/// padded from the fallback and a long one truncated (valid, counted). fallback: `length` fractions
/// (the advisor's values); throws InputError when its size differs.
[[nodiscard]] ParsedAnswer parse_answer(std::string_view text, const AnswerSchema& schema,
                                        std::span<const double> fallback);

/// Counts of parse outcomes over many answers (docs/theory.md §4.6: report the invalid and padded counts).
struct AnswerTally {
  std::int64_t total = 0;                   ///< answers seen
  std::int64_t valid = 0;                   ///< valid answers (ok, too_short, too_long)
  std::int64_t invalid = 0;                 ///< answers replaced by the fallback
  std::int64_t padded = 0;                  ///< answers padded (too_short)
  std::int64_t truncated = 0;               ///< answers truncated (too_long)
  std::array<std::int64_t, 8> by_status{};  ///< indexed by AnswerStatus
  /// Adds one parsed answer.
  void add(const ParsedAnswer& answer);
};

/// A fraction as percent with exactly two decimals ("36.21", "-0.05"), rounded half away from zero on
/// hundredths of a percent; prompts and answers format every percentage with it.
[[nodiscard]] std::string format_percent(double fraction);

/// The answer text as the dataset writes it: `{"Decision Explanation": "...", "<key>": [v, ...]}` with
/// every value in percent with exactly two decimals (an InputError when a value or the explanation does
/// not fit the schema, so that targets always satisfy the grammar). values: fractions.
[[nodiscard]] std::string format_answer(const AnswerSchema& schema, std::string_view explanation,
                                        std::span<const double> values);

/// The schema as a JSON Schema (draft 2020-12) document, serialised.
[[nodiscard]] std::string answer_json_schema(const AnswerSchema& schema);

/// A llama.cpp GBNF grammar (root rule `root`) admitting exactly the answer objects: the explanation
/// string first (at most max_explanation_chars characters; no control characters; escapes \" \\ \/ \b
/// \f \n \r \t, no \u), then the values with exactly two decimals inside [min_percent, max_percent];
/// up to 8 whitespace characters between tokens. Uses bounded repetition `x{m,n}` (llama.cpp b2700+).
/// Only whole-number bounds 0 or 100 (and their negatives) are supported; others throw InputError.
[[nodiscard]] std::string answer_gbnf(const AnswerSchema& schema);

}  // namespace herdsim::investalign
