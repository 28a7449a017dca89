#include <doctest/doctest.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "sim/error.hpp"
#include "sim/theory/absolute_herd.hpp"
#include "sim/theory/merton.hpp"
#include "support/golden.hpp"

using namespace herdsim::theory;
using herdsim::test::close_rel;

namespace {
HerdProblem problem_from(const herdsim::test::GoldenRow& row, TimeModel time) {
  HerdProblem p;
  p.alpha = row.num("alpha");
  p.theta = row.num("theta");
  if (row.cells.count("rho") != 0U) p.rho = row.num("rho");
  p.time = time;
  return p;
}
}  // namespace

TEST_SUITE("theory.absolute_herd") {
  TEST_CASE("absolute_herd_p3.csv: every configuration and time point within the stated tolerances") {
    const auto rows = herdsim::test::read_golden("absolute_herd_p3.csv");
    REQUIRE(rows.size() == 1584);
    std::size_t checked = 0;
    for (std::size_t i = 0; i < rows.size(); i += 11) {  // 11 time points per configuration
      const HerdProblem problem = problem_from(rows[i], TimeModel::continuous());
      const AbsoluteHerdSolution sol = solve_absolute_herd(problem);
      const AbsoluteHerdSolution repo = solve_absolute_herd(problem, EtaFormula::repo_precedence_bug);
      const Schedule schedule = problem.schedule();
      CAPTURE(rows[i].str("alpha_label"));
      CAPTURE(problem.theta);
      CAPTURE(problem.rho);
      CHECK(close_rel(sol.eta(), rows[i].num("eta"), 1e-10));
      CHECK(close_rel(sol.ln_eta0(), rows[i].num("ln_eta0"), 1e-12));
      CHECK(close_rel(repo.eta(), rows[i].num("eta_repo_variant"), 1e-10));
      CHECK(close_rel(sol.expected_utility(), rows[i].num("expected_utility"), 1e-9));
      CHECK(close_rel(sol.deviation_penalty(), rows[i].num("deviation_penalty"), 1e-9));
      CHECK(close_rel(sol.objective(), rows[i].num("objective_J"), 1e-9));
      const double ln_h_opt =
          ln_h(schedule, problem.alpha, problem.x0, [&](double t) { return sol.amount(t); });
      CHECK(close_rel(ln_h_opt, rows[i].num("ln_H_at_opt"), 1e-10));
      for (std::size_t j = i; j < i + 11; ++j) {
        const auto& row = rows[j];
        const double t = row.num("t");
        CAPTURE(t);
        CHECK(close_rel(sol.amount(t), row.num("P_star"), 1e-10));
        CHECK(close_rel(sol.opinion(t), row.num("opinion_w"), 1e-10));
        CHECK(close_rel(sol.own_merton(t), row.num("P_own_merton"), 1e-12));
        CHECK(close_rel(sol.leader_merton(t), row.num("P_leader_merton"), 1e-12));
        CHECK(close_rel(repo.amount(t), row.num("P_star_repo_variant"), 1e-10));
        const auto mom = wealth_moments(
            schedule, problem.x0, [&](double s) { return sol.amount(s); }, t);
        CHECK(close_rel(mom.mean, row.num("E_wealth_t"), 1e-9));
        CHECK(close_rel(mom.variance, row.num("Var_wealth_t"), 1e-9));
        ++checked;
      }
    }
    CHECK(checked == 1584);
  }

  TEST_CASE("absolute_herd_discrete.csv: annual-step optimum, 1e-10 relative") {
    const auto rows = herdsim::test::read_golden("absolute_herd_discrete.csv");
    REQUIRE(rows.size() == 710);
    for (std::size_t i = 0; i < rows.size(); i += 10) {
      const AbsoluteHerdSolution sol = solve_absolute_herd(problem_from(rows[i], TimeModel::annual()));
      CAPTURE(rows[i].str("alpha_label"));
      CAPTURE(rows[i].num("theta"));
      CHECK(close_rel(sol.eta(), rows[i].num("eta"), 1e-10));
      CHECK(close_rel(sol.ln_eta0(), rows[i].num("ln_eta0"), 1e-12));
      for (std::size_t j = i; j < i + 10; ++j) {
        const double k = rows[j].num("k");
        CHECK(close_rel(sol.amount(k), rows[j].num("P_star_k"), 1e-10));
        CHECK(close_rel(sol.own_merton(k), rows[j].num("P_own_merton_discrete_k"), 1e-12));
        CHECK(close_rel(sol.leader_merton(k), rows[j].num("P_leader_merton_discrete_k"), 1e-12));
      }
    }
  }

  TEST_CASE("the worked value of docs/theory.md §3.2: p = 0.9, theta = 1e-7") {
    HerdProblem p;
    p.alpha = alpha_from_lottery_prob(0.9);
    p.theta = 1e-7;
    const auto sol = solve_absolute_herd(p);
    CHECK(sol.eta() == doctest::Approx(9.99124e-6).epsilon(1e-5));
    CHECK(sol.amount(0) == doctest::Approx(1.34230).epsilon(1e-5));
    CHECK(sol.amount(10) == doctest::Approx(2.54898).epsilon(1e-5));
    CHECK(sol.opinion(0) == doctest::Approx(0.83117).epsilon(1e-5));
  }

  TEST_CASE(
      "limits: theta -> 0 gives Merton, theta -> inf gives the leader, alpha = alpha_L gives the leader") {
    HerdProblem p;
    p.alpha = 0.6;
    p.theta = 0.0;
    auto sol = solve_absolute_herd(p);
    CHECK(sol.amount(3.0) == doctest::Approx(sol.own_merton(3.0)).epsilon(1e-15));
    p.theta = 1e6;
    sol = solve_absolute_herd(p);
    CHECK(sol.amount(3.0) == doctest::Approx(sol.leader_merton(3.0)).epsilon(1e-8));
    p.alpha = p.alpha_leader;
    p.theta = 1e-3;
    sol = solve_absolute_herd(p);
    CHECK(sol.amount(3.0) == doctest::Approx(sol.leader_merton(3.0)).epsilon(1e-15));
    CHECK(sol.eta() == doctest::Approx(std::exp(sol.ln_eta0())).epsilon(1e-15));
  }

  TEST_CASE("the opinion follows dw/dt = -(2 - rho) r w (1 - w)") {
    for (double rho : {0.0, 1.0, 2.0, 3.0}) {
      HerdProblem p;
      p.alpha = 0.5;
      p.theta = 1e-5;
      p.rho = rho;
      const auto sol = solve_absolute_herd(p);
      const double t = 4.0, h = 1e-5;
      const double dw = (sol.opinion(t + h) - sol.opinion(t - h)) / (2 * h);
      const double w = sol.opinion(t);
      CAPTURE(rho);
      CHECK(dw == doctest::Approx(-(2.0 - rho) * p.market.r * w * (1 - w)).epsilon(1e-6).scale(1e-12));
    }
  }

  TEST_CASE("the optimum beats perturbed paths (objective is maximal)") {
    HerdProblem p;
    p.alpha = 0.5;
    p.theta = 1e-4;
    p.rho = 1.0;
    const auto sol = solve_absolute_herd(p);
    const Schedule s = p.schedule();
    auto objective = [&](const AmountPath& path) {
      const double eu = -std::exp(ln_h(s, p.alpha, p.x0, path)) / p.alpha;
      double pen = 0.0;
      s.for_each_node(4.0, [&](double t, double w) {
        const double d = path(t) - sol.leader_merton(t);
        pen += w * std::exp(p.rho * p.market.r * (10.0 - t)) * d * d;
      });
      return eu - 0.5 * p.theta * pen;
    };
    const double best = objective([&](double t) { return sol.amount(t); });
    CHECK(best == doctest::Approx(sol.objective()).epsilon(1e-12));
    for (double eps : {1e-3, -1e-3}) {
      CHECK(objective([&](double t) { return sol.amount(t) + eps * (1.0 + t); }) < best);
    }
  }

  TEST_CASE("extreme wealth: eta far below 1e-300 still solves in log space") {
    HerdProblem p;
    p.alpha = 0.7;
    p.x0 = 2000.0;
    p.theta = 1e-8;
    const auto sol = solve_absolute_herd(p);
    CHECK(sol.ln_eta() < -1000.0);
    CHECK(sol.opinion(0.0) < 1e-100);  // a very rich follower imitates completely
    CHECK(std::isfinite(sol.amount(0.0)));
  }

  TEST_CASE("near-complete herding: the root within rounding of the bracket's end still solves") {
    // Found by the dataset generator: budgets of 70..1000 at alpha 0.622 failed before the bracket
    // stepped a few ulp past lo + scale T.
    for (double x0 : {70.0, 100.0, 150.0, 400.0, 1000.0}) {
      for (double theta : {1e-8, 1e-7, 1e-6}) {
        HerdProblem p;
        p.alpha = 0.622;
        p.x0 = x0;
        p.theta = theta;
        const auto sol = solve_absolute_herd(p);
        CHECK(std::isfinite(sol.ln_eta()));
        CHECK(sol.opinion(0.0) < 0.5);
      }
    }
  }

  TEST_CASE("invalid parameters are rejected with the field's name") {
    HerdProblem p;
    p.alpha = -1.0;
    CHECK_THROWS_WITH_AS((void)solve_absolute_herd(p), doctest::Contains("alpha"), herdsim::InputError);
    p.alpha = 0.5;
    p.theta = -1e-8;
    CHECK_THROWS_WITH_AS((void)solve_absolute_herd(p), doctest::Contains("theta"), herdsim::InputError);
  }
}

