#include <doctest/doctest.h>

#include <Eigen/LU>
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agents/investagent_agent.hpp"
#include "agents/registry.hpp"
#include "sim/error.hpp"
#include "sim/investalign/answer.hpp"
#include "sim/investalign/dataset.hpp"
#include "sim/investalign/prompt.hpp"
#include "sim/simulation.hpp"
#include "sim/theory/absolute_herd.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/mutual_game.hpp"
#include "sim/theory/relative_herd.hpp"
#include "support/specs.hpp"

using namespace herdsim;

namespace {

/// A percentage in [0, 100] with two decimals, a pure function of the seed and a position.
double percent_of(std::uint64_t seed, int j) {
  return static_cast<double>((seed >> j) % 10001) / 100.0;
}

/// What the fake backend saw and how it answers.
struct FakeLog {
  std::vector<std::size_t> batch_sizes;
  std::vector<inference::Request> requests;
  std::map<std::uint64_t, std::string> override_text;  ///< by seed: a text instead of the answer
  std::uint64_t failing_seed = 0;                      ///< a request that fails (0: none)
};

/// Answers every request from its seed alone (as a real backend must: never from the batch), in the
/// schema the request's user message asks for.
class FakeBackend final : public inference::Backend {
 public:
  explicit FakeBackend(FakeLog& log) : log_(log) {}
  std::vector<inference::Response> generate(const std::vector<inference::Request>& requests) override {
    log_.batch_sizes.push_back(requests.size());
    std::vector<inference::Response> out;
    for (const auto& r : requests) {
      log_.requests.push_back(r);
      inference::Response resp;
      resp.prompt_tokens = static_cast<int>(r.user.size() / 4);
      resp.cached_tokens = 7;
      resp.completion_tokens = 11;
      resp.time_ms = 0.5;
      if (r.seed == log_.failing_seed) {
        resp.status = 4;
        resp.error = "context full";
      } else if (const auto it = log_.override_text.find(r.seed); it != log_.override_text.end()) {
        resp.text = it->second;
      } else {
        resp.text = answer(r);
      }
      out.push_back(resp);
    }
    return out;
  }
  [[nodiscard]] std::string name() const override { return "fake"; }
  [[nodiscard]] std::string describe() const override { return R"({"backend":"fake"})"; }

  static std::string answer(const inference::Request& r) {
    using namespace investalign;
    if (r.user.find(key_change_sequence) != std::string::npos) {
      std::vector<double> v;
      for (int j = 0; j < 9; ++j) v.push_back((percent_of(r.seed, j) - 50.0) / 1000.0);  // -5..5 pp
      return format_answer(change_sequence_schema(10), "changes", v);
    }
    if (r.user.find(key_proportion_sequence) != std::string::npos) {
      std::vector<double> v;
      for (int j = 0; j < 10; ++j) v.push_back(percent_of(r.seed, j) / 100.0);
      return format_answer(proportion_sequence_schema(10), "plan", v);
    }
    return format_answer(single_proportion_schema(), "step",
                         std::vector<double>{percent_of(r.seed, 0) / 100.0});
  }

