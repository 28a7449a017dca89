#include "agents/investagent_agent.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <map>
#include <string>

#include "agents/agent_support.hpp"
#include "agents/merton_agent.hpp"
#include "agents/parameters.hpp"
#include "sim/error.hpp"
#include "sim/investalign/answer.hpp"
#include "sim/investalign/dataset.hpp"
#include "sim/investalign/reference.hpp"
#include "sim/market/asset_covariance.hpp"
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

/// The problem a protocol's answers are scored against (step: P3, the closed form at t = k + 1).
investalign::Problem scored_problem_of(InvestProtocol protocol) {
  switch (protocol) {
    case InvestProtocol::relative:
      return investalign::Problem::relative;
    case InvestProtocol::mutual:
      return investalign::Problem::mutual;
    case InvestProtocol::absolute:
    case InvestProtocol::step:
      break;
  }
  return investalign::Problem::absolute;
}

/// A fraction rounded to hundredths of a percent: the advisor's values as the prompt quotes them.
double as_quoted(double fraction) {
  return static_cast<double>(std::llround(fraction * 10000.0)) / 10000.0;
}

/// The index of the asset called name in the market, or -1.
int asset_index(const sim::MarketSpec& market, const std::string& name) {
  for (int a = 0; a < market.asset_count(); ++a) {
    if (market.asset(a).name == name) return a;
  }
  return -1;
}

/// The market's asset names, quoted: "\"stock\", \"bond\"".
std::string quoted_asset_names(const sim::MarketSpec& market) {
  std::string out;
  for (int a = 0; a < market.asset_count(); ++a)
    out += fmt::format("{}\"{}\"", a == 0 ? "" : ", ", market.asset(a).name);
  return out;
}

/// theory::merton_alpha_factor of the asset a population trades: 1 with one asset.
double advisor_alpha_factor(const sim::MarketSpec& market, int asset) {
  return theory::merton_alpha_factor(sim::asset_covariance(market), sim::asset_excess_returns(market), asset);
}

/// `asset`: required with several assets (the prompts are about one stock), a name of the market's assets,
/// and, with several, an asset that the advisor (a Merton investor in all of them) holds on the side of its
/// excess return, so that a one-asset Merton advisor holds the same (docs/theory.md §7.1).
void check_traded_asset(const sim::ScenarioSpec& spec, const InvestAgentParams& p, KeyReporter& out) {
  if (!out.valid("asset")) return;
  const sim::MarketSpec& m = spec.market;
  const int n = m.asset_count();
  if (p.asset.empty()) {
    if (n > 1) {
      out.report("asset",
                 fmt::format("is required{} in a market of several assets: its prompts are about a single "
                             "stock, so name the one it trades, one of {}",
                             for_kind(InvestAgentParams::kind), quoted_asset_names(m)));
    }
    return;
  }
  const int j = asset_index(m, p.asset);
  if (j < 0) {
    out.report("asset", fmt::format("there is no asset named \"{}\"; {} {}", p.asset,
                                    n == 1 ? "the market's only asset is" : "the market's assets are",
                                    quoted_asset_names(m)));
    return;
  }
  if (n == 1 || !sim::market_problems(m, spec.run.horizon).empty()) return;  // [market] reports its own
  const double factor = advisor_alpha_factor(m, j);
  if (factor > 0.0 && std::isfinite(factor)) return;
  const sim::AssetSpec a = m.asset(j);
  const double excess = a.mu - m.r;
  if (excess == 0.0) {
    out.report("asset", fmt::format("asset \"{}\" has no excess return (mu = r = {}): a one-asset investor "
                                    "holds none of it, so its single-stock problem has no advisor to follow; "
                                    "choose another asset",
                                    p.asset, m.r));
    return;
  }
  // The advisor's holding (Sigma^{-1} v)_j has the sign of excess / factor (none where factor is not finite).
  const char* held =
      !std::isfinite(factor) ? "nothing" : (excess / factor > 0.0 ? "a long position" : "a short position");
  out.report(
      "asset",
      fmt::format("the advisor, a Merton investor in all {} assets (amounts Sigma^-1 v / (alpha G)), "
                  "holds {} in asset \"{}\" although its excess return mu - r = {:.6g} is {}: no one-asset "
                  "Merton advisor does so, so its single-stock problem does not apply (docs/theory.md "
                  "§7.1); choose an asset the advisor holds on the side of its excess return",
                  n, held, p.asset, excess, excess > 0.0 ? "positive" : "negative"));
}

}  // namespace

