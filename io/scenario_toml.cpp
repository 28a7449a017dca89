#include "io/scenario_toml.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "agents/herd_agent.hpp"
#include "sim/investalign/dataset.hpp"

namespace herdsim::io {

namespace {

using sim::DistributionSpec;
using sim::ParamSpec;
using sim::PopulationSpec;
using KeyList = std::vector<std::string_view>;

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr double nan = std::numeric_limits<double>::quiet_NaN();
constexpr std::int64_t int_max = std::numeric_limits<int>::max();
constexpr std::size_t max_sweep_points = 10000;
/// Years of the InvestAlign reference budget list (investalign::static_budget_list).
constexpr int sim_budget_years = static_cast<int>(investalign::static_budget_list.size());

std::string join_path(const std::string& prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : fmt::format("{}.{}", prefix, key);
}

std::string join_keys(const KeyList& keys) {
  std::string out;
  for (const auto k : keys) out += (out.empty() ? "" : ", ") + std::string(k);
  return out;
}

bool contains(const KeyList& keys, std::string_view key) {
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

/// An interval of allowed values; open or closed at each end.
struct Domain {
  double lo = -inf;
  bool lo_open = true;
  double hi = inf;
  bool hi_open = true;

  [[nodiscard]] bool contains(double v) const {
    return std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  }
  [[nodiscard]] std::string describe() const {
    if (std::isfinite(lo) && std::isfinite(hi))
      return fmt::format("must lie in {}{}, {}{}", lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']');
    if (std::isfinite(lo)) return fmt::format("must be {} {}", lo_open ? ">" : ">=", lo);
    if (std::isfinite(hi)) return fmt::format("must be {} {}", hi_open ? "<" : "<=", hi);
    return "must be a finite number";
  }
};

constexpr Domain any_number{};
constexpr Domain positive{0.0, true};
constexpr Domain non_negative{0.0, false};
constexpr Domain unit_interval{0.0, false, 1.0, false};

/// A per-agent parameter's domain, and the mapped scale a table may give it (alpha: lottery_prob,
/// theta: score).
struct ParamRule {
  Domain domain;
  std::string_view scale_key;  // "" if none
  ParamSpec::Scale scale = ParamSpec::Scale::direct;
  Domain scale_domain;
};

ParamRule direct(Domain domain) {
  return {domain, "", ParamSpec::Scale::direct, any_number};
}

/// Collects problems; the typed reads report a wrong type or value and then read as absent.
class Checker {
 public:
  std::vector<ScenarioProblem> problems;

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

  void check_keys(const toml::table& t, const std::string& prefix, const KeyList& allowed) {
    for (auto&& [k, v] : t) {
      if (!contains(allowed, k.str()))
        report(&v, join_path(prefix, k.str()),
               fmt::format("unknown key; allowed keys: {}", join_keys(allowed)));
    }
  }

  std::optional<std::int64_t> integer(const toml::table& t, const std::string& prefix, std::string_view key,
                                      std::int64_t min, std::int64_t max = int_max) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    const std::string path = join_path(prefix, key);
    const auto* v = n->as_integer();
    if (v == nullptr) {
      report(n, path, fmt::format("must be an integer, got {}", describe(*n)));
      return std::nullopt;
    }
    if (v->get() < min || v->get() > max) {
      const bool open_ended = max == int_max || max == std::numeric_limits<std::int64_t>::max();
      report(n, path,
             open_ended && v->get() < min ? fmt::format("must be >= {}, got {}", min, v->get())
                                          : fmt::format("must lie in [{}, {}], got {}", min, max, v->get()));
      return std::nullopt;
    }
    return v->get();
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

  std::optional<double> number(const toml::table& t, const std::string& prefix, std::string_view key,
                               const Domain& domain) {
    const toml::node* n = t.get(key);
    return n == nullptr ? std::nullopt : number(*n, join_path(prefix, key), domain);
  }

  std::optional<bool> boolean(const toml::table& t, const std::string& prefix, std::string_view key) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    if (const auto* v = n->as_boolean()) return v->get();
    report(n, join_path(prefix, key), fmt::format("must be true or false, got {}", describe(*n)));
    return std::nullopt;
  }

  std::optional<std::string> string(const toml::table& t, const std::string& prefix, std::string_view key) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    if (const auto* v = n->as_string()) return v->get();
    report(n, join_path(prefix, key), fmt::format("must be a string, got {}", describe(*n)));
    return std::nullopt;
  }

