#include "agents/chartist_agent.hpp"

#include <array>
#include <cmath>
#include <string>

#include "agents/agent_support.hpp"
#include "agents/parameters.hpp"

namespace herdsim::agents {

namespace {

constexpr std::string_view kTrend = "trend";

/// (0, 1]: the moving average's weight.
constexpr Domain weight_domain{0.0, true, 1.0, false};

class ChartistKind final : public Kind {
 public:
  [[nodiscard]] std::string_view name() const override { return ChartistParams::kind; }
  [[nodiscard]] std::span<const KeyInfo> keys() const override { return keys_; }
  [[nodiscard]] std::any read(KeyReader& in, const sim::PopulationSpec& /*common*/) const override {
    ChartistParams p;
    if (in.require("chi", for_kind(name()))) p.chi = in.param("chi", direct(any_number)).value_or(p.chi);
    p.trend_weight = in.number("trend_weight", weight_domain).value_or(p.trend_weight);
    p.max_proportion = in.number("max_proportion", positive).value_or(p.max_proportion);
    return p;
  }
  [[nodiscard]] std::unique_ptr<sim::Population> make(
      const sim::ScenarioSpec& spec, int index,
      const inference::BackendFactory& /*backends*/) const override {
    return std::make_unique<ChartistPopulation>(spec, index);
  }
  [[nodiscard]] std::vector<std::string> recorded_params(const sim::PopulationSpec& /*ps*/) const override {
    return {"wealth0", "chi"};
  }
  [[nodiscard]] InvestorDraws investor_draws(const sim::PopulationSpec& ps) const override {
    return {{{"wealth0", &ps.wealth}, {"chi", &params_of<ChartistParams>(ps).chi}},
            theory::lottery_win10_sure3};
  }

 private:
  static constexpr std::array<KeyInfo, 3> keys_{{
      {"chi", "proportion of wealth per unit of trend (log return per year); < 0 trades against it"},
      {"trend_weight",
       "weight of the latest log return in the trend's moving average, in (0, 1] (default 1)"},
      {"max_proportion", "cap on |amount| / wealth in each asset (default 1)"},
  }};
};

}  // namespace

std::unique_ptr<Kind> make_chartist_kind() {
  return std::make_unique<ChartistKind>();
}

double chartist_trend(double trend, double weight, double simple_return) {
  if (!(simple_return > -1.0)) return trend;
  return (1.0 - weight) * trend + weight * std::log1p(simple_return);
}

ChartistPopulation::ChartistPopulation(const sim::ScenarioSpec& spec, int index)
    : spec_(spec),
      cp_(params_of<ChartistParams>(spec.populations[static_cast<std::size_t>(index)])),
      index_(index) {}

void ChartistPopulation::initialize(const sim::RunState& state, sim::PopulationState& own) {
  own.params = investor_values(spec_, index_);
  set_initial_wealth(own);
  add_kind_state(own, std::string(kTrend), state.paths, state.market.assets());
}

void ChartistPopulation::prepare_step(const sim::DecisionContext& ctx, sim::PopulationState& own) {
  // Serial and O(paths x assets): the average every agent of a path reads, updated once per step (step 0
  // reads the initial return 0, so m stays 0 and nobody holds anything at the first decision).
  const Eigen::MatrixXd& last = ctx.state->market.simple_return;
  Eigen::MatrixXd& trend = kind_state(own, kTrend);
  for (Eigen::Index a = 0; a < trend.cols(); ++a)
    for (Eigen::Index p = 0; p < trend.rows(); ++p)
      trend(p, a) = chartist_trend(trend(p, a), cp_.trend_weight, last(p, a));
}

void ChartistPopulation::decide(const sim::DecisionContext& /*ctx*/, int p0, int p1, int a0, int a1,
                                sim::PopulationState& own) const {
  const Eigen::Index paths = own.wealth.cols();
  const Eigen::Index assets = own.amount.cols() / paths;
  const Eigen::VectorXd& chi = param(own, "chi");
  const Eigen::MatrixXd& trend = kind_state(own, kTrend);
  const auto per_year = static_cast<double>(spec_.run.steps_per_year);  // 1 / dt
  for (Eigen::Index a = 0; a < assets; ++a) {
    for (int p = p0; p < p1; ++p) {
      const double annual = trend(p, a) * per_year;
      for (int i = a0; i < a1; ++i)
        own.amount(i, a * paths + p) = capped_amount(chi[i] * annual, cp_.max_proportion, own.wealth(i, p));
    }
  }
}

}  // namespace herdsim::agents
