#include "agents/herd_agent.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <fmt/format.h>
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "agents/agent_support.hpp"
#include "agents/herd_rule.hpp"
#include "agents/merton_agent.hpp"
#include "agents/parameters.hpp"
#include "sim/error.hpp"
#include "sim/market/asset_covariance.hpp"
#include "sim/setup.hpp"
#include "sim/simulation.hpp"
#include "sim/theory/absolute_herd.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/mutual_game.hpp"
#include "sim/theory/relative_herd.hpp"
#include "sim/theory/relative_mutual.hpp"

namespace herdsim::agents {

namespace {

/// Kind-state names (agents/herd_agent.hpp).
constexpr std::string_view kSeenBefore = "seen_before";
constexpr std::string_view kReplanned = "replanned";

}  // namespace

namespace {

void read_network(KeyReader& in, NetworkSpec& network, int count) {
  using NetworkKind = NetworkSpec::Kind;
  if (!in.has("network")) {
    in.report("network", "is required with influence = \"peers\"");
    return;
  }
  const auto net = in.table("network");
  if (net == nullptr) return;
  static constexpr std::array<std::string_view, 3> keys{"kind", "k", "p"};
  net->allow_only(keys);
  net->require("kind");
  const auto kind = net->choice<NetworkKind>("kind");
  if (!kind) return;
  network.kind = *kind;
  const bool uses_k = *kind == NetworkKind::ring || *kind == NetworkKind::small_world;
  const bool uses_p = *kind == NetworkKind::erdos_renyi || *kind == NetworkKind::small_world;
  if (!uses_k && net->has("k"))
    net->report("k", fmt::format("does not apply to kind = \"{}\"", to_name(*kind)));
  if (!uses_p && net->has("p"))
    net->report("p", fmt::format("does not apply to kind = \"{}\"", to_name(*kind)));
  if (uses_p) network.p = net->number("p", unit_interval).value_or(network.p);
  if (uses_k) {
    const auto k = net->integer("k", 1);
    if (k) network.k = static_cast<int>(*k);
    if ((k || !net->has("k")) && in.valid("count") && 2LL * network.k >= count) {
      net->report("k",
                  fmt::format("needs 2k < count (k neighbours on each side), got k = {}{} with count = {}",
                              network.k, net->has("k") ? "" : " (default)", count));
    }
  }
  if (in.valid("count") && count < 2)
    in.report("count", fmt::format("influence = \"peers\" needs count >= 2, got {}", count));
}

/// A leader of any kind whose agents decide amounts in the step loop; plan and replan need the leader's
/// amounts in advance, which only a merton leader has (its deterministic Merton path, docs/theory.md §3);
/// the adaptive rule reacts to the amounts a leader of any of these kinds realised at the previous step.
void check_leader(const sim::ScenarioSpec& spec, const sim::PopulationSpec& ps, const HerdParams& p,
                  KeyReporter& out) {
  static constexpr std::array<std::string_view, 5> kLeaderKinds{MertonParams::kind, "chartist",
                                                                "fundamentalist", "noise", HerdParams::kind};
  const std::string_view kind = check_population_ref(spec, "leader", p.leader, ps.name, kLeaderKinds, out);
  if (kind.empty() || kind == MertonParams::kind) return;
  if (p.policy != Policy::adaptive && out.valid("policy")) {
    out.report("policy", fmt::format("policy = \"{}\"{} needs the leader's amounts over the whole horizon in "
                                     "advance, which only a merton leader has (its deterministic Merton "
                                     "path); leader \"{}\" is a {} population, whose amounts depend on the "
                                     "path: use policy = \"adaptive\", which follows the amounts the leader "
                                     "realised at the previous step",
                                     to_name(p.policy), p.policy == Policy::plan ? " (the default)" : "",
                                     p.leader, kind));
  }
}

class HerdKind final : public Kind {
 public:
  [[nodiscard]] std::string_view name() const override { return HerdParams::kind; }
  [[nodiscard]] std::span<const KeyInfo> keys() const override { return keys_; }

  [[nodiscard]] std::any read(KeyReader& in, const sim::PopulationSpec& common) const override {
    HerdParams p;
    read_alpha(in, common, p.alpha, p.lottery, LotteryKey::with_lottery_prob_only);
    read_theta(in, common, p.theta);
    auto herd = in.choice<HerdType>("herd");
    auto influence = in.choice<Influence>("influence");
    if (!in.has("herd")) herd = HerdType::absolute;
    if (!in.has("influence")) influence = Influence::leader;
    // Keys of one setting only (an unreadable herd or influence checks none of them).
    if (influence == Influence::peers && in.has("leader"))
      in.report("leader", "does not apply with influence = \"peers\" (peers follow their network)");
    if (influence == Influence::leader && in.has("network"))
      in.report("network", "does not apply with influence = \"leader\"");
    if (herd == HerdType::absolute && in.has("bc")) in.report("bc", "applies only to herd = \"relative\"");
    if (herd == HerdType::relative && in.has("rho")) in.report("rho", "applies only to herd = \"absolute\"");

    p.optimum = in.choice<Optimum>("optimum").value_or(Optimum::discrete);
    p.policy = in.choice<Policy>("policy").value_or(Policy::plan);
    p.herd = herd.value_or(HerdType::absolute);
    p.influence = influence.value_or(Influence::leader);
    if (p.herd == HerdType::relative)
      p.bc = in.choice<theory::BoundaryCondition>("bc").value_or(theory::BoundaryCondition::pinned);
    if (p.herd == HerdType::absolute) p.rho = in.number("rho", any_number).value_or(0.0);
    if (p.influence == Influence::leader) {
      in.require(
          "leader",
          " with influence = \"leader\": the name of a merton, chartist, fundamentalist, noise or herd "
          "population");
      p.leader = in.string("leader").value_or("");
    } else if (influence == Influence::peers) {
      read_network(in, p.network, common.count);
    }
    return p;
  }

