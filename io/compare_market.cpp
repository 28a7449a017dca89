#include "io/compare_market.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "io/compare_render.hpp"
#include "io/hdf5_schema.hpp"
#include "io/run_file.hpp"
#include "io/value_format.hpp"
#include "sim/analysis/metric_accumulators.hpp"
#include "sim/error.hpp"
#include "sim/market/asset_covariance.hpp"
#include "sim/market/market_step.hpp"
#include "sim/plural.hpp"
#include "sim/scenario_spec.hpp"

namespace herdsim::io {

namespace {

using nlohmann::json;

/// periods x paths from RunFile's paths x rows.
Eigen::MatrixXd panel(const Eigen::MatrixXd& paths_by_rows) {
  return paths_by_rows.transpose();
}

json vec(const Eigen::VectorXd& v) {
  json a = json::array();
  for (double x : v) a.push_back(json_number(x));
  return a;
}

json acf_json(const analysis::Autocorrelation& a) {
  return {{"lags", a.acf.size()},
          {"acf", vec(a.acf)},
          {"band", json_number(a.band)},
          {"observations", a.observations}};
}

json episodes_json(const std::vector<analysis::Episode>& es) {
  json out = json::array();
  for (const auto& e : es)
    out.push_back(
        {{"path", e.path}, {"start_row", e.start_row}, {"rows", e.rows}, {"peak", json_number(e.peak)}});
  return out;
}

}  // namespace

MarketComparison compare_market(const RunFile& file, const RunGroupInfo& g, const MarketOptions& options) {
  MarketComparison m;
  m.options = options;
  m.assets = g.assets;
  m.impact = file.has_market(g.group, std::string(schema::kFlow));
  const std::vector<Eigen::MatrixXd> returns = file.market_assets(g.group, std::string(schema::kReturn));
  const std::vector<Eigen::MatrixXd> prices = file.market_assets(g.group, std::string(schema::kPrice));
  std::vector<Eigen::MatrixXd> fundamentals;
  if (file.has_market(g.group, std::string(schema::kFundamental)))
    fundamentals = file.market_assets(g.group, std::string(schema::kFundamental));
  std::vector<Eigen::MatrixXd> flows;
  if (m.impact) flows = file.market_assets(g.group, std::string(schema::kFlow));
  if (g.every > 1)
    m.notes.push_back(fmt::format(
        "record.every = {}: the returns are the one-step returns of the recorded decision steps, so "
        "autocorrelation lag l pairs steps {} l apart",
        g.every, g.every));
  for (int a = 0; a < g.assets; ++a) {
    const auto ua = static_cast<std::size_t>(a);
    AssetMarket am;
    am.name = g.asset_names[ua];
    Eigen::MatrixXd r = analysis::log_returns(panel(returns[ua]));
    // With impact the first step's return holds the opening purchase's jump (every agent buys from
    // nothing, docs/theory.md §7.2): a convention of the start, not a return of the market.
    if (m.impact && r.rows() > 1 && g.decision_steps.front() == 0) r = r.bottomRows(r.rows() - 1).eval();
    if (!r.allFinite()) {
      m.notes.push_back(
          fmt::format("{}: a return at or below -100 % or not finite: no stylised facts", am.name));
    } else {
      // The autocorrelations reach as far as the periods allow (lag 20 needs 22 periods).
      const int lags = std::min<int>(options.max_lag, static_cast<int>(r.rows()) - 2);
      try {
        if (lags < 1) throw InputError(fmt::format("{} periods", r.rows()));
        am.facts = analysis::stylised_facts(r, lags, options.hill_tails);
        if (lags < options.max_lag)
          m.notes.push_back(fmt::format("{}: autocorrelations to lag {} only ({} recorded periods)", am.name,
                                        lags, r.rows()));
      } catch (const InputError& e) {
        m.notes.push_back(fmt::format("{}: stylised facts not estimated: {}", am.name, e.what()));
      }
    }
    if (!fundamentals.empty()) {
      const Eigen::MatrixXd mis =
          (panel(prices[ua]).array() / panel(fundamentals[ua]).array()).log().matrix();
      if (mis.allFinite()) {
        am.mispricing = analysis::mispricing_summary(mis);
        am.episodes = analysis::find_episodes(mis, options.episodes);
      } else {
        m.notes.push_back(fmt::format("{}: a price or fundamental at or below 0: no mispricing", am.name));
      }
    }
    if (!flows.empty()) am.flow_mean_abs = flows[ua].cwiseAbs().mean();
    m.per_asset.push_back(std::move(am));
  }
  if (g.assets >= 2) {
    try {
      m.herding = analysis::herding_across_assets(
          [&] {
            std::vector<Eigen::MatrixXd> p;
            for (const auto& x : returns) p.push_back(panel(x));
            return p;
          }(),
          options.cssd_quantiles, options.herding);
    } catch (const InputError& e) {
      m.notes.push_back(fmt::format("herding across assets not estimated: {}", e.what()));
    }
  } else {
    m.notes.emplace_back(
        "one asset: CSSD and CSAD across assets need at least two (the populations' tests are across "
        "agents)");
  }
  return m;
}

PopulationComparison population_identity(const RunGroupInfo& g, const PopulationInfo& info) {
  PopulationComparison pc;
  pc.name = info.name;
  pc.kind = info.kind;
  pc.count = info.count;
  pc.recorded_agents = info.recorded_agents;
  pc.decision_steps = g.decision_steps;
  for (int k : g.decision_steps) pc.decision_times.push_back(k * g.dt);
  return pc;
}

PopulationComparison several_assets_population(const RunFile& file, const RunGroupInfo& g,
                                               const PopulationInfo& info, const sim::ScenarioSpec& spec,
                                               double confidence) {
  PopulationComparison pc = population_identity(g, info);
  pc.metrics.notes.push_back(fmt::format(
      "{} assets: the per-agent measures of one asset are not computed; the market section has the decision "
      "error per asset against theory/amount",
      g.assets));
  if (!info.has_trajectories || info.recorded_agents == 0 || !info.has_theory) return pc;
  // Decision error per asset: (amount - theory) over recorded decisions, paths and agents.
  const int m = info.recorded_agents;
  Eigen::MatrixXd row;
  for (int a = 0; a < g.assets; ++a) {
    const Eigen::MatrixXd theory = file.theory_amount(g.group, info.name, a);  // M x n
    double sum = 0.0;
    long long count = 0;
    for (std::size_t d = 0; d < g.decision_steps.size(); ++d) {
      file.read_row(g.group, info.name, std::string(schema::kAmount), static_cast<int>(d), row, 0, m, a);
      const Eigen::VectorXd plan = theory.col(g.decision_steps[d]);
      sum += (row.colwise() - plan).squaredNorm();
      count += row.size();
    }
    pc.asset_decision_rmse.push_back(count > 0 ? std::sqrt(sum / static_cast<double>(count))
                                               : analysis::kNaN);
  }
  // The certainty equivalent against the plan's (docs/theory.md §7.1), where the terminal row is there.
  const auto has = [&](const char* p) {
    return std::find(info.params.begin(), info.params.end(), p) != info.params.end();
  };
  if (!has("alpha") || !has("wealth0") || g.wealth_steps.back() != g.steps) return pc;
  analysis::PopulationInput in;
  in.agents = m;
  in.paths = static_cast<int>(g.paths.size());
  in.alpha = file.param(g.group, info.name, "alpha");
  const Eigen::VectorXd x0 = file.param(g.group, info.name, "wealth0");
  in.confidence = confidence;
  // Exact where X_n is normal and the plan is the market's own: arithmetic steps, exogenous prices.
  in.ce_exact = spec.run.wealth_update == sim::WealthUpdate::arithmetic && !spec.market.impact.active();
  const double dt = spec.run.dt();
  const double growth = sim::StepCoefficients(spec.market, dt, spec.run.wealth_update).deposit_growth;
  const Eigen::VectorXd v = sim::asset_excess_returns(spec.market);
  const Eigen::MatrixXd sigma = sim::asset_covariance(spec.market);
  std::vector<Eigen::MatrixXd> theory;
  for (int a = 0; a < g.assets; ++a) theory.push_back(file.theory_amount(g.group, info.name, a));
  in.ce_theory.resize(m);
  Eigen::MatrixXd plan(g.assets, g.steps);
  for (int i = 0; i < m; ++i) {
    for (int a = 0; a < g.assets; ++a) plan.row(a) = theory[static_cast<std::size_t>(a)].row(i);
    in.ce_theory[i] =
        analysis::plan_certainty_equivalent_assets(plan, v, sigma, growth, dt, x0[i], in.alpha[i]);
  }
  Eigen::MatrixXd final_wealth;
  file.read_row(g.group, info.name, std::string(schema::kWealth), static_cast<int>(g.wealth_steps.size()) - 1,
                final_wealth, 0, m);
  pc.metrics.certainty_equivalent =
      analysis::estimate_certainty_equivalent(in, final_wealth, pc.metrics.notes);
  if (!in.ce_exact)
    pc.metrics.notes.emplace_back(
        "CE theory: the price-taker plan's CE in arithmetic steps of the exogenous market (approximate "
        "here)");
  return pc;
}

json market_json(const MarketComparison& m, const std::vector<PopulationComparison>& pops) {
  json assets = json::array();
  for (const auto& am : m.per_asset) {
    json j{{"name", am.name}, {"stylised_facts", nullptr}, {"mispricing", nullptr}, {"episodes", nullptr}};
    if (am.facts) {
      const auto& f = *am.facts;
      json hill = json::array();
      for (const auto& h : f.hill)
        hill.push_back({{"tail_fraction", h.tail_fraction},
                        {"k", h.k},
                        {"threshold", json_number(h.threshold)},
                        {"index", json_number(h.index)},
                        {"se", json_number(h.se)}});
      j["stylised_facts"] = {
          {"returns", m.impact
                          ? "log returns ln(1 + market/return) per step, from the second decision row (the "
                            "first holds the opening purchase's jump)"
                          : "log returns ln(1 + market/return) per step"},
          {"observations", f.observations},
          {"mean", json_number(f.mean)},
          {"sd", json_number(f.sd)},
          {"excess_kurtosis", json_number(f.excess_kurtosis)},
          {"hill", hill},
          {"acf_r", acf_json(f.acf_r)},
          {"acf_abs", acf_json(f.acf_abs)},
          {"acf_squared", acf_json(f.acf_squared)}};
    }
    if (am.mispricing)
      j["mispricing"] = {{"definition", "ln(price / fundamental) at every recorded step and path"},
                         {"observations", am.mispricing->observations},
                         {"mean", json_number(am.mispricing->mean)},
                         {"sd", json_number(am.mispricing->sd)},
                         {"max_abs", json_number(am.mispricing->max_abs)}};
    if (am.episodes) {
      const auto& e = *am.episodes;
      j["episodes"] = {{"threshold", e.rule.threshold},
                       {"min_rows", e.rule.min_rows},
                       {"paths", e.paths},
                       {"rows", e.rows},
                       {"bubbles", e.bubbles.size()},
                       {"crashes", e.crashes.size()},
                       {"bubble_fraction", json_number(e.bubble_fraction)},
                       {"crash_fraction", json_number(e.crash_fraction)},
                       {"bubble_mean_rows", json_number(e.bubble_mean_rows)},
                       {"crash_mean_rows", json_number(e.crash_mean_rows)},
                       {"bubble_list", episodes_json(e.bubbles)},
                       {"crash_list", episodes_json(e.crashes)}};
    }
    j["flow_mean_abs"] = json_number(am.flow_mean_abs);
    assets.push_back(j);
  }
  json herding = nullptr;
  if (m.herding) {
    const auto& h = *m.herding;
    json ch = json::array();
    for (std::size_t i = 0; i < h.ch.size(); ++i) {
      json r = regression_json(h.ch[i], h.observations);
      r["tail_fraction"] = h.tail_fractions[i];
      ch.push_back(r);
    }
    json cck = regression_json(h.cck, h.observations);
    cck["series"] = {{"abs_market_return", vec(h.series.market_return.cwiseAbs())},
                     {"csad", vec(h.series.csad)}};
    herding = {{"assets", h.assets}, {"observations", h.observations}, {"cssd", ch}, {"csad", cck}};
  }
  json gap = json::array();
  for (const auto& pc : pops) {
    json p{{"population", pc.name},
           {"kind", pc.kind},
           {"certainty_equivalent", nullptr},
           {"decision_rmse_amount", nullptr}};
    if (pc.metrics.certainty_equivalent) {
      const auto& c = *pc.metrics.certainty_equivalent;
      p["certainty_equivalent"] = {{"simulated", json_number(c.simulated)},
                                   {"theory", json_number(c.theory)},
                                   {"gap", json_number(c.gap)},
                                   {"ci_low", json_number(c.ci_low)},
                                   {"ci_high", json_number(c.ci_high)},
                                   {"exact", c.exact}};
    }
    if (pc.metrics.decision_error)
      p["decision_rmse_amount"] = json_number(pc.metrics.decision_error->amount.rmse);
    if (!pc.asset_decision_rmse.empty()) {
      json per = json::array();
      for (double x : pc.asset_decision_rmse) per.push_back(json_number(x));
      p["decision_rmse_amount_per_asset"] = per;
    }
    gap.push_back(p);
  }
  return {{"assets", m.assets},
          {"asset_names",
           [&] {
             json n = json::array();
             for (const auto& am : m.per_asset) n.push_back(am.name);
             return n;
           }()},
          {"impact", m.impact},
          {"per_asset", assets},
          {"herding_across_assets", herding},
          {"price_taker_gap", gap},
          {"notes", m.notes}};
}

void market_markdown(std::string& md, const MarketComparison& m,
                     const std::vector<PopulationComparison>& pops) {
  md += fmt::format("\n### Market ({}, {})\n\n", sim::counted(m.assets, "asset"),
                    m.impact ? "prices moved by the agents' flow" : "exogenous prices");
  md +=
      "| asset | excess kurtosis | Hill 5 % | Hill 2.5 % | ρ(r, 1) | ρ(\\|r\\|, 1) | ρ(r², 1) | band ± | "
      "mispricing mean "
      "/ sd / max \\|m\\| | bubbles / crashes |\n|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& am : m.per_asset) {
    md += fmt::format("| {} |", am.name);
    if (am.facts) {
      const auto& f = *am.facts;
      md += fmt::format(" {} |", markdown_number(f.excess_kurtosis));
      for (std::size_t i = 0; i < 2; ++i)
        md += i < f.hill.size() ? fmt::format(" {} (k = {}) |", markdown_number(f.hill[i].index), f.hill[i].k)
                                : std::string(" — |");
      md += fmt::format(" {} | {} | {} | {} |", markdown_number(f.acf_r.acf[0]),
                        markdown_number(f.acf_abs.acf[0]), markdown_number(f.acf_squared.acf[0]),
                        markdown_number(f.acf_r.band));
    } else {
      md += " — | — | — | — | — | — | — |";
    }
    if (am.mispricing)
      md += fmt::format(" {} / {} / {} |", markdown_number(am.mispricing->mean),
                        markdown_number(am.mispricing->sd), markdown_number(am.mispricing->max_abs));
    else
      md += " — |";
    md += am.episodes ? fmt::format(" {} / {} |\n", am.episodes->bubbles.size(), am.episodes->crashes.size())
                      : std::string(" — |\n");
  }
  if (!m.per_asset.empty() && m.per_asset.front().episodes) {
    const auto& rule = m.per_asset.front().episodes->rule;
    md += fmt::format(
        "\nReturns: log returns ln(1 + R) per step, pooled over paths{}; Hill index of |r − mean| from the "
        "k largest; band ± 1.96/√n. Mispricing m = ln(price / fundamental); a bubble (crash) is a run of at "
        "least {} recorded rows with m > {} (m < −{}).\n",
        m.impact ? ", from the second step (the first holds the opening purchase's jump)" : "", rule.min_rows,
        rule.threshold, rule.threshold);
  }
  if (m.herding) {
    md += fmt::format("\nHerding tests across assets ({} pooled cross-sections of {}):\n\n",
                      m.herding->observations, sim::counted(m.herding->assets, "asset"));
    for (std::size_t i = 0; i < m.herding->ch.size(); ++i) {
      const std::string label =
          fmt::format("CSSD (Christie–Huang, {} % tails)", 100 * m.herding->tail_fractions[i]);
      markdown_regression(md, label.c_str(), m.herding->ch[i]);
    }
    markdown_regression(md, "CSAD (Chang–Cheng–Khorana)", m.herding->cck);
  }
  md +=
      "\nPrice-taker gap (each population against its price-taker theory):\n\n| population | CE simulated / "
      "theory | CE gap [CI] | decision RMSE, amount |\n|---|---|---|---|\n";
  for (const auto& pc : pops) {
    md += fmt::format("| {} ({}) |", pc.name, pc.kind);
    if (const auto& c = pc.metrics.certainty_equivalent)
      md += fmt::format(" {} / {} | {} [{}, {}] |", markdown_number(c->simulated), markdown_number(c->theory),
                        markdown_number(c->gap), markdown_number(c->ci_low), markdown_number(c->ci_high));
    else
      md += " — | — |";
    if (pc.metrics.decision_error) {
      md += fmt::format(" {} |\n", markdown_number(pc.metrics.decision_error->amount.rmse));
    } else if (!pc.asset_decision_rmse.empty()) {
      std::string per;
      for (std::size_t a = 0; a < pc.asset_decision_rmse.size(); ++a)
        per += fmt::format("{}{} {}", a ? ", " : "", m.per_asset[a].name,
                           markdown_number(pc.asset_decision_rmse[a]));
      md += fmt::format(" {} |\n", per);
    } else {
      md += " — |\n";
    }
  }
  if (!m.notes.empty()) {
    md += "\nMarket notes:\n\n";
    for (const auto& n : m.notes) md += fmt::format("- {}\n", n);
  }
}

}  // namespace herdsim::io
