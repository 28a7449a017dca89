#include "io/scenario_toml.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "agents/kind.hpp"
#include "agents/registry.hpp"
#include "sim/error.hpp"
#include "sim/market/asset_covariance.hpp"
#include "sim/memory.hpp"

namespace herdsim::io {

namespace {

using agents::any_number;
using agents::direct;
using agents::Domain;
using agents::ParamRule;
using agents::positive;
using agents::unit_interval;
using sim::DistributionSpec;
using sim::ParamSpec;
using sim::PopulationSpec;
using KeyList = std::vector<std::string_view>;

constexpr double nan = std::numeric_limits<double>::quiet_NaN();
constexpr std::int64_t int_max = std::numeric_limits<int>::max();
constexpr std::size_t max_sweep_points = 10000;

std::string join_path(const std::string& prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : fmt::format("{}.{}", prefix, key);
}

std::string join_keys(std::span<const std::string_view> keys) {
  std::string out;
  for (const auto k : keys) out += (out.empty() ? "" : ", ") + std::string(k);
  return out;
}

bool contains(std::span<const std::string_view> keys, std::string_view key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

/// A value as the user wrote it, for "got ..." (numbers shortest, strings quoted).
std::string describe(const toml::node& n) {
  if (const auto* v = n.as_integer()) return fmt::format("{}", v->get());
  if (const auto* v = n.as_floating_point()) return fmt::format("{}", v->get());
  if (const auto* v = n.as_string()) return fmt::format("\"{}\"", v->get());
  if (const auto* v = n.as_boolean()) return v->get() ? "true" : "false";
  if (n.is_array()) return "an array";
  if (n.is_table()) return "a table";
  return "a date or time";
}

/// Collects problems with their positions, and reads the values that are not keys of a table (array
/// elements, per-agent parameters).
class Checker {
 public:
  std::vector<ScenarioProblem> problems;
  /// The first problem of the tree being validated (a sweep point): KeyReader::valid looks from here.
  std::size_t pass_begin = 0;

  void report(const toml::node* at, std::string key_path, std::string message) {
    ScenarioProblem p{std::move(key_path), 0, 0, std::move(message), ""};
    // A table made by a --set path (population.x.network.k=1) has no position: use its first value's.
    while (at != nullptr && at->source().begin.line == 0 && !at->source().path) {
      const toml::node* inner = nullptr;
      if (const auto* t = at->as_table(); t != nullptr && !t->empty()) inner = &t->cbegin()->second;
      if (const auto* a = at->as_array(); a != nullptr && !a->empty()) inner = &(*a)[0];
      if (inner == nullptr) break;
      at = inner;
    }
    if (at != nullptr) {
      const auto& src = at->source();
      if (src.path && !src.path->empty()) {
        p.origin = *src.path;  // an override or sweep value parsed on its own
      } else {
        p.line = static_cast<int>(src.begin.line);
        p.column = static_cast<int>(src.begin.column);
      }
    }
    problems.push_back(std::move(p));
  }

  /// Whether a problem with key_path, or with a value inside it, was reported for the current tree.
  [[nodiscard]] bool reported(const std::string& key_path) const {
    return std::any_of(
        problems.begin() + static_cast<std::ptrdiff_t>(pass_begin), problems.end(),
        [&](const ScenarioProblem& p) {
          const auto& k = p.key_path;
          return k.rfind(key_path, 0) == 0 &&
                 (k.size() == key_path.size() || k[key_path.size()] == '.' || k[key_path.size()] == '[');
        });
  }

  std::optional<double> number(const toml::node& n, const std::string& path, const Domain& domain) {
    if (!n.is_number()) {
      report(&n, path, fmt::format("must be a number, got {}", describe(n)));
      return std::nullopt;
    }
    const double x = n.value<double>().value_or(0.0);
    if (!domain.contains(x)) {
      report(&n, path, fmt::format("{}, got {}", domain.describe(), describe(n)));
      return std::nullopt;
    }
    return x;
  }

  std::optional<ParamSpec> param(const toml::node& n, const std::string& path, const ParamRule& rule);
  /// A number, a non-empty array of numbers, or a distribution table, all within domain.
  std::optional<ParamSpec> param_values(const toml::node& n, const std::string& path, const Domain& domain,
                                        std::string_view scale_key);
  std::optional<DistributionSpec> distribution(const toml::table& t, const std::string& path,
                                               const Domain& domain);
};

/// One TOML table read through the kinds' KeyReader (agents/kind.hpp); key paths are prefix.key. Every
/// table of a scenario is read through it, so each kind of value is read, and its problems worded, once.
class TomlTable final : public agents::KeyReader {
 public:
  TomlTable(Checker& c, const toml::table& t, std::string prefix)
      : c_(c), t_(t), prefix_(std::move(prefix)) {}

  [[nodiscard]] const toml::table& toml() const { return t_; }
  [[nodiscard]] Checker& checker() const { return c_; }
  [[nodiscard]] std::string path(std::string_view key) const { return join_path(prefix_, key); }

  /// The table under key (nullptr if absent; reported if not a table).
  std::unique_ptr<TomlTable> sub(std::string_view key) {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return nullptr;
    if (const auto* t = n->as_table()) return std::make_unique<TomlTable>(c_, *t, path(key));
    report(key, fmt::format("must be a table, got {}", describe(*n)));
    return nullptr;
  }

  void report(std::string_view key, std::string message, std::string_view fallback = {}) override {
    const toml::node* at = key.empty() ? nullptr : t_.get(key);
    if (at == nullptr && !fallback.empty()) at = t_.get(fallback);
    if (at == nullptr) at = &t_;
    c_.report(at, key.empty() ? prefix_ : path(key), std::move(message));
  }
  [[nodiscard]] bool valid(std::string_view key) const override { return !c_.reported(path(key)); }
  [[nodiscard]] bool has(std::string_view key) const override { return t_.contains(key); }

  std::optional<double> number(std::string_view key, const Domain& domain) override {
    const toml::node* n = t_.get(key);
    return n == nullptr ? std::nullopt : c_.number(*n, path(key), domain);
  }

  std::optional<std::int64_t> integer(std::string_view key, std::int64_t min,
                                      std::int64_t max = std::numeric_limits<int>::max()) override {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return std::nullopt;
    const auto* v = n->as_integer();
    if (v == nullptr) {
      report(key, fmt::format("must be an integer, got {}", describe(*n)));
      return std::nullopt;
    }
    if (v->get() < min || v->get() > max) {
      const bool open_ended = max == int_max || max == std::numeric_limits<std::int64_t>::max();
      report(key, open_ended && v->get() < min
                      ? fmt::format("must be >= {}, got {}", min, v->get())
                      : fmt::format("must lie in [{}, {}], got {}", min, max, v->get()));
      return std::nullopt;
    }
    return v->get();
  }

  std::optional<bool> boolean(std::string_view key) override {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return std::nullopt;
    if (const auto* v = n->as_boolean()) return v->get();
    report(key, fmt::format("must be true or false, got {}", describe(*n)));
    return std::nullopt;
  }

  std::optional<std::string> string(std::string_view key) override {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return std::nullopt;
    if (const auto* v = n->as_string()) return v->get();
    report(key, fmt::format("must be a string, got {}", describe(*n)));
    return std::nullopt;
  }

  std::optional<std::vector<std::string>> strings(std::string_view key, std::string_view item,
                                                  std::string_view items) override {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return std::nullopt;
    const auto* a = n->as_array();
    if (a == nullptr) {
      report(key, fmt::format("must be an array of {}, got {}", items, describe(*n)));
      return std::nullopt;
    }
    std::vector<std::string> out;
    for (std::size_t i = 0; i < a->size(); ++i) {
      if (const auto* v = (*a)[i].as_string())
        out.push_back(v->get());
      else
        c_.report(&(*a)[i], fmt::format("{}[{}]", path(key), i),
                  fmt::format("must be a string ({}), got {}", item, describe((*a)[i])));
    }
    return out;
  }

  std::optional<ParamSpec> param(std::string_view key, const ParamRule& rule) override {
    const toml::node* n = t_.get(key);
    return n == nullptr ? std::nullopt : c_.param(*n, path(key), rule);
  }

  std::unique_ptr<agents::KeyReader> table(std::string_view key) override { return sub(key); }

  void allow_only(std::span<const std::string_view> allowed) override {
    for (auto&& [k, v] : t_) {
      if (!contains(allowed, k.str()))
        c_.report(&v, path(k.str()), fmt::format("unknown key; allowed keys: {}", join_keys(allowed)));
    }
  }

 private:
  Checker& c_;
  const toml::table& t_;
  std::string prefix_;
};

std::optional<ParamSpec> Checker::param(const toml::node& n, const std::string& path, const ParamRule& rule) {
  const auto* t = n.as_table();
  if (t != nullptr && !rule.scale_key.empty() && t->contains(rule.scale_key) && !t->contains("dist")) {
    TomlTable(*this, *t, path).allow_only(std::span(&rule.scale_key, 1));
    const std::string inner = join_path(path, rule.scale_key);
    auto p = param_values(*t->get(rule.scale_key), inner, rule.scale_domain, "");
    if (p) p->scale = rule.scale;
    return p;
  }
  return param_values(n, path, rule.domain, rule.scale_key);
}

std::optional<ParamSpec> Checker::param_values(const toml::node& n, const std::string& path,
                                               const Domain& domain, std::string_view scale_key) {
  ParamSpec p;
  if (n.is_number()) {
    const auto x = number(n, path, domain);
    if (!x) return std::nullopt;
    p.form = ParamSpec::Form::constant;
    p.value = *x;
    return p;
  }
  if (const auto* a = n.as_array()) {
    if (a->empty()) {
      report(&n, path, "a list of values must not be empty");
      return std::nullopt;
    }
    p.form = ParamSpec::Form::list;
    bool ok = true;
    for (std::size_t i = 0; i < a->size(); ++i) {
      const auto x = number((*a)[i], fmt::format("{}[{}]", path, i), domain);
      ok = ok && x.has_value();
      p.values.push_back(x.value_or(0.0));
    }
    return ok ? std::optional<ParamSpec>(p) : std::nullopt;
  }
  if (const auto* t = n.as_table(); t != nullptr && t->contains("dist")) {
    const auto d = distribution(*t, path, domain);
    if (!d) return std::nullopt;
    p.form = ParamSpec::Form::distribution;
    p.distribution = *d;
    return p;
  }
  report(&n, path,
         fmt::format("must be a number, an array of numbers, a distribution table {{dist = ...}}{}, got {}",
                     scale_key.empty() ? "" : fmt::format(" or {{{} = ...}}", scale_key), describe(n)));
  return std::nullopt;
}

std::optional<DistributionSpec> Checker::distribution(const toml::table& t, const std::string& path,
                                                      const Domain& domain) {
  using Kind = DistributionSpec::Kind;
  TomlTable in(*this, t, path);
  const auto kind = in.choice<Kind>("dist");
  if (!kind) return std::nullopt;
  DistributionSpec d;
  d.kind = *kind;
  const std::size_t before = problems.size();
  // Parameter names per law; a and b hold them in DistributionSpec's order.
  const auto [a_key, b_key] = *kind == Kind::uniform  ? std::pair{"low", "high"}
                              : *kind == Kind::normal ? std::pair{"mean", "std"}
                                                      : std::pair{"mu", "sigma"};
  const std::string_view law = to_name(*kind);
  const std::array<std::string_view, 5> keys{"dist", a_key, b_key, "low", "high"};
  in.allow_only(*kind == Kind::uniform ? std::span(keys).first(3) : std::span(keys));
  for (const auto* key : {a_key, b_key}) in.require(key, fmt::format(" for dist = \"{}\"", law));

  if (*kind == Kind::uniform) {
    // Its bounds are the support, so each must lie in the domain.
    d.a = in.number("low", domain).value_or(nan);
    d.b = in.number("high", domain).value_or(nan);
    if (d.a >= d.b) in.report("high", fmt::format("must be > low = {}, got {}", d.a, d.b));
    return problems.size() == before ? std::optional(d) : std::nullopt;
  }

  d.a = in.number(a_key, any_number).value_or(nan);
  d.b = in.number(b_key, positive).value_or(nan);
  if (in.has("low")) d.low = in.number("low", domain);
  if (in.has("high")) d.high = in.number("high", domain);
  if (d.low && d.high && *d.low >= *d.high)
    in.report("high", fmt::format("must be > low = {}, got {}", *d.low, *d.high));
  // Without truncation a normal reaches every real and a lognormal every positive value.
  const bool unbounded_below = *kind == Kind::normal ? std::isfinite(domain.lo) : domain.lo > 0.0;
  if (!in.has("low") && unbounded_below) {
    in.report("",
              fmt::format("a {} distribution can draw values out of range (values {}); truncate it with low",
                          law, domain.describe()));
  }
  if (!in.has("high") && std::isfinite(domain.hi)) {
    in.report("",
              fmt::format("a {} distribution can draw values out of range (values {}); truncate it with high",
                          law, domain.describe()));
  }
  return problems.size() == before ? std::optional(d) : std::nullopt;
}

/// Every problem once, file problems by position first, then those of --set #1, #2, ...
void sort_problems(std::vector<ScenarioProblem>& problems) {
  auto key = [](const ScenarioProblem& p) {
    // Comparing origins by length first orders "--set #2" before "--set #10".
    return std::tuple(!p.origin.empty(), p.origin.size(), p.origin, p.line, p.column, p.key_path, p.message);
  };
  std::stable_sort(problems.begin(), problems.end(),
                   [&](const auto& x, const auto& y) { return key(x) < key(y); });
  problems.erase(std::unique(problems.begin(), problems.end(),
                             [&](const auto& x, const auto& y) { return key(x) == key(y); }),
                 problems.end());
}

// ---- key paths: --set and [sweep] ------------------------------------------------------------

bool is_bare_key(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t dot; (dot = path.find('.', start)) != std::string_view::npos; start = dot + 1)
    out.emplace_back(path.substr(start, dot - start));
  out.emplace_back(path.substr(start));
  return out;
}

/// The table holding the last key of path (intermediate tables created as needed), or an error.
/// Populations are addressed as population.<name>.<key> or population[<index>].<key>.
std::pair<toml::table*, std::string> locate(toml::table& root, std::string_view path, std::string& error) {
  const auto segs = split_path(path);
  std::size_t i = 0;
  toml::table* tbl = &root;
  if (segs[0].rfind("population", 0) == 0) {
    auto* pops = root.get_as<toml::array>("population");
    const auto n = pops != nullptr ? pops->size() : 0;
    toml::table* pop = nullptr;
    if (segs[0] == "population" && segs.size() > 2) {
      for (std::size_t k = 0; k < n && pop == nullptr; ++k) {
        auto* t = pops->get_as<toml::table>(k);
        if (t != nullptr && t->get_as<std::string>("name") &&
            t->get_as<std::string>("name")->get() == segs[1])
          pop = t;
      }
      if (pop == nullptr) error = fmt::format("there is no population named '{}'", segs[1]);
      i = 2;
    } else if (segs[0].size() > 12 && segs[0][10] == '[' && segs[0].back() == ']' && segs.size() > 1) {
      const std::string digits = segs[0].substr(11, segs[0].size() - 12);
      if (!digits.empty() &&
          std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        // from_chars, not stoul: an index past 2^64 is "no such population", not an exception.
        std::size_t k = 0;
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), k);
        if (ec == std::errc() && end == digits.data() + digits.size() && k < n)
          pop = pops->get_as<toml::table>(k);
        if (pop == nullptr)
          error = fmt::format("there is no population[{}] (the scenario has {})", digits, n);
      } else {
        error = fmt::format("'{}' is not population[<index>]", segs[0]);
      }
      i = 1;
    } else {
      error = "a population key path is population.<name>.<key> or population[<index>].<key>";
    }
    if (pop == nullptr) return {nullptr, ""};
    tbl = pop;
  }
  for (; i < segs.size(); ++i) {
    if (!is_bare_key(segs[i])) {
      error = fmt::format("'{}' is not a key (letters, digits, '_' and '-')", segs[i]);
      return {nullptr, ""};
    }
    if (i + 1 == segs.size()) break;
    toml::node* next = tbl->get(segs[i]);
    if (next == nullptr) next = tbl->insert(segs[i], toml::table{}).first->second.as_table();
    if (!next->is_table()) {
      error = fmt::format("'{}' is not a table", segs[i]);
      return {nullptr, ""};
    }
    tbl = next->as_table();
  }
  return {tbl, segs.back()};
}

