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

using namespace herdsim::investalign;

namespace {

// ---------------------------------------------------------------------------------------------------
// A small GBNF interpreter (the subset answer_gbnf writes: literals, character classes with ranges,
// negation and \x escapes, rule references, groups, alternation, ?, *, + and {m}, {m,}, {m,n}). It
// checks that the grammar is well formed, decides whether a text is in the language, and draws random
// texts from the language, so the parser can be tested on what a grammar-constrained model may emit.
// ---------------------------------------------------------------------------------------------------

struct Node {
  enum class Kind { seq, alt, literal, cls, ref, rep } kind = Kind::seq;
  std::vector<Node> kids;
  std::u32string text;
  bool negated = false;
  std::vector<std::pair<char32_t, char32_t>> ranges;
  std::string name;
  int min = 0;
  int max = -1;  // -1: unbounded
};

class Gbnf {
 public:
  explicit Gbnf(const std::string& grammar) {
    std::size_t start = 0;
    while (start < grammar.size()) {
      std::size_t end = grammar.find('\n', start);
      if (end == std::string::npos) end = grammar.size();
      const std::string line = grammar.substr(start, end - start);
      start = end + 1;
      if (line.empty() || line[0] == '#') continue;
      const auto def = line.find("::=");
      if (def == std::string::npos) throw std::runtime_error("no ::= in line: " + line);
      std::string name = line.substr(0, def);
      while (!name.empty() && name.back() == ' ') name.pop_back();
      src_ = line.substr(def + 3);
      pos_ = 0;
      Node body = parse_alt();
      skip_space();
      if (pos_ != src_.size()) throw std::runtime_error("trailing text in rule " + name);
      if (rules_.count(name) != 0U) throw std::runtime_error("rule defined twice: " + name);
      rules_[name] = std::move(body);
    }
    for (const auto& [name, node] : rules_) check_refs(node);
  }

  [[nodiscard]] bool has_rule(const std::string& name) const { return rules_.count(name) != 0U; }

  [[nodiscard]] bool accepts(const std::string& utf8) const {
    input_ = decode(utf8);
    memo_.clear();
    const auto ends = match(rules_.at("root"), 0);
    return ends.count(input_.size()) != 0U;
  }

  [[nodiscard]] std::string generate(std::mt19937_64& rng) const {
    std::u32string out;
    gen(rules_.at("root"), rng, out);
    return encode(out);
  }

  static std::u32string decode(const std::string& s) {
    std::u32string out;
    for (std::size_t i = 0; i < s.size();) {
      const auto c = static_cast<unsigned char>(s[i]);
      int extra = 0;
      char32_t cp = c;
      if (c >= 0xF0) {
        extra = 3;
        cp = c & 0x07U;
      } else if (c >= 0xE0) {
        extra = 2;
        cp = c & 0x0FU;
      } else if (c >= 0xC0) {
        extra = 1;
        cp = c & 0x1FU;
      }
      for (int k = 1; k <= extra; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3FU);
      out += cp;
      i += 1 + extra;
    }
    return out;
  }

  static std::string encode(const std::u32string& s) {
    std::string out;
    for (const char32_t cp : s) {
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      }
    }
    return out;
  }

 private:
  void skip_space() {
    while (pos_ < src_.size() && (src_[pos_] == ' ' || src_[pos_] == '\t')) ++pos_;
  }
  [[nodiscard]] bool at_end() const { return pos_ >= src_.size(); }

  Node parse_alt() {
    Node alt;
    alt.kind = Node::Kind::alt;
    alt.kids.push_back(parse_seq());
    skip_space();
    while (!at_end() && src_[pos_] == '|') {
      ++pos_;
      alt.kids.push_back(parse_seq());
      skip_space();
    }
    return alt.kids.size() == 1 ? alt.kids.front() : alt;
  }

  Node parse_seq() {
    Node seq;
    seq.kind = Node::Kind::seq;
    for (;;) {
      skip_space();
      if (at_end() || src_[pos_] == '|' || src_[pos_] == ')') break;
      seq.kids.push_back(parse_item());
    }
    return seq;
  }

  char32_t parse_escape() {
    const char c = src_.at(pos_++);
    switch (c) {
      case 'n':
        return U'\n';
      case 't':
        return U'\t';
      case 'r':
        return U'\r';
      case 'x': {
        const std::string hex = src_.substr(pos_, 2);
        pos_ += 2;
        return static_cast<char32_t>(std::stoul(hex, nullptr, 16));
      }
      default:
        return static_cast<char32_t>(static_cast<unsigned char>(c));
    }
  }

  char32_t parse_char() {
    const char c = src_.at(pos_++);
    if (c == '\\') return parse_escape();
    if (static_cast<unsigned char>(c) >= 0x80) throw std::runtime_error("non-ASCII grammar text");
    return static_cast<char32_t>(c);
  }

