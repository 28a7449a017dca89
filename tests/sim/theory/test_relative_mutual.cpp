#include <doctest/doctest.h>

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "sim/error.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/relative_herd.hpp"
#include "sim/theory/relative_mutual.hpp"
#include "support/best_response.hpp"

using namespace herdsim::theory;

namespace {

ThetaMatrix theta_from(int n, std::initializer_list<std::tuple<int, int, double>> entries) {
  ThetaMatrix theta(n, n);
  for (const auto& [i, j, value] : entries) theta.insert(i, j) = value;
  theta.makeCompressed();
  return theta;
}

MutualGame leader_and_follower(double alpha, double theta) {
  MutualGame g;
  g.alpha = Eigen::Vector2d(defaults::alpha_leader, alpha);
  g.x0 = Eigen::Vector2d(defaults::x0, defaults::x0);
  g.theta = theta_from(2, {{1, 0, theta}});
  return g;
}

MutualGame ring(int n, double theta, bool identical) {
  MutualGame g;
  g.alpha.resize(n);
  g.x0 = Eigen::VectorXd::Constant(n, 10.0);
  g.theta.resize(n, n);
  for (int i = 0; i < n; ++i) {
    g.alpha(i) = identical ? 0.5 : 0.1 + 0.7 * ((i * 7) % n) / static_cast<double>(n);
    g.theta.insert(i, (i + 1) % n) = theta / 2.0;
    g.theta.insert(i, (i + n - 1) % n) = theta / 2.0;
  }
  g.theta.makeCompressed();
  return g;
}

RelativeMutualOptions with_bc(BoundaryCondition bc) {
  RelativeMutualOptions o;
  o.bc = bc;
  return o;
}

}  // namespace

