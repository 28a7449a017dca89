#include "sim/theory/relative_herd.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <array>
#include <boost/numeric/odeint.hpp>
#include <cmath>
#include <limits>
#include <numeric>
#include <span>
#include <utility>
#include <vector>

#include "sim/error.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/root.hpp"

namespace herdsim::theory {

namespace {

using Eigen::Index;
using Eigen::VectorXd;

/// Below this stiffness the natural BCs' constant mode is weakly determined by end slopes: shoot instead.
constexpr double kShootingBelow = 8.0;
/// Refuse grids beyond this many steps (~0.5 GB of work vectors) instead of exhausting memory.
constexpr double kMaxSteps = 2e7;

/// The BVP u'' = q u + s (u = P - Pbar) on a fixed uniform grid for any ln eta. With g = e^{r(T-t)},
/// q = eta q1 g^2 and s = eta s1 g: the grid and g are computed once and an evaluation only rescales (in
/// logs, so nothing overflows even when eta is below the smallest double). Work vectors are allocated once;
/// an evaluation allocates nothing.
class RelativeBvp {
 public:
  enum class Method { pinned, natural, shooting };

  RelativeBvp(const HerdProblem& p, const Coordinate& c, Method method, bool free_start, Index n)
      : method_(method),
        free_start_(free_start),
        n_(n),
        h_(p.horizon / static_cast<double>(n)),
        r_(p.market.r) {
    const double s2 = c.sigma * c.sigma;
    const double v = c.excess;
    gap_ = v / s2 * (1.0 / p.alpha - 1.0 / p.alpha_leader);
    leader_ = v / (p.alpha_leader * s2);
    half_a2s2_ = 0.5 * p.alpha * p.alpha * s2;
    theta_ = p.theta;
    ln_q1_ = std::log(p.alpha * s2 / p.theta);
    const double s1 = v * (p.alpha / p.alpha_leader - 1.0) / p.theta;
    ln_s1_ = std::log(std::abs(s1));
    sign_s1_ = s1 < 0.0 ? -1.0 : 1.0;
    // g_k = e^{r(T - t_k)} = base_[k / 256] power_[k % 256] and 1/g_k likewise: a few ulp, and the tables
    // stay in L1 cache (full vectors would cost as much memory traffic and page faults as the solution).
    power_.resize(kBlock);
    inv_power_.resize(kBlock);
    for (Index i = 0; i < power_.size(); ++i) {
      power_[i] = std::exp(-r_ * h_ * static_cast<double>(i));
      inv_power_[i] = std::exp(r_ * h_ * static_cast<double>(i));
    }
    base_.resize(n / static_cast<Index>(kBlock) + 1);
    inv_base_.resize(base_.size());
    for (Index j = 0; j < base_.size(); ++j) {
      const double t = h_ * static_cast<double>(j * power_.size());
      base_[j] = std::exp(r_ * (p.horizon - t));
      inv_base_[j] = std::exp(-r_ * (p.horizon - t));
    }
    u_.resize(n + 1);
    pivot_.resize(n + 1);
    if (method_ == Method::natural || free_start_) {
      left_.resize(n + 1);
      right_.resize(n + 1);
    }
    if (method_ == Method::shooting) {
      left_.resize(n + 1);
      right_.resize(n + 1);
      times_.resize(static_cast<std::size_t>(n + 1));  // integrate_times stops exactly at each node
      for (Index k = 0; k <= n; ++k) times_[static_cast<std::size_t>(k)] = h_ * static_cast<double>(k);
      times_.back() = p.horizon;
    }
  }

