#include "agents/kind.hpp"

#include "sim/plural.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace herdsim::agents {

bool Domain::contains(double v) const {
  return std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
}

std::string Domain::describe() const {
  if (std::isfinite(lo) && std::isfinite(hi))
    return fmt::format("must lie in {}{}, {}{}", lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']');
  if (std::isfinite(lo)) return fmt::format("must be {} {}", lo_open ? ">" : ">=", lo);
  if (std::isfinite(hi)) return fmt::format("must be {} {}", hi_open ? "<" : "<=", hi);
  return "must be a finite number";
}

ParamRule alpha_rule(theory::LotteryConvention lottery) {
  // p(alpha) falls from 1 (alpha -> 0+) to sure/win (alpha -> infinity): both ends open.
  return {positive, "lottery_prob", sim::ParamSpec::Scale::lottery_prob,
          Domain{lottery.sure / lottery.win, true, 1.0, true}};
}

ParamRule theta_rule() {
  return {non_negative, "score", sim::ParamSpec::Scale::score, non_negative};
}

bool KeyReader::require(std::string_view key, std::string_view why) {
  if (has(key)) return true;
  report(key, fmt::format("is required{}", why));
  return false;
}

std::string for_kind(std::string_view kind) {
  return fmt::format(" for kind = \"{}\"", kind);
}

void check_alpha_limits(KeyReporter& out, const sim::ParamSpec& alpha, theory::LotteryConvention lottery) {
  std::vector<double> given;  // the values alpha takes, or the bounds of its distribution's support
  if (alpha.form == sim::ParamSpec::Form::constant) given.push_back(alpha.value);
  if (alpha.form == sim::ParamSpec::Form::list) given = alpha.values;
  if (alpha.form == sim::ParamSpec::Form::distribution) {
    const auto& d = alpha.distribution;
    if (d.kind == sim::DistributionSpec::Kind::uniform) given = {d.a, d.b};
    if (d.low) given.push_back(*d.low);
    if (d.high) given.push_back(*d.high);
  }
  for (const double v : given) {
    const double a =
        alpha.scale == sim::ParamSpec::Scale::lottery_prob ? theory::alpha_from_lottery_prob(v, lottery) : v;
    if (const std::string problem = theory::alpha_problem(a); !problem.empty()) {
      out.report("alpha", alpha.scale == sim::ParamSpec::Scale::lottery_prob
                              ? fmt::format("lottery_prob {} maps to {}", v, problem)
                              : problem);
      return;
    }
  }
}

void read_alpha(KeyReader& in, const sim::PopulationSpec& common, sim::ParamSpec& alpha,
                theory::LotteryConvention& lottery, LotteryKey lottery_key) {
  lottery = in.choice<theory::LotteryConvention>("lottery").value_or(theory::lottery_win10_sure3);
  if (!common.investors.empty()) return;  // taken from the source (io reports the key if given)
  if (in.require("alpha", for_kind(common.kind)))
    alpha = in.param("alpha", alpha_rule(lottery)).value_or(alpha);
  if (in.has("alpha") && in.valid("alpha") && in.valid("lottery")) check_alpha_limits(in, alpha, lottery);
  if (lottery_key == LotteryKey::with_lottery_prob_only && in.has("lottery") && in.valid("alpha") &&
      alpha.scale != sim::ParamSpec::Scale::lottery_prob)
    in.report("lottery", "applies only with alpha = { lottery_prob = ... }");
}

void read_theta(KeyReader& in, const sim::PopulationSpec& common, sim::ParamSpec& theta) {
  if (!common.investors.empty()) return;
  if (in.require("theta", for_kind(common.kind))) theta = in.param("theta", theta_rule()).value_or(theta);
}

