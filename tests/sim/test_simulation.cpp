#include <doctest/doctest.h>

#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "agents/agent_support.hpp"
#include "agents/network.hpp"
#include "agents/noise_agent.hpp"
#include "agents/registry.hpp"
#include "sim/agent_exchange.hpp"
#include "sim/recording_plan.hpp"
#include "sim/simulation.hpp"
#include "sim/theory/absolute_herd.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/mutual_game.hpp"
#include "sim/theory/relative_herd.hpp"
#include "sim/theory/relative_mutual.hpp"
#include "support/specs.hpp"

using namespace herdsim;

namespace {

/// Every step's state of a small run.
struct Captured {
  std::vector<std::vector<Eigen::MatrixXd>> wealth, amount;  // [step][population]
  std::vector<Eigen::MatrixXd> price;                        // paths x assets
  bool finished = false;
};

/// Keeps every step's state in memory (small runs only).
class CaptureObserver final : public sim::Observer {
 public:
  explicit CaptureObserver(Captured& out) : out_(out) {}
  void on_start(const sim::RunState& s) override { keep(s, false); }
  void on_step(int /*k*/, const sim::RunState& s) override { keep(s, true); }
  void on_finish(const sim::RunState&) override { out_.finished = true; }

 private:
  void keep(const sim::RunState& s, bool with_amount) {
    std::vector<Eigen::MatrixXd> w, a;
    for (const auto& p : s.populations) {
      w.push_back(p.wealth);
      if (with_amount) a.push_back(p.amount);
    }
    out_.wealth.push_back(w);
    if (with_amount) out_.amount.push_back(a);
    out_.price.push_back(s.market.price);
  }
  Captured& out_;
};

/// An observer with a recording plan: keeps, at each step it is called after, the state it would
/// record (wealth, both amounts, the market), as bits. Optionally plan-less (it then reads every step).
class PlannedCapture final : public sim::Observer {
 public:
  PlannedCapture(const sim::RecordingPlan& plan, bool declare) : plan_(plan), declare_(declare) {}
  void on_start(const sim::RunState& s) override { keep(-1, s); }
  void on_step(int k, const sim::RunState& s) override {
    if (plan_.records_after_step(k)) keep(k, s);
  }
  void on_finish(const sim::RunState& s) override { keep(s.steps, s); }
  [[nodiscard]] const sim::RecordingPlan* recording_plan() const override {
    return declare_ ? &plan_ : nullptr;
  }
  std::vector<int> steps;
  std::vector<std::vector<Eigen::MatrixXd>> kept;

 private:
  void keep(int k, const sim::RunState& s) {
    std::vector<Eigen::MatrixXd> m{s.market.price, s.market.simple_return, s.market.shock};
    for (const auto& p : s.populations) {
      m.push_back(p.wealth);
      m.push_back(p.amount);
      m.push_back(p.previous_amount);
    }
    steps.push_back(k);
    kept.push_back(std::move(m));
  }
  sim::RecordingPlan plan_;
  bool declare_;
};

/// Same shapes and bits, matrix by matrix.
bool same_bits(const std::vector<Eigen::MatrixXd>& a, const std::vector<Eigen::MatrixXd>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].rows() != b[i].rows() || a[i].cols() != b[i].cols() ||
        std::memcmp(a[i].data(), b[i].data(), static_cast<std::size_t>(a[i].size()) * sizeof(double)) != 0)
      return false;
  }
  return true;
}

sim::ScenarioSpec mixed_spec() {
  sim::ScenarioSpec s = test::paper_spec(5, agents::Policy::adaptive);
  s.run.steps_per_year = 2;
  auto replan = test::herd("replanners", 6, agents::Policy::replan);
  s.populations.push_back(replan);
  auto peers = test::herd("peers", 40, agents::Policy::adaptive);
  test::herd_params(peers).influence = agents::Influence::peers;
  test::herd_params(peers).network.kind = agents::NetworkSpec::Kind::small_world;
  test::herd_params(peers).network.k = 3;
  test::herd_params(peers).network.p = 0.2;
  s.populations.push_back(peers);
  auto relative = test::herd("relative", 9, agents::Policy::adaptive);
  test::herd_params(relative).herd = agents::HerdType::relative;
  s.populations.push_back(relative);
  agents::NoiseParams noise;
  noise.proportion.form = sim::ParamSpec::Form::distribution;
  noise.proportion.distribution = {sim::DistributionSpec::Kind::normal, 0.4, 0.2, 0.0, 1.0};
  s.populations.push_back(agents::population_spec("noise", 25, noise, test::constant(10.0)));
  return s;
}

/// The replan combinations that solve a problem per agent or a game per path and step: their own,
/// shorter run (every decision after the first is a numerical solve).
sim::ScenarioSpec replan_mixed_spec() {
  sim::ScenarioSpec s = test::paper_spec(3, agents::Policy::replan);
  s.run.horizon = 4;
  s.run.steps_per_year = 2;
  s.populations.pop_back();
  auto relative_replan = test::herd("relative_replan", 2, agents::Policy::replan);  // agent 1 herds
  test::herd_params(relative_replan).herd = agents::HerdType::relative;
  s.populations.push_back(relative_replan);
  auto peers_replan = test::herd("peers_replan", 6, agents::Policy::replan);
  test::herd_params(peers_replan).influence = agents::Influence::peers;
  test::herd_params(peers_replan).network.k = 1;
  s.populations.push_back(peers_replan);
  auto relative_peers_replan = peers_replan;
  relative_peers_replan.name = "relative_peers_replan";
  relative_peers_replan.count = 3;
  test::herd_params(relative_peers_replan).herd = agents::HerdType::relative;
  test::herd_params(relative_peers_replan).bc = theory::BoundaryCondition::natural;
  s.populations.push_back(relative_peers_replan);
  return s;
}