  /// Solves the BVP for L = ln eta; returns ln H[P_L] - ln eta0 = (alpha^2 sigma^2/2) Int g^2 (u -
  /// u_alpha)^2.
  double excess_ln_h(double L) {
    set_eta(L);
    switch (method_) {
      case Method::pinned:
        if (free_start_) {
          solve_free_start();
        } else {
          solve<true>(1.0, gap_ / growth(0), gap_ / growth(n_), u_);  // u_alpha = gap / g at both ends
        }
        break;
      case Method::natural:
        solve_natural();
        break;
      case Method::shooting:
        shoot(L);
        break;
    }
    // g (u - u_alpha) = g u - gap: the deviation form of ln H (no cancellation against ln eta0).
    return half_a2s2_ * simpson([&](Index k, double g) {
             const double d = g * u_[k] - gap_;
             return d * d;
           });
  }

  /// After excess_ln_h(L) for the final L: moves P* and dP*/dt at the nodes out (this object is spent) and
  /// returns the penalty (theta/2) Int u'^2.
  double take_path(VectorXd& amount, VectorXd& slope) {
    // The pivots are no longer needed: their storage takes the slopes (the shooter already put them there).
    if (method_ != Method::shooting) numerov_slopes(pivot_);
    const double penalty = 0.5 * theta_ * simpson([&](Index k, double) { return pivot_[k] * pivot_[k]; });
    for (Index k = 0; k <= n_; ++k) {
      const double pbar = leader_ * inv_growth(k);
      u_[k] += pbar;
      pivot_[k] += r_ * pbar;  // Pbar' = r Pbar
    }
    amount = std::move(u_);
    slope = std::move(pivot_);
    return penalty;
  }

 private:
  /// Composite Simpson rule for Int_0^T f(k, g_k) dt (n even). g_k is generated block by block from the
  /// tables (no gathers), odd and even nodes summed separately.
  template <class F>
  [[nodiscard]] double simpson(F&& f) const {
    double odd = 0.0;
    double even = 0.0;  // both ends included with weight 2, corrected below
    for (std::size_t j = 0; j < static_cast<std::size_t>(base_.size()); ++j) {
      const auto k0 = static_cast<Index>(j * kBlock);  // even
      const Index count = std::min(static_cast<Index>(kBlock), n_ + 1 - k0);
      const double base = base_[static_cast<Index>(j)];
      for (Index i = 0; i + 1 < count; i += 2) {
        even += f(k0 + i, base * power_[i]);
        odd += f(k0 + i + 1, base * power_[i + 1]);
      }
      if (count % 2 == 1) even += f(k0 + count - 1, base * power_[count - 1]);
    }
    return h_ / 3.0 * (4.0 * odd + 2.0 * even - f(0, growth(0)) - f(n_, growth(n_)));
  }

  /// g_k = e^{r(T - t_k)} and 1/g_k from the tables.
  [[nodiscard]] double growth(Index k) const {
    const auto i = static_cast<std::size_t>(k);
    return base_[static_cast<Index>(i / kBlock)] * power_[static_cast<Index>(i % kBlock)];
  }
  [[nodiscard]] double inv_growth(Index k) const {
    const auto i = static_cast<std::size_t>(k);
    return inv_base_[static_cast<Index>(i / kBlock)] * inv_power_[static_cast<Index>(i % kBlock)];
  }

  /// Numerov coefficients for eta = e^L: (h^2/12) q_k = fq_ g_k^2, (h^2/12) s_k = fs_ g_k, and the right-hand
  /// side (h^2/12)(s_{k+1} + 10 s_k + s_{k-1}) = rhs_scale_ g_k since g_{k+-1} = g_k e^{-+rh}.
  void set_eta(double L) {
    const double c = h_ * h_ / 12.0;
    fq_ = c * std::exp(L + ln_q1_);
    fs_ = c * sign_s1_ * std::exp(L + ln_s1_);
    rhs_scale_ = fs_ * (inv_power_[1] + 10.0 + power_[1]);
  }
  /// Numerov's a_k = 1 - h^2 q_k / 12; row k reads a_{k-1} u_{k-1} + (10 a_k - 12) u_k + a_{k+1} u_{k+1}
  /// = rhs_k, the recurrence of docs/theory.md §3.3 with both sides negated.
  [[nodiscard]] double a(Index k) const { return 1.0 - fq_ * growth(k) * growth(k); }
  /// (h^2/12) u''_k = (h^2/12)(q_k w_k + source s_k).
  [[nodiscard]] double curvature(const VectorXd& w, Index k, double source) const {
    return fq_ * growth(k) * growth(k) * w[k] + source * fs_ * growth(k);
  }

