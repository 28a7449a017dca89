// Herd followers in a market with several correlated assets (agents/herd_agent.hpp, docs/theory.md §7.1):
// every policy on a leader, against the vector closed form written out here with a linear solve (no
// eigenbasis), bitwise the same for any thread count; followers of peers (the mutual games) likewise, the
// plan against the equilibrium's vector conditions with eta recomputed from the recorded plan. (Validation:
// tests/io/test_scenario_market.cpp.)
// Followers of a leader of another kind (a chartist in an endogenous market): the adaptive rules
// recomputed from the leader's recorded amounts. (Validation: tests/io/test_scenario_toml.cpp.)
#include <doctest/doctest.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/LU>
#include <algorithm>
#include <cmath>
#include <string>

#include "agents/chartist_agent.hpp"
#include "agents/herd_agent.hpp"
#include "agents/merton_agent.hpp"
#include "agents/network.hpp"
#include "agents/noise_agent.hpp"
#include "agents/registry.hpp"
#include "sim/market/asset_covariance.hpp"
#include "sim/theory/absolute_herd.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/mutual_game.hpp"
#include "sim/theory/relative_herd.hpp"
#include "sim/theory/relative_mutual.hpp"
#include "sim/theory/schedule.hpp"
#include "support/specs.hpp"
#include "support/tape.hpp"

using namespace herdsim;

namespace {

/// Three correlated assets (the third with a negative excess return), quarterly over 4 years; an advisor
/// (merton, alpha 0.2) and followers of `herd` type with `policy`, alphas 0.5 and 1.2.
sim::ScenarioSpec three_assets(agents::HerdType herd, agents::Policy policy) {
  sim::ScenarioSpec spec;
  spec.run.paths = 5;
  spec.run.seed = 11;
  spec.run.horizon = 4.0;
  spec.run.steps_per_year = 4;
  spec.market.mu = 0.07;
  spec.market.sigma = 0.17;
  spec.market.assets = {{"stock", 0.07, 0.17, 1.0}, {"bond", 0.045, 0.06, 1.0}, {"gold", 0.03, 0.20, 1.0}};
  spec.market.correlation = {1.0, 0.3, -0.2, 0.3, 1.0, 0.1, -0.2, 0.1, 1.0};
  spec.populations.push_back(test::merton("advisor", 1, 0.2));
  agents::HerdParams p;
  p.herd = herd;
  p.policy = policy;
  p.leader = "advisor";
  p.alpha = test::list({0.5, 1.2});
  p.theta = test::constant(herd == agents::HerdType::absolute ? 1e-7 : 1e-6);
  if (herd == agents::HerdType::absolute) p.rho = 0.4;
  spec.populations.push_back(agents::population_spec("followers", 2, p, test::constant(10.0)));
  return spec;
}

/// P = (eta alpha G^2 Sigma + theta G^rho I)^{-1} (eta G v + theta G^rho m): the absolute first-order
/// condition of §7.1 at one decision, solved directly in the assets.
Eigen::VectorXd absolute_closed_form(const Eigen::MatrixXd& sigma, const Eigen::VectorXd& v, double alpha,
                                     double theta, double rho, double ln_eta, double ln_g,
                                     const Eigen::VectorXd& reference) {
  const double eta = std::exp(ln_eta);
  const double g = std::exp(ln_g);
  const double weight = theta * std::pow(g, rho);
  const Eigen::MatrixXd a =
      eta * alpha * g * g * sigma + weight * Eigen::MatrixXd::Identity(sigma.rows(), sigma.cols());
  return a.partialPivLu().solve(eta * g * v + weight * reference);
}

/// The largest relative gap between two amount vectors.
double gap(const Eigen::VectorXd& a, const Eigen::VectorXd& b) {
  return (a - b).norm() / b.norm();
}

}  // namespace

