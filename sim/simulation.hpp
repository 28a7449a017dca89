#pragma once
// The runtime: owns the state of one run and advances it through a declared sequence of phases,
// notifying observers after every step (or, on the fused path, after the steps their plans name). Parallel
// with oneTBB; every result is a pure function of the spec and the seed (counter-based RNG, each task writes
// only its own slots), so it is bitwise identical for any thread count.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sim/error.hpp"
#include "sim/fused_kernel.hpp"
#include "sim/market/market.hpp"
#include "sim/market/random.hpp"
#include "sim/observer.hpp"
#include "sim/population.hpp"
#include "sim/scenario_spec.hpp"

namespace herdsim::sim {

/// Raised when a run is cancelled (Ctrl-C) between steps.
class Interrupted : public Error {
 public:
  using Error::Error;
};

/// How to run (not part of the scenario: it never changes results).
struct RunOptions {
  int threads = 0;  ///< 0: all hardware threads
  /// Called after each step (or block of steps) on the calling thread: steps done, steps total.
  std::function<void(int, int)> progress;
  const std::atomic<bool>* cancel = nullptr;  ///< checked between steps
  /// Which build of the fused kernel advances plans (both give the same bits; tests and benchmarks choose).
  FusedKernel fused_kernel = FusedKernel::fastest;
  /// False: the step loop even where the fused kernel could run (same bits; tests compare the two).
  bool allow_fused = true;
};

/// Wall-clock time spent in one phase of the step loop.
struct PhaseTiming {
  std::string name;
  double seconds = 0.0;
};

/// What a finished run reports.
struct RunSummary {
  double seconds = 0.0;
  double agent_steps = 0.0;  ///< agents x paths x steps
  /// Advanced by the fused kernel (plans only, an exogenous market with one asset, and observers, if any,
  /// that declare the steps they read: the kernel runs between those steps).
  bool fused = false;
  std::vector<PhaseTiming> phases;
};

/// Builds the implementations of a spec's populations (agents::make_populations); it receives the
/// simulation's own copy of the spec, which outlives the populations that keep references into it.
using PopulationFactory = std::function<std::vector<std::unique_ptr<Population>>(const ScenarioSpec&)>;

class Simulation {
 public:
  /// make(spec)[i] implements spec.populations[i].
  Simulation(ScenarioSpec spec, const PopulationFactory& make);
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;

  /// Observers are notified in the order added; not owned.
  void add_observer(Observer* observer) { observers_.push_back(observer); }
  /// An agent split (docs/cluster.md): how the market and the populations reach the other ranks' blocks
  /// of the split populations (PopulationSpec::agents_total) every step; not owned. Call before run().
  void set_agent_exchange(AgentExchange* exchange);
  /// Runs all steps; throws Interrupted when cancelled. Call once.
  RunSummary run(const RunOptions& options = {});

  /// The whole state: what the step loop holds after the steps run so far (before the run: X_0, amounts
  /// zero). The amounts of plans a fused run did not write (no observer reads amounts) are filled in
  /// here, once, from the plans: the first call after such a run writes 2 x count x paths doubles each.
  [[nodiscard]] const RunState& state();
  /// state() as it stands, without filling anything in: the amount and previous_amount of a
  /// path-independent population may be empty (0 x 0) until the step loop, an observer that reads amounts
  /// or state() needs them. For readers of anything else (shapes, wealth, accounting).
  [[nodiscard]] const RunState& state_without_amounts() const { return state_; }
  /// Warnings about the scenario found while setting it up (the price-impact stability condition of
  /// docs/theory.md §7.2, sim::impact_stability_warning), one line each; the run goes on regardless.
  [[nodiscard]] const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  [[nodiscard]] DecisionContext context(int k) const;
  void prepare(int k);
  void decide(int k);
  void move_market(int k);
  void settle(int k);
  void run_fused(const RunOptions& options, RunSummary& summary);
  /// Allocates the amounts left empty (path-independent populations) with the values the step loop holds
  /// after steps_done_ steps: amount P_{k-1}, previous_amount P_{k-2}, zero before the first decision.
  void fill_deferred_amounts();
  /// Throws Error naming population i, step k and path p, whose wealth became inf or NaN (by_end: some
  /// time up to step k, for the fused kernel, which checks once per segment).
  [[noreturn]] void throw_non_finite(std::size_t i, int k, int p, bool by_end) const;
  /// After the fused kernel's segment [first, last): the market's excess returns (steps x paths) and the
  /// plans of those steps, and the wealth it left.
  void check_finite_after_fused(const Eigen::MatrixXd& excess, int first, int last) const;

  /// The step loop, as data: adding a phase edits this list.
  struct Phase {
    const char* name;
    void (Simulation::*run)(int k);
  };
  static constexpr Phase phases_[] = {
      {"prepare", &Simulation::prepare},  // serial: P_k becomes P_{k-1}; batched inference
      {"decide", &Simulation::decide},
      {"market", &Simulation::move_market},  // market_: S_k -> S_{k+1}, settlement coefficients
      {"settle", &Simulation::settle},       // X <- X G + sum_a P_a e_a
  };

  ScenarioSpec spec_;
  std::vector<std::unique_ptr<Population>> populations_;
  std::vector<Observer*> observers_;
  RunState state_;
  CounterRng rng_;
  std::unique_ptr<Market> market_;  ///< moves state_.market; settlement's coefficients
  /// Per population: its plan in compact form (built once, for path-independent populations).
  std::vector<CompactPlan> compact_plans_;
  int steps_done_ = 0;  ///< steps advanced so far (the step loop or the fused kernel)
  std::vector<std::string> warnings_;
};

}  // namespace herdsim::sim
