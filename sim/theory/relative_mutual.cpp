#include "sim/theory/relative_mutual.hpp"

#include <fmt/format.h>
#include <Eigen/SparseLU>
#include <algorithm>
#include <cassert>
#include <cmath>
#include <deque>
#include <limits>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "sim/error.hpp"
#include "sim/setup.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/newton_krylov.hpp"
#include "sim/theory/root.hpp"

namespace herdsim::theory {

namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

// Notation. Nodes t_0 < ... < t_{K-1}; edges e = (t_e, t_{e+1}) of length h_e; m_k = (utility weight of
// node k) * G(t_k)^2 (trapezoid in continuous time, dt per decision in discrete time). With u_i = P_i -
// P_alpha_i (zero at the ends for pinned BCs, and for agents nobody influences), the discretised
//   J_i = -e^{ln H_i}/alpha_i - (1/2) Sum_j theta_ij Sum_e (Delta_e (P_i - P_j))^2 / h_e,
//   ln H_i = ln eta0_i + (alpha_i^2 sigma^2 / 2) Sum_k m_k u_ik^2,
// is stationary in P_i at fixed eta_i when, row by row divided by theta_i = Sum_j theta_ij,
//   beta_i m_k u_ik + (K u_i)_k - Sum_j W_ij (K u_j)_k = -(K gap_i)_k,   beta_i = eta_i alpha_i
//   sigma^2/theta_i,
// with K the stiffness matrix of the edges (Sum over the node's edges of (x_k - x_neighbour) / h_e),
// W = Theta / theta_i and gap_i = P_alpha_i - Sum_j W_ij P_alpha_j. Unknowns are the interior nodes
// (pinned) or all nodes (natural: the end rows are the discrete transversality conditions).

constexpr double kMaxExponent = 700.0;  // beta = e^{x}: beyond this the layers are unresolvable anyway

// Symmetric positive definite tridiagonal system (Thomas' algorithm; diagonally dominant, so no pivots).
class Tridiagonal {
 public:
  // diag: n entries; off[j] couples unknowns j and j + 1 (n - 1 entries, kept by reference).
  void factor(const VectorXd& diag, const VectorXd& off) {
    const Index n = diag.size();
    off_ = &off;
    inv_.resize(n);
    low_.resize(n);
    if (n == 0) return;
    inv_[0] = 1.0 / diag[0];
    for (Index j = 1; j < n; ++j) {
      low_[j] = off[j - 1] * inv_[j - 1];
      inv_[j] = 1.0 / (diag[j] - low_[j] * off[j - 1]);
    }
  }
  void solve(double* x) const {
    const Index n = inv_.size();
    if (n == 0) return;
    const VectorXd& off = *off_;
    for (Index j = 1; j < n; ++j) x[j] -= low_[j] * x[j - 1];
    x[n - 1] *= inv_[n - 1];
    for (Index j = n - 2; j >= 0; --j) x[j] = (x[j] - off[j] * x[j + 1]) * inv_[j];
  }

