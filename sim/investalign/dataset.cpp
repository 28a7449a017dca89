#include "sim/investalign/dataset.hpp"

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <algorithm>
#include <cmath>
#include <exception>
#include <numeric>

#include "sim/error.hpp"
#include "sim/market/random.hpp"
#include "sim/theory/absolute_herd.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/mutual_game.hpp"

namespace herdsim::investalign {

namespace {

using namespace herdsim::theory;

// Keys of the random draws (all on sim::Stream::parameters, see docs/investagents.md):
//   split:   path 0, step 0, index = cell
//   samples: path = 1 + problem, step = sample index, index = one of the draws below
constexpr std::uint64_t draw_cell = 0;
constexpr std::uint64_t draw_lottery = 1;
constexpr std::uint64_t draw_budget = 2;
constexpr std::uint64_t draw_peer_lottery = 3;
constexpr std::uint64_t draw_peer_score = 4;

/// Index in [0, n) from a uniform in (0, 1).
std::size_t pick(double u, std::size_t n) {
  return std::min(n - 1, static_cast<std::size_t>(u * static_cast<double>(n)));
}

/// What defines one sample before solving.
struct SampleSpec {
  Problem problem = Problem::absolute;
  int index = 0;  // within the problem
  int cell = 0;
  double lottery_prob = 0.0;
  double score = 0.0;
  double budget = 0.0;
  std::optional<std::pair<double, double>> peer;  // (lottery probability, score)
};

/// What the theory says about one sample.
struct Solved {
  double ln_eta = 0.0;
  std::vector<double> amounts;  // t = 1..T
  double opinion_first = 1.0;   // absolute: w(1), w(T)
  double opinion_last = 1.0;
};

InvestorProfile profile_of(const DatasetConfig& c, double p, double score, double budget) {
  InvestorProfile out;
  out.lottery_prob = p;
  out.alpha = alpha_from_lottery_prob(p, c.lottery);
  out.score = score;
  out.theta = theta_from_score(score);
  out.budget = budget;
  return out;
}

HerdProblem herd_problem_of(const DatasetConfig& c, const InvestorProfile& inv) {
  HerdProblem p;
  p.market = c.market;
  p.alpha = inv.alpha;
  p.alpha_leader = c.alpha_leader;
  p.theta = inv.theta;
  p.x0 = inv.budget;
  p.horizon = dataset_horizon_years;
  p.time = TimeModel::continuous();
  return p;
}

/// The amounts at t = 1..T of a path.
std::vector<double> yearly(const std::function<double(double)>& amount) {
  std::vector<double> out;
  for (int j = 1; j <= dataset_horizon_years; ++j) out.push_back(amount(j));
  return out;
}

Solved solve_sample(const DatasetConfig& c, Problem problem, const InvestorProfile& inv,
                    const std::optional<InvestorProfile>& peer) {
  Solved out;
  switch (problem) {
    case Problem::absolute: {
      const auto sol = solve_absolute_herd(herd_problem_of(c, inv), EtaFormula::correct);
      out.ln_eta = sol.ln_eta();
      out.amounts = yearly([&](double t) { return sol.amount(t); });
      out.opinion_first = sol.opinion(1.0);
      out.opinion_last = sol.opinion(dataset_horizon_years);
      break;
    }
    case Problem::relative: {
      theory::RelativeHerdOptions options;
      options.bc = c.relative_bc;
      const auto sol = solve_relative_herd(herd_problem_of(c, inv), options);
      out.ln_eta = sol.ln_eta();
      out.amounts = yearly([&](double t) { return sol.amount(t); });
      break;
    }
    case Problem::mutual: {
      const MutualGame game = mutual_group_game(c.market, dataset_horizon_years, c.alpha_leader, inv, *peer);
      const auto sol = solve_mutual_game(game);
      out.ln_eta = sol.ln_eta()(1);
      out.amounts = yearly([&](double t) { return sol.amounts(t)(1); });
      break;
    }
  }
  return out;
}

}  // namespace

theory::MutualGame mutual_group_game(const theory::Market& market, int horizon_years, double alpha_leader,
                                     const InvestorProfile& investor, const InvestorProfile& peer) {
  MutualGame game;
  game.market = market;
  game.horizon = horizon_years;
  game.time = TimeModel::continuous();
  game.alpha = Eigen::Vector3d(alpha_leader, investor.alpha, peer.alpha);
  game.x0 = Eigen::Vector3d(investor.budget, investor.budget, peer.budget);
  game.theta = ThetaMatrix(3, 3);
  const std::vector<Eigen::Triplet<double>> entries{
      {1, 0, investor.theta}, {1, 2, investor.theta}, {2, 0, peer.theta}, {2, 1, peer.theta}};
  game.theta.setFromTriplets(entries.begin(), entries.end());
  return game;
}

long long centi(double fraction) {
  return std::llround(fraction * 10000.0);
}

namespace {

std::string explain(const DatasetConfig& c, const SampleSpec& spec, const Sample& s, const Solved& solved) {
  const auto& inv = s.investor;
  const std::string head = fmt::format(
      "Risk aversion alpha = {:.4f} against the advisor's {:g} and dependence score {:g} (theta = {:.1e})",
      inv.alpha, c.alpha_leader, inv.score, inv.theta);
  const std::string first = format_percent(s.proportions.front());
  const std::string last = format_percent(s.proportions.back());
  const int T = dataset_horizon_years;
  switch (spec.problem) {
    case Problem::absolute:
      return fmt::format(
          "{} give eta = {}. The optimal plan puts weight {:.3f} on my own Merton strategy in year 1 and "
          "{:.3f} in year {}, the rest on the advisor, so my stock share goes from {}% to {}% of the budget.",
          head, format_exp_of_ln(solved.ln_eta, 3), solved.opinion_first, solved.opinion_last, T, first,
          last);
    case Problem::relative: {
      const double total =
          static_cast<double>(centi(s.proportions.back()) - centi(s.proportions.front())) / 10000.0;
      return fmt::format(
          "{} give eta = {}. I follow the advisor's year-to-year changes rather than its level: from {}% in "
          "year 1 my stock share changes by {} percentage points in total and reaches {}% in year {}.",
          head, format_exp_of_ln(solved.ln_eta, 3), first, format_percent(total), last, T);
    }
    case Problem::mutual:
      return fmt::format(
          "{}; the peer has alpha = {:.4f} and score {:g}. In the equilibrium where the advisor, the peer "
          "and I "
          "all plan optimally, my eta is {} and my stock share goes from {}% to {}% of the budget.",
          head, s.peer->alpha, s.peer->score, format_exp_of_ln(solved.ln_eta, 3), first, last);
  }
  return head;
}

/// The sampling interval of grid value i of a sorted list: halfway to each neighbour (an end takes the
/// neighbour's spacing), inside [lo_limit, hi_limit].
std::pair<double, double> cell_interval(const std::vector<double>& sorted, std::size_t i, double lo_limit,
                                        double hi_limit) {
  const std::size_t n = sorted.size();
  double lo = sorted[i];
  double hi = sorted[i];
  if (n > 1) {
    const double left = i > 0 ? 0.5 * (sorted[i] - sorted[i - 1]) : 0.5 * (sorted[1] - sorted[0]);
    const double right =
        i + 1 < n ? 0.5 * (sorted[i + 1] - sorted[i]) : 0.5 * (sorted[n - 1] - sorted[n - 2]);
    lo = std::max(sorted[i] - left, lo_limit);
    hi = std::min(sorted[i] + right, hi_limit);
  }
  if (!(lo <= hi)) lo = hi = sorted[i];
  return {lo, hi};
}

void check_list(std::vector<ConfigProblem>& out, const char* field, const std::vector<double>& values) {
  if (values.empty()) {
    out.push_back({field, "needs at least one value"});
    return;
  }
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i] == sorted[i - 1]) out.push_back({field, fmt::format("has the value {} twice", sorted[i])});
  }
}

}  // namespace

