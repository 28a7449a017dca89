#include "sim/investalign/prompt.hpp"

#include <fmt/format.h>
#include <cmath>

#include "sim/error.hpp"

namespace herdsim::investalign {

namespace {

// The texts are herdsim's own wording of the content of docs/theory.md §4.4. Everything that differs between
// agents goes into the agent part; the system message and the task description depend only on
// TaskSettings, so they form a prefix shared by every agent of a population.

constexpr std::string_view system_message =
    "You are an individual investor who splits money between a risk-free bank deposit and a risky stock. "
    "You weigh your own attitude to risk against the advice and the behaviour of others, and you always "
    "reply with a single JSON object in exactly the format you are asked for.";

std::string percent_list(const std::vector<double>& fractions) {
  std::string out;
  for (std::size_t i = 0; i < fractions.size(); ++i) {
    if (i > 0) out += ", ";
    out += format_percent(fractions[i]);
  }
  return out;
}

void require_finite(double value, const char* what) {
  if (!std::isfinite(value)) throw InputError(fmt::format("prompt: {} must be finite, got {}", what, value));
}

void check_profile(const InvestorProfile& p, const char* who) {
  require_finite(p.lottery_prob, who);
  require_finite(p.alpha, who);
  require_finite(p.score, who);
  require_finite(p.theta, who);
  require_finite(p.budget, who);
}

void check_fractions(const std::vector<double>& values, const char* what) {
  for (const double v : values) require_finite(v, what);
}

std::string market_paragraph(const TaskSettings& s) {
  return fmt::format(
      "The market has two assets. The bank deposit pays a risk-free rate of {:.2f}% per year. The stock has "
      "an "
      "expected return of {:.2f}% per year and a volatility of {:.2f}% per year.\n",
      100.0 * s.market.r, 100.0 * s.market.mu, 100.0 * s.market.sigma);
}

std::string utility_sentence(const TaskSettings& s) {
  return fmt::format(
      "You want a high expected utility of your final wealth (constant absolute risk aversion with "
      "coefficient alpha: the larger alpha, the more you dislike risk). You also rely on a professional "
      "investment advisor, a rational investor with risk aversion {:g}.",
      s.alpha_leader);
}

std::string explanation_placeholder(const TaskSettings& s) {
  return fmt::format("<your reasoning, at most {} characters>", s.max_explanation_chars);
}

std::string reply_format(const TaskSettings& s, TaskKind kind) {
  const AnswerSchema schema = answer_schema(kind, s.horizon_years);
  const int T = s.horizon_years;
  std::string values;
  switch (kind) {
    case TaskKind::absolute:
    case TaskKind::mutual:
      values =
          fmt::format("[<{} percentages for years 1 to {}, each between 0 and 100 with two decimals>]", T, T);
      break;
    case TaskKind::relative:
      values = fmt::format(
          "[<{} changes in percentage points, from year 1 to 2 up to year {} to {}, each between -100 and "
          "100 with "
          "two decimals>]",
          T - 1, T - 1, T);
      break;
    case TaskKind::step:
      values = "<percentage between 0 and 100 with two decimals>";
      break;
  }
  return fmt::format("Reply with one JSON object and nothing else:\n{{\"{}\": \"{}\", \"{}\": {}}}\n",
                     key_explanation, explanation_placeholder(s), schema.key, values);
}

std::string task_text(TaskKind kind, const TaskSettings& s) {
  const int T = s.horizon_years;
  std::string out;
  switch (kind) {
    case TaskKind::absolute:
      out += "Investment task: plan your stock holdings for the whole horizon.\n";
      out += market_paragraph(s);
      out += fmt::format(
          "You invest over a horizon of T = {} years and decide now, for each of the years 1 to {}, what "
          "percentage of your budget to hold in the stock; the rest stays in the deposit.\n",
          T, T);
      out += utility_sentence(s);
      out +=
          " Whenever your stock holdings differ from the advisor's, you feel a cost that grows with the "
          "square of the difference and with your herding coefficient theta. Balance your own risk "
          "preference against following the advisor.\n";
      break;
    case TaskKind::relative:
      out += "Investment task: plan how your stock holdings change from year to year.\n";
      out += market_paragraph(s);
      out += fmt::format(
          "You invest over a horizon of T = {} years. Your stock percentage for year 1 is already fixed; "
          "decide "
          "now by how many percentage points it changes from each year to the next, up to year {}; the rest "
          "of your budget stays in the deposit.\n",
          T, T);
      out += utility_sentence(s);
      out +=
          " Whenever the rate at which your stock holdings change differs from the rate at which the "
          "advisor's change, you feel a cost that grows with the square of the difference and with your "
          "herding coefficient theta. You follow the advisor's changes, not its level.\n";
      break;
    case TaskKind::mutual:
      out += "Investment task: plan your stock holdings while you and a peer influence each other.\n";
      out += market_paragraph(s);
      out += fmt::format(
          "You invest over a horizon of T = {} years and decide now, for each of the years 1 to {}, what "
          "percentage of your budget to hold in the stock; the rest stays in the deposit.\n",
          T, T);
      out += utility_sentence(s);
      out +=
          " The advisor follows only its own risk preference. You and one peer investor each feel a cost, "
          "growing with the square of the difference and with your own herding coefficient theta, whenever "
          "your stock holdings differ from the advisor's and whenever they differ from each other's. The "
          "peer plans at the same time as you and is influenced by you as you are by the peer.\n";
      break;
    case TaskKind::step:
      out += "Investment task: decide this year's stock holding.\n";
      out += market_paragraph(s);
      out += fmt::format(
          "You invest over a horizon of T = {} years and decide once a year. Each year you see your current "
          "situation and choose what percentage of your current wealth to hold in the stock this year; the "
          "rest stays in the deposit.\n",
          T);
      out += utility_sentence(s);
      out +=
          " Whenever your stock holdings differ from those of the investors you follow, you feel a cost "
          "that grows with the square of the difference and with your herding coefficient theta.\n";
      break;
  }
  out += reply_format(s, kind);
  return out;
}

/// The profile bullet points; `followed` names whom the dependence score is about.
std::string profile_lines(const TaskSettings& s, const InvestorProfile& p, const char* subject,
                          const char* possessive, const char* followed) {
  std::string out;
  out += fmt::format(
      "- Risk attitude: winning {:g} million dollars with probability {:g} (otherwise nothing) is as good to "
      "{} as "
      "{:g} million dollars for sure; {} risk aversion is alpha = {:.6f} per million dollars.\n",
      s.lottery.win, p.lottery_prob, subject, s.lottery.sure, possessive, p.alpha);
  out += fmt::format(
      "- Dependence on {}: {:g} on a scale from 0 (none) to 10 (strong); {} herding coefficient is theta = "
      "{:.1e}.\n",
      followed, p.score, possessive, p.theta);
  out += fmt::format("- Initial budget: {:g} million dollars.\n", p.budget);
  return out;
}

std::string advisor_line(const TaskSettings& s, const std::vector<double>& advisor) {
  return fmt::format(
      "The advisor recommends holding these percentages of the budget in the stock in years 1 to {}: {}.\n",
      s.horizon_years, percent_list(advisor));
}

std::vector<double> changes_of(const std::vector<double>& fractions) {
  // Differences of the two-decimal percentages as shown, so that the quoted changes add up exactly.
  std::vector<double> out;
  for (std::size_t i = 1; i < fractions.size(); ++i) {
    const auto a = static_cast<double>(std::llround(fractions[i - 1] * 10000.0));
    const auto b = static_cast<double>(std::llround(fractions[i] * 10000.0));
    out.push_back((b - a) / 10000.0);
  }
  return out;
}

std::string hint_lines(const TaskSettings& s, TaskKind kind, const std::optional<TrainingHint>& hint) {
  if (!hint) return {};
  const int T = s.horizon_years;
  if (kind == TaskKind::relative) {
    return fmt::format(
        "Reference solution (training): eta = {}; the optimal changes in percentage points from year 1 "
        "to 2 up to year {} to {} are {}.\n",
        format_exp_of_ln(hint->ln_eta, 6), T - 1, T, percent_list(hint->values));
  }
  return fmt::format(
      "Reference solution (training): eta = {}; the optimal percentages for years 1 to {} are {}.\n",
      format_exp_of_ln(hint->ln_eta, 6), T, percent_list(hint->values));
}

std::string absolute_part(const TaskSettings& s, const PromptInputs& in) {
  std::string out = "Your profile:\n";
  out += profile_lines(s, in.investor, "you", "your", "the advisor");
  out += advisor_line(s, in.advisor);
  out += hint_lines(s, TaskKind::absolute, in.hint);
  return out;
}

std::string relative_part(const TaskSettings& s, const PromptInputs& in) {
  std::string out = "Your profile:\n";
  out += profile_lines(s, in.investor, "you", "your", "the advisor");
  out += advisor_line(s, in.advisor);
  out += fmt::format("The advisor's changes in percentage points from year 1 to 2 up to year {} to {}: {}.\n",
                     s.horizon_years - 1, s.horizon_years, percent_list(changes_of(in.advisor)));
  out += fmt::format("Your stock percentage in year 1 is fixed at {}%.\n",
                     format_percent(in.first_year_proportion.value_or(0.0)));
  out += hint_lines(s, TaskKind::relative, in.hint);
  return out;
}

std::string mutual_part(const TaskSettings& s, const PromptInputs& in) {
  std::string out = "Your profile:\n";
  out += profile_lines(s, in.investor, "you", "your", "others");
  out += "The peer investor's profile:\n";
  out += profile_lines(s, in.peer.value_or(InvestorProfile{}), "the peer", "the peer's", "others");
  out += advisor_line(s, in.advisor);
  out += hint_lines(s, TaskKind::mutual, in.hint);
  return out;
}

std::string step_part(const TaskSettings& s, const PromptInputs& in) {
  const StepState st = in.step.value_or(StepState{});
  std::string out = "Your profile:\n";
  out += profile_lines(s, in.investor, "you", "your", "others");
  out += fmt::format("Now: year {} of {}. Your current wealth is {:.2f} million dollars.\n", st.year,
                     s.horizon_years, st.wealth);
  if (st.own_last)
    out += fmt::format("Last year you held {}% of your wealth in the stock.\n", format_percent(*st.own_last));
  if (st.leader_last) {
    out += fmt::format("Last year the investor you follow held {}% of its wealth in the stock.\n",
                       format_percent(*st.leader_last));
  }
  if (!st.peers_last.empty()) {
    out += fmt::format("Last year your peers held these percentages of their wealth in the stock: {}.\n",
                       percent_list(st.peers_last));
  }
  return out;
}

}  // namespace

const char* task_kind_name(TaskKind kind) {
  return to_name(kind).data();  // the table's names are NUL-terminated literals
}

AnswerSchema answer_schema(TaskKind kind, int horizon_years) {
  switch (kind) {
    case TaskKind::relative:
      return change_sequence_schema(horizon_years);
    case TaskKind::step:
      return single_proportion_schema();
    case TaskKind::absolute:
    case TaskKind::mutual:
      break;
  }
  return proportion_sequence_schema(horizon_years);
}

PromptTemplate make_prompt_template(TaskKind kind, const TaskSettings& settings) {
  if (settings.horizon_years < (kind == TaskKind::relative ? 2 : 1)) {
    throw InputError(fmt::format("prompt: horizon must be >= {} years for the {} task, got {}",
                                 kind == TaskKind::relative ? 2 : 1, task_kind_name(kind),
                                 settings.horizon_years));
  }
  PromptTemplate tpl;
  tpl.kind = kind;
  tpl.settings = settings;
  tpl.system = std::string(system_message);
  tpl.task = task_text(kind, settings);
  switch (kind) {
    case TaskKind::absolute:
      tpl.agent_part = absolute_part;
      break;
    case TaskKind::relative:
      tpl.agent_part = relative_part;
      break;
    case TaskKind::mutual:
      tpl.agent_part = mutual_part;
      break;
    case TaskKind::step:
      tpl.agent_part = step_part;
      break;
  }
  return tpl;
}

Prompt render_prompt(const PromptTemplate& tpl, const PromptInputs& in) {
  const auto T = static_cast<std::size_t>(tpl.settings.horizon_years);
  const char* name = task_kind_name(tpl.kind);
  check_profile(in.investor, "investor attributes");
  if (tpl.kind != TaskKind::step && in.advisor.size() != T) {
    throw InputError(
        fmt::format("prompt ({}): {} advisor values, expected T = {}", name, in.advisor.size(), T));
  }
  check_fractions(in.advisor, "advisor values");
  if (tpl.kind == TaskKind::relative) {
    if (!in.first_year_proportion) throw InputError("prompt (relative): the year-1 proportion is missing");
    require_finite(*in.first_year_proportion, "the year-1 proportion");
  }
  if (tpl.kind == TaskKind::mutual) {
    if (!in.peer) throw InputError("prompt (mutual): the peer's profile is missing");
    check_profile(*in.peer, "peer attributes");
  }
  if (tpl.kind == TaskKind::step) {
    if (!in.step) throw InputError("prompt (step): the current state is missing");
    if (in.step->year < 1 || in.step->year > tpl.settings.horizon_years) {
      throw InputError(fmt::format("prompt (step): year must be in 1..{}, got {}", T, in.step->year));
    }
    require_finite(in.step->wealth, "wealth");
    check_fractions(in.step->peers_last, "peer proportions");
  }
  if (in.hint) {
    if (tpl.kind == TaskKind::step) throw InputError("prompt (step): there is no training variant");
    const std::size_t want = tpl.kind == TaskKind::relative ? T - 1 : T;
    if (in.hint->values.size() != want) {
      throw InputError(fmt::format("prompt ({}): {} reference values in the training hint, expected {}", name,
                                   in.hint->values.size(), want));
    }
    check_fractions(in.hint->values, "reference values");
    require_finite(in.hint->ln_eta, "ln eta");
  }
  Prompt p;
  p.system = tpl.system;
  p.user_shared = tpl.task;
  p.user_agent = tpl.agent_part(tpl.settings, in);
  return p;
}

std::uint64_t Prompt::hash() const {
  std::uint64_t h = fnv1a64(system);
  h = fnv1a64(std::string_view("\0", 1), h);
  h = fnv1a64(user_shared, h);
  return fnv1a64(user_agent, h);
}

std::uint64_t Prompt::shared_hash() const {
  const std::uint64_t h = fnv1a64(std::string_view("\0", 1), fnv1a64(system));
  return fnv1a64(user_shared, h);
}

std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t state) {
  constexpr std::uint64_t prime = 1099511628211ULL;
  for (const char c : bytes) {
    state ^= static_cast<unsigned char>(c);
    state *= prime;
  }
  return state;
}

std::string format_exp_of_ln(double ln_value, int decimals) {
  if (!std::isfinite(ln_value)) return ln_value < 0 ? "0" : "inf";
  const double log10_value = ln_value / std::log(10.0);
  auto exponent = static_cast<long long>(std::floor(log10_value));
  double mantissa = std::pow(10.0, log10_value - static_cast<double>(exponent));
  // Rounding to `decimals` digits can carry the mantissa to 10.
  const double scale = std::pow(10.0, decimals);
  mantissa = std::round(mantissa * scale) / scale;
  if (mantissa >= 10.0) {
    mantissa /= 10.0;
    ++exponent;
  }
  return fmt::format("{:.{}f}e{}{:02}", mantissa, decimals, exponent < 0 ? '-' : '+',
                     exponent < 0 ? -exponent : exponent);
}

std::string hash_hex(std::uint64_t hash) {
  return fmt::format("{:016x}", hash);
}

}  // namespace herdsim::investalign