TEST_SUITE("theory.relative_mutual") {
  TEST_CASE("N = 2 with the leader's row zero reproduces the P1 solver (pinned and natural)") {
    // Second-order discretisation on the graded grid against P1's fourth-order Numerov: measured
    // deviations are below 1e-7 (pinned) and 1e-6 (natural: its end rows are the O(h) discrete
    // transversality conditions) of the leader-follower gap |P_alpha - Pbar|; held to 1e-6 and 1e-5.
    for (const auto bc : {BoundaryCondition::pinned, BoundaryCondition::natural}) {
      for (const double alpha : {0.766119, 0.0911233}) {
        for (const double theta : {1e-8, 1e-6, 1e-4, 1e-2}) {
          CAPTURE(alpha);
          CAPTURE(theta);
          CAPTURE(bc == BoundaryCondition::natural);
          HerdProblem p;
          p.alpha = alpha;
          p.theta = theta;
          RelativeHerdOptions ro;
          ro.bc = bc;
          const auto p1 = solve_relative_herd(p, ro);
          const auto sol = solve_relative_mutual(leader_and_follower(alpha, theta), with_bc(bc));
          CHECK(sol.residual() < 1e-10);
          CHECK(std::abs(sol.ln_eta()(1) - p1.ln_eta()) < 1e-7 * std::abs(p1.ln_eta()));
          const double tol = bc == BoundaryCondition::pinned ? 1e-6 : 1e-5;
          for (int k = 0; k <= 1000; ++k) {
            const double t = 0.01 * k;
            const double gap = std::abs(p1.own_merton(t) - p1.leader_merton(t));
            CHECK(std::abs(sol.amount(1, t) - p1.amount(t)) <= tol * gap);
            CHECK(sol.amount(0, t) == doctest::Approx(p1.leader_merton(t)).epsilon(1e-14));
          }
        }
      }
    }
  }

  TEST_CASE("free start (a restart): N = 2 with the leader's row zero reproduces P1's free start") {
    // As above; the free start is a natural end (O(h) discrete transversality): held to 1e-5 of the gap.
    for (const double theta : {1e-6, 1e-2}) {
      CAPTURE(theta);
      HerdProblem p;
      p.alpha = 0.766119;
      p.theta = theta;
      p.horizon = 6.0;
      p.x0 = 13.0;
      RelativeHerdOptions ro;
      ro.free_start = true;
      const auto p1 = solve_relative_herd(p, ro);
      MutualGame g = leader_and_follower(p.alpha, theta);
      g.horizon = p.horizon;
      g.x0 = Eigen::Vector2d(9.0, p.x0);
      RelativeMutualOptions o;
      o.free_start = true;
      const auto sol = solve_relative_mutual(g, o);
      CHECK(sol.residual() < 1e-10);
      CHECK(std::abs(sol.ln_eta()(1) - p1.ln_eta()) < 1e-7 * std::abs(p1.ln_eta()));
      for (int k = 0; k <= 600; ++k) {
        const double t = 0.01 * k;
        const double gap = std::abs(p1.own_merton(t) - p1.leader_merton(t));
        CHECK(std::abs(sol.amount(1, t) - p1.amount(t)) <= 1e-5 * gap);
      }
      CHECK(sol.amount(1, 6.0) == doctest::Approx(p1.own_merton(6.0)).epsilon(1e-12));  // pinned end
      CHECK(std::abs(sol.amount(1, 0.0) - p1.own_merton(0.0)) >
            1e-3 * std::abs(p1.own_merton(0.0) - p1.leader_merton(0.0)));
    }
  }

  TEST_CASE("Nash property: no agent gains by perturbing its own path (discretised J_i)") {
    MutualGame g;
    g.alpha = Eigen::Vector3d(0.2, 0.5, 0.766119);
    g.x0 = Eigen::Vector3d(10.0, 8.0, 12.0);
    g.theta = theta_from(3, {{0, 1, 1e-3}, {1, 0, 2e-3}, {1, 2, 1e-3}, {2, 0, 5e-4}, {2, 1, 3e-3}});
    for (const auto bc : {BoundaryCondition::pinned, BoundaryCondition::natural}) {
      RelativeMutualOptions o = with_bc(bc);
      o.max_step = 0.25;  // coarse grid: the test is about the discrete problem
      o.max_h_sqrt_q = 0.2;
      o.grading = 0.2;
      const auto sol = solve_relative_mutual(g, o);
      CAPTURE(bc == BoundaryCondition::natural);
      CHECK(sol.nodes() < 100);
      CHECK(sol.residual() < 1e-10);
      const Eigen::MatrixXd& paths = sol.grid_amount();
      const Eigen::VectorXd& t = sol.grid_time();
      const int last = sol.nodes() - 1;
      for (int i = 0; i < 3; ++i) {
        const double j0 = sol.objective(i, paths);
        CHECK(sol.ln_h(i, paths.col(i)) == doctest::Approx(sol.ln_eta()(i)).epsilon(1e-12));
        for (int d = 0; d < 4; ++d) {
          Eigen::VectorXd dir(sol.nodes());
          for (int k = 0; k <= last; ++k) {
            const double x = t(k) / g.horizon;
            // Directions vanish at the ends for pinned BCs; natural ones also move the ends.
            const double bump = std::sin(M_PI * (d + 1) * x);
            dir(k) = bc == BoundaryCondition::pinned ? bump : bump + std::cos(M_PI * d * x);
          }
          for (const double eps : {1e-2, 1e-3}) {
            Eigen::MatrixXd up = paths, down = paths;
            up.col(i) += eps * dir;
            down.col(i) -= eps * dir;
            const double j_up = sol.objective(i, up);
            const double j_down = sol.objective(i, down);
            CAPTURE(i);
            CAPTURE(d);
            CAPTURE(eps);
            CHECK(j_up < j0);
            CHECK(j_down < j0);
            // Stationary: the first-order change is far below the second-order one.
            CHECK(std::abs(j_up - j_down) < 1e-4 * (2.0 * j0 - j_up - j_down));
          }
        }
      }
    }
  }

  TEST_CASE("Theta = 0: every agent plays its own Merton path") {
    MutualGame g = ring(5, 0.0, false);
    g.theta = ThetaMatrix(5, 5);
    const auto sol = solve_relative_mutual(g);
    CHECK(sol.residual() == 0.0);
    const Schedule schedule = g.schedule();
    for (int i = 0; i < 5; ++i) {
      CHECK(sol.ln_eta()(i) == ln_eta0(schedule, g.alpha(i), g.x0(i)));
      for (const double t : {0.0, 0.3, 5.0, 9.99, 10.0})
        CHECK(sol.amount(i, t) == doctest::Approx(merton_amount(schedule, g.alpha(i), t)).epsilon(1e-14));
    }
  }

  TEST_CASE("identical agents on a ring stay identical; heterogeneous ones converge (residual < 1e-10)") {
    for (const auto bc : {BoundaryCondition::pinned, BoundaryCondition::natural}) {
      RelativeMutualOptions o = with_bc(bc);
      o.max_step = 0.1;
      const auto sol = solve_relative_mutual(ring(12, 1e-6, true), o);
      CHECK(sol.residual() < 1e-10);
      for (int i = 1; i < 12; ++i) {
        CHECK(sol.ln_eta()(i) == doctest::Approx(sol.ln_eta()(0)).epsilon(1e-13));
        for (const double t : {0.0, 0.001, 1.0, 9.5, 10.0})
          CHECK(sol.amount(i, t) == doctest::Approx(sol.amount(0, t)).epsilon(1e-12));
      }
      // Identical agents imitate identical paths: each plays its own Merton path.
      for (const double t : {0.0, 2.5, 10.0})
        CHECK(sol.amount(3, t) == doctest::Approx(sol.own_merton(3, t)));
    }
    // Heterogeneous agents: the direct and the Gauss-Seidel linear algebra give the same equilibrium.
    RelativeMutualOptions direct;
    direct.max_step = 0.1;
    direct.method = RelativeMutualMethod::direct;
    const auto het = solve_relative_mutual(ring(10, 1e-6, false), direct);
    CHECK(het.residual() < 1e-10);
    RelativeMutualOptions iterative = direct;
    iterative.method = RelativeMutualMethod::iterative;
    const auto het_it = solve_relative_mutual(ring(10, 1e-6, false), iterative);
    CHECK(het_it.residual() < 1e-10);
    CHECK(het_it.method_used() == RelativeMutualMethod::iterative);
    for (int i = 0; i < 10; i += 3) {
      for (const double t : {0.0, 0.01, 3.0, 10.0}) {
        CAPTURE(het_it.amount(i, t) - het.amount(i, t));
        CHECK(het_it.amount(i, t) == doctest::Approx(het.amount(i, t)).epsilon(1e-9));
      }
    }
  }

  TEST_CASE("discrete time: the decision steps are the grid") {
    MutualGame g = ring(8, 1e-3, false);
    g.time = TimeModel::annual();
    for (const auto bc : {BoundaryCondition::pinned, BoundaryCondition::natural}) {
      const auto sol = solve_relative_mutual(g, with_bc(bc));
      CHECK(sol.nodes() == 10);
      CHECK(sol.residual() < 1e-10);
      if (bc == BoundaryCondition::pinned) {
        for (int i = 0; i < 8; ++i) {
          CHECK(sol.amount(i, 0.0) == doctest::Approx(sol.own_merton(i, 0.0)).epsilon(1e-14));
          CHECK(sol.amount(i, 9.0) == doctest::Approx(sol.own_merton(i, 9.0)).epsilon(1e-14));
        }
      }
      CHECK(sol.amount(2, 4.5) == sol.grid_amount()(4, 2));
    }
  }

  TEST_CASE("grid: n versus a twice finer grid") {
    const MutualGame g = ring(6, 1e-6, false);
    const auto coarse = solve_relative_mutual(g);
    RelativeMutualOptions fine;
    fine.max_h_sqrt_q = 0.005;
    fine.grading = 0.005;
    fine.max_step = 0.01;
    const auto finer = solve_relative_mutual(g, fine);
    CHECK(finer.nodes() > coarse.nodes() * 3 / 2);
    for (int i = 0; i < 6; ++i) {
      const double gap = std::abs(g.alpha(i) - g.alpha((i + 1) % 6)) + 1e-3;
      for (const double t : {0.0, 0.002, 0.5, 5.0, 9.999}) {
        CHECK(std::abs(coarse.amount(i, t) - finer.amount(i, t)) < 1e-6 * gap * 20.0);
      }
    }
  }

  TEST_CASE("bad input names the field") {
    MutualGame g = ring(3, 1e-6, false);
    g.theta.coeffRef(1, 2) = -1e-6;
    CHECK_THROWS_WITH_AS(solve_relative_mutual(g), doctest::Contains("theta(1,2)"), herdsim::InputError);
    MutualGame sizes = ring(3, 1e-6, false);
    sizes.x0 = Eigen::Vector2d(10.0, 10.0);
    CHECK_THROWS_WITH_AS(solve_relative_mutual(sizes), doctest::Contains("x0"), herdsim::InputError);
    MutualGame square = ring(3, 1e-6, false);
    square.theta = ThetaMatrix(3, 4);
    CHECK_THROWS_WITH_AS(solve_relative_mutual(square), doctest::Contains("theta must be N x N"),
                         herdsim::InputError);
    MutualGame rho = ring(3, 1e-6, false);
    rho.rho = 1.0;
    CHECK_THROWS_WITH_AS(solve_relative_mutual(rho), doctest::Contains("rho"), herdsim::InputError);
    RelativeMutualOptions bad;
    bad.max_step = 0.0;
    CHECK_THROWS_WITH_AS(solve_relative_mutual(ring(3, 1e-6, false), bad), doctest::Contains("max_step"),
                         herdsim::InputError);
  }
}