const char* problem_name(Problem problem) {
  return to_name(problem).data();  // the table's names are NUL-terminated literals
}

TaskKind task_of(Problem problem) {
  switch (problem) {
    case Problem::relative:
      return TaskKind::relative;
    case Problem::mutual:
      return TaskKind::mutual;
    case Problem::absolute:
      break;
  }
  return TaskKind::absolute;
}

const char* split_name(Split split) {
  return to_name(split).data();  // the table's names are NUL-terminated literals
}

std::vector<double> reference_budgets(double budget) {
  std::vector<double> out;
  for (const double b : static_budget_list) out.push_back(b * budget / static_budget_base);
  return out;
}

std::vector<double> proportions_of(const std::function<double(double)>& amount,
                                   std::span<const double> budgets) {
  std::vector<double> out;
  for (std::size_t j = 1; j <= budgets.size(); ++j)
    out.push_back(amount(static_cast<double>(j)) / budgets[j - 1]);
  return out;
}

std::vector<double> advisor_proportions(const theory::Market& market, double alpha_leader, double budget) {
  const Schedule schedule(market, dataset_horizon_years, TimeModel::continuous());
  const auto budgets = reference_budgets(budget);
  return proportions_of([&](double t) { return merton_amount(schedule, alpha_leader, t); }, budgets);
}