/// A --set value: TOML if it parses as one value, else the text as a string. Parsed under the name
/// "--set #i" so that a problem with it is reported there.
toml::table parse_override_value(const std::string& value, const std::string& origin) {
  try {
    auto t = toml::parse("v = " + value, std::string_view(origin));
    if (t.size() == 1 && t.contains("v")) return t;
  } catch (const toml::parse_error&) {
    // not TOML: a bare word
  }
  std::string quoted = "v = \"";
  for (const char c : value) {
    if (c == '"' || c == '\\')
      quoted += fmt::format("\\{}", c);
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F)  // control characters TOML refuses raw
      quoted += fmt::format("\\u{:04x}", static_cast<int>(c));
    else
      quoted += c;
  }
  return toml::parse(quoted + "\"", std::string_view(origin));
}

void apply_overrides(toml::table& root, const std::vector<std::string>& overrides, Checker& c) {
  for (std::size_t i = 0; i < overrides.size(); ++i) {
    const std::string origin = fmt::format("--set #{}", i + 1);
    const std::string& arg = overrides[i];
    const auto eq = arg.find('=');
    std::string key = arg.substr(0, eq);
    key.erase(0, key.find_first_not_of(" \t"));
    key.erase(key.find_last_not_of(" \t") + 1);
    ScenarioProblem p{key, 0, 0, "", origin};
    if (eq == std::string::npos || key.empty()) {
      p.key_path.clear();
      p.message = fmt::format("expected key.path=value, got '{}'", arg);
      c.problems.push_back(p);
      continue;
    }
    toml::table value;
    try {
      value = parse_override_value(arg.substr(eq + 1), origin);
    } catch (const toml::parse_error& e) {  // not even a string: invalid UTF-8
      p.message = fmt::format("cannot read the value: {}", e.description());
      c.problems.push_back(p);
      continue;
    }
    // `--set sweep.run.seed=[37]` on a file that says `"run.seed" = [...]`: replace that axis's values
    // in place (it keeps its place in the axis order) instead of adding a second axis for the path.
    if (key.rfind("sweep.", 0) == 0 && value.get("v")->is_array()) {
      auto* sweep = root.get_as<toml::table>("sweep");
      auto* existing = sweep != nullptr ? sweep->get_as<toml::array>(key.substr(6)) : nullptr;
      if (existing != nullptr) {
        existing->clear();
        for (auto& v : *value.get("v")->as_array()) existing->push_back(v);
        continue;
      }
    }
    std::string error;
    auto [tbl, last] = locate(root, key, error);
    if (tbl == nullptr) {
      p.message = error;
      c.problems.push_back(p);
      continue;
    }
    tbl->insert_or_assign(last, std::move(*value.get("v")));  // moved: keeps its "--set #i" source
  }
}

