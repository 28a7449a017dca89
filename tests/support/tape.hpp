#pragma once
// A run's market, amounts and wealth at every step, copied by an observer, for tests that recompute the
// engine's arithmetic step by step (price impact, the price-driven agent kinds).
#include <Eigen/Core>
#include <vector>

#include "agents/registry.hpp"
#include "sim/observer.hpp"
#include "sim/simulation.hpp"

namespace herdsim::test {

/// The market and every population's amounts and wealth after each step (index 0: before the first).
struct Record {
  std::vector<sim::MarketState> market;
  std::vector<std::vector<Eigen::MatrixXd>> amount, wealth;  ///< amount[k]: P_k; wealth[s]: X_s
};

/// Copies the state into a Record after each step.
class Tape final : public sim::Observer {
 public:
  explicit Tape(Record& out) : out_(out) {}
  void on_start(const sim::RunState& state) override {
    out_.market.push_back(state.market);
    std::vector<Eigen::MatrixXd> w;
    for (const auto& pop : state.populations) w.push_back(pop.wealth);
    out_.wealth.push_back(w);
  }
  void on_step(int /*k*/, const sim::RunState& state) override {
    out_.market.push_back(state.market);
    std::vector<Eigen::MatrixXd> a, w;
    for (const auto& pop : state.populations) {
      a.push_back(pop.amount);
      w.push_back(pop.wealth);
    }
    out_.amount.push_back(a);
    out_.wealth.push_back(w);
  }
  void on_finish(const sim::RunState& /*state*/) override {}

 private:
  Record& out_;
};

/// Runs spec with `threads` threads (0: all) and records every step.
inline Record run(const sim::ScenarioSpec& spec, int threads = 0) {
  Record out;
  Tape tape(out);
  auto simulation = agents::make_simulation(spec);
  simulation->add_observer(&tape);
  sim::RunOptions options;
  options.threads = threads;
  (void)simulation->run(options);
  return out;
}

}  // namespace herdsim::test