  void check(const sim::ScenarioSpec& spec, int index, KeyReporter& out) const override {
    const sim::PopulationSpec& ps = spec.populations[static_cast<std::size_t>(index)];
    const HerdParams& p = params_of<HerdParams>(ps);
    if (p.influence == Influence::leader) check_leader(spec, ps, p, out);
    if (p.influence == Influence::peers && p.policy == Policy::replan && p.herd == HerdType::relative &&
        ps.count > kPeersReplanMaxAgentsRelative) {
      out.report(
          "policy",
          fmt::format("policy = \"replan\" with influence = \"peers\" and herd = \"relative\" solves the "
                      "whole network's game on every path and step: at most {} agents, got count = {}; use "
                      "\"plan\" or \"adaptive\"",
                      kPeersReplanMaxAgentsRelative, ps.count));
    }
  }

  [[nodiscard]] std::unique_ptr<sim::Population> make(
      const sim::ScenarioSpec& spec, int index,
      const inference::BackendFactory& /*backends*/) const override {
    return std::make_unique<HerdPopulation>(spec, index);
  }

  [[nodiscard]] std::vector<std::string> recorded_params(const sim::PopulationSpec& ps) const override {
    const bool leader = params_of<HerdParams>(ps).influence == Influence::leader;
    std::vector<std::string> out{"alpha", "theta", "wealth0", leader ? "leader_alpha" : "degree"};
    for (std::string& name : questionnaire_names(investor_draws(ps))) out.push_back(std::move(name));
    return out;
  }
  [[nodiscard]] InvestorDraws investor_draws(const sim::PopulationSpec& ps) const override {
    const HerdParams& hp = params_of<HerdParams>(ps);
    return {{{"alpha", &hp.alpha}, {"theta", &hp.theta}, {"wealth0", &ps.wealth}}, hp.lottery};
  }

