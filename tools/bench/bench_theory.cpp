// Theory-library benchmarks (issue 2): absolute-herding solves per second against threads,
// relative-herding solve time on the stiffest golden case, mutual-game time for N = 1,000 dense
// and N = 100,000 on a sparse ring, and the same games in three correlated assets (docs/theory.md §7.1:
// one scalar game per coordinate). Prints throughput and scaling; not a test.
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>

#include <fmt/format.h>
#include <Eigen/Sparse>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "sim/theory/absolute_herd.hpp"
#include "sim/theory/market.hpp"
#include "sim/theory/mutual_game.hpp"
#include "sim/theory/relative_herd.hpp"

using namespace herdsim::theory;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The paper's inference grid: 6 lottery probabilities x 11 theta scores, cycled.
std::vector<HerdProblem> paper_grid() {
  std::vector<HerdProblem> grid;
  for (double p : {0.4, 0.5, 0.6, 0.7, 0.8, 0.9}) {
    for (int score = 0; score <= 10; ++score) {
      HerdProblem hp;
      hp.alpha = alpha_from_lottery_prob(p);
      hp.theta = theta_from_score(score);
      grid.push_back(hp);
    }
  }
  return grid;
}

void bench_absolute(int max_threads, double min_seconds) {
  fmt::print("absolute herding (P3), paper grid cycled, continuous time:\n");
  const auto grid = paper_grid();
  double base = 0.0;
  for (int threads = 1; threads <= max_threads; ++threads) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism,
                              static_cast<std::size_t>(threads));
    std::atomic<long> solves{0};
    std::atomic<double> sink{0.0};
    const auto start = Clock::now();
    while (seconds_since(start) < min_seconds) {
      constexpr long batch = 66 * 1000;
      tbb::parallel_for(tbb::blocked_range<long>(0, batch, 1024), [&](const tbb::blocked_range<long>& range) {
        double local = 0.0;
        for (long i = range.begin(); i != range.end(); ++i) {
          local += solve_absolute_herd(grid[static_cast<std::size_t>(i % 66)]).ln_eta();
        }
        sink.fetch_add(local);
      });
      solves += batch;
    }
    const double rate = static_cast<double>(solves.load()) / seconds_since(start);
    if (threads == 1) base = rate;
    fmt::print(
        "  threads {}: {:>12.0f} solves/s  ({:.2f} us/solve, speed-up {:.2f}x)   [target >= 100000/s on one "
        "core]\n",
        threads, rate, 1e6 / rate, rate / base);
  }
}

void bench_relative(double min_seconds) {
  fmt::print("relative herding (P1), stiffest golden case (p = 0.4, theta = 1e-8, pinned):\n");
  HerdProblem hp;
  hp.alpha = alpha_from_lottery_prob(0.4);
  hp.theta = 1e-8;
  for (const auto bc : {BoundaryCondition::pinned, BoundaryCondition::natural}) {
    RelativeHerdOptions opt;
    opt.bc = bc;
    int runs = 0;
    const auto start = Clock::now();
    RelativeHerdSolution last = solve_relative_herd(hp, opt);
    ++runs;
    while (seconds_since(start) < min_seconds) {
      last = solve_relative_herd(hp, opt);
      ++runs;
    }
    const double per = seconds_since(start) / runs;
    fmt::print(
        "  {:<8} {:8.3f} ms/solve  (grid {} steps, zeta {:.0f}, {} eta evaluations)   [target < 5 ms]\n",
        herdsim::to_name(bc), per * 1e3, last.steps(), last.zeta(), last.evaluations());
  }
}

MutualGame ring_game(int n, int neighbours) {
  MutualGame game;
  game.alpha.resize(n);
  game.x0 = Eigen::VectorXd::Constant(n, 10.0);
  std::vector<Eigen::Triplet<double>> edges;
  for (int i = 0; i < n; ++i) {
    game.alpha[i] = alpha_from_lottery_prob(0.4 + 0.1 * (i % 6));
    for (int d = 1; d <= neighbours; ++d) {
      const double th = theta_from_score(1 + (i + d) % 10);
      edges.emplace_back(i, (i + d) % n, th);
      edges.emplace_back(i, (i - d + n) % n, th);
    }
  }
  game.theta.resize(n, n);
  game.theta.setFromTriplets(edges.begin(), edges.end());
  return game;
}

MutualGame dense_game(int n) {
  MutualGame game;
  game.alpha.resize(n);
  game.x0 = Eigen::VectorXd::Constant(n, 10.0);
  std::vector<Eigen::Triplet<double>> edges;
  for (int i = 0; i < n; ++i) {
    game.alpha[i] = alpha_from_lottery_prob(0.4 + 0.1 * (i % 6));
    for (int j = 0; j < n; ++j) {
      if (i != j) edges.emplace_back(i, j, theta_from_score(1 + (i * 7 + j) % 10) / n);
    }
  }
  game.theta.resize(n, n);
  game.theta.setFromTriplets(edges.begin(), edges.end());
  return game;
}

void bench_mutual(int dense_n, int ring_n) {
  fmt::print("mutual influence (P2), continuous time:\n");
  struct Case {
    std::string name;
    MutualGame game;
    MutualMethod method;
    bool assets = false;  // three correlated assets (scenarios/market/correlated_assets.toml's market)
  };
  std::vector<Case> cases;
  cases.push_back({fmt::format("dense all-to-all N={}", dense_n), dense_game(dense_n), MutualMethod::dense});
  cases.push_back(
      {fmt::format("sparse ring (k=2) N={}", ring_n), ring_game(ring_n, 2), MutualMethod::sparse});
  cases.push_back(
      {fmt::format("3 assets, dense N={}", dense_n), dense_game(dense_n), MutualMethod::dense, true});
  // A tenth of the ring: the Newton polish keeps a factorisation per node and coordinate.
  cases.push_back({fmt::format("3 assets, ring N={}", ring_n / 10), ring_game(ring_n / 10, 2),
                   MutualMethod::sparse, true});
  const Eigen::Vector3d sigma(0.17, 0.06, 0.20);
  Eigen::Matrix3d correlation;
  correlation << 1.0, 0.3, -0.2, 0.3, 1.0, 0.1, -0.2, 0.1, 1.0;
  const Eigen::MatrixXd covariance = sigma.asDiagonal() * correlation * sigma.asDiagonal();
  const Eigen::VectorXd excess = Eigen::Vector3d(0.03, 0.005, 0.02);
  for (auto& c : cases) {
    MutualOptions opt;
    opt.method = c.method;
    const auto start = Clock::now();
    const auto sol =
        c.assets ? solve_mutual_game(c.game, covariance, excess, opt) : solve_mutual_game(c.game, opt);
    const double secs = seconds_since(start);
    fmt::print("  {:<28} {:9.3f} s  ({} iterations, residual {:.1e}, {:.1f} us/agent)\n", c.name, secs,
               sol.iterations(), sol.residual(), secs * 1e6 / static_cast<double>(c.game.alpha.size()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  // --quick: shorter timing windows and smaller games (a smoke run, e.g. in CI).
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const int max_threads = static_cast<int>(tbb::info::default_concurrency());
  fmt::print("herdsim theory benchmarks ({} hardware threads{})\n\n", max_threads, quick ? ", quick" : "");
  bench_absolute(max_threads, quick ? 0.2 : 2.0);
  fmt::print("\n");
  bench_relative(quick ? 0.1 : 1.0);
  fmt::print("\n");
  bench_mutual(quick ? 200 : 1000, quick ? 10000 : 100000);
  return 0;
}
