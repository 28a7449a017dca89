#include "sim/theory/mutual_game.hpp"

#include <fmt/format.h>
#include <Eigen/IterativeLinearSolvers>
#include <Eigen/LU>
#include <Eigen/SparseLU>
#include <algorithm>
#include <cassert>
#include <cmath>
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

double normalise_theta_row(ThetaMatrix& theta, Eigen::Index i) {
  double sum = 0.0;
  for (ThetaMatrix::InnerIterator it(theta, i); it; ++it) sum += it.value();
  if (sum > 0.0) {
    for (ThetaMatrix::InnerIterator it(theta, i); it; ++it) it.valueRef() /= sum;
  }
  return sum;
}

namespace {

// Notation. Dividing row i of the equilibrium system by (eta_i alpha_i sigma^2 G^2 + w theta_i), with
// theta_i the row sum and W = Theta / theta_i the row-normalised weights, gives per node
//   P_i = omega_i P_alpha_i + (1 - omega_i) (W P)_i,   1 - omega_i = 1 / (1 + e^{L_i - a_i - b(t)}),
// a_i = ln(theta_i / (alpha_i sigma^2)), b(t) = (rho - 2) ln G(t): every coefficient is a logistic of
// ln eta, so nothing over- or underflows however small eta is. In deviations u = P - P_alpha:
//   M u = (1 - omega) o (W P_alpha - P_alpha),   M = I - diag(1 - omega) W,
//   ln H_i = ln eta0_i + (alpha_i^2 sigma^2 / 2) Int G^2 u_i^2.

// 1 - omega for coupling exponent x = L - a - b (0 for an agent nobody influences).
double pull(double x) {
  return 1.0 / (1.0 + std::exp(x));
}

// One coordinate of the game (docs/theory.md §7.1): sigma^2 -> lambda_j, v -> v~_j; one asset is one.
struct CoordinateSetup {
  double s2 = 0.0;             // sigma^2 (lambda_j)
  Eigen::VectorXd a;           // ln(theta_i / (alpha_i s2)); unused for free agents
  Eigen::MatrixXd merton;      // nodes x n: P_alpha
  Eigen::MatrixXd merton_gap;  // nodes x n: W P_alpha - P_alpha
};

// The game reduced to what the solver needs, evaluated on the integration nodes. The coordinates share the
// nodes, the weights W and each agent's ln eta: ln H_i sums their terms.
struct Setup {
  Schedule schedule;
  int n = 0;                     // agents
  int nodes = 0;                 // quadrature nodes or decision steps
  std::vector<double> t;         // node times, years
  std::vector<double> h;         // weight * G^2: ln H_i = ln eta0_i + Sum_j (alpha_i^2 s2_j / 2) Sum h u_ij^2
  std::vector<double> b;         // (rho - 2) ln G
  Eigen::VectorXd alpha;         // per agent
  Eigen::VectorXd ln_eta0;       // lower end of each agent's ln eta
  std::vector<bool> free_agent;  // zero row of Theta: plays its own Merton path
  ThetaMatrix w;                 // row-normalised Theta
  std::vector<CoordinateSetup> coordinates;

  Setup(const MutualGame& game, std::span<const Coordinate> coords) : schedule(game.schedule()) {
    n = game.agents();
    // P is rational in G^{2-rho}; poles sit at least pi / (2 |2-rho| r) off the real axis (the
    // Laplacian's eigenvalues have Re >= 0), hence twice the rate of the unilateral integrand.
    schedule.for_each_node(2.0 * std::max(1.0, std::abs(2.0 - game.rho)), [&](double time, double weight) {
      const double ln_g = schedule.ln_growth(time);
      t.push_back(time);
      h.push_back(weight * std::exp(2.0 * ln_g));
      b.push_back((game.rho - 2.0) * ln_g);
    });
    nodes = static_cast<int>(t.size());
    alpha = game.alpha;
    ln_eta0.resize(n);
    free_agent.assign(static_cast<std::size_t>(n), false);
    w = game.theta;
    w.prune(0.0);
    Eigen::VectorXd row_sum(n);
    for (int i = 0; i < n; ++i) {
      ln_eta0(i) = theory::ln_eta0(schedule, coords, alpha(i), game.x0(i));
      row_sum(i) = normalise_theta_row(w, i);
      free_agent[static_cast<std::size_t>(i)] = !(row_sum(i) > 0.0);
    }
    for (const Coordinate& c : coords) {
      CoordinateSetup& cs = coordinates.emplace_back();
      cs.s2 = c.sigma * c.sigma;
      cs.a.resize(n);
      for (int i = 0; i < n; ++i) cs.a(i) = is_free(i) ? 0.0 : std::log(row_sum(i) / (alpha(i) * cs.s2));
      cs.merton.resize(nodes, n);
      for (int i = 0; i < n; ++i) {
        for (int m = 0; m < nodes; ++m)
          cs.merton(m, i) = merton_amount(schedule, c, alpha(i), t[static_cast<std::size_t>(m)]);
      }
      cs.merton_gap = cs.merton * w.transpose() - cs.merton;
    }
  }