  template <class E>
  std::optional<E> choice(const toml::table& t, const std::string& prefix, std::string_view key,
                          const std::vector<std::pair<std::string_view, E>>& options) {
    const auto s = string(t, prefix, key);
    if (!s) return std::nullopt;
    for (const auto& [name, value] : options) {
      if (*s == name) return value;
    }
    std::string names;
    for (const auto& [name, value] : options)
      names += fmt::format("{}\"{}\"", names.empty() ? "" : ", ", name);
    report(t.get(key), join_path(prefix, key), fmt::format("must be one of {}, got \"{}\"", names, *s));
    return std::nullopt;
  }

  /// A table-valued key (inline or not); reports another type.
  const toml::table* table(const toml::table& t, const std::string& prefix, std::string_view key) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return nullptr;
    if (n->is_table()) return n->as_table();
    report(n, join_path(prefix, key), fmt::format("must be a table, got {}", describe(*n)));
    return nullptr;
  }

  // ---- per-agent parameters -------------------------------------------------------------------

  std::optional<ParamSpec> param(const toml::node& n, const std::string& path, const ParamRule& rule) {
    const auto* t = n.as_table();
    if (t != nullptr && !rule.scale_key.empty() && t->contains(rule.scale_key) && !t->contains("dist")) {
      check_keys(*t, path, {rule.scale_key});
      const std::string inner = join_path(path, rule.scale_key);
      auto p = param_values(*t->get(rule.scale_key), inner, rule.scale_domain, "");
      if (p) p->scale = rule.scale;
      return p;
    }
    return param_values(n, path, rule.domain, rule.scale_key);
  }