// N assets (docs/theory.md §7.1).
namespace {

/// Two correlated assets (correlation 0.4), the second with a negative excess return.
struct TwoAssets {
  Eigen::MatrixXd covariance{{0.17 * 0.17, 0.4 * 0.17 * 0.25}, {0.4 * 0.17 * 0.25, 0.25 * 0.25}};
  Eigen::VectorXd excess{{0.03, -0.01}};
};

/// The maximiser of the discretised objective J = -H/alpha - (theta/2) Sum_k dt G_k^rho |P_k - Pbar_k|^2 over
/// all decisions P_k in R^N, with ln H = -alpha x0 G_0 (1 + r dt) - alpha Sum_k dt G_k v.P_k + (alpha^2 / 2)
/// Sum_k dt G_k^2 P_k' Sigma P_k, by Newton's method on the whole (steps x N) vector from the own Merton
/// path: no closed form and no eta root.
Eigen::MatrixXd brute_force_absolute(const HerdProblem& p, const Eigen::MatrixXd& sigma,
                                     const Eigen::VectorXd& v) {
  const Schedule schedule = p.schedule();
  const int n = schedule.steps();
  const double dt = schedule.step_years();
  const Eigen::Index assets = v.size();
  const Eigen::Index size = n * assets;
  const Eigen::VectorXd direction = sigma.llt().solve(v);
  Eigen::VectorXd growth(n), leader(size), x(size);
  for (int k = 0; k < n; ++k) {
    growth[k] = schedule.growth(k * dt);
    leader.segment(k * assets, assets) = direction / (p.alpha_leader * growth[k]);
    x.segment(k * assets, assets) = direction / (p.alpha * growth[k]);
  }
  const double constant = -p.alpha * p.x0 * std::exp(schedule.ln_terminal_growth());
  for (int iter = 0; iter < 100; ++iter) {
    double ln_h = constant;
    Eigen::VectorXd d_ln_h(size);
    for (int k = 0; k < n; ++k) {
      const Eigen::VectorXd pk = x.segment(k * assets, assets);
      ln_h += -p.alpha * dt * growth[k] * v.dot(pk) +
              0.5 * p.alpha * p.alpha * dt * growth[k] * growth[k] * pk.dot(sigma * pk);
      d_ln_h.segment(k * assets, assets) =
          -p.alpha * dt * growth[k] * v + p.alpha * p.alpha * dt * growth[k] * growth[k] * (sigma * pk);
    }
    const double h = std::exp(ln_h);
    Eigen::MatrixXd hessian = -(h / p.alpha) * d_ln_h * d_ln_h.transpose();
    Eigen::VectorXd gradient = -(h / p.alpha) * d_ln_h;
    for (int k = 0; k < n; ++k) {
      const double weight = p.theta * dt * std::pow(growth[k], p.rho);
      const auto block = Eigen::seqN(k * assets, assets);
      hessian(block, block) -= (h / p.alpha) * p.alpha * p.alpha * dt * growth[k] * growth[k] * sigma;
      hessian(block, block).diagonal().array() -= weight;
      gradient(block) -= weight * (x(block) - leader(block));
    }
    const Eigen::VectorXd step = (-hessian).ldlt().solve(gradient);
    x += step;
    if (step.norm() <= 1e-15 * x.norm()) break;
  }
  Eigen::MatrixXd out(assets, n);
  for (int k = 0; k < n; ++k) out.col(k) = x.segment(k * assets, assets);
  return out;
}

}  // namespace

