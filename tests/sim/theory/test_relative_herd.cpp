#include <doctest/doctest.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/SparseCholesky>
#include <Eigen/SparseCore>
#include <algorithm>
#include <vector>

#include <boost/math/quadrature/gauss.hpp>
#include <cmath>
#include <functional>
#include <string>

#include "sim/error.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/relative_herd.hpp"
#include "support/golden.hpp"

using namespace herdsim::theory;
using herdsim::test::close_rel;

namespace {

HerdProblem problem_with(double alpha, double theta) {
  HerdProblem p;
  p.alpha = alpha;
  p.theta = theta;
  return p;
}

RelativeHerdOptions options_with(BoundaryCondition bc) {
  RelativeHerdOptions o;
  o.bc = bc;
  return o;
}

/// Composite 16-point Gauss-Legendre on [0, T] with many panels: an integrator independent of the solver's
/// grid.
double integrate(const std::function<double(double)>& f, double horizon, int panels = 200) {
  using Rule = boost::math::quadrature::gauss<double, 16>;
  double sum = 0.0;
  const double width = horizon / panels;
  for (int i = 0; i < panels; ++i) sum += Rule::integrate(f, i * width, (i + 1) * width);
  return sum;
}

/// J[P] = -H[P]/alpha - (theta/2) Int (P' - Pbar')^2, evaluated directly from a path and its derivative.
double objective(const HerdProblem& p, const RelativeHerdSolution& sol,
                 const std::function<double(double)>& path, const std::function<double(double)>& rate) {
  const double s2 = p.market.sigma * p.market.sigma;
  const double deviation = integrate(
      [&](double t) {
        const double d = std::exp(p.market.r * (p.horizon - t)) * (path(t) - sol.own_merton(t));
        return d * d;
      },
      p.horizon);
  const double ln_h = sol.ln_eta0() + 0.5 * p.alpha * p.alpha * s2 * deviation;
  const double penalty = integrate(
      [&](double t) {
        const double d = rate(t) - p.market.r * sol.leader_merton(t);
        return d * d;
      },
      p.horizon);
  return -std::exp(ln_h) / p.alpha - 0.5 * p.theta * penalty;
}

}  // namespace

