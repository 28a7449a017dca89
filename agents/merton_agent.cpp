#include "agents/merton_agent.hpp"

#include <array>

#include "agents/agent_support.hpp"
#include "agents/parameters.hpp"
#include "sim/market/asset_covariance.hpp"
#include "sim/theory/merton.hpp"

namespace herdsim::agents {

namespace {

class MertonKind final : public Kind {
 public:
  [[nodiscard]] std::string_view name() const override { return MertonParams::kind; }
  [[nodiscard]] std::span<const KeyInfo> keys() const override { return keys_; }
  [[nodiscard]] std::any read(KeyReader& in, const sim::PopulationSpec& common) const override {
    MertonParams p;
    read_alpha(in, common, p.alpha, p.lottery, LotteryKey::with_lottery_prob_only);
    p.optimum = in.choice<Optimum>("optimum").value_or(Optimum::discrete);
    const auto policy = in.choice<Policy>("policy");
    p.policy = policy.value_or(Policy::plan);
    if (policy == Policy::adaptive)
      in.report("policy", "policy = \"adaptive\" applies only to herd populations");
    return p;
  }
  [[nodiscard]] std::unique_ptr<sim::Population> make(
      const sim::ScenarioSpec& spec, int index,
      const inference::BackendFactory& /*backends*/) const override {
    return std::make_unique<MertonPopulation>(spec, index);
  }
  [[nodiscard]] std::vector<std::string> recorded_params(const sim::PopulationSpec& ps) const override {
    std::vector<std::string> out{"alpha", "wealth0"};
    for (std::string& name : questionnaire_names(investor_draws(ps))) out.push_back(std::move(name));
    return out;
  }
  [[nodiscard]] InvestorDraws investor_draws(const sim::PopulationSpec& ps) const override {
    return {merton_params(ps), params_of<MertonParams>(ps).lottery};
  }

 private:
  static constexpr std::array<KeyInfo, 4> keys_{{
      {"alpha", "CARA risk aversion, per currency unit (or {lottery_prob = ...})"},
      {"lottery", "lottery convention of alpha = {lottery_prob = ...}: win10_sure3 or win20_sure6"},
      {"policy", "plan or replan (the same for a Merton investor)"},
      {"optimum", "discrete (the simulated steps) or continuous"},
  }};
};

}  // namespace

std::unique_ptr<Kind> make_merton_kind() {
  return std::make_unique<MertonKind>();
}

std::vector<NamedParam> merton_params(const sim::PopulationSpec& ps) {
  return {{"alpha", &params_of<MertonParams>(ps).alpha}, {"wealth0", &ps.wealth}};
}

Eigen::VectorXd leader_alpha_of(const sim::ScenarioSpec& spec, int leader, int followers,
                                int first_follower) {
  const sim::PopulationSpec& ps = spec.populations[static_cast<std::size_t>(leader)];
  if (ps.agent_block())
    throw Error(
        fmt::format("population '{}' leads others and is split into blocks of agents: a leader is "
                    "replicated on every rank of an agent split",
                    ps.name));
  const auto params = investor_values(spec, leader);  // alpha first
  Eigen::VectorXd out(followers);
  for (int i = 0; i < followers; ++i) out[i] = params[0].second[(first_follower + i) % ps.count];
  return out;
}

MertonPopulation::MertonPopulation(const sim::ScenarioSpec& spec, int index) : spec_(spec), index_(index) {}

void MertonPopulation::initialize(const sim::RunState& /*state*/, sim::PopulationState& own) {
  const sim::PopulationSpec& ps = spec_.populations[static_cast<std::size_t>(index_)];
  const MertonParams& mp = params_of<MertonParams>(ps);
  own.params = investor_values(spec_, index_);
  for (auto& q : questionnaire_values(spec_, index_)) own.params.push_back(std::move(q));
  set_initial_wealth(own);
  const theory::Schedule schedule(theory_market(spec_), spec_.run.horizon, theory_time(spec_, mp.optimum));
  const Eigen::VectorXd& alpha = param(own, "alpha");
  if (spec_.market.asset_count() == 1) {
    own.theory_amount = theory::merton_amounts(schedule, alpha, spec_.run.steps(), spec_.run.dt());
  } else {
    own.theory_amount = theory::merton_amounts(schedule, sim::asset_covariance(spec_.market),
                                               sim::asset_excess_returns(spec_.market), alpha,
                                               spec_.run.steps(), spec_.run.dt());
  }
}

void MertonPopulation::decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                              sim::PopulationState& own) const {
  play_plan(ctx, p0, p1, a0, a1, own);
}

}  // namespace herdsim::agents