 private:
  const VectorXd* off_ = nullptr;
  VectorXd inv_, low_;
};

// The grid of the discretised game: node times, inverse edge lengths and weights m_k.
struct Grid {
  std::vector<double> t;      // years
  std::vector<double> inv_h;  // per edge, 1/years
  std::vector<double> m;      // per node: utility weight * G^2, years
};

Grid discrete_grid(const Schedule& schedule) {
  Grid g;
  const int n = schedule.steps();
  const double dt = schedule.step_years();
  for (int k = 0; k < n; ++k) {
    g.t.push_back(k * dt);
    g.m.push_back(dt * std::exp(2.0 * schedule.ln_growth(k * dt)));
    if (k + 1 < n) g.inv_h.push_back(1.0 / dt);
  }
  return g;
}

// Graded grid: h(t) = min(max_step, h_end + grading * distance to the nearer end); each segment between
// consecutive multiples of node_spacing is marched with h(t) and then shrunk to end on its break point.
Grid continuous_grid(const Schedule& schedule, double h_left, double h_right,
                     const RelativeMutualOptions& o) {
  const double horizon = schedule.horizon();
  auto step = [&](double t) {
    return std::min(o.max_step, std::min(h_left + o.grading * t, h_right + o.grading * (horizon - t)));
  };
  std::vector<double> breaks{0.0};
  if (o.node_spacing > 0.0) {
    for (int j = 1;; ++j) {
      const double b = j * o.node_spacing;
      if (b >= horizon * (1.0 - 1e-12)) break;
      breaks.push_back(b);
    }
  }
  breaks.push_back(horizon);
  Grid g;
  g.t.push_back(0.0);
  std::vector<double> local;
  for (std::size_t s = 0; s + 1 < breaks.size(); ++s) {
    const double a = breaks[s];
    const double b = breaks[s + 1];
    local.clear();
    double t = a;
    while (t < b) {
      t += step(t);
      local.push_back(t);
      if (g.t.size() + local.size() > static_cast<std::size_t>(o.max_nodes)) {
        throw SolverError(fmt::format(
            "relative mutual game: the grid needs more than max_nodes = {} nodes (h at the ends {:.3g} "
            "and {:.3g} years)",
            o.max_nodes, h_left, h_right));
      }
    }
    const double scale = (b - a) / (local.back() - a);
    for (std::size_t k = 0; k + 1 < local.size(); ++k) g.t.push_back(a + (local[k] - a) * scale);
    g.t.push_back(b);
  }
  const std::size_t nodes = g.t.size();
  g.m.assign(nodes, 0.0);
  for (std::size_t e = 0; e + 1 < nodes; ++e) {
    const double h = g.t[e + 1] - g.t[e];
    g.inv_h.push_back(1.0 / h);
    g.m[e] += 0.5 * h;
    g.m[e + 1] += 0.5 * h;
  }
  for (std::size_t k = 0; k < nodes; ++k) g.m[k] *= std::exp(2.0 * schedule.ln_growth(g.t[k]));
  return g;
}

// One coordinate of the game on the grid (docs/theory.md §7.1): sigma^2 -> lambda_j, v -> v~_j.
struct CoordinateSetup {
  double s2 = 0.0;            // sigma^2 (lambda_j)
  VectorXd ln_c;              // ln(alpha_i s2 / theta_i): beta_i = e^{L_i + ln_c_i}
  MatrixXd merton;            // nodes x n
  MatrixXd gap;               // nodes x n: P_alpha_i - (W P_alpha)_i
  MatrixXd rhs;               // count x n: -(K gap_i) on the unknown nodes
  double amount_scale = 0.0;  // largest Merton amount, currency units
};

// The game reduced to what the solver needs on one grid; the coordinates share the grid, W and each
// agent's ln eta (ln H_i sums their terms).
struct Setup {
  Schedule schedule;
  Grid grid;
  int n = 0;      // agents
  int nodes = 0;  // grid nodes
  int first = 0;  // first unknown node
  int count = 0;  // unknown nodes per agent
  VectorXd alpha, ln_eta0, theta_sum;
  std::vector<bool> free_agent;
  std::vector<int> influenced;  // agents with a positive row
  ThetaMatrix w;                // row-normalised Theta
  VectorXd kdiag, koff, m;      // K on the unknown nodes (diagonal, off-diagonal) and m there
  std::vector<CoordinateSetup> coordinates;

  Setup(const MutualGame& game, std::span<const Coordinate> coords, BoundaryCondition bc, bool free_start,
        Grid g)
      : schedule(game.schedule()), grid(std::move(g)) {
    n = game.agents();
    nodes = static_cast<int>(grid.t.size());
    const bool pinned = bc == BoundaryCondition::pinned;
    first = pinned && !free_start ? 1 : 0;
    count = pinned ? std::max(0, nodes - 1 - first) : nodes;
    alpha = game.alpha;
    ln_eta0.resize(n);
    theta_sum.resize(n);
    free_agent.assign(static_cast<std::size_t>(n), false);
    w = game.theta;
    w.prune(0.0);
    for (int i = 0; i < n; ++i) {
      ln_eta0(i) = theory::ln_eta0(schedule, coords, alpha(i), game.x0(i));
      theta_sum(i) = normalise_theta_row(w, i);
      const bool is_free = !(theta_sum(i) > 0.0);
      free_agent[static_cast<std::size_t>(i)] = is_free;
      if (!is_free) influenced.push_back(i);
    }
    kdiag.resize(count);
    koff.resize(std::max(0, count - 1));
    m.resize(count);
    for (int j = 0; j < count; ++j) {
      const auto k = static_cast<std::size_t>(first + j);
      kdiag[j] = (k >= 1 ? grid.inv_h[k - 1] : 0.0) + (k + 2 <= grid.t.size() ? grid.inv_h[k] : 0.0);
      if (j + 1 < count) koff[j] = -grid.inv_h[k];
      m[j] = grid.m[k];
    }
    for (const Coordinate& c : coords) {
      CoordinateSetup& cs = coordinates.emplace_back();
      cs.s2 = c.sigma * c.sigma;
      cs.ln_c.setZero(n);
      for (int i : influenced) cs.ln_c(i) = std::log(alpha(i) * cs.s2 / theta_sum(i));
      cs.merton.resize(nodes, n);
      for (int i = 0; i < n; ++i) {
        for (int k = 0; k < nodes; ++k)
          cs.merton(k, i) = merton_amount(schedule, c, alpha(i), grid.t[static_cast<std::size_t>(k)]);
      }
      cs.gap = cs.merton - cs.merton * w.transpose();
      cs.amount_scale = cs.merton.cwiseAbs().maxCoeff();
      cs.rhs = MatrixXd::Zero(count, n);
      for (int i : influenced) {
        for (int j = 0; j < count; ++j) {
          const int k = first + j;
          double kx = 0.0;
          if (k >= 1) kx += grid.inv_h[static_cast<std::size_t>(k - 1)] * (cs.gap(k, i) - cs.gap(k - 1, i));
          if (k + 1 < nodes)
            kx += grid.inv_h[static_cast<std::size_t>(k)] * (cs.gap(k, i) - cs.gap(k + 1, i));
          cs.rhs(j, i) = -kx;
        }
      }
    }
  }