TEST_SUITE("theory.relative_herd") {
  TEST_CASE("relative_herd.csv: every configuration and time point within the stated tolerances") {
    const auto rows = herdsim::test::read_golden("relative_herd.csv");
    REQUIRE(rows.size() == 858);
    std::size_t checked = 0;
    for (std::size_t i = 0; i < rows.size(); i += 11) {  // 11 time points per configuration
      const auto& head = rows[i];
      const bool natural = head.str("bc") == "natural";
      REQUIRE((natural || head.str("bc") == "merton"));
      const HerdProblem problem = problem_with(head.num("alpha"), head.num("theta"));
      const RelativeHerdSolution sol = solve_relative_herd(
          problem, options_with(natural ? BoundaryCondition::natural : BoundaryCondition::pinned));
      CAPTURE(head.str("alpha_label"));
      CAPTURE(problem.theta);
      CAPTURE(head.str("bc"));
      CAPTURE(std::string(sol.method()));
      CHECK(close_rel(sol.eta(), head.num("eta"), 1e-9));
      CHECK(close_rel(sol.ln_eta(), head.num("ln_eta"), 1e-9));
      CHECK(close_rel(sol.ln_eta0(), head.num("ln_eta0"), 1e-12));
      CHECK(close_rel(sol.zeta(), head.num("zeta"), 1e-9));
      CHECK(close_rel(sol.ln_h_at_opt(), head.num("ln_H_at_opt"), 1e-9));
      CHECK(close_rel(sol.expected_utility(), head.num("expected_utility"), 1e-7));
      // Natural ends: two rows of the reference carry a penalty error above its stated 1e-7 (P0.40, theta
      // 1e-6: 2.4e-7; P0.90, theta 1e-2: 5.9e-7, consistent with lower-order slopes there); this solver's
      // penalty is grid-converged to 1e-9 (see the n-vs-2n test), so natural rows are held to 1e-6.
      CHECK(close_rel(sol.deviation_penalty(), head.num("deviation_penalty"), natural ? 1e-6 : 1e-7));
      CHECK(close_rel(sol.objective(), head.num("objective_J"), 1e-7));
      // The constant mode of natural ends is ill-conditioned for theta >= 1e-4 (README).
      const double amount_tol = natural && problem.theta >= 1e-4 ? 1e-5 : 1e-7;
      for (std::size_t j = i; j < i + 11; ++j) {
        const auto& row = rows[j];
        REQUIRE(row.str("alpha_label") == head.str("alpha_label"));
        REQUIRE(row.num("theta") == problem.theta);
        const double t = row.num("t");
        CAPTURE(t);
        const bool end = t == 0.0 || t == problem.horizon;
        CHECK(close_rel(sol.amount(t), row.num("P_star"), amount_tol));
        CHECK(close_rel(100.0 * sol.amount(t) / problem.x0, row.num("P_pct_of_x0"), amount_tol));
        CHECK(close_rel(sol.slope(t), row.num("dP_dt"), end ? 3e-4 : 1e-5));
        CHECK(close_rel(sol.own_merton(t), row.num("P_own_merton"), 1e-12));
        CHECK(close_rel(sol.leader_merton(t), row.num("P_leader_merton"), 1e-12));
        ++checked;
      }
    }
    CHECK(checked == 858);
  }

  TEST_CASE("grid n and 2n agree (pinned stiff, natural stiff, natural shooting)") {
    struct Case {
      double alpha;
      double theta;
      BoundaryCondition bc;
    };
    for (const Case c :
         {Case{0.766119, 1e-8, BoundaryCondition::pinned}, Case{0.091123, 1e-6, BoundaryCondition::natural},
          Case{0.766119, 1e-4, BoundaryCondition::natural}}) {
      const HerdProblem p = problem_with(c.alpha, c.theta);
      RelativeHerdOptions coarse = options_with(c.bc);
      const auto a = solve_relative_herd(p, coarse);
      RelativeHerdOptions fine = coarse;
      fine.min_steps = 2 * a.steps();
      fine.max_h_sqrt_q = coarse.max_h_sqrt_q / 2.0;
      const auto b = solve_relative_herd(p, fine);
      CAPTURE(c.alpha);
      CAPTURE(c.theta);
      CAPTURE(std::string(a.method()));
      CHECK(b.steps() == 2 * a.steps());
      CHECK(close_rel(a.eta(), b.eta(), 1e-12));
      CHECK(close_rel(a.deviation_penalty(), b.deviation_penalty(), 1e-8));
      for (int t = 0; t <= 10; ++t) {
        CAPTURE(t);
        CHECK(close_rel(a.amount(t), b.amount(t), 1e-9));
        CHECK(close_rel(a.slope(t), b.slope(t), t == 0 || t == 10 ? 1e-4 : 1e-8));
      }
      // Between nodes the Hermite interpolant agrees too.
      CHECK(close_rel(a.amount(0.0123456), b.amount(0.0123456), 1e-9));
      CHECK(close_rel(a.amount(7.7777777), b.amount(7.7777777), 1e-9));
    }
  }

  TEST_CASE("stiff interior follows the outer expansion P_alpha + r^2 (P_alpha - Pbar) / q") {
    const HerdProblem p = problem_with(0.091123, 1e-8);
    const auto sol = solve_relative_herd(p);
    REQUIRE(sol.stiffness() > 3000.0);
    const double r = p.market.r;
    const double s2 = p.market.sigma * p.market.sigma;
    for (double t : {2.0, 3.5, 5.0, 6.25, 8.0}) {
      const double q = sol.eta() * p.alpha * s2 * std::exp(2.0 * r * (p.horizon - t)) / p.theta;
      const double outer = sol.own_merton(t) + r * r * (sol.own_merton(t) - sol.leader_merton(t)) / q;
      CAPTURE(t);
      CHECK(close_rel(sol.amount(t), outer, 1e-10));
      CHECK(sol.amount(t) != sol.own_merton(t));  // the correction is resolved, not rounded away
    }
  }

  TEST_CASE("the optimum beats perturbed paths (non-stiff, both boundary conditions)") {
    const HerdProblem p = problem_with(0.766119, 1e-4);
    const double pi = std::acos(-1.0);
    const double T = p.horizon;
    for (const auto bc : {BoundaryCondition::pinned, BoundaryCondition::natural}) {
      const auto sol = solve_relative_herd(p, options_with(bc));
      CAPTURE(std::string(sol.method()));
      REQUIRE(sol.stiffness() < 8.0);
      auto path = [&](double t) { return sol.amount(t); };
      auto rate = [&](double t) { return sol.slope(t); };
      const double best = objective(p, sol, path, rate);
      CHECK(best == doctest::Approx(sol.objective()).epsilon(1e-9));
      // Perturbations that keep the ends (pinned) or move them too (natural).
      std::vector<std::pair<std::function<double(double)>, std::function<double(double)>>> shapes = {
          {[&](double t) { return std::sin(pi * t / T); },
           [&](double t) { return pi / T * std::cos(pi * t / T); }},
          {[&](double t) { return std::sin(2 * pi * t / T); },
           [&](double t) { return 2 * pi / T * std::cos(2 * pi * t / T); }}};
      if (bc == BoundaryCondition::natural) {
        shapes.push_back({[](double) { return 1.0; }, [](double) { return 0.0; }});
        shapes.push_back({[&](double t) { return t / T; }, [&](double) { return 1.0 / T; }});
      }
      for (const auto& [shape, shape_rate] : shapes) {
        for (double eps : {1e-2, -1e-2, 1e-3, -1e-3}) {
          CAPTURE(eps);
          const double j = objective(
              p, sol, [&](double t) { return path(t) + eps * shape(t); },
              [&](double t) { return rate(t) + eps * shape_rate(t); });
          CHECK(j < best);
        }
      }
    }
  }

  TEST_CASE("boundary conditions: pinned ends are the own Merton amounts, natural end slopes the leader's") {
    HerdProblem p = problem_with(0.385203, 1e-6);
    const auto pinned = solve_relative_herd(p);
    CHECK(pinned.method() == std::string("numerov"));
    CHECK(pinned.amount(0.0) == doctest::Approx(pinned.own_merton(0.0)).epsilon(1e-14));
    CHECK(pinned.amount(10.0) == doctest::Approx(pinned.own_merton(10.0)).epsilon(1e-14));
    CHECK(pinned.grid_amount()[0] == doctest::Approx(pinned.own_merton(0.0)).epsilon(1e-14));

    for (double theta : {1e-6, 1e-2}) {  // stiff (three Dirichlet solves) and non-stiff (shooting)
      p.theta = theta;
      const auto natural = solve_relative_herd(p, options_with(BoundaryCondition::natural));
      CAPTURE(std::string(natural.method()));
      CHECK(natural.method() == std::string(theta == 1e-6 ? "numerov" : "shooting"));
      const double r = p.market.r;
      CHECK(natural.slope(0.0) == doctest::Approx(r * natural.leader_merton(0.0)).epsilon(1e-10));
      CHECK(natural.slope(10.0) == doctest::Approx(r * natural.leader_merton(10.0)).epsilon(1e-10));
      CHECK(natural.amount(0.0) != doctest::Approx(natural.own_merton(0.0)).epsilon(1e-6));  // ends are free
    }
  }

  TEST_CASE(
      "free start (a restart): P'(0) = Pbar'(0), the end stays pinned, and J beats the pinned optimum") {
    HerdProblem p = problem_with(0.385203, 1e-6);
    p.horizon = 7.0;  // a restart at t = 3 of the paper's horizon
    p.x0 = 12.5;
    const double r = p.market.r;
    for (double theta : {1e-6, 1e-2}) {  // stiff (two Dirichlet solves) and non-stiff (shooting)
      p.theta = theta;
      RelativeHerdOptions o;
      o.free_start = true;
      const auto free = solve_relative_herd(p, o);
      const auto pinned = solve_relative_herd(p);
      CAPTURE(std::string(free.method()));
      CHECK(free.method() == std::string(theta == 1e-6 ? "numerov" : "shooting"));
      CHECK(free.ln_h_at_opt() == doctest::Approx(free.ln_eta()).epsilon(1e-13));
      CHECK(free.slope(0.0) == doctest::Approx(r * free.leader_merton(0.0)).epsilon(1e-9));
      CHECK(free.amount(7.0) == doctest::Approx(free.own_merton(7.0)).epsilon(1e-12));
      CHECK(free.amount(0.0) != doctest::Approx(free.own_merton(0.0)).epsilon(1e-6));  // the start moved
      // The pinned optimum is admissible for the free start: the free optimum is at least as good.
      CHECK(free.objective() >= pinned.objective() - 1e-12 * std::abs(pinned.objective()));
      CHECK(free.objective() > pinned.objective());
    }
    // Natural ends are free already: the flag changes nothing.
    RelativeHerdOptions natural = options_with(BoundaryCondition::natural);
    const auto a = solve_relative_herd(p, natural);
    natural.free_start = true;
    const auto b = solve_relative_herd(p, natural);
    CHECK(a.amount(0.0) == b.amount(0.0));
    CHECK(a.amount(3.5) == b.amount(3.5));
  }

  TEST_CASE("the root is self-consistent and the grid follows the options") {
    const HerdProblem p = problem_with(0.529882, 3e-8);
    const auto sol = solve_relative_herd(p);
    CHECK(sol.ln_h_at_opt() == doctest::Approx(sol.ln_eta()).epsilon(1e-14));
    CHECK(sol.eta() >= std::exp(sol.ln_eta0()));
    CHECK(sol.steps() % 10 == 0);  // integer years are nodes
    CHECK(sol.steps() % 2 == 0);   // Simpson
    CHECK(sol.steps() >= 20000);
    CHECK(sol.stiffness() / sol.steps() <= 0.02);  // h sqrt(q_max) = S / N
    CHECK(sol.stiffness() == doctest::Approx(sol.zeta() * p.market.r * p.horizon).epsilon(1e-12));
    const Eigen::VectorXd t = sol.grid_time();
    REQUIRE(t.size() == sol.steps() + 1);
    CHECK(t[sol.steps()] == 10.0);
    CHECK(t[sol.steps() / 10 * 3] == 3.0);
    CHECK(sol.grid_slope().size() == t.size());
    CHECK(sol.evaluations() >= 2);
  }

  TEST_CASE("theta = 0 and alpha = alpha_L give the own Merton path exactly") {
    HerdProblem p = problem_with(0.6, 0.0);
    auto sol = solve_relative_herd(p);
    CHECK(sol.method() == std::string("merton"));
    CHECK(sol.eta() == std::exp(sol.ln_eta0()));
    CHECK(std::isinf(sol.zeta()));
    CHECK(sol.deviation_penalty() == 0.0);
    CHECK(sol.steps() == 0);
    for (double t : {0.0, 2.5, 10.0}) {
      CHECK(sol.amount(t) == sol.own_merton(t));
      CHECK(sol.slope(t) == doctest::Approx(p.market.r * sol.own_merton(t)).epsilon(1e-15));
    }
    p.alpha = p.alpha_leader;
    p.theta = 1e-3;
    sol = solve_relative_herd(p, options_with(BoundaryCondition::natural));
    CHECK(sol.amount(4.0) == sol.leader_merton(4.0));
    CHECK(sol.eta() == std::exp(sol.ln_eta0()));
    CHECK(std::isfinite(sol.zeta()));
  }

  TEST_CASE("extreme wealth: eta far below 1e-300 still solves in log space") {
    HerdProblem p = problem_with(0.7, 1e-8);
    p.x0 = 2000.0;
    for (const auto bc : {BoundaryCondition::pinned, BoundaryCondition::natural}) {
      const auto sol = solve_relative_herd(p, options_with(bc));
      CAPTURE(std::string(sol.method()));
      CHECK(sol.ln_eta() < -1000.0);
      CHECK(sol.ln_h_at_opt() == doctest::Approx(sol.ln_eta()).epsilon(1e-14));
      CHECK(std::isfinite(sol.amount(5.0)));
      CHECK(std::isfinite(sol.deviation_penalty()));
      // theta / eta is astronomically large: u'' = 0, so the follower copies the leader's rate of change up
      // to a constant fixed by the ends: zero for natural ends, the own Merton gap's mean slope when pinned.
      const double leader_rate = p.market.r * sol.leader_merton(5.0);
      const double gap_rate =
          (sol.own_merton(10.0) - sol.leader_merton(10.0) - sol.own_merton(0.0) + sol.leader_merton(0.0)) /
          p.horizon;
      const double expected = leader_rate + (bc == BoundaryCondition::pinned ? gap_rate : 0.0);
      CHECK(sol.slope(5.0) == doctest::Approx(expected).epsilon(1e-9));
    }
  }

  TEST_CASE("invalid problems are rejected") {
    HerdProblem p = problem_with(0.5, 1e-6);
    p.time = TimeModel::annual();
    CHECK_THROWS_WITH_AS((void)solve_relative_herd(p), doctest::Contains("continuous time"),
                         herdsim::InputError);
    p.time = TimeModel::continuous();
    p.alpha = -1.0;
    CHECK_THROWS_WITH_AS((void)solve_relative_herd(p), doctest::Contains("alpha"), herdsim::InputError);
    p.alpha = 0.5;
    p.theta = -1e-8;
    CHECK_THROWS_WITH_AS((void)solve_relative_herd(p), doctest::Contains("theta"), herdsim::InputError);
    p.theta = 1e-6;
    RelativeHerdOptions o;
    o.max_h_sqrt_q = 0.0;
    CHECK_THROWS_AS((void)solve_relative_herd(p, o), herdsim::InputError);
  }
}