TEST_SUITE("theory.absolute_herd.assets") {
  TEST_CASE("P3 in 2 correlated assets equals the brute-force maximiser of the discretised objective") {
    const TwoAssets m;
    HerdProblem p;
    p.alpha = 0.766119;
    p.theta = 1e-7;
    p.rho = 0.4;
    p.time = TimeModel::discrete(40);  // 400 decisions over T = 10
    const AbsoluteHerdAssetsSolution sol = solve_absolute_herd(p, m.covariance, m.excess);
    const Eigen::MatrixXd brute = brute_force_absolute(p, m.covariance, m.excess);
    double worst = 0.0;
    double herding = 0.0;  // how far the optimum is from the own Merton path (the test must see herding)
    const Eigen::VectorXd merton = m.covariance.llt().solve(m.excess) / p.alpha;
    for (int k = 0; k < 400; ++k) {
      const Eigen::VectorXd amounts = sol.amounts(k * 0.025);
      worst = std::max(worst, (amounts - brute.col(k)).norm() / brute.col(k).norm());
      herding =
          std::max(herding, (amounts - merton / p.schedule().growth(k * 0.025)).norm() / amounts.norm());
    }
    MESSAGE("P3, 2 assets: largest relative gap to the brute force " << worst << ", herding shift "
                                                                     << herding);
    CHECK(worst < 1e-12);
    CHECK(herding > 0.05);
    // The optimum is a short position in the asset with the negative excess return.
    CHECK(sol.amounts(0.0)[1] < 0.0);
  }

  TEST_CASE("P3: one asset through the N-asset solver equals the one-asset solver bit for bit") {
    for (const TimeModel time : {TimeModel::continuous(), TimeModel::discrete(1), TimeModel::discrete(12)}) {
      for (const double rho : {0.0, 0.4}) {
        for (const double mu : {0.07, 0.01, 0.04}) {  // v > 0, v < 0, v = 0
          HerdProblem p;
          p.market.mu = mu;
          p.alpha = 0.766119;
          p.theta = 1e-7;
          p.rho = rho;
          p.time = time;
          const double v = p.market.excess_return();
          const Eigen::MatrixXd covariance{{p.market.sigma * p.market.sigma}};
          const AbsoluteHerdSolution one = solve_absolute_herd(p);
          const AbsoluteHerdAssetsSolution many = solve_absolute_herd(p, covariance, Eigen::VectorXd{{v}});
          CHECK(many.ln_eta() == one.ln_eta());
          CHECK(many.ln_eta0() == one.ln_eta0());
          CHECK(many.deviation_penalty() == one.deviation_penalty());
          for (int k = 0; k <= 10; ++k) CHECK(many.amounts(k)[0] == one.amount(k));
        }
      }
    }
  }

  TEST_CASE("P3 limits in N assets: theta = 0 is the vector Merton, alpha = alpha_L the leader") {
    const TwoAssets m;
    HerdProblem p;
    p.alpha = 0.5;
    p.theta = 0.0;
    const Eigen::VectorXd merton = m.covariance.llt().solve(m.excess) / 0.5;
    const auto rational = solve_absolute_herd(p, m.covariance, m.excess);
    CHECK((rational.amounts(0.0) - merton / p.schedule().growth(0.0)).norm() < 1e-14 * merton.norm());
    p.theta = 1e-7;
    p.alpha = p.alpha_leader;
    const auto leader = solve_absolute_herd(p, m.covariance, m.excess);
    const Eigen::VectorXd expected =
        m.covariance.llt().solve(m.excess) / p.alpha_leader / p.schedule().growth(3.0);
    CHECK((leader.amounts(3.0) - expected).norm() < 1e-13 * expected.norm());
  }

  TEST_CASE("P3 in N assets: bad covariances are rejected with the reason") {
    HerdProblem p;
    p.theta = 1e-7;
    const Eigen::VectorXd v{{0.03, 0.02}};
    CHECK_THROWS_WITH_AS(solve_absolute_herd(p, Eigen::MatrixXd{{0.04, 0.05}, {0.05, 0.04}}, v),
                         doctest::Contains("positive definite"), herdsim::InputError);
    CHECK_THROWS_WITH_AS(solve_absolute_herd(p, Eigen::MatrixXd{{0.04, 0.0}, {0.01, 0.04}}, v),
                         doctest::Contains("symmetric"), herdsim::InputError);
    CHECK_THROWS_WITH_AS(solve_absolute_herd(p, Eigen::MatrixXd{{0.04}}, v), doctest::Contains("2 x 2"),
                         herdsim::InputError);
  }
}