struct SweepAxis {
  std::string key_path;
  toml::array* values = nullptr;
};

/// The [sweep] entries in file order (toml++ tables are sorted by key); dotted keys are flattened.
std::vector<SweepAxis> collect_sweep(toml::table& root, Checker& c) {
  std::vector<SweepAxis> axes;
  auto* sweep = root.get("sweep");
  if (sweep == nullptr) return axes;
  if (!sweep->is_table()) {
    c.report(sweep, "sweep", fmt::format("must be a table, got {}", describe(*sweep)));
    return axes;
  }
  std::vector<std::pair<std::string, toml::node*>> entries;
  auto flatten = [&](auto&& self, toml::table& t, const std::string& prefix) -> void {
    for (auto&& [k, v] : t) {
      if (v.is_table())
        self(self, *v.as_table(), join_path(prefix, k.str()));
      else
        entries.emplace_back(join_path(prefix, k.str()), &v);
    }
  };
  flatten(flatten, *sweep->as_table(), "");
  auto position = [](const toml::node* n) {
    const auto& s = n->source();
    return std::tuple(s.path && !s.path->empty(), s.begin.line, s.begin.column);
  };
  std::stable_sort(entries.begin(), entries.end(),
                   [&](const auto& x, const auto& y) { return position(x.second) < position(y.second); });
  // One axis per key path: the quoted `"run.seed"` and the dotted `run.seed` are two TOML keys for one.
  std::set<std::string> seen;
  std::erase_if(entries, [&](const auto& e) {
    if (seen.insert(e.first).second) return false;
    c.report(e.second, fmt::format("sweep.\"{}\"", e.first), "this key path is already a sweep axis");
    return true;
  });
  for (auto& [key, node] : entries) {
    const std::string path = fmt::format("sweep.\"{}\"", key);
    const auto root_key = key.substr(0, key.find_first_of(".["));
    auto* arr = node->as_array();
    bool ok = true;
    if (!contains(KeyList{"run", "market", "population", "record"}, root_key) ||
        key.find('.') == std::string::npos) {
      c.report(node, path,
               "a sweep key is a key path under run, market, population or record, e.g. \"market.sigma\"");
      ok = false;
    }
    if (arr == nullptr || arr->empty()) {
      c.report(node, path, fmt::format("must be a non-empty array of numbers, got {}", describe(*node)));
      ok = false;
    } else {
      for (auto& v : *arr) {
        if (!v.is_number()) {
          c.report(&v, path, fmt::format("sweep values must be numbers, got {}", describe(v)));
          ok = false;
        }
      }
    }
    if (ok) axes.push_back({key, arr});
  }
  return axes;
}

