// Several correlated assets (docs/theory.md §7.1): the market's checks, the shock vectors, and Merton and
// noise agents in an N-asset market. The references are computed here from the formulas, independently of
// herdsim's theory code: the Merton amounts by a brute-force maximisation of the CARA certainty equivalent.
#include <doctest/doctest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "agents/noise_agent.hpp"
#include "agents/registry.hpp"
#include "sim/error.hpp"
#include "sim/market/asset_covariance.hpp"
#include "sim/market/exogenous_gbm.hpp"
#include "sim/simulation.hpp"
#include "support/specs.hpp"

using namespace herdsim;

namespace {

/// Three assets: drifts, volatilities and a correlation with a negative entry.
sim::MarketSpec three_assets() {
  sim::MarketSpec m;
  m.assets = {{"stock", 0.07, 0.17, 1.0}, {"bond", 0.05, 0.06, 2.0}, {"gold", 0.06, 0.20, 3.0}};
  m.mu = 0.07;
  m.sigma = 0.17;
  m.correlation = {1.0, 0.3, -0.2, 0.3, 1.0, 0.1, -0.2, 0.1, 1.0};
  return m;
}

/// three_assets()' Sigma = diag(sigma) R diag(sigma), from its numbers written out here (not sim's).
Eigen::Matrix3d written_covariance() {
  const Eigen::Vector3d sigma(0.17, 0.06, 0.20);
  Eigen::Matrix3d r;
  r << 1.0, 0.3, -0.2, 0.3, 1.0, 0.1, -0.2, 0.1, 1.0;
  return sigma.asDiagonal() * r * sigma.asDiagonal();
}

/// three_assets()' v = mu - r, per year.
Eigen::Vector3d written_excess() {
  return {0.07 - 0.04, 0.05 - 0.04, 0.06 - 0.04};
}

/// One Merton investor (alpha, wealth 10) in three_assets(), seed 321.
sim::ScenarioSpec merton_spec(int paths, double horizon, int steps_per_year, double alpha) {
  sim::ScenarioSpec spec;
  spec.run.paths = paths;
  spec.run.seed = 321;
  spec.run.horizon = horizon;
  spec.run.steps_per_year = steps_per_year;
  spec.market = three_assets();
  spec.populations.push_back(test::merton("m", 1, alpha));
  return spec;
}

bool has(const std::vector<sim::MarketProblem>& ps, const std::string& key, const std::string& fragment) {
  return std::any_of(ps.begin(), ps.end(), [&](const sim::MarketProblem& p) {
    return p.key == key && p.message.find(fragment) != std::string::npos;
  });
}

/// The CARA certainty equivalent's per-step part for amounts p: G p.v dt - alpha/2 G^2 p' Sigma p dt (the
/// terminal wealth of the arithmetic steps is Gaussian), maximised by a compass search: no derivative, no
/// closed form.
Eigen::VectorXd brute_force_optimum(const Eigen::MatrixXd& cov, const Eigen::VectorXd& v, double alpha,
                                    double growth, double dt) {
  auto ce = [&](const Eigen::VectorXd& p) {
    return growth * p.dot(v) * dt - 0.5 * alpha * growth * growth * p.dot(cov * p) * dt;
  };
  Eigen::VectorXd p = Eigen::VectorXd::Zero(v.size());
  double best = ce(p);
  for (double h = 64.0; h > 1e-11;) {
    bool moved = false;
    for (Eigen::Index i = 0; i < p.size(); ++i) {
      for (const double sign : {1.0, -1.0}) {
        Eigen::VectorXd q = p;
        q[i] += sign * h;
        if (const double c = ce(q); c > best) {
          best = c;
          p = q;
          moved = true;
        }
      }
    }
    if (!moved) h *= 0.5;
  }
  return p;
}

}  // namespace