  [[nodiscard]] int size() const { return static_cast<int>(coordinates.size()); }
  [[nodiscard]] const CoordinateSetup& coordinate(int j) const {
    return coordinates[static_cast<std::size_t>(j)];
  }
  [[nodiscard]] bool is_free(int i) const { return free_agent[static_cast<std::size_t>(i)]; }
  [[nodiscard]] double beta(int j, int i, double L) const {
    return std::exp(std::min(L + coordinate(j).ln_c(i), kMaxExponent));
  }
  // y = K x on the unknown nodes.
  void apply_k(const double* x, double* y) const {
    for (int j = 0; j < count; ++j) {
      double v = kdiag[j] * x[j];
      if (j > 0) v += koff[j - 1] * x[j - 1];
      if (j + 1 < count) v += koff[j] * x[j + 1];
      y[j] = v;
    }
  }
  // Coordinate j's term of ln H_i - ln eta0_i for a deviation on the unknown nodes.
  [[nodiscard]] double excess(int j, int i, const double* u) const {
    double sum = 0.0;
    for (int k = 0; k < count; ++k) sum += m[k] * u[k] * u[k];
    return 0.5 * alpha(i) * alpha(i) * coordinate(j).s2 * sum;
  }
  [[nodiscard]] double tolerance_for(int i, double tolerance) const {
    return std::max(tolerance, 64.0 * std::numeric_limits<double>::epsilon() * std::abs(ln_eta0(i)));
  }
};

// One Gauss-Seidel sweep of exact best responses: agent i solves its own problem (per coordinate a
// tridiagonal BVP per ln eta_i; one 1-D root in ln eta_i over the coordinates' sum) against the others'
// current deviations U; KU = K U is kept current (both one matrix per coordinate). Returns max |change of
// ln eta|.
double best_response_sweep(const Setup& s, VectorXd& L, std::vector<MatrixXd>& U, std::vector<MatrixXd>& KU) {
  double change = 0.0;
  const auto coords = static_cast<std::size_t>(s.size());
  std::vector<VectorXd> rhs(coords, VectorXd(s.count)), u(coords, VectorXd(s.count));
  VectorXd z(s.count), diag(s.count), gap(s.nodes);
  Tridiagonal tri;
  for (int i : s.influenced) {
    // Own Merton is admissible: J_i(P*) >= J_i(P_alpha) bounds eta_i <= eta0_i + alpha_i * penalty
    // of P_alpha against the weighted mean of the others (the spread term does not depend on P_i); in
    // N assets the penalty of the vector path is the coordinates' sum (Q is orthogonal).
    double penalty = 0.0;
    for (std::size_t j = 0; j < coords; ++j) {
      const CoordinateSetup& c = s.coordinates[j];
      rhs[j] = c.rhs.col(i);
      gap = c.gap.col(i);
      for (ThetaMatrix::InnerIterator it(s.w, i); it; ++it) {
        if (s.is_free(static_cast<int>(it.col()))) continue;
        rhs[j] += it.value() * KU[j].col(it.col());
        gap.segment(s.first, s.count) -= it.value() * U[j].col(it.col());
      }
      double sum = 0.0;
      for (int e = 0; e + 1 < s.nodes; ++e) {
        const double d = gap[e + 1] - gap[e];
        sum += s.grid.inv_h[static_cast<std::size_t>(e)] * d * d;
      }
      penalty += sum;
    }
    penalty *= 0.5 * s.theta_sum(i);
    const double lo = s.ln_eta0(i);
    double hi = penalty > 0.0 ? log_add_exp(lo, std::log(s.alpha(i) * penalty)) : lo;
    auto f = [&](double x) {
      double excess = 0.0, slope = 0.0;
      for (std::size_t j = 0; j < coords; ++j) {
        const int jj = static_cast<int>(j);
        const double beta = s.beta(jj, i, x);
        diag = s.kdiag + beta * s.m;
        tri.factor(diag, s.koff);
        u[j] = rhs[j];
        tri.solve(u[j].data());
        z = beta * s.m.cwiseProduct(u[j]);
        tri.solve(z.data());
        const double a2s2 = s.alpha(i) * s.alpha(i) * s.coordinate(jj).s2;
        slope += a2s2 * (s.m.cwiseProduct(u[j])).dot(z);
        excess += s.excess(jj, i, u[j].data());
      }
      return std::pair{x - lo - excess, 1.0 + slope};
    };
    double root = lo;
    if (hi > lo) {
      // Rounding can leave F(hi) slightly negative: widen.
      for (int tries = 0; f(hi).first < 0.0 && tries < 60; ++tries) hi = lo + 2.0 * (hi - lo);
      root = newton_in_bracket(f, lo, hi, L(i));
      if (!std::isfinite(root)) {
        throw SolverError(fmt::format("relative mutual game: best response of agent {} did not converge", i));
      }
    }
    (void)f(root);  // leaves agent i's deviations at the root in u
    change = std::max(change, std::abs(root - L(i)));
    L(i) = root;
    for (std::size_t j = 0; j < coords; ++j) {
      U[j].col(i) = u[j];
      s.apply_k(U[j].col(i).data(), KU[j].col(i).data());
    }
  }
  return change;
}

// The full system A(L) x = b of coordinate j over (influenced agent, unknown node), for the final residual
// and Newton.
class FullSystem {
 public:
  FullSystem(const Setup& s, int j, RelativeMutualMethod method) : s_(s), j_(j), method_(method) {
    position_.assign(static_cast<std::size_t>(s.n), -1);
    for (std::size_t p = 0; p < s.influenced.size(); ++p)
      position_[static_cast<std::size_t>(s.influenced[p])] = static_cast<int>(p);
    beta_.setZero(s.n);
    if (method_ == RelativeMutualMethod::iterative) blocks_.resize(s.influenced.size());
  }

