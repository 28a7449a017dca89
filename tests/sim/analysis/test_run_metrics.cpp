#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "sim/analysis/investor_types.hpp"
#include "sim/analysis/run_metrics.hpp"
#include "sim/analysis/summary_stats.hpp"
#include "sim/error.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/schedule.hpp"

using namespace herdsim::analysis;

namespace {

/// Rows held in memory: wealth[s] and amount[d], each agents x paths.
class MatrixRows final : public RowSource {
 public:
  std::vector<Eigen::MatrixXd> wealth, amount;
  void wealth_row(int s, Eigen::MatrixXd& out) override { out = wealth[static_cast<std::size_t>(s)]; }
  void amount_row(int d, Eigen::MatrixXd& out) override { out = amount[static_cast<std::size_t>(d)]; }
};

/// n annual decisions of m agents on p paths, wealth rows 0..n.
PopulationInput base_input(int m, int p, int n) {
  PopulationInput in;
  in.agents = m;
  in.paths = p;
  for (int s = 0; s <= n; ++s) in.wealth_steps.push_back(s);
  for (int k = 0; k < n; ++k) in.decision_steps.push_back(k);
  in.dt = 1.0;
  in.r = 0.04;
  in.wealth0 = Eigen::VectorXd::Constant(m, 10.0);
  in.market_return = Eigen::MatrixXd::Zero(p, n);
  return in;
}

/// Plays a plan through the arithmetic market with normal shocks: wealth and amount rows.
MatrixRows simulate(const PopulationInput& in, const Eigen::MatrixXd& plan, double mu, double sigma,
                    std::uint64_t seed, PopulationInput* with_returns = nullptr) {
  const int m = in.agents;
  const int p = in.paths;
  const int n = static_cast<int>(in.decision_steps.size());
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal;
  MatrixRows rows;
  Eigen::MatrixXd x = in.wealth0.replicate(1, p);
  rows.wealth.push_back(x);
  for (int k = 0; k < n; ++k) {
    Eigen::MatrixXd a = plan.col(k).replicate(1, p);
    rows.amount.push_back(a);
    for (int q = 0; q < p; ++q) {
      const double eps = normal(gen);
      const double ret = mu * in.dt + sigma * std::sqrt(in.dt) * eps;
      if (with_returns != nullptr) with_returns->market_return(q, k) = ret;
      for (int i = 0; i < m; ++i) x(i, q) = x(i, q) * (1.0 + in.r * in.dt) + a(i, q) * (ret - in.r * in.dt);
    }
    rows.wealth.push_back(x);
  }
  return rows;
}

}  // namespace

TEST_CASE("describe: mean, sample sd and numpy-linear quantiles of the finite values") {
  const Distribution d = describe({4.0, 1.0, NAN, 3.0, 2.0, INFINITY, 5.0});
  CHECK(d.count == 5);
  CHECK(d.mean == doctest::Approx(3.0));
  CHECK(d.std == doctest::Approx(std::sqrt(2.5)));
  CHECK(d.median == doctest::Approx(3.0));
  CHECK(d.q05 == doctest::Approx(1.2));
  CHECK(d.q95 == doctest::Approx(4.8));
  CHECK(std::isnan(describe({}).mean));
}

TEST_CASE("describe reads its quantiles where summarize does: the same bits, and no NaN from a whole rank") {
  std::mt19937_64 gen(5);
  std::lognormal_distribution<double> draw(0.0, 2.0);
  std::vector<double> values(1001);
  for (double& v : values) v = draw(gen) - 3.0;
  std::vector<double> copy = values, stats;
  herdsim::analysis::summarize(copy, {0.05, 0.5, 0.95}, stats);
  const Distribution d = describe(values);
  CHECK(d.q05 == stats[4]);
  CHECK(d.median == stats[5]);
  CHECK(d.q95 == stats[6]);
  // 21 values: q = 0.05 falls exactly on rank 1, and the gap to rank 2 overflows; only rank 1 is read.
  std::vector<double> wide(21, 1.5e308);
  wide[0] = wide[1] = -1.5e308;
  CHECK(describe(wide).q05 == -1.5e308);
}