TEST_SUITE("agents.herd.assets") {
  TEST_CASE("absolute plan: the vector closed form with the leader's recorded amounts at every decision") {
    const sim::ScenarioSpec spec = three_assets(agents::HerdType::absolute, agents::Policy::plan);
    const test::Record t = test::run(spec);
    const Eigen::MatrixXd sigma = sim::asset_covariance(spec.market);
    const Eigen::VectorXd v = sim::asset_excess_returns(spec.market);
    const theory::Schedule schedule({0.07, 0.04, 0.17}, 4.0, theory::TimeModel::discrete(4));
    const double alphas[] = {0.5, 1.2};
    const int paths = spec.run.paths;
    for (int i = 0; i < 2; ++i) {
      theory::HerdProblem hp;
      hp.alpha = alphas[i];
      hp.theta = 1e-7;
      hp.rho = 0.4;
      hp.horizon = 4.0;
      hp.time = theory::TimeModel::discrete(4);
      const double ln_eta = theory::solve_absolute_herd(hp, sigma, v).ln_eta();
      for (int k = 0; k < spec.run.steps(); ++k) {
        for (int p = 0; p < paths; ++p) {
          Eigen::VectorXd leader(3), amounts(3);
          for (int a = 0; a < 3; ++a) {
            leader[a] = t.amount[static_cast<std::size_t>(k)][0](0, a * paths + p);
            amounts[a] = t.amount[static_cast<std::size_t>(k)][1](i, a * paths + p);
          }
          const Eigen::VectorXd want = absolute_closed_form(sigma, v, alphas[i], 1e-7, 0.4, ln_eta,
                                                            schedule.ln_growth(k * 0.25), leader);
          CHECK(gap(amounts, want) < 1e-12);
        }
      }
    }
    // The gold's negative excess return makes it a short position of every agent.
    CHECK(t.amount[0][1](0, 2 * paths) < 0.0);
  }

  TEST_CASE("absolute replan: each decision is the plan of the remaining horizon from the realised wealth") {
    const sim::ScenarioSpec spec = three_assets(agents::HerdType::absolute, agents::Policy::replan);
    const test::Record t = test::run(spec);
    const test::Record plan = test::run(three_assets(agents::HerdType::absolute, agents::Policy::plan));
    const Eigen::MatrixXd sigma = sim::asset_covariance(spec.market);
    const Eigen::VectorXd v = sim::asset_excess_returns(spec.market);
    const int paths = spec.run.paths;
    CHECK(t.amount[0][1] == plan.amount[0][1]);  // from x0 the restart is the plan
    const int k = 9;
    for (int p = 0; p < paths; ++p) {
      const double x = t.wealth[static_cast<std::size_t>(k)][1](1, p);
      theory::HerdProblem hp;
      hp.alpha = 1.2;
      hp.theta = 1e-7;
      hp.rho = 0.4;
      hp.x0 = x;
      hp.horizon = 4.0 - k * 0.25;
      hp.time = theory::TimeModel::discrete(4);
      const double ln_eta = theory::solve_absolute_herd(hp, sigma, v).ln_eta();
      const theory::Schedule rest({0.07, 0.04, 0.17}, hp.horizon, hp.time);
      Eigen::VectorXd leader(3), amounts(3);
      for (int a = 0; a < 3; ++a) {
        leader[a] = t.amount[static_cast<std::size_t>(k)][0](0, a * paths + p);
        amounts[a] = t.amount[static_cast<std::size_t>(k)][1](1, a * paths + p);
      }
      CHECK(gap(amounts,
                absolute_closed_form(sigma, v, 1.2, 1e-7, 0.4, ln_eta, rest.ln_growth(0.0), leader)) < 1e-12);
    }
    // Wealth moved: the replanned decisions differ from the plan's.
    CHECK(t.amount[static_cast<std::size_t>(k)][1] != plan.amount[static_cast<std::size_t>(k)][1]);
  }

  TEST_CASE("absolute adaptive: the closed form with eta_hat from wealth and the leader's observed amounts") {
    const sim::ScenarioSpec spec = three_assets(agents::HerdType::absolute, agents::Policy::adaptive);
    const test::Record t = test::run(spec);
    const Eigen::MatrixXd sigma = sim::asset_covariance(spec.market);
    const Eigen::VectorXd v = sim::asset_excess_returns(spec.market);
    const theory::Schedule schedule({0.07, 0.04, 0.17}, 4.0, theory::TimeModel::discrete(4));
    const double sharpe = v.dot(sigma.llt().solve(v));  // v' Sigma^{-1} v
    const double alphas[] = {0.5, 1.2};
    const int paths = spec.run.paths;
    const double dt = 0.25;
    const double growth = 1.0 + 0.04 * dt;
    for (int k = 0; k < spec.run.steps(); ++k) {
      const double t_k = k * dt;
      for (int p = 0; p < paths; ++p) {
        for (int i = 0; i < 2; ++i) {
          Eigen::VectorXd amounts(3), seen(3);
          for (int a = 0; a < 3; ++a) {
            amounts[a] = t.amount[static_cast<std::size_t>(k)][1](i, a * paths + p);
            // The leader's previous decision, projected a step ahead with Merton growth.
            if (k > 0) seen[a] = t.amount[static_cast<std::size_t>(k - 1)][0](0, a * paths + p) * growth;
          }
          const Eigen::VectorXd merton = sigma.llt().solve(v) / (alphas[i] * schedule.growth(t_k));
          if (k == 0) {
            CHECK(gap(amounts, merton) < 1e-13);
            continue;
          }
          // -ln eta_hat = alpha X G(t_k -> T) + v' Sigma^{-1} v (T - t_k) / 2.
          const double x = t.wealth[static_cast<std::size_t>(k)][1](i, p);
          const double ln_eta_hat =
              -(alphas[i] * x * std::pow(growth, spec.run.steps() - k) + sharpe * (4.0 - t_k) / 2.0);
          const Eigen::VectorXd want =
              absolute_closed_form(sigma, v, alphas[i], 1e-7, 0.4, ln_eta_hat, schedule.ln_growth(t_k), seen);
          CHECK(gap(amounts, want) < 1e-12);
        }
      }
    }
  }

  TEST_CASE("relative adaptive: (theta I + eta_hat alpha G^2 dt^2 Sigma) P = eta_hat G dt^2 v + theta R") {
    // The myopic discretised Euler-Lagrange rule in the assets: R = one's own previous amounts plus the
    // leader's observed change, pulled towards the own Merton vector (one-asset rule: w = q dt^2 / (1 + q
    // dt^2)).
    const sim::ScenarioSpec spec = three_assets(agents::HerdType::relative, agents::Policy::adaptive);
    const test::Record t = test::run(spec);
    const Eigen::MatrixXd sigma = sim::asset_covariance(spec.market);
    const Eigen::VectorXd v = sim::asset_excess_returns(spec.market);
    const theory::Schedule schedule({0.07, 0.04, 0.17}, 4.0, theory::TimeModel::discrete(4));
    const double sharpe = v.dot(sigma.llt().solve(v));
    const double alphas[] = {0.5, 1.2};
    const int paths = spec.run.paths;
    const double dt = 0.25;
    const double growth = 1.0 + 0.04 * dt;
    const double theta = 1e-6;
    for (int k = 1; k < spec.run.steps(); ++k) {
      const double t_k = k * dt;
      const double g = schedule.growth(t_k);
      for (int p = 0; p < paths; ++p) {
        for (int i = 0; i < 2; ++i) {
          Eigen::VectorXd amounts(3), reference(3);
          for (int a = 0; a < 3; ++a) {
            const auto at = [&](int step, int pop, int agent) {
              return t.amount[static_cast<std::size_t>(step)][static_cast<std::size_t>(pop)](agent,
                                                                                             a * paths + p);
            };
            amounts[a] = at(k, 1, i);
            const double change =
                k == 1 ? at(0, 0, 0) * (growth - 1.0) : growth * (at(k - 1, 0, 0) - at(k - 2, 0, 0));
            reference[a] = at(k - 1, 1, i) + change;
          }
          const double x = t.wealth[static_cast<std::size_t>(k)][1](i, p);
          const double eta = std::exp(
              -(alphas[i] * x * std::pow(growth, spec.run.steps() - k) + sharpe * (4.0 - t_k) / 2.0));
          const Eigen::MatrixXd a =
              theta * Eigen::MatrixXd::Identity(3, 3) + eta * alphas[i] * g * g * dt * dt * sigma;
          const Eigen::VectorXd want = a.partialPivLu().solve(eta * g * dt * dt * v + theta * reference);
          CHECK(gap(amounts, want) < 1e-12);
        }
      }
    }
  }

  TEST_CASE("relative plan: the N-asset solution, which lies between the own and the leader's Merton") {
    const sim::ScenarioSpec spec = three_assets(agents::HerdType::relative, agents::Policy::plan);
    const test::Record t = test::run(spec);
    const Eigen::MatrixXd sigma = sim::asset_covariance(spec.market);
    const Eigen::VectorXd v = sim::asset_excess_returns(spec.market);
    theory::HerdProblem hp;
    hp.alpha = 1.2;
    hp.theta = 1e-6;
    hp.horizon = 4.0;
    const auto sol = theory::solve_relative_herd(hp, sigma, v);
    const int paths = spec.run.paths;
    for (int k = 0; k < spec.run.steps(); ++k) {
      const Eigen::VectorXd want = sol.amounts(k * 0.25);
      for (int a = 0; a < 3; ++a) CHECK(t.amount[static_cast<std::size_t>(k)][1](1, a * paths) == want[a]);
    }
    // Pinned ends: the own Merton vector at t = 0; inside, pulled towards the leader.
    const Eigen::VectorXd merton0 = sigma.llt().solve(v) / (1.2 * std::exp(0.04 * 4.0));
    CHECK(gap(sol.amounts(0.0), merton0) < 1e-12);
    CHECK(gap(sol.amounts(2.0), merton0 * std::exp(0.04 * 2.0)) > 1e-3);
  }

  TEST_CASE("every policy and herd type runs in three assets with the same bits for any thread count") {
    for (const auto herd : {agents::HerdType::absolute, agents::HerdType::relative}) {
      for (const auto policy : {agents::Policy::plan, agents::Policy::replan, agents::Policy::adaptive}) {
        const sim::ScenarioSpec spec = three_assets(herd, policy);
        const test::Record one = test::run(spec, 1);
        const test::Record all = test::run(spec, 0);
        const test::Record three = test::run(spec, 3);
        INFO(to_name(herd) << " " << to_name(policy));
        REQUIRE(one.amount.size() == all.amount.size());
        for (std::size_t k = 0; k < one.amount.size(); ++k) {
          CHECK(one.amount[k][1] == all.amount[k][1]);
          CHECK(one.amount[k][1] == three.amount[k][1]);
          CHECK(one.wealth[k + 1][1] == all.wealth[k + 1][1]);
          CHECK(one.amount[k][1].allFinite());
          CHECK(one.amount[k][1].cols() == 3 * spec.run.paths);
        }
      }
    }
  }
}