  // Sets ln eta: new coefficients and factorisations.
  void prepare(const VectorXd& L) {
    for (int i : s_.influenced) beta_(i) = s_.beta(j_, i, L(i));
    if (unknowns() == 0) return;
    if (method_ == RelativeMutualMethod::direct) {
      factor_direct();
    } else {
      for (std::size_t p = 0; p < s_.influenced.size(); ++p) {
        const int i = s_.influenced[p];
        VectorXd d = s_.kdiag + beta_(i) * s_.m;
        blocks_[p].first = d;
        blocks_[p].second.factor(blocks_[p].first, s_.koff);
      }
    }
  }

  // x = A^{-1} b (count x n; columns of free agents are ignored and returned zero); x holds a guess and
  // scale (same units as x) is the size below which changes are rounding (iterative method).
  void solve(const MatrixXd& b, MatrixXd& x, double scale) const {
    if (unknowns() == 0) {
      x.setZero(s_.count, s_.n);
      return;
    }
    if (method_ == RelativeMutualMethod::direct) {
      VectorXd flat(unknowns());
      for (std::size_t p = 0; p < s_.influenced.size(); ++p)
        flat.segment(static_cast<Index>(p) * s_.count, s_.count) = b.col(s_.influenced[p]);
      const VectorXd sol = lu_.solve(flat);
      x.setZero(s_.count, s_.n);
      for (std::size_t p = 0; p < s_.influenced.size(); ++p)
        x.col(s_.influenced[p]) = sol.segment(static_cast<Index>(p) * s_.count, s_.count);
      return;
    }
    gauss_seidel(b, x, scale);
  }

  // y = A x.
  void apply(const MatrixXd& x, MatrixXd& y) const {
    kx_.resize(s_.count, s_.n);
    y.setZero(s_.count, s_.n);
    for (int i : s_.influenced) s_.apply_k(x.col(i).data(), kx_.col(i).data());
    for (int i : s_.influenced) {
      y.col(i) = beta_(i) * s_.m.cwiseProduct(x.col(i)) + kx_.col(i);
      for (ThetaMatrix::InnerIterator it(s_.w, i); it; ++it) {
        if (position_[static_cast<std::size_t>(it.col())] >= 0) y.col(i) -= it.value() * kx_.col(it.col());
      }
    }
  }

  [[nodiscard]] const VectorXd& beta() const { return beta_; }

 private:
  [[nodiscard]] Index unknowns() const { return static_cast<Index>(s_.influenced.size()) * s_.count; }

