#include <doctest/doctest.h>

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <sstream>
#include <vector>

#include "sim/error.hpp"
#include "sim/theory/absolute_herd.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/mutual_game.hpp"
#include "support/best_response.hpp"
#include "support/golden.hpp"

using namespace herdsim::theory;
using herdsim::test::close_rel;

namespace {

ThetaMatrix theta_from(int n, const std::vector<Eigen::Triplet<double>>& entries) {
  ThetaMatrix theta(n, n);
  theta.setFromTriplets(entries.begin(), entries.end());
  return theta;
}

// A game of N agents with the given alpha, x0 = 10 and weights.
MutualGame make_game(const std::vector<double>& alpha, const std::vector<Eigen::Triplet<double>>& entries) {
  MutualGame g;
  const int n = static_cast<int>(alpha.size());
  g.alpha = Eigen::Map<const Eigen::VectorXd>(alpha.data(), n);
  g.x0 = Eigen::VectorXd::Constant(n, 10.0);
  g.theta = theta_from(n, entries);
  return g;
}

// Ring: each agent linked to `reach` neighbours on each side with weights from `weight(i, j)`.
template <class Weight>
MutualGame ring_game(int n, int reach, Weight weight) {
  MutualGame g;
  g.alpha.resize(n);
  g.x0 = Eigen::VectorXd::Constant(n, 10.0);
  std::vector<Eigen::Triplet<double>> entries;
  for (int i = 0; i < n; ++i) {
    g.alpha(i) = 0.09 + 0.68 * ((i * 7919) % 101) / 100.0;
    for (int d = 1; d <= reach; ++d) {
      entries.emplace_back(i, (i + d) % n, weight(i, (i + d) % n));
      entries.emplace_back(i, (i + n - d) % n, weight(i, (i + n - d) % n));
    }
  }
  g.theta = theta_from(n, entries);
  return g;
}

// pi^T L for L = diag(rowsum) - Theta.
Eigen::VectorXd left_laplacian(const ThetaMatrix& theta, const Eigen::VectorXd& pi) {
  const Eigen::VectorXd row_sum = theta * Eigen::VectorXd::Ones(theta.rows());
  return pi.cwiseProduct(row_sum) - Eigen::VectorXd(theta.transpose() * pi);
}

}  // namespace

