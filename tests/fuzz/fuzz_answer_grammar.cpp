// Fuzz harness: answers built inside the answer grammar (sim/investalign/answer.hpp, answer_gbnf).
//
// The fuzz bytes steer a derivation of the GBNF text answer_gbnf writes for one of the tasks' schemas
// (tests/support/gbnf.hpp interprets it: every alternative, repetition count and character is a choice read
// from the bytes; characters range over every code point a class admits). Property: what the grammar admits,
// which is all a grammar-constrained model can emit, parses as an `ok` answer with exactly the values
// written and, where the text is valid UTF-8, the explanation written.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "sim/investalign/answer.hpp"
#include "support/gbnf.hpp"

namespace {

namespace ia = herdsim::investalign;
using herdsim::fuzz::FuzzInput;

/// Gbnf::generate's choices from the fuzz bytes.
struct FuzzChooser {
  FuzzInput& in;
  std::size_t pick(std::size_t n) {
    return static_cast<std::size_t>(in.integer(0, static_cast<std::int64_t>(n) - 1));
  }
  /// Mostly ASCII; otherwise any code point below 0x110000, surrogates included.
  char32_t code_point() {
    const std::uint8_t kind = in.byte();
    if (kind < 0xC0) return static_cast<char32_t>(in.integer(0, 0x7F));
    if (kind < 0xE0) return static_cast<char32_t>(in.integer(0x80, 0x7FF));
    if (kind < 0xF8) return static_cast<char32_t>(in.integer(0x800, 0xFFFF));
    return static_cast<char32_t>(in.integer(0x10000, 0x10FFFF));
  }
};

bool valid_utf8(const std::string& s) {
  try {
    (void)nlohmann::json(s).dump();  // refuses invalid UTF-8
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

/// The JSON string literal of the explanation rule (quotes included), decoded.
std::string unquote(const std::string& literal) {
  return nlohmann::json::parse(literal).get<std::string>();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  const std::uint8_t b = in.byte();
  const int horizon = 1 + (b >> 2) % 10;
  const int kind = b & 3;
  static const herdsim::test::Gbnf* grammars[4][10] = {};
  ia::AnswerSchema schema = kind == 0   ? ia::proportion_sequence_schema(horizon)
                            : kind == 1 ? ia::change_sequence_schema(horizon < 2 ? 2 : horizon)
                            : kind == 2 ? ia::single_proportion_schema()
                                        : ia::proportion_sequence_schema(10);
  auto*& grammar = grammars[kind][horizon - 1];
  if (grammar == nullptr) grammar = new herdsim::test::Gbnf(ia::answer_gbnf(schema));  // kept for the process

  FuzzChooser choose{in};
  std::vector<herdsim::test::Gbnf::Span> spans;
  const std::string text = grammar->generate(choose, {"value", "explanation"}, &spans);

  std::vector<double> written;
  std::string explanation_literal;
  for (const auto& span : spans) {
    if (span.rule == "value") written.push_back(std::strtod(span.text.c_str(), nullptr) / 100.0);
    if (span.rule == "explanation") explanation_literal = span.text;
  }
  FUZZ_CHECK(written.size() == static_cast<std::size_t>(schema.length), text);

  const std::vector<double> fallback(written.size(), 0.5);
  const ia::ParsedAnswer a = ia::parse_answer(text, schema, fallback);
  FUZZ_CHECK(a.status == ia::AnswerStatus::ok && a.valid,
             std::string(ia::answer_status_name(a.status)) + " (" + a.message + "): " + text);
  for (std::size_t i = 0; i < written.size(); ++i)
    FUZZ_CHECK(a.values[i] == written[i], "value " + std::to_string(i) + " of " + text);
  FUZZ_CHECK(a.explanation.has_value(), text);
  if (valid_utf8(explanation_literal)) FUZZ_CHECK(*a.explanation == unquote(explanation_literal), text);
  return 0;
}