  void factor_direct() {
    std::vector<Eigen::Triplet<double>> entries;
    entries.reserve(static_cast<std::size_t>(unknowns()) * 3 * (1 + s_.w.nonZeros() / std::max(1, s_.n)));
    for (std::size_t p = 0; p < s_.influenced.size(); ++p) {
      const int i = s_.influenced[p];
      const Index row0 = static_cast<Index>(p) * s_.count;
      auto add_k = [&](Index col0, double scale) {
        for (int j = 0; j < s_.count; ++j) {
          entries.emplace_back(row0 + j, col0 + j, scale * s_.kdiag[j]);
          if (j + 1 < s_.count) {
            entries.emplace_back(row0 + j, col0 + j + 1, scale * s_.koff[j]);
            entries.emplace_back(row0 + j + 1, col0 + j, scale * s_.koff[j]);
          }
        }
      };
      add_k(row0, 1.0);
      for (int j = 0; j < s_.count; ++j) entries.emplace_back(row0 + j, row0 + j, beta_(i) * s_.m[j]);
      for (ThetaMatrix::InnerIterator it(s_.w, i); it; ++it) {
        const int q = position_[static_cast<std::size_t>(it.col())];
        if (q >= 0) add_k(static_cast<Index>(q) * s_.count, -it.value());
      }
    }
    Eigen::SparseMatrix<double> a(unknowns(), unknowns());
    a.setFromTriplets(entries.begin(), entries.end());
    if (!analysed_) {
      lu_.analyzePattern(a);
      analysed_ = true;
    }
    lu_.factorize(a);
    if (lu_.info() != Eigen::Success)
      throw SolverError("relative mutual game: sparse LU failed: " + lu_.lastErrorMessage());
  }

  // Block Gauss-Seidel iterations from the guess in x: each agent's own tridiagonal block beta_i M + K
  // solved against the current blocks of the others (the linear counterpart of the best-response sweeps,
  // which contract fast in the stiff regime), until no entry moves by more than 1e-13 of the largest.
  void gauss_seidel(const MatrixXd& b, MatrixXd& x, double scale) const {
    if (x.rows() != s_.count || x.cols() != s_.n) x.setZero(s_.count, s_.n);
    kx_.setZero(s_.count, s_.n);
    for (int i : s_.influenced) s_.apply_k(x.col(i).data(), kx_.col(i).data());
    VectorXd z(s_.count);
    constexpr int kMaxSweeps = 20000;
    double change = std::numeric_limits<double>::infinity();
    double best = change;
    int stagnant = 0;
    int sweep = 0;
    for (; sweep < kMaxSweeps; ++sweep) {
      change = 0.0;
      double size = scale;
      for (std::size_t p = 0; p < s_.influenced.size(); ++p) {
        const int i = s_.influenced[p];
        z = b.col(i);
        for (ThetaMatrix::InnerIterator it(s_.w, i); it; ++it) {
          if (position_[static_cast<std::size_t>(it.col())] >= 0) z += it.value() * kx_.col(it.col());
        }
        blocks_[p].second.solve(z.data());
        change = std::max(change, (z - x.col(i)).cwiseAbs().maxCoeff());
        size = std::max(size, z.cwiseAbs().maxCoeff());
        x.col(i) = z;
        s_.apply_k(x.col(i).data(), kx_.col(i).data());
      }
      if (change <= 1e-13 * size) break;
      // On the rounding floor the change stops decreasing; accept it there if it is small.
      stagnant = change < best ? 0 : stagnant + 1;
      best = std::min(best, change);
      if (stagnant >= 20 && change <= 1e-11 * size) break;
    }
    if (sweep == kMaxSweeps) {
      throw SolverError(fmt::format(
          "relative mutual game: block Gauss-Seidel did not converge in {} sweeps (last change {:.2e}); "
          "use method = direct",
          kMaxSweeps, change));
    }
  }

  const Setup& s_;
  int j_;  // the coordinate
  RelativeMutualMethod method_;
  std::vector<int> position_;  // agent -> block index among the influenced, -1 if free
  VectorXd beta_;
  bool analysed_ = false;
  Eigen::SparseLU<Eigen::SparseMatrix<double>, Eigen::COLAMDOrdering<int>> lu_;
  std::vector<std::pair<VectorXd, Tridiagonal>> blocks_;
  mutable MatrixXd kx_;
};

// F(L) = L - ln H(P(L)) from exact full solves (one system per coordinate), and its Jacobian-vector product
// for Newton-Krylov.
class Residual {
 public:
  Residual(const Setup& s, RelativeMutualMethod method) : s_(s), u_(static_cast<std::size_t>(s.size())) {
    for (int j = 0; j < s.size(); ++j) systems_.emplace_back(s, j, method);
  }

  VectorXd evaluate(const VectorXd& L, std::vector<MatrixXd>& U) {
    for (int j = 0; j < s_.size(); ++j) {
      const auto jj = static_cast<std::size_t>(j);
      systems_[jj].prepare(L);
      systems_[jj].solve(s_.coordinate(j).rhs, U[jj], s_.coordinate(j).amount_scale);
      u_[jj] = U[jj];
    }
    VectorXd f = VectorXd::Zero(s_.n);
    for (int i : s_.influenced) {
      double excess = 0.0;  // one coordinate: its term exactly
      for (int j = 0; j < s_.size(); ++j)
        excess += s_.excess(j, i, U[static_cast<std::size_t>(j)].col(i).data());
      f(i) = L(i) - s_.ln_eta0(i) - excess;
    }
    return f;
  }

