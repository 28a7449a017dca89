// Fuzz harness: the LLM answer parser (sim/investalign/answer.hpp) on arbitrary model output.
//
// Input: one byte choosing the schema (the tasks' three kinds and their horizons), then the answer text.
// Properties: parse_answer never throws and always returns `length` values; invalid answers carry the
// fallback and a message; valid values lie in the schema's range; extract_json_object agrees with the
// parser and with a plain implementation of the rule (a differential check); and every text the answer's
// GBNF grammar admits parses as an `ok` answer (tests/support/gbnf.hpp decides membership as llama.cpp
// does). fuzz_transcripts checks that parsing is deterministic.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "sim/investalign/answer.hpp"
#include "support/gbnf.hpp"

namespace {

namespace ia = herdsim::investalign;

ia::AnswerSchema schema_of(std::uint8_t b) {
  const int horizon = 1 + (b >> 2) % 10;  // 1..10 years, as the scenarios allow
  switch (b & 3U) {
    case 0:
      return ia::proportion_sequence_schema(horizon);
    case 1:
      return ia::change_sequence_schema(horizon < 2 ? 2 : horizon);
    case 2:
      return ia::single_proportion_schema();
    default:
      return ia::proportion_sequence_schema(10);  // the dataset's and the bundled scenarios'
  }
}

/// The answer object as docs/investagents.md states the rule, one full scan per '{' (the parser's
/// algorithm before it learnt to skip rescans): the oracle extract_json_object must agree with.
std::optional<std::string> reference_object(std::string_view text) {
  for (std::size_t start = text.find('{'); start != std::string_view::npos;
       start = text.find('{', start + 1)) {
    int depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (std::size_t i = start; i < text.size(); ++i) {
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
        ++depth;
      } else if (c == '}' && --depth == 0) {
        const std::string candidate(text.substr(start, i - start + 1));
        const auto value = nlohmann::json::parse(candidate, nullptr, false);
        if (!value.is_discarded() && value.is_object()) return candidate;
        break;
      }
    }
  }
  return std::nullopt;
}

bool valid_utf8(std::string_view text) {
  try {
    (void)nlohmann::json(std::string(text)).dump();  // refuses invalid UTF-8
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const ia::AnswerSchema schema = schema_of(data[0]);
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto length = static_cast<std::size_t>(schema.length);
  std::vector<double> fallback(length);
  for (std::size_t i = 0; i < length; ++i) fallback[i] = 0.25 + 0.01 * static_cast<double>(i);

  const ia::ParsedAnswer a = ia::parse_answer(text, schema, fallback);
  const std::string status = ia::answer_status_name(a.status);
  FUZZ_CHECK(a.values.size() == length, status);
  // Valid: ok, too_short, too_long. An empty sequence is too_short but invalid: no value came from it.
  if (a.valid)
    FUZZ_CHECK(a.status == ia::AnswerStatus::ok || a.status == ia::AnswerStatus::too_short ||
                   a.status == ia::AnswerStatus::too_long,
               status);
  else
    FUZZ_CHECK(a.status != ia::AnswerStatus::ok && a.status != ia::AnswerStatus::too_long &&
                   (a.status != ia::AnswerStatus::too_short || a.padded == schema.length),
               status);
  FUZZ_CHECK((a.status == ia::AnswerStatus::ok) == a.message.empty(), status + ": " + a.message);
  FUZZ_CHECK(a.padded >= 0 && a.truncated >= 0 && (a.padded == 0 || a.truncated == 0), status);
  if (!a.valid) {
    FUZZ_CHECK(same_bits(a.values, fallback), status);
  } else {
    const auto from_answer = length - static_cast<std::size_t>(a.padded);
    for (std::size_t i = 0; i < length; ++i) {
      const double v = a.values[i];
      if (i < from_answer) {
        FUZZ_CHECK(std::isfinite(v) && v >= schema.min_percent / 100.0 && v <= schema.max_percent / 100.0,
                   status + ": value " + std::to_string(v));
      } else {
        FUZZ_CHECK(v == fallback[i], status + ": padding");
      }
    }
  }
  if (a.explanation) FUZZ_CHECK(nlohmann::json(*a.explanation).dump().size() >= 2, "explanation");

  const auto block = ia::extract_json_object(text);
  FUZZ_CHECK(block.has_value() == (a.status != ia::AnswerStatus::no_json_object), status);
  if (valid_utf8(text))
    FUZZ_CHECK(block == reference_object(text), "extract_json_object differs from the rule");
  if (block) {
    const auto j = nlohmann::json::parse(*block, nullptr, false);
    FUZZ_CHECK(!j.is_discarded() && j.is_object(), *block);
  }

  // Whatever the grammar admits is a valid answer.
  if (!text.empty() && text.front() == '{') {
    static const herdsim::test::Gbnf* grammars[4][10] = {};
    const int horizon = 1 + (data[0] >> 2) % 10;
    auto*& g = grammars[data[0] & 3U][horizon - 1];
    if (g == nullptr) g = new herdsim::test::Gbnf(ia::answer_gbnf(schema));  // kept for the process
    if (g->accepts(std::string(text)))
      FUZZ_CHECK(a.status == ia::AnswerStatus::ok, "the grammar admits an answer parsed as " + status);
  }
  return 0;
}