  /// One direction of the elimination: rows k, k + dir, ... (dir = +1 from the top, -1 from the bottom).
  struct Sweep {
    Index k;
    Index dir;
    double a_prev;         // a of the neighbour eliminated before row k (or of the fixed end)
    double lower;          // a_prev times the neighbour's pivot (pivot := 1 for the fixed end)
    double z;              // the neighbour's eliminated right-hand side (the end value for the fixed end)
    double y_prev2 = 0.0;  // pivot recurrence y at the two rows before k (y = 0, 1 "before" the end)
    double y_prev = 1.0;
  };

  /// Eliminates row s.k of the system with right-hand side rhs g_k into u: pivot_k = 1/d_k with
  /// d_k = b_k - a_prev a_k / d_prev. Thomas' recurrence puts a division on the loop-carried path; with
  /// d_k = y_k / y_prev the pivots follow from the linear recurrence y_k = b_k y_prev - a_prev a_k y_prev2
  /// (the growing solution, so stable; rescaled before it overflows) and the divisions run off that path.
  /// With factorise = false the pivots already stored are reused.
  template <bool factorise>
  void eliminate(Sweep& s, double fq, double rhs, double* u, double* pivot) const {
    const Index k = s.k;
    const double g = growth(k);
    const double a_cur = 1.0 - fq * g * g;
    double piv;
    if constexpr (factorise) {
      const double y = (10.0 * a_cur - 12.0) * s.y_prev - s.a_prev * a_cur * s.y_prev2;
      piv = s.y_prev / y;
      pivot[k] = piv;
      s.y_prev2 = s.y_prev;
      s.y_prev = y;
      if (std::abs(y) > 1e150) {
        s.y_prev2 *= 1e-150;
        s.y_prev *= 1e-150;
      }
    } else {
      piv = pivot[k];
    }
    s.z = rhs * g - s.lower * s.z;
    u[k] = s.z;
    s.lower = a_cur * piv;
    s.a_prev = a_cur;
    s.k += s.dir;
  }

  /// Solves the Numerov system for right-hand side `source` * rhs and end values u_0, u_n into out by twisted
  /// elimination: rows 1..m from the top and n-1..m+1 from the bottom in one loop, so that the two
  /// loop-carried chains overlap (the solve is latency bound), then u_m and both back substitutions.
  template <bool factorise>
  void solve(double source, double u0, double un, VectorXd& out) {
    const double fq = fq_;
    const double rhs = source * rhs_scale_;
    double* u = out.data();
    double* pivot = pivot_.data();
    const Index mid = n_ / 2;
    Sweep top{1, +1, a(0), a(0), u0};
    Sweep bottom{n_ - 1, -1, a(n_), a(n_), un};
    for (Index i = 1; i < mid; ++i) {
      eliminate<factorise>(top, fq, rhs, u, pivot);
      eliminate<factorise>(bottom, fq, rhs, u, pivot);
    }
    eliminate<factorise>(top, fq, rhs, u, pivot);  // rows 1..mid from the top, n-1..mid+1 from the bottom
    // Eliminated rows: d_mid u_mid + a_{mid+1} u_{mid+1} = z_mid from above and
    // d'_{mid+1} u_{mid+1} + a_mid u_mid = z'_{mid+1} from below; solve the pair for u_mid.
    const double coupling = a(mid + 1) * pivot[mid + 1];
    u[mid] = (u[mid] - coupling * u[mid + 1]) / (1.0 / pivot[mid] - a(mid) * coupling);
    // a and u of the row just solved on each side, kept in registers (u[k + 1] reloaded from memory would put
    // a store-to-load forward on the loop-carried path).
    double a_above = a(mid);
    double a_below = a_above;
    double u_above = u[mid];
    double u_below = u_above;
    for (Index i = 1; i < mid; ++i) {
      const Index k = mid - i;
      const Index j = mid + i;
      u_above = (u[k] - a_above * u_above) * pivot[k];
      u_below = (u[j] - a_below * u_below) * pivot[j];
      u[k] = u_above;
      u[j] = u_below;
      const double gk = growth(k);
      const double gj = growth(j);
      a_above = 1.0 - fq * gk * gk;
      a_below = 1.0 - fq * gj * gj;
    }
    u[0] = u0;
    u[n_] = un;
  }

