#pragma once
// Mutual relative herding (docs/theory.md §3.5, no paper counterpart): N agents, agent i maximises
//   J_i = -H_i[P_i]/alpha_i - (1/2) Sum_j theta_ij Int_0^T (P_i' - P_j')^2 dt,
// an open-loop Nash game whose first-order conditions form a coupled linear BVP
//   Sum_j theta_ij (P_i'' - P_j'') = eta_i (alpha_i sigma^2 G^2 P_i - v G),   ln eta_i = ln H_i[P_i].
// Discretise-then-optimise: every J_i on one grid (trapezoid integrals, forward-difference slopes); at
// fixed eta the gradients vanish on a sparse linear system over (agent, node), block tridiagonal in time
// with N x N blocks from Theta; natural end conditions come out of the discrete gradient for free.
// The outer solve on ln eta is Gauss-Seidel sweeps of exact best responses (1-D bracketed roots, one
// tridiagonal solve per evaluation) and a Newton-Krylov polish on the full system.
// In N correlated assets (docs/theory.md §7.1) the game decouples in the eigenbasis of Sigma into one such
// game per coordinate (sigma^2 -> lambda_j, v -> v~_j) on one grid, coupled only through each agent's eta
// (ln H_i sums the coordinates' terms; each best response is one root over all of them). One asset is the
// one-coordinate case (same bits).
#include <Eigen/Dense>
#include <vector>

#include "sim/theory/mutual_game.hpp"
#include "sim/theory/relative_herd.hpp"

namespace herdsim::theory {

/// Linear algebra for the full (agent, node) system of the Newton polish and the final residual.
enum class RelativeMutualMethod {
  automatic,  ///< direct up to 300,000 unknowns, iterative beyond (direct if that fails to converge)
  direct,     ///< Eigen::SparseLU (COLAMD ordering) of the whole system
  iterative,  ///< block Gauss-Seidel over agents (a tridiagonal solve per agent and sweep), from a guess
};

/// Solver settings. Continuous-time grid rule: step h(t) = min(max_step, h_end + grading * d(t)), d the
/// distance to the nearer end and h_end = max_h_sqrt_q / sqrt(q_end), q = max_i eta_i alpha_i sigma^2
/// G^2 / theta_i at that end (the inverse squared width of the boundary layers); multiples of node_spacing
/// are nodes. The scheme is second order: boundary layers carry a relative error of about
/// (h sqrt(q))^2 / 12, i.e. ~1e-5 with the defaults. Discrete time uses the decision steps as the grid.
struct RelativeMutualOptions {
  BoundaryCondition bc = BoundaryCondition::pinned;               ///< end conditions, as for P1
  RelativeMutualMethod method = RelativeMutualMethod::automatic;  ///< full-system linear algebra
  double max_h_sqrt_q = 0.01;  ///< step at each end times sqrt(q) there, dimensionless, in (0, 1]
  double grading = 0.01;       ///< growth of the step per year of distance from the nearer end, > 0
  double max_step = 0.02;      ///< largest step, years, > 0
  double node_spacing = 1.0;   ///< multiples of this in (0, T) are grid nodes, years (0: none)
  int max_nodes = 2'000'000;   ///< refuse (SolverError) grids with more nodes than this
  double tolerance = 1e-12;    ///< target of max_i |ln H_i - ln eta_i| (raised to 64 ulp of |ln eta0_i|)
  int max_iterations = 500;    ///< cap on sweeps plus Newton steps; SolverError beyond it
  /// Restart of a plan (policy replan): the start node is free for every agent (its discrete transversality
  /// condition), whatever `bc` says; the end at T keeps `bc`.
  bool free_start = false;
};

/// The equilibrium on the solver's grid.
class RelativeMutualSolution {
 public:
  /// The game that was solved.
  [[nodiscard]] const MutualGame& game() const { return game_; }
  /// The settings used.
  [[nodiscard]] const RelativeMutualOptions& options() const { return options_; }
  /// ln eta_i = ln H_i at the equilibrium, per agent (dimensionless).
  [[nodiscard]] const Eigen::VectorXd& ln_eta() const { return ln_eta_; }
  /// eta_i (may underflow to 0 for wealthy agents; use ln_eta).
  [[nodiscard]] double eta(int i) const { return std::exp(ln_eta_(i)); }
  /// max_i |ln H_i[P_i] - ln eta_i| with P from an exact solve of the full system at the returned ln eta.
  [[nodiscard]] double residual() const { return residual_; }
  /// Gauss-Seidel best-response sweeps used.
  [[nodiscard]] int sweeps() const { return sweeps_; }
  /// Newton-Krylov steps used.
  [[nodiscard]] int newton_steps() const { return newton_steps_; }
  /// Sweeps plus Newton steps.
  [[nodiscard]] int iterations() const { return sweeps_ + newton_steps_; }
  /// The full-system linear algebra used (never automatic).
  [[nodiscard]] RelativeMutualMethod method_used() const { return method_; }
  /// Number of grid nodes (decisions in discrete time).
  [[nodiscard]] int nodes() const { return static_cast<int>(time_.size()); }
  /// Grid nodes, years.
  [[nodiscard]] const Eigen::VectorXd& grid_time() const { return time_; }
  /// Number of risky assets (coordinates of the basis).
  [[nodiscard]] int assets() const { return basis_.size(); }
  /// The eigenbasis the game was solved in (one asset: Q = [1], the market's coordinate).
  [[nodiscard]] const AssetBasis& basis() const { return basis_; }
  /// Equilibrium AMOUNTS at the nodes, nodes x agents, currency units (one asset; N assets: coordinate 0).
  [[nodiscard]] const Eigen::MatrixXd& grid_amount() const { return amount_.front(); }