// ---- validation of the tree -----------------------------------------------------------------

/// Keys of every [[population]], whatever its kind.
constexpr std::array<std::string_view, 5> common_keys{"name", "kind", "count", "wealth", "investors"};

/// The registered kinds' names, quoted, for messages.
std::string kind_names() {
  std::string out;
  for (const agents::Kind* kind : agents::registered_kinds())
    out += fmt::format("{}\"{}\"", out.empty() ? "" : ", ", kind->name());
  return out;
}

bool declares(const agents::Kind& kind, std::string_view key) {
  const auto keys = kind.keys();
  return std::any_of(keys.begin(), keys.end(), [&](const agents::KeyInfo& k) { return k.name == key; });
}

void check_name(TomlTable& in, PopulationSpec& pop) {
  const auto name = in.string("name");
  if (!in.has("name")) {
    in.report("name", "is required");
  } else if (name && !is_bare_key(*name)) {
    in.report("name", fmt::format("must be made of letters, digits, '_' and '-', got \"{}\"", *name));
  } else if (name) {
    pop.name = *name;
  }
}

/// The population's registered kind (nullptr, reported, if it has none).
const agents::Kind* read_kind(TomlTable& in, PopulationSpec& pop) {
  if (!in.has("kind")) in.report("kind", fmt::format("is required (one of {})", kind_names()));
  const auto name = in.string("kind");
  if (!name) return nullptr;
  const agents::Kind* kind = agents::find_kind(*name);
  if (kind == nullptr) {
    in.report("kind", fmt::format("must be one of {}, got \"{}\"", kind_names(), *name));
    return nullptr;
  }
  pop.kind = *name;
  return kind;
}

/// Reports keys that no kind has, and keys of other kinds than the population's.
void check_population_keys(TomlTable& in, const agents::Kind* kind) {
  const auto kinds = agents::registered_kinds();
  for (auto&& [k, v] : in.toml()) {
    const std::string_view key = k.str();
    if (contains(common_keys, key) || (kind != nullptr && declares(*kind, key))) continue;
    const bool known =
        std::any_of(kinds.begin(), kinds.end(), [&](const auto* other) { return declares(*other, key); });
    std::vector<std::string_view> allowed(common_keys.begin(), common_keys.end());
    for (const agents::Kind* other : kinds) {
      if (kind != nullptr && other != kind) continue;
      for (const auto& info : other->keys())
        if (!contains(allowed, info.name)) allowed.push_back(info.name);
    }
    if (kind != nullptr && known)
      in.report(key, fmt::format("does not apply to kind = \"{}\"", kind->name()));
    else if (kind != nullptr)
      in.report(key, fmt::format("unknown key; allowed keys: {} (kind = \"{}\")", join_keys(allowed),
                                 kind->name()));
    else if (!known)
      in.report(key, fmt::format("unknown key; allowed keys: {}", join_keys(allowed)));
  }
}