namespace {

/// The market of three_assets() with four followers of their peers on a ring (k = 1, theta split over the
/// two neighbours), alphas 0.3, 0.5, 0.8 and 1.2, of `herd` type with `policy`.
sim::ScenarioSpec three_assets_peers(agents::HerdType herd, agents::Policy policy) {
  sim::ScenarioSpec spec = three_assets(herd, policy);
  spec.populations.erase(spec.populations.begin());  // no advisor
  agents::HerdParams& p = test::herd_params(spec.populations[0]);
  p.influence = agents::Influence::peers;
  p.leader.clear();
  p.network.kind = agents::NetworkSpec::Kind::ring;
  p.network.k = 1;
  p.alpha = test::list({0.3, 0.5, 0.8, 1.2});
  p.theta = test::constant(herd == agents::HerdType::absolute ? 1e-7 : 1e-4);
  spec.populations[0].count = 4;
  return spec;
}

/// The peers' weights theta_ij as the population draws them (population 0).
agents::WeightMatrix peer_weights(const sim::ScenarioSpec& spec) {
  return agents::build_network(
      test::herd_params(spec.populations[0]).network,
      Eigen::VectorXd::Constant(
          4, test::herd_params(spec.populations[0]).herd == agents::HerdType::absolute ? 1e-7 : 1e-4),
      0, sim::CounterRng(spec.run.seed));
}

}  // namespace