  /// One asset: agent i's equilibrium AMOUNT at time t in [0, T] (years), currency units: own Merton plus
  /// the deviation interpolated linearly between nodes (continuous time); the decision in force at t
  /// (discrete time).
  [[nodiscard]] double amount(int i, double t) const;
  /// One asset: all agents' amounts at time t, currency units.
  [[nodiscard]] Eigen::VectorXd amounts(double t) const;
  /// One asset: agent i's own Merton AMOUNT at time t, currency units.
  [[nodiscard]] double own_merton(int i, double t) const;
  /// All agents' equilibrium AMOUNTS P~_j in coordinate j of the basis at time t (as amounts()).
  [[nodiscard]] Eigen::VectorXd coordinate_amounts(int j, double t) const;
  /// All agents' equilibrium AMOUNTS per asset at time t: agents x assets, row i = (Q P~_i(t))', currency
  /// units.
  [[nodiscard]] Eigen::MatrixXd asset_amounts(double t) const;

  /// One asset: the discretised J_i (utility units: currency) of agent i when all agents play `paths`
  /// (nodes x agents, AMOUNTS at the grid nodes); the function whose stationary points the solver finds.
  [[nodiscard]] double objective(int i, const Eigen::MatrixXd& paths) const;
  /// One asset: the discretised ln H_i of a path at the grid nodes (dimensionless).
  [[nodiscard]] double ln_h(int i, const Eigen::VectorXd& path) const;

 private:
  friend RelativeMutualSolution solve_relative_mutual(const MutualGame& game, RelativeMutualOptions options);
  friend RelativeMutualSolution solve_relative_mutual(const MutualGame& game,
                                                      const Eigen::MatrixXd& covariance,
                                                      const Eigen::VectorXd& excess,
                                                      RelativeMutualOptions options);
  RelativeMutualSolution(MutualGame game, RelativeMutualOptions options, AssetBasis basis);
  /// The solver, in the given basis (validate(game) done by the caller).
  static RelativeMutualSolution solve_in_basis(const MutualGame& game, AssetBasis basis,
                                               const RelativeMutualOptions& options);
  /// Coordinate j's amount of agent i at time t.
  [[nodiscard]] double interpolate(int j, int i, double t) const;

  MutualGame game_;
  RelativeMutualOptions options_;
  AssetBasis basis_;
  Eigen::VectorXd ln_eta_, ln_eta0_;
  double residual_ = 0.0;
  int sweeps_ = 0;
  int newton_steps_ = 0;
  RelativeMutualMethod method_ = RelativeMutualMethod::direct;
  Eigen::VectorXd time_;                 // nodes, years
  Eigen::VectorXd weight_;               // utility weight of each node times G^2, years
  std::vector<Eigen::MatrixXd> amount_;  // per coordinate: nodes x agents
  std::vector<Eigen::MatrixXd> merton_;  // per coordinate: nodes x agents
};

/// Solves the game (rho must be 0: there is no time weight on the rate gap). Throws InputError naming the
/// field for invalid input (as validate(MutualGame), plus the options) and SolverError (with the residual)
/// when the residual does not reach the tolerance.
[[nodiscard]] RelativeMutualSolution solve_relative_mutual(const MutualGame& game,
                                                           RelativeMutualOptions options = {});

/// Solves the game in the assets of `covariance` Sigma (N x N, per year) and `excess` v = mu - r (per year),
/// docs/theory.md §7.1: one scalar game per coordinate of the eigenbasis on one grid (sized for the largest
/// lambda_j), one eta per agent; game.market supplies r only (its mu and sigma are not read, its sigma
/// must still be valid). N = 1 gives the one-asset solver's bits. Throws as above, and InputError for a bad
/// Sigma.
[[nodiscard]] RelativeMutualSolution solve_relative_mutual(const MutualGame& game,
                                                           const Eigen::MatrixXd& covariance,
                                                           const Eigen::VectorXd& excess,
                                                           RelativeMutualOptions options = {});

}  // namespace herdsim::theory