  [[nodiscard]] int size() const { return static_cast<int>(coordinates.size()); }
  [[nodiscard]] const CoordinateSetup& coordinate(int j) const {
    return coordinates[static_cast<std::size_t>(j)];
  }
  [[nodiscard]] bool is_free(int i) const { return free_agent[static_cast<std::size_t>(i)]; }
  // 1 - omega of agent i at node m in coordinate j for ln eta = L.
  [[nodiscard]] double pull_at(int j, int i, int m, double L) const {
    return is_free(i) ? 0.0 : pull(L - coordinate(j).a(i) - b[static_cast<std::size_t>(m)]);
  }
  // The rounding floor of ln H_i: the tolerance cannot be below a few ulp of |ln eta0_i|.
  [[nodiscard]] double tolerance_for(int i, double tolerance) const {
    return std::max(tolerance, 64.0 * std::numeric_limits<double>::epsilon() * std::abs(ln_eta0(i)));
  }
};

// M = I - diag(q) W factored by dense LU (partial pivoting).
class DenseNode {
 public:
  using Weights = Eigen::MatrixXd;
  void factor(const Weights& w, const Eigen::VectorXd& q) {
    Eigen::MatrixXd m = -(q.asDiagonal() * w);
    m.diagonal().array() += 1.0;
    lu_.compute(m);
  }
  [[nodiscard]] Eigen::VectorXd solve(const Eigen::VectorXd& rhs) const { return lu_.solve(rhs); }

 private:
  Eigen::PartialPivLU<Eigen::MatrixXd> lu_;
};

// M = I - diag(q) W solved iteratively by BiCGSTAB (Jacobi-preconditioned). M is a strictly
// diagonally dominant M-matrix (0 <= q < 1, W row-stochastic), so this converges for any graph,
// while a sparse direct LU fills in catastrophically on random (Erdos-Renyi, small-world) graphs.
// Weights holds W + I column-major, the pattern of every node's M.
class SparseNode {
 public:
  using Weights = Eigen::SparseMatrix<double>;
  void factor(const Weights& w_plus_identity, const Eigen::VectorXd& q) {
    m_ = w_plus_identity;
    for (Eigen::Index col = 0; col < m_.outerSize(); ++col) {
      for (Eigen::SparseMatrix<double>::InnerIterator it(m_, col); it; ++it) {
        if (it.row() != col) it.valueRef() *= -q(it.row());
      }
    }
    solver_.setTolerance(1e-15);
    solver_.setMaxIterations(2000);
    solver_.compute(m_);
    if (solver_.info() != Eigen::Success)
      throw SolverError("mutual game: preconditioner of a node system failed");
  }
  [[nodiscard]] Eigen::VectorXd solve(const Eigen::VectorXd& rhs) const {
    Eigen::VectorXd x = solver_.solve(rhs);
    // BiCGSTAB stops at a relative residual of 1e-15 or when it stagnates at rounding level; check
    // the true residual instead of trusting the flag.
    const double scale = std::max(rhs.cwiseAbs().maxCoeff(), std::numeric_limits<double>::min());
    if (!((m_ * x - rhs).cwiseAbs().maxCoeff() <= 1e-12 * scale)) {
      throw SolverError(
          fmt::format("mutual game: iterative node solve did not converge ({} iterations, error {:.2e})",
                      solver_.iterations(), solver_.error()));
    }
    return x;
  }

