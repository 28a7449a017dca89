#include <doctest/doctest.h>

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