namespace {

/// The `inference` table (a sim::InferenceSpec: the backend seam's description).
void read_inference(KeyReader& in, sim::InferenceSpec& s) {
  if (!in.has("inference")) {
    in.report("inference",
              "is required for kind = \"investagent\": a table with backend and model (or replay)");
    return;
  }
  const auto table = in.table("inference");
  if (table == nullptr) return;
  static constexpr std::array<std::string_view, 14> keys{
      "backend",        "model",   "lora",   "temperature",  "max_tokens",        "batch",    "threads",
      "prefix_sharing", "grammar", "replay", "replay_group", "replay_population", "answerer", "mode"};
  table->allow_only(keys);
  table->require(
      "backend",
      ": a plugin name (\"llama\", \"llama_cuda\"), \"auto\" (CUDA when usable, else CPU), a plugin "
      "path, \"replay\" or \"reference\"");
  if (const auto backend = table->string("backend")) {
    s.backend = *backend;
    if (backend->empty()) table->report("backend", "must not be empty");
  }
  const bool replay = s.backend == "replay";
  const bool reference = s.backend == "reference";
  s.model = table->string("model").value_or("");
  // A reference answerer computes its answers (sim/investalign/reference.hpp): no model.
  if (reference) {
    if (!table->has("answerer")) {
      table->report("answerer", fmt::format("is required with backend = \"reference\": one of {}",
                                            quoted_names<investalign::Answerer>()));
    } else if (const auto answerer = table->choice<investalign::Answerer>("answerer")) {
      s.answerer = std::string(to_name(*answerer));
    }
  } else if (table->has("answerer") && !s.backend.empty()) {
    table->report("answerer", "applies only with backend = \"reference\"");
  }
  if (!replay && !reference && !s.backend.empty() && !table->has("model"))
    table->report("model", fmt::format("is required with backend = \"{}\": the model file", s.backend));
  s.lora = table->strings("lora", "an adapter file", "adapter files").value_or(s.lora);
  s.temperature = table->number("temperature", non_negative).value_or(s.temperature);
  s.max_tokens = static_cast<int>(table->integer("max_tokens", 1).value_or(s.max_tokens));
  s.batch = static_cast<int>(table->integer("batch", 1).value_or(s.batch));
  s.threads = static_cast<int>(table->integer("threads", 1).value_or(s.threads));
  s.prefix_sharing = table->boolean("prefix_sharing").value_or(s.prefix_sharing);
  s.grammar = table->boolean("grammar").value_or(s.grammar);
  if (const auto mode = table->string("mode")) {
    if (*mode == "batch_invariant" || *mode == "fast") {
      s.mode = *mode;
    } else {
      table->report("mode", fmt::format("must be \"batch_invariant\" (answers independent of the batch) or "
                                        "\"fast\" (llama.cpp's default kernels), got \"{}\"",
                                        *mode));
    }
  }
  // model, lora and threads may stay when a scenario is switched to replay with --set: they are ignored.
  for (const char* key : {"replay", "replay_group", "replay_population"}) {
    if (table->has(key) && !replay && !s.backend.empty())
      table->report(key, "applies only with backend = \"replay\"");
  }
  s.replay = table->string("replay").value_or("");
  s.replay_group = table->string("replay_group").value_or("");
  s.replay_population = table->string("replay_population").value_or("");
  if (replay && !table->has("replay"))
    table->report("replay", "is required with backend = \"replay\": the run file whose transcripts answer");
}

class InvestAgentKind final : public Kind {
 public:
  [[nodiscard]] std::string_view name() const override { return InvestAgentParams::kind; }
  [[nodiscard]] std::span<const KeyInfo> keys() const override { return keys_; }

  [[nodiscard]] std::any read(KeyReader& in, const sim::PopulationSpec& common) const override {
    InvestAgentParams p;
    read_alpha(in, common, p.alpha, p.lottery, LotteryKey::always);
    read_theta(in, common, p.theta);
    p.protocol = in.choice<InvestProtocol>("protocol").value_or(InvestProtocol::absolute);
    if (const auto asset = in.string("asset")) {
      p.asset = *asset;
      if (asset->empty()) in.report("asset", "must not be empty: the name of one of the market's assets");
    }
    in.require("leader", for_kind(name()) + ": the name of a merton population");
    p.leader = in.string("leader").value_or("");
    read_inference(in, p.inference);
    return p;
  }