 private:
  Eigen::SparseMatrix<double> m_;
  Eigen::BiCGSTAB<Eigen::SparseMatrix<double>, Eigen::DiagonalPreconditioner<double>> solver_;
};

// W + I column-major for SparseNode (W has no diagonal entries).
Eigen::SparseMatrix<double> sparse_weights(const ThetaMatrix& w) {
  Eigen::SparseMatrix<double> identity(w.rows(), w.cols());
  identity.setIdentity();
  return Eigen::SparseMatrix<double>(w) + identity;
}

// The equilibrium conditions F(L) = L - ln H(P(L)) with P(L) from exact per-node solves (per coordinate),
// and the Jacobian-vector product of F for Newton-Krylov.
template <class Node>
class Residual {
 public:
  Residual(const Setup& s, const typename Node::Weights& w)
      : s_(s), w_(w), u_(static_cast<std::size_t>(s.size())), omega_u_(static_cast<std::size_t>(s.size())) {}

  // F at L. With keep_factors the node factorizations stay for jacobian_times(); without, one
  // scratch factorization is reused (memory of one node instead of all).
  Eigen::VectorXd evaluate(const Eigen::VectorXd& L, bool keep_factors) {
    const auto slots = static_cast<std::size_t>(s_.nodes) * static_cast<std::size_t>(s_.size());
    if (keep_factors && !factors_) factors_ = std::make_unique<Node[]>(slots);
    Eigen::VectorXd q(s_.n);
    for (int j = 0; j < s_.size(); ++j) {
      const CoordinateSetup& c = s_.coordinate(j);
      Eigen::MatrixXd& u = u_[static_cast<std::size_t>(j)];
      Eigen::MatrixXd& omega_u = omega_u_[static_cast<std::size_t>(j)];
      u.resize(s_.nodes, s_.n);
      omega_u.resize(s_.nodes, s_.n);
      for (int m = 0; m < s_.nodes; ++m) {
        for (int i = 0; i < s_.n; ++i) q(i) = s_.pull_at(j, i, m, L(i));
        Node& node = keep_factors ? factor_of(j, m) : scratch_;
        node.factor(w_, q);
        Eigen::VectorXd dev = node.solve(q.cwiseProduct(c.merton_gap.row(m).transpose()));
        for (int i = 0; i < s_.n; ++i) {
          if (s_.is_free(i)) dev(i) = 0.0;  // exactly Merton, not Merton plus rounding
          u(m, i) = dev(i);
          omega_u(m, i) = (1.0 - q(i)) * dev(i);
        }
      }
    }
    Eigen::VectorXd f(s_.n);
    for (int i = 0; i < s_.n; ++i) {
      double excess = 0.0;  // ln H_i - ln eta0_i: the coordinates' terms (one coordinate: its term exactly)
      for (int j = 0; j < s_.size(); ++j) {
        const Eigen::MatrixXd& u = u_[static_cast<std::size_t>(j)];
        double sum = 0.0;
        for (int m = 0; m < s_.nodes; ++m) sum += s_.h[static_cast<std::size_t>(m)] * u(m, i) * u(m, i);
        excess += 0.5 * s_.alpha(i) * s_.alpha(i) * s_.coordinate(j).s2 * sum;
      }
      f(i) = L(i) - s_.ln_eta0(i) - excess;
    }
    return f;
  }

  // J x with J = dF/dL = I + Sum_j Sum_m diag(c_jm) M_jm^{-1} diag(omega_jm u_jm), c_jm = alpha^2 s2_j h_m
  // u_jm (implicit differentiation of M u = (1 - omega) o gap: M du/dL_i = -e_i omega_i u_i).
  Eigen::VectorXd jacobian_times(const Eigen::VectorXd& x) const {
    Eigen::VectorXd y = x;
    for (int j = 0; j < s_.size(); ++j) {
      const Eigen::MatrixXd& u = u_[static_cast<std::size_t>(j)];
      const Eigen::MatrixXd& omega_u = omega_u_[static_cast<std::size_t>(j)];
      const double s2 = s_.coordinate(j).s2;
      for (int m = 0; m < s_.nodes; ++m) {
        const Eigen::VectorXd rhs = omega_u.row(m).transpose().cwiseProduct(x);
        const Eigen::VectorXd z = factor_of(j, m).solve(rhs);
        const double hm = s_.h[static_cast<std::size_t>(m)];
        for (int i = 0; i < s_.n; ++i) {
          if (!s_.is_free(i)) y(i) += s_.alpha(i) * s_.alpha(i) * s2 * hm * u(m, i) * z(i);
        }
      }
    }
    return y;
  }