TEST_SUITE("agents.herd.assets.peers") {
  TEST_CASE("absolute plan of peers: the equilibrium's vector conditions hold at every recorded decision") {
    // (eta_i alpha_i G^2 Sigma + theta_i G^rho I) P_i - G^rho Sum_j theta_ij P_j = eta_i G v for all agents
    // at once (one linear system of 4 x 3 unknowns per decision, solved in the assets), with ln eta_i = ln
    // H_i of agent i's recorded plan (the discrete vector form of docs/theory.md §7.1, summed here).
    const sim::ScenarioSpec spec = three_assets_peers(agents::HerdType::absolute, agents::Policy::plan);
    const test::Record t = test::run(spec);
    const Eigen::MatrixXd sigma = sim::asset_covariance(spec.market);
    const Eigen::VectorXd v = sim::asset_excess_returns(spec.market);
    const theory::Schedule schedule({0.07, 0.04, 0.17}, 4.0, theory::TimeModel::discrete(4));
    const agents::WeightMatrix theta = peer_weights(spec);
    const double alphas[] = {0.3, 0.5, 0.8, 1.2};
    const int paths = spec.run.paths;
    const int steps = spec.run.steps();
    const double dt = 0.25;
    auto recorded = [&](int k, int i, int p) {
      Eigen::Vector3d amounts;  // fixed size: GCC 12's -Warray-bounds misfires on a 3-vector's dot
      for (int a = 0; a < 3; ++a) amounts[a] = t.amount[static_cast<std::size_t>(k)][0](i, a * paths + p);
      return amounts;
    };
    Eigen::VectorXd ln_eta(4);
    for (int i = 0; i < 4; ++i) {
      double ln_h = -alphas[i] * 10.0 * std::exp(schedule.ln_terminal_growth());
      for (int k = 0; k < steps; ++k) {
        const Eigen::Vector3d pk = recorded(k, i, 0);
        const double g = schedule.growth(k * dt);
        ln_h +=
            -alphas[i] * dt * g * v.dot(pk) + 0.5 * alphas[i] * alphas[i] * dt * g * g * pk.dot(sigma * pk);
      }
      ln_eta[i] = ln_h;
    }
    double worst = 0.0, herding = 0.0;
    for (int k = 0; k < steps; ++k) {
      const double g = schedule.growth(k * dt);
      const double w = std::pow(g, 0.4);
      Eigen::MatrixXd a = Eigen::MatrixXd::Zero(12, 12);
      Eigen::VectorXd b(12);
      for (int i = 0; i < 4; ++i) {
        double theta_i = 0.0;
        for (agents::WeightMatrix::InnerIterator it(theta, i); it; ++it) {
          theta_i += it.value();
          a.block(3 * i, 3 * it.col(), 3, 3) -= w * it.value() * Eigen::MatrixXd::Identity(3, 3);
        }
        const double eta = std::exp(ln_eta[i]);
        a.block(3 * i, 3 * i, 3, 3) +=
            eta * alphas[i] * g * g * sigma + w * theta_i * Eigen::MatrixXd::Identity(3, 3);
        b.segment(3 * i, 3) = eta * g * v;
      }
      const Eigen::VectorXd want = a.partialPivLu().solve(b);
      for (int p = 0; p < paths; ++p) {
        for (int i = 0; i < 4; ++i) {
          const Eigen::Vector3d mine = recorded(k, i, p);
          worst = std::max(worst, gap(mine, want.segment(3 * i, 3)));
          const Eigen::VectorXd merton = sigma.llt().solve(v) / (alphas[i] * g);
          herding = std::max(herding, gap(mine, merton));
        }
      }
    }
    MESSAGE("peers plan, 3 assets: largest relative gap to the vector conditions " << worst << ", herding "
                                                                                   << herding);
    CHECK(worst < 1e-10);
    CHECK(herding > 0.05);
    CHECK(t.amount[0][0](0, 2 * paths) < 0.0);  // gold's negative excess return: short
  }

  TEST_CASE("relative plan of peers: the recorded amounts are the N-asset game's solution") {
    const sim::ScenarioSpec spec = three_assets_peers(agents::HerdType::relative, agents::Policy::plan);
    const test::Record t = test::run(spec);
    theory::MutualGame game;
    game.horizon = 4.0;
    game.alpha = Eigen::Vector4d(0.3, 0.5, 0.8, 1.2);
    game.x0 = Eigen::VectorXd::Constant(4, 10.0);
    game.theta = peer_weights(spec);
    theory::RelativeMutualOptions o;
    o.node_spacing = 0.25;
    const auto sol = theory::solve_relative_mutual(game, sim::asset_covariance(spec.market),
                                                   sim::asset_excess_returns(spec.market), o);
    const int paths = spec.run.paths;
    for (int k = 0; k < spec.run.steps(); ++k) {
      const Eigen::MatrixXd want = sol.asset_amounts(k * 0.25);
      for (int i = 0; i < 4; ++i) {
        for (int a = 0; a < 3; ++a)
          CHECK(t.amount[static_cast<std::size_t>(k)][0](i, a * paths + 1) == want(i, a));
      }
    }
    CHECK(gap(sol.asset_amounts(2.0).row(0).transpose(), sol.asset_amounts(2.0).row(3).transpose()) > 0.1);
  }

  TEST_CASE(
      "absolute adaptive of peers: the closed form with the theta-weighted mean of the peers' amounts") {
    const sim::ScenarioSpec spec = three_assets_peers(agents::HerdType::absolute, agents::Policy::adaptive);
    const test::Record t = test::run(spec);
    const Eigen::MatrixXd sigma = sim::asset_covariance(spec.market);
    const Eigen::VectorXd v = sim::asset_excess_returns(spec.market);
    const theory::Schedule schedule({0.07, 0.04, 0.17}, 4.0, theory::TimeModel::discrete(4));
    const agents::WeightMatrix theta = peer_weights(spec);
    const double sharpe = v.dot(sigma.llt().solve(v));
    const double alphas[] = {0.3, 0.5, 0.8, 1.2};
    const int paths = spec.run.paths;
    const double dt = 0.25;
    const double growth = 1.0 + 0.04 * dt;
    for (int k = 1; k < spec.run.steps(); ++k) {
      const double t_k = k * dt;
      for (int p = 0; p < paths; ++p) {
        for (int i = 0; i < 4; ++i) {
          Eigen::VectorXd amounts(3), seen = Eigen::VectorXd::Zero(3);
          for (int a = 0; a < 3; ++a) {
            amounts[a] = t.amount[static_cast<std::size_t>(k)][0](i, a * paths + p);
            for (agents::WeightMatrix::InnerIterator it(theta, i); it; ++it) {
              seen[a] += it.value() / 1e-7 *
                         t.amount[static_cast<std::size_t>(k - 1)][0](it.col(), a * paths + p) * growth;
            }
          }
          const double x = t.wealth[static_cast<std::size_t>(k)][0](i, p);
          const double ln_eta_hat =
              -(alphas[i] * x * std::pow(growth, spec.run.steps() - k) + sharpe * (4.0 - t_k) / 2.0);
          const Eigen::VectorXd want =
              absolute_closed_form(sigma, v, alphas[i], 1e-7, 0.4, ln_eta_hat, schedule.ln_growth(t_k), seen);
          CHECK(gap(amounts, want) < 1e-12);
        }
      }
    }
  }

  TEST_CASE(
      "every policy and herd type of peers runs in three assets with the same bits on 1 and 2 threads") {
    for (const auto herd : {agents::HerdType::absolute, agents::HerdType::relative}) {
      for (const auto policy : {agents::Policy::plan, agents::Policy::replan, agents::Policy::adaptive}) {
        const sim::ScenarioSpec spec = three_assets_peers(herd, policy);
        const test::Record one = test::run(spec, 1);
        const test::Record two = test::run(spec, 2);
        INFO(to_name(herd) << " " << to_name(policy));
        REQUIRE(one.amount.size() == two.amount.size());
        for (std::size_t k = 0; k < one.amount.size(); ++k) {
          CHECK(one.amount[k][0] == two.amount[k][0]);
          CHECK(one.wealth[k + 1][0] == two.wealth[k + 1][0]);
          CHECK(one.amount[k][0].allFinite());
          CHECK(one.amount[k][0].cols() == 3 * spec.run.paths);
        }
        if (policy == agents::Policy::replan) {  // from x0 the restart is the plan; later, wealth moves it
          const test::Record plan = test::run(three_assets_peers(herd, agents::Policy::plan), 1);
          CHECK(one.amount[0][0] == plan.amount[0][0]);
          CHECK(one.amount[9][0] != plan.amount[9][0]);
        }
      }
    }
  }
}

