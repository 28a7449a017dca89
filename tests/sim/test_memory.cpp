#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "sim/error.hpp"
#include "sim/memory.hpp"
#include "sim/scenario_spec.hpp"
#include "sim/theory/absolute_herd.hpp"
#include "sim/theory/root.hpp"
#include "sim/theory/schedule.hpp"

using namespace herdsim;

TEST_SUITE("sim.memory") {
  TEST_CASE("checked_multiply: products up to the limit, InputError past it or for a negative factor") {
    CHECK(sim::checked_multiply(3, 4, "x") == 12);
    CHECK(sim::checked_multiply(0, std::numeric_limits<std::int64_t>::max(), "x") == 0);
    CHECK(sim::checked_multiply(2147483647, 2147483647, "x") == std::int64_t{2147483647} * 2147483647);
    CHECK_THROWS_AS(
        (void)sim::checked_multiply(std::int64_t{1} << 32, std::int64_t{1} << 31, "paths * agents"),
        InputError);
    CHECK_THROWS_WITH_AS((void)sim::checked_multiply(10, 20, "rows", 100),
                         doctest::Contains("rows = 10 * 20"), InputError);
    CHECK_THROWS_AS((void)sim::checked_multiply(-1, 2, "x"), InputError);
  }

  TEST_CASE("whole_steps: horizon * steps_per_year must be whole and fit an int") {
    CHECK(sim::whole_steps(10.0, 12) == 120);
    CHECK(sim::whole_steps(0.5, 2) == 1);
    // 10 * 214748365 = 2147483650 > 2^31 - 1: used to wrap to a negative step count (no rows, exit 0).
    CHECK_THROWS_WITH_AS((void)sim::whole_steps(10.0, 214748365), doctest::Contains("exceeds the limit"),
                         InputError);
    CHECK_THROWS_WITH_AS((void)sim::whole_steps(0.3, 1), doctest::Contains("whole number"), InputError);
    CHECK_THROWS_AS((void)sim::whole_steps(1.0, 0), InputError);
    CHECK_THROWS_AS((void)sim::whole_steps(std::numeric_limits<double>::infinity(), 1), InputError);
    // The theory library's discrete schedules use the same rule.
    CHECK_THROWS_AS(theory::Schedule({}, 10.0, theory::TimeModel::discrete(214748365)), InputError);
  }

  TEST_CASE("check_threads: 0 or 1..kMaxThreads") {
    CHECK_NOTHROW(sim::check_threads(0, "--threads"));
    CHECK_NOTHROW(sim::check_threads(sim::kMaxThreads, "--threads"));
    CHECK_THROWS_WITH_AS(sim::check_threads(1073741824, "--threads"),
                         doctest::Contains("--threads 1073741824"), InputError);
    CHECK_THROWS_AS(sim::check_threads(-1, "--threads"), InputError);
  }

  TEST_CASE("run_memory_bytes counts state and plans; check_memory refuses with both figures") {
    sim::ScenarioSpec spec;
    spec.run.paths = 100;
    spec.run.horizon = 10.0;
    spec.run.steps_per_year = 12;
    sim::PopulationSpec ps;
    ps.name = "crowd";
    ps.count = 1000;
    spec.populations.push_back(ps);
    const double bytes = sim::run_memory_bytes(spec);
    CHECK(bytes >= 8.0 * 3 * 1000 * 100);  // wealth, amount, previous amount
    CHECK(bytes < 8.0 * 10 * 1000 * 100);
    CHECK_NOTHROW(sim::check_memory(bytes, "this run", "", static_cast<std::uint64_t>(bytes) + 1));
    CHECK_THROWS_WITH_AS(
        sim::check_memory(bytes, "this run", "--memory-limit GIB raises the limit", 1024),
        doctest::Contains("more than the 1.0 KiB allowed (--memory-limit GIB raises the limit)"), InputError);
    // The largest counts a scenario can hold: an estimate (no overflow) far above any machine's memory.
    spec.populations[0].count = 2147483647;
    spec.run.paths = 2147483647;
    const double huge = sim::run_memory_bytes(spec);
    CHECK(huge > 1e20);
    CHECK_THROWS_WITH_AS(sim::check_memory(huge, "this run", ""), doctest::Contains("needs about"),
                         InputError);
  }
}

TEST_SUITE("theory.root") {
  TEST_CASE("find_root_bracketed: a bracket that is not finite is reported as not converged") {
    const auto f = [](double x) { return x; };
    CHECK_FALSE(
        theory::find_root_bracketed(f, std::numeric_limits<double>::quiet_NaN(), 1.0, -1.0, 1.0).converged);
    CHECK_FALSE(
        theory::find_root_bracketed(f, -1.0, std::numeric_limits<double>::infinity(), -1.0, 1.0).converged);
    CHECK(theory::find_root_bracketed(f, -1.0, 2.0, -1.0, 2.0).converged);
  }

  TEST_CASE(
      "solver failures at extreme alphas are SolverErrors naming the parameters, not Boost's exceptions") {
    // Both used to escape as boost::wrapexcept<std::domain_error> ("do not bracket the root").
    theory::HerdProblem hp;
    hp.theta = 1e-7;
    hp.alpha = 1e300;
    CHECK_THROWS_WITH_AS((void)theory::solve_absolute_herd(hp), doctest::Contains("alpha=1e+300"),
                         SolverError);
    hp.alpha = 0.7661191084026204;
    hp.alpha_leader = 1e-300;
    CHECK_THROWS_WITH_AS((void)theory::solve_absolute_herd(hp), doctest::Contains("leader alpha=1e-300"),
                         SolverError);
    hp.time = theory::TimeModel::discrete(1);
    CHECK_THROWS_AS((void)theory::solve_absolute_herd(hp), SolverError);
  }
}