 private:
  [[nodiscard]] Node& factor_of(int j, int m) const {
    return factors_[static_cast<std::size_t>(j) * static_cast<std::size_t>(s_.nodes) +
                    static_cast<std::size_t>(m)];
  }

  const Setup& s_;
  const typename Node::Weights& w_;  // row-normalised Theta in the node solver's format
  std::unique_ptr<Node[]> factors_;  // per coordinate and node, from the last evaluate(L, true)
  Node scratch_;
  std::vector<Eigen::MatrixXd> u_;        // per coordinate: nodes x n deviations P - P_alpha
  std::vector<Eigen::MatrixXd> omega_u_;  // per coordinate: nodes x n, omega o u
};

// One Gauss-Seidel sweep of exact best responses: agent i solves its unilateral problem against the
// others' current paths (its "leader" is the weighted mean W_i P, per coordinate; one eta for all of
// them). Updates L and P (one nodes x n matrix per coordinate); returns max |dL|.
double best_response_sweep(const Setup& s, Eigen::VectorXd& L, std::vector<Eigen::MatrixXd>& P) {
  double change = 0.0;
  const auto coords = static_cast<std::size_t>(s.size());
  std::vector<Eigen::VectorXd> gap(coords, Eigen::VectorXd(s.nodes));
  std::vector<double> scale(coords);
  for (int i = 0; i < s.n; ++i) {
    if (s.is_free(i)) continue;  // stays at ln eta0 and its Merton path
    double span = 0.0;           // ln H_i - ln eta0_i when imitating completely: the bracket's width
    for (std::size_t j = 0; j < coords; ++j) {
      const CoordinateSetup& c = s.coordinates[j];
      gap[j] = -c.merton.col(i);
      for (ThetaMatrix::InnerIterator it(s.w, i); it; ++it) gap[j] += it.value() * P[j].col(it.col());
      scale[j] = 0.5 * s.alpha(i) * s.alpha(i) * c.s2;
      double sum = 0.0;
      for (int m = 0; m < s.nodes; ++m) sum += s.h[static_cast<std::size_t>(m)] * gap[j](m) * gap[j](m);
      span += sum * scale[j];
    }
    const double lo = s.ln_eta0(i);
    double root = lo;
    if (span > 0.0) {
      // Unilateral eta equation F(x) = x - lo - Sum_j scale_j Sum h (pull gap)^2: increasing (F' >= 1),
      // F(lo) <= 0 <= F(lo + span). Warm-started Newton needs two or three evaluations per agent.
      auto f = [&](double x) {
        double total = 0.0, total_slope = 0.0;
        for (std::size_t j = 0; j < coords; ++j) {
          double sum = 0.0, slope = 0.0;
          for (int m = 0; m < s.nodes; ++m) {
            const double p = s.pull_at(static_cast<int>(j), i, m, x);
            const double d = p * gap[j](m);
            sum += s.h[static_cast<std::size_t>(m)] * d * d;
            slope += s.h[static_cast<std::size_t>(m)] * d * d * (1.0 - p);  // d pull / dx = -pull (1 - pull)
          }
          total += scale[j] * sum;
          total_slope += scale[j] * slope;
        }
        return std::pair{x - lo - total, 1.0 + 2.0 * total_slope};
      };
      root = newton_in_bracket(f, lo, lo + span, L(i));
      if (!std::isfinite(root)) {
        throw SolverError(fmt::format("mutual game: best response of agent {} did not converge", i));
      }
    }
    change = std::max(change, std::abs(root - L(i)));
    L(i) = root;
    for (std::size_t j = 0; j < coords; ++j) {
      for (int m = 0; m < s.nodes; ++m)
        P[j](m, i) = s.coordinates[j].merton(m, i) + s.pull_at(static_cast<int>(j), i, m, root) * gap[j](m);
    }
  }
  return change;
}

struct Outcome {
  Eigen::VectorXd ln_eta;
  double residual = 0.0;
  int sweeps = 0;
  int newton_steps = 0;
};

template <class Node>
Outcome solve_with(const Setup& s, const typename Node::Weights& w, const MutualOptions& options) {
  Outcome out;
  // Start: ln eta0 and own Merton paths; the first sweep is then each agent's best response to the
  // others' Merton paths (later agents already see the updated earlier ones).
  Eigen::VectorXd L = s.ln_eta0;
  std::vector<Eigen::MatrixXd> P;
  for (const CoordinateSetup& c : s.coordinates) P.push_back(c.merton);
  // Sweeps are cheap (O(nnz * nodes)) and contract fast under weak coupling; under strong coupling
  // they crawl along the consensus mode, so hand over to Newton once the contraction is slow.
  const int max_sweeps = std::min(options.max_iterations, 50);
  double previous = std::numeric_limits<double>::infinity();
  double last_change = previous;
  while (out.sweeps < max_sweeps) {
    last_change = best_response_sweep(s, L, P);
    ++out.sweeps;
    sim::setup_tick("mutual game: best-response sweeps", out.sweeps, max_sweeps);
    if (last_change <= 0.1 * options.tolerance || (out.sweeps >= 2 && last_change > 0.25 * previous)) break;
    previous = last_change;
  }
  P.clear();

  Residual<Node> residual(s, w);
  auto converged = [&](const Eigen::VectorXd& f) {
    for (int i = 0; i < s.n; ++i) {
      if (!(std::abs(f(i)) <= s.tolerance_for(i, options.tolerance))) return false;
    }
    return true;
  };
  // After converged sweeps the check usually passes: evaluate without storing all factorizations.
  const bool swept_to_tolerance = last_change <= 0.1 * options.tolerance;
  Eigen::VectorXd f = residual.evaluate(L, !swept_to_tolerance);
  if (swept_to_tolerance && !converged(f)) f = residual.evaluate(L, true);
  NewtonKrylovBudget budget{out.sweeps, out.newton_steps, options.max_iterations, options.tolerance,
                            std::min(s.n, 40)};
  solve_newton_krylov(
      "mutual game", L, f, budget, [&](const Eigen::VectorXd& x) { return residual.evaluate(x, true); },
      [&](const Eigen::VectorXd& x) { return residual.jacobian_times(x); }, converged,
      [&](int i) { return s.is_free(i); }, [] {});
  out.newton_steps = budget.newton_steps;
  out.ln_eta = L;
  out.residual = max_abs(f);
  return out;
}

MutualMethod choose_method(const MutualGame& game, MutualMethod requested) {
  if (requested != MutualMethod::automatic) return requested;
  const double n = game.agents();
  const double nnz = static_cast<double>(game.theta.nonZeros());
  // Dense LU wins for small or dense networks; nodes * N^2 doubles must stay affordable.
  return (n <= 200.0 || (n <= 2000.0 && nnz >= 0.1 * n * n)) ? MutualMethod::dense : MutualMethod::sparse;
}

void check_positive(const char* name, int i, double value) {
  if (!(value > 0.0) || !std::isfinite(value)) {
    throw InputError(fmt::format("{}[{}] (agent {}) must be > 0 and finite, got {}", name, i, i, value));
  }
}

void check_theta(const ThetaMatrix& theta, Eigen::Index n) {
  if (theta.rows() != n || theta.cols() != n) {
    throw InputError(
        fmt::format("theta must be N x N with N = {} agents, got {} x {}", n, theta.rows(), theta.cols()));
  }
  for (Eigen::Index i = 0; i < theta.outerSize(); ++i) {
    for (ThetaMatrix::InnerIterator it(theta, i); it; ++it) {
      if (!(it.value() >= 0.0) || !std::isfinite(it.value())) {
        throw InputError(fmt::format("theta({},{}) (agent {}) must be >= 0 and finite, got {}", it.row(),
                                     it.col(), it.row(), it.value()));
      }
      if (it.row() == it.col() && it.value() != 0.0) {
        throw InputError(
            fmt::format("theta({},{}) (agent {}) must be 0: an agent does not herd on itself, got {}",
                        it.row(), it.col(), it.row(), it.value()));
      }
    }
  }
}

// Agents reachable from agent 0 along the stored positive entries of `graph` (rows = outgoing edges).
template <class Matrix>
Eigen::Index reachable_from_first(const Matrix& graph) {
  std::vector<bool> seen(static_cast<std::size_t>(graph.outerSize()), false);
  std::vector<Eigen::Index> stack{0};
  seen[0] = true;
  Eigen::Index count = 1;
  while (!stack.empty()) {
    const Eigen::Index k = stack.back();
    stack.pop_back();
    for (typename Matrix::InnerIterator it(graph, k); it; ++it) {
      const auto next = static_cast<std::size_t>(it.index());
      if (it.value() > 0.0 && !seen[next]) {
        seen[next] = true;
        ++count;
        stack.push_back(it.index());
      }
    }
  }
  return count;
}

}  // namespace