/// One [[population]]: the common keys, then its kind's (Kind::read); whole-scenario checks come later.
PopulationSpec read_population(Checker& c, const toml::table& t, std::size_t index) {
  TomlTable in(c, t, fmt::format("population[{}]", index));
  PopulationSpec pop;
  pop.source_line = static_cast<int>(t.source().begin.line);
  check_name(in, pop);
  const agents::Kind* kind = read_kind(in, pop);
  pop.count = static_cast<int>(in.integer("count", 1).value_or(1));
  check_population_keys(in, kind);
  if (in.has(agents::kInvestorsKey)) {
    pop.investors = in.string(agents::kInvestorsKey).value_or("");
    if (pop.investors.empty() && in.valid(agents::kInvestorsKey))
      in.report(agents::kInvestorsKey, "must name the population whose investors to take");
    // The investors' parameters come from the source (agents::investor_values): none may be given here.
    for (const std::string_view key : agents::kTakenWithInvestors)
      if (in.has(key))
        in.report(key,
                  fmt::format("is taken from population \"{}\" (investors); remove it here", pop.investors));
  }
  if (in.has("wealth") && pop.investors.empty()) {
    pop.wealth = in.param("wealth", direct(positive)).value_or(pop.wealth);
  } else {
    pop.wealth.value = theory::defaults::x0;
  }
  if (kind != nullptr) pop.params = kind->read(in, pop);
  return pop;
}

void read_run(TomlTable& in, sim::RunSpec& run) {
  static constexpr std::array<std::string_view, 5> keys{"seed", "paths", "horizon", "steps_per_year",
                                                        "wealth_update"};
  in.allow_only(keys);
  run.seed = static_cast<std::uint64_t>(in.integer("seed", 0, std::numeric_limits<std::int64_t>::max())
                                            .value_or(static_cast<std::int64_t>(run.seed)));
  run.paths = static_cast<int>(in.integer("paths", 1).value_or(run.paths));
  const auto horizon = in.number("horizon", positive);
  const auto steps = in.integer("steps_per_year", 1);
  run.horizon = horizon.value_or(run.horizon);
  run.steps_per_year = static_cast<int>(steps.value_or(run.steps_per_year));
  if ((horizon || !in.has("horizon")) && (steps || !in.has("steps_per_year"))) {
    try {
      (void)sim::whole_steps(run.horizon, run.steps_per_year);
    } catch (const InputError& e) {
      in.report("horizon", e.what(), "steps_per_year");
    }
  }
  run.wealth_update = in.choice<sim::WealthUpdate>("wealth_update").value_or(run.wealth_update);
}

/// A [market] key that is a number (every asset) or an array of numbers (one per asset): the values, and
/// whether it was an array. Nothing when absent or invalid (reported).
std::optional<std::pair<std::vector<double>, bool>> asset_numbers(TomlTable& in, std::string_view key,
                                                                  const Domain& domain) {
  const toml::node* n = in.toml().get(key);
  if (n == nullptr) return std::nullopt;
  Checker& c = in.checker();
  if (const auto* a = n->as_array()) {
    if (a->empty()) {
      in.report(key, "must be a number or a non-empty array of numbers, one per asset");
      return std::nullopt;
    }
    std::vector<double> out;
    for (std::size_t i = 0; i < a->size(); ++i) {
      const auto x = c.number((*a)[i], fmt::format("{}[{}]", in.path(key), i), domain);
      if (!x) return std::nullopt;
      out.push_back(*x);
    }
    return std::pair{out, true};
  }
  const auto x = in.number(key, domain);
  if (!x) return std::nullopt;
  return std::pair{std::vector<double>{*x}, false};
}

/// market.correlation = [[...], ...] (N x N) or market.factor = {loading = [...]}: row-major, or nothing.
std::optional<std::vector<double>> read_correlation(TomlTable& in, std::size_t n) {
  Checker& c = in.checker();
  if (in.has("correlation") && in.has("factor")) {
    in.report("factor", "give either correlation or factor, not both");
    return std::nullopt;
  }
  if (const auto factor = in.sub("factor")) {
    static constexpr std::array<std::string_view, 1> keys{"loading"};
    factor->allow_only(keys);
    if (!factor->require("loading", " (the assets' loadings on the common factor, one per asset)"))
      return std::nullopt;
    const auto loading = asset_numbers(*factor, "loading", agents::Domain{-1.0, false, 1.0, false});
    if (!loading) return std::nullopt;
    if (loading->first.size() != n) {
      factor->report("loading",
                     fmt::format("must have one loading per asset ({}), got {}", n, loading->first.size()));
      return std::nullopt;
    }
    return sim::one_factor_correlation(loading->first);
  }
  const toml::node* node = in.toml().get("correlation");
  if (node == nullptr) return std::nullopt;
  const auto* rows = node->as_array();
  if (rows == nullptr) {
    in.report("correlation",
              fmt::format("must be an array of rows (arrays of numbers), got {}", describe(*node)));
    return std::nullopt;
  }
  std::vector<double> out;
  bool ok = true;
  for (std::size_t i = 0; i < rows->size(); ++i) {
    const std::string row_path = fmt::format("market.correlation[{}]", i);
    const auto* row = (*rows)[i].as_array();
    if (row == nullptr) {
      c.report(&(*rows)[i], row_path,
               fmt::format("must be a row (an array of numbers), got {}", describe((*rows)[i])));
      ok = false;
      continue;
    }
    if (row->size() != n || rows->size() != n) {
      c.report(
          row, row_path,
          fmt::format("the correlation matrix must be {} x {} (one row and column per asset), got {} rows, "
                      "this one with {} entries",
                      n, n, rows->size(), row->size()));
      return std::nullopt;
    }
    for (std::size_t j = 0; j < row->size(); ++j) {
      const auto x = c.number((*row)[j], fmt::format("{}[{}]", row_path, j), any_number);
      ok = ok && x.has_value();
      out.push_back(x.value_or(nan));
    }
  }
  return ok ? std::optional(out) : std::nullopt;
}

