#include "agents/fundamentalist_agent.hpp"

#include <array>
#include <cmath>

#include "agents/agent_support.hpp"
#include "agents/parameters.hpp"

namespace herdsim::agents {

namespace {

class FundamentalistKind final : public Kind {
 public:
  [[nodiscard]] std::string_view name() const override { return FundamentalistParams::kind; }
  [[nodiscard]] std::span<const KeyInfo> keys() const override { return keys_; }
  [[nodiscard]] std::any read(KeyReader& in, const sim::PopulationSpec& /*common*/) const override {
    FundamentalistParams p;
    if (in.require("kappa", for_kind(name())))
      p.kappa = in.param("kappa", direct(non_negative)).value_or(p.kappa);
    p.max_proportion = in.number("max_proportion", positive).value_or(p.max_proportion);
    return p;
  }
  [[nodiscard]] std::unique_ptr<sim::Population> make(
      const sim::ScenarioSpec& spec, int index,
      const inference::BackendFactory& /*backends*/) const override {
    return std::make_unique<FundamentalistPopulation>(spec, index);
  }
  [[nodiscard]] std::vector<std::string> recorded_params(const sim::PopulationSpec& /*ps*/) const override {
    return {"wealth0", "kappa"};
  }
  [[nodiscard]] InvestorDraws investor_draws(const sim::PopulationSpec& ps) const override {
    return {{{"wealth0", &ps.wealth}, {"kappa", &params_of<FundamentalistParams>(ps).kappa}},
            theory::lottery_win10_sure3};
  }

 private:
  static constexpr std::array<KeyInfo, 2> keys_{{
      {"kappa", "proportion of wealth per unit of log mispricing ln(F/S), >= 0"},
      {"max_proportion", "cap on |amount| / wealth in each asset (default 1)"},
  }};
};

}  // namespace

std::unique_ptr<Kind> make_fundamentalist_kind() {
  return std::make_unique<FundamentalistKind>();
}

double fundamentalist_proportion(double kappa, double fundamental, double price) {
  const double gap = std::log(fundamental / price);
  // kappa = 0 holds nothing even where the gap is infinite (a price at a floor of 0).
  return kappa == 0.0 ? 0.0 : kappa * gap;
}

FundamentalistPopulation::FundamentalistPopulation(const sim::ScenarioSpec& spec, int index)
    : spec_(spec),
      fp_(params_of<FundamentalistParams>(spec.populations[static_cast<std::size_t>(index)])),
      index_(index) {}

void FundamentalistPopulation::initialize(const sim::RunState& /*state*/, sim::PopulationState& own) {
  own.params = investor_values(spec_, index_);
  set_initial_wealth(own);
}

void FundamentalistPopulation::decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                                      sim::PopulationState& own) const {
  const sim::MarketState& market = ctx.state->market;
  const Eigen::Index paths = own.wealth.cols();
  const Eigen::Index assets = own.amount.cols() / paths;
  const Eigen::VectorXd& kappa = param(own, "kappa");
  // The exogenous market keeps no fundamental: it is the price, so every agent holds nothing.
  const bool exogenous = market.fundamental.size() == 0;
  for (Eigen::Index a = 0; a < assets; ++a) {
    for (int p = p0; p < p1; ++p) {
      const double s = market.price(p, a);
      const double f = exogenous ? s : market.fundamental(p, a);
      for (int i = a0; i < a1; ++i) {
        own.amount(i, a * paths + p) =
            capped_amount(fundamentalist_proportion(kappa[i], f, s), fp_.max_proportion, own.wealth(i, p));
      }
    }
  }
}

}  // namespace herdsim::agents
