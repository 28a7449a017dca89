#include <doctest/doctest.h>

#include <cctype>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "sim/error.hpp"
#include "sim/investalign/answer.hpp"
#include "sim/investalign/dataset.hpp"
#include "support/gbnf.hpp"

using namespace herdsim::investalign;

namespace {

using herdsim::test::Gbnf;

/// Random choices for Gbnf::generate: uniform picks; class candidates from printable ASCII, tab, newline,
/// DEL and some multi-byte code points.
struct RandomChooser {
  std::mt19937_64& rng;
  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); }
  char32_t code_point() {
    static constexpr std::u32string_view extra = U"\t\n\x7F\xE9\x4E2D\x1F600";
    const std::size_t k = pick(0x7F - 0x20 + extra.size());
    return k < 0x7F - 0x20 ? static_cast<char32_t>(0x20 + k) : extra[k - (0x7F - 0x20)];
  }
};

std::vector<double> advisor10() {
  return {0.3621, 0.3559, 0.3496, 0.3435, 0.3373, 0.3313, 0.3253, 0.3193, 0.3134, 0.3075};
}

std::string answer_with(const std::string& values) {
  return R"({"Decision Explanation": "ok", "Investment Proportion Sequence": )" + values + "}";
}

const AnswerSchema seq10 = proportion_sequence_schema(10);

}  // namespace