  /// A number, a non-empty array of numbers, or a distribution table, all within domain.
  std::optional<ParamSpec> param_values(const toml::node& n, const std::string& path, const Domain& domain,
                                        std::string_view scale_key) {
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

  std::optional<DistributionSpec> distribution(const toml::table& t, const std::string& path,
                                               const Domain& domain) {
    using Kind = DistributionSpec::Kind;
    const auto kind =
        choice<Kind>(t, path, "dist",
                     {{"uniform", Kind::uniform}, {"normal", Kind::normal}, {"lognormal", Kind::lognormal}});
    if (!kind) return std::nullopt;
    DistributionSpec d;
    d.kind = *kind;
    const std::size_t before = problems.size();
    // Parameter names per law; a and b hold them in DistributionSpec's order.
    const auto [a_key, b_key] = *kind == Kind::uniform  ? std::pair{"low", "high"}
                                : *kind == Kind::normal ? std::pair{"mean", "std"}
                                                        : std::pair{"mu", "sigma"};
    const std::string_view law = *kind == Kind::uniform  ? "uniform"
                                 : *kind == Kind::normal ? "normal"
                                                         : "lognormal";
    if (*kind == Kind::uniform)
      check_keys(t, path, {"dist", "low", "high"});
    else
      check_keys(t, path, {"dist", a_key, b_key, "low", "high"});
    for (const auto* key : {a_key, b_key}) {
      if (!t.contains(key))
        report(&t, join_path(path, key), fmt::format("is required for dist = \"{}\"", law));
    }

    if (*kind == Kind::uniform) {
      // Its bounds are the support, so each must lie in the domain.
      d.a = number(t, path, "low", domain).value_or(nan);
      d.b = number(t, path, "high", domain).value_or(nan);
      if (d.a >= d.b)
        report(t.get("high"), join_path(path, "high"), fmt::format("must be > low = {}, got {}", d.a, d.b));
      return problems.size() == before ? std::optional(d) : std::nullopt;
    }

    d.a = number(t, path, a_key, any_number).value_or(nan);
    d.b = number(t, path, b_key, positive).value_or(nan);
    if (t.contains("low")) d.low = number(t, path, "low", domain);
    if (t.contains("high")) d.high = number(t, path, "high", domain);
    if (d.low && d.high && *d.low >= *d.high)
      report(t.get("high"), join_path(path, "high"),
             fmt::format("must be > low = {}, got {}", *d.low, *d.high));
    // Without truncation a normal reaches every real and a lognormal every positive value.
    const bool unbounded_below = *kind == Kind::normal ? std::isfinite(domain.lo) : domain.lo > 0.0;
    if (!t.contains("low") && unbounded_below) {
      report(&t, path,
             fmt::format("a {} distribution can draw values out of range (values {}); truncate it with low",
                         law, domain.describe()));
    }
    if (!t.contains("high") && std::isfinite(domain.hi)) {
      report(&t, path,
             fmt::format("a {} distribution can draw values out of range (values {}); truncate it with high",
                         law, domain.describe()));
    }
    return problems.size() == before ? std::optional(d) : std::nullopt;
  }
};

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
        // More digits than any population count has: no such population (and no stoul overflow).
        const std::size_t k = digits.size() > 9 ? n : std::stoul(digits);
        if (k < n) pop = pops->get_as<toml::table>(k);
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
    if (!contains({"run", "market", "population", "record"}, root_key) ||
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

const KeyList population_keys = {"name",    "kind", "count",     "wealth",     "lottery",  "alpha",
                                 "theta",   "herd", "influence", "leader",     "network",  "policy",
                                 "optimum", "bc",   "rho",       "proportion", "protocol", "inference"};

const KeyList inference_keys = {"backend",    "model",  "lora",         "temperature",
                                "max_tokens", "batch",  "threads",      "prefix_sharing",
                                "grammar",    "replay", "replay_group", "replay_population"};

/// Why key does not apply to this population ("" if it does).
std::string inapplicable(std::string_view key, std::optional<sim::AgentKind> kind,
                         std::optional<sim::HerdType> herd, std::optional<sim::Influence> influence) {
  using sim::AgentKind;
  if (!kind || key == "name" || key == "kind" || key == "count" || key == "wealth") return "";
  const KeyList merton = {"alpha", "policy", "optimum", "lottery"};
  const KeyList herd_keys = {"alpha",   "theta",  "lottery", "herd", "influence", "leader",
                             "network", "policy", "optimum", "bc",   "rho"};
  const KeyList investagent_keys = {"alpha", "theta", "lottery", "leader", "protocol", "inference"};
  const char* kind_name = *kind == AgentKind::merton        ? "merton"
                          : *kind == AgentKind::herd        ? "herd"
                          : *kind == AgentKind::investagent ? "investagent"
                                                            : "noise";
  const bool applies = *kind == AgentKind::merton        ? contains(merton, key)
                       : *kind == AgentKind::herd        ? contains(herd_keys, key)
                       : *kind == AgentKind::investagent ? contains(investagent_keys, key)
                                                         : key == "proportion";
  if (!applies) return fmt::format("does not apply to kind = \"{}\"", kind_name);
  if (key == "leader" && influence == sim::Influence::peers)
    return "does not apply with influence = \"peers\" (peers follow their network)";
  if (key == "network" && influence == sim::Influence::leader)
    return "does not apply with influence = \"leader\"";
  if (key == "bc" && herd == sim::HerdType::absolute) return "applies only to herd = \"relative\"";
  if (key == "rho" && herd == sim::HerdType::relative) return "applies only to herd = \"absolute\"";
  return "";
}

void check_name(Checker& c, const toml::table& t, const std::string& prefix, PopulationSpec& pop) {
  const auto name = c.string(t, prefix, "name");
  if (!t.contains("name")) {
    c.report(&t, prefix + ".name", "is required");
  } else if (name && !is_bare_key(*name)) {
    c.report(t.get("name"), prefix + ".name",
             fmt::format("must be made of letters, digits, '_' and '-', got \"{}\"", *name));
  } else if (name) {
    pop.name = *name;
  }
}

void read_network(Checker& c, const toml::table& t, const std::string& prefix, PopulationSpec& pop,
                  bool count_ok) {
  using Kind = sim::NetworkSpec::Kind;
  if (!t.contains("network")) {
    c.report(&t, prefix + ".network", "is required with influence = \"peers\"");
    return;
  }
  const auto* net = c.table(t, prefix, "network");
  if (net == nullptr) return;
  const std::string path = prefix + ".network";
  c.check_keys(*net, path, {"kind", "k", "p"});
  if (!net->contains("kind")) c.report(net, path + ".kind", "is required");
  const auto kind = c.choice<Kind>(*net, path, "kind",
                                   {{"all_to_all", Kind::all_to_all},
                                    {"ring", Kind::ring},
                                    {"erdos_renyi", Kind::erdos_renyi},
                                    {"small_world", Kind::small_world}});
  if (!kind) return;
  pop.network.kind = *kind;
  const bool uses_k = *kind == Kind::ring || *kind == Kind::small_world;
  const bool uses_p = *kind == Kind::erdos_renyi || *kind == Kind::small_world;
  const auto* kind_name = net->get_as<std::string>("kind");
  if (!uses_k && net->contains("k"))
    c.report(net->get("k"), path + ".k", fmt::format("does not apply to kind = \"{}\"", kind_name->get()));
  if (!uses_p && net->contains("p"))
    c.report(net->get("p"), path + ".p", fmt::format("does not apply to kind = \"{}\"", kind_name->get()));
  if (uses_p) pop.network.p = c.number(*net, path, "p", unit_interval).value_or(pop.network.p);
  if (uses_k) {
    const auto k = c.integer(*net, path, "k", 1);
    if (k) pop.network.k = static_cast<int>(*k);
    if ((k || !net->contains("k")) && count_ok && 2LL * pop.network.k >= pop.count) {
      c.report(net->contains("k") ? net->get("k") : net, path + ".k",
               fmt::format("needs 2k < count (k neighbours on each side), got k = {}{} with count = {}",
                           pop.network.k, net->contains("k") ? "" : " (default)", pop.count));
    }
  }
  if (count_ok && pop.count < 2)
    c.report(t.get("count") != nullptr ? t.get("count") : &t, prefix + ".count",
             fmt::format("influence = \"peers\" needs count >= 2, got {}", pop.count));
}

/// The `inference` table of an investagent population.
void read_inference(Checker& c, const toml::table& t, const std::string& prefix, PopulationSpec& pop) {
  const std::string path = prefix + ".inference";
  if (!t.contains("inference")) {
    c.report(&t, path, "is required for kind = \"investagent\": a table with backend and model (or replay)");
    return;
  }
  const auto* table = c.table(t, prefix, "inference");
  if (table == nullptr) return;
  c.check_keys(*table, path, inference_keys);
  sim::InferenceSpec& s = pop.inference;
  if (!table->contains("backend"))
    c.report(table, path + ".backend",
             "is required: a plugin name (\"llama\", \"llama_cuda\"), \"auto\" (CUDA when usable, else CPU), "
             "a plugin path, or \"replay\"");
  s.backend = c.string(*table, path, "backend").value_or("");
  if (table->contains("backend") && table->get("backend")->is_string() && s.backend.empty())
    c.report(table->get("backend"), path + ".backend", "must not be empty");
  const bool replay = s.backend == "replay";
  s.model = c.string(*table, path, "model").value_or("");
  if (!replay && !s.backend.empty() && !table->contains("model"))
    c.report(table, path + ".model",
             fmt::format("is required with backend = \"{}\": the model file", s.backend));
  if (const auto* n = table->get("lora")) {
    if (const auto* a = n->as_array()) {
      for (std::size_t i = 0; i < a->size(); ++i) {
        if (const auto* v = (*a)[i].as_string())
          s.lora.push_back(v->get());
        else
          c.report(&(*a)[i], fmt::format("{}.lora[{}]", path, i),
                   fmt::format("must be a string (an adapter file), got {}", describe((*a)[i])));
      }
    } else {
      c.report(n, path + ".lora", fmt::format("must be an array of adapter files, got {}", describe(*n)));
    }
  }
  s.temperature = c.number(*table, path, "temperature", non_negative).value_or(s.temperature);
  s.max_tokens = static_cast<int>(c.integer(*table, path, "max_tokens", 1).value_or(s.max_tokens));
  s.batch = static_cast<int>(c.integer(*table, path, "batch", 1).value_or(s.batch));
  s.threads = static_cast<int>(c.integer(*table, path, "threads", 1).value_or(s.threads));
  s.prefix_sharing = c.boolean(*table, path, "prefix_sharing").value_or(s.prefix_sharing);
  s.grammar = c.boolean(*table, path, "grammar").value_or(s.grammar);
  // model, lora and threads may stay when a scenario is switched to replay with --set: they are ignored.
  for (const char* key : {"replay", "replay_group", "replay_population"}) {
    if (table->contains(key) && !replay && !s.backend.empty())
      c.report(table->get(key), join_path(path, key), "applies only with backend = \"replay\"");
  }
  s.replay = c.string(*table, path, "replay").value_or("");
  s.replay_group = c.string(*table, path, "replay_group").value_or("");
  s.replay_population = c.string(*table, path, "replay_population").value_or("");
  if (replay && !table->contains("replay"))
    c.report(table, path + ".replay",
             "is required with backend = \"replay\": the run file whose transcripts answer");
}

/// One [[population]]; leaders are checked once all populations are read.
PopulationSpec read_population(Checker& c, const toml::table& t, std::size_t index) {
  using namespace sim;
  const std::string prefix = fmt::format("population[{}]", index);
  PopulationSpec pop;
  pop.source_line = static_cast<int>(t.source().begin.line);
  check_name(c, t, prefix, pop);
  if (!t.contains("kind"))
    c.report(&t, prefix + ".kind", "is required (\"merton\", \"herd\", \"noise\" or \"investagent\")");
  const auto kind = c.choice<AgentKind>(t, prefix, "kind",
                                        {{"merton", AgentKind::merton},
                                         {"herd", AgentKind::herd},
                                         {"noise", AgentKind::noise},
                                         {"investagent", AgentKind::investagent}});
  pop.kind = kind.value_or(AgentKind::merton);
  const auto count = c.integer(t, prefix, "count", 1);
  pop.count = static_cast<int>(count.value_or(1));
  const bool count_ok = count || !t.contains("count");

  std::optional<HerdType> herd;
  std::optional<Influence> influence;
  if (kind == AgentKind::herd) {
    herd = c.choice<HerdType>(t, prefix, "herd",
                              {{"absolute", HerdType::absolute}, {"relative", HerdType::relative}});
    influence = c.choice<Influence>(t, prefix, "influence",
                                    {{"leader", Influence::leader}, {"peers", Influence::peers}});
    if (!t.contains("herd")) herd = HerdType::absolute;
    if (!t.contains("influence")) influence = Influence::leader;
  }
  for (auto&& [k, v] : t) {
    const std::string path = join_path(prefix, k.str());
    if (!contains(population_keys, k.str())) {
      c.report(&v, path, fmt::format("unknown key; allowed keys: {}", join_keys(population_keys)));
    } else if (const auto why = inapplicable(k.str(), kind, herd, influence); !why.empty()) {
      c.report(&v, path, why);
    }
  }

  if (const auto* w = t.get("wealth")) {
    pop.wealth = c.param(*w, prefix + ".wealth", direct(positive)).value_or(pop.wealth);
  } else {
    pop.wealth.value = theory::defaults::x0;
  }
  if (!kind) return pop;

  auto required_param = [&](std::string_view key, const ParamRule& rule, ParamSpec& out) {
    if (const auto* n = t.get(key))
      out = c.param(*n, join_path(prefix, key), rule).value_or(out);
    else
      c.report(&t, join_path(prefix, key),
               fmt::format("is required for kind = \"{}\"", t.get_as<std::string>("kind")->get()));
  };
  if (*kind == AgentKind::noise) {
    required_param("proportion", direct(any_number), pop.proportion);
    return pop;
  }

  // merton and herd: alpha (possibly as lottery probabilities), policy, optimum.
  const auto lottery = c.choice<theory::LotteryConvention>(
      t, prefix, "lottery",
      {{"win10_sure3", theory::lottery_win10_sure3}, {"win20_sure6", theory::lottery_win20_sure6}});
  pop.lottery = lottery.value_or(theory::lottery_win10_sure3);
  const Domain prob{pop.lottery.sure / pop.lottery.win, true, 1.0, true};
  required_param("alpha", {positive, "lottery_prob", ParamSpec::Scale::lottery_prob, prob}, pop.alpha);
  const auto* alpha_table = t.get_as<toml::table>("alpha");
  if (t.contains("lottery") && !(alpha_table != nullptr && alpha_table->contains("lottery_prob")) &&
      *kind != AgentKind::investagent)  // an investagent's prompt quotes the lottery either way
    c.report(t.get("lottery"), prefix + ".lottery", "applies only with alpha = { lottery_prob = ... }");
  if (*kind == AgentKind::investagent) {
    required_param("theta", {non_negative, "score", ParamSpec::Scale::score, non_negative}, pop.theta);
    pop.protocol = c.choice<InvestProtocol>(t, prefix, "protocol",
                                            {{"absolute", InvestProtocol::absolute},
                                             {"relative", InvestProtocol::relative},
                                             {"mutual", InvestProtocol::mutual},
                                             {"step", InvestProtocol::step}})
                       .value_or(InvestProtocol::absolute);
    if (pop.protocol == InvestProtocol::mutual && count_ok && pop.count < 2)
      c.report(
          t.contains("count") ? t.get("count") : t.get("protocol"), prefix + ".count",
          fmt::format("protocol = \"mutual\" needs count >= 2 (each agent's peer is another agent of the "
                      "population), got {}",
                      pop.count));
    if (!t.contains("leader"))
      c.report(&t, prefix + ".leader",
               "is required for kind = \"investagent\": the name of a merton population");
    pop.leader = c.string(t, prefix, "leader").value_or("");
    read_inference(c, t, prefix, pop);
    return pop;
  }
  pop.optimum = c.choice<Optimum>(t, prefix, "optimum",
                                  {{"discrete", Optimum::discrete}, {"continuous", Optimum::continuous}})
                    .value_or(Optimum::discrete);
  const auto policy =
      c.choice<Policy>(t, prefix, "policy",
                       {{"plan", Policy::plan}, {"replan", Policy::replan}, {"adaptive", Policy::adaptive}});
  pop.policy = policy.value_or(Policy::plan);
  if (*kind == AgentKind::merton) {
    if (policy == Policy::adaptive)
      c.report(t.get("policy"), prefix + ".policy", "policy = \"adaptive\" applies only to herd populations");
    return pop;
  }

  // herd
  required_param("theta", {non_negative, "score", ParamSpec::Scale::score, non_negative}, pop.theta);
  pop.herd = herd.value_or(HerdType::absolute);
  pop.influence = influence.value_or(Influence::leader);
  if (pop.herd == HerdType::relative)
    pop.bc =
        c.choice<Boundary>(t, prefix, "bc", {{"pinned", Boundary::pinned}, {"natural", Boundary::natural}})
            .value_or(Boundary::pinned);
  if (pop.herd == HerdType::absolute) pop.rho = c.number(t, prefix, "rho", any_number).value_or(0.0);
  if (pop.influence == Influence::leader) {
    if (!t.contains("leader"))
      c.report(&t, prefix + ".leader",
               "is required with influence = \"leader\": the name of a merton population");
    pop.leader = c.string(t, prefix, "leader").value_or("");
  } else if (influence == Influence::peers) {
    read_network(c, t, prefix, pop, count_ok);
  }
  return pop;
}

void read_run(Checker& c, const toml::table& t, sim::RunSpec& run) {
  c.check_keys(t, "run", {"seed", "paths", "horizon", "steps_per_year", "wealth_update"});
  run.seed =
      static_cast<std::uint64_t>(c.integer(t, "run", "seed", 0, std::numeric_limits<std::int64_t>::max())
                                     .value_or(static_cast<std::int64_t>(run.seed)));
  run.paths = static_cast<int>(c.integer(t, "run", "paths", 1).value_or(run.paths));
  const auto horizon = c.number(t, "run", "horizon", positive);
  const auto steps = c.integer(t, "run", "steps_per_year", 1);
  run.horizon = horizon.value_or(run.horizon);
  run.steps_per_year = static_cast<int>(steps.value_or(run.steps_per_year));
  const double n = run.horizon * run.steps_per_year;
  if ((horizon || !t.contains("horizon")) && (steps || !t.contains("steps_per_year")) &&
      (std::abs(n - std::round(n)) > 1e-9 * std::max(1.0, n) || std::round(n) < 1.0)) {
    c.report(t.contains("horizon") ? t.get("horizon") : t.get("steps_per_year"), "run.horizon",
             fmt::format("horizon * steps_per_year must be a whole number of steps, got {} * {} = {}",
                         run.horizon, run.steps_per_year, n));
  } else if ((horizon || !t.contains("horizon")) && (steps || !t.contains("steps_per_year")) &&
             !(std::round(n) <= static_cast<double>(int_max))) {
    c.report(t.contains("horizon") ? t.get("horizon") : t.get("steps_per_year"), "run.horizon",
             fmt::format("horizon * steps_per_year must be at most {} steps, got {} * {} = {}", int_max,
                         run.horizon, run.steps_per_year, n));
  }
  run.wealth_update = c.choice<sim::WealthUpdate>(t, "run", "wealth_update",
                                                  {{"arithmetic", sim::WealthUpdate::arithmetic},
                                                   {"lognormal", sim::WealthUpdate::lognormal}})
                          .value_or(run.wealth_update);
}

void read_market(Checker& c, const toml::table& t, sim::MarketSpec& m) {
  c.check_keys(t, "market", {"mu", "r", "sigma", "price0"});
  m.mu = c.number(t, "market", "mu", any_number).value_or(m.mu);
  m.r = c.number(t, "market", "r", any_number).value_or(m.r);
  m.sigma = c.number(t, "market", "sigma", positive).value_or(m.sigma);
  m.price0 = c.number(t, "market", "price0", positive).value_or(m.price0);
}

void read_record(Checker& c, const toml::table& t, sim::RecordSpec& rec, std::optional<int> run_paths) {
  c.check_keys(
      t, "record",
      {"every", "trajectories", "summaries", "enabled", "paths", "max_agents", "compression", "quantiles"});
  rec.every = static_cast<int>(c.integer(t, "record", "every", 1).value_or(rec.every));
  rec.trajectories = c.boolean(t, "record", "trajectories").value_or(rec.trajectories);
  rec.summaries = c.boolean(t, "record", "summaries").value_or(rec.summaries);
  rec.enabled = c.boolean(t, "record", "enabled").value_or(rec.enabled);
  if (rec.enabled && !rec.trajectories && !rec.summaries) {
    c.report(
        t.get("summaries"), "record.summaries",
        "with trajectories = false nothing would be recorded; set record.enabled = false to record nothing");
  }
  rec.max_agents = static_cast<int>(c.integer(t, "record", "max_agents", 1).value_or(rec.max_agents));
  rec.compression = static_cast<int>(c.integer(t, "record", "compression", 0, 9).value_or(rec.compression));
  if (const auto* n = t.get("paths")) {
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
      c.report(n, "record.paths", fmt::format("must be an array of path indices, got {}", describe(*n)));
    }
  }
  if (const auto* n = t.get("quantiles")) {
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
      c.report(n, "record.quantiles",
               fmt::format("must be an array of numbers in [0, 1], got {}", describe(*n)));
    }
  }
}