  /// One-sided end slopes (docs/theory.md §3.3): u'(0) ~ (u_1 - u_0)/h - h (2 u''_0 + u''_1)/6, mirrored.
  [[nodiscard]] double slope_left(const VectorXd& w, double source) const {
    return (w[1] - w[0] - 2.0 * (2.0 * curvature(w, 0, source) + curvature(w, 1, source))) / h_;
  }
  [[nodiscard]] double slope_right(const VectorXd& w, double source) const {
    return (w[n_] - w[n_ - 1] + 2.0 * (2.0 * curvature(w, n_, source) + curvature(w, n_ - 1, source))) / h_;
  }

  /// Natural ends when stiff: u = u_p + A u_L + B u_R from three Dirichlet solves sharing one factorisation
  /// (u_p: zero ends; u_L, u_R: homogeneous with a unit value at one end); A and B fit u'(0) = u'(T) = 0.
  void solve_natural() {
    solve<true>(1.0, 0.0, 0.0, u_);
    solve<false>(0.0, 1.0, 0.0, left_);
    solve<false>(0.0, 0.0, 1.0, right_);
    const double p0 = slope_left(u_, 1.0), pn = slope_right(u_, 1.0);
    const double l0 = slope_left(left_, 0.0), ln = slope_right(left_, 0.0);
    const double r0 = slope_left(right_, 0.0), rn = slope_right(right_, 0.0);
    const double det = l0 * rn - r0 * ln;  // ~ -q: each end layer barely sees the other end
    const double coef_l = (r0 * pn - p0 * rn) / det;
    const double coef_r = (p0 * ln - l0 * pn) / det;
    u_ += coef_l * left_ + coef_r * right_;
  }

  /// Free start, pinned end (a restart): u = u_p + A u_L from two Dirichlet solves sharing one factorisation
  /// (u_p: u(0) = 0, u(T) = u_alpha(T); u_L: homogeneous, unit value at the start); A fits u'(0) = 0.
  void solve_free_start() {
    solve<true>(1.0, 0.0, gap_ / growth(n_), u_);
    solve<false>(0.0, 1.0, 0.0, left_);
    u_ -= slope_left(u_, 1.0) / slope_left(left_, 0.0) * left_;
  }

  /// Fourth-order slopes of the Numerov solution: central differences corrected with u'' = q u + s inside,
  /// the one-sided formulas at the ends.
  void numerov_slopes(VectorXd& slope) const {
    const double half_inv_h = 0.5 / h_;
    // (h^2/12) u'' at k - 1 and k + 1, rolled along so that each node's curvature is computed once.
    double behind = curvature(u_, 0, 1.0);
    double here = curvature(u_, 1, 1.0);
    for (Index k = 1; k < n_; ++k) {
      const double ahead = curvature(u_, k + 1, 1.0);
      slope[k] = (u_[k + 1] - u_[k - 1] - 2.0 * (ahead - behind)) * half_inv_h;
      behind = here;
      here = ahead;
    }
    slope[0] = slope_left(u_, 1.0);
    slope[n_] = slope_right(u_, 1.0);
  }