TEST_SUITE("theory.relative_mutual.assets") {
  TEST_CASE("the relative game in 2 correlated assets is a Nash equilibrium: brute-force best responses") {
    // Two assets (correlation 0.4), the second with a negative excess return; three agents, quarterly
    // decisions over T = 10 (the decisions are the grid, so the discretised game is the one solved).
    const Eigen::MatrixXd sigma{{0.17 * 0.17, 0.4 * 0.17 * 0.25}, {0.4 * 0.17 * 0.25, 0.25 * 0.25}};
    const Eigen::VectorXd v{{0.03, -0.01}};
    MutualGame g;
    g.alpha = Eigen::Vector3d(0.2, 0.5, 0.766119);
    g.x0 = Eigen::Vector3d(10.0, 8.0, 12.0);
    g.theta = theta_from(3, {{0, 1, 1e-3}, {1, 0, 2e-3}, {1, 2, 1e-3}, {2, 0, 5e-4}, {2, 1, 3e-3}});
    g.time = TimeModel::discrete(4);
    const Schedule s = g.schedule();
    const int nodes = s.steps();
    const double dt = s.step_years();
    Eigen::MatrixXd stiffness = Eigen::MatrixXd::Zero(nodes, nodes);  // Sum_e (Delta_e x)^2 / dt
    for (int e = 0; e + 1 < nodes; ++e) {
      stiffness(e, e) += 1.0 / dt;
      stiffness(e + 1, e + 1) += 1.0 / dt;
      stiffness(e, e + 1) -= 1.0 / dt;
      stiffness(e + 1, e) -= 1.0 / dt;
    }
    const Eigen::VectorXd direction = sigma.llt().solve(v);
    for (const auto bc : {BoundaryCondition::pinned, BoundaryCondition::natural}) {
      CAPTURE(bc == BoundaryCondition::natural);
      const auto sol = solve_relative_mutual(g, sigma, v, with_bc(bc));
      CHECK(sol.residual() < 1e-10);
      CHECK(sol.nodes() == nodes);
      std::vector<Eigen::MatrixXd> paths(3, Eigen::MatrixXd(nodes, 2));
      for (int k = 0; k < nodes; ++k) {
        const Eigen::MatrixXd amounts = sol.asset_amounts(k * dt);
        for (int i = 0; i < 3; ++i) paths[static_cast<std::size_t>(i)].row(k) = amounts.row(i);
      }
      double most = 0.0;  // the largest herding shift: the test must see herding
      std::vector<bool> free(static_cast<std::size_t>(nodes), true);
      if (bc == BoundaryCondition::pinned) free.front() = free.back() = false;
      for (int i = 0; i < 3; ++i) {
        herdsim::test::DiscreteBestResponse b;
        b.sigma = sigma;
        b.v = v;
        b.dt = dt;
        b.growth.resize(nodes);
        for (int k = 0; k < nodes; ++k) b.growth[k] = s.growth(k * dt);
        b.terminal_growth = std::exp(s.ln_terminal_growth());
        b.alpha = g.alpha(i);
        b.x0 = g.x0(i);
        b.penalty = stiffness;
        b.free = free;
        for (ThetaMatrix::InnerIterator it(g.theta, i); it; ++it)
          b.others.emplace_back(it.value(), paths[static_cast<std::size_t>(it.col())]);
        Eigen::MatrixXd start(nodes, 2);  // own Merton (the pinned ends stay there)
        for (int k = 0; k < nodes; ++k) start.row(k) = direction.transpose() / (g.alpha(i) * b.growth[k]);
        const Eigen::MatrixXd brute = b.solve(start);
        const Eigen::MatrixXd& mine = paths[static_cast<std::size_t>(i)];
        double worst = 0.0, herding = 0.0;
        for (int k = 0; k < nodes; ++k) {
          worst = std::max(worst, (mine.row(k) - brute.row(k)).norm() / brute.row(k).norm());
          herding = std::max(herding, (mine.row(k) - start.row(k)).norm() / start.row(k).norm());
        }
        MESSAGE("relative game, 2 assets, agent " << i << ": largest relative gap to the brute-force best "
                                                  << "response " << worst << ", herding shift " << herding);
        CHECK(worst < 1e-9);
        most = std::max(most, herding);
      }
      CHECK(most > 0.02);
    }
  }

  TEST_CASE(
      "the relative game: one asset through the N-asset solver equals the one-asset solver bit for bit") {
    for (const auto bc : {BoundaryCondition::pinned, BoundaryCondition::natural}) {
      for (const double mu : {0.07, 0.01}) {  // v > 0, v < 0
        MutualGame g = ring(6, 1e-3, false);
        g.market.mu = mu;
        const Eigen::MatrixXd covariance{{g.market.sigma * g.market.sigma}};
        const auto one = solve_relative_mutual(g, with_bc(bc));
        const auto many =
            solve_relative_mutual(g, covariance, Eigen::VectorXd{{g.market.excess_return()}}, with_bc(bc));
        CAPTURE(mu);
        CHECK(many.ln_eta() == one.ln_eta());
        CHECK(many.iterations() == one.iterations());
        CHECK(many.grid_time() == one.grid_time());
        CHECK(many.grid_amount() == one.grid_amount());
        for (const double t : {0.0, 0.37, 5.0, 9.99}) CHECK(many.asset_amounts(t).col(0) == one.amounts(t));
      }
    }
  }
}