/// InvestAgents decide once a year over the reference budget list: steps_per_year = 1 and a horizon of
/// 1..10 whole years (relative: >= 2). Reported at each investagent population.
void check_investagent_time(Checker& c, const toml::table& root, const sim::ScenarioSpec& spec) {
  const auto* pops = root.get_as<toml::array>("population");
  if (pops == nullptr) return;
  const double T = spec.run.horizon;
  const auto max_years = static_cast<double>(sim_budget_years);
  for (std::size_t i = 0; i < spec.populations.size() && i < pops->size(); ++i) {
    const auto& pop = spec.populations[i];
    if (pop.kind != sim::AgentKind::investagent) continue;
    const auto* t = pops->get_as<toml::table>(i);
    const std::string prefix = fmt::format("population[{}]", i);
    if (spec.run.steps_per_year != 1 || T != std::round(T) || T < 1.0 || T > max_years) {
      c.report(
          t->get("kind"), prefix + ".kind",
          fmt::format("kind = \"investagent\" needs run.steps_per_year = 1 and run.horizon a whole number of "
                      "years in 1..{} (one answer per year over the reference budgets), got horizon {} with "
                      "steps_per_year {}",
                      sim_budget_years, T, spec.run.steps_per_year));
    } else if (pop.protocol == sim::InvestProtocol::relative && T < 2.0) {
      c.report(t->contains("protocol") ? t->get("protocol") : t->get("kind"), prefix + ".protocol",
               "protocol = \"relative\" needs run.horizon >= 2 years (T - 1 changes)");
    }
  }
}

