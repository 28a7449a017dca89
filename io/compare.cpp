#include "io/compare.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "agents/agent_support.hpp"
#include "agents/herd_agent.hpp"
#include "agents/investagent_agent.hpp"
#include "agents/merton_agent.hpp"
#include "io/compare_render.hpp"
#include "io/compare_sweep.hpp"
#include "io/hdf5_schema.hpp"
#include "io/run_file.hpp"
#include "io/scenario_toml.hpp"
#include "io/timestamp.hpp"
#include "io/value_format.hpp"
#include "sim/analysis/theory_references.hpp"
#include "sim/error.hpp"
#include "sim/market/market_step.hpp"
#include "sim/plural.hpp"
#include "sim/theory/market.hpp"

namespace herdsim::io {

namespace {

using analysis::kNaN;

/// Rows of one population, read from the file for the first `agents` recorded agents (amounts: of `asset`).
class FileRows final : public analysis::RowSource {
 public:
  FileRows(const RunFile& file, std::string group, std::string population, int agents, int asset)
      : file_(file),
        group_(std::move(group)),
        population_(std::move(population)),
        agents_(agents),
        asset_(asset) {}
  void wealth_row(int s, Eigen::MatrixXd& out) override {
    file_.read_row(group_, population_, std::string(schema::kWealth), s, out, 0, agents_);
    check_finite(out, "wealth", s);
  }
  void amount_row(int d, Eigen::MatrixXd& out) override {
    file_.read_row(group_, population_, std::string(schema::kAmount), d, out, 0, agents_, asset_);
    check_finite(out, "amount", d);
  }

 private:
  /// inf or NaN would pass silently through every statistic: such a file is refused, naming where.
  void check_finite(const Eigen::MatrixXd& row, const char* dataset, int index) const {
    if (row.allFinite()) return;
    Eigen::Index a = 0;
    Eigen::Index p = 0;
    for (Eigen::Index i = 0; i < row.size(); ++i) {
      if (!std::isfinite(row.data()[i])) {
        a = i % row.rows();
        p = i / row.rows();
        break;
      }
    }
    throw IoError(
        fmt::format("{}: {}/{}/{} row {} holds a non-finite value ({} at agent {}, path {}); compare "
                    "refuses files with inf or NaN values",
                    file_.path(), group_, population_, dataset, index, row(a, p), a, p));
  }