/// [market.impact] for n assets (docs/scenarios.md): lambda a number (every asset's own impact), an array
/// (the diagonal) or an n x n matrix (cross impact); depth, depth_multiple, market_value and floor a number
/// (every asset) or an array (one per asset); execution "pre_impact" or "post_impact". The market's own
/// checks (sim::impact_problems) then see the result, so lengths and ranges are checked once, there.
void read_impact(TomlTable& in, sim::ImpactSpec& im, std::size_t n) {
  static constexpr std::array<std::string_view, 6> keys{"lambda",       "depth", "depth_multiple",
                                                        "market_value", "floor", "execution"};
  in.allow_only(keys);
  Checker& c = in.checker();
  auto per_asset = [&](std::string_view key) {
    const auto given = asset_numbers(in, key, any_number);
    if (!given) return std::vector<double>{};
    return given->second ? given->first : std::vector<double>(n, given->first.front());
  };
  if (!in.require("lambda",
                  " (the price impact per unit of flow / depth: a number, one per asset, or an "
                  "n x n matrix)"))
    return;
  const toml::node* node = in.toml().get("lambda");
  const auto* rows = node->as_array();
  if (rows != nullptr && !rows->empty() && (*rows)[0].is_array()) {
    bool ok = rows->size() == n;
    if (!ok)
      in.report("lambda", fmt::format("a cross-impact matrix must be {} x {} (one row and column per asset), "
                                      "got {} rows",
                                      n, n, rows->size()));
    std::vector<double> out;
    for (std::size_t i = 0; ok && i < n; ++i) {
      const std::string row_path = fmt::format("{}[{}]", in.path("lambda"), i);
      const auto* row = (*rows)[i].as_array();
      if (row == nullptr || row->size() != n) {
        c.report(&(*rows)[i], row_path, fmt::format("must be a row of {} numbers, one per asset", n));
        ok = false;
        break;
      }
      for (std::size_t j = 0; j < n; ++j) {
        const auto x = c.number((*row)[j], fmt::format("{}[{}]", row_path, j), any_number);
        ok = ok && x.has_value();
        out.push_back(x.value_or(0.0));
      }
    }
    if (ok) im.lambda = out;
  } else if (const auto diagonal = per_asset("lambda"); !diagonal.empty()) {
    if (diagonal.size() != n) {
      in.report("lambda", fmt::format("has {} entries for {} assets: give a number, one per asset or an "
                                      "{} x {} matrix",
                                      diagonal.size(), n, n, n));
    } else {
      im.lambda.assign(n * n, 0.0);
      for (std::size_t a = 0; a < n; ++a) im.lambda[a * n + a] = diagonal[a];
    }
  }
  im.depth = per_asset("depth");
  im.depth_multiple = per_asset("depth_multiple");
  im.market_value = per_asset("market_value");
  im.floor = per_asset("floor");
  im.execution = in.choice<sim::Execution>("execution").value_or(im.execution);
}

/// [market]: one asset (mu, sigma, price0 numbers: today's syntax) or several (any of mu, sigma, price0 and
/// names an array, one entry per asset; a number applies to every asset; correlation or factor). Checked
/// through the market's own checks (sim/market/asset_covariance.hpp).
void read_market(TomlTable& in, sim::MarketSpec& m, double horizon) {
  static constexpr std::array<std::string_view, 8> keys{"mu",    "r",           "sigma",  "price0",
                                                        "names", "correlation", "factor", "impact"};
  in.allow_only(keys);
  m.r = in.number("r", any_number).value_or(m.r);
  const auto mu = asset_numbers(in, "mu", any_number);
  const auto sigma = asset_numbers(in, "sigma", positive);
  const auto price0 = asset_numbers(in, "price0", positive);
  const auto names = in.strings("names", "an asset name", "asset names");
  // N: the length of the arrays given, which must agree.
  std::size_t n = 1;
  std::string n_from;
  bool lengths_ok = true;
  auto take_length = [&](std::string_view key, std::size_t len) {
    if (n_from.empty()) {
      n = len;
      n_from = key;
    } else if (len != n) {
      in.report(key, fmt::format("has {} entries but {} has {}: give one entry per asset", len, n_from, n));
      lengths_ok = false;
    }
  };
  for (const auto& [key, values] :
       {std::pair{"mu", &mu}, std::pair{"sigma", &sigma}, std::pair{"price0", &price0}})
    if (*values && (*values)->second) take_length(key, (*values)->first.size());
  if (names) take_length("names", names->size());
  const bool all_read = (mu || !in.has("mu")) && (sigma || !in.has("sigma")) &&
                        (price0 || !in.has("price0")) && (names || !in.has("names")) && lengths_ok;
  auto value = [](const auto& given, std::size_t a, double fallback) {
    if (!given) return fallback;
    return given->first.size() == 1 ? given->first.front() : given->first[a];
  };
  m.mu = value(mu, 0, m.mu);
  m.sigma = value(sigma, 0, m.sigma);
  m.price0 = value(price0, 0, m.price0);
  if (n == 1) {
    // One asset: today's keys; a correlation is [[1]] at most.
    if (in.has("factor")) in.report("factor", "a one-factor correlation needs several assets");
    if (const auto corr = read_correlation(in, 1); corr && (*corr)[0] != 1.0)
      in.report("correlation",
                fmt::format("a market with one asset has the correlation [[1]], got [[{}]]", (*corr)[0]));
  } else if (all_read) {
    for (std::size_t a = 0; a < n; ++a) {
      m.assets.push_back({names ? (*names)[a] : fmt::format("asset{}", a), value(mu, a, 0.07),
                          value(sigma, a, 0.17), value(price0, a, 1.0)});
    }
    if (!in.has("correlation") && !in.has("factor")) {
      in.report("",
                fmt::format("a market with {} assets needs their correlation: correlation = [[1, ...], ...] "
                            "({} x {}) or factor = {{loading = [...]}}",
                            n, n, n));
    } else if (const auto corr = read_correlation(in, n)) {
      m.correlation = *corr;
    } else {
      m.correlation.assign(n * n, 0.0);  // reported; keep the spec's shape consistent
      for (std::size_t a = 0; a < n; ++a) m.correlation[a * n + a] = 1.0;
    }
  }
  auto impact = in.sub("impact");
  if (impact) read_impact(*impact, m.impact, static_cast<std::size_t>(m.asset_count()));
  // The market's own checks: the model's limits per asset, names, the correlation, the impact (every
  // problem); an impact problem ("impact.depth[1]") is reported at its key in [market.impact].
  constexpr std::string_view impact_prefix = "impact.";
  for (const auto& problem : sim::market_problems(m, horizon)) {
    const bool in_impact = impact && problem.key.rfind(impact_prefix, 0) == 0;
    TomlTable& at = in_impact ? *impact : in;
    const std::string key = in_impact ? problem.key.substr(impact_prefix.size()) : problem.key;
    const std::string base = key.substr(0, key.find('['));
    if (at.valid(key) && at.valid(base)) at.report(key, problem.message, base);
  }
}

