#include "sim/investalign/answer.hpp"

#include <fmt/format.h>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "sim/error.hpp"
#include "sim/inference/utf8.hpp"

namespace herdsim::investalign {

namespace {

using nlohmann::json;

/// The first brace-balanced block that is valid JSON, parsed; a discarded value when there is none.
/// Every '{' is a candidate start, in order, so an invalid block does not hide a valid one after it. A scan
/// from one start notes where each '{' it meets outside a string balances, or that it never does: a scan
/// from that '{' would be in the same state from there on and end at the same place, so it is not redone
/// (a text of many unbalanced braces costs one pass, not one pass per brace).
json first_json_object(std::string_view text, std::string_view* block) {
  constexpr std::size_t never = std::string_view::npos;
  std::unordered_map<std::size_t, std::size_t> balance;  // '{' position -> its '}' position, or never
  std::vector<std::size_t> open;
  for (std::size_t start = text.find('{'); start != std::string_view::npos;
       start = text.find('{', start + 1)) {
    if (balance.count(start) == 0U) {
      open.assign(1, start);
      bool in_string = false;
      bool escaped = false;
      for (std::size_t i = start + 1; i < text.size() && !open.empty(); ++i) {
        const char c = text[i];
        if (in_string) {
          if (escaped)
            escaped = false;
          else if (c == '\\')
            escaped = true;
          else if (c == '"')
            in_string = false;
          continue;
        }
        if (c == '"') {
          in_string = true;
        } else if (c == '{') {
          open.push_back(i);
        } else if (c == '}') {
          balance[open.back()] = i;
          open.pop_back();
        }
      }
      for (const std::size_t j : open) balance[j] = never;  // the text ended first
    }
    const std::size_t end = balance.at(start);
    if (end == never) continue;
    const std::string_view candidate = text.substr(start, end - start + 1);
    json value = json::parse(candidate, nullptr, /*allow_exceptions=*/false);
    if (!value.is_discarded() && value.is_object()) {
      if (block != nullptr) *block = candidate;
      return value;
    }
    // balanced but not JSON: try the next '{'
  }
  return json(json::value_t::discarded);
}

/// The text with every byte that starts no valid UTF-8 sequence replaced by U+FFFD (in storage), or the text
/// itself when it is valid. Model output is bytes: a JSON parser refuses invalid UTF-8, and llama.cpp's
/// grammar admits overlong forms and surrogates wherever a negated class admits a character, so an answer
/// the grammar admits could otherwise fail to parse. ASCII bytes are never replaced: braces, quotes and
/// backslashes stay where they were.
std::string_view as_valid_utf8(std::string_view text, std::string& storage) {
  if (utf8::is_valid(text)) return text;
  storage.clear();
  utf8::append_valid(text, storage);
  return storage;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

/// A numeric string in percent ("35", " 35.5 % ", "+1e1"): the value, or nullopt when it is not a finite
/// decimal number (from_chars would accept "nan" and "inf"; they are refused here).
std::optional<double> parse_percent_string(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.back() == '%') s.remove_suffix(1);
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  double value = 0.0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

/// An element's value in percent, or nullopt when it is neither a JSON number nor a numeric string.
std::optional<double> element_percent(const json& element) {
  if (element.is_number()) return element.get<double>();  // integers are percent too (docs/theory.md §6.2)
  if (element.is_string()) return parse_percent_string(element.get_ref<const std::string&>());
  return std::nullopt;
}

std::string short_dump(const json& value) {
  std::string text = value.dump();
  if (text.size() > 40) {
    text.resize(37);
    text += "...";
  }
  return text;
}

ParsedAnswer fallback_answer(std::span<const double> fallback, AnswerStatus status, std::string message) {
  ParsedAnswer out;
  out.values.assign(fallback.begin(), fallback.end());
  out.valid = false;
  out.status = status;
  out.message = std::move(message);
  return out;
}

/// Number of characters of an explanation as the grammar counts them (UTF-8 code points).
int count_chars(std::string_view s) {
  int n = 0;
  for (const char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0U) != 0x80U) ++n;
  }
  return n;
}

/// "12.34" / "-0.05" from a value in hundredths of a percent.
std::string format_centi_percent(long long centi) {
  const long long mag = centi < 0 ? -centi : centi;
  return fmt::format("{}{}.{:02}", centi < 0 ? "-" : "", mag / 100, mag % 100);
}

std::string gbnf_literal(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace

AnswerSchema proportion_sequence_schema(int horizon_years) {
  if (horizon_years < 1) throw InputError(fmt::format("horizon must be >= 1 year, got {}", horizon_years));
  AnswerSchema schema;
  schema.key = std::string(key_proportion_sequence);
  schema.length = horizon_years;
  return schema;
}

AnswerSchema change_sequence_schema(int horizon_years) {
  if (horizon_years < 2) {
    throw InputError(fmt::format("the relative task needs a horizon >= 2 years, got {}", horizon_years));
  }
  AnswerSchema schema;
  schema.key = std::string(key_change_sequence);
  schema.length = horizon_years - 1;
  schema.min_percent = -100.0;
  return schema;
}

AnswerSchema single_proportion_schema() {
  AnswerSchema schema;
  schema.key = std::string(key_single_proportion);
  schema.length = 1;
  schema.scalar = true;
  return schema;
}

const char* answer_status_name(AnswerStatus status) {
  return to_name(status).data();  // the table's names are NUL-terminated literals
}

std::optional<std::string> extract_json_object(std::string_view text) {
  std::string storage;
  text = as_valid_utf8(text, storage);
  std::string_view block;
  const json value = first_json_object(text, &block);
  if (value.is_discarded()) return std::nullopt;
  return std::string(block);
}

ParsedAnswer parse_answer(std::string_view text, const AnswerSchema& schema,
                          std::span<const double> fallback) {
  if (static_cast<int>(fallback.size()) != schema.length) {
    throw InputError(fmt::format("parse_answer: {} fallback values for an answer of {} values",
                                 fallback.size(), schema.length));
  }
  std::string storage;
  const json object = first_json_object(as_valid_utf8(text, storage), nullptr);
  if (object.is_discarded()) {
    return fallback_answer(fallback, AnswerStatus::no_json_object,
                           "no brace-balanced JSON object in the answer");
  }
  std::optional<std::string> explanation;
  if (const auto it = object.find(key_explanation); it != object.end() && it->is_string()) {
    explanation = it->get<std::string>();
  }
  const auto it = object.find(schema.key);
  if (it == object.end()) {
    auto out = fallback_answer(fallback, AnswerStatus::missing_key, fmt::format("no key \"{}\"", schema.key));
    out.explanation = std::move(explanation);
    return out;
  }

  // The elements to read: the array's, or the one scalar.
  std::vector<json> elements;
  if (schema.scalar) {
    if (!(it->is_number() || it->is_string())) {
      auto out = fallback_answer(fallback, AnswerStatus::wrong_type,
                                 fmt::format("\"{}\" must be a number, got {}", schema.key, short_dump(*it)));
      out.explanation = std::move(explanation);
      return out;
    }
    elements.push_back(*it);
  } else {
    if (!it->is_array()) {
      auto out = fallback_answer(fallback, AnswerStatus::wrong_type,
                                 fmt::format("\"{}\" must be an array, got {}", schema.key, short_dump(*it)));
      out.explanation = std::move(explanation);
      return out;
    }
    elements.assign(it->begin(), it->end());
  }

  const std::size_t length = fallback.size();
  const std::size_t kept = std::min(elements.size(), length);  // values beyond `length` are dropped unread
  std::vector<double> values;
  values.reserve(length);
  for (std::size_t i = 0; i < kept; ++i) {
    const auto percent = element_percent(elements[i]);
    if (!percent) {
      auto out = fallback_answer(
          fallback, AnswerStatus::non_numeric_element,
          fmt::format("element {} of \"{}\" is not a number: {}", i, schema.key, short_dump(elements[i])));
      out.explanation = std::move(explanation);
      return out;
    }
    if (*percent < schema.min_percent || *percent > schema.max_percent) {
      auto out = fallback_answer(fallback, AnswerStatus::out_of_range,
                                 fmt::format("element {} of \"{}\" is {} %, outside [{}, {}]", i, schema.key,
                                             *percent, schema.min_percent, schema.max_percent));
      out.explanation = std::move(explanation);
      return out;
    }
    values.push_back(*percent / 100.0);
  }
  if (elements.empty()) {
    auto out = fallback_answer(fallback, AnswerStatus::too_short,
                               fmt::format("\"{}\" is empty; no value came from the answer", schema.key));
    out.padded = static_cast<int>(length);
    out.explanation = std::move(explanation);
    return out;
  }

  ParsedAnswer out;
  out.valid = true;
  out.explanation = std::move(explanation);
  if (elements.size() < length) {
    out.status = AnswerStatus::too_short;
    out.padded = static_cast<int>(length - elements.size());
    out.message = fmt::format("\"{}\" has {} of {} values; padded with {} fallback values", schema.key,
                              elements.size(), length, out.padded);
    for (std::size_t i = elements.size(); i < length; ++i) values.push_back(fallback[i]);
  } else if (elements.size() > length) {
    out.status = AnswerStatus::too_long;
    out.truncated = static_cast<int>(elements.size() - length);
    out.message =
        fmt::format("\"{}\" has {} values, {} expected; truncated", schema.key, elements.size(), length);
  }
  out.values = std::move(values);
  return out;
}

void AnswerTally::add(const ParsedAnswer& answer) {
  ++total;
  if (answer.valid)
    ++valid;
  else
    ++invalid;
  if (answer.padded > 0) ++padded;
  if (answer.truncated > 0) ++truncated;
  ++by_status.at(static_cast<std::size_t>(answer.status));
}

std::string format_answer(const AnswerSchema& schema, std::string_view explanation,
                          std::span<const double> values) {
  if (static_cast<int>(values.size()) != schema.length) {
    throw InputError(fmt::format("format_answer: {} values for \"{}\", expected {}", values.size(),
                                 schema.key, schema.length));
  }
  if (count_chars(explanation) > schema.max_explanation_chars) {
    throw InputError(fmt::format("format_answer: explanation of {} characters exceeds {}",
                                 count_chars(explanation), schema.max_explanation_chars));
  }
  for (const char c : explanation) {
    if (static_cast<unsigned char>(c) < 0x20U) {
      throw InputError("format_answer: the explanation contains a control character");
    }
  }
  if (!utf8::is_valid(explanation)) throw InputError("format_answer: the explanation is not valid UTF-8");
  std::string out = "{";
  out += json(std::string(key_explanation)).dump();
  out += ": ";
  out += json(std::string(explanation)).dump();
  out += ", ";
  out += json(schema.key).dump();
  out += ": ";
  if (!schema.scalar) out += '[';
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double percent = values[i] * 100.0;
    const bool finite = std::isfinite(percent) && std::abs(percent) < 1e12;
    const long long centi = finite ? std::llround(values[i] * 10000.0) : 0;  // as format_percent rounds
    if (!finite || centi < std::llround(schema.min_percent * 100.0) ||
        centi > std::llround(schema.max_percent * 100.0)) {
      throw InputError(fmt::format("format_answer: value {} of \"{}\" is {} %, outside [{}, {}]", i,
                                   schema.key, percent, schema.min_percent, schema.max_percent));
    }
    if (i > 0) out += ", ";
    out += format_centi_percent(centi);
  }
  if (!schema.scalar) out += ']';
  out += '}';
  return out;
}

std::string format_percent(double fraction) {
  if (!(std::abs(fraction) < 1e12)) return fmt::format("{}", fraction * 100.0);  // nan, inf: no rounding
  return format_centi_percent(std::llround(fraction * 10000.0));
}

std::string answer_json_schema(const AnswerSchema& schema) {
  const json number = {
      {"type", "number"},
      {"minimum", schema.min_percent},
      {"maximum", schema.max_percent},
      {"description", "percent, written with exactly two decimals"},
  };
  json values;
  if (schema.scalar) {
    values = number;
  } else {
    values = {{"type", "array"}, {"items", number}, {"minItems", schema.length}, {"maxItems", schema.length}};
  }
  const json doc = {
      {"$schema", "https://json-schema.org/draft/2020-12/schema"},
      {"title", "herdsim InvestAlign answer"},
      {"type", "object"},
      {"properties",
       {{std::string(key_explanation), {{"type", "string"}, {"maxLength", schema.max_explanation_chars}}},
        {schema.key, values}}},
      {"required", {std::string(key_explanation), schema.key}},
      {"additionalProperties", false},
  };
  return doc.dump(2);
}

std::string answer_gbnf(const AnswerSchema& schema) {
  const bool signed_values = schema.min_percent == -100.0 && schema.max_percent == 100.0;
  const bool unsigned_values = schema.min_percent == 0.0 && schema.max_percent == 100.0;
  if (!signed_values && !unsigned_values) {
    throw InputError(
        fmt::format("answer_gbnf: value range [{}, {}] is not supported (use [0, 100] or [-100, 100])",
                    schema.min_percent, schema.max_percent));
  }
  if (schema.length < 1 || (schema.scalar && schema.length != 1) || schema.max_explanation_chars < 0) {
    throw InputError(fmt::format("answer_gbnf: invalid schema (length {}, scalar {}, max explanation {})",
                                 schema.length, schema.scalar, schema.max_explanation_chars));
  }
  std::string g;
  g += fmt::format(
      "# herdsim InvestAlign answer: explanation, then \"{}\" ({} value{}, percent, two decimals)\n",
      schema.key, schema.length, schema.length == 1 ? "" : "s");
  g += fmt::format(
      "root ::= \"{{\" ws {} ws \":\" ws explanation ws \",\" ws {} ws \":\" ws values ws \"}}\"\n",
      gbnf_literal(fmt::format("\"{}\"", key_explanation)), gbnf_literal(fmt::format("\"{}\"", schema.key)));
  g += fmt::format("explanation ::= \"\\\"\" char{{0,{}}} \"\\\"\"\n", schema.max_explanation_chars);
  // No \u escapes: a lone surrogate would be valid grammar but invalid JSON.
  g += "char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" [\"\\\\/bfnrt]\n";
  if (schema.scalar) {
    g += "values ::= value\n";
  } else if (schema.length == 1) {
    g += "values ::= \"[\" ws value ws \"]\"\n";
  } else {
    g += fmt::format("values ::= \"[\" ws value ( ws \",\" ws value ){{{}}} ws \"]\"\n", schema.length - 1);
  }
  g += signed_values ? "value ::= \"-\"? magnitude\n" : "value ::= magnitude\n";
  g += "magnitude ::= ( [0-9] | [1-9] [0-9] ) \".\" [0-9] [0-9] | \"100.00\"\n";
  g += "ws ::= [ \\t\\n]{0,8}\n";
  return g;
}

}  // namespace herdsim::investalign