namespace {

/// One stock whose price the flow moves, herd followers of a chartist leader declared after them (absolute
/// and relative, adaptive; alphas 0.3, 0.5, 1.0; five agents on a leader of two), and noise traders.
sim::ScenarioSpec chartist_led() {
  sim::ScenarioSpec spec;
  spec.run.paths = 6;
  spec.run.seed = 5;
  spec.run.horizon = 3.0;
  spec.run.steps_per_year = 4;
  spec.market.mu = 0.07;
  spec.market.sigma = 0.17;
  spec.market.impact.lambda = {1.0};
  spec.market.impact.depth = {500.0};
  for (const agents::HerdType herd : {agents::HerdType::absolute, agents::HerdType::relative}) {
    agents::HerdParams p;
    p.herd = herd;
    p.policy = agents::Policy::adaptive;
    p.leader = "trend";
    p.alpha = test::list({0.3, 0.5, 1.0});
    p.theta = test::constant(herd == agents::HerdType::absolute ? 1e-4 : 1e-2);
    if (herd == agents::HerdType::absolute) p.rho = 0.4;
    spec.populations.push_back(
        agents::population_spec(std::string(to_name(herd)), 5, p, test::constant(10.0)));
  }
  agents::ChartistParams c;
  c.chi = test::list({0.5, 1.0});
  c.trend_weight = 0.5;
  c.max_proportion = 2.0;
  spec.populations.push_back(agents::population_spec("trend", 2, c, test::constant(10.0)));
  agents::NoiseParams n;
  n.proportion = test::constant(0.8);
  spec.populations.push_back(agents::population_spec("noise", 4, n, test::constant(10.0)));
  return spec;
}

}  // namespace