void read_record(TomlTable& in, sim::RecordSpec& rec, std::optional<int> run_paths) {
  static constexpr std::array<std::string_view, 8> keys{"every", "trajectories", "summaries",   "enabled",
                                                        "paths", "max_agents",   "compression", "quantiles"};
  in.allow_only(keys);
  Checker& c = in.checker();
  rec.every = static_cast<int>(in.integer("every", 1).value_or(rec.every));
  rec.trajectories = in.boolean("trajectories").value_or(rec.trajectories);
  rec.summaries = in.boolean("summaries").value_or(rec.summaries);
  rec.enabled = in.boolean("enabled").value_or(rec.enabled);
  rec.max_agents = static_cast<int>(in.integer("max_agents", 1).value_or(rec.max_agents));
  rec.compression = static_cast<int>(in.integer("compression", 0, 9).value_or(rec.compression));
  // Trajectories and summaries off: the market (time/, market/) and the populations' attributes only, a
  // market-only run. The keys that shape what is no longer recorded would be silently ignored: refused.
  if (rec.enabled && !rec.trajectories && !rec.summaries) {
    for (const std::string_view key : {"max_agents", "compression", "quantiles"}) {
      if (in.has(key))
        in.report(key,
                  "has no effect with trajectories = false and summaries = false (only the market is "
                  "recorded)");
    }
  }
  if (const auto* n = in.toml().get("paths")) {
    if (const auto* a = n->as_array()) {
      const std::int64_t max = run_paths ? *run_paths - 1 : int_max;
      for (std::size_t i = 0; i < a->size(); ++i) {
        const std::string path = fmt::format("record.paths[{}]", i);
        const auto* v = (*a)[i].as_integer();
        if (v == nullptr) {
          c.report(&(*a)[i], path, fmt::format("must be an integer, got {}", describe((*a)[i])));
        } else if (v->get() < 0 || v->get() > max) {
          c.report(v, path,
                   fmt::format("must be a path index in [0, run.paths = {}), got {}", max + 1, v->get()));
        } else if (std::find(rec.paths.begin(), rec.paths.end(), v->get()) != rec.paths.end()) {
          c.report(v, path, fmt::format("path {} is listed twice", v->get()));
        } else {
          rec.paths.push_back(static_cast<int>(v->get()));
        }
      }
    } else {
      in.report("paths", fmt::format("must be an array of path indices, got {}", describe(*n)));
    }
  }
  if (const auto* n = in.toml().get("quantiles")) {
    if (const auto* a = n->as_array()) {
      rec.quantiles.clear();
      for (std::size_t i = 0; i < a->size(); ++i) {
        const auto q = c.number((*a)[i], fmt::format("record.quantiles[{}]", i), unit_interval);
        if (q && !rec.quantiles.empty() && *q <= rec.quantiles.back())
          c.report(&(*a)[i], fmt::format("record.quantiles[{}]", i),
                   fmt::format("quantiles must be strictly increasing, got {} after {}", *q,
                               rec.quantiles.back()));
        if (q) rec.quantiles.push_back(*q);
      }
    } else {
      in.report("quantiles", fmt::format("must be an array of numbers in [0, 1], got {}", describe(*n)));
    }
  }
}

/// The spec of a tree whose overrides and sweep values are applied and whose [sweep] is removed.
sim::ScenarioSpec validate(Checker& c, const toml::table& root) {
  c.pass_begin = c.problems.size();
  sim::ScenarioSpec spec;
  TomlTable top(c, root, "");
  static constexpr std::array<std::string_view, 5> keys{"run", "market", "population", "record", "sweep"};
  top.allow_only(keys);
  bool run_paths_ok = true;
  if (const auto run = top.sub("run")) {
    read_run(*run, spec.run);
    run_paths_ok = run->valid("paths");
  }
  if (const auto market = top.sub("market")) {
    read_market(*market, spec.market, spec.run.horizon);
  } else {
    for (const auto& problem : theory::market_problems({}, spec.run.horizon))
      c.report(root.get("run"), "market." + problem.key, problem.message + " (the default market)");
  }

  const auto* pops = root.get("population");
  const toml::array* tables = nullptr;
  if (pops == nullptr) {
    c.report(nullptr, "population", "at least one [[population]] is required");
  } else if (!pops->is_array_of_tables() || pops->as_array()->empty()) {
    c.report(pops, "population",
             fmt::format("must be an array of tables, one [[population]] each, got {}", describe(*pops)));
  } else {
    tables = pops->as_array();
    std::map<std::string, std::size_t> index_of;
    for (std::size_t i = 0; i < tables->size(); ++i) {
      const auto& t = *tables->get_as<toml::table>(i);
      spec.populations.push_back(read_population(c, t, i));
      const auto& name = spec.populations.back().name;
      if (name.empty()) continue;
      if (const auto [it, fresh] = index_of.emplace(name, i); !fresh)
        c.report(t.get("name"), fmt::format("population[{}].name", i),
                 fmt::format("duplicate name \"{}\" (also population[{}])", name, it->second));
    }
  }
  if (const auto record = top.sub("record"))
    read_record(*record, spec.record, run_paths_ok ? std::optional(spec.run.paths) : std::nullopt);
  // What needs the whole scenario (leaders, [run] settings): each kind's check, reported at its keys.
  for (std::size_t i = 0; tables != nullptr && i < tables->size(); ++i) {
    if (const agents::Kind* kind = agents::find_kind(spec.populations[i].kind)) {
      TomlTable in(c, *tables->get_as<toml::table>(i), fmt::format("population[{}]", i));
      kind->check(spec, static_cast<int>(i), in);
      agents::check_investors(spec, static_cast<int>(i), in);
    }
  }
  return spec;
}

