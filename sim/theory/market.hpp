#pragma once
// Market parameters, the paper's defaults, and the mappings from questionnaire answers to model
// parameters (lottery probability <-> CARA alpha, dependence score <-> theta).
#include <array>
#include <string>
#include <vector>

#include "sim/enum_names.hpp"

namespace herdsim::theory {

/// Two-asset market: deposit at rate r, stock with drift mu and volatility sigma (all per year).
struct Market {
  double mu = 0.07;     ///< stock drift, per year
  double r = 0.04;      ///< risk-free rate, per year
  double sigma = 0.17;  ///< stock volatility, per sqrt(year)

  /// Excess return v = mu - r, per year.
  [[nodiscard]] double excess_return() const { return mu - r; }
};

/// One independent direction of a problem in N correlated assets (docs/theory.md §7.1): in the eigenbasis of
/// the covariance Sigma = Q diag(lambda) Q' every problem is the one-asset problem with sigma^2 -> lambda_j
/// and v -> v~_j = (Q' v)_j. One asset is the coordinate {mu - r, sigma}. The excess return may have any
/// sign (rotation makes some negative or zero); the solvers' amounts then have its sign.
struct Coordinate {
  double excess = 0.0;  ///< v~_j, per year
  double sigma = 0.0;   ///< sqrt(lambda_j), per sqrt(year), > 0

  /// The coordinate of a one-asset market.
  [[nodiscard]] static Coordinate of(const Market& m) { return {m.excess_return(), m.sigma}; }
};

/// The paper's defaults for the quantities that are not market parameters.
namespace defaults {
inline constexpr double alpha_leader = 0.2;      ///< the advisor's CARA risk aversion, per currency unit
inline constexpr double x0 = 10.0;               ///< initial wealth, currency units ("million dollars")
inline constexpr double horizon = 10.0;          ///< years
inline constexpr double theta_per_score = 1e-8;  ///< theta = score * 1e-8
}  // namespace defaults

/// Where the model keeps double precision: beyond these the growth factors (e^{r T}, e^{sigma^2 T}), the
/// optimal amounts v / (alpha sigma^2) and the solvers' brackets overflow or vanish, so the solvers fail
/// or the simulated prices become inf/NaN (and the plans' quadrature grows with |r| T). Validation
/// (scenarios, `herdsim theory`) rejects values outside with these reasons.
namespace limits {
inline constexpr double max_rate_horizon = 100.0;  ///< |mu| T, |r| T and sigma^2 T at most this
inline constexpr double min_sigma = 1e-4;          ///< per sqrt(year): amounts scale with 1 / sigma^2
inline constexpr double min_alpha = 1e-10;         ///< CARA alpha, per currency unit
inline constexpr double max_alpha = 1e10;
}  // namespace limits

/// A parameter outside the model's limits: the key ("mu", "r", "sigma", "alpha") and why.
struct DomainProblem {
  std::string key;
  std::string message;
};
/// The market's parameters that leave the limits over horizon years (none: empty).
[[nodiscard]] std::vector<DomainProblem> market_problems(const Market& m, double horizon);
/// Why a CARA alpha leaves [limits::min_alpha, limits::max_alpha], or "" inside.
[[nodiscard]] std::string alpha_problem(double alpha);

/// The lottery of the risk questionnaire: "win `win` with probability p, else 0" versus "`sure` for sure".
struct LotteryConvention {
  double win = 10.0;  ///< currency units
  double sure = 3.0;  ///< currency units
  friend constexpr bool operator==(const LotteryConvention&, const LotteryConvention&) = default;
};
/// W=10/S=3: used for prompts' alpha and all theoretical targets (project default).
inline constexpr LotteryConvention lottery_win10_sure3{10.0, 3.0};
/// W=20/S=6: the amounts written in the prompt text; alpha is exactly half of the W=10/S=3 value.
inline constexpr LotteryConvention lottery_win20_sure6{20.0, 6.0};
/// The scenario key `lottery`'s spellings of the two conventions.
constexpr std::array<NamedValue<LotteryConvention>, 2> enum_names(LotteryConvention /*unused*/) {
  return {{{lottery_win10_sure3, "win10_sure3"}, {lottery_win20_sure6, "win20_sure6"}}};
}

/// Indifference probability p(alpha) = (1 - e^{-alpha S}) / (1 - e^{-alpha W}); p(0) = S/W.
[[nodiscard]] double lottery_prob_from_alpha(double alpha, LotteryConvention lottery = lottery_win10_sure3);

/// CARA alpha at which a respondent is indifferent at probability p, by a bracketed root search.
/// Defined for 0 < p < 1 (alpha < 0 below S/W: risk loving); throws InputError outside.
[[nodiscard]] double alpha_from_lottery_prob(double p, LotteryConvention lottery = lottery_win10_sure3);

/// theta = score * 1e-8 (the paper's 0..10 dependence score).
[[nodiscard]] constexpr double theta_from_score(double score) {
  return score * defaults::theta_per_score;
}
/// Inverse of theta_from_score.
[[nodiscard]] constexpr double score_from_theta(double theta) {
  return theta / defaults::theta_per_score;
}

}  // namespace herdsim::theory