TEST_CASE("plan_certainty_equivalent equals m - alpha s^2 / 2 from the theory library's wealth moments") {
  const herdsim::theory::Market market{0.07, 0.04, 0.17};
  const herdsim::theory::Schedule schedule(market, 10.0, herdsim::theory::TimeModel::discrete(4));
  const double alpha = 0.3;
  Eigen::VectorXd plan(40);
  for (int k = 0; k < 40; ++k)
    plan[k] = herdsim::theory::merton_amount(schedule, alpha, k * 0.25) * (1.0 + 0.01 * k);
  const auto path = [&](double t) { return plan[static_cast<int>(std::lround(t / 0.25))]; };
  const auto mom = herdsim::theory::wealth_moments(schedule, 12.0, path, 10.0);
  const double ce = plan_certainty_equivalent(schedule, plan, 12.0, alpha);
  CHECK(ce == mom.mean - 0.5 * alpha * mom.variance);
  // The same moments by the forward recursion X <- X (1 + r dt) + P v dt, Var <- Var (1 + r dt)^2 + P^2 s^2
  // dt.
  double mean = 12.0, var = 0.0;
  for (int k = 0; k < 40; ++k) {
    mean = mean * (1.0 + 0.04 * 0.25) + plan[k] * 0.03 * 0.25;
    var = var * (1.0 + 0.04 * 0.25) * (1.0 + 0.04 * 0.25) + plan[k] * plan[k] * 0.17 * 0.17 * 0.25;
  }
  CHECK(ce == doctest::Approx(mean - 0.5 * alpha * var).epsilon(1e-12));
  CHECK_THROWS_AS((void)plan_certainty_equivalent(
                      herdsim::theory::Schedule(market, 10.0, herdsim::theory::TimeModel::continuous()), plan,
                      12.0, alpha),
                  herdsim::InputError);
}

TEST_CASE("decision error: zero for agents playing the plan, exact MSE for a known deviation") {
  const int m = 3, p = 4, n = 5;
  PopulationInput in = base_input(m, p, n);
  in.theory = Eigen::MatrixXd::Constant(m, n, 2.0);
  MatrixRows rows = simulate(in, in.theory, 0.07, 0.17, 1);
  SUBCASE("plan") {
    const auto out = analyse_population(in, rows);
    REQUIRE(out.decision_error);
    CHECK(out.decision_error->amount.mse == 0.0);
    CHECK(out.decision_error->proportion_pp.mse == 0.0);
  }
  SUBCASE("agent 1 deviates by 0.5 at every step") {
    for (auto& a : rows.amount) a.row(1).array() += 0.5;
    const auto out = analyse_population(in, rows);
    REQUIRE(out.decision_error);
    CHECK(out.decision_error->amount.mse == doctest::Approx(0.25 / 3.0));
    CHECK(out.decision_error->agent_mse_amount[1] == doctest::Approx(0.25));
    CHECK(out.decision_error->agent_mse_amount[0] == 0.0);
    CHECK(out.decision_error->amount.per_step.size() == static_cast<std::size_t>(n));
    // Proportion error in percentage points of the realised wealth at the decision.
    double expect = 0.0;
    for (int d = 0; d < n; ++d)
      for (int q = 0; q < p; ++q)
        expect += std::pow(100.0 * 0.5 / rows.wealth[static_cast<std::size_t>(d)](1, q), 2);
    CHECK(out.decision_error->agent_mse_pp[1] == doctest::Approx(expect / (n * p)));
  }
}

TEST_CASE("CE gap of agents playing their plan: the interval covers zero, and a worse plan shows a gap") {
  const int m = 4, p = 4000, n = 10;
  PopulationInput in = base_input(m, p, n);
  in.alpha = Eigen::VectorXd::LinSpaced(m, 0.1, 0.7);
  const herdsim::theory::Schedule schedule({0.07, 0.04, 0.17}, 10.0, herdsim::theory::TimeModel::annual());
  in.theory.resize(m, n);
  for (int i = 0; i < m; ++i)
    for (int k = 0; k < n; ++k) in.theory(i, k) = herdsim::theory::merton_amount(schedule, in.alpha[i], k);
  in.ce_theory.resize(m);
  for (int i = 0; i < m; ++i)
    in.ce_theory[i] = plan_certainty_equivalent(schedule, in.theory.row(i).transpose(), 10.0, in.alpha[i]);
  SUBCASE("plan") {
    MatrixRows rows = simulate(in, in.theory, 0.07, 0.17, 7);
    const auto out = analyse_population(in, rows);
    REQUIRE(out.certainty_equivalent);
    const auto& ce = *out.certainty_equivalent;
    CHECK(ce.ci_low < 0.0);
    CHECK(ce.ci_high > 0.0);
    CHECK(ce.ci_high - ce.ci_low < 0.5);
  }
  SUBCASE("all in cash: the CE falls short of the plan's") {
    MatrixRows rows = simulate(in, Eigen::MatrixXd::Zero(m, n), 0.07, 0.17, 7);
    const auto out = analyse_population(in, rows);
    REQUIRE(out.certainty_equivalent);
    // Cash: CE = 10 * 1.04^10 exactly; the Merton plan's CE is higher by sum v^2/(2 alpha sigma^2) terms.
    CHECK(out.certainty_equivalent->simulated == doctest::Approx(10.0 * std::pow(1.04, 10)).epsilon(1e-12));
    CHECK(out.certainty_equivalent->ci_high < 0.0);
  }
}