void validate(const MutualGame& game) {
  const Eigen::Index n = game.alpha.size();
  if (n < 1) throw InputError("alpha must have at least one agent, got 0 entries");
  if (game.x0.size() != n) {
    throw InputError(fmt::format("x0 must have one entry per agent ({}), got {}", n, game.x0.size()));
  }
  for (int i = 0; i < n; ++i) {
    check_positive("alpha", i, game.alpha(i));
    check_positive("x0", i, game.x0(i));
  }
  check_theta(game.theta, n);
  if (!(game.market.sigma > 0.0) || !std::isfinite(game.market.sigma)) {
    throw InputError(fmt::format("sigma must be > 0 and finite, got {}", game.market.sigma));
  }
  if (!std::isfinite(game.market.mu))
    throw InputError(fmt::format("mu must be finite, got {}", game.market.mu));
  if (!std::isfinite(game.market.r)) throw InputError(fmt::format("r must be finite, got {}", game.market.r));
  if (!std::isfinite(game.rho)) throw InputError(fmt::format("rho must be finite, got {}", game.rho));
  (void)game.schedule();  // horizon and the discrete step count
}

MutualSolution::MutualSolution(MutualGame game, Eigen::VectorXd ln_eta, double residual, int sweeps,
                               int newton_steps, MutualMethod method_used, AssetBasis basis)
    : game_(std::move(game)),
      ln_eta_(std::move(ln_eta)),
      residual_(residual),
      sweeps_(sweeps),
      newton_steps_(newton_steps),
      method_(method_used),
      basis_(std::move(basis)) {}