std::vector<ConfigProblem> check_dataset_config(const DatasetConfig& c) {
  std::vector<ConfigProblem> out;
  if (c.problems.empty()) out.push_back({"problems", "needs at least one problem"});
  for (std::size_t i = 0; i < c.problems.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (c.problems[i] == c.problems[j])
        out.push_back({"problems", fmt::format("lists {} twice", problem_name(c.problems[i]))});
    }
  }
  const bool lottery_ok = c.lottery.win > c.lottery.sure && c.lottery.sure > 0.0;
  if (!lottery_ok) {
    out.push_back({"lottery", fmt::format("win {} must exceed sure {} > 0", c.lottery.win, c.lottery.sure)});
  }
  check_list(out, "lottery_probs", c.lottery_probs);
  if (lottery_ok) {
    const double lo = c.lottery.sure / c.lottery.win;
    for (const double p : c.lottery_probs) {
      if (!(p > lo && p < 1.0)) {
        out.push_back(
            {"lottery_probs",
             fmt::format("lottery probability {} must lie in ({:g}, 1) to map to a finite positive alpha", p,
                         lo)});
      }
    }
  }
  check_list(out, "scores", c.scores);
  for (const double s : c.scores) {
    if (!(s >= 0.0 && std::isfinite(s))) out.push_back({"scores", fmt::format("score {} must be >= 0", s)});
  }
  check_list(out, "budgets", c.budgets);
  for (const double b : c.budgets) {
    if (!(b > 0.0 && std::isfinite(b))) out.push_back({"budgets", fmt::format("budget {} must be > 0", b)});
    // Beyond it eta (ln eta ~ -alpha x0 e^{rT}) and the reference budgets leave double precision and
    // were written as null (1e308 used to pass).
    constexpr double max_budget = 1e12;
    if (b > max_budget && std::isfinite(b))
      out.push_back(
          {"budgets", fmt::format("budget {:g} must be at most {:g} million dollars: beyond it eta and "
                                  "the reference budgets overflow double precision",
                                  b, max_budget)});
  }
  if (c.samples < 0) out.push_back({"samples", fmt::format("must be >= 0, got {}", c.samples)});
  if (!(c.test_fraction >= 0.0 && c.test_fraction <= 1.0)) {
    out.push_back({"test_fraction", fmt::format("must lie in [0, 1], got {}", c.test_fraction)});
  }
  if (!(c.alpha_leader > 0.0 && std::isfinite(c.alpha_leader))) {
    out.push_back({"alpha_leader", fmt::format("must be > 0, got {}", c.alpha_leader)});
  }
  if (!(c.market.sigma > 0.0 && std::isfinite(c.market.sigma) && std::isfinite(c.market.mu) &&
        std::isfinite(c.market.r))) {
    out.push_back({"market", fmt::format("needs sigma > 0 and finite mu, r; got mu {}, r {}, sigma {}",
                                         c.market.mu, c.market.r, c.market.sigma)});
  }
  return out;
}

