#include "agents/investagent_agent.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <map>

#include "agents/agent_support.hpp"
#include "agents/merton_agent.hpp"
#include "agents/parameters.hpp"
#include "sim/error.hpp"
#include "sim/investalign/answer.hpp"
#include "sim/investalign/dataset.hpp"
#include "sim/theory/absolute_herd.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/mutual_game.hpp"
#include "sim/theory/relative_herd.hpp"

namespace herdsim::agents {

namespace {

using investalign::TaskKind;

/// Key of the peer draws of the mutual protocol on Stream::parameters (path = peer_key + population;
/// expand_params uses path = population and the networks 2^32 + population).
constexpr std::uint64_t peer_key = 2ULL << 32;

/// Kind-state names (agents/investagent_agent.hpp).
constexpr std::string_view kPlan = "plan";
constexpr std::string_view kFirstYear = "first_year";
constexpr std::string_view kStepAmount = "step_amount";
constexpr std::string_view kLastProportion = "last_proportion";
constexpr std::string_view kLeaderWealth = "leader_wealth";

/// A fraction rounded to hundredths of a percent: the advisor's values as the prompt quotes them.
double as_quoted(double fraction) {
  return static_cast<double>(std::llround(fraction * 10000.0)) / 10000.0;
}

}  // namespace

const char* scored_problem(sim::InvestProtocol protocol) {
  switch (protocol) {
    case sim::InvestProtocol::relative:
      return "P1";
    case sim::InvestProtocol::mutual:
      return "P2";
    case sim::InvestProtocol::absolute:
    case sim::InvestProtocol::step:
      return "P3";
  }
  return "unknown";
}

InvestAgentPopulation::InvestAgentPopulation(const sim::ScenarioSpec& spec, int index,
                                             std::unique_ptr<inference::Backend> backend)
    : spec_(spec),
      ps_(spec.populations[static_cast<std::size_t>(index)]),
      index_(index),
      backend_(std::move(backend)) {
  // The scenario validator reports these too; the runtime refuses them whatever built the spec.
  const double T = spec_.run.horizon;
  const auto max_years = static_cast<double>(investalign::static_budget_list.size());
  if (spec_.run.steps_per_year != 1 || T != std::round(T) || T < 1.0 || T > max_years) {
    throw ScenarioError(fmt::format(
        "population '{}': kind investagent needs one decision per year (steps_per_year = 1) and a horizon of "
        "1..{} whole years (the reference budget list); got horizon {} with steps_per_year {}",
        ps_.name, investalign::static_budget_list.size(), T, spec_.run.steps_per_year));
  }
  horizon_years_ = static_cast<int>(T);
  if (ps_.protocol == sim::InvestProtocol::relative && horizon_years_ < 2)
    throw ScenarioError(
        fmt::format("population '{}': protocol relative needs a horizon of >= 2 years", ps_.name));
  if (ps_.protocol == sim::InvestProtocol::mutual && ps_.count < 2)
    throw ScenarioError(fmt::format(
        "population '{}': protocol mutual needs count >= 2 (each agent's peer is another agent of the "
        "population)",
        ps_.name));
  for (std::size_t i = 0; i < spec_.populations.size(); ++i) {
    if (spec_.populations[i].name == ps_.leader) leader_index_ = static_cast<int>(i);
  }
  if (leader_index_ < 0 ||
      spec_.populations[static_cast<std::size_t>(leader_index_)].kind != sim::AgentKind::merton)
    throw ScenarioError(
        fmt::format("population '{}': leader '{}' is not a merton population", ps_.name, ps_.leader));
  if (backend_ == nullptr)
    throw ScenarioError(
        fmt::format("population '{}': kind investagent needs an inference backend", ps_.name));
  plan_schema_ = investalign::proportion_sequence_schema(horizon_years_);
  step_schema_ = investalign::single_proportion_schema();
  if (horizon_years_ >= 2) change_schema_ = investalign::change_sequence_schema(horizon_years_);
  if (ps_.inference.grammar) {
    plan_grammar_ = investalign::answer_gbnf(plan_schema_);
    step_grammar_ = investalign::answer_gbnf(step_schema_);
    if (horizon_years_ >= 2) change_grammar_ = investalign::answer_gbnf(change_schema_);
  }
}

int InvestAgentPopulation::peer_of(const sim::CounterRng& rng, int population, int agent, int count) {
  const double u = rng.uniform(sim::Stream::parameters, peer_key + static_cast<std::uint64_t>(population), 0,
                               static_cast<std::uint64_t>(agent));
  const int others = count - 1;
  const int j = std::min(others - 1, static_cast<int>(u * others));
  return j < agent ? j : j + 1;  // skip the agent itself
}

std::uint64_t InvestAgentPopulation::request_seed(const sim::CounterRng& rng, int population, int agent,
                                                  int step, int path, int stage) {
  const auto index = (static_cast<std::uint64_t>(population) << 40) |
                     (static_cast<std::uint64_t>(stage) << 32) | static_cast<std::uint64_t>(agent);
  return rng.bits(sim::Stream::inference, static_cast<std::uint64_t>(path + 1),
                  static_cast<std::uint64_t>(step), index);
}

void InvestAgentPopulation::initialize(const sim::RunState& state, sim::PopulationState& own) {
  const sim::CounterRng rng(spec_.run.seed);
  const std::vector<NamedParam> named{{"alpha", &ps_.alpha}, {"theta", &ps_.theta}, {"wealth0", &ps_.wealth}};
  own.params = expand_params(named, ps_.count, index_, rng, ps_.lottery);
  set_initial_wealth(own);
  alpha_ = param(own, "alpha");
  theta_ = param(own, "theta");
  x0_ = param(own, "wealth0");
  // The questionnaire values the prompt quotes: the same expansion without the mapping (same grid
  // positions and draws), or the inverse maps when alpha and theta were given directly.
  sim::ParamSpec raw_alpha = ps_.alpha;
  sim::ParamSpec raw_theta = ps_.theta;
  raw_alpha.scale = raw_theta.scale = sim::ParamSpec::Scale::direct;
  const auto raw = expand_params({{"alpha", &raw_alpha}, {"theta", &raw_theta}, {"wealth0", &ps_.wealth}},
                                 ps_.count, index_, rng, ps_.lottery);
  lottery_prob_.resize(ps_.count);
  score_.resize(ps_.count);
  for (int i = 0; i < ps_.count; ++i) {
    lottery_prob_[i] = ps_.alpha.scale == sim::ParamSpec::Scale::lottery_prob
                           ? raw[0].second[i]
                           : theory::lottery_prob_from_alpha(alpha_[i], ps_.lottery);
    score_[i] = ps_.theta.scale == sim::ParamSpec::Scale::score ? raw[1].second[i]
                                                                : theory::score_from_theta(theta_[i]);
  }
  const sim::PopulationSpec& leader = spec_.populations[static_cast<std::size_t>(leader_index_)];
  leader_count_ = leader.count;
  const auto leader_params =
      expand_params(merton_params(leader), leader.count, leader_index_, rng, leader.lottery);
  leader_alpha_.resize(ps_.count);
  for (int i = 0; i < ps_.count; ++i) leader_alpha_[i] = leader_params[0].second[i % leader_count_];
  own.params.emplace_back("leader_alpha", leader_alpha_);
  own.params.emplace_back("lottery_prob", lottery_prob_);
  own.params.emplace_back("score", score_);
  if (ps_.protocol == sim::InvestProtocol::mutual) {
    peer_.resize(ps_.count);
    for (int i = 0; i < ps_.count; ++i) peer_[i] = peer_of(rng, index_, i, ps_.count);
    own.params.emplace_back("peer", peer_.cast<double>());
  }

  // Reference budgets, the advisor's quoted proportions (its continuous-time Merton amount at t = j over
  // B_j, the dataset's convention), and the optimum the dataset targets encode (P3; P1 for the relative
  // protocol; P2, the group of advisor, agent and peer, for the mutual protocol): column k holds the amount
  // at t = k + 1, the year-(k + 1) target times B_{k+1} before rounding and clamping.
  const int T = horizon_years_;
  const theory::Market market = theory_market(spec_);
  const theory::Schedule schedule(market, T, theory::TimeModel::continuous());
  budgets_.assign(static_cast<std::size_t>(ps_.count), {});
  advisor_.assign(static_cast<std::size_t>(ps_.count), {});
  own.theory_amount.resize(ps_.count, T);
  std::map<std::array<double, 7>, std::vector<double>> solved;  // one solve per distinct agent (and peer)
  for (int i = 0; i < ps_.count; ++i) {
    auto& budgets = budgets_[static_cast<std::size_t>(i)];
    budgets = investalign::reference_budgets(x0_[i]);
    budgets.resize(static_cast<std::size_t>(T));
    for (const double a : investalign::proportions_of(
             [&](double t) { return theory::merton_amount(schedule, leader_alpha_[i], t); }, budgets))
      advisor_[static_cast<std::size_t>(i)].push_back(as_quoted(a));
    std::array<double, 7> key{alpha_[i], leader_alpha_[i], theta_[i], x0_[i], 0.0, 0.0, 0.0};
    if (ps_.protocol == sim::InvestProtocol::mutual) {
      const int j = peer_[i];
      key[4] = alpha_[j];
      key[5] = theta_[j];
      key[6] = x0_[j];
    }
    auto it = solved.find(key);
    if (it == solved.end() && ps_.protocol == sim::InvestProtocol::mutual) {
      // P2 (section 3.4): the dataset's group of three, with this agent's peer as the peer.
      const auto sol = theory::solve_mutual_game(
          investalign::mutual_group_game(market, T, leader_alpha_[i], profile_of(i), profile_of(peer_[i])));
      std::vector<double> amounts;
      for (int k = 0; k < T; ++k) amounts.push_back(sol.amounts(k + 1.0)(1));
      it = solved.emplace(key, std::move(amounts)).first;
    } else if (it == solved.end()) {
      theory::HerdProblem hp;
      hp.market = market;
      hp.alpha = alpha_[i];
      hp.alpha_leader = leader_alpha_[i];
      hp.theta = theta_[i];
      hp.x0 = x0_[i];
      hp.horizon = T;
      hp.time = theory::TimeModel::continuous();
      std::vector<double> amounts;
      // The relative task is scored against relative herding (P1, section 3.3), never the absolute
      // closed form (the released code's pitfall 5); pinned ends, as the dataset's relative targets.
      if (ps_.protocol == sim::InvestProtocol::relative) {
        const auto sol = theory::solve_relative_herd(hp);
        for (int k = 0; k < T; ++k) amounts.push_back(sol.amount(k + 1.0));
      } else {
        const auto sol = theory::solve_absolute_herd(hp, theory::EtaFormula::correct);
        for (int k = 0; k < T; ++k) amounts.push_back(sol.amount(k + 1.0));
      }
      it = solved.emplace(key, std::move(amounts)).first;
    }
    for (int k = 0; k < T; ++k) own.theory_amount(i, k) = it->second[static_cast<std::size_t>(k)];
  }

  sim::InferenceLog log;
  log.backend = backend_->name();
  log.backend_description = backend_->describe();
  log.protocol = to_name(ps_.protocol);
  log.width = ps_.protocol == sim::InvestProtocol::step ? 1 : T;
  own.inference = std::move(log);

  if (ps_.protocol == sim::InvestProtocol::step) {
    add_kind_state(own, std::string(kStepAmount), ps_.count, state.paths);
    add_kind_state(own, std::string(kLastProportion), ps_.count, state.paths);
    add_kind_state(own, std::string(kLeaderWealth), leader_count_, state.paths);
  } else {
    add_kind_state(own, std::string(kPlan), ps_.count, T);
    if (ps_.protocol == sim::InvestProtocol::relative)
      add_kind_state(own, std::string(kFirstYear), ps_.count, 1);
  }

  // The prompt templates of every task the protocol asks, once per distinct leader alpha.
  std::vector<TaskKind> tasks;
  switch (ps_.protocol) {
    case sim::InvestProtocol::absolute:
      tasks = {TaskKind::absolute};
      break;
    case sim::InvestProtocol::relative:
      tasks = {TaskKind::absolute, TaskKind::relative};
      break;
    case sim::InvestProtocol::mutual:
      tasks = {TaskKind::mutual};
      break;
    case sim::InvestProtocol::step:
      tasks = {TaskKind::step};
      break;
  }
  templates_.clear();
  for (const TaskKind task : tasks) {
    for (int i = 0; i < ps_.count; ++i) {
      const auto key = std::make_pair(static_cast<int>(task), leader_alpha_[i]);
      if (templates_.contains(key)) continue;
      investalign::TaskSettings settings;
      settings.market = market;
      settings.alpha_leader = leader_alpha_[i];
      settings.horizon_years = horizon_years_;
      settings.lottery = ps_.lottery;
      templates_.emplace(key, investalign::make_prompt_template(task, settings));
    }
  }
}

const investalign::PromptTemplate& InvestAgentPopulation::prompt_template(TaskKind kind,
                                                                          double alpha_leader) const {
  const auto it = templates_.find(std::make_pair(static_cast<int>(kind), alpha_leader));
  if (it == templates_.end())
    throw Error(fmt::format("population '{}': no prompt template for task {} and leader alpha {}", ps_.name,
                            investalign::task_kind_name(kind), alpha_leader));
  return it->second;
}

investalign::InvestorProfile InvestAgentPopulation::profile_of(int agent) const {
  investalign::InvestorProfile p;
  p.lottery_prob = lottery_prob_[agent];
  p.alpha = alpha_[agent];
  p.score = score_[agent];
  p.theta = theta_[agent];
  p.budget = x0_[agent];
  return p;
}

investalign::PromptInputs InvestAgentPopulation::inputs_of(int agent) const {
  investalign::PromptInputs in;
  in.investor = profile_of(agent);
  if (ps_.protocol == sim::InvestProtocol::mutual) in.peer = profile_of(peer_[agent]);
  in.advisor = advisor_[static_cast<std::size_t>(agent)];
  return in;
}

void InvestAgentPopulation::ask(int step, std::size_t n, const std::function<Query(std::size_t)>& make,
                                const std::function<void(std::size_t, const investalign::ParsedAnswer&)>& use,
                                sim::PopulationState& own) {
  sim::InferenceLog& log = *own.inference;
  const sim::InferenceSpec& is = ps_.inference;
  const auto batch = static_cast<std::size_t>(std::max(1, is.batch));
  std::vector<Query> queries;
  std::vector<inference::Request> requests;
  for (std::size_t begin = 0; begin < n; begin += batch) {
    const std::size_t end = std::min(n, begin + batch);
    queries.clear();
    requests.clear();
    for (std::size_t i = begin; i < end; ++i) {
      queries.push_back(make(i));
      const Query& q = queries.back();
      inference::Request r;
      r.system = q.prompt.system;
      r.user = q.prompt.user();
      r.max_tokens = is.max_tokens;
      r.temperature = is.temperature;
      r.seed = q.seed;
      if (q.grammar != nullptr) r.grammar = *q.grammar;
      requests.push_back(std::move(r));
    }
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<inference::Response> responses = backend_->generate(requests);
    log.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (responses.size() != requests.size()) {
      throw BackendError(fmt::format("population '{}': backend {} returned {} responses for {} requests",
                                     ps_.name, log.backend, responses.size(), requests.size()));
    }
    for (std::size_t j = 0; j < queries.size(); ++j) {
      const Query& q = queries[j];
      const inference::Response& r = responses[j];
      if (!r.ok()) {
        // An engine failure is not an answer: stop rather than play a fallback nobody chose.
        throw BackendError(fmt::format(
            "population '{}': backend {} failed on agent {} (step {}, path {}, stage {}, "
            "prompt {}, seed {}): {}: {}",
            ps_.name, log.backend, q.agent, step, q.path, q.stage, investalign::hash_hex(q.prompt.hash()),
            q.seed, inference::status_name(r.status), r.error));
      }
      const investalign::ParsedAnswer answer = investalign::parse_answer(r.text, *q.schema, q.fallback);
      sim::Transcript t;
      t.step = step;
      t.path = q.path;
      t.agent = q.agent;
      t.stage = q.stage;
      t.prompt_hash = q.prompt.hash();
      t.seed = q.seed;
      t.output = r.text;
      t.values = answer.values;
      t.valid = answer.valid;
      t.status = investalign::answer_status_name(answer.status);
      t.prompt_tokens = r.prompt_tokens;
      t.cached_tokens = r.cached_tokens;
      t.completion_tokens = r.completion_tokens;
      t.time_ms = r.time_ms;
      log.pending.push_back(std::move(t));
      ++log.requests;
      if (!answer.valid) ++log.invalid;
      log.prompt_tokens += r.prompt_tokens;
      log.cached_tokens += r.cached_tokens;
      log.completion_tokens += r.completion_tokens;
      use(begin + j, answer);
    }
  }
}

void InvestAgentPopulation::prepare_step(const sim::DecisionContext& ctx, sim::PopulationState& own) {
  switch (ps_.protocol) {
    case sim::InvestProtocol::absolute:
    case sim::InvestProtocol::relative:
    case sim::InvestProtocol::mutual:
      if (ctx.step == 0) ask_plan(ctx, own);
      if (ctx.step == 1 && ps_.protocol == sim::InvestProtocol::relative) ask_changes(ctx, own);
      break;
    case sim::InvestProtocol::step:
      ask_step(ctx, own);
      break;
  }
}

// absolute, mutual and stage 0 of relative: T proportions per agent at t = 0, the same on every path
// (mutual: the mutual prompt, which adds the agent's peer's profile).
void InvestAgentPopulation::ask_plan(const sim::DecisionContext& ctx, sim::PopulationState& own) {
  const bool relative = ps_.protocol == sim::InvestProtocol::relative;
  const TaskKind kind = ps_.protocol == sim::InvestProtocol::mutual ? TaskKind::mutual : TaskKind::absolute;
  const auto make = [&](std::size_t i) {
    const int agent = static_cast<int>(i);
    Query q;
    q.agent = agent;
    q.prompt = investalign::render_prompt(prompt_template(kind, leader_alpha_[agent]), inputs_of(agent));
    q.seed = request_seed(*ctx.rng, ctx.population_index, agent, ctx.step, -1, 0);
    q.schema = &plan_schema_;
    q.grammar = ps_.inference.grammar ? &plan_grammar_ : nullptr;
    q.fallback = advisor_[i];
    return q;
  };
  Eigen::MatrixXd& plan = kind_state(own, kPlan);
  Eigen::MatrixXd* first_year = relative ? &kind_state(own, kFirstYear) : nullptr;
  const auto use = [&](std::size_t i, const investalign::ParsedAnswer& a) {
    const auto& b = budgets_[i];
    const auto agent = static_cast<Eigen::Index>(i);
    if (relative) {
      (*first_year)(agent, 0) = a.values.front();  // only year 1 is kept; the rest comes from the changes
      for (int k = 0; k < horizon_years_; ++k) plan(agent, k) = a.values.front() * b.front();
    } else {
      for (int k = 0; k < horizon_years_; ++k)
        plan(agent, k) = a.values[static_cast<std::size_t>(k)] * b[static_cast<std::size_t>(k)];
    }
  };
  ask(ctx.step, static_cast<std::size_t>(ps_.count), make, use, own);
}

// Stage 1 of relative (t = 1, after wealth moved once): T - 1 changes; pi_{j+1} = pi_j + c_j.
void InvestAgentPopulation::ask_changes(const sim::DecisionContext& ctx, sim::PopulationState& own) {
  Eigen::MatrixXd& plan = kind_state(own, kPlan);
  const Eigen::MatrixXd& first_year = kind_state(own, kFirstYear);
  const auto make = [&](std::size_t i) {
    const int agent = static_cast<int>(i);
    Query q;
    q.agent = agent;
    q.stage = 1;
    investalign::PromptInputs in = inputs_of(agent);
    in.first_year_proportion = first_year(static_cast<Eigen::Index>(i), 0);
    q.prompt = investalign::render_prompt(prompt_template(TaskKind::relative, leader_alpha_[agent]), in);
    q.seed = request_seed(*ctx.rng, ctx.population_index, agent, ctx.step, -1, 1);
    q.schema = &change_schema_;
    q.grammar = ps_.inference.grammar ? &change_grammar_ : nullptr;
    const auto& adv = advisor_[i];
    for (std::size_t j = 1; j < adv.size(); ++j) q.fallback.push_back(adv[j] - adv[j - 1]);
    return q;
  };
  const auto use = [&](std::size_t i, const investalign::ParsedAnswer& a) {
    const auto& b = budgets_[i];
    double pi = first_year(static_cast<Eigen::Index>(i), 0);
    for (int k = 1; k < horizon_years_; ++k) {
      pi += a.values[static_cast<std::size_t>(k - 1)];
      plan(static_cast<Eigen::Index>(i), k) = pi * b[static_cast<std::size_t>(k)];
    }
  };
  ask(ctx.step, static_cast<std::size_t>(ps_.count), make, use, own);
}

// step: one request per (agent, path) with the state at t_k; P = pi X_k.
void InvestAgentPopulation::ask_step(const sim::DecisionContext& ctx, sim::PopulationState& own) {
  const sim::PopulationState& leader = ctx.state->populations[static_cast<std::size_t>(leader_index_)];
  const int k = ctx.step;
  const auto count = static_cast<std::size_t>(ps_.count);
  Eigen::MatrixXd& step_amount = kind_state(own, kStepAmount);
  Eigen::MatrixXd& last_proportion = kind_state(own, kLastProportion);
  Eigen::MatrixXd& leader_wealth = kind_state(own, kLeaderWealth);
  const auto make = [&](std::size_t s) {
    const int agent = static_cast<int>(s % count);
    const int path = static_cast<int>(s / count);
    const int l = agent % leader_count_;
    Query q;
    q.agent = agent;
    q.path = path;
    investalign::PromptInputs in = inputs_of(agent);
    investalign::StepState st;
    st.year = k + 1;
    st.wealth = own.wealth(agent, path);
    if (k > 0) {
      st.own_last = last_proportion(agent, path);
      // Last year's leader decision over the leader's wealth when it took it.
      st.leader_last = leader.previous_amount(l, path) / leader_wealth(l, path);
    }
    in.step = st;
    q.prompt = investalign::render_prompt(prompt_template(TaskKind::step, leader_alpha_[agent]), in);
    q.seed = request_seed(*ctx.rng, ctx.population_index, agent, k, path, 0);
    q.schema = &step_schema_;
    q.grammar = ps_.inference.grammar ? &step_grammar_ : nullptr;
    q.fallback = {advisor_[static_cast<std::size_t>(agent)][static_cast<std::size_t>(k)]};
    return q;
  };
  const auto use = [&](std::size_t s, const investalign::ParsedAnswer& a) {
    const auto agent = static_cast<Eigen::Index>(s % count);
    const auto path = static_cast<Eigen::Index>(s / count);
    last_proportion(agent, path) = a.values.front();
    step_amount(agent, path) = a.values.front() * own.wealth(agent, path);
  };
  ask(k, count * static_cast<std::size_t>(ctx.state->paths), make, use, own);
  leader_wealth = leader.wealth;  // X_k of the leaders, for next step's "last year" proportion
}

void InvestAgentPopulation::decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                                   sim::PopulationState& own) const {
  const int len = a1 - a0;
  const bool step = ps_.protocol == sim::InvestProtocol::step;
  const Eigen::MatrixXd& played = kind_state(own, step ? kStepAmount : kPlan);
  for (int p = p0; p < p1; ++p)
    own.amount.col(p).segment(a0, len) = played.col(step ? p : ctx.step).segment(a0, len);
}

}  // namespace herdsim::agents