int population_index(const sim::ScenarioSpec& spec, std::string_view name) {
  for (std::size_t i = 0; i < spec.populations.size(); ++i) {
    if (spec.populations[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

int investors_source(const sim::ScenarioSpec& spec, int index) {
  // Checked specs have no cycle; the bound keeps an unchecked one from looping.
  for (std::size_t hops = 0; hops <= spec.populations.size(); ++hops) {
    const std::string& source = spec.populations[static_cast<std::size_t>(index)].investors;
    const int next = source.empty() ? -1 : population_index(spec, source);
    if (next < 0) return index;
    index = next;
  }
  throw ScenarioError(fmt::format("population '{}': its investors form a cycle",
                                  spec.populations[static_cast<std::size_t>(index)].name));
}

void check_investors(const sim::ScenarioSpec& spec, int index, KeyReporter& out) {
  const sim::PopulationSpec& ps = spec.populations[static_cast<std::size_t>(index)];
  if (ps.investors.empty() || !out.valid(kInvestorsKey)) return;
  const int source = population_index(spec, ps.investors);
  if (source < 0) {
    out.report(kInvestorsKey, fmt::format("there is no population named \"{}\"", ps.investors));
    return;
  }
  if (source == index) {
    out.report(kInvestorsKey, "names the population itself; name another population whose investors to take");
    return;
  }
  // Follow the chain: a cycle has no population that draws the investors.
  std::vector<int> seen{index};
  for (int at = source; at >= 0;) {
    if (std::find(seen.begin(), seen.end(), at) != seen.end()) {
      std::string chain;
      for (const int i : seen)
        chain += fmt::format("\"{}\" -> ", spec.populations[static_cast<std::size_t>(i)].name);
      out.report(kInvestorsKey,
                 fmt::format("forms a cycle ({}\"{}\"): one population must draw its own investors", chain,
                             spec.populations[static_cast<std::size_t>(at)].name));
      return;
    }
    seen.push_back(at);
    const std::string& next = spec.populations[static_cast<std::size_t>(at)].investors;
    at = next.empty() ? -1 : population_index(spec, next);
  }
  const sim::PopulationSpec& src = spec.populations[static_cast<std::size_t>(source)];
  if (out.valid("count") && src.count != ps.count) {
    out.report(kInvestorsKey,
               fmt::format("population \"{}\" has {} but this one has {}: paired populations "
                           "need the same count",
                           src.name, sim::counted(src.count, "agent"), ps.count),
               "count");
    return;
  }
  const sim::PopulationSpec& root = spec.populations[static_cast<std::size_t>(seen.back())];
  const Kind* own_kind = find_kind(ps.kind);
  const Kind* root_kind = find_kind(root.kind);
  if (own_kind == nullptr || root_kind == nullptr || !ps.params.has_value() || !root.params.has_value())
    return;
  const InvestorDraws theirs = root_kind->investor_draws(root);
  for (const NamedParam& p : own_kind->investor_draws(ps).params) {
    const bool found = std::any_of(theirs.params.begin(), theirs.params.end(),
                                   [&](const NamedParam& q) { return q.name == p.name; });
    if (!found)
      out.report(kInvestorsKey,
                 fmt::format("population \"{}\" (kind = \"{}\") draws no {} for a {} population to take",
                             root.name, root.kind, p.name, ps.kind));
  }
}

std::vector<std::string> questionnaire_names(const InvestorDraws& draws) {
  std::vector<std::string> out;
  for (const NamedParam& p : draws.params) {
    if (p.spec->scale == sim::ParamSpec::Scale::lottery_prob) out.emplace_back("lottery_prob");
    if (p.spec->scale == sim::ParamSpec::Scale::score) out.emplace_back("score");
  }
  return out;
}

std::vector<std::pair<std::string, Eigen::VectorXd>> questionnaire_values(const sim::ScenarioSpec& spec,
                                                                          int index) {
  const sim::PopulationSpec& ps = spec.populations[static_cast<std::size_t>(index)];
  const InvestorDraws draws = kind_of(ps).investor_draws(ps);
  const auto raw =
      unscaled_values(draws.params, ps.count, index, sim::CounterRng(spec.run.seed), ps.first_agent);
  std::vector<std::pair<std::string, Eigen::VectorXd>> out;
  for (std::size_t j = 0; j < draws.params.size(); ++j) {
    if (draws.params[j].spec->scale == sim::ParamSpec::Scale::lottery_prob)
      out.emplace_back("lottery_prob", raw[j].second);
    if (draws.params[j].spec->scale == sim::ParamSpec::Scale::score) out.emplace_back("score", raw[j].second);
  }
  return out;
}

std::vector<std::pair<std::string, Eigen::VectorXd>> investor_values(const sim::ScenarioSpec& spec,
                                                                     int index) {
  const sim::CounterRng rng(spec.run.seed);
  const sim::PopulationSpec& ps = spec.populations[static_cast<std::size_t>(index)];
  const InvestorDraws own = kind_of(ps).investor_draws(ps);
  const int source = investors_source(spec, index);
  if (source == index) return expand_params(own.params, ps.count, index, rng, own.lottery, ps.first_agent);
  // The source's draws, keyed by its index and parameter positions: the same investors, value for value
  // (this population's agents of the source's: the same count, the same block in an agent split).
  const sim::PopulationSpec& src = spec.populations[static_cast<std::size_t>(source)];
  const InvestorDraws theirs = kind_of(src).investor_draws(src);
  auto drawn = expand_params(theirs.params, ps.count, source, rng, theirs.lottery, ps.first_agent);
  std::vector<std::pair<std::string, Eigen::VectorXd>> out;
  for (const NamedParam& p : own.params) {
    const auto it =
        std::find_if(drawn.begin(), drawn.end(), [&](const auto& d) { return d.first == p.name; });
    if (it == drawn.end() || it->second.size() != ps.count)
      throw ScenarioError(fmt::format("population '{}': investors = \"{}\" has no {} for {} agents", ps.name,
                                      ps.investors, p.name, ps.count));
    out.emplace_back(p.name, it->second);
  }
  return out;
}

std::string_view check_population_ref(const sim::ScenarioSpec& spec, std::string_view key,
                                      const std::string& name, const std::string& self,
                                      std::span<const std::string_view> allowed_kinds, KeyReporter& out) {
  if (!out.valid(key)) return {};  // already reported where it was read
  std::string kinds;               // "a merton population", "a merton, chartist or noise population"
  for (std::size_t i = 0; i < allowed_kinds.size(); ++i)
    kinds +=
        fmt::format("{}{}", i == 0 ? "" : (i + 1 == allowed_kinds.size() ? " or " : ", "), allowed_kinds[i]);
  if (name.empty()) {
    out.report(key, fmt::format("is required: the name of a {} population", kinds));
    return {};
  }
  if (name == self) {
    out.report(key, fmt::format("\"{}\" is this population: a population cannot follow itself", name));
    return {};
  }
  const int index = population_index(spec, name);
  if (index < 0) {
    out.report(key, fmt::format("there is no population named \"{}\"", name));
    return {};
  }
  const std::string& kind = spec.populations[static_cast<std::size_t>(index)].kind;
  if (kind.empty()) return {};  // a kind already reported as unreadable
  if (std::find(allowed_kinds.begin(), allowed_kinds.end(), kind) == allowed_kinds.end()) {
    out.report(key, fmt::format("\"{}\" is a population of kind \"{}\"; a {} must be a {} population", name,
                                kind, key, kinds));
    return {};
  }
  return kind;
}

}  // namespace herdsim::agents