 private:
  FakeLog& log_;
};

/// Keeps the transcripts (cleared by the runtime after each step) and each step's state.
class Capture final : public sim::Observer {
 public:
  std::vector<sim::Transcript> transcripts;
  std::vector<Eigen::MatrixXd> wealth;         ///< X_0, X_1, ... of population 1
  std::vector<Eigen::MatrixXd> amount;         ///< P_0, P_1, ... of population 1
  std::vector<Eigen::MatrixXd> leader_wealth;  ///< X_0, X_1, ... of population 0 (the advisor)
  std::vector<Eigen::MatrixXd> leader_amount;  ///< P_0, P_1, ... of population 0
  void on_start(const sim::RunState& s) override {
    wealth.push_back(s.populations[1].wealth);
    leader_wealth.push_back(s.populations[0].wealth);
  }
  void on_step(int /*k*/, const sim::RunState& s) override {
    const auto& pop = s.populations[1];
    transcripts.insert(transcripts.end(), pop.inference->pending.begin(), pop.inference->pending.end());
    wealth.push_back(pop.wealth);
    amount.push_back(pop.amount);
    leader_wealth.push_back(s.populations[0].wealth);
    leader_amount.push_back(s.populations[0].amount);
  }
  void on_finish(const sim::RunState& /*s*/) override {}
};

sim::ScenarioSpec invest_spec(agents::InvestProtocol protocol, int batch) {
  sim::ScenarioSpec s;
  s.run.seed = 11;
  s.run.paths = 2;
  s.populations.push_back(test::merton("advisor", 1, 0.2));
  agents::InvestAgentParams p;
  p.leader = "advisor";
  p.protocol = protocol;
  p.alpha = test::list({0.6, 0.9}, sim::ParamSpec::Scale::lottery_prob);
  p.theta = test::list({0, 10}, sim::ParamSpec::Scale::score);
  p.inference.backend = "fake";
  p.inference.batch = batch;
  s.populations.push_back(agents::population_spec("llm", 4, p, test::constant(10.0)));
  return s;
}

struct Ran {
  FakeLog log;
  Capture capture;
  sim::InferenceLog totals;
  Eigen::MatrixXd theory;
};

std::unique_ptr<Ran> run(const sim::ScenarioSpec& spec, const std::function<void(FakeLog&)>& setup = {}) {
  auto out = std::make_unique<Ran>();
  if (setup) setup(out->log);
  FakeLog* log = &out->log;
  const inference::BackendFactory factory = [log](const sim::InferenceSpec&) {
    return std::make_unique<FakeBackend>(*log);
  };
  auto simulation = agents::make_simulation(spec, factory);
  simulation->add_observer(&out->capture);
  sim::RunOptions options;
  options.threads = 1;
  simulation->run(options);
  out->totals = *simulation->state().populations[1].inference;
  out->theory = simulation->state().populations[1].theory_amount;
  return out;
}

std::uint64_t seed_of(int agent, int step, int path, int stage) {
  return agents::InvestAgentPopulation::request_seed(sim::CounterRng(11), 1, agent, step, path, stage);
}

/// The advisor's proportions for a budget of 10 as the prompt quotes them.
std::vector<double> quoted_advisor() {
  std::vector<double> out;
  for (const double a : investalign::advisor_proportions(theory::Market{}, 0.2, 10.0))
    out.push_back(static_cast<double>(std::llround(a * 10000.0)) / 10000.0);
  return out;
}

/// invest_spec in a market of two correlated assets, a stock and a bond (r = 0.04, v = (0.03, 0.015),
/// sigma = (0.17, 0.08), correlation 0.3): the advisor holds both, the InvestAgents trade the bond.
sim::ScenarioSpec bond_spec(agents::InvestProtocol protocol, int batch) {
  sim::ScenarioSpec s = invest_spec(protocol, batch);
  s.market.assets = {{"stock", 0.07, 0.17, 1.0}, {"bond", 0.055, 0.08, 1.0}};
  s.market.correlation = {1.0, 0.3, 0.3, 1.0};
  agents::params_of<agents::InvestAgentParams>(s.populations[1]).asset = "bond";
  return s;
}

/// The advisor's (merton, alpha 0.2) continuous-time holding of the bond per unit e^{-r (T - t)}: component 1
/// of Sigma^{-1} v / alpha, solved here from the covariance.
double advisor_bond_scale() {
  Eigen::Matrix2d cov;
  cov << 0.17 * 0.17, 0.3 * 0.17 * 0.08, 0.3 * 0.17 * 0.08, 0.08 * 0.08;
  const Eigen::Vector2d v(0.03, 0.015);
  return cov.fullPivLu().solve(v)[1] / 0.2;
}

/// The P3 problem of agent 3 of invest_spec's grid (p = 0.9, score 10) following the advisor (alpha
/// 0.2) from wealth 10 over 10 years: the closed form its theory amounts come from.
theory::HerdProblem agent3_problem() {
  theory::HerdProblem hp;
  hp.alpha = theory::alpha_from_lottery_prob(0.9);
  hp.alpha_leader = 0.2;
  hp.theta = theory::theta_from_score(10);
  hp.x0 = 10.0;
  hp.horizon = 10;
  return hp;
}

}  // namespace