Eigen::VectorXd MutualSolution::coordinate_amounts(int j, double t) const {
  // The same reduced system as the solver, at one time point (row-normalised, in deviations).
  const Coordinate& c = basis_.coordinates[static_cast<std::size_t>(j)];
  const Schedule schedule = game_.schedule();
  const Eigen::Index n = game_.alpha.size();
  const double s2 = c.sigma * c.sigma;
  const double b = (game_.rho - 2.0) * schedule.ln_growth(t);
  ThetaMatrix w = game_.theta;
  w.prune(0.0);
  Eigen::VectorXd merton(n), q(n);
  std::vector<bool> free_agent(static_cast<std::size_t>(n));
  for (Eigen::Index i = 0; i < n; ++i) {
    merton(i) = merton_amount(schedule, c, game_.alpha(i), t);
    const double row_sum = normalise_theta_row(w, i);
    free_agent[static_cast<std::size_t>(i)] = !(row_sum > 0.0);
    q(i) = row_sum > 0.0 ? pull(ln_eta_(i) - std::log(row_sum / (game_.alpha(i) * s2)) - b) : 0.0;
  }
  const Eigen::VectorXd rhs = q.cwiseProduct(w * merton - merton);
  Eigen::VectorXd dev;
  if (method_ == MutualMethod::dense) {
    DenseNode node;
    node.factor(Eigen::MatrixXd(w), q);
    dev = node.solve(rhs);
  } else {
    SparseNode node;
    node.factor(sparse_weights(w), q);
    dev = node.solve(rhs);
  }
  for (Eigen::Index i = 0; i < n; ++i) {
    if (free_agent[static_cast<std::size_t>(i)]) dev(i) = 0.0;  // free agents play Merton exactly
  }
  return merton + dev;
}

Eigen::VectorXd MutualSolution::amounts(double t) const {
  assert(assets() == 1 && "several assets: use asset_amounts");
  return coordinate_amounts(0, t);
}

Eigen::MatrixXd MutualSolution::asset_amounts(double t) const {
  Eigen::MatrixXd rotated(game_.alpha.size(), assets());
  for (int j = 0; j < assets(); ++j) rotated.col(j) = coordinate_amounts(j, t);
  return rotated * basis_.q.transpose();  // row i: (Q P~_i)'
}

double MutualSolution::amount(int i, double t) const {
  return amounts(t)(i);
}

double MutualSolution::own_merton(int i, double t) const {
  assert(assets() == 1 && "several assets: own Merton is a vector");
  return merton_amount(game_.schedule(), game_.alpha(i), t);
}