TEST_SUITE("theory.mutual_game") {
  TEST_CASE("mutual_influence_reconstructed.csv: every example within 1e-9 relative") {
    const auto rows = herdsim::test::read_golden("mutual_influence_reconstructed.csv");
    REQUIRE(rows.size() == 88);
    std::map<std::string, std::vector<const herdsim::test::GoldenRow*>> examples;
    for (const auto& row : rows) examples[row.str("example")].push_back(&row);
    REQUIRE(examples.size() == 3);
    for (const auto& [name, example] : examples) {
      CAPTURE(name);
      // One row per (agent, t); agents are numbered 0..N-1.
      int n = 0;
      for (const auto* row : example) n = std::max(n, static_cast<int>(row->num("agent")) + 1);
      MutualGame game;
      game.alpha.resize(n);
      game.x0.resize(n);
      std::vector<Eigen::Triplet<double>> entries;
      for (const auto* row : example) {
        if (row->num("t") != 0.0) continue;
        const int i = static_cast<int>(row->num("agent"));
        game.alpha(i) = row->num("alpha");
        game.x0(i) = row->num("x0");
        std::istringstream weights(row->str("theta_row"));
        double w = 0.0;
        for (int j = 0; weights >> w; ++j) {
          if (w != 0.0) entries.emplace_back(i, j, w);
        }
      }
      game.theta = theta_from(n, entries);
      const MutualSolution sol = solve_mutual_game(game);
      CHECK(sol.residual() <= 1e-12);
      for (const auto* row : example) {
        const int i = static_cast<int>(row->num("agent"));
        const double t = row->num("t");
        CAPTURE(i);
        CAPTURE(t);
        CHECK(close_rel(sol.eta(i), row->num("eta"), 1e-9));
        CHECK(close_rel(sol.amount(i, t), row->num("P_star"), 1e-9));
        CHECK(close_rel(sol.own_merton(i, t), row->num("P_own_merton"), 1e-12));
      }
    }
  }

  TEST_CASE("unilateral limit: a zero-row leader makes the follower's problem P3 (continuous, rho 0 and 1)") {
    for (double rho : {0.0, 1.0}) {
      for (double theta : {1e-8, 1e-6, 1e-4}) {
        HerdProblem p;
        p.alpha = 0.529882;
        p.theta = theta;
        p.rho = rho;
        const AbsoluteHerdSolution ref = solve_absolute_herd(p);
        MutualGame g = make_game({p.alpha, p.alpha_leader}, {{0, 1, theta}});
        g.rho = rho;
        const MutualSolution sol = solve_mutual_game(g);
        CAPTURE(rho);
        CAPTURE(theta);
        CHECK(sol.ln_eta()(0) == doctest::Approx(ref.ln_eta()).epsilon(1e-12));
        CHECK(sol.ln_eta()(1) ==
              ln_eta0(g.schedule(), p.alpha_leader, 10.0));  // the leader is not influenced
        for (double t : {0.0, 2.5, 7.0, 10.0}) {
          const Eigen::VectorXd amounts = sol.amounts(t);
          CHECK(amounts(0) == doctest::Approx(ref.amount(t)).epsilon(1e-12));
          CHECK(amounts(1) == ref.leader_merton(t));
        }
      }
    }
  }

  TEST_CASE("annual steps: a zero-row leader reproduces the annual absolute-herd solution") {
    for (int steps_per_year : {1, 4}) {
      HerdProblem p;
      p.alpha = 0.766119;
      p.theta = 1e-7;
      p.time = TimeModel::discrete(steps_per_year);
      const AbsoluteHerdSolution ref = solve_absolute_herd(p);
      MutualGame g = make_game({p.alpha, p.alpha_leader}, {{0, 1, p.theta}});
      g.time = p.time;
      const MutualSolution sol = solve_mutual_game(g);
      CAPTURE(steps_per_year);
      CHECK(sol.ln_eta()(0) == doctest::Approx(ref.ln_eta()).epsilon(1e-12));
      for (int k = 0; k < 10 * steps_per_year; ++k) {
        const double t = k / static_cast<double>(steps_per_year);
        CHECK(sol.amount(0, t) == doctest::Approx(ref.amount(t)).epsilon(1e-12));
        CHECK(sol.own_merton(0, t) == doctest::Approx(ref.own_merton(t)).epsilon(1e-14));
      }
    }
  }

  TEST_CASE("the equilibrium satisfies each agent's conditions: ln H_i[P_i] = ln eta_i, annual steps too") {
    for (TimeModel time : {TimeModel::continuous(), TimeModel::annual()}) {
      MutualGame g = make_game({0.1, 0.3, 0.6, 0.77},
                               {{0, 1, 3e-8}, {1, 2, 5e-8}, {2, 3, 1e-7}, {3, 0, 2e-8}, {2, 0, 4e-8}});
      g.time = time;
      g.rho = 0.5;
      const MutualSolution sol = solve_mutual_game(g);
      const Schedule s = g.schedule();
      for (int i = 0; i < 4; ++i) {
        const double lnh = ln_h(s, g.alpha(i), g.x0(i), [&](double t) { return sol.amount(i, t); });
        CAPTURE(i);
        CHECK(lnh == doctest::Approx(sol.ln_eta()(i)).epsilon(1e-11));
      }
    }
  }

  TEST_CASE("three_agents_strong approaches the asymptotic strategy as Theta grows") {
    MutualGame g = make_game({0.1, 0.2, 0.5},
                             {{0, 1, 1.0}, {0, 2, 1.0}, {1, 0, 1.0}, {1, 2, 1.0}, {2, 0, 1.0}, {2, 1, 1.0}});
    double previous_gap = 0.0;
    for (double scale : {1.0, 10.0, 100.0}) {
      MutualGame scaled = g;
      scaled.theta *= scale;
      const MutualSolution sol = solve_mutual_game(scaled);
      double gap = 0.0;
      for (double t : {0.0, 5.0, 10.0}) {
        const double limit = asymptotic_amount(scaled, sol.ln_eta(), t);
        gap = std::max(gap, (sol.amounts(t).array() - limit).abs().maxCoeff() / limit);
      }
      CAPTURE(scale);
      CHECK(gap < 2e-3 / scale);
      if (previous_gap > 0.0) CHECK(gap < 0.2 * previous_gap);
      previous_gap = gap;
    }
  }

  TEST_CASE("asymptotic_amount works in log space for eta below 1e-300") {
    MutualGame g = make_game({0.2, 0.4}, {{0, 1, 1.0}, {1, 0, 1.0}});
    const Eigen::Vector2d ln_eta(-2000.0, -2000.0 + std::log(3.0));
    // Uniform pi: v (1 + 3) / (s2 G (0.2 + 3 * 0.4)).
    const double expected = 0.03 * 4.0 / (0.17 * 0.17 * 1.4) * std::exp(-0.04 * 10.0);
    CHECK(asymptotic_amount(g, ln_eta, 0.0) == doctest::Approx(expected).epsilon(1e-13));
  }

  TEST_CASE("stationary_weights: uniform when symmetric, pi^T L = 0 when not, rejects disconnected graphs") {
    const ThetaMatrix sym =
        theta_from(4, {{0, 1, 2.0}, {1, 0, 2.0}, {1, 2, 0.5}, {2, 1, 0.5}, {2, 3, 1.0}, {3, 2, 1.0}});
    const Eigen::VectorXd uniform = stationary_weights(sym);
    for (int i = 0; i < 4; ++i) CHECK(uniform(i) == doctest::Approx(0.25).epsilon(1e-14));

    const ThetaMatrix asym = theta_from(3, {{0, 1, 1.0}, {0, 2, 2.0}, {1, 0, 3.0}, {1, 2, 1.0}, {2, 0, 1.0}});
    const Eigen::VectorXd pi = stationary_weights(asym);
    CHECK(pi.sum() == doctest::Approx(1.0).epsilon(1e-15));
    CHECK(pi.minCoeff() > 0.0);
    CHECK(left_laplacian(asym, pi).cwiseAbs().maxCoeff() < 1e-15);
    // By hand: pi = (4, 1, 9) / 14 solves pi^T L = 0 for this Theta.
    CHECK(pi(0) == doctest::Approx(4.0 / 14.0).epsilon(1e-14));
    CHECK(pi(1) == doctest::Approx(1.0 / 14.0).epsilon(1e-14));
    CHECK(pi(2) == doctest::Approx(9.0 / 14.0).epsilon(1e-14));

    const ThetaMatrix one_way = theta_from(3, {{0, 1, 1.0}, {1, 2, 1.0}});
    CHECK_THROWS_WITH_AS((void)stationary_weights(one_way), doctest::Contains("strongly connected"),
                         herdsim::InputError);
  }

  TEST_CASE("dense and sparse methods agree on a random 50-agent network to 1e-10") {
    std::mt19937_64 rng(20240607);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    const int n = 50;
    MutualGame g;
    g.alpha.resize(n);
    g.x0.resize(n);
    std::vector<Eigen::Triplet<double>> entries;
    for (int i = 0; i < n; ++i) {
      g.alpha(i) = 0.09 + 0.68 * unit(rng);
      g.x0(i) = 5.0 + 15.0 * unit(rng);
      for (int j = 0; j < n; ++j) {
        if (j != i && unit(rng) < 0.1) entries.emplace_back(i, j, 1e-8 * std::floor(1.0 + 10.0 * unit(rng)));
      }
    }
    g.theta = theta_from(n, entries);
    const MutualSolution dense = solve_mutual_game(g, {MutualMethod::dense});
    const MutualSolution sparse = solve_mutual_game(g, {MutualMethod::sparse});
    CHECK(dense.method_used() == MutualMethod::dense);
    CHECK(sparse.method_used() == MutualMethod::sparse);
    CHECK(dense.residual() <= 1e-12);
    CHECK(sparse.residual() <= 1e-12);
    CHECK((dense.ln_eta() - sparse.ln_eta()).cwiseAbs().maxCoeff() < 1e-10);
    for (double t : {0.0, 3.3, 10.0}) {
      const Eigen::VectorXd a = dense.amounts(t);
      const Eigen::VectorXd b = sparse.amounts(t);
      CHECK(((a - b).array() / b.array()).abs().maxCoeff() < 1e-10);
    }
    // Herding pulls agents toward each other; nobody ends below their own H floor.
    for (int i = 0; i < n; ++i) CHECK(dense.ln_eta()(i) >= ln_eta0(g.schedule(), g.alpha(i), g.x0(i)));
  }

  TEST_CASE("a ring of 2000 agents converges to residual 1e-12 (sparse path)") {
    const MutualGame g = ring_game(2000, 2, [](int i, int j) { return 1e-8 * (1.0 + ((i + 3 * j) % 10)); });
    const MutualSolution sol = solve_mutual_game(g);
    CHECK(sol.method_used() == MutualMethod::sparse);
    CHECK(sol.residual() <= 1e-12);
    CHECK(sol.amounts(5.0).allFinite());
  }

  TEST_CASE("a free agent keeps eta0 exactly; a single agent is Merton") {
    MutualGame g = make_game({0.3}, {});
    const MutualSolution sol = solve_mutual_game(g);
    CHECK(sol.ln_eta()(0) == ln_eta0(g.schedule(), 0.3, 10.0));
    CHECK(sol.amount(0, 4.0) == sol.own_merton(0, 4.0));
    CHECK(sol.residual() == 0.0);
  }

  TEST_CASE("an iteration cap that is too small throws SolverError with the residual") {
    MutualGame g = make_game({0.1, 0.2, 0.5},
                             {{0, 1, 1.0}, {0, 2, 1.0}, {1, 0, 1.0}, {1, 2, 1.0}, {2, 0, 1.0}, {2, 1, 1.0}});
    MutualOptions options;
    options.max_iterations = 1;
    CHECK_THROWS_WITH_AS((void)solve_mutual_game(g, options), doctest::Contains("residual"),
                         herdsim::SolverError);
  }

  TEST_CASE("invalid games are rejected with the field's name and the agent index") {
    const MutualGame good = make_game({0.2, 0.5}, {{0, 1, 1e-8}});
    MutualGame g = good;
    g.theta = theta_from(2, {{0, 1, -1e-8}});
    CHECK_THROWS_WITH_AS(validate(g), doctest::Contains("theta(0,1)"), herdsim::InputError);
    g = good;
    g.theta = theta_from(2, {{1, 1, 1e-8}});
    CHECK_THROWS_WITH_AS(validate(g), doctest::Contains("theta(1,1)"), herdsim::InputError);
    g = good;
    g.alpha(1) = 0.0;
    CHECK_THROWS_WITH_AS((void)solve_mutual_game(g), doctest::Contains("alpha[1]"), herdsim::InputError);
    g = good;
    g.x0(0) = -1.0;
    CHECK_THROWS_WITH_AS(validate(g), doctest::Contains("x0[0]"), herdsim::InputError);
    g = good;
    g.x0.resize(3);
    CHECK_THROWS_WITH_AS(validate(g), doctest::Contains("x0"), herdsim::InputError);
    g = good;
    g.theta = ThetaMatrix(2, 3);
    CHECK_THROWS_WITH_AS(validate(g), doctest::Contains("theta must be N x N"), herdsim::InputError);
    g = good;
    g.time = TimeModel::annual();
    g.horizon = 2.5;
    CHECK_THROWS_AS(validate(g), herdsim::InputError);
  }
}

