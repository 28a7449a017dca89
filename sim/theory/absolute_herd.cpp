#include "sim/theory/absolute_herd.hpp"

#include <fmt/format.h>
#include <boost/container/small_vector.hpp>
#include <boost/math/tools/roots.hpp>
#include <cmath>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "sim/error.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/root.hpp"

namespace herdsim::theory {

AbsoluteHerdSolution::AbsoluteHerdSolution(const HerdProblem& problem, double ln_eta, double ln_eta0,
                                           int evaluations)
    : AbsoluteHerdSolution(problem, Coordinate::of(problem.market), ln_eta, ln_eta0, evaluations) {}

AbsoluteHerdSolution::AbsoluteHerdSolution(const HerdProblem& problem, const Coordinate& coordinate,
                                           double ln_eta, double ln_eta0, int evaluations)
    : problem_(problem),
      coordinate_(coordinate),
      schedule_(problem.schedule()),
      ln_eta_(ln_eta),
      ln_eta0_(ln_eta0),
      ln_vt_(std::log(problem.theta / (problem.alpha * coordinate.sigma * coordinate.sigma))),
      evaluations_(evaluations) {}

double AbsoluteHerdSolution::kappa(double t) const {
  return std::exp(ln_vt_ - ln_eta_ - (2.0 - problem_.rho) * schedule_.ln_growth(t));
}

double AbsoluteHerdSolution::opinion(double t) const {
  return 1.0 / (1.0 + kappa(t));
}

double AbsoluteHerdSolution::own_merton(double t) const {
  return merton_amount(schedule_, coordinate_, problem_.alpha, t);
}

double AbsoluteHerdSolution::leader_merton(double t) const {
  return merton_amount(schedule_, coordinate_, problem_.alpha_leader, t);
}

double AbsoluteHerdSolution::amount(double t) const {
  const double w = opinion(t);
  return w * own_merton(t) + (1.0 - w) * leader_merton(t);
}

double AbsoluteHerdSolution::deviation_penalty() const {
  if (problem_.theta == 0.0) return 0.0;
  const double s2 = coordinate_.sigma * coordinate_.sigma;
  const double gap = coordinate_.excess / s2 * (1.0 / problem_.alpha - 1.0 / problem_.alpha_leader);
  double sum = 0.0;
  // (P* - Pbar)^2 e^{rho r (T-t)} = w^2 gap^2 / g.
  schedule_.for_each_node(2.0 - problem_.rho, [&](double t, double weight) {
    const double w = opinion(t);
    sum += weight * w * w * std::exp(-(2.0 - problem_.rho) * schedule_.ln_growth(t));
  });
  return 0.5 * problem_.theta * gap * gap * sum;
}

namespace {

/// The eta root of docs/theory.md §3.2 over the coordinates of §7.1: ln eta = ln eta0 + Sum_j I_j(eta), each
/// I_j the one-asset integral with sigma^2 -> lambda_j, v -> v~_j (a coordinate with v~_j = 0 adds nothing).
struct EtaRoot {
  double ln_eta;
  double ln_eta0;
  int evaluations;
};

EtaRoot solve_eta(const HerdProblem& p, std::span<const Coordinate> coordinates, EtaFormula formula) {
  const Schedule schedule = p.schedule();
  const double lo = ln_eta0(schedule, coordinates, p.alpha, p.x0);
  const double ratio = p.alpha / p.alpha_leader - 1.0;
  // I_j(eta) = scale_j * Int (1 - w_j)^2, 1 - w_j = vt_j / (eta g + vt_j) = 1 / (1 + e^{L + ln g - ln vt_j}).
  struct Term {
    double v, s2, scale, ln_vt;
  };
  boost::container::small_vector<Term, 4> terms;  // no heap allocation for a few assets (replan's hot path)
  double scale_sum = 0.0;                         // one coordinate: exactly its scale
  for (const Coordinate& c : coordinates) {
    const double v = c.excess;
    const double s2 = c.sigma * c.sigma;
    const double scale = v * v * ratio * ratio / (2.0 * s2);
    scale_sum += scale;
    if (scale != 0.0 && p.theta != 0.0) terms.push_back({v, s2, scale, std::log(p.theta / (p.alpha * s2))});
  }
  if (p.theta == 0.0 || scale_sum == 0.0) return {lo, lo, 0};

  const double k = 2.0 - p.rho;
  int evaluations = 0;
  auto integral = [&](double L) {
    double total = 0.0;
    for (const Term& term : terms) {
      double sum = 0.0;
      schedule.for_each_node(k, [&](double t, double w) {
        const double one_minus_w = 1.0 / (1.0 + std::exp(L + k * schedule.ln_growth(t) - term.ln_vt));
        sum += w * one_minus_w * one_minus_w;
      });
      total += term.scale * sum;
    }
    return total;
  };
  // The released code's integrand: Python evaluates `a / 2 * sigma**2 * (eta g + vt)**2` left to right,
  // i.e. vt^2 v^2 ratio^2 / 2 * sigma^2 (eta g + vt)^2 (checked against the golden eta_repo_variant).
  auto integral_repo = [&](double L) {
    double total = 0.0;
    for (const Term& term : terms) {
      const double vt = std::exp(term.ln_vt);
      double sum = 0.0;
      schedule.for_each_node(k, [&](double t, double w) {
        const double d = std::exp(L + k * schedule.ln_growth(t)) + vt;
        sum += w * d * d;
      });
      total += vt * vt * term.v * term.v * ratio * ratio / 2.0 * term.s2 * sum;
    }
    return total;
  };
  auto f = [&](double L) {
    ++evaluations;
    return L - lo - (formula == EtaFormula::correct ? integral(L) : integral_repo(L));
  };

  const double f_lo = f(lo);
  double hi;
  if (formula == EtaFormula::correct) {
    // I < I(0) = scale * T, so F(lo + scale T) > 0: the unique root is inside. When the follower herds
    // almost fully (rich or risk-averse: 1 - w = 1 - 1e-40), the root sits within rounding of that
    // end, so step a few ulp past it.
    hi = lo + scale_sum * p.horizon;
    hi += std::max(1e-12 * (hi - lo),
                   8.0 * std::numeric_limits<double>::epsilon() * std::max(1.0, std::abs(hi)));
  } else {
    // The variant's I is increasing; widen by at least a few ulp until F changes sign.
    hi = lo + std::max(-f_lo, 8.0 * std::numeric_limits<double>::epsilon() * std::max(1.0, std::abs(lo)));
  }
  double f_hi = f(hi);
  for (int i = 0; f_hi < 0.0 && i < 60; ++i) {
    hi = lo + 2.0 * (hi - lo);
    f_hi = f(hi);
  }
  const RootResult root = find_root_bracketed(f, lo, hi, f_lo, f_hi);
  if (!root.converged) {
    throw SolverError(fmt::format(
        "absolute herding: eta root search did not converge (alpha={}, leader alpha={}, theta={}, "
        "x0={}, T={}); bracket [{}, {}]",
        p.alpha, p.alpha_leader, p.theta, p.x0, p.horizon, root.lo, root.hi));
  }
  return {root.value, lo, evaluations};
}

}  // namespace

AbsoluteHerdSolution solve_absolute_herd(const HerdProblem& p, EtaFormula formula) {
  validate(p);
  const Coordinate c = Coordinate::of(p.market);
  const EtaRoot root = solve_eta(p, std::span<const Coordinate>(&c, 1), formula);
  return {p, root.ln_eta, root.ln_eta0, root.evaluations};
}

AbsoluteHerdAssetsSolution solve_absolute_herd(const HerdProblem& p, const Eigen::MatrixXd& covariance,
                                               const Eigen::VectorXd& excess, EtaFormula formula) {
  validate(p);
  AssetBasis basis = asset_basis(covariance, excess);
  const EtaRoot root = solve_eta(p, basis.coordinates, formula);
  std::vector<AbsoluteHerdSolution> coordinates;
  for (const Coordinate& c : basis.coordinates)
    coordinates.emplace_back(p, c, root.ln_eta, root.ln_eta0, root.evaluations);
  return {std::move(basis), std::move(coordinates)};
}

}  // namespace herdsim::theory