  // J v = v + Sum_j alpha_i^2 lambda_j Sum_k m_k u_jik z_jik, z_j = A_j^{-1} (beta_j o v) M u_j (implicit
  // differentiation).
  VectorXd jacobian_times(const VectorXd& v) const {
    VectorXd y = v;
    for (int j = 0; j < s_.size(); ++j) {
      const auto jj = static_cast<std::size_t>(j);
      const MatrixXd& u = u_[jj];
      const FullSystem& system = systems_[jj];
      MatrixXd b = MatrixXd::Zero(s_.count, s_.n);
      for (int i : s_.influenced) b.col(i) = (system.beta()(i) * v(i)) * s_.m.cwiseProduct(u.col(i));
      MatrixXd z;
      system.solve(b, z, v.cwiseAbs().maxCoeff() * u.cwiseAbs().maxCoeff());
      for (int i = 0; i < s_.n; ++i) {
        if (s_.is_free(i)) {
          y(i) = 0.0;
          continue;
        }
        y(i) += s_.alpha(i) * s_.alpha(i) * s_.coordinate(j).s2 * s_.m.cwiseProduct(u.col(i)).dot(z.col(i));
      }
    }
    return y;
  }

 private:
  const Setup& s_;
  std::deque<FullSystem> systems_;  // deque: emplaced in place (SparseLU does not move)
  std::vector<MatrixXd> u_;
};

struct Outcome {
  VectorXd ln_eta;
  std::vector<MatrixXd> u;  // per coordinate: count x n
  double residual = 0.0;
  int sweeps = 0;
  int newton_steps = 0;
};

Outcome solve_on_grid(const Setup& s, const VectorXd& start, RelativeMutualMethod method,
                      const RelativeMutualOptions& options) {
  Outcome out;
  VectorXd L = start;
  const auto coords = static_cast<std::size_t>(s.size());
  std::vector<MatrixXd> U(coords, MatrixXd::Zero(s.count, s.n));
  std::vector<MatrixXd> KU(coords, MatrixXd::Zero(s.count, s.n));
  // Sweeps contract fast under weak coupling (stiff layers); under strong coupling they crawl along the
  // consensus modes, so hand over to Newton once the contraction is slow.
  const int max_sweeps = std::min(options.max_iterations, 400);
  double previous = std::numeric_limits<double>::infinity();
  while (out.sweeps < max_sweeps) {
    const double change = best_response_sweep(s, L, U, KU);
    ++out.sweeps;
    sim::setup_tick("relative mutual game: best-response sweeps", out.sweeps, max_sweeps);
    if (change <= 0.01 * options.tolerance || (out.sweeps >= 3 && change > 0.7 * previous)) break;
    previous = change;
  }
  KU.clear();

  Residual residual(s, method);
  auto converged = [&](const VectorXd& f) {
    for (int i : s.influenced) {
      if (!(std::abs(f(i)) <= s.tolerance_for(i, options.tolerance))) return false;
    }
    return true;
  };
  VectorXd f = residual.evaluate(L, U);
  NewtonKrylovBudget budget{out.sweeps, out.newton_steps, options.max_iterations, options.tolerance,
                            std::min(std::max(1, static_cast<int>(s.influenced.size())), 40)};
  std::vector<MatrixXd> trial_u = U;
  solve_newton_krylov(
      "relative mutual game", L, f, budget, [&](const VectorXd& x) { return residual.evaluate(x, trial_u); },
      [&](const VectorXd& x) { return residual.jacobian_times(x); }, converged,
      [&](int i) { return s.is_free(i); }, [&] { U = trial_u; });
  out.newton_steps = budget.newton_steps;
  out.ln_eta = L;
  out.u = std::move(U);
  out.residual = max_abs(f);
  return out;
}

// End steps of the continuous grid from the largest layer stiffness q = beta_i G^2 at each end (over the
// coordinates: the largest lambda_j has the narrowest layers).
std::pair<double, double> end_steps(const MutualGame& game, std::span<const Coordinate> coords,
                                    const VectorXd& L, const RelativeMutualOptions& o) {
  const Schedule schedule = game.schedule();
  double ln_beta = -std::numeric_limits<double>::infinity();
  for (const Coordinate& c : coords) {
    const double s2 = c.sigma * c.sigma;
    for (Index i = 0; i < game.theta.outerSize(); ++i) {
      double sum = 0.0;
      for (ThetaMatrix::InnerIterator it(game.theta, i); it; ++it) sum += it.value();
      if (sum > 0.0)
        ln_beta = std::max(ln_beta, std::min(L(i) + std::log(game.alpha(i) * s2 / sum), kMaxExponent));
    }
  }
  auto step = [&](double t) {
    if (ln_beta == -std::numeric_limits<double>::infinity()) return o.max_step;  // nobody herds
    const double sqrt_q = std::exp(0.5 * ln_beta + schedule.ln_growth(t));
    return std::min(o.max_step, o.max_h_sqrt_q / sqrt_q);
  };
  return {step(0.0), step(game.horizon)};
}

void check_options(const RelativeMutualOptions& o) {
  auto fail = [](const char* name, double value, const char* domain) {
    throw InputError(fmt::format("relative mutual options: {} must be {}, got {}", name, domain, value));
  };
  if (!(o.max_h_sqrt_q > 0.0 && o.max_h_sqrt_q <= 1.0)) fail("max_h_sqrt_q", o.max_h_sqrt_q, "in (0, 1]");
  if (!(o.grading > 0.0 && std::isfinite(o.grading))) fail("grading", o.grading, "> 0 and finite");
  if (!(o.max_step > 0.0 && std::isfinite(o.max_step))) fail("max_step", o.max_step, "> 0 and finite");
  if (!(o.node_spacing >= 0.0 && std::isfinite(o.node_spacing)))
    fail("node_spacing", o.node_spacing, ">= 0 and finite");
  if (o.max_nodes < 2) fail("max_nodes", o.max_nodes, ">= 2");
  if (!(o.tolerance > 0.0)) fail("tolerance", o.tolerance, "> 0");
  if (o.max_iterations < 1) fail("max_iterations", o.max_iterations, ">= 1");
}

}  // namespace