TEST_SUITE("investalign.answer") {
  TEST_CASE("schemas carry the keys, lengths and ranges of docs/theory.md §4.5") {
    CHECK(seq10.key == "Investment Proportion Sequence");
    CHECK(seq10.length == 10);
    CHECK(seq10.min_percent == 0.0);
    const auto changes = change_sequence_schema(10);
    CHECK(changes.key == "Investment Proportion Change Sequence");
    CHECK(changes.length == 9);
    CHECK(changes.min_percent == -100.0);
    CHECK(changes.max_percent == 100.0);
    const auto single = single_proportion_schema();
    CHECK(single.key == "Investment Proportion");
    CHECK(single.scalar);
    CHECK_THROWS_AS((void)change_sequence_schema(1), herdsim::InputError);
    CHECK_THROWS_AS((void)proportion_sequence_schema(0), herdsim::InputError);
  }

  TEST_CASE("percent strings, integers and floats are all percent") {
    const auto a =
        parse_answer(answer_with(R"(["36.21%", " 35 % ", "+5", "1e1", 0, 100, 35, 35.5, 12.25, "0.5"])"),
                     seq10, advisor10());
    REQUIRE(a.valid);
    CHECK(a.status == AnswerStatus::ok);
    const std::vector<double> want{0.3621, 0.35, 0.05, 0.10, 0.0, 1.0, 0.35, 0.355, 0.1225, 0.005};
    REQUIRE(a.values.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i)
      CHECK(a.values[i] == doctest::Approx(want[i]).epsilon(1e-15));
    CHECK(a.explanation.value() == "ok");
  }

  TEST_CASE("integers are not left undivided (the released parser's ints-as-percent bug)") {
    const auto a = parse_answer(answer_with("[35, 35, 35, 35, 35, 35, 35, 35, 35, 35]"), seq10, advisor10());
    REQUIRE(a.valid);
    for (const double v : a.values) CHECK(v == doctest::Approx(0.35).epsilon(1e-15));
    // 35 and 35.0 and "35" give the same value.
    const auto b =
        parse_answer(answer_with(R"([35.0, "35", 35, 35, 35, 35, 35, 35, 35, 35])"), seq10, advisor10());
    CHECK(b.values[0] == a.values[0]);
    CHECK(b.values[1] == a.values[0]);
  }

  TEST_CASE("nested braces and escaped quotes inside the explanation do not break the balancing") {
    const std::string text =
        R"(Sure! {"Decision Explanation": "plan {a} then }} and \"{\" more", "Investment Proportion Sequence": )"
        R"([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]} That's all {not json})";
    const auto a = parse_answer(text, seq10, advisor10());
    REQUIRE(a.valid);
    CHECK(a.values[9] == doctest::Approx(0.10));
    CHECK(a.explanation.value() == R"(plan {a} then }} and "{" more)");
    CHECK(extract_json_object(text).value().front() == '{');
    CHECK(extract_json_object(text).value().back() == '}');
  }

  TEST_CASE("text before and after the JSON object is ignored") {
    const auto a = parse_answer(
        "Here is my answer:\n```json\n" + answer_with("[1,2,3,4,5,6,7,8,9,10]") + "\n```\nThanks.", seq10,
        advisor10());
    CHECK(a.status == AnswerStatus::ok);
    CHECK(a.values[0] == doctest::Approx(0.01));
  }

  TEST_CASE("of two JSON objects the first valid one wins") {
    const std::string first = answer_with("[1,1,1,1,1,1,1,1,1,1]");
    const std::string second = answer_with("[2,2,2,2,2,2,2,2,2,2]");
    const auto a = parse_answer(first + "\n" + second, seq10, advisor10());
    CHECK(a.values[0] == doctest::Approx(0.01));
    // ... even when it lacks the key: the rule is about the first valid JSON object.
    const auto b = parse_answer(R"({"note": 1} )" + second, seq10, advisor10());
    CHECK(b.status == AnswerStatus::missing_key);
    CHECK_FALSE(b.valid);
  }

  TEST_CASE("an invalid JSON block before a valid one is skipped") {
    const std::string text =
        R"({"Decision Explanation": "x", "Investment Proportion Sequence": [1,2,]} then )" +
        answer_with("[3,3,3,3,3,3,3,3,3,3]");
    const auto a = parse_answer(text, seq10, advisor10());
    REQUIRE(a.valid);
    CHECK(a.values[0] == doctest::Approx(0.03));
    // An unterminated object before a valid one.
    const auto b = parse_answer("{ \"a\": [ " + answer_with("[4,4,4,4,4,4,4,4,4,4]"), seq10, advisor10());
    REQUIRE(b.valid);
    CHECK(b.values[0] == doctest::Approx(0.04));
  }

  TEST_CASE("no JSON object, missing key and wrong type fall back to the advisor values") {
    for (const std::string& text :
         {std::string("I would invest 35% every year."), std::string("{not json}"), std::string(""),
          answer_with(R"("35, 35")"), std::string(R"({"Decision Explanation": "x"})"),
          answer_with("{\"a\": 1}")}) {
      CAPTURE(text);
      const auto a = parse_answer(text, seq10, advisor10());
      CHECK_FALSE(a.valid);
      CHECK(a.values == advisor10());
      CHECK_FALSE(a.message.empty());
    }
    CHECK(parse_answer("no json", seq10, advisor10()).status == AnswerStatus::no_json_object);
    CHECK(parse_answer(R"({"Decision Explanation": "x"})", seq10, advisor10()).status ==
          AnswerStatus::missing_key);
    CHECK(parse_answer(answer_with("35"), seq10, advisor10()).status == AnswerStatus::wrong_type);
  }

  TEST_CASE("too short is padded with the advisor values, too long is truncated; both are counted") {
    const auto shorter = parse_answer(answer_with("[10, 20, 30]"), seq10, advisor10());
    CHECK(shorter.valid);
    CHECK(shorter.status == AnswerStatus::too_short);
    CHECK(shorter.padded == 7);
    CHECK(shorter.values[2] == doctest::Approx(0.30));
    CHECK(shorter.values[3] == advisor10()[3]);
    CHECK(shorter.values[9] == advisor10()[9]);

    const auto longer = parse_answer(answer_with("[1,2,3,4,5,6,7,8,9,10,11,\"junk\"]"), seq10, advisor10());
    CHECK(longer.valid);
    CHECK(longer.status == AnswerStatus::too_long);
    CHECK(longer.truncated == 2);
    CHECK(longer.values.size() == 10);
    CHECK(longer.values[9] == doctest::Approx(0.10));

    const auto empty = parse_answer(answer_with("[]"), seq10, advisor10());
    CHECK_FALSE(empty.valid);  // no value came from the answer
    CHECK(empty.status == AnswerStatus::too_short);
    CHECK(empty.values == advisor10());

    AnswerTally tally;
    tally.add(shorter);
    tally.add(longer);
    tally.add(empty);
    tally.add(parse_answer("nothing", seq10, advisor10()));
    CHECK(tally.total == 4);
    CHECK(tally.valid == 2);
    CHECK(tally.invalid == 2);
    CHECK(tally.padded == 2);
    CHECK(tally.truncated == 1);
    CHECK(tally.by_status[static_cast<std::size_t>(AnswerStatus::no_json_object)] == 1);
    CHECK(tally.by_status[static_cast<std::size_t>(AnswerStatus::too_short)] == 2);
  }

  TEST_CASE("out-of-range and non-numeric elements invalidate the answer") {
    const auto high = parse_answer(answer_with("[101,1,1,1,1,1,1,1,1,1]"), seq10, advisor10());
    CHECK(high.status == AnswerStatus::out_of_range);
    CHECK_FALSE(high.valid);
    CHECK(high.values == advisor10());
    CHECK(parse_answer(answer_with("[-0.5,1,1,1,1,1,1,1,1,1]"), seq10, advisor10()).status ==
          AnswerStatus::out_of_range);
    CHECK(parse_answer(answer_with(R"(["3500%",1,1,1,1,1,1,1,1,1])"), seq10, advisor10()).status ==
          AnswerStatus::out_of_range);
    for (const char* bad : {R"("NaN")", R"("nan")", R"("inf")", R"("-Infinity")", R"("abc")", R"("")",
                            R"("35%%")", "null", "true", "[35]", R"({"v": 35})", R"("0x10")", R"("35,5")"}) {
      CAPTURE(bad);
      const auto a =
          parse_answer(answer_with(std::string("[") + bad + ",1,1,1,1,1,1,1,1,1]"), seq10, advisor10());
      CHECK(a.status == AnswerStatus::non_numeric_element);
      CHECK_FALSE(a.valid);
      CHECK(a.values == advisor10());
    }
  }

  TEST_CASE("changes may be negative; the single-proportion answer is a scalar") {
    const auto changes = change_sequence_schema(10);
    const std::vector<double> fallback(9, 0.0);
    const auto a = parse_answer(
        R"({"Decision Explanation": "x", "Investment Proportion Change Sequence": [-1.5, "-2%", 0, 3, -100, 100, 0.25, -0.25, 1]})",
        changes, fallback);
    REQUIRE(a.valid);
    CHECK(a.values[0] == doctest::Approx(-0.015));
    CHECK(a.values[1] == doctest::Approx(-0.02));
    CHECK(a.values[4] == doctest::Approx(-1.0));
    CHECK(parse_answer(R"({"Investment Proportion Change Sequence": [-101, 0, 0, 0, 0, 0, 0, 0, 0]})",
                       changes, fallback)
              .status == AnswerStatus::out_of_range);

    const auto single = single_proportion_schema();
    const auto s = parse_answer(R"({"Decision Explanation": "x", "Investment Proportion": "42.5%"})", single,
                                std::vector<double>{0.3});
    REQUIRE(s.valid);
    CHECK(s.values.at(0) == doctest::Approx(0.425));
    CHECK(parse_answer(R"({"Investment Proportion": 42})", single, std::vector<double>{0.3}).values.at(0) ==
          doctest::Approx(0.42));
    CHECK(parse_answer(R"({"Investment Proportion": [42]})", single, std::vector<double>{0.3}).status ==
          AnswerStatus::wrong_type);
    CHECK_THROWS_AS((void)parse_answer("{}", seq10, std::vector<double>{0.3}), herdsim::InputError);
  }

  TEST_CASE("format_answer writes two decimals and round-trips through the parser") {
    const std::vector<double> values{0.1342, 0.0, 1.0, 0.123449, 0.5, 0.3333333, 0.07, 0.9999, 0.25, 0.005};
    const auto text = format_answer(seq10, "My plan {with braces} and \"quotes\".", values);
    CHECK(text.find("13.42, 0.00, 100.00, 12.34, 50.00, 33.33, 7.00, 99.99, 25.00, 0.50]") !=
          std::string::npos);
    const auto a = parse_answer(text, seq10, advisor10());
    REQUIRE(a.status == AnswerStatus::ok);
    CHECK(a.values[0] == doctest::Approx(0.1342).epsilon(1e-14));
    CHECK(format_percent(-0.000049) == "0.00");
    CHECK(format_percent(-0.0005) == "-0.05");
    CHECK_THROWS_AS((void)format_answer(seq10, "x", std::vector<double>(10, 1.01)), herdsim::InputError);
    CHECK_THROWS_AS((void)format_answer(seq10, std::string(401, 'a'), std::vector<double>(10, 0.1)),
                    herdsim::InputError);
    CHECK_THROWS_AS((void)format_answer(seq10, "line\nbreak", std::vector<double>(10, 0.1)),
                    herdsim::InputError);
    // Invalid UTF-8 is refused as the other misfits are (found by fuzzing: it escaped as a JSON type_error).
    CHECK_THROWS_AS((void)format_answer(seq10, "caf\xC3", std::vector<double>(10, 0.1)), herdsim::InputError);
    CHECK_THROWS_AS((void)format_answer(seq10, "\xED\xA0\x80", std::vector<double>(10, 0.1)),
                    herdsim::InputError);
  }

  TEST_CASE("a flood of unbalanced braces costs one pass, not one per brace") {
    // Every '{' is a candidate; rescanning from each made this quadratic (minutes for 300000 braces).
    const std::string text = std::string(300000, '{') + answer_with("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]") +
                             std::string(1000, '{') + "\"" + std::string(1000, '{');
    const auto a = parse_answer(text, seq10, advisor10());
    CHECK(a.status == AnswerStatus::ok);
    CHECK(a.values[9] == doctest::Approx(0.1));
  }

  TEST_CASE("invalid UTF-8 in an answer is read as U+FFFD, so what the grammar admits still parses") {
    // llama.cpp's grammar reads a lead byte's length and admits overlong forms (C1 81 is 'A'), surrogates
    // (ED A0 80) and values past U+10FFFF wherever a negated class does; a JSON parser refuses them all
    // (found by fuzzing the grammar).
    const Gbnf g(answer_gbnf(seq10));
    const std::string ten = "[10.00, 20.00, 30.00, 40.00, 50.00, 60.00, 70.00, 80.00, 90.00, 100.00]";
    for (const std::string bad : {"\xC1\x81", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE0\x81\x81"}) {
      const std::string text =
          R"({"Decision Explanation": "a)" + bad + R"(b", "Investment Proportion Sequence": )" + ten + "}";
      CAPTURE(text);
      CHECK(g.accepts(text));
      const auto a = parse_answer(text, seq10, advisor10());
      REQUIRE(a.status == AnswerStatus::ok);
      CHECK(a.values[9] == 1.0);
      REQUIRE(a.explanation);
      CHECK(a.explanation->front() == 'a');
      CHECK(a.explanation->find("\xEF\xBF\xBD") != std::string::npos);
      CHECK(extract_json_object(text).has_value());
    }
    // A stray byte outside the object is replaced too and changes nothing.
    const auto a =
        parse_answer("\xFF\xFE{\"Investment Proportion Sequence\": " + ten + "}\x80", seq10, advisor10());
    CHECK(a.status == AnswerStatus::ok);
  }

  TEST_CASE("the JSON Schema document names the keys, the length and the range") {
    const auto doc = nlohmann::json::parse(answer_json_schema(seq10));
    CHECK(doc["type"] == "object");
    CHECK(doc["required"].size() == 2);
    const auto& values = doc["properties"]["Investment Proportion Sequence"];
    CHECK(values["minItems"] == 10);
    CHECK(values["maxItems"] == 10);
    CHECK(values["items"]["maximum"] == 100.0);
    CHECK(doc["properties"]["Decision Explanation"]["maxLength"] == 400);
    const auto single = nlohmann::json::parse(answer_json_schema(single_proportion_schema()));
    CHECK(single["properties"]["Investment Proportion"]["type"] == "number");
  }

  TEST_CASE("the GBNF grammar is well formed and admits representative answers") {
    const Gbnf g(answer_gbnf(seq10));
    for (const char* rule : {"root", "explanation", "char", "values", "value", "magnitude", "ws"}) {
      CHECK(g.has_rule(rule));
    }
    const std::vector<std::string> good{
        R"({"Decision Explanation": "", "Investment Proportion Sequence": [0.00, 100.00, 5.25, 10.00, 99.99, 1.00, 0.01, 50.50, 33.33, 12.34]})",
        "{\n  \"Decision Explanation\" : \"braces {} [] and \\\"quotes\\\" \\\\ \\/ \\n \\t "
        "\xC3\xA9\xE4\xB8\xAD\",\n"
        "  \"Investment Proportion Sequence\": [\n    1.00,2.00,3.00,4.00,5.00,6.00,7.00,8.00,9.00,10.00\n  "
        "]\n}",
        "{\"Decision Explanation\":\"" + std::string(400, 'x') +
            "\",\"Investment Proportion Sequence\":[1.00,2.00,3.00,4.00,5.00,6.00,7.00,8.00,9.00,10.00]}",
    };
    for (const auto& text : good) {
      CAPTURE(text);
      CHECK(g.accepts(text));
      const auto a = parse_answer(text, seq10, advisor10());
      CHECK(a.status == AnswerStatus::ok);
      CHECK(a.valid);
    }
  }

  TEST_CASE("the GBNF grammar rejects what the parser would not take as a clean answer") {
    const Gbnf g(answer_gbnf(seq10));
    const std::string ten = "1.00, 2.00, 3.00, 4.00, 5.00, 6.00, 7.00, 8.00, 9.00, 10.00";
    auto with = [](const std::string& values) {
      return R"({"Decision Explanation": "x", "Investment Proportion Sequence": [)" + values + "]}";
    };
    CHECK(g.accepts(with(ten)));
    CHECK_FALSE(g.accepts(with("101.00, 2.00, 3.00, 4.00, 5.00, 6.00, 7.00, 8.00, 9.00, 10.00")));
    CHECK_FALSE(g.accepts(with("100.01, 2.00, 3.00, 4.00, 5.00, 6.00, 7.00, 8.00, 9.00, 10.00")));
    CHECK_FALSE(g.accepts(with("-1.00, 2.00, 3.00, 4.00, 5.00, 6.00, 7.00, 8.00, 9.00, 10.00")));
    CHECK_FALSE(g.accepts(with("35, 2.00, 3.00, 4.00, 5.00, 6.00, 7.00, 8.00, 9.00, 10.00")));
    CHECK_FALSE(g.accepts(with("5.5, 2.00, 3.00, 4.00, 5.00, 6.00, 7.00, 8.00, 9.00, 10.00")));
    CHECK_FALSE(g.accepts(with("05.00, 2.00, 3.00, 4.00, 5.00, 6.00, 7.00, 8.00, 9.00, 10.00")));
    CHECK_FALSE(g.accepts(with("\"5.00\", 2.00, 3.00, 4.00, 5.00, 6.00, 7.00, 8.00, 9.00, 10.00")));
    CHECK_FALSE(g.accepts(with("2.00, 3.00, 4.00, 5.00, 6.00, 7.00, 8.00, 9.00, 10.00")));  // 9 values
    CHECK_FALSE(g.accepts(with(ten + ", 11.00")));                                          // 11 values
    CHECK_FALSE(g.accepts(with(ten) + " extra"));                                           // trailing text
    CHECK_FALSE(g.accepts("Answer: " + with(ten)));                                         // leading text
    CHECK_FALSE(
        g.accepts(R"({"Decision Explanation": "\u0041", "Investment Proportion Sequence": [)" + ten + "]}"));
    CHECK_FALSE(g.accepts("{\"Decision Explanation\": \"" + std::string(401, 'x') +
                          "\", \"Investment Proportion Sequence\": [" + ten + "]}"));
    CHECK_FALSE(
        g.accepts("{\"Decision Explanation\": \"a\nb\", \"Investment Proportion Sequence\": [" + ten + "]}"));
    CHECK_FALSE(
        g.accepts(R"({"Investment Proportion Sequence": [)" + ten + R"(], "Decision Explanation": "x"})"));
    CHECK_FALSE(g.accepts(R"({"Investment Proportion Sequence": [)" + ten + "]}"));
  }

  TEST_CASE("every text drawn at random from the grammar parses as a valid answer") {
    std::mt19937_64 rng(20240705);
    for (const auto& schema : {seq10, change_sequence_schema(10), single_proportion_schema(),
                               proportion_sequence_schema(1), proportion_sequence_schema(3)}) {
      CAPTURE(schema.key);
      CAPTURE(schema.length);
      const Gbnf g(answer_gbnf(schema));
      const std::vector<double> fallback(static_cast<std::size_t>(schema.length), 0.0);
      for (int i = 0; i < 150; ++i) {
        RandomChooser choose{rng};
        const std::string text = g.generate(choose);
        CAPTURE(text);
        REQUIRE(g.accepts(text));
        const auto a = parse_answer(text, schema, fallback);
        REQUIRE(a.status == AnswerStatus::ok);
        REQUIRE(a.valid);
        REQUIRE(a.values.size() == static_cast<std::size_t>(schema.length));
        for (const double v : a.values) {
          CHECK(v >= schema.min_percent / 100.0);
          CHECK(v <= schema.max_percent / 100.0);
          CHECK(std::abs(v * 10000.0 - std::round(v * 10000.0)) < 1e-6);  // two decimals of percent
        }
      }
    }
  }

  TEST_CASE("answer_gbnf refuses ranges it cannot express") {
    AnswerSchema odd = seq10;
    odd.max_percent = 50.0;
    CHECK_THROWS_AS((void)answer_gbnf(odd), herdsim::InputError);
  }

  TEST_CASE("every target answer of a small dataset is admitted by its grammar") {
    DatasetConfig config;
    config.lottery_probs = {0.4, 0.9};
    config.scores = {0, 5, 10};
    config.training_prompts = true;
    const auto ds = build_dataset(config);
    REQUIRE(ds.samples.size() == 18);
    for (const auto& s : ds.samples) {
      CAPTURE(s.answer);
      const auto schema = answer_schema(task_of(s.problem), dataset_horizon_years);
      const Gbnf g(answer_gbnf(schema));
      CHECK(g.accepts(s.answer));
    }
  }
}