namespace {

MutualSolution solve_in_basis(const MutualGame& game, AssetBasis basis, const MutualOptions& options) {
  if (!(options.tolerance > 0.0))
    throw InputError(fmt::format("tolerance must be > 0, got {}", options.tolerance));
  if (options.max_iterations < 1) {
    throw InputError(fmt::format("max_iterations must be >= 1, got {}", options.max_iterations));
  }
  const Setup setup(game, basis.coordinates);
  const MutualMethod method = choose_method(game, options.method);
  Outcome out;
  if (method == MutualMethod::dense) {
    out = solve_with<DenseNode>(setup, Eigen::MatrixXd(setup.w), options);
  } else {
    out = solve_with<SparseNode>(setup, sparse_weights(setup.w), options);
  }
  return {game, std::move(out.ln_eta), out.residual, out.sweeps, out.newton_steps, method, std::move(basis)};
}

}  // namespace

MutualSolution solve_mutual_game(const MutualGame& game, MutualOptions options) {
  validate(game);
  return solve_in_basis(game, one_asset_basis(game.market), options);
}

MutualSolution solve_mutual_game(const MutualGame& game, const Eigen::MatrixXd& covariance,
                                 const Eigen::VectorXd& excess, MutualOptions options) {
  validate(game);
  return solve_in_basis(game, asset_basis(covariance, excess), options);
}

Eigen::VectorXd stationary_weights(const ThetaMatrix& theta) {
  const Eigen::Index n = theta.rows();
  if (n < 1) throw InputError("theta must have at least one agent");
  check_theta(theta, n);
  const Eigen::SparseMatrix<double> reverse = theta;  // column-major: iterates incoming edges
  if (reachable_from_first(theta) != n || reachable_from_first(reverse) != n) {
    throw InputError(
        "theta: the influence graph is not strongly connected, so its stationary weights are not unique");
  }
  if (n == 1) return Eigen::VectorXd::Ones(1);
  // L^T pi = 0 has rank n - 1 and pi is positive, so replacing one equation by Sum pi = 1 is regular.
  std::vector<Eigen::Triplet<double>> entries;
  const Eigen::VectorXd row_sum = theta * Eigen::VectorXd::Ones(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    if (i != n - 1) entries.emplace_back(i, i, row_sum(i));
    entries.emplace_back(n - 1, i, 1.0);
    for (ThetaMatrix::InnerIterator it(theta, i); it; ++it) {
      if (it.col() != n - 1)
        entries.emplace_back(it.col(), it.row(), -it.value());  // (L^T)(j, i) = -theta_ij
    }
  }
  Eigen::SparseMatrix<double> system(n, n);
  system.setFromTriplets(entries.begin(), entries.end());
  Eigen::SparseLU<Eigen::SparseMatrix<double>> lu(system);
  if (lu.info() != Eigen::Success)
    throw SolverError("stationary_weights: LU failed: " + lu.lastErrorMessage());
  Eigen::VectorXd rhs = Eigen::VectorXd::Zero(n);
  rhs(n - 1) = 1.0;
  Eigen::VectorXd pi = lu.solve(rhs);
  return pi / pi.sum();
}

double asymptotic_amount(const MutualGame& game, const Eigen::VectorXd& ln_eta, double t) {
  validate(game);
  if (ln_eta.size() != game.alpha.size()) {
    throw InputError(
        fmt::format("ln_eta must have one entry per agent ({}), got {}", game.alpha.size(), ln_eta.size()));
  }
  const Eigen::VectorXd pi = stationary_weights(game.theta);
  // Sum pi eta and Sum pi eta alpha share the factor e^{max L}; drop it before exponentiating.
  double top = -std::numeric_limits<double>::infinity();
  for (Eigen::Index i = 0; i < pi.size(); ++i) {
    if (pi(i) > 0.0) top = std::max(top, ln_eta(i));
  }
  double num = 0.0, den = 0.0;
  for (Eigen::Index i = 0; i < pi.size(); ++i) {
    const double weight = pi(i) * std::exp(ln_eta(i) - top);
    num += weight;
    den += weight * game.alpha(i);
  }
  const Schedule schedule = game.schedule();
  const double s2 = game.market.sigma * game.market.sigma;
  return game.market.excess_return() * num / (s2 * den) * std::exp(-schedule.ln_growth(t));
}

}  // namespace herdsim::theory
