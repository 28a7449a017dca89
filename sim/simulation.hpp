#pragma once
// The runtime: owns the state of one run and advances it through a declared sequence of phases,
// notifying observers after every step. Parallel with oneTBB; every result is a pure function of
// the spec and the seed (counter-based RNG, each task writes only its own slots), so it is bitwise
// identical for any thread count.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sim/error.hpp"
#include "sim/market/market_step.hpp"
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
  bool fused = false;        ///< advanced by the fused kernel (no observers, path-independent decisions)
  std::vector<PhaseTiming> phases;
};

/// Builds the implementations of a spec's populations (agents::make_populations); it receives the
/// simulation's own copy of the spec, which outlives the populations that keep references into it.
using PopulationFactory = std::function<std::vector<std::unique_ptr<Population>>(const ScenarioSpec&)>;

/// A plan (PopulationState::theory_amount) in the compact form the fused kernel reads: the distinct
/// rows (one agent's n decisions each, steps contiguous) and each agent's row. Plans over a parameter
/// grid share a few rows, so the kernel reads 2 B per agent instead of 8 B per agent and step.
struct CompactPlan {
  std::vector<double> rows;           ///< distinct rows x steps, row-major, currency units
  std::vector<std::uint16_t> row_of;  ///< per agent: its row; empty when the plan does not compress
  /// When > 0, row_of[i] == row_of[i % period] for every agent (a parameter grid repeats with the
  /// grid's size), so any tile's plan is a window of one small periodic table: nothing per agent.
  int period = 0;
};

/// The compact form of a count x steps plan (bitwise equal rows are shared), or an empty CompactPlan
/// when the distinct rows are too many to stay in cache.
CompactPlan compact_plan(const Eigen::MatrixXd& plan);

class Simulation {
 public:
  /// make(spec)[i] implements spec.populations[i].
  Simulation(ScenarioSpec spec, const PopulationFactory& make);
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;

  /// Observers are notified in the order added; not owned.
  void add_observer(Observer* observer) { observers_.push_back(observer); }
  /// Runs all steps; throws Interrupted when cancelled. Call once.
  RunSummary run(const RunOptions& options = {});

  [[nodiscard]] const RunState& state() const { return state_; }

 private:
  [[nodiscard]] DecisionContext context(int k) const;
  void prepare(int k);
  void decide(int k);
  void move_market(int k);
  void settle(int k);
  void run_fused(const RunOptions& options, RunSummary& summary);
  /// Throws Error naming population i, step k and path p, whose wealth became inf or NaN (by_end: some
  /// time up to step k, for the fused kernel, which checks once).
  [[noreturn]] void throw_non_finite(std::size_t i, int k, int p, bool by_end) const;
  /// After the fused kernel: the market's excess returns (steps x paths), the plans and the final wealth.
  void check_finite_after_fused(const Eigen::MatrixXd& excess) const;

  /// The step loop, as data: adding a phase edits this list.
  struct Phase {
    const char* name;
    void (Simulation::*run)(int k);
  };
  static constexpr Phase phases_[] = {
      {"prepare", &Simulation::prepare},  // serial: P_k becomes P_{k-1}; batched inference
      {"decide", &Simulation::decide},
      {"market", &Simulation::move_market},
      {"settle", &Simulation::settle},
  };

  ScenarioSpec spec_;
  std::vector<std::unique_ptr<Population>> populations_;
  std::vector<Observer*> observers_;
  RunState state_;
  CounterRng rng_;
  StepCoefficients coefficients_;
  Eigen::VectorXd excess_;  ///< per path: excess return of the current step
  /// Per population: its plan in compact form (built once, for path-independent populations).
  std::vector<CompactPlan> compact_plans_;
};

}  // namespace herdsim::sim