  // InvestAgents decide once a year over the reference budget list: steps_per_year = 1 and a horizon of
  // 1..10 whole years (relative: >= 2); mutual needs a peer; the advisor is a merton population; they trade
  // one asset of the market.
  void check(const sim::ScenarioSpec& spec, int index, KeyReporter& out) const override {
    const sim::PopulationSpec& ps = spec.populations[static_cast<std::size_t>(index)];
    const InvestAgentParams& p = params_of<InvestAgentParams>(ps);
    check_traded_asset(spec, p, out);
    const double T = spec.run.horizon;
    const auto max_years = investalign::static_budget_list.size();
    if (spec.run.steps_per_year != 1 || T != std::round(T) || T < 1.0 || T > static_cast<double>(max_years)) {
      out.report(
          "kind",
          fmt::format("kind = \"investagent\" needs run.steps_per_year = 1 and run.horizon a whole number "
                      "of years in 1..{} (one answer per year over the reference budgets), got horizon {} "
                      "with steps_per_year {}",
                      max_years, T, spec.run.steps_per_year));
    } else if (p.protocol == InvestProtocol::relative && T < 2.0) {
      out.report("protocol", "protocol = \"relative\" needs run.horizon >= 2 years (T - 1 changes)", "kind");
    }
    if (p.protocol == InvestProtocol::mutual && out.valid("count") && ps.count < 2) {
      out.report(
          "count",
          fmt::format("protocol = \"mutual\" needs count >= 2 (each agent's peer is another agent of the "
                      "population), got {}",
                      ps.count),
          "protocol");
    }
    static constexpr std::array<std::string_view, 1> kLeaderKinds{MertonParams::kind};
    static_cast<void>(check_population_ref(spec, "leader", p.leader, ps.name, kLeaderKinds, out));
  }

  [[nodiscard]] std::unique_ptr<sim::Population> make(
      const sim::ScenarioSpec& spec, int index, const inference::BackendFactory& backends) const override {
    const sim::PopulationSpec& ps = spec.populations[static_cast<std::size_t>(index)];
    if (!backends) {
      throw ScenarioError(fmt::format(
          "population '{}': kind investagent needs an inference backend, and none can be created here",
          ps.name));
    }
    std::unique_ptr<inference::Backend> backend;
    try {
      backend = backends(params_of<InvestAgentParams>(ps).inference);
    } catch (const BackendError& e) {  // the factory's message names the file; this names the population
      throw BackendError(fmt::format("population '{}': {}", ps.name, e.what()));
    } catch (const IoError& e) {
      throw IoError(fmt::format("population '{}': inference.replay: {}", ps.name, e.what()));
    }
    if (backend == nullptr)
      throw ScenarioError(
          fmt::format("population '{}': kind investagent needs an inference backend", ps.name));
    return std::make_unique<InvestAgentPopulation>(spec, index, std::move(backend));
  }

  [[nodiscard]] std::vector<std::string> recorded_params(const sim::PopulationSpec& ps) const override {
    std::vector<std::string> out{"alpha", "theta", "wealth0", "leader_alpha", "lottery_prob", "score"};
    if (params_of<InvestAgentParams>(ps).protocol == InvestProtocol::mutual) out.emplace_back("peer");
    return out;
  }
  [[nodiscard]] InvestorDraws investor_draws(const sim::PopulationSpec& ps) const override {
    const InvestAgentParams& ip = params_of<InvestAgentParams>(ps);
    return {{{"alpha", &ip.alpha}, {"theta", &ip.theta}, {"wealth0", &ps.wealth}}, ip.lottery};
  }

 private:
  static constexpr std::array<KeyInfo, 7> keys_{{
      {"alpha", "CARA risk aversion, per currency unit, usually {lottery_prob = ...}"},
      {"lottery", "the questionnaire's lottery: win10_sure3 or win20_sure6"},
      {"theta", "herding coefficient, usually {score = ...}"},
      {"leader", "the advisor: the name of a merton population"},
      {"protocol", "absolute, relative, mutual or step"},
      {"asset", "the market asset it trades and its prompts are about (required with several assets)"},
      {"inference",
       "{backend, model, lora, temperature, max_tokens, batch, threads, prefix_sharing, grammar, "
       "replay, replay_group, replay_population, answerer, mode}"},
  }};
};

}  // namespace

std::unique_ptr<Kind> make_investagent_kind() {
  return std::make_unique<InvestAgentKind>();
}