TEST_CASE("herding distance and opinion: a follower halfway between its Merton path and its leader") {
  const int m = 2, p = 3, n = 4;
  PopulationInput in = base_input(m, p, n);
  in.merton = Eigen::MatrixXd::Constant(m, n, 1.0);
  in.leader = Eigen::MatrixXd::Constant(m, n, 3.0);
  in.leader(1, 2) = 1.0;  // agent 1's leader agrees with its Merton path at step 2: w undefined there
  in.theory = Eigen::MatrixXd::Constant(m, n, 2.0);
  in.reference = HerdReference::leader;
  in.opinion = true;
  Eigen::MatrixXd played = in.theory;
  played.row(0).setConstant(2.5);  // agent 0 herds more than its plan
  MatrixRows rows = simulate(in, played, 0.07, 0.17, 3);
  const auto out = analyse_population(in, rows);
  REQUIRE(out.herding_distance);
  CHECK(out.herding_distance->per_agent_simulated[0] == doctest::Approx(0.75));
  CHECK(out.herding_distance->per_agent_theory[0] == doctest::Approx(0.5));
  // Agent 1: sum (2-1)^2 over 4 steps / sum (leader - 1)^2 = 4 / (3 * 4) -> sqrt(1/3).
  CHECK(out.herding_distance->per_agent_theory[1] == doctest::Approx(std::sqrt(1.0 / 3.0)));
  REQUIRE(out.opinion);
  // w = (Pbar - P) / (Pbar - P_alpha): 0.25 for agent 0, 0.5 for agent 1 (step 2 of agent 1 undefined).
  CHECK(out.opinion->simulated[0] == doctest::Approx(0.375));
  CHECK(out.opinion->simulated[2] == doctest::Approx(0.25));
  CHECK(out.opinion->theory[0] == doctest::Approx(0.5));
}

TEST_CASE("opinion at chosen times: the nearest decision row, each agent's w there") {
  const int m = 2, p = 3, n = 4;
  PopulationInput in = base_input(m, p, n);
  in.dt = 0.5;  // decisions at t = 0, 0.5, 1, 1.5 years
  in.merton = Eigen::MatrixXd::Constant(m, n, 1.0);
  in.leader = Eigen::MatrixXd::Constant(m, n, 3.0);
  in.leader(1, 2) = 1.0;  // agent 1's leader agrees with its Merton path at step 2: w undefined there
  in.theory = Eigen::MatrixXd::Constant(m, n, 2.0);
  in.reference = HerdReference::leader;
  in.opinion = true;
  in.opinion_at_years = {1.1, 0.75, 9.0};
  CHECK(nearest_decision_row(in.decision_steps, in.dt, 1.1) == 2);
  CHECK(nearest_decision_row(in.decision_steps, in.dt, 0.75) == 1);  // a tie: the earlier
  CHECK(nearest_decision_row(in.decision_steps, in.dt, 9.0) == 3);
  Eigen::MatrixXd played = in.theory;
  played.row(0).setConstant(2.5);
  played(0, 1) = 1.5;  // agent 0 at step 1: (3 - 1.5) / (3 - 1) = 0.75
  MatrixRows rows = simulate(in, played, 0.07, 0.17, 3);
  const auto out = analyse_population(in, rows);
  REQUIRE(out.opinion);
  REQUIRE(out.opinion->at.size() == 3);
  const auto& at = out.opinion->at;
  CHECK(at[0].step == 2);
  CHECK(at[0].time_years == 1.0);
  CHECK(at[0].requested_years == 1.1);
  CHECK(at[1].step == 1);
  CHECK(at[2].step == 3);
  CHECK(at[0].per_agent_simulated[0] == doctest::Approx(0.25));
  CHECK(std::isnan(at[0].per_agent_simulated[1]));
  CHECK(std::isnan(at[0].per_agent_theory[1]));
  CHECK(at[1].per_agent_simulated[0] == doctest::Approx(0.75));
  CHECK(at[1].per_agent_simulated[1] == doctest::Approx(0.5));
  CHECK(at[2].per_agent_theory[0] == doctest::Approx(0.5));
  // They become per-agent measures of the by-type and paired tables, named by the requested time.
  const auto measures = agent_measures(out);
  const auto named = [&](const std::string& name) {
    return std::find_if(measures.begin(), measures.end(), [&](const auto& a) { return a.name == name; });
  };
  REQUIRE(named("w_simulated_at_t=0.75") != measures.end());
  CHECK(named("w_simulated_at_t=0.75")->values[0] == doctest::Approx(0.75));
  CHECK(named("w_theory_at_t=1.1") != measures.end());
}

