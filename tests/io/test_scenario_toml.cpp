#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "agents/herd_agent.hpp"
#include "agents/investagent_agent.hpp"
#include "agents/merton_agent.hpp"
#include "agents/noise_agent.hpp"
#include "io/replay_backend.hpp"
#include "io/scenario_toml.hpp"
#include "sim/error.hpp"
#include "support/scenario_problems.hpp"

using herdsim::io::parse_scenario;
using herdsim::io::ScenarioFileError;
using herdsim::io::ScenarioProblem;
namespace sim = herdsim::sim;
namespace theory = herdsim::theory;
namespace agents = herdsim::agents;

namespace {

// The issue's example, verbatim.
const std::string issue_example = R"([run]
seed = 42
paths = 1000            # Monte Carlo market paths
horizon = 10            # years
steps_per_year = 1
[market]
r = 0.04
mu = 0.07
sigma = 0.17
[[population]]
name = "advisor"
kind = "merton"
count = 1
alpha = 0.2
wealth = 10.0
[[population]]
name = "followers"
kind = "herd"           # absolute or relative herding
herd = "absolute"
influence = "leader"    # or "peers" with a network
leader = "advisor"
policy = "plan"         # plan | replan | adaptive
count = 6600
alpha = { lottery_prob = [0.4, 0.5, 0.6, 0.7, 0.8, 0.9] }
theta = { score = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] }
wealth = 10.0
[record]
every = 1
)";

const std::string advisor = "[[population]]\nname = \"advisor\"\nkind = \"merton\"\nalpha = 0.2\n";
/// A valid herd population following the advisor, with extra lines appended to its table.
std::string follower(const std::string& extra = "") {
  return "[[population]]\nname = \"f\"\nkind = \"herd\"\nleader = \"advisor\"\nalpha = 0.5\ntheta = 1e-8\n" +
         extra;
}
/// A valid peers population with extra lines appended to its table.
std::string peers(const std::string& extra = "") {
  return "[[population]]\nname = \"p\"\nkind = \"herd\"\ninfluence = \"peers\"\ncount = 5\nalpha = "
         "0.5\ntheta = 0\n" +
         extra;
}
std::string merton_with(const std::string& extra) {
  return advisor + extra;
}

using herdsim::test::has_problem;
using herdsim::test::listing;
using herdsim::test::problems_of;

const agents::MertonParams& merton_of(const sim::PopulationSpec& ps) {
  return agents::params_of<agents::MertonParams>(ps);
}
const agents::HerdParams& herd_of(const sim::PopulationSpec& ps) {
  return agents::params_of<agents::HerdParams>(ps);
}
const agents::NoiseParams& noise_of(const sim::PopulationSpec& ps) {
  return agents::params_of<agents::NoiseParams>(ps);
}
const agents::InvestAgentParams& invest_of(const sim::PopulationSpec& ps) {
  return agents::params_of<agents::InvestAgentParams>(ps);
}

sim::ScenarioSpec one(const std::string& text, const std::vector<std::string>& overrides = {}) {
  const auto specs = parse_scenario(text, "t.toml", overrides);
  REQUIRE(specs.size() == 1);
  return specs[0];
}

}  // namespace