Dataset build_dataset(const DatasetConfig& config) {
  if (const auto problems = check_dataset_config(config); !problems.empty()) {
    std::string message = "invalid dataset configuration:";
    for (const auto& p : problems) {
      message += fmt::format(" {} {};", p.field, p.message);
    }
    message.pop_back();
    throw InputError(message);
  }
  Dataset ds;
  ds.config = config;
  DatasetConfig& c = ds.config;
  std::sort(c.lottery_probs.begin(), c.lottery_probs.end());
  std::sort(c.scores.begin(), c.scores.end());
  std::sort(c.budgets.begin(), c.budgets.end());
  const sim::CounterRng rng(c.seed);
  constexpr auto stream = sim::Stream::parameters;

  // Cells and the split: order the cells by a seeded key and hold out the first round(F * n).
  const std::size_t n_scores = c.scores.size();
  for (const double p : c.lottery_probs) {
    for (const double s : c.scores) ds.cells.push_back({p, s, Split::train});
  }
  const std::size_t n_cells = ds.cells.size();
  auto n_test = static_cast<std::size_t>(std::llround(c.test_fraction * static_cast<double>(n_cells)));
  if (c.test_fraction > 0.0 && n_test == 0) n_test = 1;  // a requested test set is never empty
  if (c.test_fraction < 1.0 && n_test == n_cells && n_cells > 1)
    n_test = n_cells - 1;  // nor is the train set
  std::vector<std::size_t> order(n_cells);
  std::iota(order.begin(), order.end(), 0);
  std::vector<double> keys(n_cells);
  for (std::size_t i = 0; i < n_cells; ++i) keys[i] = rng.uniform(stream, 0, 0, i);
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return keys[a] != keys[b] ? keys[a] < keys[b] : a < b; });
  for (std::size_t k = 0; k < n_test; ++k) ds.cells[order[k]].split = Split::test;

  // Sample specifications.
  const double p_lo = c.lottery.sure / c.lottery.win + 0.005;  // keep sampled p well inside (S/W, 1)
  const double p_hi = 0.995;
  std::vector<SampleSpec> specs;
  for (const Problem problem : c.problems) {
    const auto path = static_cast<std::uint64_t>(problem) + 1;
    auto add_peer = [&](SampleSpec& spec) {
      if (problem != Problem::mutual) return;
      const auto k = static_cast<std::uint64_t>(spec.index);
      spec.peer = std::make_pair(
          c.lottery_probs[pick(rng.uniform(stream, path, k, draw_peer_lottery), c.lottery_probs.size())],
          c.scores[pick(rng.uniform(stream, path, k, draw_peer_score), n_scores)]);
    };
    if (c.samples == 0) {
      int index = 0;
      for (std::size_t cell = 0; cell < n_cells; ++cell) {
        for (const double budget : c.budgets) {
          SampleSpec spec{
              problem, index++,     static_cast<int>(cell), ds.cells[cell].lottery_prob, ds.cells[cell].score,
              budget,  std::nullopt};
          add_peer(spec);
          specs.push_back(spec);
        }
      }
    } else {
      for (int index = 0; index < c.samples; ++index) {
        const auto k = static_cast<std::uint64_t>(index);
        const std::size_t cell = pick(rng.uniform(stream, path, k, draw_cell), n_cells);
        const std::size_t li = cell / n_scores;
        const auto [lo, hi] = cell_interval(c.lottery_probs, li, p_lo, p_hi);
        // Three decimals, as the prompt prints it, so that the prompt's p and the targets' alpha agree.
        double p = c.lottery_probs[li];
        const double lo3 = std::ceil(lo * 1000.0) / 1000.0;
        const double hi3 = std::floor(hi * 1000.0) / 1000.0;
        if (lo3 < hi3) {
          p = std::round((lo + rng.uniform(stream, path, k, draw_lottery) * (hi - lo)) * 1000.0) / 1000.0;
          p = std::clamp(p, lo3, hi3);
        }
        SampleSpec spec{problem,
                        index,
                        static_cast<int>(cell),
                        p,
                        ds.cells[cell].score,
                        c.budgets[pick(rng.uniform(stream, path, k, draw_budget), c.budgets.size())],
                        std::nullopt};
        add_peer(spec);
        specs.push_back(spec);
      }
    }
  }

  // Solve (in parallel; each sample writes only its own slot, errors are collected and the first one by
  // sample order is raised afterwards, so the outcome does not depend on the schedule).
  ds.samples.resize(specs.size());
  std::vector<Solved> solved(specs.size());
  std::vector<std::exception_ptr> errors(specs.size());
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, specs.size()),
                    [&](const tbb::blocked_range<std::size_t>& r) {
                      for (std::size_t i = r.begin(); i != r.end(); ++i) {
                        try {
                          const SampleSpec& spec = specs[i];
                          Sample& s = ds.samples[i];
                          s.problem = spec.problem;
                          s.cell = spec.cell;
                          s.split = ds.cells[static_cast<std::size_t>(spec.cell)].split;
                          s.id = fmt::format("{}-{:05}", problem_name(spec.problem), spec.index);
                          s.investor = profile_of(c, spec.lottery_prob, spec.score, spec.budget);
                          if (spec.peer)
                            s.peer = profile_of(c, spec.peer->first, spec.peer->second, spec.budget);
                          solved[i] = solve_sample(c, spec.problem, s.investor, s.peer);
                        } catch (...) {
                          errors[i] = std::current_exception();
                        }
                      }
                    });
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }

  // Targets, prompts and answers.
  TaskSettings settings;
  settings.market = c.market;
  settings.alpha_leader = c.alpha_leader;
  settings.horizon_years = dataset_horizon_years;
  settings.lottery = c.lottery;
  std::vector<PromptTemplate> templates;
  for (const TaskKind kind : {TaskKind::absolute, TaskKind::relative, TaskKind::mutual}) {
    templates.push_back(make_prompt_template(kind, settings));
  }
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const SampleSpec& spec = specs[i];
    Sample& s = ds.samples[i];
    const Solved& sol = solved[i];
    s.ln_eta = sol.ln_eta;
    s.budgets = reference_budgets(spec.budget);
    s.amounts = sol.amounts;
    for (const double a : advisor_proportions(c.market, c.alpha_leader, spec.budget)) {
      s.advisor.push_back(static_cast<double>(centi(a)) / 10000.0);  // as shown in the prompt
    }
    // Target proportions as two-decimal percentages; the answer range has no leverage and no short sales.
    std::vector<long long> target_centi;
    for (std::size_t j = 0; j < s.amounts.size(); ++j) {
      const long long v = centi(s.amounts[j] / s.budgets[j]);
      const long long clamped = std::clamp(v, 0LL, 10000LL);
      if (clamped != v) s.clamped = true;
      target_centi.push_back(clamped);
      s.proportions.push_back(static_cast<double>(clamped) / 10000.0);
    }
    if (spec.problem == Problem::relative) {
      for (std::size_t j = 1; j < target_centi.size(); ++j) {
        s.target.push_back(static_cast<double>(target_centi[j] - target_centi[j - 1]) / 10000.0);
      }
    } else {
      s.target = s.proportions;
    }

    const TaskKind kind = task_of(spec.problem);
    PromptInputs in;
    in.investor = s.investor;
    in.advisor = s.advisor;
    if (spec.problem == Problem::relative) in.first_year_proportion = s.proportions.front();
    in.peer = s.peer;
    if (c.training_prompts) in.hint = TrainingHint{s.ln_eta, s.target};
    s.prompt = render_prompt(templates[static_cast<std::size_t>(kind)], in);
    const AnswerSchema schema = answer_schema(kind, dataset_horizon_years);
    s.answer = format_answer(schema, explain(c, spec, s, sol), s.target);
  }
  return ds;
}

}  // namespace herdsim::investalign
