#include <doctest/doctest.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "agents/registry.hpp"
#include "sim/fused_kernel.hpp"
#include "sim/market/market_step.hpp"
#include "sim/market/random.hpp"
#include "sim/simd.hpp"
#include "sim/simulation.hpp"
#include "support/specs.hpp"

using namespace herdsim;

namespace {

/// Same shape and the same bits (so -0.0 differs from 0.0, and a NaN equals the same NaN).
bool same_bits(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(double)) == 0;
}

/// The three forms in which the kernel reads a plan.
enum class PlanForm { full, periodic, gathered };

const char* form_name(PlanForm form) {
  return form == PlanForm::full ? "full" : form == PlanForm::periodic ? "periodic" : "gathered";
}

/// A count x n plan of the given form: distinct random rows (full), `rows` random rows cycled (periodic),
/// or `rows` random rows assigned at random (a compact plan without a short period: gathered).
Eigen::MatrixXd make_plan(PlanForm form, int count, int n, int rows, const sim::CounterRng& rng) {
  const auto draw = [&](std::uint64_t row, int k) {
    const double u = rng.uniform(sim::Stream::parameters, row, static_cast<std::uint64_t>(k), 0);
    return u < 0.02 ? -0.0 : 40.0 * u - 8.0;  // short positions and a signed zero too
  };
  Eigen::MatrixXd plan(count, n);
  for (int i = 0; i < count; ++i) {
    std::uint64_t row = static_cast<std::uint64_t>(i);
    if (form == PlanForm::periodic) row = static_cast<std::uint64_t>(i % rows);
    if (form == PlanForm::gathered)
      row = rng.bits(sim::Stream::noise, static_cast<std::uint64_t>(i), 0, 0) % rows;
    for (int k = 0; k < n; ++k) plan(i, k) = draw(row, k);
  }
  return plan;
}

/// The step loop's arithmetic, one slot at a time (settle_wealth), through steps 0..last-1 (all of
/// them: last < 0), and the decisions it leaves.
void advance_by_steps(const Eigen::MatrixXd& plan, const Eigen::MatrixXd& excess, double growth,
                      sim::PopulationState& pop, Eigen::Index last = -1) {
  const auto n = last < 0 ? plan.cols() : last;
  for (Eigen::Index p = 0; p < excess.cols(); ++p) {
    for (int i = 0; i < pop.count; ++i) {
      double x = pop.wealth(i, p);
      for (Eigen::Index k = 0; k < n; ++k) x = sim::settle_wealth(x, plan(i, k), growth, excess(k, p));
      pop.wealth(i, p) = x;
      if (n > 0) pop.amount(i, p) = plan(i, n - 1);
      if (n > 1) pop.previous_amount(i, p) = plan(i, n - 2);
    }
  }
}

/// The segments a run of n steps is cut into at `cuts` (steps after which someone looks), in order.
std::vector<sim::StepRange> segments(int n, std::vector<int> cuts) {
  cuts.push_back(n);
  std::sort(cuts.begin(), cuts.end());
  std::vector<sim::StepRange> out;
  int first = 0;
  for (const int last : cuts) {
    if (last <= first || last > n) continue;
    out.push_back({first, last});
    first = last;
  }
  return out;
}

sim::PopulationState initial_state(int count, int paths, const sim::CounterRng& rng) {
  sim::PopulationState pop;
  pop.count = count;
  pop.wealth.resize(count, paths);
  for (int p = 0; p < paths; ++p) {
    for (int i = 0; i < count; ++i)
      pop.wealth(i, p) = 5.0 + 45.0 * rng.uniform(sim::Stream::parameters, 1000 + p, i, 1);
  }
  pop.amount = Eigen::MatrixXd::Constant(count, paths, 7.0);  // n = 1 leaves previous_amount as it was
  pop.previous_amount = Eigen::MatrixXd::Constant(count, paths, -3.0);
  return pop;
}

struct Build {
  std::string name;
  void (*advance)(const Eigen::MatrixXd&, const sim::CompactPlan&, const Eigen::MatrixXd&, double,
                  sim::StepRange, sim::PopulationState&);
};