// N assets (docs/theory.md §7.1).
namespace {

/// Two correlated assets (correlation 0.4), the second with a negative excess return.
struct TwoAssets {
  Eigen::MatrixXd covariance{{0.17 * 0.17, 0.4 * 0.17 * 0.25}, {0.4 * 0.17 * 0.25, 0.25 * 0.25}};
  Eigen::VectorXd excess{{0.03, -0.01}};
};

/// The maximiser of the relative-herding objective discretised on m uniform steps (trapezoid for ln H,
/// forward differences for the rate gap: J = -H/alpha - (theta/2) Sum_k |D_k|^2 / h, D_k = (P_{k+1} - P_k) -
/// (Pbar_{k+1} - Pbar_k)) over the amounts P_k in R^N at the nodes (pinned: the ends fixed at the own Merton
/// vector), by Newton's method on all of them at once (banded Hessian plus a rank-one term,
/// Sherman-Morrison). No eigenbasis, no BVP, no eta root. Returns N x (m + 1).
Eigen::MatrixXd brute_force_relative(const HerdProblem& p, const Eigen::MatrixXd& sigma,
                                     const Eigen::VectorXd& v, BoundaryCondition bc, int m) {
  const Eigen::Index n = v.size();
  const Eigen::Index size = (m + 1) * n;
  const double h = p.horizon / m;
  const double r = p.market.r;
  const Eigen::VectorXd direction = sigma.llt().solve(v);
  Eigen::VectorXd growth(m + 1), weight(m + 1), leader(size), x(size);
  for (int k = 0; k <= m; ++k) {
    growth[k] = std::exp(r * (p.horizon - k * h));
    weight[k] = k == 0 || k == m ? 0.5 * h : h;
    leader.segment(k * n, n) = direction / (p.alpha_leader * growth[k]);
    x.segment(k * n, n) = direction / (p.alpha * growth[k]);
  }
  auto fixed = [&](int k) { return bc == BoundaryCondition::pinned && (k == 0 || k == m); };
  const double constant = -p.alpha * p.x0 * std::exp(r * p.horizon);
  for (int iter = 0; iter < 100; ++iter) {
    double ln_h = constant;
    Eigen::VectorXd d(size);
    for (int k = 0; k <= m; ++k) {
      const Eigen::VectorXd pk = x.segment(k * n, n);
      const double g = growth[k];
      ln_h += weight[k] * (-p.alpha * g * v.dot(pk) + 0.5 * p.alpha * p.alpha * g * g * pk.dot(sigma * pk));
      d.segment(k * n, n) = weight[k] * (-p.alpha * g * v + p.alpha * p.alpha * g * g * (sigma * pk));
    }
    const double scale = std::exp(ln_h) / p.alpha;  // H / alpha
    Eigen::VectorXd gradient = -scale * d;
    const Eigen::VectorXd gap = x - leader;
    std::vector<Eigen::Triplet<double>> entries;
    for (int k = 0; k <= m; ++k) {
      for (Eigen::Index a = 0; a < n; ++a) {
        const Eigen::Index i = k * n + a;
        double lap = 0.0;
        if (k > 0) {
          gradient[i] -= p.theta / h * (gap[i] - gap[i - n]);
          lap += 1.0;
          if (!fixed(k) && !fixed(k - 1)) entries.emplace_back(i, i - n, -p.theta / h);
        }
        if (k < m) {
          gradient[i] -= p.theta / h * (gap[i] - gap[i + n]);
          lap += 1.0;
          if (!fixed(k) && !fixed(k + 1)) entries.emplace_back(i, i + n, -p.theta / h);
        }
        if (fixed(k)) {
          entries.emplace_back(i, i, 1.0);
          gradient[i] = 0.0;
          d[i] = 0.0;
          continue;
        }
        entries.emplace_back(i, i, p.theta / h * lap);
        for (Eigen::Index b = 0; b < n; ++b)
          entries.emplace_back(i, k * n + b,
                               scale * weight[k] * p.alpha * p.alpha * growth[k] * growth[k] * sigma(a, b));
      }
    }
    Eigen::SparseMatrix<double> a(size, size);
    a.setFromTriplets(entries.begin(), entries.end());
    const Eigen::SimplicialLDLT<Eigen::SparseMatrix<double>> ldlt(a);
    // -Hessian = A + scale d d'.
    const Eigen::VectorXd ag = ldlt.solve(gradient);
    const Eigen::VectorXd ad = ldlt.solve(d);
    const Eigen::VectorXd step = ag - ad * (scale * d.dot(ag) / (1.0 + scale * d.dot(ad)));
    x += step;
    if (step.norm() <= 1e-14 * x.norm()) break;
  }
  Eigen::MatrixXd out(n, m + 1);
  for (int k = 0; k <= m; ++k) out.col(k) = x.segment(k * n, n);
  return out;
}

}  // namespace

