#include "sim/analysis/counterfactual.hpp"

#include <fmt/format.h>

#include <boost/math/distributions/normal.hpp>
#include <cmath>
#include <utility>

namespace herdsim::analysis {

CounterfactualRows::CounterfactualRows(Eigen::VectorXd wealth0, Eigen::MatrixXd merton,
                                       Eigen::MatrixXd market_return, double deposit_growth)
    : wealth0_(std::move(wealth0)),
      merton_(std::move(merton)),
      market_return_(std::move(market_return)),
      growth_(deposit_growth) {}

void CounterfactualRows::wealth_row(int s, Eigen::MatrixXd& out) {
  const auto agents = wealth0_.size();
  const auto paths = market_return_.rows();
  if (s < at_ || at_ < 0) {  // (re)start from the initial wealth
    wealth_ = wealth0_.replicate(1, paths);
    at_ = 0;
  }
  for (; at_ < s; ++at_) {
    for (Eigen::Index p = 0; p < paths; ++p) {
      const double excess = 1.0 + market_return_(p, at_) - growth_;
      for (Eigen::Index a = 0; a < agents; ++a)
        wealth_(a, p) = wealth_(a, p) * growth_ + merton_(a, at_) * excess;
    }
  }
  out = wealth_;
}

void CounterfactualRows::amount_row(int d, Eigen::MatrixXd& out) {
  out = merton_.col(d).replicate(1, market_return_.rows());
}

namespace {

AttributedStatistic attributed(std::string name, double pop, double pop_se, double cf, double cf_se,
                               double significance, const char* more, const char* less) {
  AttributedStatistic a;
  a.name = std::move(name);
  a.population = pop;
  a.counterfactual = cf;
  a.difference = pop - cf;
  a.se = std::sqrt(pop_se * pop_se + cf_se * cf_se);
  if (std::isfinite(a.difference) && std::isfinite(a.se) && a.se > 0.0) {
    const boost::math::normal_distribution<double> z;
    a.p = 2.0 * boost::math::cdf(boost::math::complement(z, std::abs(a.difference / a.se)));
  }
  if (!std::isfinite(a.p))
    a.verdict = "not compared";
  else if (a.p < significance)
    a.verdict = fmt::format("{} than the same investors with theta = 0 (difference {:.4g}, p = {:.3g})",
                            a.difference > 0 ? more : less, a.difference, a.p);
  else
    a.verdict = fmt::format(
        "no significant difference from the same investors with theta = 0 (difference "
        "{:.4g}, p = {:.3g})",
        a.difference, a.p);
  return a;
}

}  // namespace

Counterfactual attribute_herding(const PopulationMetrics& population, const PopulationMetrics& counterfactual,
                                 double significance) {
  Counterfactual c;
  c.lsv = counterfactual.lsv;
  c.dispersion = counterfactual.dispersion;
  if (population.lsv && counterfactual.lsv) {
    const auto& p = population.lsv->overall;
    const auto& q = counterfactual.lsv->overall;
    c.attributed.push_back(attributed("lsv_mean_h", p.mean_h, p.std_err, q.mean_h, q.std_err, significance,
                                      "more correlated trading (attributable herding)",
                                      "less correlated trading"));
  }
  if (population.dispersion && counterfactual.dispersion) {
    // Herding lowers dispersion in large market moves: a lower coefficient than the counterfactual's.
    const char* lower = "lower dispersion in large moves (herding-like)";
    const char* higher = "higher dispersion in large moves";
    for (const char* name : {"beta_L", "beta_U"}) {
      const auto pc = regression_coefficient(population.dispersion->cssd, name);
      const auto cc = regression_coefficient(counterfactual.dispersion->cssd, name);
      c.attributed.push_back(attributed(fmt::format("cssd_{}", name), pc.estimate, pc.se, cc.estimate, cc.se,
                                        significance, higher, lower));
    }
    const auto pc = regression_coefficient(population.dispersion->csad, "gamma2");
    const auto cc = regression_coefficient(counterfactual.dispersion->csad, "gamma2");
    c.attributed.push_back(
        attributed("csad_gamma2", pc.estimate, pc.se, cc.estimate, cc.se, significance, higher, lower));
  }
  return c;
}

}  // namespace herdsim::analysis