 private:
  static constexpr std::array<KeyInfo, 11> keys_{{
      {"alpha", "CARA risk aversion, per currency unit (or {lottery_prob = ...})"},
      {"lottery", "lottery convention of alpha = {lottery_prob = ...}"},
      {"theta", "herding coefficient (or {score = ...}, theta = score * 1e-8)"},
      {"herd", "absolute or relative herding"},
      {"influence", "leader or peers"},
      {"leader", "influence = leader: a merton, chartist, fundamentalist, noise or herd population"},
      {"network", "influence = peers: {kind = all_to_all | ring | erdos_renyi | small_world, k, p}"},
      {"policy", "plan, replan or adaptive"},
      {"optimum", "discrete (the simulated steps) or continuous"},
      {"bc", "relative herding: pinned or natural end conditions"},
      {"rho", "absolute herding: time-weight exponent"},
  }};
};

}  // namespace

std::unique_ptr<Kind> make_herd_kind() {
  return std::make_unique<HerdKind>();
}

HerdPopulation::HerdPopulation(const sim::ScenarioSpec& spec, int index)
    : spec_(spec),
      ps_(spec.populations[static_cast<std::size_t>(index)]),
      hp_(params_of<HerdParams>(ps_)),
      index_(index),
      // Relative herding is solved in continuous time; its plans are sampled at the decision times.
      schedule_(theory_market(spec), spec.run.horizon,
                hp_.herd == HerdType::relative ? theory::TimeModel::continuous()
                                               : theory_time(spec, hp_.optimum)) {}

void HerdPopulation::initialize(const sim::RunState& state, sim::PopulationState& own) {
  const sim::CounterRng rng(spec_.run.seed);
  own.params = investor_values(spec_, index_);
  set_initial_wealth(own);
  alpha_ = param(own, "alpha");
  theta_ = param(own, "theta");
  assets_ = spec_.market.asset_count();
  if (assets_ > 1) {
    covariance_ = sim::asset_covariance(spec_.market);
    excess_ = sim::asset_excess_returns(spec_.market);
    basis_ = theory::asset_basis(covariance_, excess_);
  }

  const int n = spec_.run.steps();
  const double dt = spec_.run.dt();
  // The adaptive rule's constants follow `optimum` (the simulated steps by default) even for relative
  // herding, whose plan is the continuous optimum: an agent reacting to observed decisions in a
  // discrete market projects them with the market's own growth.
  const theory::Schedule rule(theory_market(spec_), spec_.run.horizon, theory_time(spec_, hp_.optimum));
  ln_growth_left_.resize(n);
  ln_growth_.resize(n);
  merton_unit_.resize(n);
  projection_.resize(n);
  for (int k = 0; k < n; ++k) {
    const double t = k * dt;
    ln_growth_[k] = rule.ln_growth(t);
    // Deposit growth from t_k to T: the terminal growth of the remaining horizon's schedule.
    ln_growth_left_[k] =
        theory::Schedule(rule.market(), spec_.run.horizon - t, rule.time()).ln_terminal_growth();
    merton_unit_[k] = theory::merton_amount(rule, 1.0, t);
    projection_[k] = k == 0 ? 1.0 : std::exp(rule.ln_growth(t - dt) - ln_growth_[k]);
  }

  if (hp_.influence == Influence::leader) {
    leader_index_ = population_index(spec_, hp_.leader);  // checked by HerdKind::check
    const sim::PopulationSpec& leader = spec_.populations[static_cast<std::size_t>(leader_index_)];
    if (leader.agent_block())
      throw Error(
          fmt::format("population '{}': its leader '{}' is split into blocks of agents; a leader is "
                      "replicated on every rank of an agent split",
                      ps_.name, leader.name));
    leader_count_ = leader.count;
    if (leader.kind == MertonParams::kind) {
      leader_alpha_ = leader_alpha_of(spec_, leader_index_, ps_.count, ps_.first_agent);
      own.params.emplace_back("leader_alpha", leader_alpha_);
      plan_with_leader(own);
    } else {
      // Another kind (adaptive policy only, HerdKind::check): it has no alpha and no plan to solve against;
      // the adaptive rule needs neither (its weights use the follower's own alpha and theta). leader_alpha
      // is NaN, no theory amounts are recorded.
      own.params.emplace_back("leader_alpha",
                              Eigen::VectorXd::Constant(ps_.count, std::numeric_limits<double>::quiet_NaN()));
    }
  } else {
    if (ps_.agent_block() && hp_.policy == Policy::replan)
      throw Error(
          fmt::format("population '{}': peers with policy = \"replan\" solve the whole network's game from "
                      "every agent's wealth; they are not split into blocks of agents",
                      ps_.name));
    // Paired populations share their source's network draws too (investors_source: index_ when unpaired).
    // A block of an agent split: the whole population's network, this block's rows.
    weights_ = build_network(hp_.network, theta_, investors_source(spec_, index_), rng, ps_.agents_total,
                             ps_.first_agent);
    Eigen::VectorXd degree(ps_.count);
    for (int i = 0; i < ps_.count; ++i) degree[i] = static_cast<double>(weights_.row(i).nonZeros());
    own.params.emplace_back("degree", degree);
    plan_with_peers(own);
  }
  // The questionnaire values it was specified with, beside alpha and theta (issue 15).
  for (auto& q : questionnaire_values(spec_, index_)) own.params.push_back(std::move(q));
  const double s2 = spec_.market.sigma * spec_.market.sigma;
  ln_vt_ = (theta_.array() / (alpha_.array() * s2)).log();  // log(0) = -inf: w = 1, own Merton
  if (leader_index_ < 0) {
    mean_weights_ = weights_;
    mean_weights_.makeCompressed();  // the adaptive rule walks its plain CSR arrays
    for (int i = 0; i < ps_.count; ++i) {
      if (weights_.row(i).nonZeros() == 0) ln_vt_[i] = -std::numeric_limits<double>::infinity();
      for (WeightMatrix::InnerIterator it(mean_weights_, i); it; ++it) it.valueRef() /= theta_[i];
    }
  }
  if (hp_.herd == HerdType::relative && hp_.policy == Policy::adaptive) {
    add_kind_state(own, std::string(kSeenBefore), ps_.count,
                   static_cast<Eigen::Index>(assets_) * state.paths);
  }
  if (assets_ > 1) {
    // The adaptive rule per coordinate j of the eigenbasis: ln(theta / (alpha lambda_j)), v~_j / lambda_j and
    // v' Sigma^{-1} v / 2 (docs/theory.md §7.1).
    ln_vt_assets_.resize(ps_.count, assets_);
    coordinate_unit_.resize(assets_);
    half_sharpe_ = 0.0;
    for (int j = 0; j < assets_; ++j) {
      const theory::Coordinate& c = basis_.coordinates[static_cast<std::size_t>(j)];
      const double lambda = c.sigma * c.sigma;
      ln_vt_assets_.col(j) = (theta_.array() / (alpha_.array() * lambda)).log();
      coordinate_unit_[j] = c.excess / lambda;
      half_sharpe_ += c.excess * c.excess / (2.0 * lambda);
    }
  }
  if (hp_.policy == Policy::replan && leader_index_ < 0) {
    add_kind_state(own, std::string(kReplanned), ps_.count, static_cast<Eigen::Index>(assets_) * state.paths);
  }
}

// One theory solve per distinct (alpha, alpha_L, theta, x0): grids of thousands of agents share a few.
void HerdPopulation::plan_with_leader(sim::PopulationState& own) {
  const Eigen::VectorXd& x0 = param(own, "wealth0");
  std::map<std::array<double, 4>, int> combo_of;
  std::vector<int> agent_combo(static_cast<std::size_t>(ps_.count));
  std::vector<std::array<double, 4>> combos;
  for (int i = 0; i < ps_.count; ++i) {
    const std::array<double, 4> key{alpha_[i], leader_alpha_[i], theta_[i], x0[i]};
    const auto [it, inserted] = combo_of.emplace(key, static_cast<int>(combos.size()));
    if (inserted) combos.push_back(key);
    agent_combo[static_cast<std::size_t>(i)] = it->second;
  }
  const int n = spec_.run.steps();
  // Row a n + k: asset a at decision k (one asset: row k).
  Eigen::MatrixXd table(static_cast<Eigen::Index>(assets_) * n, static_cast<Eigen::Index>(combos.size()));
  const std::string what = fmt::format("population '{}': plans", ps_.name);
  const int total = static_cast<int>(combos.size());
  std::atomic<int> solved{0};
  sim::setup_tick(what, 0, total);
  tbb::parallel_for(std::size_t{0}, combos.size(), [&](std::size_t c) {
    sim::setup_tick(what, solved.load(), total);  // Ctrl-C between solves
    theory::HerdProblem hp;
    hp.market = theory_market(spec_);
    hp.alpha = combos[c][0];
    hp.alpha_leader = combos[c][1];
    hp.theta = combos[c][2];
    hp.x0 = combos[c][3];
    hp.rho = hp_.rho;
    hp.horizon = spec_.run.horizon;
    hp.time = schedule_.time();
    const auto col = static_cast<Eigen::Index>(c);
    try {
      if (assets_ > 1) {
        // N assets (docs/theory.md §7.1): the leader's Merton vector, solved in the eigenbasis of Sigma.
        auto fill = [&](const auto& sol) {
          for (int k = 0; k < n; ++k) {
            const Eigen::VectorXd amounts = sol.amounts(k * spec_.run.dt());
            for (int a = 0; a < assets_; ++a) table(a * n + k, col) = amounts[a];
          }
        };
        if (hp_.herd == HerdType::absolute) {
          fill(theory::solve_absolute_herd(hp, covariance_, excess_));
        } else {
          theory::RelativeHerdOptions opt;
          opt.bc = hp_.bc;
          fill(theory::solve_relative_herd(hp, covariance_, excess_, opt));
        }
      } else if (hp_.herd == HerdType::absolute) {
        const auto sol = theory::solve_absolute_herd(hp);
        for (int k = 0; k < n; ++k) table(k, col) = sol.amount(k * spec_.run.dt());
      } else {
        theory::RelativeHerdOptions opt;
        opt.bc = hp_.bc;
        const auto sol = theory::solve_relative_herd(hp, opt);
        for (int k = 0; k < n; ++k) table(k, col) = sol.amount(k * spec_.run.dt());
      }
    } catch (const std::exception& e) {
      // Whatever the solver threw (its own errors, a Boost domain error): the agent is named; a parameter
      // outside a solver's domain stays bad input.
      const std::string message = fmt::format(
          "population '{}': the {} herding plan of an agent with alpha={}, leader alpha={}, theta={}, "
          "wealth0={} failed: {}",
          ps_.name, to_name(hp_.herd), hp.alpha, hp.alpha_leader, hp.theta, hp.x0, e.what());
      if (dynamic_cast<const InputError*>(&e) != nullptr) throw InputError(message);
      throw SolverError(message);
    }
    ++solved;
  });
  own.theory_amount.resize(ps_.count, table.rows());
  for (Eigen::Index k = 0; k < table.rows(); ++k) {
    for (int i = 0; i < ps_.count; ++i)
      own.theory_amount(i, k) = table(k, agent_combo[static_cast<std::size_t>(i)]);
  }
}

void HerdPopulation::plan_with_peers(sim::PopulationState& own) {
  const int agents = ps_.agent_block() ? ps_.agents_total : ps_.count;
  try {
    if (!ps_.agent_block()) {
      own.theory_amount = solve_peer_game(alpha_, param(own, "wealth0"), weights_);
      return;
    }
    // A block of an agent split: the game is the whole population's. Every rank draws every agent's
    // parameters and solves the same game (deterministic: the same bits), and keeps its block's rows.
    sim::ScenarioSpec whole = spec_;
    sim::PopulationSpec& wp = whole.populations[static_cast<std::size_t>(index_)];
    wp.first_agent = 0;
    wp.count = ps_.agents_total;
    wp.agents_total = 0;
    const auto values = investor_values(whole, index_);
    auto value = [&](const char* name) -> const Eigen::VectorXd& {
      const auto it =
          std::find_if(values.begin(), values.end(), [&](const auto& v) { return v.first == name; });
      return it->second;  // alpha, theta and wealth0 are the herd kind's own (investor_draws)
    };
    const WeightMatrix network = build_network(hp_.network, value("theta"), investors_source(whole, index_),
                                               sim::CounterRng(spec_.run.seed));
    own.theory_amount =
        solve_peer_game(value("alpha"), value("wealth0"), network).middleRows(ps_.first_agent, ps_.count);
  } catch (const sim::Interrupted&) {
    throw;  // Ctrl-C, not a failure
  } catch (const std::exception& e) {
    throw SolverError(fmt::format("population '{}': the {} herding game of its {} agents failed: {}",
                                  ps_.name, to_name(hp_.herd), agents, e.what()));
  }
}

Eigen::MatrixXd HerdPopulation::solve_peer_game(const Eigen::VectorXd& alpha, const Eigen::VectorXd& x0,
                                                const WeightMatrix& theta) const {
  theory::MutualGame game;
  game.market = theory_market(spec_);
  game.horizon = spec_.run.horizon;
  game.time = schedule_.time();
  game.rho = hp_.rho;
  game.alpha = alpha;
  game.x0 = x0;
  game.theta = theta;
  const int n = spec_.run.steps();
  Eigen::MatrixXd out(alpha.size(), static_cast<Eigen::Index>(assets_) * n);
  // N assets (docs/theory.md §7.1): the games solved in the eigenbasis of Sigma; column a n + k holds asset
  // a at decision k.
  auto fill = [&](const auto& sol) {
    for (int k = 0; k < n; ++k) {
      if (assets_ == 1) {
        out.col(k) = sol.amounts(k * spec_.run.dt());
        continue;
      }
      const Eigen::MatrixXd amounts = sol.asset_amounts(k * spec_.run.dt());
      for (int a = 0; a < assets_; ++a) out.col(a * n + k) = amounts.col(a);
    }
  };
  if (hp_.herd == HerdType::relative) {
    // The mutual relative game (continuous time, like P1), once per run; decision times are grid nodes.
    game.rho = 0.0;
    theory::RelativeMutualOptions opt;
    opt.bc = hp_.bc;
    opt.node_spacing = spec_.run.dt();
    if (assets_ > 1) {
      fill(theory::solve_relative_mutual(game, covariance_, excess_, opt));
    } else {
      fill(theory::solve_relative_mutual(game, opt));
    }
    return out;
  }
  if (assets_ > 1) {
    fill(theory::solve_mutual_game(game, covariance_, excess_));
  } else {
    fill(theory::solve_mutual_game(game));
  }
  return out;
}

const Eigen::MatrixXd& HerdPopulation::observed_previous(const sim::DecisionContext& ctx) const {
  if (leader_index_ >= 0)
    return ctx.state->populations[static_cast<std::size_t>(leader_index_)].previous_amount;
  if (ps_.agent_block()) return peers_previous_;
  return ctx.state->populations[static_cast<std::size_t>(ctx.population_index)].previous_amount;
}

// What agents [c0, c0 + len) observed at the previous step on `path`, projected one step ahead with
// Merton growth: their leader's decision, or the theta-weighted mean of their peers' decisions (a
// running sum from 0 over the compressed row in storage order).
void HerdPopulation::observe(const sim::DecisionContext& ctx, int c0, int len, int path, double* seen) const {
  const int k = ctx.step;
  const double projection = projection_[k];
  const double* seen_from = observed_previous(ctx).col(path).data();
  if (leader_count_ == 1) {  // the usual single advisor: no index arithmetic
    for (int j = 0; j < len; ++j) seen[j] = seen_from[0] * projection;
  } else if (leader_index_ >= 0) {
    const int first = ps_.first_agent + c0;  // the global follower: its leader agent in an agent split too
    for (int j = 0; j < len; ++j) seen[j] = seen_from[(first + j) % leader_count_] * projection;
  } else {
    const int* outer = mean_weights_.outerIndexPtr();  // compressed in initialize()
    const int* inner = mean_weights_.innerIndexPtr();
    const double* value = mean_weights_.valuePtr();
    for (int j = 0; j < len; ++j) {
      const int i = c0 + j;
      double sum = 0.0;
      for (int at = outer[i]; at < outer[i + 1]; ++at) sum += value[at] * seen_from[inner[at]];
      seen[j] = sum * projection;
    }
  }
}

// Leader: the agent's own problem over [t_k, T] from its realised wealth; the leader's Merton path over
// the remaining horizon is its original path from t_k on (Merton depends on time to go only).
theory::HerdProblem HerdPopulation::replan_problem(const sim::DecisionContext& ctx, int agent,
                                                   double wealth) const {
  theory::HerdProblem hp;
  hp.market = theory_market(spec_);
  hp.alpha = alpha_[agent];
  hp.alpha_leader = leader_alpha_[agent];
  hp.theta = theta_[agent];
  hp.rho = hp_.rho;
  hp.x0 = wealth;
  hp.horizon = spec_.run.horizon - ctx.time;
  hp.time = schedule_.time();
  return hp;
}

theory::RelativeHerdOptions HerdPopulation::replan_options(const sim::DecisionContext& ctx) const {
  theory::RelativeHerdOptions opt;
  opt.bc = hp_.bc;
  // The first decision keeps the plan's start condition (so replan starts where plan does); a restart's
  // start is free: pinned there, every decision would be the own Merton amount.
  opt.free_start = ctx.step > 0;
  return opt;
}

double HerdPopulation::replan(const sim::DecisionContext& ctx, int agent, double wealth) const {
  const theory::HerdProblem hp = replan_problem(ctx, agent, wealth);
  if (hp_.herd == HerdType::absolute) return theory::solve_absolute_herd(hp).amount(0.0);
  return theory::solve_relative_herd(hp, replan_options(ctx)).amount(0.0);
}

Eigen::VectorXd HerdPopulation::replan_assets(const sim::DecisionContext& ctx, int agent,
                                              double wealth) const {
  const theory::HerdProblem hp = replan_problem(ctx, agent, wealth);
  if (hp_.herd == HerdType::absolute)
    return theory::solve_absolute_herd(hp, covariance_, excess_).amounts(0.0);
  return theory::solve_relative_herd(hp, covariance_, excess_, replan_options(ctx)).amounts(0.0);
}

Eigen::MatrixXd HerdPopulation::replan_game(const sim::DecisionContext& ctx,
                                            const Eigen::Ref<const Eigen::VectorXd>& wealth) const {
  theory::MutualGame game;
  game.market = theory_market(spec_);
  game.horizon = spec_.run.horizon - ctx.time;
  game.time = schedule_.time();
  game.rho = hp_.rho;
  game.alpha = alpha_;
  game.x0 = wealth;
  game.theta = weights_;
  if (hp_.herd == HerdType::absolute) {
    if (assets_ > 1) return theory::solve_mutual_game(game, covariance_, excess_).asset_amounts(0.0);
    return theory::solve_mutual_game(game).amounts(0.0);
  }
  game.rho = 0.0;
  theory::RelativeMutualOptions opt;
  opt.bc = hp_.bc;
  opt.node_spacing = spec_.run.dt();
  opt.free_start = ctx.step > 0;  // as for a leader (replan above)
  if (assets_ > 1) return theory::solve_relative_mutual(game, covariance_, excess_, opt).asset_amounts(0.0);
  return theory::solve_relative_mutual(game, opt).amounts(0.0);
}

void HerdPopulation::prepare_step(const sim::DecisionContext& ctx, sim::PopulationState& own) {
  if (leader_index_ < 0 && ps_.agent_block() && hp_.policy == Policy::adaptive) {
    // Every rank's previous decisions, in rank order (the blocks are contiguous and ascending): sent
    // agent-major, so the concatenation is every agent's rows in order; the values travel as they are.
    if (exchange_ == nullptr)
      throw Error(
          fmt::format("population '{}': a block of an agent split with peers needs the exchange", ps_.name));
    using AgentMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const Eigen::MatrixXd& previous = own.previous_amount;
    const Eigen::Index cols = previous.cols();
    exchange_send_.resize(static_cast<std::size_t>(previous.size()));
    Eigen::Map<AgentMajor>(exchange_send_.data(), previous.rows(), cols) = previous;
    exchange_->concatenate_all(exchange_send_, exchange_received_);
    if (exchange_received_.size() !=
        static_cast<std::size_t>(ps_.agents_total) * static_cast<std::size_t>(cols))
      throw Error(
          fmt::format("population '{}': the agent split's exchange returned {} values, not {} agents x {}",
                      ps_.name, exchange_received_.size(), ps_.agents_total, cols));
    peers_previous_ = Eigen::Map<const AgentMajor>(exchange_received_.data(), ps_.agents_total, cols);
    return;
  }
  if (hp_.policy != Policy::replan || leader_index_ >= 0) return;
  const Eigen::VectorXd& x0 = param(own, "wealth0");
  const int paths = static_cast<int>(own.wealth.cols());
  const int steps = spec_.run.steps();
  Eigen::MatrixXd& replanned = kind_state(own, kReplanned);
  // One game per path; each task writes its own column, so any thread count gives the same bits. Errors
  // are kept per path and the first path's is thrown after the loop (never from inside it).
  std::vector<std::string> errors(static_cast<std::size_t>(paths));
  tbb::parallel_for(
      tbb::blocked_range<int>(0, paths, 1),
      [&](const tbb::blocked_range<int>& r) {
        for (int p = r.begin(); p != r.end(); ++p) {
          // Wealth still at its start (every path at t = 0): the plan solved this very game.
          // Column a paths + p: asset a on path p (the plan's: a steps + k).
          if (ctx.step == 0 && own.wealth.col(p) == x0) {
            for (int a = 0; a < assets_; ++a) replanned.col(a * paths + p) = own.theory_amount.col(a * steps);
            continue;
          }
          try {
            const Eigen::MatrixXd amounts = replan_game(ctx, own.wealth.col(p));
            for (int a = 0; a < assets_; ++a) replanned.col(a * paths + p) = amounts.col(a);
          } catch (const std::exception& e) {
            errors[static_cast<std::size_t>(p)] = e.what();
          }
        }
      },
      tbb::simple_partitioner{});
  for (int p = 0; p < paths; ++p) {
    if (!errors[static_cast<std::size_t>(p)].empty()) {
      throw SolverError(fmt::format("population '{}', path {}, step {}: replan: {}", ps_.name, p, ctx.step,
                                    errors[static_cast<std::size_t>(p)]));
    }
  }
}

void HerdPopulation::decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                            sim::PopulationState& own) const {
  if (hp_.policy == Policy::plan) {
    play_plan(ctx, p0, p1, a0, a1, own);
    return;
  }
  const int k = ctx.step;
  if (hp_.policy == Policy::replan) {
    if (leader_index_ < 0) {  // solved in prepare_step
      const Eigen::MatrixXd& replanned = kind_state(own, kReplanned);
      const Eigen::Index paths = own.wealth.cols();
      for (int a = 0; a < assets_; ++a) {
        for (int p = p0; p < p1; ++p) {
          const Eigen::Index col = a * paths + p;
          own.amount.col(col).segment(a0, a1 - a0) = replanned.col(col).segment(a0, a1 - a0);
        }
      }
      return;
    }
    if (assets_ > 1) {
      const Eigen::Index paths = own.wealth.cols();
      for (int p = p0; p < p1; ++p) {
        for (int i = a0; i < a1; ++i) {
          const Eigen::VectorXd amounts = replan_assets(ctx, i, own.wealth(i, p));
          for (int a = 0; a < assets_; ++a) own.amount(i, a * paths + p) = amounts[a];
        }
      }
      return;
    }
    for (int p = p0; p < p1; ++p) {
      for (int i = a0; i < a1; ++i) own.amount(i, p) = replan(ctx, i, own.wealth(i, p));
    }
    return;
  }
  if (assets_ > 1) {
    decide_adaptive_assets(ctx, p0, p1, a0, a1, own);
    return;
  }
  // Adaptive: the first decision sees nobody's; it is the agent's own Merton amount.
  if (k == 0) {
    for (int p = p0; p < p1; ++p) {
      for (int i = a0; i < a1; ++i) own.amount(i, p) = merton_unit_[0] / alpha_[i];
    }
    return;
  }
  if (hp_.herd == HerdType::absolute) {
    decide_adaptive_absolute(ctx, p0, p1, a0, a1, own);
    return;
  }
  // Relative rule, per slot: ln q = ln eta_hat - ln vt + 2 ln G(t_k), w = q dt^2 / (1 + q dt^2), with
  // -ln eta_hat = alpha X G(t_k -> T) + v^2 (T - t_k) / (2 sigma^2); the step's constants first.
  const double s2 = spec_.market.sigma * spec_.market.sigma;
  const double v = spec_.market.mu - spec_.market.r;
  const double growth_left = std::exp(ln_growth_left_[k]);
  const double ln_q_shift = -v * v * (spec_.run.horizon - ctx.time) / (2.0 * s2) + 2.0 * ln_growth_[k] +
                            2.0 * std::log(spec_.run.dt());
  Eigen::MatrixXd& seen_before = kind_state(own, kSeenBefore);
  alignas(64) double seen[kChunk];
  for (int p = p0; p < p1; ++p) {
    for (int c0 = a0; c0 < a1; c0 += kChunk) {
      const int len = std::min(kChunk, a1 - c0);
      observe(ctx, c0, len, p, seen);
      for (int j = 0; j < len; ++j) {
        const int i = c0 + j;
        const double own_merton = merton_unit_[k] / alpha_[i];
        if (theta_[i] == 0.0) {
          own.amount(i, p) = own_merton;
          continue;
        }
        // Myopic discretised Euler-Lagrange: follow the reference's observed change from one's own
        // last decision, pulled to one's own Merton amount.
        const double change =
            k == 1 ? seen[j] * (1.0 - 1.0 / projection_[k]) : seen[j] - seen_before(i, p) * projection_[k];
        seen_before(i, p) = seen[j] / projection_[k];
        const double ln_q_dt2 = -alpha_[i] * own.wealth(i, p) * growth_left - ln_vt_[i] + ln_q_shift;
        const double w = 1.0 / (1.0 + std::exp(-ln_q_dt2));
        own.amount(i, p) = w * own_merton + (1.0 - w) * (own.previous_amount(i, p) + change);
      }
    }
  }
}