RelativeMutualSolution::RelativeMutualSolution(MutualGame game, RelativeMutualOptions options,
                                               AssetBasis basis)
    : game_(std::move(game)), options_(options), basis_(std::move(basis)) {}

double RelativeMutualSolution::own_merton(int i, double t) const {
  assert(assets() == 1 && "several assets: own Merton is a vector");
  return merton_amount(game_.schedule(), game_.alpha(i), t);
}

double RelativeMutualSolution::interpolate(int j, int i, double t) const {
  const MatrixXd& amount = amount_[static_cast<std::size_t>(j)];
  const MatrixXd& merton = merton_[static_cast<std::size_t>(j)];
  const Index nodes = time_.size();
  if (game_.time.is_discrete()) {
    const double dt = game_.schedule().step_years();
    const auto k = std::clamp<Index>(static_cast<Index>(std::floor(t / dt + 1e-9)), 0, nodes - 1);
    return amount(k, i);
  }
  const double tc = std::clamp(t, 0.0, game_.horizon);
  const auto upper = std::upper_bound(time_.data(), time_.data() + nodes, tc) - time_.data();
  const Index k = std::clamp<Index>(upper - 1, 0, nodes - 2);
  const double x = (tc - time_[k]) / (time_[k + 1] - time_[k]);
  if (x == 0.0) return amount(k, i);
  if (x == 1.0) return amount(k + 1, i);
  // The deviation from own Merton is what varies on the grid's scale; Merton itself is exact.
  const double u0 = amount(k, i) - merton(k, i);
  const double u1 = amount(k + 1, i) - merton(k + 1, i);
  const Coordinate& c = basis_.coordinates[static_cast<std::size_t>(j)];
  return merton_amount(game_.schedule(), c, game_.alpha(i), tc) + (1.0 - x) * u0 + x * u1;
}

double RelativeMutualSolution::amount(int i, double t) const {
  assert(assets() == 1 && "several assets: use asset_amounts");
  return interpolate(0, i, t);
}

Eigen::VectorXd RelativeMutualSolution::amounts(double t) const {
  assert(assets() == 1 && "several assets: use asset_amounts");
  return coordinate_amounts(0, t);
}

Eigen::VectorXd RelativeMutualSolution::coordinate_amounts(int j, double t) const {
  VectorXd out(game_.agents());
  for (int i = 0; i < game_.agents(); ++i) out(i) = interpolate(j, i, t);
  return out;
}

Eigen::MatrixXd RelativeMutualSolution::asset_amounts(double t) const {
  MatrixXd rotated(game_.agents(), assets());
  for (int j = 0; j < assets(); ++j) rotated.col(j) = coordinate_amounts(j, t);
  return rotated * basis_.q.transpose();  // row i: (Q P~_i)'
}

double RelativeMutualSolution::ln_h(int i, const Eigen::VectorXd& path) const {
  assert(assets() == 1 && "several assets: ln H sums the coordinates");
  const double s2 = game_.market.sigma * game_.market.sigma;
  const double d2 = (path - merton_.front().col(i)).cwiseAbs2().dot(weight_);
  return ln_eta0_(i) + 0.5 * game_.alpha(i) * game_.alpha(i) * s2 * d2;
}