  const RunFile& file_;
  std::string group_;
  std::string population_;
  int agents_;
  int asset_;
};

/// The one-asset analysis of a population in asset `asset` (0 in a one-asset file; an investagent
/// population's traded asset in a file of several, where it holds nothing in the others).
PopulationComparison compare_population(const RunFile& file, const RunGroupInfo& g,
                                        const PopulationInfo& info, const sim::ScenarioSpec& spec,
                                        const CompareOptions& opt, int asset) {
  PopulationComparison pc = population_identity(g, info);
  const auto it = std::find_if(spec.populations.begin(), spec.populations.end(),
                               [&](const sim::PopulationSpec& p) { return p.name == info.name; });
  if (it == spec.populations.end())
    throw IoError(fmt::format("population '{}' of {} is not in the file's scenario", info.name, file.path()));
  const sim::PopulationSpec& ps = *it;
  const auto* herd = agents::params_if<agents::HerdParams>(ps);
  if (herd != nullptr) {
    pc.policy = to_name(herd->policy);
    pc.herd = to_name(herd->herd);
    pc.influence = to_name(herd->influence);
    if (herd->influence == agents::Influence::leader) pc.leader = herd->leader;
  }
  if (const auto* invest = agents::params_if<agents::InvestAgentParams>(ps)) {
    pc.leader = invest->leader;
    pc.protocol = to_name(invest->protocol);
    pc.problem = agents::scored_problem(invest->protocol);
    if (g.assets > 1) {
      pc.asset = spec.market.asset(asset).name;
      pc.metrics.notes.push_back(
          fmt::format("trades asset {} only, one of {} (its amounts in the others are 0): analysed in it as "
                      "in a one-asset market, against its one-asset theory there",
                      pc.asset, g.assets));
    }
  }
  if ((!info.has_trajectories || info.recorded_agents == 0) && info.summary_stats.empty()) {
    pc.metrics.notes.emplace_back(
        "neither trajectories nor summaries recorded (record.trajectories = false, record.summaries = "
        "false): the file holds the market only; run again with trajectories to analyse this population");
    return pc;
  }
  if (!info.has_trajectories || info.recorded_agents == 0) {
    pc.metrics.notes.emplace_back(
        "trajectories not recorded (record.trajectories = false or max_agents = 0): per-agent analysis needs "
        "them; "
        "the file's summary group holds per-step statistics");
    return pc;
  }
  const int paths = static_cast<int>(g.paths.size());
  const int m = analysis::agents_within_budget(info.recorded_agents, paths, opt.memory_budget);
  pc.analysed_agents = m;
  if (m < info.recorded_agents)
    pc.metrics.notes.push_back(
        fmt::format("analysed the first {} of {} recorded agents (memory budget {} MiB)", m,
                    info.recorded_agents, opt.memory_budget >> 20));

  const auto has_param = [&](const char* name) {
    return std::find(info.params.begin(), info.params.end(), name) != info.params.end();
  };
  const auto param = [&](const char* name) -> Eigen::VectorXd {
    if (!has_param(name)) return {};
    return file.param(g.group, info.name, name).head(m);
  };

  analysis::PopulationInput in;
  in.agents = m;
  in.paths = paths;
  in.wealth_steps = g.wealth_steps;
  in.decision_steps = g.decision_steps;
  in.dt = g.dt;
  in.r = spec.market.r;
  in.wealth0 = param("wealth0");
  in.alpha = param("alpha");
  in.lsv_min_traders = opt.lsv_min_traders;
  in.lsv_trade = opt.lsv_trade;
  in.herding.quantile = opt.cssd_quantile;
  in.herding.newey_west_lag = opt.newey_west_lag;
  in.herding.alpha = opt.significance;
  in.confidence = opt.confidence;
  in.opinion_at_years = opt.at_years;
  // Schema 2 with one asset (price impact): the asset axis has length 1.
  in.market_return =
      g.asset_axis
          ? file.market_assets(g.group, std::string(schema::kReturn))[static_cast<std::size_t>(asset)]
          : file.market(g.group, std::string(schema::kReturn));
  const Eigen::VectorXd theta = param("theta");
  if (info.has_theory) {
    in.theory = file.theory_amount(g.group, info.name, asset).topRows(m);
    const theory::Market market = agents::theory_market(spec, asset);
    analysis::PopulationTheory th(
        theory::Schedule(market, spec.run.horizon, agents::theory_time(spec, agents::Optimum::discrete)));
    th.ce_exact = spec.run.wealth_update == sim::WealthUpdate::arithmetic;
    Eigen::VectorXd leader_alpha;
    if (herd != nullptr) {
      th.own_plan.emplace(market, spec.run.horizon, agents::theory_time(spec, herd->optimum));
      th.absolute = herd->herd == agents::HerdType::absolute;
      if (herd->influence == agents::Influence::leader) {
        th.reference = analysis::HerdReference::leader;
        leader_alpha = param("leader_alpha");
        const auto lit = std::find_if(spec.populations.begin(), spec.populations.end(),
                                      [&](const sim::PopulationSpec& p) { return p.name == herd->leader; });
        // A leader is a merton population playing its plan: its decisions are its Merton amounts.
        const auto* leader =
            lit != spec.populations.end() ? agents::params_if<agents::MertonParams>(*lit) : nullptr;
        if (leader != nullptr)
          th.leader_plan.emplace(market, spec.run.horizon, agents::theory_time(spec, leader->optimum));
      } else {
        th.reference = analysis::HerdReference::population_mean;
      }
    }
    analysis::add_theory_references(in, th, leader_alpha, pc.metrics.notes);
  }
  FileRows rows(file, g.group, info.name, m, asset);
  auto notes = std::move(pc.metrics.notes);
  pc.metrics = analysis::analyse_population(in, rows);
  notes.insert(notes.end(), pc.metrics.notes.begin(), pc.metrics.notes.end());
  pc.metrics.notes = std::move(notes);
  if (opt.counterfactual && in.merton.size() > 0) {
    const int n = spec.run.steps();
    if (spec.market.model != sim::MarketModel::exogenous_gbm) {
      // Its investors are settled on the recorded paths: sound only where no agent moves the prices.
      pc.metrics.notes.emplace_back(
          "rational counterfactual not computed: it replays the recorded prices, so it needs the exogenous "
          "market");
    } else if (static_cast<int>(g.decision_steps.size()) != n || in.market_return.cols() != n) {
      pc.metrics.notes.emplace_back(
          "rational counterfactual not computed: it settles every step's wealth, so it needs record.every = "
          "1");
    } else {
      // The same investors with theta = 0: their own Merton plans, settled on the recorded paths.
      analysis::PopulationInput cf = in;
      cf.theory.resize(0, 0);
      cf.merton.resize(0, 0);
      cf.leader.resize(0, 0);
      cf.reference = analysis::HerdReference::none;
      cf.opinion = false;
      const double growth =
          sim::StepCoefficients(spec.market, spec.run.dt(), spec.run.wealth_update).deposit_growth;
      analysis::CounterfactualRows cf_rows(in.wealth0, in.merton.leftCols(n), in.market_return, growth);
      const analysis::PopulationMetrics cf_metrics = analysis::analyse_population(cf, cf_rows);
      pc.counterfactual = analysis::attribute_herding(pc.metrics, cf_metrics, opt.significance);
    }
  }
  const auto* merton = agents::params_if<agents::MertonParams>(ps);
  if (merton != nullptr)
    pc.metrics.notes.emplace_back("merton: rational, no herding reference (h = 0, w = 1 by definition)");
  if (pc.metrics.decision_error && in.alpha.size() == m) {
    // How the kind's parameters were given: alpha as lottery probabilities, theta as scores.
    const auto* invest = agents::params_if<agents::InvestAgentParams>(ps);
    const sim::ParamSpec* alpha_spec = merton   ? &merton->alpha
                                       : herd   ? &herd->alpha
                                       : invest ? &invest->alpha
                                                : nullptr;
    const sim::ParamSpec* theta_spec = herd ? &herd->theta : invest ? &invest->theta : nullptr;
    analysis::ErrorTableAxes axes;
    axes.alpha_as_lottery_prob =
        alpha_spec != nullptr && alpha_spec->scale == sim::ParamSpec::Scale::lottery_prob;
    axes.lottery = merton ? merton->lottery : herd ? herd->lottery : invest ? invest->lottery : axes.lottery;
    axes.theta_as_score = theta_spec != nullptr && theta_spec->scale == sim::ParamSpec::Scale::score;
    pc.table = analysis::make_error_table(in.alpha, theta, *pc.metrics.decision_error, axes);
  }
  pc.investors = ps.investors;
  const std::vector<analysis::AgentMeasure> measures = analysis::agent_measures(pc.metrics);
  for (const std::string& by : opt.by) {
    Eigen::VectorXd x = param(by.c_str());
    // The questionnaire scales, from the recorded alpha and theta where not recorded themselves.
    if (x.size() == 0 && by == "lottery_prob" && in.alpha.size() == m) {
      const auto* mp = agents::params_if<agents::MertonParams>(ps);
      const auto* ip = agents::params_if<agents::InvestAgentParams>(ps);
      const theory::LotteryConvention lottery = mp     ? mp->lottery
                                                : herd ? herd->lottery
                                                : ip   ? ip->lottery
                                                       : theory::lottery_win10_sure3;
      x = in.alpha.unaryExpr([&](double a) { return theory::lottery_prob_from_alpha(a, lottery); });
    }
    if (x.size() == 0 && by == "score" && theta.size() == m)
      x = theta.unaryExpr([](double t) { return theory::score_from_theta(t); });
    if (x.size() != m) continue;
    pc.type_params.emplace_back(by, x);
    if (auto t = analysis::make_type_table(by, x, measures, opt.confidence))
      pc.by_type.push_back(std::move(*t));
  }
  return pc;
}

/// A paired population's differences from its source, agent by agent, over the agents both analysed.
void add_paired(PopulationComparison& pc, const std::vector<PopulationComparison>& all,
                const CompareOptions& opt) {
  if (pc.investors.empty()) return;
  const auto it = std::find_if(all.begin(), all.end(), [&](const auto& o) { return o.name == pc.investors; });
  if (it == all.end()) return;  // the source is not recorded
  PairedComparison p;
  p.source = pc.investors;
  p.agents = std::min(pc.analysed_agents, it->analysed_agents);
  auto head = [&](std::vector<analysis::AgentMeasure> ms) {
    for (auto& m : ms) m.values = m.values.head(std::min<Eigen::Index>(m.values.size(), p.agents)).eval();
    return ms;
  };
  p.differences = analysis::paired_differences(head(analysis::agent_measures(pc.metrics)),
                                               head(analysis::agent_measures(it->metrics)), opt.confidence);
  for (const auto& [by, x] : pc.type_params)
    if (auto t = analysis::make_type_table(by, x.head(std::min<Eigen::Index>(x.size(), p.agents)),
                                           p.differences.differences, opt.confidence))
      p.by_type.push_back(std::move(*t));
  pc.paired = std::move(p);
}

// ---------------------------------------------------------------------------------------------
// JSON

using nlohmann::json;

json vec(const std::vector<double>& v) {
  json a = json::array();
  for (double x : v) a.push_back(json_number(x));
  return a;
}

json vec(const Eigen::VectorXd& v, int limit) {
  json a = json::array();
  for (Eigen::Index i = 0; i < std::min<Eigen::Index>(v.size(), limit); ++i) a.push_back(json_number(v[i]));
  return a;
}

json str_or_null(const std::string& s) {
  return s.empty() ? json(nullptr) : json(s);
}

json dist(const analysis::Distribution& d) {
  return {{"mean", json_number(d.mean)},     {"std", json_number(d.std)}, {"q05", json_number(d.q05)},
          {"median", json_number(d.median)}, {"q95", json_number(d.q95)}, {"count", d.count}};
}

json series(const analysis::ErrorSeries& s) {
  return {{"mse", json_number(s.mse)}, {"rmse", json_number(s.rmse)}, {"per_step", vec(s.per_step)}};
}

}  // namespace

json regression_json(const analysis::HerdingRegression& r, int observations) {
  json j{{"model", r.model},
         {"observations", observations},
         {"verdict", r.verdict},
         {"herding", r.herding},
         {"newey_west", r.uses_hac}};
  json coefs = json::array();
  if (r.fit) {
    const auto& f = *r.fit;
    for (std::size_t i = 0; i < r.coefficient_names.size(); ++i) {
      const auto k = static_cast<Eigen::Index>(i);
      coefs.push_back({{"name", r.coefficient_names[i]},
                       {"estimate", json_number(f.coef[k])},
                       {"se", json_number(r.uses_hac ? f.se_hac[k] : f.se_ols[k])},
                       {"t", json_number(r.uses_hac ? f.t_hac[k] : f.t_ols[k])},
                       {"p", json_number(r.uses_hac ? f.p_hac[k] : f.p_ols[k])}});
    }
    j["r2"] = json_number(f.r_squared);
    j["newey_west_lag"] = f.hac_lag;
  } else {
    j["r2"] = nullptr;
    j["newey_west_lag"] = nullptr;
  }
  j["coefficients"] = coefs;
  return j;
}

namespace {

json interval(const analysis::MeanInterval& m) {
  return {{"mean", json_number(m.mean)},
          {"ci_low", json_number(m.ci_low)},
          {"ci_high", json_number(m.ci_high)},
          {"p", json_number(m.p)},
          {"n", m.n}};
}

json type_table_json(const analysis::TypeTable& t) {
  json measures = json::array();
  for (std::size_t k = 0; k < t.measures.size(); ++k) {
    json levels = json::array();
    for (const auto& m : t.by_level[k]) levels.push_back(interval(m));
    const auto& tr = t.trends[k];
    measures.push_back({{"measure", t.measures[k]},
                        {"units", t.units[k]},
                        {"levels", levels},
                        {"trend",
                         {{"method", "OLS slope on the parameter, HC1 standard error"},
                          {"slope", json_number(tr.slope)},
                          {"ci_low", json_number(tr.ci_low)},
                          {"ci_high", json_number(tr.ci_high)},
                          {"p", json_number(tr.p)},
                          {"n", tr.n}}}});
  }
  return {{"param", t.param}, {"levels", vec(t.levels)}, {"agents", t.agents}, {"measures", measures}};
}

/// The parts only a paired population or a --by request has: absent otherwise, so that other analyses'
/// JSON stays as it was.
json lsv_json(const analysis::LsvSummary& l) {
  return {{"decision_steps", l.decision_steps},
          {"h", vec(l.h)},
          {"buy", vec(l.buy)},
          {"sell", vec(l.sell)},
          {"mean", json_number(l.overall.mean_h)},
          {"se", json_number(l.overall.std_err)},
          {"t", json_number(l.overall.t_stat)},
          {"p", json_number(l.overall.p_value)},
          {"buy_mean", json_number(l.overall.buy_mean_h)},
          {"sell_mean", json_number(l.overall.sell_mean_h)},
          {"observations", l.overall.n_cells},
          {"n_min", l.overall.n_min},
          {"verdict", l.verdict}};
}

/// Where computed (herd populations, record.every = 1; not with --no-counterfactual): the rational
/// counterfactual's statistics and what the population adds.
void add_counterfactual_json(json& j, const PopulationComparison& pc) {
  if (!pc.counterfactual) return;
  const auto& c = *pc.counterfactual;
  json cf{{"definition", "the same investors with theta = 0 (own Merton plans) on the same paths"},
          {"lsv", c.lsv ? lsv_json(*c.lsv) : json(nullptr)},
          {"cssd", nullptr},
          {"csad", nullptr}};
  if (c.dispersion && c.dispersion->cssd.fit)
    cf["cssd"] = regression_json(c.dispersion->cssd, c.dispersion->observations);
  if (c.dispersion && c.dispersion->csad.fit)
    cf["csad"] = regression_json(c.dispersion->csad, c.dispersion->observations);
  json attributed = json::array();
  for (const auto& a : c.attributed)
    attributed.push_back({{"statistic", a.name},
                          {"population", json_number(a.population)},
                          {"counterfactual", json_number(a.counterfactual)},
                          {"difference", json_number(a.difference)},
                          {"se", json_number(a.se)},
                          {"p", json_number(a.p)},
                          {"verdict", a.verdict}});
  cf["attributed"] = attributed;
  j["counterfactual"] = cf;
}

void add_type_json(json& j, const PopulationComparison& pc) {
  add_counterfactual_json(j, pc);
  if (!pc.investors.empty()) j["investors"] = pc.investors;
  if (!pc.type_params.empty()) {
    json tables = json::array();
    for (const auto& t : pc.by_type) tables.push_back(type_table_json(t));
    j["by_type"] = tables;
  }
  if (pc.paired) {
    const auto& p = *pc.paired;
    json diffs = json::array();
    for (std::size_t k = 0; k < p.differences.differences.size(); ++k) {
      json d = interval(p.differences.mean[k]);
      d["measure"] = p.differences.differences[k].name;
      d["units"] = p.differences.differences[k].units;
      diffs.push_back(d);
    }
    json tables = json::array();
    for (const auto& t : p.by_type) tables.push_back(type_table_json(t));
    j["paired"] = {{"source", p.source}, {"agents", p.agents}, {"differences", diffs}, {"by_type", tables}};
  }
}

json population_json(const PopulationComparison& pc, int limit) {
  const auto& mt = pc.metrics;
  json j{{"name", pc.name},
         {"kind", pc.kind},
         {"policy", str_or_null(pc.policy)},
         {"herd", str_or_null(pc.herd)},
         {"influence", str_or_null(pc.influence)},
         {"leader", str_or_null(pc.leader)},
         {"protocol", str_or_null(pc.protocol)},
         {"problem", str_or_null(pc.problem)},
         {"count", pc.count},
         {"recorded_agents", pc.recorded_agents},
         {"analysed_agents", pc.analysed_agents},
         {"notes", mt.notes}};
  if (!pc.asset.empty()) j["asset"] = pc.asset;  // only in files of several assets: one-asset JSON unchanged
  j["decision_error"] = nullptr;
  if (mt.decision_error) {
    const auto& de = *mt.decision_error;
    json d{{"decision_steps", pc.decision_steps},
           {"amount", series(de.amount)},
           {"proportion_pp", series(de.proportion_pp)},
           {"table", nullptr}};
    if (pc.table) {
      const auto& t = *pc.table;
      json agents = json::array();
      for (Eigen::Index r = 0; r < t.agents.rows(); ++r) {
        json row = json::array();
        for (Eigen::Index c = 0; c < t.agents.cols(); ++c) row.push_back(t.agents(r, c));
        agents.push_back(row);
      }
      d["table"] = {{"rows", {{"param", t.row_param}, {"values", vec(t.row_values)}}},
                    {"cols", {{"param", t.col_param}, {"values", vec(t.col_values)}}},
                    {"mse_amount", json_rows(t.mse_amount)},
                    {"mse_proportion_pp", json_rows(t.mse_proportion_pp)},
                    {"agents", agents}};
    }
    j["decision_error"] = d;
  }
  j["certainty_equivalent"] = nullptr;
  if (mt.certainty_equivalent) {
    const auto& c = *mt.certainty_equivalent;
    j["certainty_equivalent"] = {{"simulated", json_number(c.simulated)},
                                 {"theory", json_number(c.theory)},
                                 {"gap", json_number(c.gap)},
                                 {"ci_low", json_number(c.ci_low)},
                                 {"ci_high", json_number(c.ci_high)},
                                 {"confidence", c.confidence},
                                 {"exact", c.exact},
                                 {"agents", c.agents},
                                 {"paths", c.paths}};
  }
  j["herding_distance"] = nullptr;
  if (mt.herding_distance) {
    const auto& h = *mt.herding_distance;
    const auto n = static_cast<int>(std::min<Eigen::Index>(h.per_agent_simulated.size(), limit));
    json idx = json::array();
    for (int i = 0; i < n; ++i) idx.push_back(i);
    j["herding_distance"] = {
        {"reference", pc.influence == to_name(agents::Influence::leader) ? "leader:" + pc.leader
                                                                         : std::string("population mean")},
        {"simulated", dist(h.simulated)},
        {"theory", dist(h.theory)},
        {"per_agent",
         {{"agent", idx},
          {"simulated", vec(h.per_agent_simulated, limit)},
          {"theory", vec(h.per_agent_theory, limit)}}}};
  }
  j["opinion"] = nullptr;
  if (mt.opinion) {
    j["opinion"] = {{"decision_steps", pc.decision_steps},
                    {"t", pc.decision_times},
                    {"simulated", vec(mt.opinion->simulated)},
                    {"theory", vec(mt.opinion->theory)},
                    {"agents", mt.opinion->agents}};
    json at = json::array();
    for (const auto& a : mt.opinion->at)
      at.push_back({{"requested_t", a.requested_years},
                    {"step", a.step},
                    {"t", a.time_years},
                    {"measures",
                     {analysis::opinion_at_name("w_simulated", a.requested_years),
                      analysis::opinion_at_name("w_theory", a.requested_years)}}});
    // Only with --at: without it the JSON is what it was (the golden digests).
    if (!at.empty()) j["opinion"]["at"] = at;
  }
  j["lsv"] = nullptr;
  if (mt.lsv) j["lsv"] = lsv_json(*mt.lsv);
  j["cssd"] = nullptr;
  j["csad"] = nullptr;
  if (mt.dispersion) {
    const auto& d = *mt.dispersion;
    if (d.cssd.fit) j["cssd"] = regression_json(d.cssd, d.observations);
    if (d.csad.fit) {
      j["csad"] = regression_json(d.csad, d.observations);
      j["csad"]["series"] = {{"decision_steps", d.decision_steps},
                             {"csad", vec(d.csad_series)},
                             {"market_return", vec(d.market_series)}};
    }
  }
  j["investor"] = nullptr;
  if (mt.investor) {
    const auto& im = *mt.investor;
    const auto n = static_cast<int>(std::min<Eigen::Index>(im.agent_sharpe.size(), limit));
    json idx = json::array();
    for (int i = 0; i < n; ++i) idx.push_back(i);
    j["investor"] = {{"cumulative_return", dist(im.cumulative_return)},
                     {"sharpe", dist(im.sharpe)},
                     {"volatility", dist(im.volatility)},
                     {"max_drawdown", dist(im.max_drawdown)},
                     {"ruined_pairs", im.ruined_pairs},
                     {"per_agent",
                      {{"agent", idx},
                       {"cumulative_return", vec(im.agent_cumulative_return, limit)},
                       {"sharpe", vec(im.agent_sharpe, limit)},
                       {"volatility", vec(im.agent_volatility, limit)},
                       {"max_drawdown", vec(im.agent_max_drawdown, limit)}}}};
  }
  add_type_json(j, pc);
  return j;
}

// ---------------------------------------------------------------------------------------------
// Markdown

void markdown_table(std::string& md, const analysis::ErrorTable& t, const Eigen::MatrixXd& values,
                    const char* what) {
  md += fmt::format("\n{} by {} (rows) and {} (columns):\n\n| {} |", what, t.row_param, t.col_param,
                    t.row_param);
  for (double c : t.col_values) md += fmt::format(" {} |", markdown_number(c));
  md += "\n|---|";
  for (std::size_t c = 0; c < t.col_values.size(); ++c) md += "---|";
  md += '\n';
  for (std::size_t r = 0; r < t.row_values.size(); ++r) {
    md += fmt::format("| {} |", markdown_number(t.row_values[r]));
    for (std::size_t c = 0; c < t.col_values.size(); ++c)
      md += fmt::format(" {} |",
                        markdown_number(values(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(c))));
    md += '\n';
  }
}

}  // namespace

void markdown_regression(std::string& md, const char* label, const analysis::HerdingRegression& r) {
  md += fmt::format("- {}: {}", label, r.verdict);
  if (r.fit) {
    md += " (";
    for (std::size_t i = 0; i < r.coefficient_names.size(); ++i) {
      const auto k = static_cast<Eigen::Index>(i);
      md += fmt::format("{}{} = {} [p = {}]", i ? ", " : "", r.coefficient_names[i],
                        markdown_number(r.fit->coef[k]),
                        markdown_number(r.uses_hac ? r.fit->p_hac[k] : r.fit->p_ols[k]));
    }
    md += r.uses_hac ? fmt::format("; Newey–West lag {})", r.fit->hac_lag) : std::string("; classical SE)");
  }
  md += '\n';
}

namespace {

std::string fmt_interval(double mean, double lo, double hi) {
  return fmt::format("{} [{}, {}]", markdown_number(mean), markdown_number(lo), markdown_number(hi));
}

void markdown_type_table(std::string& md, const analysis::TypeTable& t, const std::string& what,
                         double confidence) {
  md += fmt::format(
      "\n{} by {} (mean [{:.0f}% CI] over the level's agents; trend: OLS slope on {}, HC1):\n\n| measure |",
      what, t.param, 100 * confidence, t.param);
  for (std::size_t l = 0; l < t.levels.size(); ++l)
    md += fmt::format(" {} = {} ({}) |", t.param, markdown_number(t.levels[l]),
                      sim::counted(t.agents[l], "agent"));
  md += " trend per unit [CI] (p) |\n|---|";
  for (std::size_t l = 0; l <= t.levels.size(); ++l) md += "---|";
  md += '\n';
  for (std::size_t k = 0; k < t.measures.size(); ++k) {
    md += fmt::format("| {}{} |", t.measures[k], t.units[k].empty() ? "" : " (" + t.units[k] + ")");
    for (const auto& m : t.by_level[k]) md += fmt::format(" {} |", fmt_interval(m.mean, m.ci_low, m.ci_high));
    const auto& tr = t.trends[k];
    md += fmt::format(" {} ({}) |\n", fmt_interval(tr.slope, tr.ci_low, tr.ci_high), markdown_number(tr.p));
  }
}

void markdown_types(std::string& md, const PopulationComparison& pc, double confidence) {
  for (const auto& t : pc.by_type) markdown_type_table(md, t, "Per-agent measures", confidence);
  if (!pc.paired) return;
  const auto& p = *pc.paired;
  md += fmt::format(
      "\nPaired with `{}` (the same investors, agent for agent; {} compared): mean difference "
      "`{}` − `{}` [{:.0f}% paired CI] (p):\n\n| measure | difference |\n|---|---|\n",
      p.source, sim::counted(p.agents, "agent"), pc.name, p.source, 100 * confidence);
  for (std::size_t k = 0; k < p.differences.differences.size(); ++k) {
    const auto& m = p.differences.mean[k];
    const auto& d = p.differences.differences[k];
    md += fmt::format("| {}{} | {} ({}) |\n", d.name, d.units.empty() ? "" : " (" + d.units + ")",
                      fmt_interval(m.mean, m.ci_low, m.ci_high), markdown_number(m.p));
  }
  for (const auto& t : p.by_type)
    markdown_type_table(md, t, fmt::format("Paired differences `{}` − `{}`", pc.name, p.source), confidence);
}

void markdown_population(std::string& md, const PopulationComparison& pc, double confidence) {
  const auto& mt = pc.metrics;
  md += fmt::format("\n### Population `{}` ({}", pc.name, pc.kind);
  if (!pc.policy.empty())
    md += fmt::format(
        ", {} herding on {}, policy {}", pc.herd,
        pc.influence == to_name(agents::Influence::leader) ? "leader " + pc.leader : std::string("peers"),
        pc.policy);
  if (!pc.protocol.empty())
    md += fmt::format(", protocol {} on leader {}, scored against {}", pc.protocol, pc.leader, pc.problem);
  if (!pc.asset.empty()) md += fmt::format(", trading asset {}", pc.asset);
  md += fmt::format("; {}, {} analysed)\n\n", sim::counted(pc.count, "agent"), pc.analysed_agents);
  // The measures table, left out when no measure applies (e.g. a population recorded without trajectories).
  const std::size_t table_start = md.size();
  md += "| measure | value |\n|---|---|\n";
  const std::size_t rows_start = md.size();
  if (mt.decision_error) {
    const auto& de = *mt.decision_error;
    md += fmt::format("| decision MSE, amount (currency²) | {} |\n", markdown_number(de.amount.mse));
    md += fmt::format("| decision MSE, proportion (pp²) | {} |\n", markdown_number(de.proportion_pp.mse));
  }
  if (mt.certainty_equivalent) {
    const auto& c = *mt.certainty_equivalent;
    md += fmt::format("| CE simulated / theory | {} / {} |\n", markdown_number(c.simulated),
                      markdown_number(c.theory));
    md += fmt::format("| CE gap ({:.0f}% CI){} | {} [{}, {}] |\n", 100 * c.confidence,
                      c.exact ? "" : " (approx.)", markdown_number(c.gap), markdown_number(c.ci_low),
                      markdown_number(c.ci_high));
  }
  if (mt.herding_distance) {
    md += fmt::format("| herding distance h, simulated (median) | {} |\n",
                      markdown_number(mt.herding_distance->simulated.median));
    md += fmt::format("| herding distance h, theory (median) | {} |\n",
                      markdown_number(mt.herding_distance->theory.median));
  }
  if (mt.opinion && !mt.opinion->simulated.empty()) {
    md += fmt::format("| opinion w(0) simulated / theory | {} / {} |\n",
                      markdown_number(mt.opinion->simulated.front()),
                      markdown_number(mt.opinion->theory.front()));
    for (const auto& a : mt.opinion->at)
      md += fmt::format(
          "| opinion w at t = {} years (`{}`, `{}`: by-type and paired tables) | decision step {}, t = {} "
          "years |\n",
          markdown_number(a.requested_years), analysis::opinion_at_name("w_simulated", a.requested_years),
          analysis::opinion_at_name("w_theory", a.requested_years), a.step, markdown_number(a.time_years));
  }
  if (mt.lsv)
    md += fmt::format("| LSV mean H (p) | {} ({}) |\n", markdown_number(mt.lsv->overall.mean_h),
                      markdown_number(mt.lsv->overall.p_value));
  if (mt.investor) {
    const auto& im = *mt.investor;
    md += fmt::format("| cumulative return (median) | {} |\n", markdown_number(im.cumulative_return.median));
    md += fmt::format("| Sharpe ratio, annualised (median) | {} |\n", markdown_number(im.sharpe.median));
    md += fmt::format("| volatility, annualised (median) | {} |\n", markdown_number(im.volatility.median));
    md += fmt::format("| maximum drawdown (median) | {} |\n", markdown_number(im.max_drawdown.median));
  }
  if (md.size() == rows_start) md.resize(table_start);
  if (pc.table) {
    markdown_table(md, *pc.table, pc.table->mse_amount, "Decision MSE (amount, currency²)");
    markdown_table(md, *pc.table, pc.table->mse_proportion_pp, "Decision MSE (proportion, pp²)");
  }
  if (mt.lsv || mt.dispersion) {
    md += "\nHerding tests across agents:\n\n";
    // LSV counts agents trading on the same side: correlated trading, herding or not (the counterfactual
    // separates the two).
    if (mt.lsv) md += fmt::format("- LSV (correlated trading, whatever its cause): {}\n", mt.lsv->verdict);
    if (mt.dispersion) {
      if (mt.dispersion->cssd.fit) markdown_regression(md, "CSSD (Christie–Huang)", mt.dispersion->cssd);
      if (mt.dispersion->csad.fit) markdown_regression(md, "CSAD (Chang–Cheng–Khorana)", mt.dispersion->csad);
    }
  }
  if (pc.counterfactual) {
    const auto& c = *pc.counterfactual;
    md +=
        "\nAttributable herding: against the rational counterfactual (the same investors with theta = 0, "
        "their "
        "own Merton plans, on the same paths), which trades in step for reasons that are not herding:\n\n"
        "| statistic | population | counterfactual | difference (p) | verdict |\n|---|---|---|---|---|\n";
    for (const auto& a : c.attributed)
      md += fmt::format("| {} | {} | {} | {} ({}) | {} |\n", a.name, markdown_number(a.population),
                        markdown_number(a.counterfactual), markdown_number(a.difference),
                        markdown_number(a.p), a.verdict);
  }
  markdown_types(md, pc, confidence);
  if (!mt.notes.empty()) {
    md += "\nNotes:\n\n";
    for (const auto& n : mt.notes) md += fmt::format("- {}\n", n);
  }
}

MarketOptions market_options(const CompareOptions& opt) {
  MarketOptions m;
  m.herding.alpha = opt.significance;
  m.herding.newey_west_lag = opt.newey_west_lag;
  return m;
}

}  // namespace

Comparison compare_run(const std::string& path, const CompareOptions& options,
                       const std::string& herdsim_version,
                       const std::function<void(const std::string&)>& progress) {
  const RunFile file(path);
  Comparison c;
  c.run_file = path;
  c.herdsim_version = herdsim_version;
  c.created = utc_now_iso8601();
  c.options = options;
  c.scenario = file.info().scenario;
  const auto specs = parse_scenario(file.info().scenario, path + " (scenario attribute)");
  const auto& groups = file.info().groups;
  if (specs.size() != groups.size())
    throw IoError(fmt::format("{}: the scenario has {} run(s) but the file holds {} group(s)", path,
                              specs.size(), groups.size()));
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const RunGroupInfo g = file.group(groups[gi]);
    const sim::ScenarioSpec& spec = specs[gi];
    for (const double t : options.at_years) {
      const double horizon = g.steps * g.dt;
      if (!std::isfinite(t) || t < 0.0 || t > horizon)
        throw InputError(fmt::format(
            "--at {}: outside the horizon of run group {} of {} ([0, {}] years); give times in years "
            "within it",
            t, g.group, path, horizon));
    }
    RunComparison rc;
    rc.group = g.group;
    rc.sweep_point = g.sweep_point;
    rc.sweep_values = spec.sweep_point;
    rc.steps = g.steps;
    rc.dt = g.dt;
    rc.every = g.every;
    rc.paths = static_cast<int>(g.paths.size());
    rc.wealth_update = to_name(spec.run.wealth_update);
    for (const auto& info : g.populations) {
      if (progress) progress(fmt::format("{} {}", g.group, info.name));
      // An investagent population trades one asset: the one-asset analysis in it, whatever N.
      const auto ps = std::find_if(spec.populations.begin(), spec.populations.end(),
                                   [&](const sim::PopulationSpec& p) { return p.name == info.name; });
      const int traded = ps != spec.populations.end() ? agents::traded_asset(spec, *ps) : -1;
      rc.populations.push_back(g.assets > 1 && traded < 0
                                   ? several_assets_population(file, g, info, spec, options.confidence)
                                   : compare_population(file, g, info, spec, options, std::max(traded, 0)));
    }
    if (g.asset_axis) rc.market = compare_market(file, g, market_options(options));
    for (auto& pc : rc.populations) add_paired(pc, rc.populations, options);
    c.runs.push_back(std::move(rc));
  }
  return c;
}