  /// Natural ends when not stiff: u = u_p + c u_h with the IVPs u_p(0) = u_p'(0) = 0 and u_h(0) = 1,
  /// u_h'(0) = 0 (so u'(0) = 0 for any c), integrated by Runge-Kutta-Fehlberg 7(8) through every node;
  /// c = -u_p'(T) / u_h'(T) fixes u'(T) = 0. Both u_p and u_h' are proportional to eta, which may underflow,
  /// so the states are U = u_p / eta and V = u_h' / eta (c = -U'(T) / V(T) stays finite). Leaves u in u_ and
  /// u' in pivot_ (there are no pivots here).
  void shoot(double L) {
    using State = std::array<double, 4>;  // U, U', u_h, V
    namespace ode = boost::numeric::odeint;
    const double horizon = times_.back();
    const double eta = std::exp(L);
    const double q0 = std::exp(ln_q1_ + 2.0 * r_ * horizon);       // q / eta = q0 e^{-2rt}
    const double s0 = sign_s1_ * std::exp(ln_s1_ + r_ * horizon);  // s / eta = s0 e^{-rt}
    const double r = r_;
    auto system = [eta, q0, s0, r](const State& y, State& dy, double t) {
      const double e = std::exp(-r * t);
      const double q = q0 * e * e;
      dy = {y[1], eta * q * y[0] + s0 * e, eta * y[3], q * y[2]};
    };
    Index k = 0;
    auto observe = [&](const State& y, double) {
      u_[k] = y[0];
      pivot_[k] = y[1];
      left_[k] = y[2];
      right_[k] = y[3];
      ++k;
    };
    State y{0.0, 0.0, 1.0, 0.0};
    auto stepper = ode::make_controlled(1e-14, 1e-14, ode::runge_kutta_fehlberg78<State>());
    ode::integrate_times(stepper, system, y, times_.begin(), times_.end(), h_, observe);
    if (k != n_ + 1) throw SolverError("relative herding: shooting did not reach T");
    // Natural end: u'(T) = 0; pinned end (free start): u(T) = u_alpha(T) = gap / g(T).
    const double c = free_start_ ? (gap_ / growth(n_) - eta * u_[n_]) / left_[n_] : -pivot_[n_] / right_[n_];
    u_ = eta * u_ + c * left_;
    pivot_ = eta * (pivot_ + c * right_);
  }

