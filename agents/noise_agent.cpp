#include "agents/noise_agent.hpp"

#include <array>

#include "agents/agent_support.hpp"
#include "agents/parameters.hpp"

namespace herdsim::agents {

namespace {

class NoiseKind final : public Kind {
 public:
  [[nodiscard]] std::string_view name() const override { return NoiseParams::kind; }
  [[nodiscard]] std::span<const KeyInfo> keys() const override { return keys_; }
  [[nodiscard]] std::any read(KeyReader& in, const sim::PopulationSpec& /*common*/) const override {
    NoiseParams p;
    if (in.require("proportion", for_kind(name())))
      p.proportion = in.param("proportion", direct(any_number)).value_or(p.proportion);
    return p;
  }
  [[nodiscard]] std::unique_ptr<sim::Population> make(
      const sim::ScenarioSpec& spec, int index,
      const inference::BackendFactory& /*backends*/) const override {
    return std::make_unique<NoisePopulation>(spec, index);
  }
  [[nodiscard]] std::vector<std::string> recorded_params(const sim::PopulationSpec& ps) const override {
    if (params_of<NoiseParams>(ps).proportion.form == sim::ParamSpec::Form::distribution) return {"wealth0"};
    return {"wealth0", "proportion"};
  }
  [[nodiscard]] InvestorDraws investor_draws(const sim::PopulationSpec& ps) const override {
    const NoiseParams& np = params_of<NoiseParams>(ps);
    InvestorDraws out{{{"wealth0", &ps.wealth}}, theory::lottery_win10_sure3};
    // A drawn proportion is drawn every step, not per investor; grid order: wealth, proportion.
    if (np.proportion.form != sim::ParamSpec::Form::distribution)
      out.params.push_back({"proportion", &np.proportion});
    return out;
  }

 private:
  static constexpr std::array<KeyInfo, 1> keys_{{
      {"proportion", "of wealth in the stock: fixed per agent, or a distribution drawn every step"},
  }};
};

}  // namespace

std::unique_ptr<Kind> make_noise_kind() {
  return std::make_unique<NoiseKind>();
}

NoisePopulation::NoisePopulation(const sim::ScenarioSpec& spec, int index)
    : spec_(spec),
      ps_(spec.populations[static_cast<std::size_t>(index)]),
      np_(params_of<NoiseParams>(ps_)),
      index_(index),
      drawn_(np_.proportion.form == sim::ParamSpec::Form::distribution) {}

void NoisePopulation::initialize(const sim::RunState& /*state*/, sim::PopulationState& own) {
  own.params = investor_values(spec_, index_);
  set_initial_wealth(own);
}

void NoisePopulation::decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                             sim::PopulationState& own) const {
  if (own.amount.cols() != own.wealth.cols()) {
    decide_assets(ctx, p0, p1, a0, a1, own);
    return;
  }
  if (!drawn_) {
    const Eigen::VectorXd& proportion = param(own, "proportion");
    for (int p = p0; p < p1; ++p) {
      own.amount.col(p).segment(a0, a1 - a0) =
          proportion.segment(a0, a1 - a0).cwiseProduct(own.wealth.col(p).segment(a0, a1 - a0));
    }
    return;
  }
  // Key (path, step, population << 32 | agent), the global agent (PopulationSpec::first_agent + i):
  // independent of who else is simulated and of an agent split.
  const auto base = (static_cast<std::uint64_t>(index_) << 32) + static_cast<std::uint64_t>(ps_.first_agent);
  for (int p = p0; p < p1; ++p) {
    for (int i = a0; i < a1; ++i) {
      const double u =
          ctx.rng->uniform(sim::Stream::noise, static_cast<std::uint64_t>(ctx.first_path + p),
                           static_cast<std::uint64_t>(ctx.step), base + static_cast<std::uint64_t>(i));
      own.amount(i, p) = sample_distribution(np_.proportion.distribution, u) * own.wealth(i, p);
    }
  }
}

void NoisePopulation::decide_assets(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                                    sim::PopulationState& own) const {
  const Eigen::Index paths = own.wealth.cols();
  const Eigen::Index assets = own.amount.cols() / paths;
  const double share = 1.0 / static_cast<double>(assets);
  const auto base = (static_cast<std::uint64_t>(index_) << 32) + static_cast<std::uint64_t>(ps_.first_agent);
  const Eigen::VectorXd* fixed = drawn_ ? nullptr : &param(own, "proportion");
  for (Eigen::Index a = 0; a < assets; ++a) {
    for (int p = p0; p < p1; ++p) {
      for (int i = a0; i < a1; ++i) {
        double q = 0.0;
        if (drawn_) {
          // Lane a: asset a's draw, independent of the other assets' (asset 0's is the one-asset draw).
          const double u =
              ctx.rng->uniform(sim::Stream::noise, static_cast<std::uint64_t>(ctx.first_path + p),
                               static_cast<std::uint64_t>(ctx.step), base + static_cast<std::uint64_t>(i),
                               static_cast<std::uint64_t>(a));
          q = sample_distribution(np_.proportion.distribution, u);
        } else {
          q = (*fixed)[i];
        }
        own.amount(i, a * paths + p) = q * share * own.wealth(i, p);
      }
    }
  }
}

}  // namespace herdsim::agents