namespace {

/// Two correlated assets (correlation 0.4), the second with a negative excess return.
struct TwoAssets {
  Eigen::MatrixXd covariance{{0.17 * 0.17, 0.4 * 0.17 * 0.25}, {0.4 * 0.17 * 0.25, 0.25 * 0.25}};
  Eigen::VectorXd excess{{0.03, -0.01}};
};

/// Three agents with different alpha and different, asymmetric weights.
MutualGame three_agents(double scale) {
  return make_game({0.3, 0.766119, 1.5}, {{0, 1, 5e-8 * scale},
                                          {0, 2, 2e-8 * scale},
                                          {1, 0, 1e-7 * scale},
                                          {1, 2, 4e-8 * scale},
                                          {2, 0, 3e-8 * scale},
                                          {2, 1, 6e-8 * scale}});
}

/// Agent i's brute-force best response to the others' paths (nodes x N each) in the discretised game on the
/// decisions of `g`, with the penalty form `d`; the own Merton path Sigma^{-1} v / (alpha G) as the start.
Eigen::MatrixXd brute_best_response(const MutualGame& g, const TwoAssets& m, int i,
                                    const std::vector<Eigen::MatrixXd>& paths, const Eigen::MatrixXd& d,
                                    const std::vector<bool>& free) {
  const Schedule s = g.schedule();
  const int nodes = s.steps();
  herdsim::test::DiscreteBestResponse b;
  b.sigma = m.covariance;
  b.v = m.excess;
  b.dt = s.step_years();
  b.growth.resize(nodes);
  for (int k = 0; k < nodes; ++k) b.growth[k] = s.growth(k * b.dt);
  b.terminal_growth = std::exp(s.ln_terminal_growth());
  b.alpha = g.alpha(i);
  b.x0 = g.x0(i);
  b.penalty = d;
  b.free = free;
  for (ThetaMatrix::InnerIterator it(g.theta, i); it; ++it)
    b.others.emplace_back(it.value(), paths[static_cast<std::size_t>(it.col())]);
  const Eigen::VectorXd direction = m.covariance.llt().solve(m.excess);
  Eigen::MatrixXd start(nodes, 2);
  for (int k = 0; k < nodes; ++k) start.row(k) = direction.transpose() / (g.alpha(i) * b.growth[k]);
  return b.solve(start);
}

}  // namespace