  Node parse_item() {
    Node node;
    const char c = src_.at(pos_);
    if (c == '"') {
      ++pos_;
      node.kind = Node::Kind::literal;
      while (src_.at(pos_) != '"') node.text += parse_char();
      ++pos_;
    } else if (c == '[') {
      ++pos_;
      node.kind = Node::Kind::cls;
      if (src_.at(pos_) == '^') {
        node.negated = true;
        ++pos_;
      }
      while (src_.at(pos_) != ']') {
        const char32_t lo = parse_char();
        char32_t hi = lo;
        if (src_.at(pos_) == '-' && src_.at(pos_ + 1) != ']') {
          ++pos_;
          hi = parse_char();
        }
        node.ranges.emplace_back(lo, hi);
      }
      ++pos_;
    } else if (c == '(') {
      ++pos_;
      node = parse_alt();
      skip_space();
      if (src_.at(pos_) != ')') throw std::runtime_error("unclosed group");
      ++pos_;
    } else if (std::isalpha(static_cast<unsigned char>(c)) != 0) {
      node.kind = Node::Kind::ref;
      while (!at_end() && (std::isalnum(static_cast<unsigned char>(src_[pos_])) != 0 || src_[pos_] == '-' ||
                           src_[pos_] == '_')) {
        node.name += src_[pos_++];
      }
    } else {
      throw std::runtime_error(std::string("unexpected grammar character: ") + c);
    }
    // Postfix operators.
    while (!at_end()) {
      const char op = src_[pos_];
      int lo = 0;
      int hi = -1;
      if (op == '?') {
        hi = 1;
        ++pos_;
      } else if (op == '*') {
        ++pos_;
      } else if (op == '+') {
        lo = 1;
        ++pos_;
      } else if (op == '{') {
        const auto close = src_.find('}', pos_);
        const std::string body = src_.substr(pos_ + 1, close - pos_ - 1);
        pos_ = close + 1;
        const auto comma = body.find(',');
        lo = std::stoi(body.substr(0, comma));
        if (comma == std::string::npos)
          hi = lo;
        else if (comma + 1 < body.size())
          hi = std::stoi(body.substr(comma + 1));
      } else {
        break;
      }
      Node rep;
      rep.kind = Node::Kind::rep;
      rep.min = lo;
      rep.max = hi;
      rep.kids.push_back(std::move(node));
      node = std::move(rep);
    }
    return node;
  }

  void check_refs(const Node& n) const {
    if (n.kind == Node::Kind::ref && rules_.count(n.name) == 0U)
      throw std::runtime_error("undefined rule: " + n.name);
    for (const auto& k : n.kids) check_refs(k);
  }

  [[nodiscard]] static bool in_class(const Node& n, char32_t c) {
    bool in = false;
    for (const auto& [lo, hi] : n.ranges) in = in || (c >= lo && c <= hi);
    return in != n.negated;
  }

  std::set<std::size_t> match(const Node& n, std::size_t pos) const {
    switch (n.kind) {
      case Node::Kind::literal:
        if (input_.compare(pos, n.text.size(), n.text) == 0) return {pos + n.text.size()};
        return {};
      case Node::Kind::cls:
        if (pos < input_.size() && in_class(n, input_[pos])) return {pos + 1};
        return {};
      case Node::Kind::ref: {
        const auto key = std::make_pair(n.name, pos);
        if (const auto it = memo_.find(key); it != memo_.end()) return it->second;
        auto result = match(rules_.at(n.name), pos);
        memo_[key] = result;
        return result;
      }
      case Node::Kind::seq: {
        std::set<std::size_t> cur{pos};
        for (const auto& k : n.kids) {
          std::set<std::size_t> next;
          for (const auto p : cur) {
            const auto e = match(k, p);
            next.insert(e.begin(), e.end());
          }
          cur = std::move(next);
          if (cur.empty()) break;
        }
        return cur;
      }
      case Node::Kind::alt: {
        std::set<std::size_t> out;
        for (const auto& k : n.kids) {
          const auto e = match(k, pos);
          out.insert(e.begin(), e.end());
        }
        return out;
      }
      case Node::Kind::rep: {
        std::set<std::size_t> out;
        if (n.min == 0) out.insert(pos);
        std::set<std::size_t> cur{pos};
        const int limit = n.max < 0 ? static_cast<int>(input_.size()) + 1 : n.max;
        for (int i = 1; i <= limit && !cur.empty(); ++i) {
          std::set<std::size_t> next;
          for (const auto p : cur) {
            const auto e = match(n.kids.front(), p);
            next.insert(e.begin(), e.end());
          }
          cur = std::move(next);
          if (i >= n.min) out.insert(cur.begin(), cur.end());
        }
        return out;
      }
    }
    return {};
  }

  void gen(const Node& n, std::mt19937_64& rng, std::u32string& out) const {
    switch (n.kind) {
      case Node::Kind::literal:
        out += n.text;
        break;
      case Node::Kind::cls: {
        // Candidates: printable ASCII, tab, newline, DEL, and some multi-byte code points.
        std::vector<char32_t> pool;
        for (char32_t c = 0x20; c < 0x7F; ++c) pool.push_back(c);
        for (const char32_t c :
             {U'\t', U'\n', char32_t{0x7F}, char32_t{0xE9}, char32_t{0x4E2D}, char32_t{0x1F600}})
          pool.push_back(c);
        std::vector<char32_t> ok;
        for (const char32_t c : pool) {
          if (in_class(n, c)) ok.push_back(c);
        }
        out += ok.at(std::uniform_int_distribution<std::size_t>(0, ok.size() - 1)(rng));
        break;
      }
      case Node::Kind::ref:
        gen(rules_.at(n.name), rng, out);
        break;
      case Node::Kind::seq:
        for (const auto& k : n.kids) gen(k, rng, out);
        break;
      case Node::Kind::alt:
        gen(n.kids.at(std::uniform_int_distribution<std::size_t>(0, n.kids.size() - 1)(rng)), rng, out);
        break;
      case Node::Kind::rep: {
        const int hi = n.max < 0 ? n.min + 3 : n.max;
        const int count = std::uniform_int_distribution<int>(n.min, hi)(rng);
        for (int i = 0; i < count; ++i) gen(n.kids.front(), rng, out);
        break;
      }
    }
  }

  std::map<std::string, Node> rules_;
  std::string src_;
  std::size_t pos_ = 0;
  mutable std::u32string input_;
  mutable std::map<std::pair<std::string, std::size_t>, std::set<std::size_t>> memo_;
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
        const std::string text = g.generate(rng);
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