std::string comparison_json(const Comparison& c) {
  json j{{"schema", "herdsim-analysis"},
         {"schema_version", 1},
         {"herdsim_version", c.herdsim_version},
         {"run_file", c.run_file},
         {"created", c.created},
         {"options",
          {{"lsv_min_traders", c.options.lsv_min_traders},
           {"lsv_trade", c.options.lsv_trade == analysis::LsvTrade::proportion ? "proportion" : "shares"},
           {"cssd_quantile", c.options.cssd_quantile},
           {"nw_lag", c.options.newey_west_lag < 0 ? json(nullptr) : json(c.options.newey_west_lag)},
           {"significance", c.options.significance},
           {"confidence", c.options.confidence}}}};
  if (!c.options.at_years.empty()) j["options"]["at"] = c.options.at_years;
  json runs = json::array();
  for (const auto& rc : c.runs) {
    json pops = json::array();
    for (const auto& pc : rc.populations) pops.push_back(population_json(pc, c.options.per_agent_limit));
    runs.push_back({{"group", rc.group},
                    {"sweep_point", rc.sweep_point},
                    {"steps", rc.steps},
                    {"dt", rc.dt},
                    {"every", rc.every},
                    {"paths", rc.paths},
                    {"wealth_update", rc.wealth_update},
                    {"populations", pops}});
    if (rc.market) runs.back()["market"] = market_json(*rc.market, rc.populations);
  }
  j["runs"] = runs;
  if (const auto across = across_sweep(c)) j["across"] = across_json(*across);
  return j.dump(1) + '\n';
}