TEST_SUITE("theory.mutual_game.assets") {
  TEST_CASE("P2 in 2 correlated assets is a Nash equilibrium: each path is the brute-force best response") {
    const TwoAssets m;
    MutualGame g = three_agents(1.0);
    g.rho = 0.4;
    g.time = TimeModel::discrete(4);  // 40 decisions over T = 10
    const MutualSolution sol = solve_mutual_game(g, m.covariance, m.excess);
    CHECK(sol.residual() < 1e-12);
    CHECK(sol.assets() == 2);
    const Schedule s = g.schedule();
    const int nodes = s.steps();
    const double dt = s.step_years();
    std::vector<Eigen::MatrixXd> paths(3, Eigen::MatrixXd(nodes, 2));
    for (int k = 0; k < nodes; ++k) {
      const Eigen::MatrixXd amounts = sol.asset_amounts(k * dt);
      for (int i = 0; i < 3; ++i) paths[static_cast<std::size_t>(i)].row(k) = amounts.row(i);
    }
    Eigen::MatrixXd d = Eigen::MatrixXd::Zero(nodes, nodes);  // (1/2) Sum_k dt G_k^rho |P_i - P_j|^2
    for (int k = 0; k < nodes; ++k) d(k, k) = dt * std::pow(s.growth(k * dt), g.rho);
    const Eigen::VectorXd direction = m.covariance.llt().solve(m.excess);
    double most = 0.0;  // the largest herding shift (the test must see herding; alpha 0.3 barely herds)
    for (int i = 0; i < 3; ++i) {
      const Eigen::MatrixXd brute = brute_best_response(g, m, i, paths, d, std::vector<bool>(nodes, true));
      const Eigen::MatrixXd& mine = paths[static_cast<std::size_t>(i)];
      double worst = 0.0, herding = 0.0;
      for (int k = 0; k < nodes; ++k) {
        worst = std::max(worst, (mine.row(k) - brute.row(k)).norm() / brute.row(k).norm());
        const Eigen::RowVectorXd merton = direction.transpose() / (g.alpha(i) * s.growth(k * dt));
        herding = std::max(herding, (mine.row(k) - merton).norm() / merton.norm());
      }
      MESSAGE("P2, 2 assets, agent " << i << ": largest relative gap to the brute-force best response "
                                     << worst << ", herding shift " << herding);
      CHECK(worst < 1e-9);
      most = std::max(most, herding);
      CHECK(mine(0, 1) < 0.0);  // the negative excess return: a short position
    }
    CHECK(most > 0.5);
  }

  TEST_CASE("P2: one asset through the N-asset solver equals the one-asset solver bit for bit") {
    for (const TimeModel time : {TimeModel::continuous(), TimeModel::annual(), TimeModel::discrete(12)}) {
      for (const double rho : {0.0, 0.5}) {
        for (const double mu : {0.07, 0.01, 0.04}) {  // v > 0, v < 0, v = 0
          MutualGame g = three_agents(1.0);
          g.market.mu = mu;
          g.rho = rho;
          g.time = time;
          const Eigen::MatrixXd covariance{{g.market.sigma * g.market.sigma}};
          const MutualSolution one = solve_mutual_game(g);
          const MutualSolution many =
              solve_mutual_game(g, covariance, Eigen::VectorXd{{g.market.excess_return()}});
          CAPTURE(mu);
          CAPTURE(rho);
          CHECK(many.ln_eta() == one.ln_eta());
          CHECK(many.residual() == one.residual());
          CHECK(many.iterations() == one.iterations());
          for (int k = 0; k <= 10; ++k) CHECK(many.asset_amounts(k).col(0) == one.amounts(k));
        }
      }
    }
  }

  TEST_CASE("P2 in N assets: Theta = 0 plays the vector Merton; a bad covariance is rejected") {
    const TwoAssets m;
    MutualGame g = three_agents(0.0);
    g.theta = ThetaMatrix(3, 3);
    const MutualSolution sol = solve_mutual_game(g, m.covariance, m.excess);
    const Eigen::VectorXd direction = m.covariance.llt().solve(m.excess);
    for (int i = 0; i < 3; ++i) {
      const Eigen::VectorXd merton = direction / (g.alpha(i) * g.schedule().growth(2.0));
      CHECK((sol.asset_amounts(2.0).row(i).transpose() - merton).norm() < 1e-14 * merton.norm());
    }
    const Eigen::MatrixXd singular{{1.0, 1.0}, {1.0, 1.0}};
    CHECK_THROWS_WITH_AS((void)solve_mutual_game(g, singular, m.excess),
                         doctest::Contains("positive definite"), herdsim::InputError);
  }
}