TEST_SUITE("agents.herd.leader_kinds") {
  TEST_CASE(
      "adaptive followers of a chartist: the one-asset rules recomputed from the leader's recorded amounts") {
    const sim::ScenarioSpec spec = chartist_led();
    const test::Record t = test::run(spec);
    const int n = spec.run.steps();
    const int paths = spec.run.paths;
    const double dt = spec.run.dt();
    const double s2 = 0.17 * 0.17, v = 0.03, horizon = 3.0;
    const theory::Schedule schedule({0.07, 0.04, 0.17}, horizon, theory::TimeModel::discrete(4));
    const double alphas[] = {0.3, 0.5, 1.0};
    const auto amount = [&](int k, int pop) -> const Eigen::MatrixXd& {
      return t.amount[static_cast<std::size_t>(k)][static_cast<std::size_t>(pop)];
    };
    double largest_pull = 0.0;  // how far the leader moved anyone from their own Merton amount
    for (int k = 0; k < n; ++k) {
      const double t_k = k * dt;
      const double projection = std::exp(schedule.ln_growth(t_k - dt) - schedule.ln_growth(t_k));
      const double growth_left = std::pow(1.0 + 0.04 * dt, n - k);  // deposit growth t_k -> T
      for (int p = 0; p < paths; ++p) {
        for (int i = 0; i < 5; ++i) {
          const double alpha = alphas[i % 3];
          const double own_merton = theory::merton_amount(schedule, alpha, t_k);
          const int followed = i % 2;
          for (int pop = 0; pop < 2; ++pop) {
            const double got = amount(k, pop)(i, p);
            if (k == 0) {  // nobody's decision seen yet
              CHECK(std::abs(got - own_merton) <= 1e-13 * std::abs(own_merton));
              continue;
            }
            const double x = t.wealth[static_cast<std::size_t>(k)][static_cast<std::size_t>(pop)](i, p);
            const double seen = amount(k - 1, 2)(followed, p) * projection;  // the chartist's, projected
            double want = 0.0;
            if (pop == 0) {
              // Absolute: w = 1 / (1 + kappa), ln kappa = ln(theta / (alpha sigma^2)) - ln eta_hat - (2 -
              // rho) ln G, -ln eta_hat = alpha X G(t_k -> T) + v^2 (T - t_k) / (2 sigma^2).
              const double ln_kappa = std::log(1e-4 / (alpha * s2)) + alpha * x * growth_left +
                                      v * v * (horizon - t_k) / (2.0 * s2) - 1.6 * schedule.ln_growth(t_k);
              const double w = 1.0 / (1.0 + std::exp(ln_kappa));
              want = w * own_merton + (1.0 - w) * seen;
            } else {
              // Relative: follow the leader's observed change from one's own last decision; w = q dt^2 / (1 +
              // q dt^2), ln q dt^2 = ln eta_hat - ln(theta / (alpha sigma^2)) + 2 ln G + 2 ln dt.
              const double change = k == 1 ? seen * (1.0 - 1.0 / projection)
                                           : seen - amount(k - 2, 2)(followed, p) * projection;
              const double ln_q_dt2 = -alpha * x * growth_left - v * v * (horizon - t_k) / (2.0 * s2) -
                                      std::log(1e-2 / (alpha * s2)) + 2.0 * schedule.ln_growth(t_k) +
                                      2.0 * std::log(dt);
              const double w = 1.0 / (1.0 + std::exp(-ln_q_dt2));
              want = w * own_merton + (1.0 - w) * (amount(k - 1, pop)(i, p) + change);
            }
            INFO("k = " << k << ", path " << p << ", agent " << i << ", population " << pop);
            CHECK(std::abs(got - want) <= 1e-11 * (std::abs(want) + 1.0));
            largest_pull = std::max(largest_pull, std::abs(got - own_merton) / std::abs(own_merton));
          }
        }
      }
    }
    CHECK(largest_pull > 0.05);  // the leader matters: the followers are not their own Merton investors
    // The chartist's amounts differ between paths (a plan's would not): the followers react to realised ones.
    CHECK(amount(n - 1, 2)(0, 0) != amount(n - 1, 2)(0, 1));
  }

  TEST_CASE(
      "followers of a chartist: no leader alpha (NaN), no theory amounts; any thread count, same bits") {
    const sim::ScenarioSpec spec = chartist_led();
    auto simulation = agents::make_simulation(spec);
    const sim::RunState& state = simulation->state();
    for (int pop = 0; pop < 2; ++pop) {
      const auto& own = state.populations[static_cast<std::size_t>(pop)];
      CHECK(own.theory_amount.size() == 0);
      const auto it = std::find_if(own.params.begin(), own.params.end(),
                                   [](const auto& named) { return named.first == "leader_alpha"; });
      REQUIRE(it != own.params.end());
      CHECK(it->second.array().isNaN().all());
    }
    const test::Record one = test::run(spec, 1);
    const test::Record four = test::run(spec, 4);
    for (std::size_t k = 0; k < one.amount.size(); ++k) {
      for (std::size_t pop = 0; pop < one.amount[k].size(); ++pop) {
        CHECK(one.amount[k][pop] == four.amount[k][pop]);
        CHECK(one.wealth[k + 1][pop] == four.wealth[k + 1][pop]);
      }
    }
  }
}