std::string comparison_markdown(const Comparison& c) {
  std::string md = fmt::format(
      "# herdsim compare: {}\n\nAnalysed {} by herdsim {}. Significance level {}; LSV n_min {}, a buy = a "
      "higher {}; "
      "CSSD tail q = {}.\n",
      c.run_file, c.created, c.herdsim_version, c.options.significance, c.options.lsv_min_traders,
      c.options.lsv_trade == analysis::LsvTrade::proportion ? "proportion of wealth" : "number of shares",
      c.options.cssd_quantile);
  for (const auto& rc : c.runs) {
    md += fmt::format("\n## Run {}{}\n\n{} of {} year{}, {}, {} wealth update.\n", rc.group,
                      rc.sweep_point.empty() ? "" : " (" + rc.sweep_point + ")",
                      sim::counted(rc.steps, "step"), markdown_number(rc.dt), rc.dt == 1.0 ? "" : "s",
                      sim::counted(rc.paths, "path"), rc.wealth_update);
    if (rc.market) market_markdown(md, *rc.market, rc.populations);
    for (const auto& pc : rc.populations) markdown_population(md, pc, c.options.confidence);
  }
  if (const auto across = across_sweep(c)) md += across_markdown(*across);
  return md;
}

std::string comparisons_json(const std::vector<Comparison>& comparisons) {
  json j{{"schema", "herdsim-analysis-set"}, {"schema_version", 1}};
  json all = json::array();
  for (const auto& c : comparisons) all.push_back(json::parse(comparison_json(c)));
  j["analyses"] = all;
  j["across"] = across_json(across_files(comparisons));
  return j.dump(1) + '\n';
}