TEST_SUITE("io.scenario_toml") {
  TEST_CASE("the issue's example parses to the expected structs") {
    const auto s = one(issue_example);
    CHECK(s.run.seed == 42);
    CHECK(s.run.paths == 1000);
    CHECK(s.run.horizon == 10.0);
    CHECK(s.run.steps_per_year == 1);
    CHECK(s.run.wealth_update == sim::WealthUpdate::arithmetic);
    CHECK(s.market.r == 0.04);
    CHECK(s.market.mu == 0.07);
    CHECK(s.market.sigma == 0.17);
    CHECK(s.market.price0 == 1.0);
    REQUIRE(s.populations.size() == 2);

    const auto& a = s.populations[0];
    CHECK(a.name == "advisor");
    CHECK(a.kind == agents::MertonParams::kind);
    CHECK(a.count == 1);
    CHECK(merton_of(a).alpha.form == sim::ParamSpec::Form::constant);
    CHECK(merton_of(a).alpha.scale == sim::ParamSpec::Scale::direct);
    CHECK(merton_of(a).alpha.value == 0.2);
    CHECK(a.wealth.value == 10.0);
    CHECK(merton_of(a).policy == agents::Policy::plan);
    CHECK(a.source_line == 10);

    const auto& f = s.populations[1];
    CHECK(f.name == "followers");
    CHECK(f.kind == agents::HerdParams::kind);
    CHECK(herd_of(f).herd == agents::HerdType::absolute);
    CHECK(herd_of(f).influence == agents::Influence::leader);
    CHECK(herd_of(f).leader == "advisor");
    CHECK(herd_of(f).policy == agents::Policy::plan);
    CHECK(f.count == 6600);
    CHECK(herd_of(f).alpha.form == sim::ParamSpec::Form::list);
    CHECK(herd_of(f).alpha.scale == sim::ParamSpec::Scale::lottery_prob);
    CHECK(herd_of(f).alpha.values == std::vector<double>{0.4, 0.5, 0.6, 0.7, 0.8, 0.9});
    CHECK(herd_of(f).lottery.win == 10.0);
    CHECK(herd_of(f).lottery.sure == 3.0);
    CHECK(herd_of(f).theta.form == sim::ParamSpec::Form::list);
    CHECK(herd_of(f).theta.scale == sim::ParamSpec::Scale::score);
    CHECK(herd_of(f).theta.values.size() == 11);
    CHECK(herd_of(f).theta.values.back() == 10.0);
    CHECK(f.source_line == 16);
    CHECK(s.record.every == 1);
    CHECK(s.sweep_point.empty());
  }

  TEST_CASE("omitted tables and keys take the documented defaults") {
    const auto s = one(advisor);
    CHECK(s.run.seed == 42);
    CHECK(s.run.paths == 1);
    CHECK(s.run.steps() == 10);
    CHECK(s.market.sigma == 0.17);
    CHECK(s.populations[0].count == 1);
    CHECK(s.populations[0].wealth.form == sim::ParamSpec::Form::constant);
    CHECK(s.populations[0].wealth.value == 10.0);
    CHECK(merton_of(s.populations[0]).optimum == agents::Optimum::discrete);
    CHECK(s.record.enabled);
    CHECK(s.record.max_agents == -1);
    CHECK(s.record.quantiles == std::vector<double>{0.05, 0.25, 0.5, 0.75, 0.95});
  }

  TEST_CASE("every key of every table is read") {
    const auto s = one(R"([run]
seed = 7
paths = 8
horizon = 2.5
steps_per_year = 4
wealth_update = "lognormal"
[market]
mu = 0.1
r = -0.01
sigma = 0.3
price0 = 2
[[population]]
name = "advisor"
kind = "merton"
alpha = { lottery_prob = 0.9 }
lottery = "win20_sure6"
policy = "replan"
optimum = "continuous"
[[population]]
name = "rel"
kind = "herd"
herd = "relative"
leader = "advisor"
bc = "natural"
policy = "adaptive"
alpha = { dist = "lognormal", mu = -1, sigma = 0.5 }
theta = { score = { dist = "uniform", low = 0, high = 10 } }
wealth = { dist = "normal", mean = 10, std = 2, low = 1, high = 20 }
[[population]]
name = "p"
kind = "herd"
influence = "peers"
network = { kind = "small_world", k = 2, p = 0.2 }
count = 10
rho = 1.5
alpha = 0.3
theta = [0, 1e-8]
[[population]]
name = "noise-1"
kind = "noise"
count = 3
proportion = { dist = "normal", mean = 0.5, std = 0.1 }
[record]
every = 2
trajectories = false
enabled = true
paths = [0, 7]
max_agents = 100
compression = 4
quantiles = [0.1, 0.9]
)");
    CHECK(s.run.seed == 7);
    CHECK(s.run.steps() == 10);
    CHECK(s.run.wealth_update == sim::WealthUpdate::lognormal);
    CHECK(s.market.r == -0.01);
    CHECK(s.market.price0 == 2.0);
    const auto& a = s.populations[0];
    CHECK(merton_of(a).lottery.win == 20.0);
    CHECK(merton_of(a).alpha.scale == sim::ParamSpec::Scale::lottery_prob);
    CHECK(merton_of(a).alpha.value == 0.9);
    CHECK(merton_of(a).policy == agents::Policy::replan);
    CHECK(merton_of(a).optimum == agents::Optimum::continuous);
    const auto& rel = s.populations[1];
    CHECK(herd_of(rel).herd == agents::HerdType::relative);
    CHECK(herd_of(rel).bc == theory::BoundaryCondition::natural);
    CHECK(herd_of(rel).policy == agents::Policy::adaptive);
    CHECK(herd_of(rel).alpha.form == sim::ParamSpec::Form::distribution);
    CHECK(herd_of(rel).alpha.distribution.kind == sim::DistributionSpec::Kind::lognormal);
    CHECK(herd_of(rel).alpha.distribution.a == -1.0);
    CHECK(herd_of(rel).alpha.distribution.b == 0.5);
    CHECK_FALSE(herd_of(rel).alpha.distribution.low.has_value());
    CHECK(herd_of(rel).theta.scale == sim::ParamSpec::Scale::score);
    CHECK(herd_of(rel).theta.distribution.kind == sim::DistributionSpec::Kind::uniform);
    CHECK(herd_of(rel).theta.distribution.b == 10.0);
    CHECK(rel.wealth.distribution.kind == sim::DistributionSpec::Kind::normal);
    CHECK(rel.wealth.distribution.low == 1.0);
    CHECK(rel.wealth.distribution.high == 20.0);
    const auto& p = s.populations[2];
    CHECK(herd_of(p).influence == agents::Influence::peers);
    CHECK(herd_of(p).network.kind == agents::NetworkSpec::Kind::small_world);
    CHECK(herd_of(p).network.k == 2);
    CHECK(herd_of(p).network.p == 0.2);
    CHECK(herd_of(p).rho == 1.5);
    CHECK(s.populations[3].kind == agents::NoiseParams::kind);
    CHECK(noise_of(s.populations[3]).proportion.distribution.a == 0.5);
    CHECK(s.record.every == 2);
    CHECK_FALSE(s.record.trajectories);
    CHECK(s.record.paths == std::vector<int>{0, 7});
    CHECK(s.record.max_agents == 100);
    CHECK(s.record.compression == 4);
    CHECK(s.record.quantiles == std::vector<double>{0.1, 0.9});
  }

  TEST_CASE("grid and cycling: lists are stored in file order, constants stay constants") {
    // The engine combines the lists of a population as a grid (alpha slowest) and cycles it to
    // count; the spec keeps the lists exactly as written.
    const auto s = one(advisor + follower("count = 12\nwealth = [5, 10]\n") + "");
    const auto& f = s.populations[1];
    CHECK(herd_of(f).alpha.form == sim::ParamSpec::Form::constant);
    CHECK(f.wealth.form == sim::ParamSpec::Form::list);
    CHECK(f.wealth.values == std::vector<double>{5.0, 10.0});
    const auto g = one(advisor +
                       "[[population]]\nname = \"g\"\nkind = \"herd\"\nleader = \"advisor\"\ncount = 7\n"
                       "alpha = [0.9, 0.1, 0.5]\ntheta = { score = [3, 0] }\n");
    CHECK(herd_of(g.populations[1]).alpha.values == std::vector<double>{0.9, 0.1, 0.5});
    CHECK(herd_of(g.populations[1]).theta.values == std::vector<double>{3.0, 0.0});
    CHECK(g.populations[1].count == 7);  // need not be a multiple of the grid's 6 points
  }

  TEST_CASE("a syntax error is reported with toml++'s line:column") {
    const auto ps = problems_of("[run]\nseed = 1\npaths = = 2\n");
    REQUIRE(ps.size() == 1);
    CHECK(ps[0].line == 3);
    CHECK(ps[0].column > 0);
    CHECK(ps[0].message.find("TOML syntax error") != std::string::npos);
  }

  TEST_CASE("several problems are reported at once, sorted, with line:column") {
    const std::string text = R"([run]
paths = 0
horizon = -1
[market]
sigma = 0
[[population]]
name = "advisor"
kind = "merton"
alpha = -2
colour = "red"
)";
    try {
      (void)parse_scenario(text, "bad.toml");
      FAIL("expected ScenarioFileError");
    } catch (const ScenarioFileError& e) {
      const auto& ps = e.problems();
      INFO(e.what());
      REQUIRE(ps.size() == 5);
      CHECK(ps[0].key_path == "run.paths");
      CHECK(ps[0].line == 2);
      CHECK(ps[0].column == 9);
      CHECK(ps[1].key_path == "run.horizon");
      CHECK(ps[1].line == 3);
      CHECK(ps[2].key_path == "market.sigma");
      CHECK(ps[2].line == 5);
      CHECK(ps[3].key_path == "population[0].alpha");
      CHECK(ps[3].line == 9);
      CHECK(ps[3].column == 9);
      CHECK(ps[4].key_path == "population[0].colour");
      CHECK(ps[4].line == 10);
      const std::string what = e.what();
      CHECK(what.find("bad.toml:2:9: run.paths: must be >= 1, got 0\n") == 0);
      CHECK(what.find("bad.toml:9:9: population[0].alpha: must be > 0, got -2") != std::string::npos);
      CHECK(std::count(what.begin(), what.end(), '\n') == 4);
      CHECK(e.source() == "bad.toml");
    }
    CHECK_THROWS_AS((void)parse_scenario(text, "bad.toml"), herdsim::ScenarioError);
  }

  TEST_CASE("unknown keys are errors that list the allowed keys") {
    CHECK_PROBLEM(advisor + "[runn]\n", "runn", "allowed keys: run, market, population, record, sweep");
    CHECK_PROBLEM(advisor + "[run]\nsteps = 2\n", "run.steps", "allowed keys: seed, paths");
    CHECK_PROBLEM(advisor + "[market]\nvol = 2\n", "market.vol", "unknown key");
    CHECK_PROBLEM(advisor + "[record]\nfoo = 2\n", "record.foo", "unknown key");
    CHECK_PROBLEM(merton_with("colour = 1\n"), "population[0].colour", "allowed keys: name, kind");
    CHECK_PROBLEM(advisor + peers("network = { kind = \"ring\", k = 1, q = 2 }\n"), "population[1].network.q",
                  "allowed keys: kind, k, p");
    CHECK_PROBLEM(
        advisor + follower().replace(follower().find("alpha = 0.5"), 11,
                                     "alpha = { dist = \"uniform\", low = 0.1, high = 1, mean = 2 }"),
        "population[1].alpha.mean", "allowed keys: dist, low, high");
    CHECK_PROBLEM(
        merton_with("").replace(advisor.find("alpha = 0.2"), 11, "alpha = { lottery_prob = 0.5, x = 1 }"),
        "population[0].alpha.x", "allowed keys: lottery_prob");
  }

  TEST_CASE("[run] checks") {
    CHECK_PROBLEM(advisor + "[run]\nseed = -1\n", "run.seed", ">= 0");
    CHECK_PROBLEM(advisor + "[run]\nseed = \"x\"\n", "run.seed", "must be an integer");
    CHECK_PROBLEM(advisor + "[run]\npaths = 0\n", "run.paths", ">= 1");
    CHECK_PROBLEM(advisor + "[run]\npaths = 1.5\n", "run.paths", "must be an integer, got 1.5");
    CHECK_PROBLEM(advisor + "[run]\nhorizon = 0\n", "run.horizon", "must be > 0");
    CHECK_PROBLEM(advisor + "[run]\nhorizon = inf\n", "run.horizon", "must be > 0");
    CHECK_PROBLEM(advisor + "[run]\nsteps_per_year = 0\n", "run.steps_per_year", ">= 1");
    CHECK_PROBLEM(advisor + "[run]\nhorizon = 2.5\nsteps_per_year = 3\n", "run.horizon",
                  "whole number of steps");
    CHECK_VALID(advisor + "[run]\nhorizon = 2.5\nsteps_per_year = 2\n");
    CHECK_PROBLEM(advisor + "[run]\nwealth_update = \"exact\"\n", "run.wealth_update",
                  "must be one of \"arithmetic\", \"lognormal\", got \"exact\"");
    CHECK_PROBLEM("run = 3\n" + advisor, "run", "must be a table");
    CHECK_PROBLEM(advisor + "[run]\npaths = 3000000000\n", "run.paths", "must lie in [1, 2147483647]");
    CHECK_PROBLEM(advisor + "[run]\nhorizon = 1e-12\n", "run.horizon", "whole number of steps");
  }

  TEST_CASE("[market] checks") {
    CHECK_PROBLEM(advisor + "[market]\nmu = nan\n", "market.mu", "finite");
    CHECK_PROBLEM(advisor + "[market]\nr = \"4%\"\n", "market.r", "must be a number");
    CHECK_PROBLEM(advisor + "[market]\nsigma = -0.1\n", "market.sigma", "must be > 0");
    CHECK_PROBLEM(advisor + "[market]\nprice0 = 0\n", "market.price0", "must be > 0");
  }

  TEST_CASE("population table checks") {
    CHECK_PROBLEM("[run]\nseed = 1\n", "population", "at least one [[population]]");
    CHECK_PROBLEM("[population]\nname = \"a\"\n", "population", "array of tables");
    CHECK_PROBLEM("[[population]]\nkind = \"merton\"\nalpha = 1\n", "population[0].name", "is required");
    CHECK_PROBLEM("[[population]]\nname = 3\nkind = \"merton\"\nalpha = 1\n", "population[0].name",
                  "must be a string");
    CHECK_PROBLEM("[[population]]\nname = \"a b\"\nkind = \"merton\"\nalpha = 1\n", "population[0].name",
                  "letters, digits");
    CHECK_PROBLEM(advisor + advisor, "population[1].name", "duplicate name \"advisor\" (also population[0])");
    CHECK_PROBLEM("[[population]]\nname = \"a\"\nalpha = 1\n", "population[0].kind", "is required");
    CHECK_PROBLEM("[[population]]\nname = \"a\"\nkind = \"rational\"\n", "population[0].kind",
                  "must be one of");
    CHECK_PROBLEM(merton_with("count = 0\n"), "population[0].count", ">= 1");
    CHECK_PROBLEM(merton_with("wealth = 0\n"), "population[0].wealth", "must be > 0, got 0");
    CHECK_PROBLEM(merton_with("wealth = \"rich\"\n"), "population[0].wealth", "must be a number, an array");
  }

  TEST_CASE("merton checks") {
    CHECK_PROBLEM("[[population]]\nname = \"a\"\nkind = \"merton\"\n", "population[0].alpha",
                  "is required for kind = \"merton\"");
    CHECK_PROBLEM(merton_with("theta = 1\n"), "population[0].theta", "does not apply to kind = \"merton\"");
    CHECK_PROBLEM(merton_with("leader = \"x\"\n"), "population[0].leader",
                  "does not apply to kind = \"merton\"");
    CHECK_PROBLEM(merton_with("policy = \"adaptive\"\n"), "population[0].policy", "applies only to herd");
    CHECK_PROBLEM(merton_with("policy = \"later\"\n"), "population[0].policy", "must be one of");
    CHECK_PROBLEM(merton_with("optimum = \"exact\"\n"), "population[0].optimum", "must be one of");
  }

  TEST_CASE("herd checks") {
    CHECK_VALID(advisor + follower());
    CHECK_PROBLEM(
        advisor + "[[population]]\nname = \"f\"\nkind = \"herd\"\nleader = \"advisor\"\nalpha = 1\n",
        "population[1].theta", "is required for kind = \"herd\"");
    CHECK_PROBLEM(advisor + follower("proportion = 0.5\n"), "population[1].proportion",
                  "does not apply to kind = \"herd\"");
    CHECK_PROBLEM(advisor + follower("herd = \"both\"\n"), "population[1].herd", "must be one of");
    CHECK_PROBLEM(advisor + follower("influence = \"tv\"\n"), "population[1].influence", "must be one of");
    CHECK_PROBLEM(advisor + follower().replace(follower().find("theta = 1e-8"), 12, "theta = -1"),
                  "population[1].theta", "must be >= 0, got -1");
    CHECK_PROBLEM(advisor + follower("bc = \"natural\"\n"), "population[1].bc",
                  "applies only to herd = \"relative\"");
    CHECK_PROBLEM(advisor + follower("herd = \"relative\"\nrho = 1\n"), "population[1].rho",
                  "applies only to herd = \"absolute\"");
    CHECK_PROBLEM(advisor + follower("herd = \"relative\"\nbc = \"free\"\n"), "population[1].bc",
                  "must be one of");
    CHECK_PROBLEM(advisor + follower("rho = \"x\"\n"), "population[1].rho", "must be a number");
    CHECK_PROBLEM(advisor + follower("network = { kind = \"ring\" }\n"), "population[1].network",
                  "does not apply with influence = \"leader\"");
  }

  TEST_CASE("leaders: required, existing, of a kind with amounts; defined anywhere in the file") {
    CHECK_VALID(follower() + advisor);  // the leader may come after its followers
    CHECK_PROBLEM(advisor + "[[population]]\nname = \"f\"\nkind = \"herd\"\nalpha = 1\ntheta = 0\n",
                  "population[1].leader", "is required with influence = \"leader\"");
    CHECK_PROBLEM(advisor + follower().replace(follower().find("\"advisor\""), 9, "\"nobody\""),
                  "population[1].leader", "there is no population named \"nobody\"");
    // A leader of another kind: adaptive only (plan and replan need its amounts in advance).
    const std::string noise = "[[population]]\nname = \"n\"\nkind = \"noise\"\nproportion = 0.5\n";
    const std::string on_noise = follower().replace(follower().find("\"advisor\""), 9, "\"n\"");
    CHECK_PROBLEM(
        noise + on_noise, "population[1].policy",
        "policy = \"plan\" (the default) needs the leader's amounts over the whole horizon "
        "in advance, which only a merton leader has (its deterministic Merton path); leader \"n\" is "
        "a noise population");
    CHECK_PROBLEM(noise + on_noise + "policy = \"replan\"\n", "population[1].policy",
                  "use policy = \"adaptive\"");
    CHECK_VALID(noise + on_noise + "policy = \"adaptive\"\n");
    const std::string chartist = "[[population]]\nname = \"c\"\nkind = \"chartist\"\nchi = 1.0\n";
    const std::string on_chartist = follower().replace(follower().find("\"advisor\""), 9, "\"c\"");
    CHECK_VALID(on_chartist + "policy = \"adaptive\"\n" + chartist);  // declared after its followers
    CHECK_VALID(chartist + on_chartist + "herd = \"relative\"\npolicy = \"adaptive\"\n");
    // A herd leader (followers of followers); a population cannot follow itself.
    CHECK_VALID(advisor + follower() +
                "[[population]]\nname = \"g\"\nkind = \"herd\"\nleader = \"f\"\nalpha = 0.5\ntheta = "
                "1e-8\npolicy = \"adaptive\"\n");
    CHECK_PROBLEM(follower().replace(follower().find("\"advisor\""), 9, "\"f\"") + "policy = \"adaptive\"\n",
                  "population[0].leader", "\"f\" is this population: a population cannot follow itself");
  }

  TEST_CASE("a herd population's leader cannot be an investagent population") {
    const std::string llm =
        "[[population]]\nname = \"llm\"\nkind = \"investagent\"\nalpha = 0.5\ntheta = "
        "0\nleader = \"advisor\"\n";
    const auto ps =
        problems_of(advisor + llm + follower().replace(follower().find("\"advisor\""), 9, "\"llm\""));
    CHECK(has_problem(ps, "population[2].leader",
                      "\"llm\" is a population of kind \"investagent\"; a leader must be a merton, chartist, "
                      "fundamentalist, "
                      "noise or herd population"));
  }

  TEST_CASE("peers and networks") {
    CHECK_VALID(peers("network = { kind = \"ring\", k = 2 }\n"));
    CHECK_VALID(peers("network = { kind = \"all_to_all\" }\n"));
    CHECK_VALID(peers("[population.network]\nkind = \"erdos_renyi\"\np = 0.5\n"));  // a sub-table works too
    CHECK_PROBLEM(peers(), "population[0].network", "is required with influence = \"peers\"");
    CHECK_PROBLEM(peers("network = \"ring\"\n"), "population[0].network", "must be a table");
    CHECK_PROBLEM(peers("network = { k = 1 }\n"), "population[0].network.kind", "is required");
    CHECK_PROBLEM(peers("network = { kind = \"star\" }\n"), "population[0].network.kind", "must be one of");
    CHECK_PROBLEM(peers("network = { kind = \"all_to_all\", k = 1 }\n"), "population[0].network.k",
                  "does not apply to kind = \"all_to_all\"");
    CHECK_PROBLEM(peers("network = { kind = \"ring\", p = 0.1 }\n"), "population[0].network.p",
                  "does not apply to kind = \"ring\"");
    CHECK_PROBLEM(peers("network = { kind = \"ring\", k = 0 }\n"), "population[0].network.k", ">= 1");
    CHECK_PROBLEM(peers("network = { kind = \"small_world\", k = 1, p = 1.5 }\n"), "population[0].network.p",
                  "must lie in [0, 1]");
    CHECK_PROBLEM(peers("network = { kind = \"ring\", k = 3 }\n"), "population[0].network.k",
                  "needs 2k < count (k neighbours on each side), got k = 3 with count = 5");
    CHECK_PROBLEM(peers("network = { kind = \"ring\" }\n").replace(peers().find("count = 5"), 9, "count = 4"),
                  "population[0].network.k", "got k = 2 (default) with count = 4");
    CHECK_PROBLEM(
        peers("network = { kind = \"all_to_all\" }\n").replace(peers().find("count = 5"), 9, "count = 1"),
        "population[0].count", "needs count >= 2");
    CHECK_PROBLEM(advisor + peers("network = { kind = \"all_to_all\" }\nleader = \"advisor\"\n"),
                  "population[1].leader", "does not apply with influence = \"peers\"");
  }

  TEST_CASE("combinations that are not available are validation errors with a reason") {
    // Relative herding on peers is the mutual relative game (plan) or the relative adaptive rule.
    CHECK_VALID(peers("network = { kind = \"all_to_all\" }\nherd = \"relative\"\n"));
    CHECK_VALID(peers("network = { kind = \"ring\" }\nherd = \"relative\"\npolicy = \"adaptive\"\n"));
    // Replan is available for every combination; relative peers re-solve the mutual relative game per
    // path and step, so their population size is capped.
    CHECK_VALID(peers("network = { kind = \"ring\" }\nherd = \"relative\"\npolicy = \"replan\"\n"));
    CHECK_VALID(advisor + follower("herd = \"relative\"\npolicy = \"replan\"\n"));
    CHECK_VALID(advisor + follower("herd = \"relative\"\nbc = \"natural\"\npolicy = \"replan\"\n"));
    CHECK_VALID(peers("network = { kind = \"all_to_all\" }\npolicy = \"replan\"\n"));
    CHECK_PROBLEM(peers("network = { kind = \"ring\" }\nherd = \"relative\"\npolicy = \"replan\"\n")
                      .replace(peers().find("count = 5"), 9, "count = 101"),
                  "population[0].policy",
                  "herd = \"relative\" solves the whole network's game on every path "
                  "and step: at most 100 agents, got count = 101");
    CHECK_VALID(peers("network = { kind = \"ring\" }\nherd = \"relative\"\npolicy = \"replan\"\n")
                    .replace(peers().find("count = 5"), 9, "count = 100"));
    CHECK_VALID(peers("network = { kind = \"ring\" }\npolicy = \"replan\"\n")
                    .replace(peers().find("count = 5"), 9, "count = 100000"));
    CHECK_VALID(advisor + follower("policy = \"replan\"\n"));
    CHECK_VALID(peers("network = { kind = \"all_to_all\" }\npolicy = \"adaptive\"\n"));
  }

  TEST_CASE("noise checks") {
    const std::string noise = "[[population]]\nname = \"n\"\nkind = \"noise\"\n";
    CHECK_VALID(noise + "proportion = [-0.5, 0, 2]\n");
    CHECK_PROBLEM(noise, "population[0].proportion", "is required for kind = \"noise\"");
    CHECK_PROBLEM(noise + "proportion = 0.5\nalpha = 1\n", "population[0].alpha",
                  "does not apply to kind = \"noise\"");
    CHECK_PROBLEM(noise + "proportion = 0.5\npolicy = \"plan\"\n", "population[0].policy", "does not apply");
  }

  TEST_CASE("fundamentalist and chartist checks") {
    const std::string fund = "[[population]]\nname = \"f\"\nkind = \"fundamentalist\"\n";
    CHECK_VALID(fund + "kappa = [0, 2.5]\nmax_proportion = 3\n");
    CHECK_VALID(fund + "kappa = { dist = \"uniform\", low = 0, high = 5 }\n");
    CHECK_PROBLEM(fund, "population[0].kappa", "is required for kind = \"fundamentalist\"");
    CHECK_PROBLEM(fund + "kappa = -1\n", "population[0].kappa", "must be >= 0");
    CHECK_PROBLEM(fund + "kappa = 1\nmax_proportion = 0\n", "population[0].max_proportion", "must be > 0");
    CHECK_PROBLEM(fund + "kappa = 1\nchi = 1\n", "population[0].chi",
                  "does not apply to kind = \"fundamentalist\"");
    const std::string chart = "[[population]]\nname = \"c\"\nkind = \"chartist\"\n";
    CHECK_VALID(chart + "chi = [-1, 0, 2]\ntrend_weight = 0.2\n");
    CHECK_PROBLEM(chart, "population[0].chi", "is required for kind = \"chartist\"");
    CHECK_PROBLEM(chart + "chi = 1\ntrend_weight = 0\n", "population[0].trend_weight", "must lie in (0, 1]");
    CHECK_PROBLEM(chart + "chi = 1\ntrend_weight = 1.5\n", "population[0].trend_weight",
                  "must lie in (0, 1]");
    CHECK_PROBLEM(chart + "chi = 1\nmax_proportion = -2\n", "population[0].max_proportion", "must be > 0");
  }

  TEST_CASE("investagent checks") {
    const std::string llm =
        "[[population]]\nname = \"llm\"\nkind = \"investagent\"\nleader = \"advisor\"\n"
        "alpha = { lottery_prob = [0.6, 0.9] }\ntheta = { score = [0, 10] }\n";
    const std::string inference = "inference = { backend = \"llama\", model = \"m.gguf\" }\n";
    CHECK_VALID(advisor + llm + inference);
    const auto spec =
        one(advisor + llm + "protocol = \"step\"\n" +
            "[population.inference]\nbackend = \"llama\"\nmodel = \"m.gguf\"\nlora = [\"a.gguf\"]\n"
            "temperature = 0.7\nmax_tokens = 100\nbatch = 8\nthreads = 2\nprefix_sharing = false\n"
            "grammar = false\nmode = \"fast\"\n");
    const auto& p = spec.populations[1];
    CHECK(p.kind == agents::InvestAgentParams::kind);
    CHECK(invest_of(p).protocol == agents::InvestProtocol::step);
    CHECK(invest_of(p).leader == "advisor");
    CHECK(invest_of(p).alpha.scale == sim::ParamSpec::Scale::lottery_prob);
    CHECK(invest_of(p).theta.scale == sim::ParamSpec::Scale::score);
    CHECK(invest_of(p).inference.backend == "llama");
    CHECK(invest_of(p).inference.model == "m.gguf");
    CHECK(invest_of(p).inference.lora == std::vector<std::string>{"a.gguf"});
    CHECK(invest_of(p).inference.temperature == 0.7);
    CHECK(invest_of(p).inference.max_tokens == 100);
    CHECK(invest_of(p).inference.batch == 8);
    CHECK(invest_of(p).inference.threads == 2);
    CHECK_FALSE(invest_of(p).inference.prefix_sharing);
    CHECK_FALSE(invest_of(p).inference.grammar);
    CHECK(invest_of(p).inference.mode == "fast");
    const auto defaults = one(advisor + llm + inference).populations[1];
    CHECK(invest_of(defaults).protocol == agents::InvestProtocol::absolute);
    CHECK(invest_of(defaults).inference.max_tokens == 384);
    CHECK(invest_of(defaults).inference.batch == 64);
    CHECK(invest_of(defaults).inference.threads == 1);
    CHECK(invest_of(defaults).inference.temperature == 0.0);
    CHECK(invest_of(defaults).inference.prefix_sharing);
    CHECK(invest_of(defaults).inference.grammar);
    CHECK(invest_of(defaults).inference.mode == "batch_invariant");
    CHECK(herdsim::io::plugin_config_json(invest_of(defaults).inference).find("\"mode\"") ==
          std::string::npos);
    CHECK(herdsim::io::plugin_config_json(invest_of(p).inference).find("\"mode\":\"fast\"") !=
          std::string::npos);

    CHECK_PROBLEM(advisor + llm, "population[1].inference", "is required for kind = \"investagent\"");
    CHECK_PROBLEM(advisor + llm + "inference = { model = \"m\" }\n", "population[1].inference.backend",
                  "is required");
    CHECK_PROBLEM(advisor + llm + "inference = { backend = \"llama\" }\n", "population[1].inference.model",
                  "is required with backend = \"llama\"");
    CHECK_PROBLEM(advisor + llm + "inference = { backend = \"replay\" }\n", "population[1].inference.replay",
                  "is required with backend = \"replay\"");
    CHECK_VALID(advisor + llm + "inference = { backend = \"replay\", replay = \"r.h5\", model = \"m\" }\n");
    CHECK_PROBLEM(advisor + llm + "inference = { backend = \"llama\", model = \"m\", replay = \"r.h5\" }\n",
                  "population[1].inference.replay", "applies only with backend = \"replay\"");
    CHECK_PROBLEM(advisor + llm + "inference = { backend = \"llama\", model = \"m\", batch = 0 }\n",
                  "population[1].inference.batch", "must be >= 1");
    CHECK_PROBLEM(advisor + llm + "inference = { backend = \"llama\", model = \"m\", temperature = -1 }\n",
                  "population[1].inference.temperature", "must be >= 0");
    CHECK_PROBLEM(advisor + llm + "inference = { backend = \"llama\", model = \"m\", lora = [1] }\n",
                  "population[1].inference.lora[0]", "must be a string");
    CHECK_PROBLEM(advisor + llm + "inference = { backend = \"llama\", model = \"m\", mode = \"quick\" }\n",
                  "population[1].inference.mode", "must be \"batch_invariant\"");
    CHECK_PROBLEM(advisor + llm + "inference = { backend = \"llama\", model = \"m\", colour = 1 }\n",
                  "population[1].inference.colour", "unknown key");
    CHECK_PROBLEM(advisor + llm + inference + "protocol = \"chat\"\n", "population[1].protocol",
                  "must be one of");
    CHECK_PROBLEM(advisor + llm + inference + "policy = \"plan\"\n", "population[1].policy",
                  "does not apply to kind = \"investagent\"");
    CHECK_PROBLEM(advisor + "protocol = \"step\"\n", "population[0].protocol",
                  "does not apply to kind = \"merton\"");
    CHECK_PROBLEM("[run]\nsteps_per_year = 2\n" + advisor + llm + inference, "population[1].kind",
                  "needs run.steps_per_year = 1");
    CHECK_PROBLEM("[run]\nhorizon = 12\n" + advisor + llm + inference, "population[1].kind", "in 1..10");
    CHECK_PROBLEM("[run]\nhorizon = 1\n" + advisor + llm + inference + "protocol = \"relative\"\n",
                  "population[1].protocol", "needs run.horizon >= 2");
    const std::string no_leader =
        "[[population]]\nname = \"llm\"\nkind = \"investagent\"\nalpha = 0.5\ntheta = 0\n" + inference;
    CHECK_PROBLEM(advisor + no_leader, "population[1].leader", "is required for kind = \"investagent\"");
    CHECK_PROBLEM(advisor + no_leader + "leader = \"llm\"\n", "population[1].leader",
                  "is this population: a population cannot follow itself");
  }

  TEST_CASE("lottery probabilities and scores") {
    auto with_alpha = [](const std::string& alpha) {
      return "[[population]]\nname = \"a\"\nkind = \"merton\"\n" + alpha;
    };
    CHECK_PROBLEM(with_alpha("alpha = { lottery_prob = 0.3 }\n"), "population[0].alpha.lottery_prob",
                  "must lie in (0.3, 1), got 0.3");
    CHECK_PROBLEM(with_alpha("alpha = { lottery_prob = [0.5, 1] }\n"), "population[0].alpha.lottery_prob[1]",
                  "must lie in (0.3, 1)");
    CHECK_PROBLEM(with_alpha("alpha = 0.5\nlottery = \"win20_sure6\"\n"), "population[0].lottery",
                  "applies only with alpha = { lottery_prob");
    CHECK_PROBLEM(with_alpha("alpha = { lottery_prob = 0.5 }\nlottery = \"win30\"\n"),
                  "population[0].lottery", "must be one of");
    CHECK_PROBLEM(with_alpha("alpha = { score = 3 }\n"), "population[0].alpha", "or {lottery_prob = ...}");
    CHECK_PROBLEM(
        advisor + follower().replace(follower().find("theta = 1e-8"), 12, "theta = { lottery_prob = 0.5 }"),
        "population[1].theta", "or {score = ...}");
    CHECK_PROBLEM(advisor + follower().replace(follower().find("theta = 1e-8"), 12, "theta = { score = -1 }"),
                  "population[1].theta.score", "must be >= 0");
    CHECK_PROBLEM(
        with_alpha("alpha = { lottery_prob = { dist = \"normal\", mean = 0.6, std = 0.1, low = 0.35 } }\n"),
        "population[0].alpha.lottery_prob", "truncate it with high");
    CHECK_VALID(
        with_alpha("alpha = { lottery_prob = { dist = \"lognormal\", mu = -0.5, sigma = 0.1, low = 0.31, "
                   "high = 0.99 } }\n"));
  }

  TEST_CASE("parameter values and distributions") {
    auto with_alpha = [](const std::string& alpha) {
      return "[[population]]\nname = \"a\"\nkind = \"merton\"\n" + alpha;
    };
    CHECK_PROBLEM(with_alpha("alpha = []\n"), "population[0].alpha", "must not be empty");
    CHECK_PROBLEM(with_alpha("alpha = [0.1, 0, 0.3]\n"), "population[0].alpha[1]", "must be > 0, got 0");
    CHECK_PROBLEM(with_alpha("alpha = [0.1, \"x\"]\n"), "population[0].alpha[1]", "must be a number");
    CHECK_PROBLEM(with_alpha("alpha = { dist = \"normal\", mean = 1, std = 0.1 }\n"), "population[0].alpha",
                  "truncate it with low");
    CHECK_VALID(with_alpha("alpha = { dist = \"normal\", mean = 1, std = 0.1, low = 0.01 }\n"));
    CHECK_PROBLEM(with_alpha("alpha = { dist = \"normal\", mean = 1, std = 0.1, low = 0 }\n"),
                  "population[0].alpha.low", "must be > 0");
    CHECK_VALID(with_alpha("alpha = { dist = \"lognormal\", mu = 0, sigma = 1 }\n"));
    // The model's limits (theory::limits): values, lists and a distribution's bounds; mapped probabilities.
    CHECK_PROBLEM(with_alpha("alpha = 1e300\n"), "population[0].alpha", "CARA alpha 1e+300 lies outside");
    CHECK_PROBLEM(with_alpha("alpha = [0.2, 1e-300]\n"), "population[0].alpha", "CARA alpha 1e-300");
    CHECK_PROBLEM(with_alpha("alpha = { dist = \"lognormal\", mu = 0, sigma = 1, high = 1e11 }\n"),
                  "population[0].alpha", "lies outside");
    CHECK_PROBLEM(with_alpha("alpha = { lottery_prob = 0.30000000000000004 }\n"), "population[0].alpha",
                  "maps to CARA alpha");
    CHECK_PROBLEM(with_alpha("alpha = 0.2\n[market]\nsigma = 1e308\n"), "market.sigma", "sigma^2 * horizon");
    CHECK_PROBLEM(with_alpha("alpha = 0.2\n[market]\nr = 7.25e7\n"), "market.r", "r * horizon");
    CHECK_PROBLEM(with_alpha("alpha = 0.2\n[run]\nhorizon = 1000\nsteps_per_year = 2147483647\n"),
                  "run.horizon", "exceeds the limit");
    CHECK_PROBLEM(with_alpha("alpha = { dist = \"uniform\", low = 0, high = 1 }\n"),
                  "population[0].alpha.low", "must be > 0, got 0");
    CHECK_PROBLEM(with_alpha("alpha = { dist = \"uniform\", low = 2, high = 1 }\n"),
                  "population[0].alpha.high", "must be > low = 2");
    CHECK_PROBLEM(with_alpha("alpha = { dist = \"normal\", mean = 1, std = 0.1, low = 2, high = 1 }\n"),
                  "population[0].alpha.high", "must be > low = 2");
    CHECK_PROBLEM(with_alpha("alpha = { dist = \"normal\", mean = 1, std = 0, low = 0.5 }\n"),
                  "population[0].alpha.std", "must be > 0");
    CHECK_PROBLEM(with_alpha("alpha = { dist = \"lognormal\", mu = 1 }\n"), "population[0].alpha.sigma",
                  "is required for dist = \"lognormal\"");
    CHECK_PROBLEM(with_alpha("alpha = { dist = \"cauchy\" }\n"), "population[0].alpha.dist",
                  "must be one of");
    CHECK_PROBLEM(with_alpha("alpha = { dist = \"uniform\", low = 0.1, high = 1, low2 = 3 }\n"),
                  "population[0].alpha.low2", "unknown key");
    // theta >= 0 is closed at 0, so low = 0 is allowed there; a lognormal needs no truncation.
    CHECK_VALID(advisor +
                follower().replace(follower().find("theta = 1e-8"), 12,
                                   "theta = { dist = \"normal\", mean = 1e-8, std = 1e-8, low = 0 }"));
  }

  TEST_CASE("[record] checks") {
    CHECK_PROBLEM(advisor + "[record]\nevery = 0\n", "record.every", ">= 1");
    CHECK_PROBLEM(advisor + "[record]\ntrajectories = 1\n", "record.trajectories", "must be true or false");
    CHECK_PROBLEM(advisor + "[record]\nenabled = \"yes\"\n", "record.enabled", "must be true or false");
    CHECK_PROBLEM(advisor + "[record]\nsummaries = 0\n", "record.summaries", "must be true or false");
    // Neither trajectories nor summaries: a market-only run, valid; the keys that shape only what is then
    // not recorded are refused rather than ignored.
    const std::string market_only = advisor + "[record]\ntrajectories = false\nsummaries = false\n";
    CHECK_VALID(market_only);
    const auto only_market = parse_scenario(market_only, "t.toml");
    REQUIRE(only_market.size() == 1);
    CHECK_FALSE(only_market[0].record.trajectories);
    CHECK_FALSE(only_market[0].record.summaries);
    CHECK(only_market[0].record.enabled);
    CHECK_PROBLEM(market_only + "max_agents = 10\n", "record.max_agents",
                  "has no effect with trajectories = false");
    CHECK_PROBLEM(market_only + "compression = 4\n", "record.compression", "only the market is recorded");
    CHECK_PROBLEM(market_only + "quantiles = [0.5]\n", "record.quantiles", "has no effect");
    CHECK_VALID(market_only + "enabled = false\nmax_agents = 10\n");
    const auto specs = parse_scenario(advisor + "[record]\nsummaries = false\n", "t.toml");
    REQUIRE(specs.size() == 1);
    CHECK_FALSE(specs[0].record.summaries);
    CHECK(specs[0].record.trajectories);
    CHECK(parse_scenario(advisor, "t.toml")[0].record.summaries);
    CHECK_PROBLEM(advisor + "[run]\npaths = 3\n[record]\npaths = [0, 3]\n", "record.paths[1]",
                  "must be a path index in [0, run.paths = 3), got 3");
    CHECK_PROBLEM(advisor + "[run]\npaths = 3\n[record]\npaths = [1, 1]\n", "record.paths[1]",
                  "listed twice");
    CHECK_PROBLEM(advisor + "[record]\npaths = 0\n", "record.paths", "must be an array");
    CHECK_PROBLEM(advisor + "[record]\nmax_agents = 0\n", "record.max_agents", ">= 1");
    CHECK_PROBLEM(advisor + "[record]\ncompression = 10\n", "record.compression",
                  "must lie in [0, 9], got 10");
    CHECK_PROBLEM(advisor + "[record]\nquantiles = [0.5, 1.5]\n", "record.quantiles[1]",
                  "must lie in [0, 1]");
    CHECK_PROBLEM(advisor + "[record]\nquantiles = 0.5\n", "record.quantiles", "must be an array");
    CHECK_PROBLEM(advisor + "[record]\nquantiles = [0.5, 0.5]\n", "record.quantiles[1]",
                  "strictly increasing");
    CHECK_VALID(advisor + "[record]\nquantiles = []\n");
  }

  TEST_CASE("--set overrides any key, before the sweep") {
    const auto s = one(issue_example, {"run.paths=10", "market.sigma = 0.2", "population.followers.count=66",
                                       "population[0].alpha=0.3", "run.wealth_update=lognormal",
                                       "population.followers.theta={ score = [1, 2] }"});
    CHECK(s.run.paths == 10);
    CHECK(s.market.sigma == 0.2);
    CHECK(s.populations[1].count == 66);
    CHECK(merton_of(s.populations[0]).alpha.value == 0.3);
    CHECK(s.run.wealth_update == sim::WealthUpdate::lognormal);  // a bare word is a string
    CHECK(herd_of(s.populations[1]).theta.values == std::vector<double>{1.0, 2.0});
    // Nested keys create the tables they need.
    const auto p =
        one(peers(), {"population.p.network.kind=ring", "population.p.network.k=1", "record.every=3"});
    CHECK(herd_of(p.populations[0]).network.kind == agents::NetworkSpec::Kind::ring);
    CHECK(herd_of(p.populations[0]).network.k == 1);
    CHECK(p.record.every == 3);
  }

  TEST_CASE("--set problems are reported at their override") {
    const auto ps = problems_of(
        issue_example, {"run.paths=2", "run.colour=red", "market.sigma=-1", "nothing",
                        "population.nobody.count=1", "population[9].count=1", "population.followers=1"});
    INFO(listing(ps));
    CHECK(has_problem(ps, "run.colour", "unknown key"));
    CHECK(has_problem(ps, "market.sigma", "must be > 0, got -1"));
    CHECK(has_problem(ps, "", "expected key.path=value, got 'nothing'"));
    CHECK(has_problem(ps, "population.nobody.count", "there is no population named 'nobody'"));
    CHECK(has_problem(ps, "population[9].count", "there is no population[9] (the scenario has 2)"));
    CHECK(has_problem(ps, "population.followers", "population.<name>.<key>"));
    const auto more = problems_of(issue_example, {"run.a b=1", "run.seed.x=1", "population[x].count=1"});
    INFO(listing(more));
    CHECK(has_problem(more, "run.a b", "'a b' is not a key"));
    CHECK(has_problem(more, "run.seed.x", "'seed' is not a table"));
    CHECK(has_problem(more, "population[x].count", "is not population[<index>]"));
    REQUIRE(ps.size() == 6);
    CHECK(ps[0].origin == "--set #2");
    CHECK(ps[0].line == 0);
    CHECK(ps[1].origin == "--set #3");
    CHECK(ps[5].origin == "--set #7");
    CHECK(herdsim::io::format_scenario_problem("t.toml", ps[0]) ==
          "t.toml: --set #2: run.colour: unknown key; allowed keys: seed, paths, horizon, steps_per_year, "
          "wealth_update");
  }

  TEST_CASE("the text after overrides is stored and reads back to the same spec") {
    const auto s = one(issue_example, {"market.sigma=0.25", "population.followers.count=66"});
    CHECK(s.text.find("sigma = 0.25") != std::string::npos);
    CHECK(s.text.find("count = 66") != std::string::npos);
    CHECK(s.text.find("6600") == std::string::npos);
    const auto again = one(s.text);
    CHECK(again.text == s.text);
    CHECK(again.market.sigma == 0.25);
    CHECK(again.populations[1].count == 66);
    CHECK(herd_of(again.populations[1]).alpha.values == herd_of(s.populations[1]).alpha.values);
    CHECK(herd_of(again.populations[1]).alpha.scale == sim::ParamSpec::Scale::lottery_prob);
  }

  TEST_CASE("[sweep] expands a grid, first key slowest") {
    const auto specs = parse_scenario(issue_example +
                                          "[sweep]\n\"market.sigma\" = [0.1, 0.2]\n"
                                          "\"population[1].count\" = [10, 20, 30]\n",
                                      "t.toml", {"run.paths=5"});
    REQUIRE(specs.size() == 6);
    CHECK(specs[0].market.sigma == 0.1);
    CHECK(specs[0].populations[1].count == 10);
    CHECK(specs[1].market.sigma == 0.1);
    CHECK(specs[1].populations[1].count == 20);
    CHECK(specs[3].market.sigma == 0.2);
    CHECK(specs[3].populations[1].count == 10);
    CHECK(specs[5].populations[1].count == 30);
    for (const auto& s : specs) CHECK(s.run.paths == 5);
    REQUIRE(specs[4].sweep_point.size() == 2);
    CHECK(specs[4].sweep_point[0].first == "market.sigma");
    CHECK(specs[4].sweep_point[0].second == 0.2);
    CHECK(specs[4].sweep_point[1].first == "population[1].count");
    CHECK(specs[4].sweep_point[1].second == 20.0);
    // Every point carries the whole scenario after overrides, [sweep] included: re-parsing it gives the
    // same points in the same order (what `herdsim compare` relies on to read a sweep file).
    CHECK(specs[4].text.find("[sweep]") != std::string::npos);
    const auto again = parse_scenario(specs[4].text, "again.toml");
    REQUIRE(again.size() == 6);
    CHECK(again[4].populations[1].count == 20);
    CHECK(again[4].market.sigma == 0.2);
    CHECK(again[4].run.paths == 5);
  }

  TEST_CASE("[sweep] keys may be dotted or name populations; a --set can add one") {
    const auto specs = parse_scenario(issue_example + "[sweep]\npopulation.followers.count = [1, 2]\n",
                                      "t.toml", {"sweep.run.seed=[1, 2, 3]"});
    REQUIRE(specs.size() == 6);
    CHECK(specs[5].run.seed == 3);
    CHECK(specs[5].populations[1].count == 2);
    CHECK(specs[5].sweep_point[0].first == "population.followers.count");
  }

  TEST_CASE("a --set of a sweep axis replaces the file's values, whichever form the file used") {
    const std::string quoted =
        issue_example + "[sweep]\n\"market.sigma\" = [0.1, 0.2]\n\"run.seed\" = [1, 2, 3]\n";
    const auto specs = parse_scenario(quoted, "t.toml", {"sweep.run.seed=[37, 38]"});
    REQUIRE(specs.size() == 4);
    CHECK(specs[0].run.seed == 37);
    CHECK(specs[1].run.seed == 38);
    CHECK(specs[1].market.sigma == 0.1);  // the axis keeps its place: seed still varies fastest
    CHECK(specs[3].market.sigma == 0.2);
    const auto dotted =
        parse_scenario(issue_example + "[sweep]\nrun.seed = [1, 2, 3]\n", "t.toml", {"sweep.run.seed=[5]"});
    REQUIRE(dotted.size() == 1);
    CHECK(dotted[0].run.seed == 5);
  }

  TEST_CASE("[sweep] problems") {
    CHECK_PROBLEM(advisor + "[sweep]\n\"market.sigma\" = 0.1\n", "sweep.\"market.sigma\"",
                  "must be a non-empty array of numbers");
    CHECK_PROBLEM(advisor + "[sweep]\n\"market.sigma\" = []\n", "sweep.\"market.sigma\"", "non-empty array");
    CHECK_PROBLEM(advisor + "[sweep]\n\"run.wealth_update\" = [\"lognormal\"]\n",
                  "sweep.\"run.wealth_update\"", "sweep values must be numbers");
    CHECK_PROBLEM(advisor + "[sweep]\n\"colour\" = [1]\n", "sweep.\"colour\"", "a sweep key is a key path");
    CHECK_PROBLEM(advisor + "[sweep]\n\"population.nobody.count\" = [1]\n",
                  "sweep.\"population.nobody.count\"", "there is no population named 'nobody'");
    CHECK_PROBLEM("sweep = 1\n" + advisor, "sweep", "must be a table");
    CHECK_PROBLEM(advisor + "[sweep]\n\"run.seed\" = [1]\nrun.seed = [2]\n", "sweep.\"run.seed\"",
                  "already a sweep axis");
    const std::string ten = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n";
    CHECK_PROBLEM(advisor + "[sweep]\n\"run.seed\" = " + ten + "\"run.paths\" = " + ten +
                      "\"record.every\" = " + ten + "\"market.mu\" = " + ten + "\"market.r\" = " + ten,
                  "sweep", "has 100000 points; at most 10000");
  }

  TEST_CASE("a bad sweep value is reported once, at its place in [sweep]") {
    const std::string text = advisor + "[sweep]\n\"market.sigma\" = [0.1, -0.2]\n\"run.seed\" = [1, 2, 3]\n";
    const auto ps = problems_of(text);
    INFO(listing(ps));
    REQUIRE(ps.size() == 1);
    CHECK(ps[0].key_path == "market.sigma");
    CHECK(ps[0].line == 6);
    CHECK(ps[0].column == 24);
    CHECK(ps[0].message == "must be > 0, got -0.2");
    // A sweep value may also break a rule that involves another key.
    CHECK_PROBLEM(advisor + "[run]\nhorizon = 2.5\n[sweep]\n\"run.steps_per_year\" = [2, 3]\n", "run.horizon",
                  "got 2.5 * 3 = 7.5");
  }

  TEST_CASE("load_scenario reads a file; a missing file is an IoError") {
    const std::string path = std::string(HERDSIM_TEST_TMP) + "/scenario_ok.toml";
    std::ofstream(path) << issue_example;
    const auto specs = herdsim::io::load_scenario(path, {"run.paths=3"});
    REQUIRE(specs.size() == 1);
    CHECK(specs[0].run.paths == 3);
    CHECK_THROWS_AS((void)herdsim::io::load_scenario("/nonexistent/scenario.toml"), herdsim::IoError);
    const std::string bad = std::string(HERDSIM_TEST_TMP) + "/scenario_bad.toml";
    std::ofstream(bad) << "[run]\npaths = 0\n" << advisor;
    CHECK_THROWS_WITH_AS((void)herdsim::io::load_scenario(bad),
                         doctest::Contains("scenario_bad.toml:2:9: run.paths"), ScenarioFileError);
  }

  // Inputs found by fuzzing (tests/fuzz/regressions/scenario): each escaped as another exception or as UB.
  TEST_CASE("fuzzed inputs end in a ScenarioFileError naming the key") {
    // A --set value that is not UTF-8 (was toml::parse_error); DEL in a bare word is a string.
    const auto bytes = problems_of(advisor, {"run.wealth_update=\xFF"});
    INFO(listing(bytes));
    CHECK(has_problem(bytes, "run.wealth_update", "cannot read the value"));
    CHECK(bytes.at(0).origin == "--set #1");
    const auto del = problems_of(advisor, {"run.wealth_update=a\x7F"
                                           "b"});
    INFO(listing(del));
    CHECK(has_problem(del, "run.wealth_update", "must be one of"));
    // population[<index too large for stoul>] (was std::out_of_range).
    const auto index = problems_of(advisor, {"population[99999999999999999999999].count=1"});
    INFO(listing(index));
    CHECK(has_problem(index, "population[99999999999999999999999].count",
                      "there is no population[99999999999999999999999] (the scenario has 1)"));
    // network.k near INT_MAX (2k overflowed int).
    CHECK_PROBLEM(peers("network = { kind = \"ring\", k = 2147483647 }\n"), "population[0].network.k",
                  "needs 2k < count");
    // More steps than an int holds (RunSpec::steps() overflowed).
    CHECK_PROBLEM(advisor + "[run]\nhorizon = 1e300\n", "run.horizon", "exceeds the limit 2147483647");
    CHECK_PROBLEM(advisor + "[run]\nhorizon = 1e300\nsteps_per_year = 2147483647\n", "run.horizon",
                  "exceeds the limit 2147483647");
    // The largest step count is not a step-count problem (the default market's limits reject the horizon).
    const auto largest = problems_of(advisor + "[run]\nhorizon = 2147483647\n", {});
    INFO(listing(largest));
    CHECK_FALSE(has_problem(largest, "run.horizon", "steps"));
    CHECK(has_problem(largest, "market.r", "must be at most 100"));
  }
}