  Method method_;
  bool free_start_;  // pinned end only (natural ends are free at both ends already)
  Index n_;
  double h_;
  double r_;
  double gap_ = 0.0;     // (P_alpha - Pbar) g, constant
  double leader_ = 0.0;  // Pbar g, constant
  double half_a2s2_ = 0.0;
  double theta_ = 0.0;
  double ln_q1_ = 0.0;
  double ln_s1_ = 0.0;
  double sign_s1_ = 1.0;
  double fq_ = 0.0;
  double fs_ = 0.0;
  double rhs_scale_ =
      0.0;  // Numerov's (h^2/12)(s_{k+1} + 10 s_k + s_{k-1}) = rhs_scale_ g_k, as s is proportional to g
  static constexpr std::size_t kBlock = 256;
  VectorXd base_, power_, inv_base_, inv_power_;  // growth(k) and inv_growth(k) tables
  VectorXd u_, pivot_;
  VectorXd left_, right_;  // natural: homogeneous solves; shooting: u_h and u_h'
  std::vector<double> times_;
};

}  // namespace

RelativeHerdSolution::RelativeHerdSolution(const HerdProblem& problem, const Coordinate& coordinate,
                                           RelativeHerdOptions options)
    : problem_(problem), coordinate_(coordinate), options_(options), schedule_(problem.schedule()) {}

double RelativeHerdSolution::own_merton(double t) const {
  return merton_amount(schedule_, coordinate_, problem_.alpha, t);
}

double RelativeHerdSolution::leader_merton(double t) const {
  return merton_amount(schedule_, coordinate_, problem_.alpha_leader, t);
}

Eigen::VectorXd RelativeHerdSolution::grid_time() const {
  const Index n = amount_.size() - 1;
  VectorXd t(amount_.size());
  for (Index k = 0; k <= n; ++k) t[k] = problem_.horizon * static_cast<double>(k) / static_cast<double>(n);
  return t;
}

std::pair<Index, double> RelativeHerdSolution::locate(double t) const {
  // pos = t N / T is exact for t = k T / N when T N is, so integer years land on their nodes.
  const Index n = amount_.size() - 1;
  const double pos = std::clamp(t * static_cast<double>(n) / problem_.horizon, 0.0, static_cast<double>(n));
  const Index i = std::min<Index>(static_cast<Index>(pos), n - 1);
  return {i, pos - static_cast<double>(i)};
}

double RelativeHerdSolution::amount(double t) const {
  if (amount_.size() == 0) return own_merton(t);
  const auto [i, x] = locate(t);
  if (x == 0.0) return amount_[i];
  if (x == 1.0) return amount_[i + 1];
  // Cubic Hermite from node values and slopes (error ~ h^4 max|P''''| / 384: ~1e-9 of the layer's size).
  const double h = problem_.horizon / static_cast<double>(amount_.size() - 1);
  const double x2 = x * x;
  const double x3 = x2 * x;
  return (2 * x3 - 3 * x2 + 1) * amount_[i] + (x3 - 2 * x2 + x) * h * slope_[i] +
         (3 * x2 - 2 * x3) * amount_[i + 1] + (x3 - x2) * h * slope_[i + 1];
}

double RelativeHerdSolution::slope(double t) const {
  if (amount_.size() == 0) return problem_.market.r * own_merton(t);
  const auto [i, x] = locate(t);
  if (x == 0.0) return slope_[i];
  if (x == 1.0) return slope_[i + 1];
  const double h = problem_.horizon / static_cast<double>(amount_.size() - 1);
  const double x2 = x * x;
  return 6 * (x2 - x) / h * (amount_[i] - amount_[i + 1]) + (3 * x2 - 4 * x + 1) * slope_[i] +
         (3 * x2 - 2 * x) * slope_[i + 1];
}

/// The relative-herding optimum of docs/theory.md §3.3 over the coordinates of §7.1: one BVP per coordinate
/// (sigma^2 -> lambda_j, v -> v~_j, each on its own grid), coupled only through the one eta: ln eta = ln eta0
/// + Sum_j excess_j(eta). One coordinate is the one-asset solver (the same operations, the same bits).
std::vector<RelativeHerdSolution> RelativeHerdSolution::solve_coordinates(
    const HerdProblem& p, std::span<const Coordinate> coordinates, RelativeHerdOptions options) {
  validate(p);
  if (p.time.is_discrete()) {
    throw InputError("relative herding is solved in continuous time only (problem.time is discrete)");
  }
  if (!(options.max_h_sqrt_q > 0.0 && options.max_h_sqrt_q <= 1.0) || options.min_steps < 2) {
    throw InputError(
        fmt::format("relative herding options: need 0 < max_h_sqrt_q <= 1 and min_steps >= 2, got {} and {}",
                    options.max_h_sqrt_q, options.min_steps));
  }
  std::vector<RelativeHerdSolution> sols;
  for (const Coordinate& c : coordinates) sols.push_back(RelativeHerdSolution(p, c, options));
  const Schedule schedule = p.schedule();
  const double r = p.market.r;
  const double horizon = p.horizon;
  const double lo = theory::ln_eta0(schedule, coordinates, p.alpha, p.x0);
  const auto count = coordinates.size();
  // P_alpha - Pbar = gap e^{-r(T-t)} per coordinate; S and zeta at a given ln eta (q is largest at t = 0 for
  // r >= 0, at T otherwise).
  std::vector<double> gap(count);
  bool imitates = false;
  for (std::size_t j = 0; j < count; ++j) {
    const double s2 = coordinates[j].sigma * coordinates[j].sigma;
    gap[j] = coordinates[j].excess / s2 * (1.0 / p.alpha - 1.0 / p.alpha_leader);
    imitates = imitates || gap[j] != 0.0;
  }
  auto stiffness = [&](std::size_t j, double L) {
    const double s2 = coordinates[j].sigma * coordinates[j].sigma;
    return std::exp(0.5 * (L + std::log(p.alpha * s2 / p.theta) + 2.0 * std::max(r, 0.0) * horizon)) *
           horizon;
  };
  auto zeta = [&](std::size_t j, double L) {
    return coordinates[j].sigma * std::exp(r * horizon + 0.5 * (L + std::log(p.alpha / p.theta))) / r;
  };
  auto set_closed_form = [&](std::size_t j, double L) {
    RelativeHerdSolution& sol = sols[j];
    sol.ln_eta_ = L;
    sol.ln_eta0_ = lo;
    sol.zeta_ = p.theta == 0.0 ? std::numeric_limits<double>::infinity() : zeta(j, L);
    sol.stiffness_ = p.theta == 0.0 ? std::numeric_limits<double>::infinity() : stiffness(j, L);
  };

  // No herding force, or nothing to imitate: the own Merton path is optimal.
  if (p.theta == 0.0 || !imitates) {
    for (std::size_t j = 0; j < count; ++j) {
      set_closed_form(j, lo);
      sols[j].ln_h_ = lo;
    }
    return sols;
  }

  // The own Merton path is admissible for both BCs, so J* >= J[P_alpha] gives
  // eta* <= eta0 + alpha (theta/2) Int |P_alpha' - Pbar'|^2, with P_alpha' - Pbar' = r gap e^{-r(T-t)}.
  const double decay = r == 0.0 ? horizon : -std::expm1(-2.0 * r * horizon) / (2.0 * r);  // Int e^{-2r(T-t)}
  double merton_penalty = 0.0;
  for (std::size_t j = 0; j < count; ++j) merton_penalty += 0.5 * p.theta * r * r * gap[j] * gap[j] * decay;
  double hi = log_add_exp(lo, std::log(p.alpha * merton_penalty));
  if (!(hi > lo)) hi = lo + std::numeric_limits<double>::epsilon();

  using Method = RelativeBvp::Method;
  // A free start with a pinned end has the natural ends' weakly determined mode at its free end when not
  // stiff: shoot from the free start then too.
  const bool free_start = options.free_start && options.bc == BoundaryCondition::pinned;
  std::vector<RelativeBvp> bvps;
  bvps.reserve(count);
  std::vector<Method> methods;
  std::vector<std::size_t> solved;  // the coordinates with a gap (the others stay on their Merton path)
  for (std::size_t j = 0; j < count; ++j) {
    if (gap[j] == 0.0) continue;
    // Uniform grid resolving the boundary layers at the largest eta: h sqrt(q_max) <= max_h_sqrt_q, even
    // (Simpson), a multiple of T when T is a whole number of years so that integer years are nodes.
    const double wanted =
        std::max(static_cast<double>(options.min_steps), std::ceil(stiffness(j, hi) / options.max_h_sqrt_q));
    if (!(wanted <= kMaxSteps)) {
      throw SolverError(
          fmt::format("relative herding: stiffness {:.3g} needs {:.3g} grid steps (limit {:.0g}); theta={}",
                      stiffness(j, hi), wanted, kMaxSteps, p.theta));
    }
    Index unit = 2;
    const double years = std::round(horizon);
    if (years >= 1.0 && years == horizon) unit = std::lcm<Index>(2, static_cast<Index>(years));
    const Index n = (static_cast<Index>(wanted) + unit - 1) / unit * unit;
    Method method = Method::pinned;
    if (options.bc == BoundaryCondition::natural || free_start) {
      if (stiffness(j, lo) < kShootingBelow) {
        method = Method::shooting;
      } else if (!free_start) {
        method = Method::natural;
      }
    }
    bvps.emplace_back(p, coordinates[j], method, free_start, n);
    methods.push_back(method);
    solved.push_back(j);
  }

  // Root variable x = L - ln eta0 >= 0 (tiny in stiff cases; measured from lo it keeps its digits):
  // F(x) = x - (ln H[P_L] - ln eta0). The last solve is kept so that the converged root needs no extra one.
  int evaluations = 0;
  double last_x = std::numeric_limits<double>::quiet_NaN();
  double last_excess = 0.0;
  auto excess = [&](double x) {
    double sum = 0.0;  // one coordinate: exactly its excess
    for (RelativeBvp& bvp : bvps) sum += bvp.excess_ln_h(lo + x);
    return sum;
  };
  auto f = [&](double x) {
    ++evaluations;
    last_x = x;
    last_excess = excess(x);
    return x - last_excess;
  };
  double x_hi = hi - lo;
  // A follower whose alpha is within rounding of the leader's has hi == lo: start a few ulp up, else the
  // doubling below never leaves 0 (the search then failed for, e.g., alpha 0.1999 against 0.2 over T = 2).
  if (!(x_hi > 0.0)) x_hi = 8.0 * std::numeric_limits<double>::epsilon() * std::max(1.0, std::abs(lo));
  const double f_lo = f(0.0);
  double f_hi = f(x_hi);
  // The bound holds up to discretisation error; widen defensively (the grid then runs slightly coarser than
  // max_h_sqrt_q at the widened end, which the root never reaches in practice).
  for (int i = 0; f_hi < 0.0 && i < 60; ++i) {
    x_hi *= 2.0;
    f_hi = f(x_hi);
  }
  const RootResult root = find_root_bracketed(f, 0.0, x_hi, f_lo, f_hi);
  if (!root.converged) {
    throw SolverError(
        fmt::format("relative herding: eta root search did not converge (alpha={}, theta={}, x0={}, T={}); "
                    "ln eta in [{}, {}]",
                    p.alpha, p.theta, p.x0, p.horizon, lo + root.lo, lo + root.hi));
  }
  // Any point of the converged bracket is the root to ~1e-15; TOMS 748 leaves its last point as an end.
  if (!(last_x >= root.lo && last_x <= root.hi)) {
    last_x = root.value;
    last_excess = excess(last_x);
  }
  const double ln_eta = lo + last_x;

  for (std::size_t j = 0; j < count; ++j) {
    set_closed_form(j, ln_eta);
    sols[j].ln_h_ = lo + last_excess;
    sols[j].evaluations_ = evaluations;
  }
  for (std::size_t b = 0; b < solved.size(); ++b) {
    RelativeHerdSolution& sol = sols[solved[b]];
    sol.method_ = methods[b] == Method::shooting ? "shooting" : "numerov";
    sol.penalty_ = bvps[b].take_path(sol.amount_, sol.slope_);
  }
  return sols;
}

RelativeHerdSolution solve_relative_herd(const HerdProblem& p, RelativeHerdOptions options) {
  const Coordinate c = Coordinate::of(p.market);
  return std::move(
      RelativeHerdSolution::solve_coordinates(p, std::span<const Coordinate>(&c, 1), options).front());
}

RelativeHerdAssetsSolution solve_relative_herd(const HerdProblem& p, const Eigen::MatrixXd& covariance,
                                               const Eigen::VectorXd& excess, RelativeHerdOptions options) {
  validate(p);
  AssetBasis basis = asset_basis(covariance, excess);
  std::vector<RelativeHerdSolution> coordinates =
      RelativeHerdSolution::solve_coordinates(p, basis.coordinates, options);
  return {std::move(basis), std::move(coordinates)};
}

}  // namespace herdsim::theory