/// An advisor and one herd population with the given policy: `count` followers on a leader or on a ring.
sim::ScenarioSpec replan_spec(agents::HerdType herd, agents::Influence influence, agents::Policy policy,
                              int count) {
  sim::ScenarioSpec s = test::paper_spec(3, policy);
  s.run.horizon = 4;
  s.populations[1].count = count;
  test::herd_params(s.populations[1]).herd = herd;
  test::herd_params(s.populations[1]).influence = influence;
  test::herd_params(s.populations[1]).network.k = 1;
  return s;
}

/// Every decision and wealth of two runs identical, bit for bit.
bool same_bits(const Captured& a, const Captured& b) {
  return a.amount == b.amount && a.wealth == b.wealth;
}

Captured run_with_threads(const sim::ScenarioSpec& spec, int threads) {
  auto simulation = agents::make_simulation(spec);
  Captured out;
  CaptureObserver capture(out);
  simulation->add_observer(&capture);
  sim::RunOptions opt;
  opt.threads = threads;
  (void)simulation->run(opt);
  return out;
}

/// The ranks of an agent split as threads of this process: concatenate_all through shared slots, a
/// barrier before and after every exchange (the real one is the MPI communicator's, tools/cli).
class ThreadRanks {
 public:
  explicit ThreadRanks(int ranks) : barrier_(ranks), slots_(static_cast<std::size_t>(ranks)) {}

  class Rank final : public sim::AgentExchange {
   public:
    Rank(ThreadRanks& shared, int rank) : shared_(shared), rank_(rank) {}
    void concatenate_all(std::span<const double> local, std::vector<double>& all) override {
      shared_.slots_[static_cast<std::size_t>(rank_)].assign(local.begin(), local.end());
      shared_.barrier_.arrive_and_wait();
      all.clear();
      for (const auto& slot : shared_.slots_) all.insert(all.end(), slot.begin(), slot.end());
      shared_.barrier_.arrive_and_wait();  // no slot is written again before every rank read it
    }

   private:
    ThreadRanks& shared_;
    int rank_;
  };

 private:
  std::barrier<> barrier_;
  std::vector<std::vector<double>> slots_;
};

/// `spec` split by agents over `ranks` ranks (threads): every population with `split[i]` runs its block
/// (sim::agent_split_block), the others whole; each rank's captured run, in rank order.
std::vector<Captured> run_agent_split(const sim::ScenarioSpec& spec, const std::vector<bool>& split,
                                      int ranks) {
  ThreadRanks shared(ranks);
  std::vector<Captured> out(static_cast<std::size_t>(ranks));
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      const sim::ScenarioSpec block = sim::agent_split_block(spec, split, r, ranks);
      ThreadRanks::Rank exchange(shared, r);
      auto simulation = agents::make_simulation(block);
      simulation->set_agent_exchange(&exchange);
      CaptureObserver capture(out[static_cast<std::size_t>(r)]);
      simulation->add_observer(&capture);
      sim::RunOptions opt;
      opt.threads = 1 + r % 2;
      (void)simulation->run(opt);
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

/// `spec` run as one process (2 threads) and split by agents over 2 and 3 ranks: every rank's prices and
/// its rows (its block of each split population, every agent of the others) of every step are the
/// one-process run's, bit for bit.
void check_agent_split(const sim::ScenarioSpec& spec, const std::vector<bool>& split) {
  const auto whole = run_with_threads(spec, 2);
  for (const int ranks : {2, 3}) {
    CAPTURE(ranks);
    const auto parts = run_agent_split(spec, split, ranks);
    for (int r = 0; r < ranks; ++r) {
      const Captured& part = parts[static_cast<std::size_t>(r)];
      REQUIRE(part.amount.size() == whole.amount.size());
      for (std::size_t k = 0; k < whole.wealth.size(); ++k) {
        CHECK(part.price[k] == whole.price[k]);
        for (std::size_t i = 0; i < spec.populations.size(); ++i) {
          const sim::AgentBlock b = split[i] ? sim::agent_block(spec.populations[i].count, r, ranks)
                                             : sim::AgentBlock{0, spec.populations[i].count};
          CHECK(part.wealth[k][i] == whole.wealth[k][i].middleRows(b.first, b.count));
          if (k < whole.amount.size())
            CHECK(part.amount[k][i] == whole.amount[k][i].middleRows(b.first, b.count));
        }
      }
    }
  }
}

}  // namespace

