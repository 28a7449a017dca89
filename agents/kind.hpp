#pragma once
// An agent kind declares itself (docs/adding-an-agent.md): its name, the keys of its [[population]]
// tables and how it reads and checks them, the population implementation it makes and the per-agent
// parameters it records. It reads through KeyReader, which io/ implements over the scenario file (kinds
// never see TOML), and reports through KeyReporter, which io/ turns into "FILE:LINE:COL: KEY: message"
// and the runtime into a ScenarioError. What every kind shares lives here: value domains, the per-agent
// parameter rules (alpha as a lottery probability, theta as a score), "is required", population
// references (a leader) and typed access to a population's parameters.
#include <any>
#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "agents/parameters.hpp"
#include "sim/enum_names.hpp"
#include "sim/error.hpp"
#include "sim/inference/backend.hpp"
#include "sim/population.hpp"
#include "sim/scenario_spec.hpp"
#include "sim/theory/market.hpp"

namespace herdsim::agents {

/// An interval of allowed values, open or closed at each end (infinite ends: unbounded).
struct Domain {
  double lo = -std::numeric_limits<double>::infinity();
  bool lo_open = true;
  double hi = std::numeric_limits<double>::infinity();
  bool hi_open = true;

  /// True for a finite v inside the interval.
  [[nodiscard]] bool contains(double v) const;
  /// "must lie in (0, 1]", "must be > 0", "must be a finite number".
  [[nodiscard]] std::string describe() const;
};

inline constexpr Domain any_number{};
inline constexpr Domain positive{0.0, true};
inline constexpr Domain non_negative{0.0, false};
inline constexpr Domain unit_interval{0.0, false, 1.0, false};

/// How a per-agent parameter may be given: values in `domain`, or, where scale_key is set, a table
/// {scale_key = values in scale_domain} whose values are mapped by `scale` (alpha from lottery
/// probabilities, theta from scores).
struct ParamRule {
  Domain domain;
  std::string_view scale_key;  ///< "" if none
  sim::ParamSpec::Scale scale = sim::ParamSpec::Scale::direct;
  Domain scale_domain;
};

/// Values in domain, no mapped scale.
[[nodiscard]] constexpr ParamRule direct(Domain domain) {
  return {domain, "", sim::ParamSpec::Scale::direct, any_number};
}
/// CARA alpha > 0, or {lottery_prob = p} with p in (sure/win, 1) under the convention.
[[nodiscard]] ParamRule alpha_rule(theory::LotteryConvention lottery);
/// Herding coefficient theta >= 0, or {score = s >= 0} (theta = s * 1e-8).
[[nodiscard]] ParamRule theta_rule();

/// Where a kind reports problems with the keys of one table. io/ places each at its key's line (or at
/// `fallback`'s where the key is absent, else at the table) with its key path; the runtime collects them
/// into one ScenarioError.
class KeyReporter {
 public:
  KeyReporter() = default;
  KeyReporter(const KeyReporter&) = delete;
  KeyReporter& operator=(const KeyReporter&) = delete;
  virtual ~KeyReporter() = default;

  /// A problem with key (a key of this table, or "" for the table itself).
  virtual void report(std::string_view key, std::string message, std::string_view fallback = {}) = 0;
  /// False where a problem with key was already reported: its value is then a default, so checks built
  /// on it are skipped rather than reported twice. Always true at run time.
  [[nodiscard]] virtual bool valid(std::string_view /*key*/) const { return true; }
};

/// One table of keys (a [[population]], or a table inside one) as a kind reads it. Each read reports its
/// own problems (wrong type, outside the domain) and then returns nullopt, so that every problem of a
/// file is reported at once.
class KeyReader : public KeyReporter {
 public:
  /// Whether the table has key.
  [[nodiscard]] virtual bool has(std::string_view key) const = 0;
  /// A number in domain.
  virtual std::optional<double> number(std::string_view key, const Domain& domain) = 0;
  /// An integer in [min, max].
  virtual std::optional<std::int64_t> integer(std::string_view key, std::int64_t min,
                                              std::int64_t max = std::numeric_limits<int>::max()) = 0;
  virtual std::optional<bool> boolean(std::string_view key) = 0;
  virtual std::optional<std::string> string(std::string_view key) = 0;
  /// An array of strings: the strings among its elements (others are reported as not "a string (item)");
  /// nullopt if absent or not an array ("an array of items").
  virtual std::optional<std::vector<std::string>> strings(std::string_view key, std::string_view item,
                                                          std::string_view items) = 0;
  /// A per-agent parameter: a number, a non-empty list, a distribution table {dist = ...}, or, where the
  /// rule has a scale key, {scale_key = any of those}.
  virtual std::optional<sim::ParamSpec> param(std::string_view key, const ParamRule& rule) = 0;
  /// The table under key: nullptr if absent, or (reported) not a table. Its key paths continue this one's.
  virtual std::unique_ptr<KeyReader> table(std::string_view key) = 0;
  /// Reports every key of this table that is not in allowed ("unknown key; allowed keys: ...").
  virtual void allow_only(std::span<const std::string_view> allowed) = 0;

