#include "io/evaluation.hpp"

#include <fmt/format.h>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "io/compare.hpp"
#include "io/run_file.hpp"
#include "io/value_format.hpp"
#include "sim/error.hpp"

namespace herdsim::io {

namespace {

using nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// Adds a run's table to the running sum (same grid in every run of one scenario).
void add_table(std::optional<analysis::ErrorTable>& sum, const analysis::ErrorTable& t,
               const std::string& path) {
  if (!sum) {
    sum = t;
    return;
  }
  if (sum->row_values != t.row_values || sum->col_values != t.col_values)
    throw InputError(fmt::format("{}: the runs' MSE tables have different grids", path));
  sum->mse_amount += t.mse_amount;
  sum->mse_proportion_pp += t.mse_proportion_pp;
  sum->agents += t.agents;
}

double valid_rate(const ProblemScore& s) {
  return s.requests > 0 ? static_cast<double>(s.valid) / static_cast<double>(s.requests) : kNaN;
}

const ProblemScore* find_problem(const EvaluationColumn& c, const std::string& problem) {
  for (const auto& p : c.problems) {
    if (p.problem == problem) return &p;
  }
  return nullptr;
}

}  // namespace

ProblemScore score_run_file(const std::string& path, const std::string& population,
                            const std::string& herdsim_version) {
  const Comparison comparison = compare_run(path, CompareOptions{}, herdsim_version);
  ProblemScore out;
  out.run_file = path;
  for (const auto& run : comparison.runs) {
    const PopulationComparison* pc = nullptr;
    for (const auto& p : run.populations) {
      if (p.name == population) pc = &p;
    }
    if (pc == nullptr || pc->kind != "investagent" || !pc->metrics.decision_error)
      throw InputError(
          fmt::format("{}: run group {} has no investagent population '{}' with a decision error", path,
                      run.group, population));
    if (out.runs > 0 && pc->problem != out.problem)
      throw InputError(fmt::format("{}: the runs score population '{}' against different problems ({}, {})",
                                   path, population, out.problem, pc->problem));
    out.problem = pc->problem;
    out.agents = pc->count;
    out.mse_amount += pc->metrics.decision_error->amount.mse;
    out.mse_pp += pc->metrics.decision_error->proportion_pp.mse;
    if (pc->table) add_table(out.table, *pc->table, path);
    ++out.runs;
  }
  if (out.runs == 0) throw InputError(fmt::format("{}: holds no runs", path));
  out.mse_amount /= out.runs;
  out.mse_pp /= out.runs;
  if (out.table) {
    out.table->mse_amount /= out.runs;
    out.table->mse_proportion_pp /= out.runs;
  }
  const RunFile file(path);
  for (const auto& group : file.info().groups) {
    const Transcripts t = file.transcripts(group, population);
    out.requests += static_cast<std::int64_t>(t.size());
    for (const auto v : t.valid) out.valid += v != 0 ? 1 : 0;
  }
  return out;
}

std::string evaluation_json(const Evaluation& e) {
  json columns = json::array();
  for (const auto& c : e.columns) {
    json problems = json::object();
    for (const auto& p : c.problems) {
      json table = nullptr;
      if (p.table) {
        table = {{"rows", {{"param", p.table->row_param}, {"values", p.table->row_values}}},
                 {"cols", {{"param", p.table->col_param}, {"values", p.table->col_values}}},
                 {"mse_amount", json_rows(p.table->mse_amount)},
                 {"mse_proportion_pp", json_rows(p.table->mse_proportion_pp)}};
      }
      problems[p.problem] = {{"run_file", p.run_file},
                             {"runs", p.runs},
                             {"agents", p.agents},
                             {"mse_amount", json_number(p.mse_amount)},
                             {"mse_proportion_pp", json_number(p.mse_pp)},
                             {"requests", p.requests},
                             {"valid", p.valid},
                             {"valid_rate", json_number(valid_rate(p))},
                             {"table", table}};
    }
    columns.push_back(
        {{"label", c.label}, {"source", c.source}, {"description", c.description}, {"problems", problems}});
  }
  const json j{{"schema", "herdsim-evaluation"},
               {"schema_version", 1},
               {"herdsim_version", e.herdsim_version},
               {"created", e.created},
               {"population", e.population},
               {"problems", e.problems},
               {"columns", columns}};
  return j.dump(1) + '\n';
}

std::string evaluation_markdown(const Evaluation& e) {
  std::string md = fmt::format(
      "# InvestAlign evaluation\n\nherdsim {}, {}. Population `{}`, scored against each problem's theory by "
      "`herdsim compare` (docs/analysis.md): decision MSE in million dollars² (amount) and in percentage "
      "points² of realised wealth (pp), mean over the runs (seeds).\n\n",
      e.herdsim_version, e.created, e.population);
  md += "| column | source | what |\n|---|---|---|\n";
  for (const auto& c : e.columns) md += fmt::format("| {} | {} | {} |\n", c.label, c.source, c.description);

  md += "\n## Summary\n\n| problem | measure |";
  for (const auto& c : e.columns) md += fmt::format(" {} |", c.label);
  md += "\n|---|---|";
  for (std::size_t i = 0; i < e.columns.size(); ++i) md += "---|";
  md += '\n';
  for (const auto& problem : e.problems) {
    const auto row = [&](const char* measure, auto&& value) {
      md += fmt::format("| {} | {} |", problem, measure);
      for (const auto& c : e.columns) {
        const ProblemScore* p = find_problem(c, problem);
        md += fmt::format(" {} |", p != nullptr ? value(*p) : std::string("—"));
      }
      md += '\n';
    };
    row("MSE (amount)", [](const ProblemScore& p) { return markdown_number(p.mse_amount); });
    row("MSE (pp)", [](const ProblemScore& p) { return markdown_number(p.mse_pp); });
    row("valid answers", [](const ProblemScore& p) {
      return fmt::format("{:.1f} % ({}/{})", 100.0 * valid_rate(p), p.valid, p.requests);
    });
    row("runs × agents", [](const ProblemScore& p) { return fmt::format("{} × {}", p.runs, p.agents); });
  }

  for (const auto& problem : e.problems) {
    for (const auto& [what, amount] : {std::pair{"amount", true}, std::pair{"pp", false}}) {
      md += fmt::format("\n## {}: MSE ({}) by lottery probability (rows) and dependence score (columns)\n",
                        problem, what);
      for (const auto& c : e.columns) {
        const ProblemScore* p = find_problem(c, problem);
        if (p == nullptr || !p->table) continue;
        const analysis::ErrorTable& t = *p->table;
        const Eigen::MatrixXd& m = amount ? t.mse_amount : t.mse_proportion_pp;
        md += fmt::format("\n### {}\n\n| {} \\ {} |", c.label, t.row_param, t.col_param);
        for (const double v : t.col_values) md += fmt::format(" {:g} |", v);
        md += "\n|---|";
        for (std::size_t i = 0; i < t.col_values.size(); ++i) md += "---|";
        md += '\n';
        for (Eigen::Index r = 0; r < m.rows(); ++r) {
          md += fmt::format("| {:g} |", t.row_values[static_cast<std::size_t>(r)]);
          for (Eigen::Index col = 0; col < m.cols(); ++col)
            md += fmt::format(" {} |", markdown_number(m(r, col)));
          md += '\n';
        }
      }
    }
  }
  return md;
}

}  // namespace herdsim::io
