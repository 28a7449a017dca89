// The [market] table with several assets (io/scenario_toml.cpp read_market, checked through
// sim/market/asset_covariance.hpp): syntax, messages with their key paths, and today's one-asset syntax.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "io/scenario_toml.hpp"
#include "support/scenario_problems.hpp"

using herdsim::io::parse_scenario;

namespace {

const std::string merton = "[[population]]\nname = \"m\"\nkind = \"merton\"\nalpha = 0.2\n";

/// CHECK_PROBLEM on a scenario of `market_lines` under [market] and one merton population.
#define CHECK_MARKET_PROBLEM(market_lines, key, fragment)                        \
  do {                                                                           \
    const std::string text_ = "[market]\n" + std::string(market_lines) + merton; \
    CHECK_PROBLEM(text_, key, fragment);                                         \
  } while (false)

}  // namespace

TEST_SUITE("io.scenario_market") {
  TEST_CASE("several assets: arrays, a number for every asset, names, a correlation matrix") {
    const auto specs = parse_scenario(
        "[market]\nr = 0.03\nmu = [0.07, 0.05, 0.06]\nsigma = [0.17, 0.06, 0.2]\nprice0 = 2\n"
        "names = [\"stock\", \"bond\", \"gold\"]\n"
        "correlation = [[1, 0.3, -0.2], [0.3, 1, 0.1], [-0.2, 0.1, 1]]\n" +
            merton,
        "t.toml");
    REQUIRE(specs.size() == 1);
    const auto& m = specs[0].market;
    REQUIRE(m.asset_count() == 3);
    CHECK(m.assets[1].name == "bond");
    CHECK(m.assets[1].mu == 0.05);
    CHECK(m.assets[2].sigma == 0.2);
    CHECK(m.assets[2].price0 == 2.0);
    CHECK(m.mu == 0.07);  // asset 0 is also the one-asset fields
    CHECK(m.sigma == 0.17);
    CHECK(m.correlation[2] == -0.2);
    CHECK(m.r == 0.03);
  }

  TEST_CASE("a one-factor correlation; default names") {
    const auto specs = parse_scenario(
        "[market]\nmu = [0.07, 0.05]\nsigma = 0.2\nfactor = { loading = [0.5, 0.8] }\n" + merton, "t.toml");
    const auto& m = specs[0].market;
    REQUIRE(m.asset_count() == 2);
    CHECK(m.assets[1].name == "asset1");
    CHECK(m.assets[1].sigma == 0.2);
    CHECK(m.correlation == std::vector<double>{1.0, 0.4, 0.4, 1.0});
  }

  TEST_CASE("today's one-asset syntax reads as before") {
    const auto specs = parse_scenario("[market]\nmu = 0.08\nsigma = 0.2\n" + merton, "t.toml");
    const auto& m = specs[0].market;
    CHECK(m.asset_count() == 1);
    CHECK(m.assets.empty());
    CHECK(m.correlation.empty());
    CHECK(m.mu == 0.08);
    CHECK(herdsim::test::problems_of("[market]\nmu = [0.08]\ncorrelation = [[1]]\n" + merton).empty());
  }

  TEST_CASE("messages: lengths, correlation shape, symmetry, diagonal, range, positive definiteness") {
    CHECK_MARKET_PROBLEM("mu = [0.07, 0.05]\nsigma = [0.1, 0.2, 0.3]\ncorrelation = [[1, 0], [0, 1]]\n",
                         "market.sigma", "has 3 entries but mu has 2");
    CHECK_MARKET_PROBLEM("mu = [0.07, 0.05]\n", "market", "needs their correlation");
    CHECK_MARKET_PROBLEM("mu = [0.07, 0.05]\ncorrelation = [[1, 0.2]]\n", "market.correlation[0]",
                         "must be 2 x 2");
    CHECK_MARKET_PROBLEM("mu = [0.07, 0.05]\ncorrelation = [[1, 0.2], [0.3, 1]]\n",
                         "market.correlation[0][1]", "must be symmetric");
    CHECK_MARKET_PROBLEM("mu = [0.07, 0.05]\ncorrelation = [[1, 0.2], [0.2, 0.5]]\n",
                         "market.correlation[1][1]", "diagonal");
    CHECK_MARKET_PROBLEM("mu = [0.07, 0.05]\ncorrelation = [[1, 2], [2, 1]]\n", "market.correlation[0][1]",
                         "must lie in [-1, 1]");
    CHECK_MARKET_PROBLEM(
        "mu = [0.07, 0.05, 0.06]\ncorrelation = [[1, 0.9, 0.9], [0.9, 1, -0.9], [0.9, -0.9, 1]]\n",
        "market.correlation", "smallest eigenvalue is -0.8");
    CHECK_MARKET_PROBLEM("mu = [0.07, 0.05]\nsigma = [0.1, -0.2]\ncorrelation = [[1, 0], [0, 1]]\n",
                         "market.sigma[1]", "must be > 0");
    CHECK_MARKET_PROBLEM("mu = [0.07, 0.05]\nfactor = { loading = [0.5] }\n", "market.factor.loading",
                         "one loading per asset (2)");
    CHECK_MARKET_PROBLEM("mu = [0.07, 0.05]\nfactor = { loading = [0.5, 1.5] }\n", "market.factor.loading[1]",
                         "[-1, 1]");
    CHECK_MARKET_PROBLEM("mu = [0.07, 0.05]\nfactor = { loading = [1, 1] }\ncorrelation = [[1, 0], [0, 1]]\n",
                         "market.factor", "not both");
    CHECK_MARKET_PROBLEM("mu = [0.07, 0.05]\nnames = [\"a\", \"a\"]\ncorrelation = [[1, 0], [0, 1]]\n",
                         "market.names[1]", "used twice");
    CHECK_MARKET_PROBLEM("correlation = [[0.5]]\n", "market.correlation",
                         "one asset has the correlation [[1]]");
  }

  TEST_CASE("herd followers of a leader and of peers (the mutual games) take several assets") {
    const std::string market = "[market]\nmu = [0.07, 0.05]\ncorrelation = [[1, 0.4], [0.4, 1]]\n";
    CHECK_VALID(market + merton +
                "[[population]]\nname = \"f\"\nkind = \"herd\"\nleader = \"m\"\nalpha = 0.5\ntheta = 1e-8\n"
                "herd = \"relative\"\npolicy = \"adaptive\"\n");
    const std::string peers =
        market +
        "[[population]]\nname = \"f\"\nkind = \"herd\"\ninfluence = \"peers\"\nnetwork = { kind = \"ring\", "
        "k = 1 }\ncount = 4\nalpha = 0.5\ntheta = 1e-8\n";
    CHECK_VALID(peers);
    CHECK_VALID(peers + "herd = \"relative\"\npolicy = \"replan\"\n");
  }

  TEST_CASE("an investagent population trades one named asset: required with several, one of the market's") {
    const std::string market =
        "[market]\nnames = [\"stock\", \"bond\"]\nmu = [0.07, 0.055]\nsigma = [0.17, 0.08]\n"
        "correlation = [[1, 0.3], [0.3, 1]]\n";
    const std::string llm =
        "[[population]]\nname = \"llm\"\nkind = \"investagent\"\nleader = \"m\"\nalpha = 0.5\ntheta = 0\n"
        "inference = { backend = \"reference\", answerer = \"advisor\" }\n";
    CHECK_VALID(market + merton + llm + "asset = \"bond\"\n");
    CHECK_VALID(market + merton + llm + "asset = \"stock\"\n");
    // Several assets and no `asset`: one problem, naming the key, saying why and listing the names.
    const auto missing = herdsim::test::problems_of(market + merton + llm);
    INFO(herdsim::test::listing(missing));
    CHECK(herdsim::test::has_problem(
        missing, "population[1].asset",
        "is required for kind = \"investagent\" in a market of several assets: its "
        "prompts are about a single stock, so name the one it trades, one of "
        "\"stock\", \"bond\""));
    CHECK(missing.size() == 1);
    CHECK_PROBLEM(market + merton + llm + "asset = \"gold\"\n", "population[1].asset",
                  "there is no asset named \"gold\"; the market's assets are \"stock\", \"bond\"");
    CHECK_PROBLEM(market + merton + llm + "asset = \"\"\n", "population[1].asset", "must not be empty");
    // One asset: `asset` is optional, and names the only asset where given.
    CHECK_VALID(merton + llm);
    CHECK_VALID(merton + llm + "asset = \"asset0\"\n");
    CHECK_PROBLEM(merton + llm + "asset = \"bond\"\n", "population[1].asset",
                  "there is no asset named \"bond\"; the market's only asset is \"asset0\"");
    // An asset the N-asset advisor holds against its excess return has no one-asset Merton advisor:
    // Sigma^{-1} v = (0.134, -0.116) / sigma^2 with correlation 0.9 and v = (0.03, 0.005).
    const std::string hedged =
        "[market]\nmu = [0.07, 0.045]\nsigma = 0.17\ncorrelation = [[1, 0.9], [0.9, 1]]\n";
    CHECK_PROBLEM(hedged + merton + llm + "asset = \"asset1\"\n", "population[1].asset",
                  "holds a short position in asset \"asset1\" although its excess return mu - r = ");
    CHECK_VALID(hedged + merton + llm + "asset = \"asset0\"\n");
    CHECK_PROBLEM("[market]\nmu = [0.07, 0.04]\ncorrelation = [[1, 0.2], [0.2, 1]]\n" + merton + llm +
                      "asset = \"asset1\"\n",
                  "population[1].asset", "has no excess return (mu = r = 0.04)");
  }
}