TEST_CASE("LSV across agents: independent decisions show none, common decisions show herding") {
  const int m = 50, p = 40, n = 12;
  PopulationInput in = base_input(m, p, n);
  std::mt19937_64 gen(11);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  MatrixRows rows;
  for (int s = 0; s <= n; ++s) rows.wealth.emplace_back(Eigen::MatrixXd::Constant(m, p, 10.0));
  SUBCASE("independent proportions") {
    for (int k = 0; k < n; ++k) {
      Eigen::MatrixXd a(m, p);
      for (int q = 0; q < p; ++q)
        for (int i = 0; i < m; ++i) a(i, q) = 10.0 * u(gen);
      rows.amount.push_back(a);
    }
    const auto out = analyse_population(in, rows);
    REQUIRE(out.lsv);
    CHECK(std::abs(out.lsv->overall.mean_h) < 0.02);
    CHECK(out.lsv->verdict.rfind("no significant correlated trading", 0) == 0);
    CHECK(out.lsv->h.size() == static_cast<std::size_t>(n - 1));
  }
  SUBCASE("everyone on a path moves the same way (direction random across paths)") {
    for (int k = 0; k < n; ++k) {
      Eigen::MatrixXd a(m, p);
      for (int q = 0; q < p; ++q) {
        const double level = 10.0 * u(gen);
        for (int i = 0; i < m; ++i) a(i, q) = level * (1.0 + 0.001 * i);
      }
      rows.amount.push_back(a);
    }
    const auto out = analyse_population(in, rows);
    REQUIRE(out.lsv);
    CHECK(out.lsv->overall.mean_h > 0.3);
    CHECK(out.lsv->verdict.rfind("significant correlated trading", 0) == 0);
  }
}

TEST_CASE("investor metrics of a known wealth path") {
  const int m = 2, p = 1, n = 4;
  PopulationInput in = base_input(m, p, n);
  in.r = 0.0;
  MatrixRows rows;
  const double path0[] = {10, 12, 9, 11, 13};
  const double path1[] = {10, 10, 10, 10, 10};
  for (int s = 0; s <= n; ++s) {
    Eigen::MatrixXd w(m, p);
    w << path0[s], path1[s];
    rows.wealth.push_back(w);
  }
  for (int k = 0; k < n; ++k) rows.amount.emplace_back(Eigen::MatrixXd::Zero(m, p));
  const auto out = analyse_population(in, rows);
  REQUIRE(out.investor);
  const auto& im = *out.investor;
  CHECK(im.agent_cumulative_return[0] == doctest::Approx(0.3));
  CHECK(im.agent_max_drawdown[0] == doctest::Approx(0.25));
  CHECK(im.agent_max_drawdown[1] == 0.0);
  std::vector<double> r = {0.2, -0.25, 2.0 / 9.0, 2.0 / 11.0};
  double mean = 0.0;
  for (double x : r) mean += x / 4.0;
  double var = 0.0;
  for (double x : r) var += (x - mean) * (x - mean) / 3.0;
  CHECK(im.agent_volatility[0] == doctest::Approx(std::sqrt(var)));
  CHECK(im.agent_sharpe[0] == doctest::Approx(mean / std::sqrt(var)));
  CHECK(std::isnan(im.agent_sharpe[1]));  // no variation: Sharpe undefined, not infinite
}

TEST_CASE("wealth reaching zero stops the agent's returns and counts as a full drawdown") {
  const int m = 2, p = 1, n = 3;
  PopulationInput in = base_input(m, p, n);
  MatrixRows rows;
  const double path0[] = {10, 5, -1, 2};
  for (int s = 0; s <= n; ++s) {
    Eigen::MatrixXd w(m, p);
    w << path0[s], 10.0;
    rows.wealth.push_back(w);
  }
  for (int k = 0; k < n; ++k) rows.amount.emplace_back(Eigen::MatrixXd::Zero(m, p));
  const auto out = analyse_population(in, rows);
  REQUIRE(out.investor);
  CHECK(out.investor->ruined_pairs == 1);
  CHECK(out.investor->agent_max_drawdown[0] == 1.0);
}

TEST_CASE("analyse_population refuses rows of the wrong shape") {
  PopulationInput in = base_input(2, 2, 2);
  MatrixRows rows;
  for (int s = 0; s <= 2; ++s) rows.wealth.emplace_back(Eigen::MatrixXd::Constant(3, 2, 10.0));
  for (int k = 0; k < 2; ++k) rows.amount.emplace_back(Eigen::MatrixXd::Zero(3, 2));
  CHECK_THROWS_AS(static_cast<void>(analyse_population(in, rows)), herdsim::InputError);
}