TEST_SUITE("sim.simulation") {
  TEST_CASE("results are bitwise identical for 1 and 2 threads (all population kinds and policies)") {
    const auto spec = mixed_spec();
    const auto one = run_with_threads(spec, 1);
    const auto two = run_with_threads(spec, 2);
    REQUIRE(one.amount.size() == 20);
    REQUIRE(one.wealth.size() == 21);
    for (std::size_t k = 0; k < one.amount.size(); ++k) {
      CHECK(one.price[k] == two.price[k]);
      for (std::size_t p = 0; p < one.amount[k].size(); ++p) {
        CHECK(one.amount[k][p] == two.amount[k][p]);
        CHECK(one.wealth[k + 1][p] == two.wealth[k + 1][p]);
      }
    }
    CHECK(one.finished);
  }

  TEST_CASE("a block of paths (RunSpec::first_path) runs exactly the whole run's paths (the path split)") {
    // Every kind and policy of mixed_spec (noise traders draw per path) over 5 paths, as blocks [0, 2) and
    // [2, 5) of the run: each block's columns are the whole run's, bit for bit.
    const auto spec = mixed_spec();
    REQUIRE(spec.run.paths == 5);
    const auto whole = run_with_threads(spec, 2);
    int first = 0;
    for (const int count : {2, 3}) {
      auto block_spec = spec;
      block_spec.run.paths = count;
      block_spec.run.first_path = first;
      const auto block = run_with_threads(block_spec, 1);
      REQUIRE(block.amount.size() == whole.amount.size());
      for (std::size_t k = 0; k < whole.wealth.size(); ++k) {
        CHECK(block.price[k] == whole.price[k].middleRows(first, count));
        for (std::size_t p = 0; p < whole.wealth[k].size(); ++p) {
          CHECK(block.wealth[k][p] == whole.wealth[k][p].middleCols(first, count));
          if (k < whole.amount.size())
            CHECK(block.amount[k][p] == whole.amount[k][p].middleCols(first, count));
        }
      }
      first += count;
    }
    // Not a block: the same paths keyed from another first path differ (the key is the global path).
    auto shifted = spec;
    shifted.run.paths = 2;
    shifted.run.first_path = 1;
    CHECK(run_with_threads(shifted, 1).price.back() != whole.price.back().topRows(2));
  }

  TEST_CASE(
      "blocks of agents (PopulationSpec::first_agent) exchanging the flow's block sums run exactly the "
      "whole run's agents (the agent split)") {
    // A Merton leader (replicated), herd followers (plan and adaptive) and noise traders drawing every step
    // (split), with and without price impact: each rank's block of every step is the one-process run's,
    // bit for bit, and so is the market every rank moves.
    sim::ScenarioSpec spec = test::paper_spec(3, agents::Policy::adaptive);
    spec.run.steps_per_year = 2;
    spec.run.horizon = 3;
    spec.populations[1].count = 9000;  // 3 flow blocks: 1 + 2 on 2 ranks, one each on 3
    spec.populations.push_back(test::herd("planners", 8200, agents::Policy::plan));
    agents::NoiseParams noise;
    noise.proportion.form = sim::ParamSpec::Form::distribution;
    noise.proportion.distribution = {sim::DistributionSpec::Kind::normal, 0.4, 0.2, 0.0, 1.0};
    spec.populations.push_back(agents::population_spec("noise", 8193, noise, test::constant(10.0)));
    const std::vector<bool> split{false, true, true, true};
    for (const bool impact : {false, true}) {
      CAPTURE(impact);
      if (impact) {
        spec.market.impact.lambda = {0.5};
        spec.market.impact.depth = {2.0e5};
      }
      check_agent_split(spec, split);
    }
    // The blocks are whole flow blocks, in rank order, covering the population.
    CHECK(sim::agent_block(9000, 0, 2).count == 4096);
    CHECK(sim::agent_block(9000, 1, 2).first == 4096);
    CHECK(sim::agent_block(9000, 1, 2).count == 4904);
    CHECK(sim::agent_block(9000, 2, 3).first == 8192);
    CHECK(sim::agent_block(9000, 2, 3).count == 808);
    CHECK(sim::agent_block(100, 0, 2).count == 0);  // one block: rank 1 has it
  }

  TEST_CASE(
      "blocks of agents with peers on a network, exchanging their decisions every step, run exactly the "
      "whole run's agents (the agent split)") {
    // Adaptive peers (absolute on a ring, relative on a small world) and plan peers (the whole network's
    // game, solved on every rank), split into blocks: each rank's rows of every step are the one-process
    // run's, bit for bit.
    sim::ScenarioSpec spec;
    spec.run.paths = 3;
    spec.run.horizon = 3;
    spec.run.steps_per_year = 2;
    auto ring = test::herd("ring", 9000, agents::Policy::adaptive);
    test::herd_params(ring).influence = agents::Influence::peers;
    test::herd_params(ring).network.k = 2;
    test::herd_params(ring).theta = test::list({0.0, 0.05, 0.3});  // herding that moves every bit
    spec.populations.push_back(ring);
    auto world = test::herd("world", 8500, agents::Policy::adaptive);
    test::herd_params(world).influence = agents::Influence::peers;
    test::herd_params(world).herd = agents::HerdType::relative;
    test::herd_params(world).network.kind = agents::NetworkSpec::Kind::small_world;
    test::herd_params(world).network.p = 0.2;
    test::herd_params(world).theta = test::list({0.0, 0.05, 0.3});
    spec.populations.push_back(world);
    auto planners = test::herd("planners", 8300, agents::Policy::plan);
    test::herd_params(planners).influence = agents::Influence::peers;
    test::herd_params(planners).network.kind = agents::NetworkSpec::Kind::erdos_renyi;
    test::herd_params(planners).network.p = 0.0005;
    spec.populations.push_back(planners);
    const std::vector<bool> split{true, true, true};
    check_agent_split(spec, split);
  }

  TEST_CASE("results are bitwise identical for 1 and 2 threads (replan: relative, peers, relative peers)") {
    const auto spec = replan_mixed_spec();
    const auto one = run_with_threads(spec, 1);
    const auto two = run_with_threads(spec, 2);
    REQUIRE(one.amount.size() == 8);
    CHECK(same_bits(one, two));
    CHECK(one.finished);
  }

  TEST_CASE("bitwise identical for 1 and 2 threads when populations span many vectorised blocks") {
    sim::ScenarioSpec spec;
    spec.run.paths = 3;
    spec.run.horizon = 5;
    auto peers = test::herd("peers", 9001, agents::Policy::adaptive);
    test::herd_params(peers).influence = agents::Influence::peers;
    test::herd_params(peers).network.kind = agents::NetworkSpec::Kind::erdos_renyi;
    test::herd_params(peers).network.p = 0.001;
    spec.populations.push_back(peers);
    spec.populations.push_back(test::merton("advisor", 1, 0.2));
    spec.populations.push_back(test::herd("followers", 10007, agents::Policy::adaptive));
    const auto one = run_with_threads(spec, 1);
    const auto two = run_with_threads(spec, 2);
    for (std::size_t k = 0; k < one.amount.size(); ++k) {
      for (std::size_t p = 0; p < one.amount[k].size(); ++p) {
        CHECK(one.amount[k][p] == two.amount[k][p]);
        CHECK(one.wealth[k + 1][p] == two.wealth[k + 1][p]);
      }
    }
  }

  TEST_CASE("plan followers play the theory library's annual-step optimum exactly") {
    const auto spec = test::paper_spec(3, agents::Policy::plan);
    const auto run = run_with_threads(spec, 2);
    const auto simulation = agents::make_simulation(spec);
    const auto& followers = simulation->state().populations[1];
    const Eigen::VectorXd& alpha = followers.params[0].second;
    const Eigen::VectorXd& theta = followers.params[1].second;
    for (int i = 0; i < followers.count; ++i) {
      theory::HerdProblem hp;
      hp.alpha = alpha[i];
      hp.theta = theta[i];
      hp.time = theory::TimeModel::annual();
      const auto sol = theory::solve_absolute_herd(hp);
      for (int k = 0; k < 10; ++k) {
        CHECK(followers.theory_amount(i, k) == sol.amount(k));
        for (int p = 0; p < 3; ++p) CHECK(run.amount[static_cast<std::size_t>(k)][1](i, p) == sol.amount(k));
      }
    }
  }

  TEST_CASE("relative herding on peers: plan agents play the mutual relative game's path exactly") {
    sim::ScenarioSpec spec = test::paper_spec(3, agents::Policy::plan);
    spec.populations.pop_back();
    auto ring = test::herd("ring", 12, agents::Policy::plan);
    test::herd_params(ring).herd = agents::HerdType::relative;
    test::herd_params(ring).leader.clear();
    test::herd_params(ring).influence = agents::Influence::peers;
    test::herd_params(ring).network.kind = agents::NetworkSpec::Kind::ring;
    test::herd_params(ring).network.k = 1;
    test::herd_params(ring).theta =
        test::list({1e4, 1e5}, sim::ParamSpec::Scale::score);  // 1e-4, 1e-3: coupled
    spec.populations.push_back(ring);
    const auto one = run_with_threads(spec, 1);
    const auto two = run_with_threads(spec, 2);
    const auto simulation = agents::make_simulation(spec);
    const auto& pop = simulation->state().populations[1];
    theory::MutualGame game;
    game.horizon = spec.run.horizon;
    game.alpha = pop.params[0].second;
    game.x0 = pop.params[2].second;
    game.theta = agents::build_network(test::herd_params(ring).network, pop.params[1].second, 1,
                                       sim::CounterRng(spec.run.seed));
    theory::RelativeMutualOptions opt;
    opt.node_spacing = spec.run.dt();
    const auto sol = theory::solve_relative_mutual(game, opt);
    bool herds = false;
    for (int i = 0; i < pop.count; ++i) {
      for (int k = 0; k < 10; ++k) {
        CHECK(pop.theory_amount(i, k) == sol.amount(i, k));
        herds = herds || std::abs(sol.amount(i, k) - sol.own_merton(i, k)) > 1e-3;
        for (int p = 0; p < 3; ++p) {
          CHECK(one.amount[static_cast<std::size_t>(k)][1](i, p) == sol.amount(i, k));
          CHECK(two.amount[static_cast<std::size_t>(k)][1](i, p) ==
                one.amount[static_cast<std::size_t>(k)][1](i, p));
          CHECK(two.wealth[static_cast<std::size_t>(k) + 1][1](i, p) ==
                one.wealth[static_cast<std::size_t>(k) + 1][1](i, p));
        }
      }
    }
    CHECK(herds);
  }

  TEST_CASE("the fused kernel (no observers) ends in exactly the step loop's state, in both builds") {
    for (const auto wealth_update : {sim::WealthUpdate::arithmetic, sim::WealthUpdate::lognormal}) {
      auto spec = test::paper_spec(7, agents::Policy::plan);
      spec.run.steps_per_year = 4;
      spec.run.wealth_update = wealth_update;
      const auto looped = run_with_threads(spec, 2);
      for (const auto kernel : {sim::FusedKernel::fastest, sim::FusedKernel::portable}) {
        CAPTURE(wealth_update == sim::WealthUpdate::lognormal);
        CAPTURE(kernel == sim::FusedKernel::portable);
        auto fused = agents::make_simulation(spec);
        sim::RunOptions opt;
        opt.fused_kernel = kernel;
        const auto summary = fused->run(opt);
        CHECK(summary.fused);
        for (std::size_t p = 0; p < 2; ++p)
          CHECK(fused->state().populations[p].wealth == looped.wealth.back()[p]);
        CHECK(fused->state().market.price == looped.price.back());
      }
    }
  }

  TEST_CASE("observers with recording plans: the fused kernel runs between their steps, same bits") {
    auto spec = test::paper_spec(5, agents::Policy::plan);
    spec.run.steps_per_year = 4;  // 40 steps
    spec.populations[1].count = 1001;
    for (const int every : {1, 3, 7, 100}) {
      CAPTURE(every);
      spec.record.every = every;
      std::vector<std::unique_ptr<PlannedCapture>> captures;
      for (const auto& [declare, allow] : {std::pair{true, false}, {true, true}, {false, true}}) {
        auto simulation = agents::make_simulation(spec);
        captures.push_back(
            std::make_unique<PlannedCapture>(sim::RecordingPlan(spec.record, simulation->state()), declare));
        simulation->add_observer(captures.back().get());
        sim::RunOptions opt;
        opt.threads = 2;
        opt.allow_fused = allow;
        // Fused only when allowed and every observer declares its steps.
        CHECK(simulation->run(opt).fused == (declare && allow));
      }
      const PlannedCapture& looped = *captures[0];
      // Kept: the start, each step the plan reads after, the finish.
      const sim::RecordingPlan plan(spec.record, agents::make_simulation(spec)->state());
      std::size_t watched = 2;
      for (int k = 0; k < 40; ++k) watched += plan.records_after_step(k) ? 1 : 0;
      CHECK(looped.steps.size() == watched);
      CHECK((every == 1 ? watched == 42U : watched < 42U));
      for (std::size_t c = 1; c < captures.size(); ++c) {
        CAPTURE(c);
        CHECK(captures[c]->steps == looped.steps);
        REQUIRE(captures[c]->kept.size() == looped.kept.size());
        for (std::size_t i = 0; i < looped.kept.size(); ++i) {
          CAPTURE(looped.steps[i]);
          CHECK(same_bits(captures[c]->kept[i], looped.kept[i]));
        }
      }
    }
  }

  TEST_CASE(
      "a fused run whose observers read no amounts leaves them unwritten; state() then holds the loop's") {
    // Reads wealth after the steps its plan names, never an amount.
    struct WealthOnly final : sim::Observer {
      explicit WealthOnly(const sim::RecordingPlan& p) : plan(p) {}
      void on_start(const sim::RunState&) override {}
      void on_step(int /*k*/, const sim::RunState& s) override {
        ++calls;
        for (const auto& p : s.populations)
          unwritten = unwritten && p.amount.size() == 0 && p.previous_amount.size() == 0;
      }
      void on_finish(const sim::RunState&) override {}
      [[nodiscard]] const sim::RecordingPlan* recording_plan() const override { return &plan; }
      [[nodiscard]] bool reads_amounts() const override { return false; }
      sim::RecordingPlan plan;
      bool unwritten = true;
      int calls = 0;
    };
    for (const double horizon : {10.0, 0.25}) {  // 40 steps; one step (previous_amount stays zero)
      CAPTURE(horizon);
      auto spec = test::paper_spec(5, agents::Policy::plan);
      spec.run.horizon = horizon;
      spec.run.steps_per_year = 4;
      spec.record.every = 7;
      auto looped = agents::make_simulation(spec);
      sim::RunOptions loop_opt;
      loop_opt.allow_fused = false;
      CHECK_FALSE(looped->run(loop_opt).fused);
      auto fused = agents::make_simulation(spec);
      WealthOnly observer(sim::RecordingPlan(spec.record, fused->state_without_amounts()));
      fused->add_observer(&observer);
      CHECK(fused->run().fused);
      CHECK(observer.calls > 0);
      CHECK(observer.unwritten);
      for (const auto& pop : fused->state_without_amounts().populations) CHECK(pop.amount.size() == 0);
      const auto& a = fused->state();
      const auto& b = looped->state();
      REQUIRE(a.populations.size() == b.populations.size());
      for (std::size_t p = 0; p < a.populations.size(); ++p) {
        CAPTURE(p);
        const auto& x = a.populations[p];
        const auto& y = b.populations[p];
        CHECK(y.amount.size() > 0);
        CHECK(same_bits({x.wealth, x.amount, x.previous_amount}, {y.wealth, y.amount, y.previous_amount}));
      }
    }
  }

  TEST_CASE("the fused kernel matches the step loop across tiles, tasks, compact and full plans") {
    // Followers on a grid (a compact plan: 9 distinct rows, period 9), Merton investors with a distribution
    // of alpha (every row distinct: the full plan), counts that leave partial chunks, tiles and tasks.
    auto spec = test::paper_spec(37, agents::Policy::plan);
    spec.run.steps_per_year = 3;
    spec.populations[1].count = 9001;
    auto spread = test::merton("spread", 4099, 0.3);
    agents::params_of<agents::MertonParams>(spread).alpha.form = sim::ParamSpec::Form::distribution;
    agents::params_of<agents::MertonParams>(spread).alpha.distribution = {
        sim::DistributionSpec::Kind::uniform, 0.1, 0.9, 0.1, 0.9};
    spec.populations.push_back(spread);
    // A grid of 40 x 30 (a compact plan whose period, 1200, is too long for one table: gathered).
    auto wide = test::herd("wide", 9001, agents::Policy::plan);
    std::vector<double> probs, scores;
    for (int i = 0; i < 40; ++i) probs.push_back(0.4 + 0.0125 * i);
    for (int i = 0; i < 30; ++i) scores.push_back(i / 3.0);
    test::herd_params(wide).alpha = test::list(probs, sim::ParamSpec::Scale::lottery_prob);
    test::herd_params(wide).theta = test::list(scores, sim::ParamSpec::Scale::score);
    spec.populations.push_back(wide);
    const auto looped = run_with_threads(spec, 1);
    const std::size_t n = looped.amount.size();
    REQUIRE(n == 30);
    for (const auto& [threads, kernel] : {std::pair{1, sim::FusedKernel::fastest},
                                          {2, sim::FusedKernel::fastest},
                                          {1, sim::FusedKernel::portable},
                                          {2, sim::FusedKernel::portable}}) {
      CAPTURE(threads);
      CAPTURE(kernel == sim::FusedKernel::portable);
      auto fused = agents::make_simulation(spec);
      sim::RunOptions opt;
      opt.threads = threads;
      opt.fused_kernel = kernel;
      const auto summary = fused->run(opt);
      CHECK(summary.fused);
      for (std::size_t p = 0; p < spec.populations.size(); ++p) {
        const auto& pop = fused->state().populations[p];
        CHECK(pop.wealth == looped.wealth.back()[p]);
        CHECK(pop.amount == looped.amount[n - 1][p]);
        CHECK(pop.previous_amount == looped.amount[n - 2][p]);
      }
    }
    // The three forms of plan the test means to cover.
    auto built = agents::make_simulation(spec);
    const auto grid = sim::compact_plan(built->state().populations[1].theory_amount);
    CHECK_FALSE(grid.row_of.empty());
    CHECK(grid.period == 9);
    CHECK(sim::compact_plan(built->state().populations[2].theory_amount).row_of.empty());
    const auto gathered = sim::compact_plan(built->state().populations[3].theory_amount);
    CHECK(gathered.rows.size() == std::size_t{1200} * n);
    CHECK(gathered.period == 0);
  }

  TEST_CASE("all agents on a path see the same shock; paths differ") {
    const auto run = run_with_threads(test::paper_spec(4, agents::Policy::plan), 1);
    // Two populations with identical amounts would have identical wealth; instead check the price
    // is common: one price per path, different across paths.
    CHECK(run.price[1](0, 0) != run.price[1](1, 0));
  }

  TEST_CASE("Merton terminal wealth: mean and variance match the closed form within Monte Carlo error") {
    // X_n is Gaussian with known moments (theory::wealth_moments, annual steps). With N paths the
    // sample mean is within 5 standard errors with probability 1 - 5.7e-7, the sample variance
    // within 5 * sqrt(2/N) relative likewise (normal data): false-alarm rate ~1e-6 per run.
    sim::ScenarioSpec spec;
    spec.run.paths = 20000;
    spec.run.seed = 123;
    spec.populations.push_back(test::merton("m", 1, 0.3));
    auto simulation = agents::make_simulation(spec);
    (void)simulation->run();
    const Eigen::VectorXd final_wealth = simulation->state().populations[0].wealth.row(0).transpose();
    const theory::Schedule s(theory::Market{}, 10.0, theory::TimeModel::annual());
    const auto moments = theory::wealth_moments(
        s, 10.0, [&](double t) { return theory::merton_amount(s, 0.3, t); }, 10.0);
    const double n = static_cast<double>(final_wealth.size());
    const double mean = final_wealth.mean();
    const double var = (final_wealth.array() - mean).square().sum() / (n - 1.0);
    CHECK(std::abs(mean - moments.mean) < 5.0 * std::sqrt(moments.variance / n));
    CHECK(std::abs(var / moments.variance - 1.0) < 5.0 * std::sqrt(2.0 / n));
  }

  TEST_CASE("replan at the first step equals the plan; later it responds to realised wealth") {
    const auto plan = run_with_threads(test::paper_spec(3, agents::Policy::plan), 1);
    const auto replan = run_with_threads(test::paper_spec(3, agents::Policy::replan), 1);
    CHECK((plan.amount[0][1] - replan.amount[0][1]).cwiseAbs().maxCoeff() < 1e-12);
    // Followers with theta > 0 and alpha != alpha_L re-solve from their wealth: amounts differ by path.
    CHECK(replan.amount[5][1](4, 0) != replan.amount[5][1](4, 1));
  }

  TEST_CASE(
      "relative replan on a leader: the first decision is the plan's, later ones re-solve from wealth") {
    for (const auto bc : {theory::BoundaryCondition::pinned, theory::BoundaryCondition::natural}) {
      CAPTURE(bc == theory::BoundaryCondition::natural);
      auto plan_spec =
          replan_spec(agents::HerdType::relative, agents::Influence::leader, agents::Policy::plan, 6);
      test::herd_params(plan_spec.populations[1]).bc = bc;
      auto spec = plan_spec;
      test::herd_params(spec.populations[1]).policy = agents::Policy::replan;
      const auto plan = run_with_threads(plan_spec, 1);
      const auto replan = run_with_threads(spec, 1);
      CHECK(plan.amount[0][1] == replan.amount[0][1]);  // the same solve: bitwise
      // Agent 4 (theta > 0, alpha != alpha_L): paths differ in wealth, so do its later decisions.
      CHECK(replan.amount[2][1](4, 0) != replan.amount[2][1](4, 1));
      CHECK(plan.amount[2][1](4, 0) == plan.amount[2][1](4, 1));
      // Step 2 on path 1 is P1 over [2, 4] from the realised wealth X_2 with a free start.
      const auto simulation = agents::make_simulation(spec);
      const auto& params = simulation->state().populations[1].params;
      theory::HerdProblem hp;
      hp.alpha = params[0].second[4];
      hp.theta = params[1].second[4];
      hp.x0 = replan.wealth[2][1](4, 1);
      hp.horizon = 2.0;
      theory::RelativeHerdOptions o;
      o.bc = bc;
      o.free_start = true;
      const auto sol = theory::solve_relative_herd(hp, o);
      CHECK(replan.amount[2][1](4, 1) == doctest::Approx(sol.amount(0.0)).epsilon(1e-14));
      // Not the own Merton amount a pinned start would force.
      CHECK(replan.amount[2][1](4, 1) != doctest::Approx(sol.own_merton(0.0)).epsilon(1e-6));
    }
    // One step: replan is the plan.
    auto one = replan_spec(agents::HerdType::relative, agents::Influence::leader, agents::Policy::plan, 6);
    one.run.horizon = 1;
    auto one_replan = one;
    test::herd_params(one_replan.populations[1]).policy = agents::Policy::replan;
    CHECK(run_with_threads(one, 1).amount[0][1] == run_with_threads(one_replan, 1).amount[0][1]);
  }

  TEST_CASE(
      "peers replan: every path re-solves the whole game from its wealths; the first step is the plan") {
    for (const auto herd : {agents::HerdType::absolute, agents::HerdType::relative}) {
      CAPTURE(herd == agents::HerdType::relative);
      const int count = 5;
      const auto plan_spec = replan_spec(herd, agents::Influence::peers, agents::Policy::plan, count);
      const auto spec = replan_spec(herd, agents::Influence::peers, agents::Policy::replan, count);
      const auto plan = run_with_threads(plan_spec, 1);
      const auto replan = run_with_threads(spec, 2);
      CHECK(plan.amount[0][1] == replan.amount[0][1]);
      CHECK(replan.amount[3][1](4, 0) != replan.amount[3][1](4, 2));
      CHECK(same_bits(replan, run_with_threads(spec, 1)));
      // Step 3 on path 2: the game over [3, 4] from that path's wealths, all agents' first decisions.
      const auto simulation = agents::make_simulation(spec);
      const auto& own = simulation->state().populations[1];
      theory::MutualGame game;
      game.horizon = 1.0;
      game.alpha = own.params[0].second;
      game.x0 = replan.wealth[3][1].col(2);
      game.theta = agents::build_network(test::herd_params(spec.populations[1]).network, own.params[1].second,
                                         1, sim::CounterRng(spec.run.seed));
      Eigen::VectorXd expected;
      if (herd == agents::HerdType::absolute) {
        game.time = theory::TimeModel::discrete(1);
        expected = theory::solve_mutual_game(game).amounts(0.0);
      } else {
        theory::RelativeMutualOptions o;
        o.free_start = true;
        expected = theory::solve_relative_mutual(game, o).amounts(0.0);
      }
      for (int i = 0; i < count; ++i)
        CHECK(replan.amount[3][1](i, 2) == doctest::Approx(expected[i]).epsilon(1e-13));
    }
  }

  TEST_CASE("adaptive followers of a Merton leader stay between their own Merton amount and the leader's") {
    const auto run = run_with_threads(test::paper_spec(4, agents::Policy::adaptive), 1);
    const auto simulation = agents::make_simulation(test::paper_spec(4, agents::Policy::adaptive));
    const auto& followers = simulation->state().populations[1];
    const Eigen::VectorXd& alpha = followers.params[0].second;
    const theory::Schedule s(theory::Market{}, 10.0, theory::TimeModel::annual());
    for (int k = 1; k < 10; ++k) {
      for (int i = 0; i < followers.count; ++i) {
        const double own = theory::merton_amount(s, alpha[i], k);
        const double leader = theory::merton_amount(s, 0.2, k);
        const double p = run.amount[static_cast<std::size_t>(k)][1](i, 0);
        CHECK(p >= std::min(own, leader) - 1e-12);
        CHECK(p <= std::max(own, leader) + 1e-12);
      }
    }
  }

  TEST_CASE("adaptive absolute rule: every decision is the documented formula on the observed state") {
    // docs/scenarios.md, "adaptive": P = w P_alpha(t_k) + (1 - w) m, w = eta ασ²g / (eta ασ²g + θ),
    // ln eta = -α X_k G(t_k -> T) - v²(T - t_k) / (2σ²), g = G(t_k)^(2 - rho), m the leader's or the
    // θ-weighted mean of the peers' last decisions times G(t_{k-1}) / G(t_k); recomputed here from the
    // recorded state with std::exp, for a leader and for peers on a small world.
    sim::ScenarioSpec spec = test::paper_spec(3, agents::Policy::adaptive);
    test::herd_params(spec.populations[1]).rho = 0.5;
    auto peers = test::herd("peers", 40, agents::Policy::adaptive);
    test::herd_params(peers).leader.clear();
    test::herd_params(peers).influence = agents::Influence::peers;
    test::herd_params(peers).network.kind = agents::NetworkSpec::Kind::small_world;
    test::herd_params(peers).network.k = 3;
    test::herd_params(peers).network.p = 0.2;
    test::herd_params(peers).theta =
        test::list({0, 3e4, 1e5, 1e6}, sim::ParamSpec::Scale::score);  // w across (0, 1)
    spec.populations.push_back(peers);
    const auto run = run_with_threads(spec, 2);
    const auto simulation = agents::make_simulation(spec);
    const theory::Market market = agents::theory_market(spec);
    const double T = spec.run.horizon;
    const double s2 = market.sigma * market.sigma;
    const double v = market.mu - market.r;
    const theory::Schedule rule(market, T, theory::TimeModel::annual());
    for (const int pop : {1, 2}) {
      const auto& state = simulation->state().populations[static_cast<std::size_t>(pop)];
      const sim::PopulationSpec& ps = spec.populations[static_cast<std::size_t>(pop)];
      const Eigen::VectorXd& alpha = state.params[0].second;
      const Eigen::VectorXd& theta = state.params[1].second;
      const agents::WeightMatrix weights = pop == 2
                                               ? agents::build_network(test::herd_params(ps).network, theta,
                                                                       pop, sim::CounterRng(spec.run.seed))
                                               : agents::WeightMatrix();
      int herding = 0;  // decisions with w strictly inside (0.01, 0.99)
      for (int k = 1; k < 10; ++k) {
        const auto step = static_cast<std::size_t>(k);
        const double growth = rule.growth(k), projection = rule.growth(k - 1) / growth;
        const double growth_left =
            std::exp(theory::Schedule(market, T - k, rule.time()).ln_terminal_growth());
        for (int p = 0; p < 3; ++p) {
          for (int i = 0; i < state.count; ++i) {
            double m = 0.0;
            if (pop == 1) {
              m = run.amount[step - 1][0](0, p) * projection;
            } else {
              for (agents::WeightMatrix::InnerIterator it(weights, i); it; ++it)
                m += it.value() / theta[i] * run.amount[step - 1][2](it.col(), p);
              m *= projection;
            }
            const double x = run.wealth[step][static_cast<std::size_t>(pop)](i, p);
            const double eta = std::exp(-alpha[i] * x * growth_left - v * v * (T - k) / (2.0 * s2));
            const double g = std::pow(growth, 2.0 - test::herd_params(ps).rho);
            const double w =
                theta[i] == 0.0 ? 1.0 : eta * alpha[i] * s2 * g / (eta * alpha[i] * s2 * g + theta[i]);
            herding += w > 0.01 && w < 0.99 ? 1 : 0;
            const double expected = w * theory::merton_amount(rule, alpha[i], k) + (1.0 - w) * m;
            CAPTURE(pop);
            CAPTURE(k);
            CAPTURE(i);
            CHECK(run.amount[step][static_cast<std::size_t>(pop)](i, p) ==
                  doctest::Approx(expected).epsilon(1e-12));
          }
        }
      }
      CAPTURE(pop);
      CHECK(herding > 20);  // the test sees the blend, not only its two ends
    }
  }

  TEST_CASE(
      "relative adaptive rule: theta = 0 plays Merton, overwhelming theta copies the leader's changes") {
    for (const double theta : {0.0, 1e6}) {
      sim::ScenarioSpec spec = test::paper_spec(2, agents::Policy::adaptive);
      auto& f = spec.populations[1];
      test::herd_params(f).herd = agents::HerdType::relative;
      f.count = 3;
      test::herd_params(f).theta = test::constant(theta);
      const auto run = run_with_threads(spec, 1);
      const auto simulation = agents::make_simulation(spec);
      const Eigen::VectorXd& alpha = simulation->state().populations[1].params[0].second;
      const theory::Schedule s(theory::Market{}, 10.0, theory::TimeModel::annual());
      CAPTURE(theta);
      for (int k = 0; k < 10; ++k) {
        const auto step = static_cast<std::size_t>(k);
        const double leader_change = run.amount[step][0](0, 0) - run.amount[0][0](0, 0);
        for (int i = 0; i < 3; ++i) {
          const double own = theory::merton_amount(s, alpha[i], k);
          // P_k = P_0 + (L_k - L_0) when the agent only imitates changes (w ~ 0).
          const double expected = theta < 1.0 ? own : theory::merton_amount(s, alpha[i], 0) + leader_change;
          CHECK(run.amount[step][1](i, 0) == doctest::Approx(expected).epsilon(1e-9));
        }
      }
    }
  }

  TEST_CASE("a kind's run state lives in RunState, where observers read it") {
    // The relative adaptive rule keeps what each agent saw last step (the leader's decision) as kind
    // state `seen_before`, count x paths; nothing of it is left in the population object.
    sim::ScenarioSpec spec = test::paper_spec(2, agents::Policy::adaptive);
    auto& f = spec.populations[1];
    test::herd_params(f).herd = agents::HerdType::relative;
    f.count = 3;
    test::herd_params(f).theta = test::constant(1e-8);
    struct SeenObserver final : sim::Observer {
      std::vector<Eigen::MatrixXd> seen, leader;  // [step]
      void on_start(const sim::RunState& s) override {
        REQUIRE(s.populations[0].kind_state.empty());  // a merton plan keeps no state
        REQUIRE(s.populations[1].find_kind_state("seen_before") != nullptr);
      }
      void on_step(int /*k*/, const sim::RunState& s) override {
        seen.push_back(*s.populations[1].find_kind_state("seen_before"));
        leader.push_back(s.populations[0].amount);
      }
      void on_finish(const sim::RunState& /*s*/) override {}
    } observer;
    auto simulation = agents::make_simulation(spec);
    simulation->add_observer(&observer);
    (void)simulation->run(sim::RunOptions{});
    REQUIRE(observer.seen.size() == 10);
    CHECK(observer.seen[0].rows() == 3);
    CHECK(observer.seen[0].cols() == 2);
    CHECK(observer.seen[0].isZero());  // the first decision sees nobody's
    for (std::size_t k = 1; k < observer.seen.size(); ++k) {
      for (int p = 0; p < 2; ++p) {
        for (int i = 0; i < 3; ++i) {
          CAPTURE(k);
          // What agent i saw at decision k: the leader's decision k - 1 on its path.
          CHECK(observer.seen[k](i, p) == doctest::Approx(observer.leader[k - 1](0, p)).epsilon(1e-14));
        }
      }
    }
  }

  TEST_CASE("cancellation stops the run between steps with Interrupted") {
    auto simulation = agents::make_simulation(test::paper_spec(2, agents::Policy::adaptive));
    std::atomic<bool> cancel{true};
    sim::RunOptions opt;
    opt.cancel = &cancel;
    CHECK_THROWS_AS((void)simulation->run(opt), sim::Interrupted);
  }
}
