#pragma once
// A small GBNF interpreter for the tests and the fuzz harnesses (the subset answer_gbnf writes: literals,
// character classes with ranges, negation and \x escapes, rule references, groups, alternation, ?, *, + and
// {m}, {m,}, {m,n}). It checks that a grammar is well formed, decides whether a text is in the language,
// and draws texts from the language, so that the answer parser can be tested on what a grammar-constrained
// model may emit.
//
// Texts are read as llama.cpp's grammar reads a model's output: a lead byte gives the length of a code
// point, continuation bytes must be 10xxxxxx (llama.cpp checks them across token boundaries), and the value
// is not checked further, so overlong forms, surrogates and values above U+10FFFF are admitted wherever a
// negated class admits them. A stray continuation byte or a truncated sequence matches nothing.
#include <cctype>
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herdsim::test {

class Gbnf {
 public:
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

  /// What the text of one expansion of a rule was (generate's record of the rules asked for).
  struct Span {
    std::string rule;
    std::string text;  ///< UTF-8
  };

  /// Parses the grammar; throws std::runtime_error when it is not well formed.
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
    if (rules_.count("root") == 0U) throw std::runtime_error("no rule root");
    for (const auto& [name, node] : rules_) check_refs(node);
  }

  [[nodiscard]] bool has_rule(const std::string& name) const { return rules_.count(name) != 0U; }

  /// Whether the whole text is in the language of rule root.
  [[nodiscard]] bool accepts(const std::string& utf8) const {
    const auto decoded = decode(utf8);
    if (!decoded) return false;
    input_ = *decoded;
    memo_.clear();
    const auto ends = match(rules_.at("root"), 0);
    return ends.count(input_.size()) != 0U;
  }

  /// A text of the language. choose: `std::size_t pick(std::size_t n)` in [0, n) for every choice, and
  /// `char32_t code_point()`, a candidate for a character class (another candidate is asked for when it is
  /// outside the class, then the first admitted of a fixed list is taken). When spans is given, the text of
  /// every expansion of the rules named in record is appended to it, in order.
  template <class Chooser>
  [[nodiscard]] std::string generate(Chooser& choose, const std::set<std::string>& record = {},
                                     std::vector<Span>* spans = nullptr) const {
    std::u32string out;
    gen(rules_.at("root"), choose, out, record, spans);
    return encode(out);
  }

  /// UTF-8 as llama.cpp's grammar decodes it (see the top of the file); nullopt where it matches nothing.
  static std::optional<std::u32string> decode(const std::string& s) {
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
      } else if (c >= 0x80) {
        return std::nullopt;  // a continuation byte without a lead
      }
      if (extra > 0 && i + static_cast<std::size_t>(extra) >= s.size()) return std::nullopt;  // truncated
      for (int k = 1; k <= extra; ++k) {
        const auto b = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
        if ((b & 0xC0U) != 0x80U) return std::nullopt;
        cp = (cp << 6) | (b & 0x3FU);
      }
      out += cp;
      i += 1 + static_cast<std::size_t>(extra);
    }
    return out;
  }

  /// Code points as UTF-8 (surrogates too, in the three-byte pattern).
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
        if (close == std::string::npos) throw std::runtime_error("unclosed {");
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
        const Node& rule = rules_.at(n.name);
        const auto key = std::make_pair(&rule, pos);
        if (const auto it = memo_.find(key); it != memo_.end()) return it->second;
        auto result = match(rule, pos);
        memo_.emplace(key, result);
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

  template <class Chooser>
  void gen(const Node& n, Chooser& choose, std::u32string& out, const std::set<std::string>& record,
           std::vector<Span>* spans) const {
    switch (n.kind) {
      case Node::Kind::literal:
        out += n.text;
        break;
      case Node::Kind::cls: {
        for (int attempt = 0; attempt < 4; ++attempt) {
          const char32_t c = choose.code_point();
          if (in_class(n, c)) {
            out += c;
            return;
          }
        }
        // Printable ASCII, tab and newline: every class the grammars use admits one of them.
        constexpr std::u32string_view fallback =
            U"\t\n "
            U"!\"#$%&'()*+,-./"
            U"0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
        for (const char32_t c : fallback) {
          if (in_class(n, c)) {
            out += c;
            return;
          }
        }
        throw std::runtime_error("a character class that admits no ASCII character");
      }
      case Node::Kind::ref: {
        const std::size_t begin = out.size();
        gen(rules_.at(n.name), choose, out, record, spans);
        if (spans != nullptr && record.count(n.name) != 0U)
          spans->push_back({n.name, encode(out.substr(begin))});
        break;
      }
      case Node::Kind::seq:
        for (const auto& k : n.kids) gen(k, choose, out, record, spans);
        break;
      case Node::Kind::alt:
        gen(n.kids.at(choose.pick(n.kids.size())), choose, out, record, spans);
        break;
      case Node::Kind::rep: {
        const int hi = n.max < 0 ? n.min + 3 : n.max;
        const int count = n.min + static_cast<int>(choose.pick(static_cast<std::size_t>(hi - n.min) + 1));
        for (int i = 0; i < count; ++i) gen(n.kids.front(), choose, out, record, spans);
        break;
      }
    }
  }

  std::map<std::string, Node> rules_;
  std::string src_;
  std::size_t pos_ = 0;
  mutable std::u32string input_;
  mutable std::map<std::pair<const Node*, std::size_t>, std::set<std::size_t>> memo_;  // rule, position
};

}  // namespace herdsim::test
