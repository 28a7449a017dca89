#include "sim/analysis/theory_references.hpp"

#include "sim/theory/merton.hpp"

namespace herdsim::analysis {

void add_theory_references(PopulationInput& input, const PopulationTheory& theory,
                           const Eigen::VectorXd& leader_alpha, std::vector<std::string>& notes) {
  const int m = input.agents;
  const int n = theory.steps.steps();
  const double dt = theory.steps.step_years();
  if (input.alpha.size() == m && input.wealth0.size() == m) {
    // The plan's CE in the arithmetic market of the simulated steps, whatever its own time model.
    input.ce_theory.resize(m);
    for (int i = 0; i < m; ++i)
      input.ce_theory[i] = plan_certainty_equivalent(theory.steps, input.theory.row(i).transpose(),
                                                     input.wealth0[i], input.alpha[i]);
    input.ce_exact = theory.ce_exact;
  }
  if (!theory.own_plan || input.alpha.size() != m) return;
  input.merton = theory::merton_amounts(*theory.own_plan, input.alpha, n, dt);
  input.opinion = theory.absolute;
  if (theory.reference == HerdReference::leader) {
    if (leader_alpha.size() == m && theory.leader_plan) {
      input.reference = HerdReference::leader;
      input.leader = theory::merton_amounts(*theory.leader_plan, leader_alpha, n, dt);
    }
  } else if (theory.reference == HerdReference::population_mean) {
    input.reference = HerdReference::population_mean;
    notes.emplace_back(
        "peers: h and w(t) use the mean decision of the population's recorded agents as Pbar (a mean-field "
        "stand-in for each agent's network neighbours)");
  }
  if (!input.opinion) notes.emplace_back("relative herding: w(t) is defined for absolute herding only");
}

}  // namespace herdsim::analysis
