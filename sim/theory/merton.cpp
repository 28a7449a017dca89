#include "sim/theory/merton.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <Eigen/Cholesky>

#include <boost/math/quadrature/gauss_kronrod.hpp>
#include <cmath>

#include "sim/large_matrix.hpp"

namespace herdsim::theory {

double merton_amount(const Schedule& schedule, double alpha, double t) {
  return merton_amount(schedule, Coordinate::of(schedule.market()), alpha, t);
}

double merton_amount(const Schedule& schedule, const Coordinate& c, double alpha, double t) {
  return c.excess / (alpha * c.sigma * c.sigma) * std::exp(-schedule.ln_growth(t));
}

Eigen::MatrixXd merton_amounts(const Schedule& schedule, const Eigen::VectorXd& alpha, int steps,
                               double dt_years) {
  // A run's whole plan (10^5 agents x 100 steps: 80 MB): first written in parallel, step by step.
  Eigen::MatrixXd out = sim::large_matrix(alpha.size(), steps);
  tbb::parallel_for(
      tbb::blocked_range<int>(0, steps, 1),
      [&](const tbb::blocked_range<int>& r) {
        for (int k = r.begin(); k != r.end(); ++k) {
          // Merton's amount is v / (alpha sigma^2 G(t)): one growth factor per step, one division per agent.
          const double unit = merton_amount(schedule, 1.0, k * dt_years);
          out.col(k) = unit / alpha.array();
        }
      },
      tbb::simple_partitioner{});
  return out;
}

Eigen::MatrixXd merton_amounts(const Schedule& schedule, const Eigen::MatrixXd& covariance,
                               const Eigen::VectorXd& excess, const Eigen::VectorXd& alpha, int steps,
                               double dt_years) {
  // Sigma^{-1} v, the amounts per unit of 1 / (alpha G): one solve, shared by every agent and step.
  const Eigen::VectorXd direction = covariance.llt().solve(excess);
  const Eigen::Index assets = excess.size();
  Eigen::MatrixXd out(alpha.size(), assets * steps);
  for (int k = 0; k < steps; ++k) {
    const double discount = std::exp(-schedule.ln_growth(k * dt_years));
    for (Eigen::Index a = 0; a < assets; ++a)
      out.col(a * steps + k) = direction[a] * discount / alpha.array();
  }
  return out;
}

double merton_alpha_factor(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& excess, int asset) {
  if (excess.size() == 1) return 1.0;  // the one-asset investor itself, bit for bit
  const Eigen::VectorXd direction = covariance.llt().solve(excess);
  const auto j = static_cast<Eigen::Index>(asset);
  return excess[j] / (covariance(j, j) * direction[j]);
}

double ln_eta0(const Schedule& schedule, double alpha, double x0) {
  const Coordinate c = Coordinate::of(schedule.market());
  return ln_eta0(schedule, std::span<const Coordinate>(&c, 1), alpha, x0);
}

double ln_eta0(const Schedule& schedule, std::span<const Coordinate> coordinates, double alpha, double x0) {
  double sharpe = 0.0;  // Sum v~^2 T / (2 lambda); one coordinate: exactly its term
  for (const Coordinate& c : coordinates)
    sharpe += c.excess * c.excess * schedule.horizon() / (2.0 * c.sigma * c.sigma);
  return -alpha * x0 * std::exp(schedule.ln_terminal_growth()) - sharpe;
}

double ln_h(const Schedule& schedule, double alpha, double x0, const AmountPath& path) {
  const double s2 = schedule.market().sigma * schedule.market().sigma;
  double sum = 0.0;
  // Paths of interest are smooth; G^2 P^2 needs panels for rate multiple 2.
  schedule.for_each_node(4.0, [&](double t, double w) {
    const double g = schedule.growth(t);
    const double d = g * (path(t) - merton_amount(schedule, alpha, t));
    sum += w * d * d;
  });
  return ln_eta0(schedule, alpha, x0) + 0.5 * alpha * alpha * s2 * sum;
}

WealthMoments wealth_moments(const Schedule& schedule, double x0, const AmountPath& path, double t) {
  const Market& m = schedule.market();
  const double v = m.excess_return();
  const double s2 = m.sigma * m.sigma;
  WealthMoments out;
  if (schedule.time().is_discrete()) {
    const double dt = schedule.step_years();
    const int k_end = static_cast<int>(std::lround(t / dt));
    const double growth = 1.0 + m.r * dt;
    // X_t = x0 g^K + Sum_k P_k (v dt + sigma sqrt(dt) eps_k) g^{K-1-k}: summed from the last decision
    // back, building g^{K-1-k} as it goes.
    out.mean = x0 * std::pow(growth, static_cast<double>(k_end));
    double grow = 1.0;
    for (int k = k_end - 1; k >= 0; --k) {
      const double p = path(k * dt);
      out.mean += p * v * dt * grow;
      out.variance += p * p * m.sigma * m.sigma * dt * grow * grow;
      grow *= growth;
    }
    return out;
  }
  if (t <= 0.0) return {x0, 0.0};
  using Quad = boost::math::quadrature::gauss_kronrod<double, 31>;
  const double drift =
      Quad::integrate([&](double s) { return std::exp(m.r * (t - s)) * path(s); }, 0.0, t, 15, 1e-14);
  const double var = Quad::integrate(
      [&](double s) {
        const double p = path(s);
        return std::exp(2.0 * m.r * (t - s)) * p * p;
      },
      0.0, t, 15, 1e-14);
  out.mean = x0 * std::exp(m.r * t) + v * drift;
  out.variance = s2 * var;
  return out;
}

}  // namespace herdsim::theory