TEST_SUITE("sim.asset_market") {
  TEST_CASE("market_problems: a valid market has none; one asset keeps today's keys") {
    CHECK(sim::market_problems(three_assets(), 10.0).empty());
    sim::MarketSpec one;
    one.sigma = -0.1;
    const auto ps = sim::market_problems(one, 10.0);
    REQUIRE(!ps.empty());
    CHECK(ps.front().key == "sigma");
  }

  TEST_CASE("market_problems: correlation entries, diagonal, symmetry, positive definiteness, names") {
    auto m = three_assets();
    m.correlation[1] = 1.5;
    CHECK(has(sim::market_problems(m, 10.0), "correlation[0][1]", "must lie in [-1, 1], got 1.5"));
    m = three_assets();
    m.correlation[4] = 0.9;
    CHECK(has(sim::market_problems(m, 10.0), "correlation[1][1]",
              "diagonal of a correlation matrix must be 1"));
    m = three_assets();
    m.correlation[1] = 0.4;
    CHECK(has(sim::market_problems(m, 10.0), "correlation[0][1]", "must be symmetric: 0.4 here, 0.3 at"));
    m = three_assets();
    // 0.9, 0.9, -0.9: no three variables have these correlations; the smallest eigenvalue is -0.8.
    m.correlation = {1.0, 0.9, 0.9, 0.9, 1.0, -0.9, 0.9, -0.9, 1.0};
    CHECK(has(sim::market_problems(m, 10.0), "correlation", "smallest eigenvalue is -0.8"));
    CHECK_THROWS_AS((void)sim::correlation_factor(m), ScenarioError);
    m = three_assets();
    m.correlation.pop_back();
    CHECK(has(sim::market_problems(m, 10.0), "correlation", "must be 3 x 3"));
    m = three_assets();
    m.assets[2].name = "stock";
    CHECK(has(sim::market_problems(m, 10.0), "names[2]", "\"stock\" is used twice"));
    m = three_assets();
    m.assets[1].sigma = 0.0;
    CHECK(has(sim::market_problems(m, 10.0), "sigma[1]", "sigma"));
  }

  TEST_CASE("one-factor correlation: R_ij = b_i b_j off the diagonal") {
    const auto r = sim::one_factor_correlation({0.5, -0.4, 0.8});
    const std::vector<double> want{1.0, -0.2, 0.4, -0.2, 1.0, -0.32, 0.4, -0.32, 1.0};
    REQUIRE(r.size() == want.size());
    for (std::size_t i = 0; i < r.size(); ++i) CHECK(r[i] == doctest::Approx(want[i]).epsilon(1e-15));
  }

  TEST_CASE("shock vectors: asset 0 draws today's number; the sample correlation is the given matrix") {
    sim::ScenarioSpec spec;
    spec.run.paths = 20000;
    spec.run.seed = 5;
    spec.market = three_assets();
    sim::ExogenousGbm market(spec);
    sim::MarketState state;
    market.initialize(state);
    CHECK(state.assets() == 3);
    CHECK(state.price(7, 1) == 2.0);
    const sim::CounterRng rng(spec.run.seed);
    const int steps = 3;
    Eigen::MatrixXd eps(spec.run.paths * steps, 3);
    for (int k = 0; k < steps; ++k) {
      market.move(k, {}, state);
      for (int p = 0; p < spec.run.paths; ++p) {
        if (p < 5) CHECK(state.shock(p, 0) == rng.normal(sim::Stream::market, p, k, 0));
        eps.row(k * spec.run.paths + p) = state.shock.row(p);
      }
    }
    const double n = static_cast<double>(eps.rows());
    const Eigen::MatrixXd centred = eps.rowwise() - eps.colwise().mean();
    const Eigen::MatrixXd cov = centred.transpose() * centred / (n - 1.0);
    const Eigen::MatrixXd r = sim::correlation_matrix(spec.market);
    for (int a = 0; a < 3; ++a) {
      // Unit variance within 5 standard errors (sqrt(2/n) for normal data).
      CHECK(std::abs(cov(a, a) - 1.0) < 5.0 * std::sqrt(2.0 / n));
      for (int b = a + 1; b < 3; ++b) {
        const double rho = cov(a, b) / std::sqrt(cov(a, a) * cov(b, b));
        CAPTURE(a);
        CAPTURE(b);
        // The sample correlation's standard error is about (1 - rho^2) / sqrt(n).
        CHECK(std::abs(rho - r(a, b)) < 5.0 * (1.0 - r(a, b) * r(a, b)) / std::sqrt(n));
      }
    }
  }

  TEST_CASE("a one-asset market written as one asset draws exactly the single-asset numbers") {
    sim::ScenarioSpec one;
    one.run.paths = 7;
    sim::ScenarioSpec two = one;
    two.market.assets = {{"a", 0.07, 0.17, 1.0}, {"b", 0.05, 0.1, 1.0}};
    two.market.correlation = {1.0, 0.5, 0.5, 1.0};
    sim::ExogenousGbm m1(one);
    sim::ExogenousGbm m2(two);
    sim::MarketState s1;
    sim::MarketState s2;
    m1.initialize(s1);
    m2.initialize(s2);
    for (int k = 0; k < 4; ++k) {
      m1.move(k, {}, s1);
      m2.move(k, {}, s2);
      CHECK(s1.price.col(0) == s2.price.col(0));  // bitwise: L(0, 0) = 1, asset 0 keeps its draw
      CHECK(m1.settlement().excess.col(0) == m2.settlement().excess.col(0));
    }
  }

  TEST_CASE("N-asset Merton amounts equal a brute-force maximisation of the CARA certainty equivalent") {
    const double alpha = 0.4;
    auto simulation = agents::make_simulation(merton_spec(2, 3.0, 2, alpha));
    const auto summary = simulation->run();
    CHECK_FALSE(summary.fused);  // several assets: the step loop
    const Eigen::MatrixXd& plan = simulation->state().populations[0].theory_amount;
    REQUIRE(plan.cols() == 3 * 6);
    const Eigen::Matrix3d cov = written_covariance();
    const Eigen::Vector3d v = written_excess();
    const double dt = 0.5;
    const double g = 1.0 + 0.04 * dt;
    for (int k = 0; k < 6; ++k) {
      // Decision k's amount grows to g^{n-1-k} by the end: the weight of its gain in terminal wealth.
      const double growth = std::pow(g, 6 - 1 - k);
      const Eigen::VectorXd best = brute_force_optimum(cov, v, alpha, growth, dt);
      for (int a = 0; a < 3; ++a) {
        CAPTURE(k);
        CAPTURE(a);
        CHECK(plan(0, a * 6 + k) == doctest::Approx(best[a]).epsilon(1e-7));
      }
    }
    // The last decision's amounts are what the agent held: asset a's columns [a paths, (a + 1) paths).
    const Eigen::MatrixXd& amount = simulation->state().populations[0].amount;
    for (int a = 0; a < 3; ++a) CHECK(amount(0, a * 2 + 1) == plan(0, a * 6 + 5));
  }

  TEST_CASE("N-asset Merton terminal wealth: mean and variance match the closed form") {
    // X_n = x0 g^n + sum_k g^{n-1-k} P_k.(v dt + diag(sigma) L sqrt(dt) z_k): Gaussian, with
    // mean x0 g^n + sum_k g^{n-1-k} P_k.v dt and variance sum_k g^{2(n-1-k)} P_k' Sigma P_k dt, P_k the
    // Merton amounts Sigma^{-1} v / (alpha g^{n-1-k}) (Sigma^{-1} by Eigen's inverse here). Tolerances: 5
    // standard errors (false alarms ~1e-6 per run).
    const double alpha = 0.3;
    auto simulation = agents::make_simulation(merton_spec(20000, 10.0, 1, alpha));
    (void)simulation->run();
    const Eigen::VectorXd x = simulation->state().populations[0].wealth.row(0).transpose();
    const Eigen::Matrix3d cov = written_covariance();
    const Eigen::Vector3d v = written_excess();
    const Eigen::Vector3d direction = cov.inverse() * v;
    const double g = 1.04;
    double mean = 10.0 * std::pow(g, 10);
    double variance = 0.0;
    for (int k = 0; k < 10; ++k) {
      const double grow = std::pow(g, 9 - k);
      const Eigen::Vector3d p = direction / (alpha * grow);
      mean += grow * p.dot(v);
      variance += grow * grow * p.dot(cov * p);
    }
    const double n = static_cast<double>(x.size());
    const double sample_mean = x.mean();
    const double sample_var = (x.array() - sample_mean).square().sum() / (n - 1.0);
    CHECK(std::abs(sample_mean - mean) < 5.0 * std::sqrt(variance / n));
    CHECK(std::abs(sample_var / variance - 1.0) < 5.0 * std::sqrt(2.0 / n));
  }

  TEST_CASE("noise traders spread their proportion equally over the assets; draws differ per asset") {
    sim::ScenarioSpec spec;
    spec.run.paths = 3;
    spec.run.horizon = 2.0;
    spec.market = three_assets();
    agents::NoiseParams fixed;
    fixed.proportion = test::constant(0.6);
    spec.populations.push_back(agents::population_spec("fixed", 2, fixed, test::constant(10.0)));
    agents::NoiseParams drawn;
    drawn.proportion.form = sim::ParamSpec::Form::distribution;
    drawn.proportion.distribution = {sim::DistributionSpec::Kind::uniform, 0.0, 1.0, {}, {}};
    spec.populations.push_back(agents::population_spec("drawn", 2, drawn, test::constant(10.0)));
    auto simulation = agents::make_simulation(spec);
    (void)simulation->run();
    // After the run, amount holds the last decision (k = 1) and previous_amount the first (wealth 10).
    const sim::PopulationState& f = simulation->state().populations[0];
    for (int a = 0; a < 3; ++a) CHECK(f.previous_amount(1, a * 3 + 2) == doctest::Approx(2.0).epsilon(1e-15));
    const sim::PopulationState& d = simulation->state().populations[1];
    CHECK(d.previous_amount(0, 0) != d.previous_amount(0, 3));
    for (int a = 0; a < 3; ++a) {
      CHECK(d.previous_amount(0, a * 3) > 0.0);
      CHECK(d.previous_amount(0, a * 3) < 10.0 / 3.0);
    }
  }

  TEST_CASE("several assets: bitwise identical for 1 and 2 threads (merton, drawn noise)") {
    sim::ScenarioSpec spec = merton_spec(300, 3.0, 4, 0.3);
    agents::NoiseParams drawn;
    drawn.proportion.form = sim::ParamSpec::Form::distribution;
    drawn.proportion.distribution = {sim::DistributionSpec::Kind::uniform, 0.0, 1.0, {}, {}};
    spec.populations.push_back(agents::population_spec("drawn", 700, drawn, test::constant(10.0)));
    std::vector<Eigen::MatrixXd> results[2];
    for (const int threads : {1, 2}) {
      auto simulation = agents::make_simulation(spec);
      sim::RunOptions options;
      options.threads = threads;
      (void)simulation->run(options);
      const sim::RunState& state = simulation->state();
      auto& out = results[threads - 1];
      out.push_back(state.market.price);
      for (const auto& pop : state.populations) {
        out.push_back(pop.wealth);
        out.push_back(pop.amount);
      }
    }
    REQUIRE(results[0].size() == results[1].size());
    for (std::size_t i = 0; i < results[0].size(); ++i) CHECK(results[0][i] == results[1][i]);
  }

  TEST_CASE("herd followers of peers take a market with several assets (the mutual games per coordinate)") {
    // The games themselves: tests/sim/theory/test_mutual_game.cpp, test_relative_mutual.cpp and
    // tests/agents/test_herd_agent.cpp.
    sim::ScenarioSpec spec = test::paper_spec(2, agents::Policy::plan);
    spec.market = three_assets();
    agents::HerdParams& hp = test::herd_params(spec.populations[1]);
    hp.influence = agents::Influence::peers;
    hp.leader.clear();
    auto simulation = agents::make_simulation(spec);
    (void)simulation->run({});
    const sim::PopulationState& peers = simulation->state().populations[1];
    CHECK(peers.amount.cols() == 3 * spec.run.paths);
    CHECK(peers.amount.allFinite());
  }
}
