#include "agents/kind.hpp"

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

void read_alpha(KeyReader& in, std::string_view kind, sim::ParamSpec& alpha,
                theory::LotteryConvention& lottery, LotteryKey lottery_key) {
  lottery = in.choice<theory::LotteryConvention>("lottery").value_or(theory::lottery_win10_sure3);
  if (in.require("alpha", for_kind(kind))) alpha = in.param("alpha", alpha_rule(lottery)).value_or(alpha);
  if (in.has("alpha") && in.valid("alpha") && in.valid("lottery")) check_alpha_limits(in, alpha, lottery);
  if (lottery_key == LotteryKey::with_lottery_prob_only && in.has("lottery") && in.valid("alpha") &&
      alpha.scale != sim::ParamSpec::Scale::lottery_prob)
    in.report("lottery", "applies only with alpha = { lottery_prob = ... }");
}

void read_theta(KeyReader& in, std::string_view kind, sim::ParamSpec& theta) {
  if (in.require("theta", for_kind(kind))) theta = in.param("theta", theta_rule()).value_or(theta);
}

int population_index(const sim::ScenarioSpec& spec, std::string_view name) {
  for (std::size_t i = 0; i < spec.populations.size(); ++i) {
    if (spec.populations[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

void check_population_ref(const sim::ScenarioSpec& spec, std::string_view key, const std::string& name,
                          std::string_view required_kind, KeyReporter& out) {
  if (!out.valid(key)) return;  // already reported where it was read
  if (name.empty()) {
    out.report(key, fmt::format("is required: the name of a {} population", required_kind));
    return;
  }
  const int index = population_index(spec, name);
  if (index < 0) {
    out.report(key, fmt::format("there is no population named \"{}\"", name));
  } else if (const std::string& kind = spec.populations[static_cast<std::size_t>(index)].kind;
             !kind.empty() && kind != required_kind) {  // empty: a kind already reported as unreadable
    out.report(key, fmt::format("\"{}\" is not a {} population; a {} must be one", name, required_kind, key));
  }
}

void check_one_asset(const sim::ScenarioSpec& spec, std::string_view kind, std::string_view why,
                     KeyReporter& out) {
  const int assets = spec.market.asset_count();
  if (assets > 1) {
    out.report("kind",
               fmt::format("kind = \"{}\" trades one risky asset ({}); this market has {}: use merton "
                           "or noise populations with several assets",
                           kind, why, assets));
  }
}

}  // namespace herdsim::agents