TEST_SUITE("investagent") {
  TEST_CASE("absolute: one request per agent at t = 0, in batches, amounts pi_{k+1} B_{k+1} on every path") {
    const auto r = run(invest_spec(agents::InvestProtocol::absolute, 3));
    CHECK(r->log.batch_sizes == std::vector<std::size_t>{3, 1});
    REQUIRE(r->capture.transcripts.size() == 4);
    CHECK(r->totals.requests == 4);
    CHECK(r->totals.invalid == 0);
    CHECK(r->totals.prompt_tokens > 0);
    CHECK(r->totals.cached_tokens == 28);
    CHECK(r->totals.completion_tokens == 44);
    CHECK(r->totals.protocol == "absolute");
    CHECK(r->totals.backend == "fake");
    CHECK(r->totals.width == 10);
    const auto& B = investalign::static_budget_list;
    for (int i = 0; i < 4; ++i) {
      const sim::Transcript& t = r->capture.transcripts[static_cast<std::size_t>(i)];
      CHECK(t.step == 0);
      CHECK(t.path == -1);
      CHECK(t.agent == i);
      CHECK(t.stage == 0);
      CHECK(t.valid);
      CHECK(t.status == "ok");
      CHECK(t.seed == seed_of(i, 0, -1, 0));
      // The prompt hash is the hash of exactly what was sent.
      const auto& req = r->log.requests[static_cast<std::size_t>(i)];
      CHECK(req.seed == t.seed);
      CHECK(req.max_tokens == 384);
      CHECK(req.temperature == 0.0);
      CHECK_FALSE(req.grammar.empty());
      CHECK(req.user.find("Initial budget") != std::string::npos);
      const investalign::Prompt sent{req.system, req.user, ""};
      CHECK(t.prompt_hash == sent.hash());
      for (int k = 0; k < 10; ++k) {
        const double pi = percent_of(t.seed, k) / 100.0;
        CHECK(t.values[static_cast<std::size_t>(k)] == doctest::Approx(pi).epsilon(1e-12));
        for (int p = 0; p < 2; ++p)
          CHECK(r->capture.amount[static_cast<std::size_t>(k)](i, p) ==
                doctest::Approx(pi * B[static_cast<std::size_t>(k)]).epsilon(1e-12));
      }
    }
    // Seeds differ between agents.
    CHECK(r->capture.transcripts[0].seed != r->capture.transcripts[1].seed);
  }

  TEST_CASE("the answers do not depend on the batch size") {
    const auto a = run(invest_spec(agents::InvestProtocol::step, 1));
    const auto b = run(invest_spec(agents::InvestProtocol::step, 64));
    CHECK(a->log.batch_sizes.size() == 80);  // 4 agents x 2 paths x 10 steps, one by one
    CHECK(b->log.batch_sizes == std::vector<std::size_t>(10, 8));
    REQUIRE(a->capture.transcripts.size() == b->capture.transcripts.size());
    for (std::size_t i = 0; i < a->capture.transcripts.size(); ++i) {
      CHECK(a->capture.transcripts[i].seed == b->capture.transcripts[i].seed);
      CHECK(a->capture.transcripts[i].prompt_hash == b->capture.transcripts[i].prompt_hash);
    }
    for (std::size_t k = 0; k < a->capture.amount.size(); ++k)
      CHECK(a->capture.amount[k] == b->capture.amount[k]);
  }

  TEST_CASE("an invalid answer plays the advisor's values and is recorded as invalid") {
    const auto r = run(invest_spec(agents::InvestProtocol::absolute, 64), [](FakeLog& log) {
      log.override_text[seed_of(1, 0, -1, 0)] = "I would rather not say.";
    });
    CHECK(r->totals.invalid == 1);
    const sim::Transcript& t = r->capture.transcripts[1];
    CHECK_FALSE(t.valid);
    CHECK(t.status == "no_json_object");
    CHECK(t.output == "I would rather not say.");
    const auto advisor = quoted_advisor();
    for (int k = 0; k < 10; ++k) {
      CHECK(t.values[static_cast<std::size_t>(k)] == advisor[static_cast<std::size_t>(k)]);
      CHECK(r->capture.amount[static_cast<std::size_t>(k)](1, 0) ==
            doctest::Approx(advisor[static_cast<std::size_t>(k)] *
                            investalign::static_budget_list[static_cast<std::size_t>(k)])
                .epsilon(1e-12));
    }
    CHECK(r->capture.transcripts[0].valid);
  }

  TEST_CASE("relative: the absolute prompt's year 1 at t = 0, then T - 1 changes at t = 1") {
    const auto r = run(invest_spec(agents::InvestProtocol::relative, 64));
    REQUIRE(r->capture.transcripts.size() == 8);
    CHECK(r->totals.requests == 8);
    const auto& B = investalign::static_budget_list;
    for (int i = 0; i < 4; ++i) {
      const sim::Transcript& first = r->capture.transcripts[static_cast<std::size_t>(i)];
      const sim::Transcript& second = r->capture.transcripts[static_cast<std::size_t>(4 + i)];
      CHECK(first.stage == 0);
      CHECK(first.step == 0);
      CHECK(second.stage == 1);
      CHECK(second.step == 1);
      CHECK(second.path == -1);
      CHECK(second.seed == seed_of(i, 1, -1, 1));
      CHECK(second.values.size() == 9);
      // The stage-1 prompt states the agent's own year-1 answer.
      const double pi1 = first.values.front();
      CHECK(r->log.requests[static_cast<std::size_t>(4 + i)].user.find(investalign::format_percent(pi1)) !=
            std::string::npos);
      double pi = pi1;
      for (int k = 0; k < 10; ++k) {
        if (k > 0) pi += second.values[static_cast<std::size_t>(k - 1)];
        CHECK(r->capture.amount[static_cast<std::size_t>(k)](i, 1) ==
              doctest::Approx(pi * B[static_cast<std::size_t>(k)]).epsilon(1e-12));
      }
    }
  }

  TEST_CASE("step: one request per agent and path each step, P = pi X_k") {
    const auto r = run(invest_spec(agents::InvestProtocol::step, 5));
    REQUIRE(r->capture.transcripts.size() == 80);
    CHECK(r->totals.width == 1);
    for (const auto& t : r->capture.transcripts) {
      CHECK(t.seed == seed_of(t.agent, t.step, t.path, 0));
      const double pi = percent_of(t.seed, 0) / 100.0;
      CHECK(t.values.front() == doctest::Approx(pi).epsilon(1e-12));
      const auto k = static_cast<std::size_t>(t.step);
      CHECK(r->capture.amount[k](t.agent, t.path) ==
            doctest::Approx(pi * r->capture.wealth[k](t.agent, t.path)).epsilon(1e-12));
    }
    // Paths see their own wealth: the prompts of the two paths differ after the first step.
    CHECK(r->capture.transcripts[8 * 3].prompt_hash != r->capture.transcripts[8 * 3 + 4].prompt_hash);
    // From year 2 on the prompt quotes last year's own and leader proportions.
    const auto& req = r->log.requests[8];
    CHECK(req.user.find("Last year you held") != std::string::npos);
    CHECK(req.user.find("Last year the investor you follow held") != std::string::npos);
  }

  TEST_CASE("theory_amount is the P3 optimum at t = k + 1 (the dataset targets' closed form)") {
    const auto r = run(invest_spec(agents::InvestProtocol::absolute, 64));
    const theory::HerdProblem hp = agent3_problem();
    const auto sol = theory::solve_absolute_herd(hp);
    for (int k = 0; k < 10; ++k)
      CHECK(r->theory(3, k) == doctest::Approx(sol.amount(k + 1.0)).epsilon(1e-12));
  }

  TEST_CASE("the relative protocol is scored against relative herding (P1), not the P3 closed form") {
    const auto r = run(invest_spec(agents::InvestProtocol::relative, 64));
    const theory::HerdProblem hp = agent3_problem();
    const auto p1 = theory::solve_relative_herd(hp);
    const auto p3 = theory::solve_absolute_herd(hp);
    for (int k = 0; k < 10; ++k) CHECK(r->theory(3, k) == doctest::Approx(p1.amount(k + 1.0)).epsilon(1e-12));
    CHECK(std::abs(p1.amount(5.0) - p3.amount(5.0)) > 1e-6);  // the two optima differ: the check can fail
  }

  TEST_CASE("mutual: the mutual prompt with the peer's profile at t = 0, amounts pi_{k+1} B_{k+1}") {
    const auto r = run(invest_spec(agents::InvestProtocol::mutual, 3));
    CHECK(r->log.batch_sizes == std::vector<std::size_t>{3, 1});
    REQUIRE(r->capture.transcripts.size() == 4);
    CHECK(r->totals.protocol == "mutual");
    CHECK(r->totals.width == 10);
    CHECK(r->totals.invalid == 0);
    const sim::CounterRng rng(11);
    // Agents (grid order, lottery-major): 0 = (0.6, 0), 1 = (0.6, 10), 2 = (0.9, 0), 3 = (0.9, 10).
    const double p_of[4] = {0.6, 0.6, 0.9, 0.9};
    const double score_of[4] = {0, 10, 0, 10};
    std::vector<int> peers;
    const auto& B = investalign::static_budget_list;
    for (int i = 0; i < 4; ++i) {
      const int j = agents::InvestAgentPopulation::peer_of(rng, 1, i, 4);
      CHECK(j != i);
      CHECK(j >= 0);
      CHECK(j < 4);
      peers.push_back(j);
      const sim::Transcript& t = r->capture.transcripts[static_cast<std::size_t>(i)];
      CHECK(t.step == 0);
      CHECK(t.path == -1);
      CHECK(t.stage == 0);
      CHECK(t.seed == seed_of(i, 0, -1, 0));
      const auto& req = r->log.requests[static_cast<std::size_t>(i)];
      // Exactly the dataset's mutual prompt for this investor and its peer.
      investalign::TaskSettings settings;
      settings.alpha_leader = 0.2;
      investalign::PromptInputs in;
      in.investor.lottery_prob = p_of[i];
      in.investor.alpha = theory::alpha_from_lottery_prob(p_of[i]);
      in.investor.score = score_of[i];
      in.investor.theta = theory::theta_from_score(score_of[i]);
      in.investor.budget = 10.0;
      in.peer = investalign::InvestorProfile{p_of[j], theory::alpha_from_lottery_prob(p_of[j]), score_of[j],
                                             theory::theta_from_score(score_of[j]), 10.0};
      in.advisor = quoted_advisor();
      const auto expected = investalign::render_prompt(
          investalign::make_prompt_template(investalign::TaskKind::mutual, settings), in);
      CHECK(req.system == expected.system);
      CHECK(req.user == expected.user());
      CHECK(t.prompt_hash == expected.hash());
      CHECK(req.user.find("The peer investor's profile") != std::string::npos);
      CHECK(req.grammar == investalign::answer_gbnf(investalign::proportion_sequence_schema(10)));
      for (int k = 0; k < 10; ++k) {
        const double pi = percent_of(t.seed, k) / 100.0;
        CHECK(t.values[static_cast<std::size_t>(k)] == doctest::Approx(pi).epsilon(1e-12));
        for (int p = 0; p < 2; ++p)
          CHECK(r->capture.amount[static_cast<std::size_t>(k)](i, p) ==
                doctest::Approx(pi * B[static_cast<std::size_t>(k)]).epsilon(1e-12));
      }
    }
    // The peers are drawn, not a fixed pattern: over many agents every other agent is someone's peer,
    // and the draw depends on the seed.
    std::vector<int> hits(50, 0);
    int differ = 0;
    for (int i = 0; i < 50; ++i) {
      const int j = agents::InvestAgentPopulation::peer_of(rng, 1, i, 50);
      CHECK(j != i);
      ++hits[static_cast<std::size_t>(j)];
      if (j != agents::InvestAgentPopulation::peer_of(sim::CounterRng(12), 1, i, 50)) ++differ;
    }
    CHECK(differ > 25);
    CHECK(std::count(hits.begin(), hits.end(), 0) < 35);
    CHECK(agents::InvestAgentPopulation::peer_of(rng, 1, 0, 2) == 1);
    CHECK(agents::InvestAgentPopulation::peer_of(rng, 1, 1, 2) == 0);
  }

  TEST_CASE("the mutual protocol is scored against the P2 game of advisor, agent and peer") {
    const auto r = run(invest_spec(agents::InvestProtocol::mutual, 64));
    const sim::CounterRng rng(11);
    const double p_of[4] = {0.6, 0.6, 0.9, 0.9};
    const double score_of[4] = {0, 10, 0, 10};
    const auto profile = [&](int a) {
      return investalign::InvestorProfile{p_of[a], theory::alpha_from_lottery_prob(p_of[a]), score_of[a],
                                          theory::theta_from_score(score_of[a]), 10.0};
    };
    const theory::HerdProblem hp = agent3_problem();
    const auto p3 = theory::solve_absolute_herd(hp);
    for (int i = 0; i < 4; ++i) {
      const int j = agents::InvestAgentPopulation::peer_of(rng, 1, i, 4);
      // The game built by hand, as the dataset's mutual problem defines it (docs/theory.md §3.4).
      theory::MutualGame game;
      game.horizon = 10;
      game.alpha = Eigen::Vector3d(0.2, profile(i).alpha, profile(j).alpha);
      game.x0 = Eigen::Vector3d(10.0, 10.0, 10.0);
      game.theta = theory::ThetaMatrix(3, 3);
      const std::vector<Eigen::Triplet<double>> w{{1, 0, profile(i).theta},
                                                  {1, 2, profile(i).theta},
                                                  {2, 0, profile(j).theta},
                                                  {2, 1, profile(j).theta}};
      game.theta.setFromTriplets(w.begin(), w.end());
      const auto p2 = theory::solve_mutual_game(game);
      for (int k = 0; k < 10; ++k)
        CHECK(r->theory(i, k) == doctest::Approx(p2.amounts(k + 1.0)(1)).epsilon(1e-10));
    }
    // Agent 3 (p = 0.9, score 10) herds on its peer too: the P2 optimum differs from the P3 one.
    CHECK(std::abs(r->theory(3, 4) - p3.amount(5.0)) > 1e-6);
    // An agent with score 0 plays its own Merton path, as in P3.
    const theory::Schedule schedule(theory::Market{}, 10, theory::TimeModel::continuous());
    CHECK(r->theory(2, 4) ==
          doctest::Approx(theory::merton_amount(schedule, theory::alpha_from_lottery_prob(0.9), 5.0))
              .epsilon(1e-10));
  }

  TEST_CASE("two assets: the prompt is about the traded asset, the amounts and the theory are in it only") {
    const auto r = run(bond_spec(agents::InvestProtocol::absolute, 64));
    REQUIRE(r->capture.transcripts.size() == 4);
    // The advisor's bond holding at t = j as the prompt quotes it: over B_j, to hundredths of a percent.
    const auto& B = investalign::static_budget_list;
    const double scale = advisor_bond_scale();
    std::string advisor;
    std::vector<double> quoted;
    for (int j = 1; j <= 10; ++j) {
      quoted.push_back(static_cast<double>(std::llround(scale * std::exp(-0.04 * (10 - j)) /
                                                        B[static_cast<std::size_t>(j - 1)] * 10000.0)) /
                       10000.0);
      advisor += (j > 1 ? ", " : "") + investalign::format_percent(quoted.back());
    }
    for (const auto& req : r->log.requests) {
      CHECK(req.user.find("expected return of 5.50% per year and a volatility of 8.00% per year") !=
            std::string::npos);
      CHECK(req.user.find("in years 1 to 10: " + advisor + ".") != std::string::npos);
      CHECK(req.user.find("rational investor with risk aversion 0.2.") != std::string::npos);
    }
    // Amounts pi_{k+1} B_{k+1} in the bond (columns [paths, 2 paths)), none in the stock.
    for (int k = 0; k < 10; ++k) {
      const Eigen::MatrixXd& amount = r->capture.amount[static_cast<std::size_t>(k)];
      REQUIRE(amount.cols() == 4);
      CHECK(amount.leftCols(2).isZero(0.0));
      for (int i = 0; i < 4; ++i) {
        const double pi = percent_of(r->capture.transcripts[static_cast<std::size_t>(i)].seed, k) / 100.0;
        for (int p = 0; p < 2; ++p)
          CHECK(amount(i, 2 + p) == doctest::Approx(pi * B[static_cast<std::size_t>(k)]).epsilon(1e-12));
      }
    }
    // theory/amount: the one-asset P3 optimum of the bond with the advisor's bond holding as its path (the
    // Merton path of the alpha that gives v_b / (alpha sigma_b^2) = scale), nothing in the stock.
    REQUIRE(r->theory.cols() == 20);
    CHECK(r->theory.leftCols(10).isZero(0.0));
    theory::HerdProblem hp = agent3_problem();
    hp.market = theory::Market{0.055, 0.04, 0.08};
    hp.alpha_leader = 0.015 / (0.08 * 0.08 * scale);
    const auto sol = theory::solve_absolute_herd(hp);
    for (int k = 0; k < 10; ++k) {
      CHECK(r->theory(3, 10 + k) == doctest::Approx(sol.amount(k + 1.0)).epsilon(1e-10));
      CHECK(sol.leader_merton(k + 1.0) == doctest::Approx(scale * std::exp(-0.04 * (9 - k))).epsilon(1e-12));
    }
  }

  TEST_CASE("two assets, step protocol: the leader's last proportion is its holding of the traded asset") {
    const auto r = run(bond_spec(agents::InvestProtocol::step, 64));
    REQUIRE(r->capture.transcripts.size() == 80);
    int quoted = 0;
    for (std::size_t q = 0; q < r->capture.transcripts.size(); ++q) {
      const sim::Transcript& t = r->capture.transcripts[q];
      const auto k = static_cast<std::size_t>(t.step);
      CHECK(r->capture.amount[k](t.agent, t.path) == 0.0);  // the stock
      CHECK(r->capture.amount[k](t.agent, 2 + t.path) ==
            doctest::Approx(t.values.front() * r->capture.wealth[k](t.agent, t.path)).epsilon(1e-12));
      if (k == 0) continue;
      // Last year's advisor bond amount (columns [paths, 2 paths)) over its wealth when it decided.
      const double leader =
          r->capture.leader_amount[k - 1](0, 2 + t.path) / r->capture.leader_wealth[k - 1](0, t.path);
      CHECK(r->log.requests[q].user.find("Last year the investor you follow held " +
                                         investalign::format_percent(leader) + "% of its wealth") !=
            std::string::npos);
      ++quoted;
    }
    CHECK(quoted == 72);
  }

  TEST_CASE("two assets without `asset`, or with one the market does not have, are refused before running") {
    auto spec = bond_spec(agents::InvestProtocol::absolute, 64);
    FakeLog log;
    const inference::BackendFactory factory = [&log](const sim::InferenceSpec&) {
      return std::make_unique<FakeBackend>(log);
    };
    for (const char* asset : {"", "gold"}) {
      agents::params_of<agents::InvestAgentParams>(spec.populations[1]).asset = asset;
      try {
        (void)agents::make_simulation(spec, factory);
        FAIL("a ScenarioError was expected");
      } catch (const ScenarioError& e) {
        const std::string what = e.what();
        CHECK(what.find("asset") != std::string::npos);
        CHECK(what.find("\"stock\", \"bond\"") != std::string::npos);
      }
    }
    CHECK(log.requests.empty());
  }

  TEST_CASE("a mutual population needs a peer: count >= 2") {
    auto spec = invest_spec(agents::InvestProtocol::mutual, 64);
    spec.populations[1].count = 1;
    FakeLog log;
    const inference::BackendFactory factory = [&log](const sim::InferenceSpec&) {
      return std::make_unique<FakeBackend>(log);
    };
    CHECK_THROWS_AS((void)agents::make_simulation(spec, factory), ScenarioError);
    CHECK(log.requests.empty());
  }

  TEST_CASE("a failed request stops the run with a BackendError naming it") {
    CHECK_THROWS_AS(run(invest_spec(agents::InvestProtocol::absolute, 64),
                        [](FakeLog& log) { log.failing_seed = seed_of(2, 0, -1, 0); }),
                    BackendError);
  }

  TEST_CASE("a scenario that does not fit is refused before anything runs") {
    auto spec = invest_spec(agents::InvestProtocol::absolute, 64);
    CHECK_THROWS_AS((void)agents::make_simulation(spec), ScenarioError);  // no backend factory
    spec.run.steps_per_year = 2;
    FakeLog log;
    const inference::BackendFactory factory = [&log](const sim::InferenceSpec&) {
      return std::make_unique<FakeBackend>(log);
    };
    CHECK_THROWS_AS((void)agents::make_simulation(spec, factory), ScenarioError);
    CHECK(log.requests.empty());
  }
}
