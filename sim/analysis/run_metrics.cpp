#include "sim/analysis/run_metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "sim/analysis/metric_accumulators.hpp"
#include "sim/analysis/summary_stats.hpp"
#include "sim/error.hpp"
#include "sim/theory/merton.hpp"

namespace herdsim::analysis {

namespace {

/// Bytes of per-(agent, path) state analyse_population holds: four rows (wealth and decisions, this
/// and the previous), the investor metrics' six accumulators and the ruin flags.
constexpr std::size_t kBytesPerAgentPath = 11 * sizeof(double);

}  // namespace

Distribution describe(std::vector<double> values) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double x) { return !std::isfinite(x); }),
               values.end());
  Distribution d;
  d.count = static_cast<long long>(values.size());
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  double sum = 0.0;
  for (double x : values) sum += x;
  d.mean = sum / static_cast<double>(values.size());
  if (values.size() > 1) {
    double ss = 0.0;
    for (double x : values) ss += (x - d.mean) * (x - d.mean);
    d.std = std::sqrt(ss / static_cast<double>(values.size() - 1));
  }
  const auto sorted = [&](std::size_t rank) { return values[rank]; };
  d.q05 = interpolated_quantile(0.05, values.size(), sorted);
  d.median = interpolated_quantile(0.5, values.size(), sorted);
  d.q95 = interpolated_quantile(0.95, values.size(), sorted);
  return d;
}

double plan_certainty_equivalent(const theory::Schedule& steps, const Eigen::VectorXd& plan, double x0,
                                 double alpha) {
  if (!steps.time().is_discrete())
    throw InputError("plan_certainty_equivalent: the plan's CE is defined on the discrete step market");
  const double dt = steps.step_years();
  const auto path = [&](double t) { return plan[static_cast<Eigen::Index>(std::lround(t / dt))]; };
  const theory::WealthMoments m =
      theory::wealth_moments(steps, x0, path, static_cast<double>(plan.size()) * dt);
  return m.mean - 0.5 * alpha * m.variance;
}

int nearest_decision_row(const std::vector<int>& decision_steps, double dt, double t_years) {
  int best = 0;
  for (std::size_t d = 1; d < decision_steps.size(); ++d)
    if (std::abs(decision_steps[d] * dt - t_years) <
        std::abs(decision_steps[static_cast<std::size_t>(best)] * dt - t_years))
      best = static_cast<int>(d);
  return best;
}

int agents_within_budget(int recorded_agents, int paths, std::size_t memory_budget_bytes) {
  const std::size_t per_agent =
      std::max<std::size_t>(1, static_cast<std::size_t>(paths) * kBytesPerAgentPath);
  return static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(recorded_agents),
                                                std::max<std::size_t>(2, memory_budget_bytes / per_agent)));
}

PopulationMetrics analyse_population(const PopulationInput& in, RowSource& rows) {
  const int m = in.agents;
  const int paths = in.paths;
  const int n_wealth = static_cast<int>(in.wealth_steps.size());
  const int n_decision = static_cast<int>(in.decision_steps.size());
  if (n_wealth < 1 || n_decision >= n_wealth)
    throw InputError(
        fmt::format("analysis needs wealth rows after the decisions ({} wealth rows, {} decision rows)",
                    n_wealth, n_decision));
  for (int d = 0; d < n_decision; ++d)
    if (in.decision_steps[static_cast<std::size_t>(d)] != in.wealth_steps[static_cast<std::size_t>(d)])
      throw InputError("decision rows must coincide with the first wealth rows (schema v1 row selection)");

  const bool has_theory = in.theory.size() > 0;
  const bool has_reference =
      has_theory && in.reference != HerdReference::none && in.merton.rows() == m && in.merton.size() > 0;
  const bool has_ce = has_theory && in.alpha.size() == m && in.ce_theory.size() == m;
  std::optional<DecisionErrorAccumulator> decision_error;
  if (has_theory) decision_error.emplace(in.theory, n_decision, m);
  std::optional<HerdingDistanceAccumulator> herding_distance;
  std::optional<OpinionAccumulator> opinion;
  if (has_reference) {
    herding_distance.emplace(in);
    if (in.opinion) opinion.emplace(in, n_decision);
  }
  LsvAccumulator lsv(in);
  PeriodReturns returns(m, paths);
  DispersionAccumulator dispersion(paths, n_wealth - 1);
  InvestorAccumulator investor(m, paths);

  Eigen::MatrixXd wealth, prev_wealth, amount, prev_amount;
  for (int s = 0; s < n_wealth; ++s) {
    rows.wealth_row(s, wealth);
    if (wealth.rows() != m || wealth.cols() != paths)
      throw InputError(fmt::format("wealth row {} is {} x {}, expected {} x {}", s, wealth.rows(),
                                   wealth.cols(), m, paths));
    if (s < n_decision) {
      rows.amount_row(s, amount);
      if (amount.rows() != m || amount.cols() != paths)
        throw InputError(fmt::format("decision row {} has the wrong shape", s));
      const auto su = static_cast<std::size_t>(s);
      const DecisionRow row{s,
                            in.decision_steps[su],
                            amount,
                            wealth,
                            prev_amount,
                            prev_wealth,
                            s >= 1 ? in.decision_steps[su - 1] : -1};
      if (decision_error) decision_error->add(row);
      if (has_reference) {
        const ReferenceRow reference(in, row);
        herding_distance->add(row, reference);
        if (opinion) opinion->add(row, reference);
      }
      lsv.add(row);
      std::swap(prev_amount, amount);
    }
    if (s == 0) {
      returns.start(wealth);
      investor.start(wealth);
    } else {
      const int len =
          in.wealth_steps[static_cast<std::size_t>(s)] - in.wealth_steps[static_cast<std::size_t>(s - 1)];
      const double risk_free = std::pow(1.0 + in.r * in.dt, len) - 1.0;
      for (int p = 0; p < paths; ++p) {
        const std::vector<AgentReturn>& period = returns.on_path(p, prev_wealth, wealth);
        investor.add(p, period, wealth, risk_free);
        dispersion.add(p, s - 1, period);
      }
    }
    std::swap(prev_wealth, wealth);
  }
  // prev_wealth now holds the final row (step n).
  const Eigen::MatrixXd& final_wealth = prev_wealth;

  // Finished in a fixed order: the notes read in it.
  PopulationMetrics out;
  if (decision_error)
    out.decision_error = decision_error->finish(out.notes);
  else
    out.notes.emplace_back("no theoretical plan for this population: no decision error, CE gap, h or w(t)");
  if (has_ce) out.certainty_equivalent = estimate_certainty_equivalent(in, final_wealth, out.notes);
  if (herding_distance) out.herding_distance = herding_distance->finish();
  if (opinion) out.opinion = opinion->finish();
  if (m < 2) {
    out.notes.emplace_back("one agent: the herding tests across agents (LSV, CSSD, CSAD) need at least two");
  } else {
    out.lsv = lsv.finish(out.notes);
    out.dispersion = dispersion.finish(in, out.notes);
  }
  const double periods_per_year =
      n_wealth >= 2 ? 1.0 / ((in.wealth_steps[1] - in.wealth_steps[0]) * in.dt) : kNaN;
  out.investor = investor.finish(final_wealth, in.wealth0, returns, periods_per_year, out.notes);
  return out;
}

}  // namespace herdsim::analysis
