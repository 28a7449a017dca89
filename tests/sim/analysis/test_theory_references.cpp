#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "sim/analysis/theory_references.hpp"
#include "sim/theory/merton.hpp"

using namespace herdsim::analysis;
using herdsim::theory::Schedule;
using herdsim::theory::TimeModel;

namespace {

const herdsim::theory::Market kMarket{0.07, 0.04, 0.17};

PopulationInput input_of(int m, int n) {
  PopulationInput in;
  in.agents = m;
  in.alpha = Eigen::VectorXd::LinSpaced(m, 0.1, 0.4);
  in.wealth0 = Eigen::VectorXd::Constant(m, 10.0);
  in.theory = Eigen::MatrixXd::Constant(m, n, 2.0);
  return in;
}

}  // namespace

TEST_SUITE("analysis.theory_references") {
  TEST_CASE("the plan's CE per agent; no herding reference for a population without one") {
    const Schedule steps(kMarket, 5.0, TimeModel::discrete(2));
    PopulationInput in = input_of(3, 10);
    PopulationTheory theory(steps);
    theory.ce_exact = false;
    std::vector<std::string> notes;
    add_theory_references(in, theory, {}, notes);
    REQUIRE(in.ce_theory.size() == 3);
    CHECK(in.ce_theory[1] ==
          plan_certainty_equivalent(steps, in.theory.row(1).transpose(), 10.0, in.alpha[1]));
    CHECK_FALSE(in.ce_exact);
    CHECK(in.reference == HerdReference::none);
    CHECK(in.merton.size() == 0);
    CHECK(notes.empty());
  }

  TEST_CASE("leader: own and leader Merton plans on their time models, at the simulated steps") {
    const Schedule steps(kMarket, 5.0, TimeModel::discrete(2));
    PopulationInput in = input_of(3, 10);
    PopulationTheory theory(steps);
    theory.own_plan.emplace(kMarket, 5.0, TimeModel::continuous());
    theory.absolute = true;
    theory.reference = HerdReference::leader;
    theory.leader_plan.emplace(kMarket, 5.0, TimeModel::discrete(2));
    const Eigen::VectorXd leader_alpha = Eigen::VectorXd::Constant(3, 0.2);
    std::vector<std::string> notes;
    add_theory_references(in, theory, leader_alpha, notes);
    CHECK(in.reference == HerdReference::leader);
    CHECK(in.opinion);
    CHECK(in.merton == herdsim::theory::merton_amounts(*theory.own_plan, in.alpha, 10, 0.5));
    CHECK(in.leader == herdsim::theory::merton_amounts(steps, leader_alpha, 10, 0.5));
    CHECK(notes.empty());
    SUBCASE("a leader missing from the scenario leaves no reference") {
      PopulationInput again = input_of(3, 10);
      theory.leader_plan.reset();
      add_theory_references(again, theory, leader_alpha, notes);
      CHECK(again.reference == HerdReference::none);
      CHECK(again.merton.size() > 0);
    }
  }

  TEST_CASE("peers under relative herding: the population mean, and notes on both") {
    const Schedule steps(kMarket, 5.0, TimeModel::discrete(2));
    PopulationInput in = input_of(3, 10);
    PopulationTheory theory(steps);
    theory.own_plan.emplace(steps);
    theory.reference = HerdReference::population_mean;
    std::vector<std::string> notes;
    add_theory_references(in, theory, {}, notes);
    CHECK(in.reference == HerdReference::population_mean);
    CHECK_FALSE(in.opinion);
    REQUIRE(notes.size() == 2);
    CHECK(notes[0].rfind("peers:", 0) == 0);
    CHECK(notes[1].rfind("relative herding:", 0) == 0);
  }
}