// The absolute rule over chunks of agents held in L1: for each path, ln kappa = ln vt - ln eta_hat -
// (2 - rho) ln G with -ln eta_hat = alpha X G(t_k -> T) + v^2 (T - t_k) / (2 sigma^2), the reference m
// (the leader's or the theta-weighted mean of the peers' previous decisions, projected a step ahead),
// then w = 1 / (1 + kappa), P = w P_alpha + (1 - w) m by blend_toward_reference. Every operation is
// elementwise or a per-agent running sum in storage order, so the bits depend on neither the CPU nor
// the blocks.
void HerdPopulation::decide_adaptive_absolute(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                                              sim::PopulationState& own) const {
  const int k = ctx.step;
  const double s2 = spec_.market.sigma * spec_.market.sigma;
  const double v = spec_.market.mu - spec_.market.r;
  const double growth_left = std::exp(ln_growth_left_[k]);
  const double shift = v * v * (spec_.run.horizon - ctx.time) / (2.0 * s2) - (2.0 - hp_.rho) * ln_growth_[k];
  const double unit = merton_unit_[k];
  const double* alpha = alpha_.data();
  const double* ln_vt = ln_vt_.data();
  alignas(64) double seen[kChunk];
  alignas(64) double ln_kappa[kChunk];
  alignas(64) double own_merton[kChunk];
  for (int c0 = a0; c0 < a1; c0 += kChunk) {
    const int len = std::min(kChunk, a1 - c0);
    // Path-independent: once per chunk.
    for (int j = 0; j < len; ++j) own_merton[j] = unit / alpha[c0 + j];
    for (int p = p0; p < p1; ++p) {
      const double* x = own.wealth.col(p).data() + c0;
      observe(ctx, c0, len, p, seen);
      for (int j = 0; j < len; ++j) ln_kappa[j] = ln_vt[c0 + j] + alpha[c0 + j] * x[j] * growth_left + shift;
      blend_toward_reference(ln_kappa, own_merton, seen, own.amount.col(p).data() + c0, len);
    }
  }
}