/// Every build of the kernel this binary holds.
std::vector<Build> builds() {
  std::vector<Build> out;
#ifdef HERDSIM_FUSED_X86
  out.push_back({sim::simd::has_avx2() ? "x86 (AVX2)" : "x86 (SSE2)", &sim::fused_x86::advance_plan});
#endif
  out.push_back({"portable", &sim::fused_portable::advance_plan});
  return out;
}

}  // namespace

TEST_SUITE("sim.fused_kernel") {
  TEST_CASE(
      "every build ends in the step loop's state bit for bit: plan forms, odd shapes, 1 and 2 threads, "
      "ranges") {
#ifdef HERDSIM_FUSED_X86
    MESSAGE("comparing the x86 build (", sim::simd::has_avx2() ? "AVX2" : "SSE2", ") and the portable build");
#else
    MESSAGE("this build holds the portable kernel only (HERDSIM_SIMD=OFF or not x86-64)");
#endif
    const sim::CounterRng rng(2027);
    const std::vector<Build> kernels = builds();
    int cases = 0;
    int ranges = 0;
    int forms_seen[3] = {0, 0, 0};
    // Counts that leave partial 16- and 32-agent chunks, partial tiles and partial tasks; step counts
    // from one (no previous decision to leave) to 30 (64-agent tiles); paths cut into tasks unevenly.
    for (const int count : {1, 3, 37, 4099, 9001}) {
      for (const int n : {1, 2, 7, 30}) {
        for (const int paths : {1, 3, 17}) {
          for (const PlanForm form : {PlanForm::full, PlanForm::periodic, PlanForm::gathered}) {
            // Periodic: 9 rows (a 9-point grid); gathered: 40 rows, at most a quarter of the agents.
            const int rows = form == PlanForm::periodic ? 9 : 40;
            if (form != PlanForm::full && count < 4 * rows) continue;
            const Eigen::MatrixXd plan = make_plan(form, count, n, rows, rng);
            const sim::CompactPlan compact = sim::compact_plan(plan);
            // The form the kernel will take: full (no compact plan), periodic (a table), gathered.
            const PlanForm taken = compact.row_of.empty() ? PlanForm::full
                                   : compact.period > 0   ? PlanForm::periodic
                                                          : PlanForm::gathered;
            REQUIRE(taken == form);
            ++forms_seen[static_cast<int>(form)];
            Eigen::MatrixXd excess(n, paths);
            for (int p = 0; p < paths; ++p) {
              for (int k = 0; k < n; ++k)
                excess(k, p) = 0.03 + 0.17 * rng.normal(sim::Stream::market, p, k, 0);
            }
            const double growth = n % 2 == 0 ? 1.04 : std::exp(0.04 / 3.0);
            sim::PopulationState expected = initial_state(count, paths, rng);
            advance_by_steps(plan, excess, growth, expected);
            for (const Build& build : kernels) {
              for (const int threads : {1, 2}) {
                CAPTURE(build.name);
                CAPTURE(threads);
                CAPTURE(count);
                CAPTURE(n);
                CAPTURE(paths);
                const char* form_label = form_name(form);
                CAPTURE(form_label);
                sim::PopulationState pop = initial_state(count, paths, rng);
                tbb::task_arena(threads).execute([&] {
                  build.advance(plan, compact, excess, growth, {0, n}, pop);
                });
                CHECK(same_bits(pop.wealth, expected.wealth));
                CHECK(same_bits(pop.amount, expected.amount));
                CHECK(same_bits(pop.previous_amount, expected.previous_amount));
                ++cases;
              }
              // Ranges: the run cut after steps an observer reads (every step, a few, single steps at
              // either end, an empty range); after each range the state is the step loop's at that step.
              for (const std::vector<int>& cuts :
                   {std::vector<int>{1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                     16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29},
                    std::vector<int>{1, n / 2, n - 1}, std::vector<int>{n / 3, 2 * n / 3}}) {
                CAPTURE(build.name);
                CAPTURE(count);
                CAPTURE(n);
                CAPTURE(paths);
                CAPTURE(cuts.size());
                const char* form_label = form_name(form);
                CAPTURE(form_label);
                sim::PopulationState pop = initial_state(count, paths, rng);
                for (const sim::StepRange range : segments(n, cuts)) {
                  CAPTURE(range.first);
                  CAPTURE(range.last);
                  tbb::task_arena(2).execute(
                      [&] { build.advance(plan, compact, excess, growth, range, pop); });
                  build.advance(plan, compact, excess, growth, {range.last, range.last}, pop);  // nothing
                  sim::PopulationState at = initial_state(count, paths, rng);
                  if (range.last < n) advance_by_steps(plan, excess, growth, at, range.last);
                  const sim::PopulationState& want = range.last < n ? at : expected;
                  CHECK(same_bits(pop.wealth, want.wealth));
                  CHECK(same_bits(pop.amount, want.amount));
                  CHECK(same_bits(pop.previous_amount, want.previous_amount));
                  ++ranges;
                }
              }
            }
          }
        }
      }
    }
    CHECK(forms_seen[0] > 0);
    CHECK(forms_seen[1] > 0);
    CHECK(forms_seen[2] > 0);
    CHECK(cases > 100);
    CHECK(ranges > 1000);
  }

  TEST_CASE("every build gives the same bits on extreme values: overflow, underflow, infinities, NaN") {
    // IEEE products and sums of any width round alike, also at the edges; every NaN here is made by the
    // arithmetic (inf - inf, 0 * inf), so it is the host's default NaN whichever operand order a build
    // uses, and its bits must match too.
    constexpr double kMax = std::numeric_limits<double>::max();
    constexpr double kInf = std::numeric_limits<double>::infinity();
    constexpr double kTiny = std::numeric_limits<double>::denorm_min();
    constexpr double kMin = std::numeric_limits<double>::min();
    const std::vector<double> values = {0.0,    -0.0, kTiny, -kTiny, kMin,  -kMin, 1e-300, -1e-300, 1e300,
                                        -1e300, kMax, -kMax, kInf,   -kInf, 1.0,   -1.0,   3e-160,  7e200};
    const auto at = [&](std::size_t i) { return values[i % values.size()]; };
    const sim::CounterRng rng(77);
    const std::vector<Build> kernels = builds();
    bool nan_seen = false, inf_seen = false, subnormal_seen = false;
    for (const int count : {5, 61, 4103}) {  // a partial chunk, several partial chunks and tiles
      for (const int n : {1, 3, 9}) {
        const int paths = 4;
        Eigen::MatrixXd plan(count, n);
        for (int i = 0; i < count; ++i) {
          for (int k = 0; k < n; ++k) plan(i, k) = at(static_cast<std::size_t>(i * 7 + k * 3));
        }
        // Ordinary excess returns on path 0, extreme ones elsewhere; growths that overflow and underflow.
        Eigen::MatrixXd excess(n, paths);
        for (int p = 0; p < paths; ++p) {
          for (int k = 0; k < n; ++k)
            excess(k, p) = p == 0 ? 0.01 * rng.normal(sim::Stream::market, 0, k, 0)
                                  : at(static_cast<std::size_t>(5 * p + 11 * k));
        }
        for (const double growth : {1.04, 1e200, 1e-200, 0.0}) {
          sim::PopulationState expected;
          expected.count = count;
          expected.wealth.resize(count, paths);
          for (int p = 0; p < paths; ++p) {
            for (int i = 0; i < count; ++i) expected.wealth(i, p) = at(static_cast<std::size_t>(i + 13 * p));
          }
          expected.amount = Eigen::MatrixXd::Zero(count, paths);
          expected.previous_amount = Eigen::MatrixXd::Zero(count, paths);
          const sim::PopulationState initial = expected;
          advance_by_steps(plan, excess, growth, expected);
          nan_seen = nan_seen || expected.wealth.array().isNaN().any();
          inf_seen = inf_seen || expected.wealth.array().isInf().any();
          subnormal_seen = subnormal_seen ||
                           (expected.wealth.array().abs() < kMin && expected.wealth.array() != 0.0).any();
          const sim::CompactPlan compact = sim::compact_plan(plan);
          for (const Build& build : kernels) {
            CAPTURE(build.name);
            CAPTURE(count);
            CAPTURE(n);
            CAPTURE(growth);
            sim::PopulationState pop = initial;
            build.advance(plan, compact, excess, growth, {0, n}, pop);
            CHECK(same_bits(pop.wealth, expected.wealth));
            CHECK(same_bits(pop.amount, expected.amount));
            CHECK(same_bits(pop.previous_amount, expected.previous_amount));
          }
        }
      }
    }
    CHECK(nan_seen);  // the values reach every edge the test means to cover
    CHECK(inf_seen);
    CHECK(subnormal_seen);
  }

  TEST_CASE("whole engine runs: the x86 and the portable build leave the same bits") {
    // Followers on a 9-point grid (a periodic plan) and Merton investors with a distribution of alpha
    // (the full plan), counts that leave partial chunks; both wealth updates.
    for (const auto update : {sim::WealthUpdate::arithmetic, sim::WealthUpdate::lognormal}) {
      auto spec = test::paper_spec(9, agents::Policy::plan);
      spec.run.steps_per_year = 5;
      spec.run.wealth_update = update;
      spec.populations[1].count = 1001;
      auto spread = test::merton("spread", 333, 0.3);
      agents::params_of<agents::MertonParams>(spread).alpha.form = sim::ParamSpec::Form::distribution;
      agents::params_of<agents::MertonParams>(spread).alpha.distribution = {
          sim::DistributionSpec::Kind::uniform, 0.1, 0.9, 0.1, 0.9};
      spec.populations.push_back(spread);
      std::vector<std::unique_ptr<sim::Simulation>> runs;
      for (const auto kernel : {sim::FusedKernel::fastest, sim::FusedKernel::portable}) {
        runs.push_back(agents::make_simulation(spec));
        sim::RunOptions opt;
        opt.threads = 2;
        opt.fused_kernel = kernel;
        REQUIRE(runs.back()->run(opt).fused);
      }
      const auto& fast = runs[0]->state();
      const auto& portable = runs[1]->state();
      CAPTURE(update == sim::WealthUpdate::lognormal);
      CHECK(same_bits(fast.market.price, portable.market.price));
      for (std::size_t p = 0; p < spec.populations.size(); ++p) {
        CAPTURE(p);
        CHECK(same_bits(fast.populations[p].wealth, portable.populations[p].wealth));
        CHECK(same_bits(fast.populations[p].amount, portable.populations[p].amount));
        CHECK(same_bits(fast.populations[p].previous_amount, portable.populations[p].previous_amount));
      }
    }
  }

  TEST_CASE("advance_plan runs the build it is asked for") {
    const sim::CounterRng rng(5);
    const Eigen::MatrixXd plan = make_plan(PlanForm::periodic, 1000, 5, 9, rng);
    const sim::CompactPlan compact = sim::compact_plan(plan);
    Eigen::MatrixXd excess = Eigen::MatrixXd::Constant(5, 2, 0.01);
    sim::PopulationState expected = initial_state(1000, 2, rng);
    advance_by_steps(plan, excess, 1.04, expected);
    for (const auto kernel : {sim::FusedKernel::fastest, sim::FusedKernel::portable}) {
      sim::PopulationState pop = initial_state(1000, 2, rng);
      sim::advance_plan(kernel, plan, compact, excess, 1.04, {0, 5}, pop);
      CHECK(same_bits(pop.wealth, expected.wealth));
      CHECK(same_bits(pop.amount, expected.amount));
    }
  }

  TEST_CASE("compact_plan shares bitwise-equal rows and reproduces the plan exactly") {
    Eigen::MatrixXd plan(40, 3);
    for (int i = 0; i < 40; ++i) {
      for (int k = 0; k < 3; ++k) plan(i, k) = 1.0 + 0.1 * (i % 3) + k;
    }
    plan(39, 2) = -0.0;  // differs from +0.0 in its bits only: its own row
    plan(38, 2) = 0.0;
    const auto compact = sim::compact_plan(plan);
    REQUIRE(compact.row_of.size() == 40);
    CHECK(compact.rows.size() == 5 * 3);
    CHECK(compact.period == 40);  // the two last rows break the period 3
    for (int i = 0; i < 40; ++i) {
      for (int k = 0; k < 3; ++k) {
        const double v = compact.rows[std::size_t{compact.row_of[static_cast<std::size_t>(i)]} * 3 + k];
        CHECK(std::signbit(v) == std::signbit(plan(i, k)));
        CHECK(v == plan(i, k));
      }
    }
    Eigen::MatrixXd distinct(8, 2);
    for (int i = 0; i < 8; ++i) distinct.row(i) << i, -i;
    CHECK(sim::compact_plan(distinct).row_of.empty());  // more than a quarter of the agents
  }
}