double RelativeMutualSolution::objective(int i, const Eigen::MatrixXd& paths) const {
  double penalty = 0.0;
  for (ThetaMatrix::InnerIterator it(game_.theta, i); it; ++it) {
    double sum = 0.0;
    for (Index e = 0; e + 1 < time_.size(); ++e) {
      const double d = (paths(e + 1, i) - paths(e, i)) - (paths(e + 1, it.col()) - paths(e, it.col()));
      sum += d * d / (time_[e + 1] - time_[e]);
    }
    penalty += it.value() * sum;
  }
  return -std::exp(ln_h(i, paths.col(i))) / game_.alpha(i) - 0.5 * penalty;
}

RelativeMutualSolution RelativeMutualSolution::solve_in_basis(const MutualGame& game, AssetBasis basis,
                                                              const RelativeMutualOptions& options) {
  if (game.rho != 0.0) {
    throw InputError(fmt::format(
        "rho applies only to absolute herding (no time weight on the rate gap), got {}", game.rho));
  }
  check_options(options);
  const Schedule schedule = game.schedule();
  const std::span<const Coordinate> coords = basis.coordinates;
  VectorXd lo(game.agents());
  for (int i = 0; i < game.agents(); ++i) lo(i) = ln_eta0(schedule, coords, game.alpha(i), game.x0(i));

  auto build = [&](const VectorXd& L) {
    if (game.time.is_discrete()) return discrete_grid(schedule);
    const auto [h_left, h_right] = end_steps(game, coords, L, options);
    return continuous_grid(schedule, h_left, h_right, options);
  };
  // The layers narrow as eta grows (q ~ eta): size the grid for eta0 e^{1/2}, and rebuild it for the
  // solution's eta if that turns out larger (stiff cases: eta ~ eta0).
  VectorXd start = lo;
  std::unique_ptr<Setup> setup;
  Outcome out;
  RelativeMutualMethod method = options.method;
  int sweeps = 0, newton_steps = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    VectorXd sizing = start.array() + 0.5;
    setup = std::make_unique<Setup>(game, coords, options.bc, options.free_start, build(sizing));
    if (options.method == RelativeMutualMethod::automatic) {
      const double unknowns =
          static_cast<double>(setup->count) * static_cast<double>(setup->influenced.size());
      method = unknowns <= 3e5 ? RelativeMutualMethod::direct : RelativeMutualMethod::iterative;
    }
    try {
      out = solve_on_grid(*setup, start, method, options);
    } catch (const SolverError&) {
      // Gauss-Seidel crawls under strong coupling (and on natural ends' near-singular modes): the
      // automatic choice falls back to the direct factorisation.
      if (options.method != RelativeMutualMethod::automatic || method == RelativeMutualMethod::direct) throw;
      method = RelativeMutualMethod::direct;
      out = solve_on_grid(*setup, start, method, options);
    }
    out.sweeps += sweeps;
    out.newton_steps += newton_steps;
    sweeps = out.sweeps;
    newton_steps = out.newton_steps;
    if (game.time.is_discrete() || (out.ln_eta.array() <= sizing.array()).all()) break;
    start = out.ln_eta;
  }
  const Setup& s = *setup;
  RelativeMutualSolution sol(game, options, std::move(basis));
  sol.ln_eta0_ = lo;
  sol.sweeps_ = sweeps;
  sol.newton_steps_ = newton_steps;
  sol.ln_eta_ = out.ln_eta;
  sol.residual_ = out.residual;
  sol.method_ = method;
  sol.time_ = Eigen::Map<const VectorXd>(s.grid.t.data(), s.nodes);
  sol.weight_ = Eigen::Map<const VectorXd>(s.grid.m.data(), s.nodes);
  for (int j = 0; j < s.size(); ++j) {
    const CoordinateSetup& c = s.coordinate(j);
    sol.merton_.push_back(c.merton);
    MatrixXd& amount = sol.amount_.emplace_back(c.merton);
    for (int i : s.influenced)
      amount.col(i).segment(s.first, s.count) += out.u[static_cast<std::size_t>(j)].col(i);
  }
  return sol;
}

RelativeMutualSolution solve_relative_mutual(const MutualGame& game, RelativeMutualOptions options) {
  validate(game);
  return RelativeMutualSolution::solve_in_basis(game, one_asset_basis(game.market), options);
}

RelativeMutualSolution solve_relative_mutual(const MutualGame& game, const Eigen::MatrixXd& covariance,
                                             const Eigen::VectorXd& excess, RelativeMutualOptions options) {
  validate(game);
  return RelativeMutualSolution::solve_in_basis(game, asset_basis(covariance, excess), options);
}

}  // namespace herdsim::theory