/// A value that a [sweep] axis replaces never runs, but a wrong one is still a mistake in the file: the
/// file's own tree (overrides applied, before the sweep) is validated too, and its problems at swept
/// keys are reported (other problems are reported by every sweep point anyway).
void report_hidden_by_sweep(const toml::table& root, const std::vector<SweepAxis>& axes, Checker& c) {
  std::vector<std::string> hidden;
  constexpr std::string_view population = "population.";
  for (const auto& axis : axes) {
    std::string path = axis.key_path;
    // population.NAME.key is validated as population[i].key.
    const auto* pops = root.get_as<toml::array>("population");
    if (path.rfind(population, 0) == 0 && pops != nullptr) {
      const auto dot = path.find('.', population.size());
      const std::string name = path.substr(population.size(), dot - population.size());
      for (std::size_t i = 0; i < pops->size(); ++i) {
        const auto* t = pops->get_as<toml::table>(i);
        if (t != nullptr && t->get_as<std::string>("name") && t->get_as<std::string>("name")->get() == name)
          path = fmt::format("population[{}]{}", i, dot == std::string::npos ? "" : path.substr(dot));
      }
    }
    hidden.push_back(std::move(path));
  }
  Checker base;
  (void)validate(base, root);
  for (auto& p : base.problems) {
    const bool swept = std::any_of(hidden.begin(), hidden.end(), [&](const std::string& h) {
      return p.key_path.rfind(h, 0) == 0 &&
             (p.key_path.size() == h.size() || p.key_path[h.size()] == '.' || p.key_path[h.size()] == '[');
    });
    if (!swept) continue;
    p.message += " (the value written here; [sweep] replaces it, but it must be valid too)";
    c.problems.push_back(std::move(p));
  }
}

toml::table parse_text(std::string_view text, const std::string& source_name) {
  try {
    return toml::parse(text);
  } catch (const toml::parse_error& e) {
    const auto& src = e.source().begin;
    throw ScenarioFileError(source_name, {{"", static_cast<int>(src.line), static_cast<int>(src.column),
                                           fmt::format("TOML syntax error: {}", e.description()), ""}});
  }
}

}  // namespace

std::string format_scenario_problem(const std::string& source, const ScenarioProblem& p) {
  std::string where = source;
  if (!p.origin.empty())
    where += ": " + p.origin;
  else if (p.line > 0)
    where += fmt::format(":{}:{}", p.line, p.column);
  return p.key_path.empty() ? fmt::format("{}: {}", where, p.message)
                            : fmt::format("{}: {}: {}", where, p.key_path, p.message);
}

namespace {
std::string format_all(const std::string& source, const std::vector<ScenarioProblem>& problems) {
  std::string out;
  for (const auto& p : problems) {
    if (!out.empty()) out += '\n';
    out += format_scenario_problem(source, p);
  }
  return out;
}
}  // namespace

ScenarioFileError::ScenarioFileError(std::string source, std::vector<ScenarioProblem> problems)
    : ScenarioError(format_all(source, problems)),
      source_(std::move(source)),
      problems_(std::move(problems)) {}

std::vector<sim::ScenarioSpec> parse_scenario(std::string_view text, const std::string& source_name,
                                              const std::vector<std::string>& overrides) {
  Checker c;
  // A first pass finds the sweep axes; each point then re-parses the text so that every value keeps
  // its line:column (toml++ drops source positions on copy).
  std::vector<std::size_t> sizes;
  std::string full_text;  // after overrides, [sweep] included: what reproduces every point
  Checker hidden;         // problems of values the sweep replaces (reported, but the sweep still runs)
  {
    auto root = parse_text(text, source_name);
    apply_overrides(root, overrides, c);
    const auto axes = collect_sweep(root, c);
    for (const auto& axis : axes) sizes.push_back(axis.values->size());
    if (!axes.empty()) report_hidden_by_sweep(root, axes, hidden);
    std::ostringstream os;
    os << toml::toml_formatter(root) << '\n';
    full_text = os.str();
  }
  std::size_t points = 1;
  for (const auto n : sizes) points *= n;
  if (points > max_sweep_points) {
    c.report(nullptr, "sweep",
             fmt::format("has {} points; at most {} are allowed", points, max_sweep_points));
    sizes.clear();
    points = 1;
  }
  const bool sweep_ok = c.problems.empty();
  c.problems.insert(c.problems.end(), hidden.problems.begin(), hidden.problems.end());

  std::vector<sim::ScenarioSpec> specs;
  for (std::size_t point = 0; point < points; ++point) {
    auto root = parse_text(text, source_name);
    Checker quiet;  // problems of the overrides and the sweep table were collected by the first pass
    apply_overrides(root, overrides, quiet);
    std::vector<std::pair<std::string, double>> values;
    if (sweep_ok) {
      auto axes = collect_sweep(root, quiet);
      // The first key varies slowest.
      std::size_t rest = point;
      std::vector<std::size_t> index(axes.size());
      for (std::size_t j = axes.size(); j-- > 0;) {
        index[j] = rest % sizes[j];
        rest /= sizes[j];
      }
      for (std::size_t j = 0; j < axes.size(); ++j) {
        toml::node& v = (*axes[j].values)[index[j]];
        values.emplace_back(axes[j].key_path, v.value<double>().value_or(0.0));
        std::string error;
        auto [tbl, last] = locate(root, axes[j].key_path, error);
        if (tbl == nullptr)
          c.report(&v, fmt::format("sweep.\"{}\"", axes[j].key_path), error);
        else
          tbl->insert_or_assign(last, std::move(v));  // moved: a problem with it points into [sweep]
      }
    }
    root.erase("sweep");
    auto spec = validate(c, root);
    spec.text = full_text;
    spec.sweep_point = std::move(values);
    specs.push_back(std::move(spec));
  }
  if (!c.problems.empty()) {
    sort_problems(c.problems);
    throw ScenarioFileError(source_name, std::move(c.problems));
  }
  return specs;
}

std::vector<sim::ScenarioSpec> load_scenario(const std::string& path,
                                             const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw InputError(fmt::format("'{}' is a directory, not a scenario file (give a .toml file)", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("cannot open scenario file '{}'", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw IoError(fmt::format("cannot read scenario file '{}'", path));
  return parse_scenario(text.str(), path, overrides);
}

}  // namespace herdsim::io