std::string comparisons_markdown(const std::vector<Comparison>& comparisons) {
  std::string md = "# herdsim compare: side by side\n\n";
  for (std::size_t f = 0; f < comparisons.size(); ++f)
    md += fmt::format("- [{}] {}\n", static_cast<char>('A' + f % 26), comparisons[f].run_file);
  const auto find = [](const Comparison& c, const std::string& group,
                       const std::string& name) -> const PopulationComparison* {
    for (const auto& rc : c.runs)
      if (rc.group == group)
        for (const auto& pc : rc.populations)
          if (pc.name == name) return &pc;
    return nullptr;
  };
  const auto cell = [](const PopulationComparison* pc, auto&& get) {
    return pc == nullptr ? std::string("absent") : markdown_number(get(*pc));
  };
  md += "\n| run group | population | measure |";
  for (std::size_t f = 0; f < comparisons.size(); ++f)
    md += fmt::format(" {} |", static_cast<char>('A' + f % 26));
  md += "\n|---|---|---|";
  for (std::size_t f = 0; f < comparisons.size(); ++f) md += "---|";
  md += '\n';
  using Getter = double (*)(const PopulationComparison&);
  const std::vector<std::pair<const char*, Getter>> measures = {
      {"decision MSE, amount",
       [](const PopulationComparison& p) {
         return p.metrics.decision_error ? p.metrics.decision_error->amount.mse : kNaN;
       }},
      {"decision MSE, pp",
       [](const PopulationComparison& p) {
         return p.metrics.decision_error ? p.metrics.decision_error->proportion_pp.mse : kNaN;
       }},
      {"CE gap",
       [](const PopulationComparison& p) {
         return p.metrics.certainty_equivalent ? p.metrics.certainty_equivalent->gap : kNaN;
       }},
      {"median h",
       [](const PopulationComparison& p) {
         return p.metrics.herding_distance ? p.metrics.herding_distance->simulated.median : kNaN;
       }},
      {"LSV mean H",
       [](const PopulationComparison& p) { return p.metrics.lsv ? p.metrics.lsv->overall.mean_h : kNaN; }},
  };
  for (const auto& rc : comparisons.front().runs)
    for (const auto& pc : rc.populations)
      for (const auto& [label, get] : measures) {
        md += fmt::format("| {} | {} | {} |", rc.group, pc.name, label);
        for (const auto& c : comparisons) md += fmt::format(" {} |", cell(find(c, rc.group, pc.name), get));
        md += '\n';
      }
  for (std::size_t f = 0; f < comparisons.size(); ++f)
    for (const auto& rc : comparisons[f].runs)
      for (const auto& pc : rc.populations)
        if (pc.table) {
          md += fmt::format("\n### [{}] {} `{}`\n", static_cast<char>('A' + f % 26), rc.group, pc.name);
          markdown_table(md, *pc.table, pc.table->mse_proportion_pp, "Decision MSE (proportion, pp²)");
        }
  md += across_markdown(across_files(comparisons));
  return md;
}

}  // namespace herdsim::io
