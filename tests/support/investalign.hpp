#pragma once
// The InvestAlign worked example shared by the prompt and reference-answerer tests: the investor of the
// `herdsim theory` default (docs/theory.md §3.2) and the advisor's ten quoted proportions.
#include <vector>

#include "sim/investalign/prompt.hpp"

namespace herdsim::test {

/// The worked example's investor: lottery probability 0.9 (α from it), dependence score 10 (θ = 1e-7),
/// budget 10.
inline investalign::InvestorProfile worked_example() {
  investalign::InvestorProfile p;
  p.lottery_prob = 0.9;
  p.alpha = 0.76611910840262;
  p.score = 10;
  p.theta = 1e-7;
  p.budget = 10;
  return p;
}

/// The advisor's proportions of the worked example, one per year (T = 10).
inline std::vector<double> worked_example_advisor() {
  return {0.3621, 0.3559, 0.3496, 0.3434, 0.3373, 0.3313, 0.3253, 0.3192, 0.3134, 0.3075};
}

}  // namespace herdsim::test
