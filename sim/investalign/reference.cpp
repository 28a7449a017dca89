#include "sim/investalign/reference.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "sim/error.hpp"
#include "sim/inference/herdsim_inference.h"
#include "sim/theory/absolute_herd.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/mutual_game.hpp"
#include "sim/theory/relative_herd.hpp"

namespace herdsim::investalign {

namespace {

/// Whose path of amounts an answerer plays for a question.
enum class Path { p3, p1, p2, own_merton, advisor };

Path path_of(Answerer answerer, const Question& q) {
  switch (answerer) {
    case Answerer::p3_closed_form:
      return Path::p3;
    case Answerer::advisor:
      return Path::advisor;
    case Answerer::merton:
      return Path::own_merton;
    case Answerer::own_theory:
      break;
  }
  switch (q.problem) {
    case Problem::relative:
      return Path::p1;
    case Problem::mutual:
      return Path::p2;
    case Problem::absolute:
      break;
  }
  return Path::p3;
}

/// A(t = j), j = 1..T, million dollars.
std::vector<double> path_amounts(Path path, const Question& q) {
  const TaskSettings& s = q.settings;
  const InvestorProfile& inv = q.inputs.investor;
  switch (path) {
    case Path::p3:
      return problem_amounts(Problem::absolute, s, inv, std::nullopt);
    case Path::p1:
      return problem_amounts(Problem::relative, s, inv, std::nullopt);
    case Path::p2:
      if (!q.inputs.peer)
        throw InputError("the P2 answer needs the peer's profile, and the question has none");
      return problem_amounts(Problem::mutual, s, inv, q.inputs.peer);
    case Path::own_merton:
    case Path::advisor:
      break;
  }
  const theory::Schedule schedule(s.market, s.horizon_years, theory::TimeModel::continuous());
  const double alpha = path == Path::advisor ? s.advisor_alpha() : inv.alpha;
  std::vector<double> out;
  for (int j = 1; j <= s.horizon_years; ++j) out.push_back(theory::merton_amount(schedule, alpha, j));
  return out;
}

double clamp01(double fraction) {
  return std::isnan(fraction) ? 0.0 : std::clamp(fraction, 0.0, 1.0);
}

std::string explanation(Answerer answerer, Path path) {
  const char* what = "";
  switch (path) {
    case Path::p3:
      what = "my P3 closed-form plan (absolute herding on the advisor, correct eta)";
      break;
    case Path::p1:
      what = "my P1 optimum (relative herding on the advisor, pinned ends)";
      break;
    case Path::p2:
      what = "my plan in the P2 equilibrium of the advisor, the peer and me";
      break;
    case Path::own_merton:
      what = "my own Merton plan (no herding)";
      break;
    case Path::advisor:
      what = "the advisor's plan (pure herding)";
      break;
  }
  return fmt::format("Reference answer ({}): {}.", to_name(answerer), what);
}

std::string answer_from(Answerer answerer, const Question& q, Path path, const std::vector<double>& amounts) {
  const int T = q.settings.horizon_years;
  const PromptInputs& in = q.inputs;
  const AnswerSchema schema = answer_schema(q.task, T);
  const std::string why = explanation(answerer, path);
  if (static_cast<int>(amounts.size()) != T)
    throw InputError(
        fmt::format("a reference path has {} amounts for a horizon of {} years", amounts.size(), T));
  if (q.task == TaskKind::step) {
    if (!in.step) throw InputError("a step question needs the step state");
    const int year = in.step->year;
    if (year < 1 || year > T) throw InputError(fmt::format("step year {} outside 1..{}", year, T));
    const double wealth = in.step->wealth;
    const double value = wealth > 0.0 ? clamp01(amounts[static_cast<std::size_t>(year - 1)] / wealth) : 0.0;
    return format_answer(schema, why, std::vector<double>{value});
  }
  // The answerer's proportions of the reference budgets, as two-decimal percentages (hundredths).
  std::vector<long long> pi;
  if (path == Path::advisor) {
    if (static_cast<int>(in.advisor.size()) != T)
      throw InputError(fmt::format("the question quotes {} advisor values for a horizon of {} years",
                                   in.advisor.size(), T));
    for (const double a : in.advisor) pi.push_back(centi(clamp01(a)));
  } else {
    const std::vector<double> budgets = reference_budgets(in.investor.budget);
    for (int j = 0; j < T; ++j)
      pi.push_back(
          centi(clamp01(amounts[static_cast<std::size_t>(j)] / budgets[static_cast<std::size_t>(j)])));
  }
  std::vector<double> values;
  if (q.task == TaskKind::relative) {
    if (!in.first_year_proportion) throw InputError("a relative question needs the year-1 proportion");
    // From the year-1 proportion the protocol fixed, so that the rebuilt path is the answerer's own.
    long long previous = centi(*in.first_year_proportion);
    for (int j = 1; j < T; ++j) {
      const long long change = std::clamp(pi[static_cast<std::size_t>(j)] - previous, -10000LL, 10000LL);
      values.push_back(static_cast<double>(change) / 10000.0);
      previous = pi[static_cast<std::size_t>(j)];
    }
  } else {
    for (const long long v : pi) values.push_back(static_cast<double>(v) / 10000.0);
  }
  return format_answer(schema, why, values);
}

}  // namespace

std::vector<double> problem_amounts(Problem problem, const TaskSettings& settings,
                                    const InvestorProfile& investor,
                                    const std::optional<InvestorProfile>& peer,
                                    theory::BoundaryCondition bc) {
  const int T = settings.horizon_years;
  std::vector<double> out;
  if (problem == Problem::mutual) {
    if (!peer) throw InputError("the P2 (mutual) problem needs a peer");
    const auto sol = theory::solve_mutual_game(
        mutual_group_game(settings.market, T, settings.advisor_alpha(), investor, *peer));
    for (int k = 0; k < T; ++k) out.push_back(sol.amounts(k + 1.0)(1));
    return out;
  }
  theory::HerdProblem hp;
  hp.market = settings.market;
  hp.alpha = investor.alpha;
  hp.alpha_leader = settings.advisor_alpha();
  hp.theta = investor.theta;
  hp.x0 = investor.budget;
  hp.horizon = T;
  hp.time = theory::TimeModel::continuous();
  if (problem == Problem::relative) {
    theory::RelativeHerdOptions options;
    options.bc = bc;
    const auto sol = theory::solve_relative_herd(hp, options);
    for (int k = 0; k < T; ++k) out.push_back(sol.amount(k + 1.0));
  } else {
    const auto sol = theory::solve_absolute_herd(hp, theory::EtaFormula::correct);
    for (int k = 0; k < T; ++k) out.push_back(sol.amount(k + 1.0));
  }
  return out;
}

std::string reference_answer(Answerer answerer, const Question& question) {
  const Path path = path_of(answerer, question);
  return answer_from(answerer, question, path, path_amounts(path, question));
}

std::vector<inference::Response> ReferenceBackend::generate(const std::vector<inference::Request>& requests) {
  // Solutions per distinct (path, market, advisor, T, investor, peer): a grid has few profiles.
  std::map<std::vector<double>, std::vector<double>> solved;
  std::vector<inference::Response> out(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    inference::Response& r = out[i];
    const auto* q = std::any_cast<Question>(&requests[i].question);
    if (q == nullptr) {
      r.status = HERDSIM_ERR_INVALID_ARGUMENT;
      r.error = "the reference answerers answer investagent requests only (this request carries no question)";
      continue;
    }
    try {
      const Path path = path_of(answerer_, *q);
      const TaskSettings& s = q->settings;
      const InvestorProfile& inv = q->inputs.investor;
      std::vector<double> key{static_cast<double>(path),
                              s.market.mu,
                              s.market.r,
                              s.market.sigma,
                              s.advisor_alpha(),
                              static_cast<double>(s.horizon_years),
                              inv.alpha,
                              inv.theta,
                              inv.budget};
      if (path == Path::p2 && q->inputs.peer) {
        key.insert(key.end(), {q->inputs.peer->alpha, q->inputs.peer->theta, q->inputs.peer->budget});
      }
      auto it = solved.find(key);
      if (it == solved.end()) it = solved.emplace(key, path_amounts(path, *q)).first;
      r.text = answer_from(answerer_, *q, path, it->second);
    } catch (const InputError& e) {
      r.status = HERDSIM_ERR_INVALID_ARGUMENT;
      r.error = e.what();
    }
  }
  return out;
}

std::string ReferenceBackend::describe() const {
  return nlohmann::json{{"backend", "reference"}, {"answerer", std::string(to_name(answerer_))}}.dump();
}

}  // namespace herdsim::investalign
