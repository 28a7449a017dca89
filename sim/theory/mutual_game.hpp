#pragma once
// Mutual absolute herding (the paper's P2, objective reconstructed): N agents, agent i maximises
//   J_i = -H_i[P_i]/alpha_i - (1/2) Sum_j theta_ij Int e^{rho r (T-t)} (P_i - P_j)^2 dt.
// The open-loop Nash equilibrium satisfies, at every t (G = growth, w = e^{rho r (T-t)}, L = Laplacian),
//   (diag(eta_i alpha_i sigma^2 G^2) + w L) P = eta v G,   ln eta_i = ln H_i[P_i],
// solved on ln eta by Gauss-Seidel best-response sweeps and a Newton-Krylov polish.
// In N correlated assets (docs/theory.md §7.1) the system decouples in the eigenbasis of Sigma into one such
// game per coordinate (sigma^2 -> lambda_j, v -> v~_j), coupled only through each agent's eta: ln H_i sums
// the coordinates' terms. One asset is the one-coordinate case (same bits).
#include <Eigen/Dense>
#include <Eigen/Sparse>

#include "sim/theory/asset_basis.hpp"
#include "sim/theory/schedule.hpp"

namespace herdsim::theory {

/// Row-major sparse matrix of herding weights: theta(i, j) = weight of agent j in agent i's penalty.
using ThetaMatrix = Eigen::SparseMatrix<double, Eigen::RowMajor>;

/// An N-agent mutual-influence game (units: alpha per currency unit, x0 in currency units, T in years).
struct MutualGame {
  Market market{};                           ///< market parameters, shared by all agents
  double horizon = defaults::horizon;        ///< T, years, > 0
  TimeModel time = TimeModel::continuous();  ///< continuous trading or discrete decisions
  double rho = 0.0;       ///< exponent of the time weight e^{rho r (T-t)} on every theta_ij
  Eigen::VectorXd alpha;  ///< per agent CARA risk aversion, per currency unit, > 0
  Eigen::VectorXd x0;     ///< per agent initial wealth, currency units, > 0
  ThetaMatrix theta;      ///< N x N herding weights (currency^-1 per year^-1 scale), >= 0, zero diagonal

  /// Number of agents N.
  [[nodiscard]] int agents() const { return static_cast<int>(alpha.size()); }
  /// The game's time axis.
  [[nodiscard]] Schedule schedule() const { return {market, horizon, time}; }
};

/// Throws InputError naming the field (and agent index) outside its domain: alpha, x0 > 0 and finite,
/// theta square N x N, entries >= 0 and finite with a zero diagonal, market and horizon as for HerdProblem.
void validate(const MutualGame& game);

/// Linear algebra for the per-time-point N x N systems.
enum class MutualMethod {
  automatic,  ///< dense for small or dense Theta, sparse otherwise
  dense,      ///< Eigen::PartialPivLU per node; memory nodes * N^2 doubles
  sparse,     ///< Jacobi-preconditioned BiCGSTAB per node (residual checked); memory ~ nodes * nnz(Theta)
};

/// Solver settings.
struct MutualOptions {
  MutualMethod method = MutualMethod::automatic;  ///< linear algebra, see MutualMethod
  double tolerance = 1e-12;  ///< target of max_i |ln H_i - ln eta_i| (dimensionless; raised to the rounding
                             ///< floor 64 ulp of |ln eta0_i| for agents where that is larger)
  int max_iterations = 200;  ///< cap on Gauss-Seidel sweeps plus Newton steps; SolverError beyond it
};

/// The equilibrium: ln eta per agent and the data to evaluate every agent's path at any t.
class MutualSolution {
 public:
  MutualSolution(MutualGame game, Eigen::VectorXd ln_eta, double residual, int sweeps, int newton_steps,
                 MutualMethod method_used, AssetBasis basis);