  /// A string key spelling a value of E (its name table, sim/enum_names.hpp).
  template <Named E>
  std::optional<E> choice(std::string_view key) {
    const auto name = string(key);
    if (!name) return std::nullopt;
    if (const auto value = from_name<E>(*name)) return value;
    report(key, fmt::format("must be one of {}, got \"{}\"", quoted_names<E>(), *name));
    return std::nullopt;
  }

  /// Reports key as "is required<why>" where it is absent; true where present.
  bool require(std::string_view key, std::string_view why = {});
};

/// " for kind = \"name\"", the usual reason a key is required.
[[nodiscard]] std::string for_kind(std::string_view kind);

/// A key a kind accepts, for messages and docs.
struct KeyInfo {
  std::string_view name;
  std::string_view meaning;  ///< one line, with units
};

/// An agent kind: one per file pair under agents/ (or defined anywhere and registered with
/// register_kind). Stateless: a population's parameters are in its PopulationSpec, its run state in
/// RunState.
class Kind {
 public:
  Kind() = default;
  Kind(const Kind&) = delete;
  Kind& operator=(const Kind&) = delete;
  virtual ~Kind() = default;

  /// The `kind` value that selects it in a scenario; also the HDF5 `kind` attribute.
  [[nodiscard]] virtual std::string_view name() const = 0;
  /// Its keys besides the common ones (name, kind, count, wealth).
  [[nodiscard]] virtual std::span<const KeyInfo> keys() const = 0;
  /// Reads and checks its keys of one population (the common fields of `common` are read; `count` is
  /// meaningful where in.valid("count")). Returns its parameter type, stored in PopulationSpec::params.
  [[nodiscard]] virtual std::any read(KeyReader& in, const sim::PopulationSpec& common) const = 0;
  /// Checks that need the whole scenario ([run], other populations): run by the scenario loader, which
  /// reports with lines, and again before a simulation is built, for specs made in code.
  virtual void check(const sim::ScenarioSpec& /*spec*/, int /*index*/, KeyReporter& /*out*/) const {}
  /// The implementation of population `index` of a checked spec; backends: for LLM-backed kinds.
  [[nodiscard]] virtual std::unique_ptr<sim::Population> make(
      const sim::ScenarioSpec& spec, int index, const inference::BackendFactory& backends) const = 0;
  /// The per-agent parameters initialize() records (PopulationState::params, HDF5 params/), in order.
  [[nodiscard]] virtual std::vector<std::string> recorded_params(const sim::PopulationSpec& ps) const = 0;
  /// The investor parameters it draws (expand_params' list, in the order that keys the draws, and the
  /// lottery convention): what `investors = "NAME"` takes from population NAME (investor_values). None
  /// by default: a kind that draws investors declares them, and its initialize() uses investor_values.
  [[nodiscard]] virtual InvestorDraws investor_draws(const sim::PopulationSpec& /*ps*/) const { return {}; }
};

/// The common key that pairs a population with another's investors, and the keys it then takes from it.
inline constexpr std::string_view kInvestorsKey = "investors";
inline constexpr std::array<std::string_view, 4> kTakenWithInvestors{"alpha", "theta", "wealth", "lottery"};

/// The population whose draws population `index` shares: the end of its chain of `investors` (itself
/// when it has none). The spec must be checked (check_investors: no cycle).
[[nodiscard]] int investors_source(const sim::ScenarioSpec& spec, int index);
/// Checks `investors`: an existing other population, the same count, no cycle, and a source that draws
/// every investor parameter this population's kind needs.
void check_investors(const sim::ScenarioSpec& spec, int index, KeyReporter& out);
/// The investor parameters of population `index` (its kind's investor_draws, expanded): its own draws,
/// or, with `investors`, its source's (same values, agent for agent).
[[nodiscard]] std::vector<std::pair<std::string, Eigen::VectorXd>> investor_values(
    const sim::ScenarioSpec& spec, int index);

/// The questionnaire scales a kind's draws were given on, in draw order: `lottery_prob` where alpha was
/// given as {lottery_prob = ...}, `score` where theta was given as {score = ...} (a kind appends them to its
/// recorded_params). None for a paired population: its investors are recorded with its source.
[[nodiscard]] std::vector<std::string> questionnaire_names(const InvestorDraws& draws);
/// Their values for population `index` (the same grid positions and draws as investor_values, unmapped).
[[nodiscard]] std::vector<std::pair<std::string, Eigen::VectorXd>> questionnaire_values(
    const sim::ScenarioSpec& spec, int index);

/// Whether a `lottery` key needs alpha given as lottery probabilities (an investagent's prompt quotes the
/// lottery either way).
enum class LotteryKey { with_lottery_prob_only, always };
/// Reads `lottery` and the required `alpha` (a value, list, distribution or {lottery_prob = ...}).
/// Neither is required where common.investors is set (they are then taken from that population).
void read_alpha(KeyReader& in, const sim::PopulationSpec& common, sim::ParamSpec& alpha,
                theory::LotteryConvention& lottery, LotteryKey lottery_key);
/// Reports `alpha` where a value it takes (a constant, a list's values, a distribution's bounds; lottery
/// probabilities mapped) leaves the model's limits (theory::alpha_problem). An untruncated distribution's
/// tails are not checked here: an agent drawn outside fails at set-up with a SolverError naming it.
void check_alpha_limits(KeyReporter& out, const sim::ParamSpec& alpha, theory::LotteryConvention lottery);
/// Reads the required `theta` (a value, list, distribution or {score = ...}).
void read_theta(KeyReader& in, const sim::PopulationSpec& common, sim::ParamSpec& theta);

/// The registered kinds, in registration order (the built-in ones first).
[[nodiscard]] std::vector<const Kind*> registered_kinds();
/// The kind called name, or nullptr.
[[nodiscard]] const Kind* find_kind(std::string_view name);
/// Registers a kind; throws Error if its name is taken or empty.
void register_kind(std::unique_ptr<Kind> kind);
/// Removes a registered kind (tests; nothing may use it afterwards); a no-op for unknown names.
void unregister_kind(std::string_view name);
/// The registered kind of a population, throwing ScenarioError for an unknown name.
[[nodiscard]] const Kind& kind_of(const sim::PopulationSpec& ps);

/// A population's parameters as its kind's type P, or nullptr if it is of another kind.
template <class P>
[[nodiscard]] const P* params_if(const sim::PopulationSpec& ps) {
  return ps.kind == P::kind ? std::any_cast<P>(&ps.params) : nullptr;
}
/// A population's parameters as its kind's type P (throws Error if it is of another kind).
template <class P>
[[nodiscard]] const P& params_of(const sim::PopulationSpec& ps) {
  if (const P* p = params_if<P>(ps)) return *p;
  throw Error(fmt::format("population '{}' of kind '{}' has no {} parameters", ps.name, ps.kind, P::kind));
}
template <class P>
[[nodiscard]] P& params_of(sim::PopulationSpec& ps) {
  if (P* p = ps.kind == P::kind ? std::any_cast<P>(&ps.params) : nullptr) return *p;
  throw Error(fmt::format("population '{}' of kind '{}' has no {} parameters", ps.name, ps.kind, P::kind));
}
/// A population of P's kind (code-built specs: tests, benchmarks).
template <class P>
[[nodiscard]] sim::PopulationSpec population_spec(std::string name, int count, P params,
                                                  sim::ParamSpec wealth) {
  sim::PopulationSpec ps;
  ps.name = std::move(name);
  ps.kind = std::string(P::kind);
  ps.count = count;
  ps.wealth = std::move(wealth);
  ps.params = std::move(params);
  return ps;
}

/// The index of the population called name, or -1.
[[nodiscard]] int population_index(const sim::ScenarioSpec& spec, std::string_view name);
/// Checks that `key`'s value `name` names another population (not `self`) of one of `allowed_kinds` (a
/// leader): "is required", "... is this population", "there is no population named ...", "... is a
/// population of kind ...". Returns the named population's kind, or an empty view when it reported (or
/// the kind was already reported as unreadable).
std::string_view check_population_ref(const sim::ScenarioSpec& spec, std::string_view key,
                                      const std::string& name, const std::string& self,
                                      std::span<const std::string_view> allowed_kinds, KeyReporter& out);

}  // namespace herdsim::agents