// The adaptive rules in N assets, per coordinate j of the eigenbasis of Sigma (docs/theory.md §7.1): the
// one-asset rules with sigma^2 -> lambda_j, v -> v~_j, v^2 / sigma^2 -> v' Sigma^{-1} v, applied to the
// rotated own Merton vector, the observed (projected) vector of the leader or of the theta-weighted mean of
// the peers (a running sum from 0 over the row in storage order, per asset) and, for relative herding, one's
// own previous amounts; then rotated back. Agent by agent: every result depends on its own slot only.
void HerdPopulation::decide_adaptive_assets(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                                            sim::PopulationState& own) const {
  const int k = ctx.step;
  const Eigen::Index paths = own.wealth.cols();
  const Eigen::VectorXd unit = coordinate_unit_ * std::exp(-ln_growth_[k]);  // rotated Merton, alpha = 1
  auto write = [&](int i, int p, const Eigen::VectorXd& rotated) {
    const Eigen::VectorXd amounts = basis_.to_assets(rotated);
    for (int a = 0; a < assets_; ++a) own.amount(i, a * paths + p) = amounts[a];
  };
  if (k == 0) {  // nobody's decision seen yet: the own Merton vector
    for (int p = p0; p < p1; ++p) {
      for (int i = a0; i < a1; ++i) write(i, p, unit / alpha_[i]);
    }
    return;
  }
  const bool relative = hp_.herd == HerdType::relative;
  const double projection = projection_[k];
  const double growth_left = std::exp(ln_growth_left_[k]);
  const double sharpe = half_sharpe_ * (spec_.run.horizon - ctx.time);
  const double shift = relative ? -sharpe + 2.0 * ln_growth_[k] + 2.0 * std::log(spec_.run.dt())
                                : sharpe - (2.0 - hp_.rho) * ln_growth_[k];
  const Eigen::MatrixXd& previous = observed_previous(ctx);
  Eigen::MatrixXd* seen_before = relative ? &kind_state(own, kSeenBefore) : nullptr;
  Eigen::VectorXd seen(assets_), reference(assets_), rotated(assets_);
  for (int p = p0; p < p1; ++p) {
    for (int i = a0; i < a1; ++i) {
      const Eigen::VectorXd own_merton = unit / alpha_[i];
      if (theta_[i] == 0.0 || (leader_index_ < 0 && mean_weights_.row(i).nonZeros() == 0)) {  // or no peers
        write(i, p, own_merton);
        continue;
      }
      if (leader_index_ >= 0) {
        const int followed = (ps_.first_agent + i) % leader_count_;
        for (int a = 0; a < assets_; ++a) seen[a] = previous(followed, a * paths + p) * projection;
      } else {  // peers: row i of this block's network, every agent's columns
        for (int a = 0; a < assets_; ++a) {
          double sum = 0.0;
          for (WeightMatrix::InnerIterator it(mean_weights_, i); it; ++it)
            sum += it.value() * previous(it.col(), a * paths + p);
          seen[a] = sum * projection;
        }
      }
      if (relative) {
        // Follow the leader's observed change from one's own last decision (per asset, then rotated).
        for (int a = 0; a < assets_; ++a) {
          double& before = (*seen_before)(i, a * paths + p);
          const double change = k == 1 ? seen[a] * (1.0 - 1.0 / projection) : seen[a] - before * projection;
          before = seen[a] / projection;
          reference[a] = own.previous_amount(i, a * paths + p) + change;
        }
      } else {
        reference = seen;
      }
      const Eigen::VectorXd target = basis_.to_coordinates(reference);
      const double wealth_term = alpha_[i] * own.wealth(i, p) * growth_left;
      for (int j = 0; j < assets_; ++j) {
        // Absolute: w = 1 / (1 + kappa_j); relative: w = q_j dt^2 / (1 + q_j dt^2) = 1 / (1 + 1 / (q_j
        // dt^2)).
        const double ln_ratio =
            relative ? wealth_term + ln_vt_assets_(i, j) - shift : ln_vt_assets_(i, j) + wealth_term + shift;
        const double w = 1.0 / (1.0 + fixed_exp(ln_ratio));
        rotated[j] = w * own_merton[j] + (1.0 - w) * target[j];
      }
      write(i, p, rotated);
    }
  }
}

}  // namespace herdsim::agents