  /// The game that was solved.
  [[nodiscard]] const MutualGame& game() const { return game_; }
  /// ln eta_i = ln H_i at the equilibrium, per agent (dimensionless).
  [[nodiscard]] const Eigen::VectorXd& ln_eta() const { return ln_eta_; }
  /// eta_i = H_i at the equilibrium (dimensionless; may underflow to 0 for wealthy agents, use ln_eta).
  [[nodiscard]] double eta(int i) const { return std::exp(ln_eta_(i)); }
  /// max_i |ln H_i[P_i] - ln eta_i| at the returned ln eta, from exact per-node linear solves.
  [[nodiscard]] double residual() const { return residual_; }
  /// Outer iterations used: Gauss-Seidel sweeps plus Newton steps.
  [[nodiscard]] int iterations() const { return sweeps_ + newton_steps_; }
  /// Gauss-Seidel best-response sweeps used.
  [[nodiscard]] int sweeps() const { return sweeps_; }
  /// Newton-Krylov steps used.
  [[nodiscard]] int newton_steps() const { return newton_steps_; }
  /// The linear algebra that was used (never automatic).
  [[nodiscard]] MutualMethod method_used() const { return method_; }

  /// Number of risky assets (coordinates of the basis).
  [[nodiscard]] int assets() const { return basis_.size(); }
  /// The eigenbasis the game was solved in (one asset: Q = [1], the market's coordinate).
  [[nodiscard]] const AssetBasis& basis() const { return basis_; }

  /// One asset: all agents' equilibrium AMOUNTS in the stock at time t (years), currency units; one
  /// agents x agents solve.
  [[nodiscard]] Eigen::VectorXd amounts(double t) const;
  /// One asset: agent i's equilibrium AMOUNT at time t, currency units (solves for all agents; prefer
  /// amounts()).
  [[nodiscard]] double amount(int i, double t) const;
  /// One asset: agent i's own Merton AMOUNT at time t, currency units.
  [[nodiscard]] double own_merton(int i, double t) const;
  /// All agents' equilibrium AMOUNTS P~_j in coordinate j of the basis at time t, currency units.
  [[nodiscard]] Eigen::VectorXd coordinate_amounts(int j, double t) const;
  /// All agents' equilibrium AMOUNTS per asset at time t: agents x assets, row i = (Q P~_i(t))', currency
  /// units (one asset: the column amounts(t)).
  [[nodiscard]] Eigen::MatrixXd asset_amounts(double t) const;

 private:
  MutualGame game_;
  Eigen::VectorXd ln_eta_;
  double residual_;
  int sweeps_;
  int newton_steps_;
  MutualMethod method_;
  AssetBasis basis_;
};

/// Solves the game; throws InputError for invalid input and SolverError (with the residual) when the
/// residual does not reach the tolerance within max_iterations.
[[nodiscard]] MutualSolution solve_mutual_game(const MutualGame& game, MutualOptions options = {});

/// Solves the game in the assets of `covariance` Sigma (N x N, per year) and `excess` v = mu - r (per year),
/// docs/theory.md §7.1: one scalar game per coordinate of the eigenbasis, one eta per agent whose equation
/// sums the coordinates' terms; game.market supplies r only (its mu and sigma are not read, its sigma must
/// still be valid). N = 1 gives the one-asset solver's bits. Throws as above, and InputError for a bad Sigma.
[[nodiscard]] MutualSolution solve_mutual_game(const MutualGame& game, const Eigen::MatrixXd& covariance,
                                               const Eigen::VectorXd& excess, MutualOptions options = {});

/// Divides row i of theta by its sum when that is positive (the row-normalised weights W of both
/// games) and returns the sum theta_i (0 for an agent nobody influences).
double normalise_theta_row(ThetaMatrix& theta, Eigen::Index i);

/// The stationary weights pi of the influence graph: pi^T L = 0, Sum pi = 1, L = diag(rowsum) - Theta
/// (dimensionless; uniform for symmetric Theta). InputError unless the graph of theta_ij > 0 is strongly
/// connected.
[[nodiscard]] Eigen::VectorXd stationary_weights(const ThetaMatrix& theta);

/// The common strategy all agents approach when Theta is scaled to infinity on a strongly connected
/// graph: P_inf(t) = v Sum pi_i eta_i / (sigma^2 G(t) Sum pi_i eta_i alpha_i), AMOUNT in currency units.
/// ln_eta per agent (dimensionless); evaluated in log space, so eta below 1e-300 is fine.
[[nodiscard]] double asymptotic_amount(const MutualGame& game, const Eigen::VectorXd& ln_eta, double t);

}  // namespace herdsim::theory