int traded_asset(const sim::ScenarioSpec& spec, const sim::PopulationSpec& ps) {
  const InvestAgentParams* p = params_if<InvestAgentParams>(ps);
  if (p == nullptr) return -1;
  if (p->asset.empty()) return spec.market.asset_count() == 1 ? 0 : -1;
  return asset_index(spec.market, p->asset);
}

const char* scored_problem(InvestProtocol protocol) {
  switch (protocol) {
    case InvestProtocol::relative:
      return "P1";
    case InvestProtocol::mutual:
      return "P2";
    case InvestProtocol::absolute:
    case InvestProtocol::step:
      return "P3";
  }
  return "unknown";
}

InvestAgentPopulation::InvestAgentPopulation(const sim::ScenarioSpec& spec, int index,
                                             std::unique_ptr<inference::Backend> backend)
    : spec_(spec),
      ps_(spec.populations[static_cast<std::size_t>(index)]),
      ip_(params_of<InvestAgentParams>(ps_)),
      index_(index),
      backend_(std::move(backend)) {
  horizon_years_ = static_cast<int>(std::round(spec_.run.horizon));
  assets_ = spec_.market.asset_count();
  asset_ = traded_asset(spec_, ps_);
  if (asset_ < 0)
    throw ScenarioError(
        fmt::format("population '{}': asset: the market has no asset named \"{}\"", ps_.name, ip_.asset));
  leader_index_ = population_index(spec_, ip_.leader);
  plan_schema_ = investalign::proportion_sequence_schema(horizon_years_);
  step_schema_ = investalign::single_proportion_schema();
  if (horizon_years_ >= 2) change_schema_ = investalign::change_sequence_schema(horizon_years_);
  if (ip_.inference.grammar) {
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
  if (ps_.agent_block())
    throw Error(
        fmt::format("population '{}' is LLM-backed (investagent): its requests and transcripts are "
                    "not split into blocks of agents",
                    ps_.name));
  const sim::CounterRng rng(spec_.run.seed);
  own.params = investor_values(spec_, index_);
  set_initial_wealth(own);
  alpha_ = param(own, "alpha");
  theta_ = param(own, "theta");
  x0_ = param(own, "wealth0");
  // The questionnaire values the prompt quotes: the same expansion without the mapping (same grid
  // positions and draws), or the inverse maps when alpha and theta were given directly.
  const auto raw = unscaled_values({{"alpha", &ip_.alpha}, {"theta", &ip_.theta}, {"wealth0", &ps_.wealth}},
                                   ps_.count, index_, rng);
  // A paired population (investors = ...) answers its source's questionnaire, lottery convention included.
  const sim::PopulationSpec& source =
      spec_.populations[static_cast<std::size_t>(investors_source(spec_, index_))];
  const theory::LotteryConvention lottery = kind_of(source).investor_draws(source).lottery;
  lottery_prob_.resize(ps_.count);
  score_.resize(ps_.count);
  for (int i = 0; i < ps_.count; ++i) {
    lottery_prob_[i] = ip_.alpha.scale == sim::ParamSpec::Scale::lottery_prob
                           ? raw[0].second[i]
                           : theory::lottery_prob_from_alpha(alpha_[i], lottery);
    score_[i] = ip_.theta.scale == sim::ParamSpec::Scale::score ? raw[1].second[i]
                                                                : theory::score_from_theta(theta_[i]);
  }
  leader_count_ = spec_.populations[static_cast<std::size_t>(leader_index_)].count;
  leader_alpha_ = leader_alpha_of(spec_, leader_index_, ps_.count);
  own.params.emplace_back("leader_alpha", leader_alpha_);
  own.params.emplace_back("lottery_prob", lottery_prob_);
  own.params.emplace_back("score", score_);
  if (ip_.protocol == InvestProtocol::mutual) {
    peer_.resize(ps_.count);
    for (int i = 0; i < ps_.count; ++i) peer_[i] = peer_of(rng, index_, i, ps_.count);
    own.params.emplace_back("peer", peer_.cast<double>());
  }

  // Reference budgets, the advisor's quoted proportions (its continuous-time Merton amount at t = j over
  // B_j, the dataset's convention), and the optimum the dataset targets encode (P3; P1 for the relative
  // protocol; P2, the group of advisor, agent and peer, for the mutual protocol): column k holds the amount
  // at t = k + 1, the year-(k + 1) target times B_{k+1} before rounding and clamping. All in the one-asset
  // market of the traded asset, where the advisor's holding of it (component j of its Merton vector) is the
  // Merton path of its alpha times `factor` (docs/theory.md §7.1); its theory in the other assets is 0.
  const int T = horizon_years_;
  const theory::Market market = theory_market(spec_, asset_);
  const double factor = advisor_alpha_factor(spec_.market, asset_);
  const theory::Schedule schedule(market, T, theory::TimeModel::continuous());
  budgets_.assign(static_cast<std::size_t>(ps_.count), {});
  advisor_.assign(static_cast<std::size_t>(ps_.count), {});
  own.theory_amount = Eigen::MatrixXd::Zero(ps_.count, static_cast<Eigen::Index>(assets_) * T);
  std::map<std::array<double, 7>, std::vector<double>> solved;  // one solve per distinct agent (and peer)
  for (int i = 0; i < ps_.count; ++i) {
    auto& budgets = budgets_[static_cast<std::size_t>(i)];
    budgets = investalign::reference_budgets(x0_[i]);
    budgets.resize(static_cast<std::size_t>(T));
    for (const double a : investalign::proportions_of(
             [&](double t) { return theory::merton_amount(schedule, leader_alpha_[i] * factor, t); },
             budgets))
      advisor_[static_cast<std::size_t>(i)].push_back(as_quoted(a));
    std::array<double, 7> key{alpha_[i], leader_alpha_[i], theta_[i], x0_[i], 0.0, 0.0, 0.0};
    if (ip_.protocol == InvestProtocol::mutual) {
      const int j = peer_[i];
      key[4] = alpha_[j];
      key[5] = theta_[j];
      key[6] = x0_[j];
    }
    auto it = solved.find(key);
    if (it == solved.end()) {
      // The relative task is scored against relative herding (P1, section 3.3), never the absolute
      // closed form (docs/theory.md §6.2, pitfall 5); pinned ends, as the dataset's relative targets.
      // Mutual: P2 (section 3.4), the dataset's group of three with this agent's peer as the peer.
      investalign::TaskSettings settings;
      settings.market = market;
      settings.alpha_leader = leader_alpha_[i];
      settings.advisor_alpha_factor = factor;
      settings.horizon_years = T;
      const bool mutual = ip_.protocol == InvestProtocol::mutual;
      it = solved
               .emplace(key, investalign::problem_amounts(
                                 scored_problem_of(ip_.protocol), settings, profile_of(i),
                                 mutual ? std::optional(profile_of(peer_[i])) : std::nullopt))
               .first;
    }
    for (int k = 0; k < T; ++k)
      own.theory_amount(i, asset_ * T + k) = it->second[static_cast<std::size_t>(k)];
  }

  sim::InferenceLog log;
  log.backend = backend_->name();
  log.backend_description = backend_->describe();
  log.protocol = to_name(ip_.protocol);
  log.decision_cache = backend_->caches();
  log.width = ip_.protocol == InvestProtocol::step ? 1 : T;
  own.inference = std::move(log);

  if (ip_.protocol == InvestProtocol::step) {
    add_kind_state(own, std::string(kStepAmount), ps_.count, state.paths);
    add_kind_state(own, std::string(kLastProportion), ps_.count, state.paths);
    add_kind_state(own, std::string(kLeaderWealth), leader_count_, state.paths);
  } else {
    add_kind_state(own, std::string(kPlan), ps_.count, T);
    if (ip_.protocol == InvestProtocol::relative) add_kind_state(own, std::string(kFirstYear), ps_.count, 1);
  }

  // The prompt templates of every task the protocol asks, once per distinct leader alpha.
  std::vector<TaskKind> tasks;
  switch (ip_.protocol) {
    case InvestProtocol::absolute:
      tasks = {TaskKind::absolute};
      break;
    case InvestProtocol::relative:
      tasks = {TaskKind::absolute, TaskKind::relative};
      break;
    case InvestProtocol::mutual:
      tasks = {TaskKind::mutual};
      break;
    case InvestProtocol::step:
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
      settings.advisor_alpha_factor = factor;
      settings.horizon_years = horizon_years_;
      settings.lottery = ip_.lottery;
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
  if (ip_.protocol == InvestProtocol::mutual) in.peer = profile_of(peer_[agent]);
  in.advisor = advisor_[static_cast<std::size_t>(agent)];
  return in;
}

void InvestAgentPopulation::ask(int step, std::size_t n, const std::function<Query(std::size_t)>& make,
                                const std::function<void(std::size_t, const investalign::ParsedAnswer&)>& use,
                                sim::PopulationState& own) {
  sim::InferenceLog& log = *own.inference;
  const sim::InferenceSpec& is = ip_.inference;
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
      // The structured question, for answer sources that compute their answers (reference answerers).
      r.question = investalign::Question{scored_problem_of(ip_.protocol), q.prompt_template->kind,
                                         q.prompt_template->settings, std::move(queries.back().inputs)};
      requests.push_back(std::move(r));
    }
    const auto t0 = std::chrono::steady_clock::now();
    // Path-independent requests (path -1) are asked alike by every rank of a path split: the backend may
    // share them out among the ranks (Backend::generate_shared), so that none is decided twice.
    const bool path_independent = queries.front().path < 0;
    const std::vector<inference::Response> responses =
        path_independent ? backend_->generate_shared(requests) : backend_->generate(requests);
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
      t.cache_hit = r.cache_hit;
      if (r.cache_hit) ++log.cache_hits;
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
  switch (ip_.protocol) {
    case InvestProtocol::absolute:
    case InvestProtocol::relative:
    case InvestProtocol::mutual:
      if (ctx.step == 0) ask_plan(ctx, own);
      if (ctx.step == 1 && ip_.protocol == InvestProtocol::relative) ask_changes(ctx, own);
      break;
    case InvestProtocol::step:
      ask_step(ctx, own);
      break;
  }
}

// absolute, mutual and stage 0 of relative: T proportions per agent at t = 0, the same on every path
// (mutual: the mutual prompt, which adds the agent's peer's profile).
void InvestAgentPopulation::ask_plan(const sim::DecisionContext& ctx, sim::PopulationState& own) {
  const bool relative = ip_.protocol == InvestProtocol::relative;
  const TaskKind kind = ip_.protocol == InvestProtocol::mutual ? TaskKind::mutual : TaskKind::absolute;
  const auto make = [&](std::size_t i) {
    const int agent = static_cast<int>(i);
    Query q;
    q.agent = agent;
    q.prompt_template = &prompt_template(kind, leader_alpha_[agent]);
    q.inputs = inputs_of(agent);
    q.prompt = investalign::render_prompt(*q.prompt_template, q.inputs);
    q.seed = request_seed(*ctx.rng, ctx.population_index, agent, ctx.step, -1, 0);
    q.schema = &plan_schema_;
    q.grammar = ip_.inference.grammar ? &plan_grammar_ : nullptr;
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
    q.inputs = inputs_of(agent);
    q.inputs.first_year_proportion = first_year(static_cast<Eigen::Index>(i), 0);
    q.prompt_template = &prompt_template(TaskKind::relative, leader_alpha_[agent]);
    q.prompt = investalign::render_prompt(*q.prompt_template, q.inputs);
    q.seed = request_seed(*ctx.rng, ctx.population_index, agent, ctx.step, -1, 1);
    q.schema = &change_schema_;
    q.grammar = ip_.inference.grammar ? &change_grammar_ : nullptr;
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
    q.path = ctx.first_path +
             path;  // the global path (RunSpec::first_path): seed and transcript as on one process
    investalign::PromptInputs in = inputs_of(agent);
    investalign::StepState st;
    st.year = k + 1;
    st.wealth = own.wealth(agent, path);
    if (k > 0) {
      st.own_last = last_proportion(agent, path);
      // Last year's leader decision in the traded asset over the leader's wealth when it took it.
      st.leader_last = leader.previous_amount(l, asset_ * ctx.state->paths + path) / leader_wealth(l, path);
    }
    in.step = st;
    q.prompt_template = &prompt_template(TaskKind::step, leader_alpha_[agent]);
    q.prompt = investalign::render_prompt(*q.prompt_template, in);
    q.inputs = std::move(in);
    q.seed = request_seed(*ctx.rng, ctx.population_index, agent, k, q.path, 0);
    q.schema = &step_schema_;
    q.grammar = ip_.inference.grammar ? &step_grammar_ : nullptr;
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
  const bool step = ip_.protocol == InvestProtocol::step;
  const Eigen::MatrixXd& played = kind_state(own, step ? kStepAmount : kPlan);
  // The traded asset's amounts are columns [asset paths, (asset + 1) paths); nothing in the other assets.
  const Eigen::Index paths = own.wealth.cols();
  for (int p = p0; p < p1; ++p) {
    for (int a = 0; a < assets_; ++a) {
      auto slots = own.amount.col(a * paths + p).segment(a0, len);
      if (a == asset_) {
        slots = played.col(step ? p : ctx.step).segment(a0, len);
      } else {
        slots.setZero();
      }
    }
  }
}

}  // namespace herdsim::agents
