#include "tools/cli/theory_command.hpp"

#include <fmt/format.h>
#include <cmath>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agents/herd_agent.hpp"
#include "io/agents_csv.hpp"
#include "io/theory_report.hpp"
#include "sim/error.hpp"
#include "sim/memory.hpp"
#include "sim/theory/absolute_herd.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/mutual_game.hpp"
#include "sim/theory/relative_herd.hpp"
#include "sim/theory/relative_mutual.hpp"

namespace herdsim::cli {

namespace {

using io::TheoryReport;
using namespace herdsim::theory;

/// Flags of `herdsim theory`, as given on the command line. Defaults are the paper's.
struct TheoryFlags {
  std::string problem = "absolute";
  std::optional<double> alpha;
  std::optional<double> lottery_prob;
  double lottery_win = lottery_win10_sure3.win;
  double lottery_sure = lottery_win10_sure3.sure;
  std::optional<double> theta;
  std::optional<double> theta_score;
  double rho = 0.0;
  std::string bc = "pinned";
  std::string herd{to_name(agents::HerdType::absolute)};  // mutual: P2 or relative (docs/theory.md §3.5)
  double mu = Market{}.mu;
  double r = Market{}.r;
  double sigma = Market{}.sigma;
  double leader_alpha = defaults::alpha_leader;
  double x0 = defaults::x0;
  double horizon = defaults::horizon;
  std::string time = "continuous";
  int steps_per_year = 1;
  std::string format = "table";
  std::string agents;
  std::string eta_formula = "correct";
};

/// --herd as its enum (a name of its table: CLI11 checked it).
agents::HerdType herd_of(const TheoryFlags& f) {
  return from_name<agents::HerdType>(f.herd).value_or(agents::HerdType::absolute);
}

// The paper's worked example (docs/theory.md §3.2): lottery probability 0.9, dependence score 10.
constexpr double default_lottery_prob = 0.9;
constexpr double default_theta_score = 10.0;

/// Every problem with the flags, one line each, naming the flag and the bad value.
std::vector<std::string> check_flags(const TheoryFlags& f) {
  std::vector<std::string> errors;
  auto positive = [&](const char* flag, double value) {
    if (!(value > 0.0) || !std::isfinite(value))
      errors.push_back(fmt::format("{} must be > 0, got {}", flag, value));
  };
  auto finite = [&](const char* flag, double value) {
    if (!std::isfinite(value)) errors.push_back(fmt::format("{} must be finite, got {}", flag, value));
  };
  if (f.alpha) positive("--alpha", *f.alpha);
  if (!(f.lottery_win > f.lottery_sure && f.lottery_sure > 0.0)) {
    errors.push_back(
        fmt::format("--lottery-win must exceed --lottery-sure > 0, got --lottery-win {} --lottery-sure {}",
                    f.lottery_win, f.lottery_sure));
  } else if (f.lottery_prob) {
    const double lo = f.lottery_sure / f.lottery_win;
    if (!(*f.lottery_prob > lo && *f.lottery_prob < 1.0)) {
      errors.push_back(
          fmt::format("--lottery-prob must lie in ({:g}, 1) to map to a finite positive alpha, got {}", lo,
                      *f.lottery_prob));
    }
  }
  if (f.theta && !(*f.theta >= 0.0 && std::isfinite(*f.theta))) {
    errors.push_back(fmt::format("--theta must be >= 0, got {}", *f.theta));
  }
  if (f.theta_score && !(*f.theta_score >= 0.0 && std::isfinite(*f.theta_score))) {
    errors.push_back(fmt::format("--theta-score must be >= 0, got {}", *f.theta_score));
  }
  positive("--sigma", f.sigma);
  positive("--x0", f.x0);
  positive("--horizon", f.horizon);
  positive("--leader-alpha", f.leader_alpha);
  finite("--mu", f.mu);
  finite("--r", f.r);
  finite("--rho", f.rho);
  // The model's limits (sim/theory/market.hpp), the same as a scenario's.
  if (errors.empty()) {
    for (const auto& problem : market_problems({f.mu, f.r, f.sigma}, f.horizon))
      errors.push_back(fmt::format("--{}: {}", problem.key, problem.message));
    const double alpha = f.alpha ? *f.alpha
                                 : alpha_from_lottery_prob(f.lottery_prob.value_or(default_lottery_prob),
                                                           LotteryConvention{f.lottery_win, f.lottery_sure});
    if (const std::string problem = alpha_problem(alpha); !problem.empty())
      errors.push_back(fmt::format("{}: {}", f.alpha ? "--alpha" : "--lottery-prob", problem));
    if (const std::string problem = alpha_problem(f.leader_alpha); !problem.empty())
      errors.push_back(fmt::format("--leader-alpha: {}", problem));
  }
  if (f.steps_per_year < 1)
    errors.push_back(fmt::format("--steps-per-year must be >= 1, got {}", f.steps_per_year));
  if (f.time == "annual" && f.horizon > 0.0 && f.steps_per_year >= 1) {
    try {
      (void)sim::whole_steps(f.horizon, f.steps_per_year);
    } catch (const InputError& e) {
      errors.push_back(fmt::format("--horizon and --steps-per-year: {}", e.what()));
    }
  }
  if (f.problem == "relative" && f.time != "continuous") {
    errors.push_back(
        fmt::format("--time {} is not available for --problem relative (solved in continuous time)", f.time));
  }
  if (f.problem == "mutual" && f.agents.empty()) {
    errors.emplace_back("--problem mutual needs --agents FILE (CSV of alpha, x0 and a theta row per agent)");
  }
  if (f.problem != "mutual" && herd_of(f) != agents::HerdType::absolute) {
    errors.push_back(fmt::format("--herd is only used with --problem mutual, got --problem {}", f.problem));
  }
  if (f.problem == "mutual" && herd_of(f) == agents::HerdType::relative && f.rho != 0.0) {
    errors.push_back(fmt::format("--rho applies only to --herd absolute, got {}", f.rho));
  }
  if (f.problem != "mutual" && !f.agents.empty()) {
    errors.push_back(fmt::format("--agents is only used with --problem mutual, got --problem {}", f.problem));
  }
  return errors;
}

LotteryConvention lottery_of(const TheoryFlags& f) {
  return {f.lottery_win, f.lottery_sure};
}

TimeModel time_of(const TheoryFlags& f) {
  return f.time == "annual" ? TimeModel::discrete(f.steps_per_year) : TimeModel::continuous();
}

HerdProblem problem_of(const TheoryFlags& f) {
  HerdProblem p;
  p.market = {f.mu, f.r, f.sigma};
  p.alpha = f.alpha ? *f.alpha
                    : alpha_from_lottery_prob(f.lottery_prob.value_or(default_lottery_prob), lottery_of(f));
  p.alpha_leader = f.leader_alpha;
  p.theta = f.theta ? *f.theta : theta_from_score(f.theta_score.value_or(default_theta_score));
  p.rho = f.rho;
  p.x0 = f.x0;
  p.horizon = f.horizon;
  p.time = time_of(f);
  return p;
}

/// Output time points: t = 0..T in whole years (and T itself) for continuous time, every decision
/// k = 0..n-1 for discrete time.
std::vector<double> output_times(const Schedule& s) {
  std::vector<double> times;
  if (s.time().is_discrete()) {
    for (int k = 0; k < s.steps(); ++k) times.push_back(s.step_time(k));
  } else {
    for (int t = 0; t <= static_cast<int>(std::floor(s.horizon() + 1e-12)); ++t) times.push_back(t);
    if (times.back() < s.horizon() - 1e-12) times.push_back(s.horizon());
  }
  return times;
}

/// How the settings line names a time model.
std::string describe_time(TimeModel time) {
  return time.is_discrete() ? fmt::format("discrete ({} steps per year)", time.steps_per_year) : "continuous";
}

/// The `t` column: years in continuous time, the step index k for discrete time.
double t_column(const Schedule& s, double t) {
  return s.time().is_discrete() ? std::round(t / s.step_years()) : t;
}

void add_common_settings(TheoryReport& rep, const TheoryFlags& f, const HerdProblem& p) {
  rep.settings = {{"problem", f.problem},
                  {"time", describe_time(p.time)},
                  {"lottery", fmt::format("win {:g} / sure {:g}", f.lottery_win, f.lottery_sure)}};
  rep.scalars = {{"alpha", p.alpha},        {"alpha_leader", p.alpha_leader},
                 {"theta", p.theta},        {"rho", p.rho},
                 {"mu", p.market.mu},       {"r", p.market.r},
                 {"sigma", p.market.sigma}, {"x0", p.x0},
                 {"horizon", p.horizon}};
}

TheoryReport report_merton(const TheoryFlags& f) {
  HerdProblem p = problem_of(f);
  validate(p);
  const Schedule s = p.schedule();
  TheoryReport rep;
  add_common_settings(rep, f, p);
  const double l0 = ln_eta0(s, p.alpha, p.x0);
  rep.scalars.insert(rep.scalars.end(),
                     {{"eta", std::exp(l0)}, {"ln_eta", l0}, {"expected_utility", -std::exp(l0) / p.alpha}});
  rep.columns = {"t", "amount", "own_merton", "leader_merton"};
  for (double t : output_times(s)) {
    const double own = merton_amount(s, p.alpha, t);
    rep.rows.push_back({t_column(s, t), own, own, merton_amount(s, p.alpha_leader, t)});
  }
  return rep;
}

TheoryReport report_absolute(const TheoryFlags& f) {
  const HerdProblem p = problem_of(f);
  const auto sol =
      solve_absolute_herd(p, f.eta_formula == "repo" ? EtaFormula::repo_precedence_bug : EtaFormula::correct);
  const Schedule s = p.schedule();
  TheoryReport rep;
  add_common_settings(rep, f, p);
  rep.settings.emplace_back("eta_formula", f.eta_formula);
  rep.scalars.insert(rep.scalars.end(), {{"eta", sol.eta()},
                                         {"ln_eta", sol.ln_eta()},
                                         {"ln_eta0", sol.ln_eta0()},
                                         {"expected_utility", sol.expected_utility()},
                                         {"deviation_penalty", sol.deviation_penalty()},
                                         {"objective", sol.objective()}});
  rep.columns = {"t", "amount", "own_merton", "leader_merton", "opinion", "kappa"};
  for (double t : output_times(s)) {
    rep.rows.push_back({t_column(s, t), sol.amount(t), sol.own_merton(t), sol.leader_merton(t),
                        sol.opinion(t), sol.kappa(t)});
  }
  return rep;
}

TheoryReport report_relative(const TheoryFlags& f) {
  const HerdProblem p = problem_of(f);
  RelativeHerdOptions opt;
  opt.bc = from_name<BoundaryCondition>(f.bc).value_or(BoundaryCondition::pinned);
  const auto sol = solve_relative_herd(p, opt);
  const Schedule s = p.schedule();
  TheoryReport rep;
  add_common_settings(rep, f, p);
  rep.settings.emplace_back("bc", f.bc);
  rep.settings.emplace_back("method", sol.method());
  rep.scalars.insert(rep.scalars.end(), {{"eta", sol.eta()},
                                         {"ln_eta", sol.ln_eta()},
                                         {"ln_eta0", sol.ln_eta0()},
                                         {"zeta", sol.zeta()},
                                         {"stiffness", sol.stiffness()},
                                         {"grid_steps", static_cast<double>(sol.steps())},
                                         {"expected_utility", sol.expected_utility()},
                                         {"deviation_penalty", sol.deviation_penalty()},
                                         {"objective", sol.objective()}});
  rep.columns = {"t", "amount", "slope", "own_merton", "leader_merton"};
  for (double t : output_times(s)) {
    rep.rows.push_back({t, sol.amount(t), sol.slope(t), sol.own_merton(t), sol.leader_merton(t)});
  }
  return rep;
}

// The per-agent part of a mutual game's report, the same for the absolute and the relative game: alpha,
// x0, eta and ln_eta, and each agent's amount beside its own Merton amount at the output times.
template <class Solution>
void add_mutual_agents(const MutualGame& game, const Solution& sol, TheoryReport& rep) {
  const Schedule s(game.market, game.horizon, game.time);
  const auto n = static_cast<int>(game.alpha.size());
  std::vector<double> eta(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) eta[static_cast<std::size_t>(i)] = sol.eta(i);
  rep.vectors = {{"alpha", {game.alpha.data(), game.alpha.data() + n}},
                 {"x0", {game.x0.data(), game.x0.data() + n}},
                 {"eta", eta},
                 {"ln_eta", {sol.ln_eta().data(), sol.ln_eta().data() + n}}};
  rep.columns = {"agent", "t", "amount", "own_merton"};
  for (int i = 0; i < n; ++i) {
    for (double t : output_times(s)) {
      rep.rows.push_back({static_cast<double>(i), t_column(s, t), sol.amount(i, t), sol.own_merton(i, t)});
    }
  }
}

// The mutual relative game (docs/theory.md §3.5) on the same agents file; same columns as the absolute game.
TheoryReport report_relative_mutual(const TheoryFlags& f, const MutualGame& game) {
  RelativeMutualOptions opt;
  opt.bc = from_name<BoundaryCondition>(f.bc).value_or(BoundaryCondition::pinned);
  const auto sol = solve_relative_mutual(game, opt);
  TheoryReport rep;
  rep.settings = {{"problem", "mutual"},
                  {"herd", std::string(to_name(agents::HerdType::relative))},
                  {"bc", f.bc},
                  {"time", describe_time(game.time)},
                  {"agents_file", f.agents}};
  const auto n = static_cast<int>(game.alpha.size());
  rep.scalars = {{"agents", n},
                 {"residual", sol.residual()},
                 {"iterations", sol.iterations()},
                 {"grid_nodes", sol.nodes()},
                 {"mu", game.market.mu},
                 {"r", game.market.r},
                 {"sigma", game.market.sigma},
                 {"horizon", game.horizon}};
  add_mutual_agents(game, sol, rep);
  return rep;
}

TheoryReport report_mutual(const TheoryFlags& f) {
  MutualGame game = io::read_agents_csv(f.agents, lottery_of(f));
  game.market = {f.mu, f.r, f.sigma};
  game.horizon = f.horizon;
  game.time = time_of(f);
  game.rho = f.rho;
  if (herd_of(f) == agents::HerdType::relative) return report_relative_mutual(f, game);
  const auto sol = solve_mutual_game(game);
  TheoryReport rep;
  rep.settings = {{"problem", "mutual"}, {"time", describe_time(game.time)}, {"agents_file", f.agents}};
  const auto n = static_cast<int>(game.alpha.size());
  rep.scalars = {{"agents", n},
                 {"residual", sol.residual()},
                 {"iterations", sol.iterations()},
                 {"mu", game.market.mu},
                 {"r", game.market.r},
                 {"sigma", game.market.sigma},
                 {"horizon", game.horizon},
                 {"rho", game.rho}};
  add_mutual_agents(game, sol, rep);
  return rep;
}

int run_theory(const TheoryFlags& f) {
  const auto errors = check_flags(f);
  if (!errors.empty()) {
    for (const auto& e : errors) std::cerr << "herdsim theory: error: " << e << '\n';
    return 2;
  }
  try {
    TheoryReport rep;
    if (f.problem == "merton")
      rep = report_merton(f);
    else if (f.problem == "absolute")
      rep = report_absolute(f);
    else if (f.problem == "relative")
      rep = report_relative(f);
    else
      rep = report_mutual(f);
    if (f.format == "csv")
      io::write_csv(std::cout, rep);
    else if (f.format == "json")
      io::write_json(std::cout, rep);
    else
      io::write_table(std::cout, rep);
    return 0;
  } catch (const InputError& e) {
    std::cerr << "herdsim theory: error: " << e.what() << '\n';
    return 2;
  } catch (const Error& e) {
    std::cerr << "herdsim theory: failed: " << e.what() << '\n';
    return 1;
  }
}

}  // namespace

void add_theory_command(CLI::App& app) {
  auto flags = std::make_shared<TheoryFlags>();
  CLI::App* cmd = app.add_subcommand(
      "theory", "Solve a herding problem of the theory library and print the optimal path");
  cmd->add_option("--problem", flags->problem,
                  "merton | absolute (P3) | relative (P1) | mutual (P2, needs --agents)")
      ->check(CLI::IsMember({"merton", "absolute", "relative", "mutual"}))
      ->capture_default_str();
  auto* alpha = cmd->add_option("--alpha", flags->alpha,
                                "follower's CARA risk aversion (> 0); default: from --lottery-prob 0.9");
  auto* prob = cmd->add_option("--lottery-prob", flags->lottery_prob,
                               "indifference probability of the risk lottery, mapped to alpha");
  alpha->excludes(prob);
  cmd->add_option("--lottery-win", flags->lottery_win, "lottery prize (10 or 20 in the paper)")
      ->capture_default_str();
  cmd->add_option("--lottery-sure", flags->lottery_sure, "sure amount (3 or 6 in the paper)")
      ->capture_default_str();
  auto* theta =
      cmd->add_option("--theta", flags->theta, "herding coefficient (>= 0); default: --theta-score 10");
  auto* score =
      cmd->add_option("--theta-score", flags->theta_score, "dependence score, theta = score * 1e-8");
  theta->excludes(score);
  cmd->add_option("--rho", flags->rho, "exponent of the absolute penalty's time weight e^{rho r (T-t)}")
      ->capture_default_str();
  cmd->add_option("--bc", flags->bc, "relative herding boundary conditions")
      ->check(CLI::IsMember(names_of<BoundaryCondition>()))
      ->capture_default_str();
  cmd->add_option("--mu", flags->mu, "stock drift, per year")->capture_default_str();
  cmd->add_option("--r", flags->r, "risk-free rate, per year")->capture_default_str();
  cmd->add_option("--sigma", flags->sigma, "stock volatility")->capture_default_str();
  cmd->add_option("--leader-alpha", flags->leader_alpha, "leader's CARA risk aversion")
      ->capture_default_str();
  cmd->add_option("--x0", flags->x0, "initial wealth, currency units")->capture_default_str();
  cmd->add_option("--horizon", flags->horizon, "horizon T, years")->capture_default_str();
  cmd->add_option("--time", flags->time, "continuous time, or discrete decision steps (annual by default)")
      ->check(CLI::IsMember({"continuous", "annual"}))
      ->capture_default_str();
  cmd->add_option("--steps-per-year", flags->steps_per_year, "decisions per year with --time annual")
      ->capture_default_str();
  cmd->add_option("--format", flags->format, "output format")
      ->check(CLI::IsMember({"table", "csv", "json"}))
      ->capture_default_str();
  cmd->add_option("--agents", flags->agents, "agents CSV of the mutual game (docs/theory.md §8.1)");
  cmd->add_option("--herd", flags->herd,
                  "mutual game: absolute (P2) or relative herding (docs/theory.md §3.5; uses --bc)")
      ->check(CLI::IsMember(names_of<agents::HerdType>()))
      ->capture_default_str();
  cmd->add_option("--eta-formula", flags->eta_formula,
                  "'repo' reproduces the released code's precedence bug (compatibility only)")
      ->check(CLI::IsMember({"correct", "repo"}))
      ->capture_default_str();
  cmd->callback([flags]() {
    const int code = run_theory(*flags);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace herdsim::cli