TEST_SUITE("io.scenario_toml.investors") {
  const std::string drawn_followers =
      "[[population]]\nname = \"f\"\nkind = \"herd\"\nleader = \"advisor\"\ncount = 12\nalpha = { "
      "lottery_prob "
      "= { dist = \"uniform\", low = 0.4, high = 0.9 } }\ntheta = { score = [0, 5, 10] }\nwealth = { dist = "
      "\"lognormal\", mu = 2.3, sigma = 0.3 }\n";

  TEST_CASE("a paired population takes its source's investors, value for value, whatever its kind") {
    const auto spec = one(advisor + drawn_followers +
                          "[[population]]\nname = \"g\"\nkind = \"herd\"\nleader = \"advisor\"\npolicy = "
                          "\"adaptive\"\ncount = 12\ninvestors = \"f\"\n"
                          "[[population]]\nname = \"m\"\nkind = \"merton\"\ncount = 12\ninvestors = \"g\"\n");
    CHECK(spec.populations[2].investors == "f");
    const auto f = agents::investor_values(spec, 1);
    const auto g = agents::investor_values(spec, 2);
    const auto m = agents::investor_values(spec, 3);
    REQUIRE(f.size() == 3);
    REQUIRE(g.size() == 3);
    REQUIRE(m.size() == 2);  // merton: alpha, wealth0
    for (std::size_t j = 0; j < 3; ++j) CHECK(f[j].second == g[j].second);
    CHECK(m[0].second == f[0].second);
    CHECK(m[1].second == f[2].second);
    CHECK(f[0].second.minCoeff() < f[0].second.maxCoeff());  // drawn: the test would see a mismatch
    CHECK(agents::investors_source(spec, 3) == 1);
    // Unpaired, identical specs draw other investors (keyed by the population): what pairing is for.
    const auto twin = one(advisor + drawn_followers + "[[population]]\nname = \"h\"\n" +
                          drawn_followers.substr(drawn_followers.find("kind")));
    CHECK(agents::investor_values(twin, 1)[0].second != agents::investor_values(twin, 2)[0].second);
  }

  TEST_CASE("investors: unknown name, itself, count mismatch, cycle, missing parameter, keys it takes") {
    const std::string base = advisor + drawn_followers;
    const auto herd_with = [](const std::string& name, const std::string& extra) {
      return "[[population]]\nname = \"" + name + "\"\nkind = \"herd\"\nleader = \"advisor\"\n" + extra;
    };
    CHECK_PROBLEM(base + herd_with("g", "count = 12\ninvestors = \"nobody\"\n"), "population[2].investors",
                  "there is no population named \"nobody\"");
    CHECK_PROBLEM(base + herd_with("g", "count = 12\ninvestors = \"g\"\n"), "population[2].investors",
                  "names the population itself");
    CHECK_PROBLEM(base + herd_with("g", "count = 5\ninvestors = \"f\"\n"), "population[2].investors",
                  "population \"f\" has 12 agents but this one has 5");
    CHECK_PROBLEM(base + herd_with("g", "count = 12\ninvestors = \"h\"\n") +
                      herd_with("h", "count = 12\ninvestors = \"g\"\n"),
                  "population[2].investors", "forms a cycle (\"g\" -> \"h\" -> \"g\")");
    CHECK_PROBLEM(base + herd_with("g", "investors = \"advisor\"\n"), "population[2].investors",
                  "population \"advisor\" (kind = \"merton\") draws no theta for a herd population to take");
    CHECK_PROBLEM(base + herd_with("g", "count = 12\ninvestors = \"f\"\nalpha = 0.3\n"),
                  "population[2].alpha", "is taken from population \"f\" (investors)");
    CHECK_PROBLEM(base + herd_with("g", "count = 12\ninvestors = \"f\"\nwealth = 3.0\n"),
                  "population[2].wealth", "is taken from population \"f\"");
    CHECK_PROBLEM(base + herd_with("g", "count = 12\ninvestors = \"\"\n"), "population[2].investors",
                  "must name the population");
    CHECK_VALID(base + herd_with("g", "count = 12\ninvestors = \"f\"\n"));
  }
}