TEST_SUITE("theory.relative_herd.assets") {
  TEST_CASE("P1 in 2 correlated assets equals the brute-force maximiser (Richardson-extrapolated)") {
    const TwoAssets m;
    for (const BoundaryCondition bc : {BoundaryCondition::pinned, BoundaryCondition::natural}) {
      HerdProblem p;
      p.alpha = 0.766119;
      p.theta = 1e-6;
      RelativeHerdOptions opt;
      opt.bc = bc;
      const RelativeHerdAssetsSolution sol = solve_relative_herd(p, m.covariance, m.excess, opt);
      const int coarse = 2000;
      const Eigen::MatrixXd a = brute_force_relative(p, m.covariance, m.excess, bc, coarse);
      const Eigen::MatrixXd b = brute_force_relative(p, m.covariance, m.excess, bc, 2 * coarse);
      double worst = 0.0;
      double grid = 0.0;  // the brute force's own discretisation error (coarse vs fine)
      double herding = 0.0;
      const Eigen::VectorXd merton = m.covariance.llt().solve(m.excess) / p.alpha;
      for (int year = 0; year <= 10; ++year) {
        const Eigen::VectorXd extrapolated =
            (4.0 * b.col(2 * year * coarse / 10) - a.col(year * coarse / 10)) / 3.0;
        const Eigen::VectorXd amounts = sol.amounts(year);
        worst = std::max(worst, (amounts - extrapolated).norm() / extrapolated.norm());
        grid = std::max(
            grid, (b.col(2 * year * coarse / 10) - a.col(year * coarse / 10)).norm() / extrapolated.norm());
        herding = std::max(
            herding, (amounts - merton * std::exp(-p.market.r * (10.0 - year))).norm() / amounts.norm());
      }
      MESSAGE("P1 (" << herdsim::to_name(bc)
                     << "), 2 assets: largest relative gap to the extrapolated brute force " << worst
                     << " (brute force grid n vs 2n: " << grid << "), herding shift " << herding);
      CHECK(worst < 1e-8);
      CHECK(herding > 0.01);
    }
  }

  TEST_CASE("P1: one asset through the N-asset solver equals the one-asset solver bit for bit") {
    for (const BoundaryCondition bc : {BoundaryCondition::pinned, BoundaryCondition::natural}) {
      for (const double mu : {0.07, 0.01}) {       // v > 0 and v < 0
        for (const double theta : {1e-7, 1e-5}) {  // stiff (Numerov) and, natural, shot
          HerdProblem p;
          p.market.mu = mu;
          p.alpha = 0.766119;
          p.theta = theta;
          RelativeHerdOptions opt;
          opt.bc = bc;
          const Eigen::MatrixXd covariance{{p.market.sigma * p.market.sigma}};
          const RelativeHerdSolution one = solve_relative_herd(p, opt);
          const RelativeHerdAssetsSolution many =
              solve_relative_herd(p, covariance, Eigen::VectorXd{{p.market.excess_return()}}, opt);
          CHECK(many.ln_eta() == one.ln_eta());
          CHECK(many.deviation_penalty() == one.deviation_penalty());
          CHECK(many.coordinate(0).grid_amount() == one.grid_amount());
          for (const double t : {0.0, 0.37, 5.0, 10.0}) CHECK(many.amounts(t)[0] == one.amount(t));
        }
      }
    }
  }

  TEST_CASE("P1 with a negative excess return mirrors the positive one") {
    // v -> -v flips every amount (the problem is odd in (v, P)); eta is unchanged.
    HerdProblem p;
    p.alpha = 0.766119;
    p.theta = 1e-7;
    const RelativeHerdSolution up = solve_relative_herd(p);
    p.market.mu = 2.0 * p.market.r - 0.07;
    const RelativeHerdSolution down = solve_relative_herd(p);
    CHECK(close_rel(down.ln_eta(), up.ln_eta(), 1e-13));
    for (const double t : {0.0, 0.5, 5.0, 10.0}) CHECK(close_rel(down.amount(t), -up.amount(t), 1e-9));
  }
}
