#include <doctest/doctest.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "sim/fused_kernel.hpp"
#include "sim/market/market_step.hpp"
#include "sim/market/random.hpp"
#include "sim/simd.hpp"

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

/// The step loop's arithmetic, one slot at a time (settle_wealth), and the decisions it leaves.
void advance_by_steps(const Eigen::MatrixXd& plan, const Eigen::MatrixXd& excess, double growth,
                      sim::PopulationState& pop) {
  const auto n = plan.cols();
  for (Eigen::Index p = 0; p < excess.cols(); ++p) {
    for (int i = 0; i < pop.count; ++i) {
      double x = pop.wealth(i, p);
      for (Eigen::Index k = 0; k < n; ++k) x = sim::settle_wealth(x, plan(i, k), growth, excess(k, p));
      pop.wealth(i, p) = x;
      pop.amount(i, p) = plan(i, n - 1);
      if (n > 1) pop.previous_amount(i, p) = plan(i, n - 2);
    }
  }
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
                  sim::PopulationState&);
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
      "every build ends in the step loop's state bit for bit: plan forms, odd shapes, 1 and 2 threads") {
#ifdef HERDSIM_FUSED_X86
    MESSAGE("comparing the x86 build (", sim::simd::has_avx2() ? "AVX2" : "SSE2", ") and the portable build");
#else
    MESSAGE("this build holds the portable kernel only (HERDSIM_SIMD=OFF or not x86-64)");
#endif
    const sim::CounterRng rng(2027);
    const std::vector<Build> kernels = builds();
    int cases = 0;
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
                tbb::task_arena(threads).execute([&] { build.advance(plan, compact, excess, growth, pop); });
                CHECK(same_bits(pop.wealth, expected.wealth));
                CHECK(same_bits(pop.amount, expected.amount));
                CHECK(same_bits(pop.previous_amount, expected.previous_amount));
                ++cases;
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
      sim::advance_plan(kernel, plan, compact, excess, 1.04, pop);
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