/// Peers with policy replan solve the whole network's game on every path and step: the population size and
/// paths x steps are capped (agents/herd_agent.hpp). Reported at each such population's policy.
void check_peers_replan(Checker& c, const toml::table& root, const sim::ScenarioSpec& spec) {
  const auto* pops = root.get_as<toml::array>("population");
  if (pops == nullptr) return;
  for (std::size_t i = 0; i < spec.populations.size() && i < pops->size(); ++i) {
    const auto& pop = spec.populations[i];
    if (pop.kind != sim::AgentKind::herd || pop.influence != sim::Influence::peers ||
        pop.policy != sim::Policy::replan || pop.herd != sim::HerdType::relative ||
        pop.count <= agents::kPeersReplanMaxAgentsRelative)
      continue;
    c.report(
        pops->get_as<toml::table>(i)->get("policy"), fmt::format("population[{}].policy", i),
        fmt::format("policy = \"replan\" with influence = \"peers\" and herd = \"relative\" solves the "
                    "whole network's game on every path and step: at most {} agents, got count = {}; use "
                    "\"plan\" or \"adaptive\"",
                    agents::kPeersReplanMaxAgentsRelative, pop.count));
  }
}

/// The spec of a tree whose overrides and sweep values are applied and whose [sweep] is removed.
sim::ScenarioSpec validate(Checker& c, const toml::table& root) {
  sim::ScenarioSpec spec;
  c.check_keys(root, "", {"run", "market", "population", "record", "sweep"});
  bool run_paths_ok = true;
  if (const auto* t = c.table(root, "", "run")) {
    const auto before = c.problems.size();
    read_run(c, *t, spec.run);
    run_paths_ok = std::none_of(c.problems.begin() + static_cast<std::ptrdiff_t>(before), c.problems.end(),
                                [](const auto& p) { return p.key_path == "run.paths"; });
  }
  if (const auto* t = c.table(root, "", "market")) read_market(c, *t, spec.market);

  const auto* pops = root.get("population");
  if (pops == nullptr) {
    c.report(nullptr, "population", "at least one [[population]] is required");
  } else if (!pops->is_array_of_tables() || pops->as_array()->empty()) {
    c.report(pops, "population",
             fmt::format("must be an array of tables, one [[population]] each, got {}", describe(*pops)));
  } else {
    std::map<std::string, std::size_t> index_of;
    const auto& arr = *pops->as_array();
    for (std::size_t i = 0; i < arr.size(); ++i) {
      const auto& t = *arr.get_as<toml::table>(i);
      spec.populations.push_back(read_population(c, t, i));
      const auto& name = spec.populations.back().name;
      if (name.empty()) continue;
      if (const auto [it, fresh] = index_of.emplace(name, i); !fresh)
        c.report(t.get("name"), fmt::format("population[{}].name", i),
                 fmt::format("duplicate name \"{}\" (also population[{}])", name, it->second));
    }
    for (std::size_t i = 0; i < arr.size(); ++i) {
      const auto& pop = spec.populations[i];
      const auto* node = arr.get_as<toml::table>(i)->get("leader");
      if (node == nullptr || pop.leader.empty() ||
          (pop.kind != sim::AgentKind::herd && pop.kind != sim::AgentKind::investagent))
        continue;
      const auto it = index_of.find(pop.leader);
      if (it == index_of.end())
        c.report(node, fmt::format("population[{}].leader", i),
                 fmt::format("there is no population named \"{}\"", pop.leader));
      else if (spec.populations[it->second].kind != sim::AgentKind::merton)
        c.report(node, fmt::format("population[{}].leader", i),
                 fmt::format("\"{}\" is not a merton population; a leader must be one", pop.leader));
    }
  }
  if (const auto* t = c.table(root, "", "record"))
    read_record(c, *t, spec.record, run_paths_ok ? std::optional(spec.run.paths) : std::nullopt);
  check_investagent_time(c, root, spec);
  check_peers_replan(c, root, spec);
  return spec;
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
  {
    auto root = parse_text(text, source_name);
    apply_overrides(root, overrides, c);
    for (const auto& axis : collect_sweep(root, c)) sizes.push_back(axis.values->size());
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
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("cannot open scenario file '{}'", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw IoError(fmt::format("cannot read scenario file '{}'", path));
  return parse_scenario(text.str(), path, overrides);
}

}  // namespace herdsim::io
