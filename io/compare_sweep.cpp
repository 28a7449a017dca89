#include "io/compare_sweep.hpp"

#include <fmt/format.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "io/value_format.hpp"
#include "sim/error.hpp"

namespace herdsim::io {

namespace {

using analysis::kNaN;
using analysis::MeanInterval;
using nlohmann::json;

/// What each measure is, in the order of the tables. The per-agent measures carry the names of the
/// by-type tables (analysis::agent_measures); the herding statistics are the population's own.
struct MeasureInfo {
  const char* name;
  const char* label;
  const char* units;
};
constexpr MeasureInfo kMeasures[] = {
    {"decision_mse_pp", "decision MSE, proportion of wealth", "pp^2"},
    {"decision_mse_amount", "decision MSE, amount", "currency^2"},
    {"ce_gap", "certainty-equivalent gap", "currency"},
    {"h_simulated", "herding distance h, simulated", ""},
    {"h_theory", "herding distance h, theory", ""},
    {"w_simulated", "opinion w, simulated", ""},
    {"w_theory", "opinion w, theory", ""},
    {"lsv_mean_h", "LSV mean H (correlated trading)", ""},
    {"cssd_beta_l", "CSSD beta_L (Christie-Huang, lower tail)", ""},
    {"cssd_beta_u", "CSSD beta_U (Christie-Huang, upper tail)", ""},
    {"csad_gamma2", "CSAD gamma2 (Chang-Cheng-Khorana)", ""},
    {"cumulative_return", "cumulative return", "fraction"},
    {"sharpe", "Sharpe ratio, annualised", "per sqrt(year)"},
    {"volatility", "volatility, annualised", "per sqrt(year)"},
    {"max_drawdown", "maximum drawdown", "fraction"},
};

constexpr const char* kOverAgents = "mean over agents, Student-t interval (agents taken as independent)";
constexpr const char* kDeltaPaths = "CE gap with its delta-method interval over independent paths";
constexpr const char* kLsvInterval = "mean H over cells +- t(n-1) se (cells taken as independent)";
constexpr const char* kCoefInterval = "estimate +- t(n-3) se (Newey-West se where the regression uses it)";

/// estimate +- t se, as an interval with n observations.
MeanInterval estimate_interval(double estimate, double se, int n, double df, double confidence) {
  MeanInterval m;
  m.mean = estimate;
  m.n = n;
  const double half = df >= 1.0 ? analysis::t_quantile(confidence, df) * se : kNaN;
  if (std::isfinite(half)) {
    m.ci_low = estimate - half;
    m.ci_high = estimate + half;
  }
  return m;
}

/// A coefficient of a fitted regression with its interval (nullopt when not fitted).
std::optional<MeanInterval> coefficient(const analysis::HerdingRegression& r, int observations,
                                        const char* name, double confidence) {
  if (!r.fit) return std::nullopt;
  const auto c = analysis::regression_coefficient(r, name);
  auto m = estimate_interval(c.estimate, c.se, observations, observations - 3.0, confidence);
  m.p = c.p;
  return m;
}

/// The value of one measure for one population and its interval's method; nullopt when it has none.
std::optional<MeanInterval> measure_value(const PopulationComparison& pc, const std::string& name,
                                          double confidence, std::string& method) {
  const auto& mt = pc.metrics;
  if (name == "ce_gap") {
    if (!mt.certainty_equivalent) return std::nullopt;
    const auto& c = *mt.certainty_equivalent;
    method = kDeltaPaths;
    MeanInterval m;
    m.mean = c.gap;
    m.ci_low = c.ci_low;
    m.ci_high = c.ci_high;
    m.n = c.paths;
    return m;
  }
  if (name == "lsv_mean_h") {
    if (!mt.lsv) return std::nullopt;
    const auto& o = mt.lsv->overall;
    method = kLsvInterval;
    auto m = estimate_interval(o.mean_h, o.std_err, o.n_cells, o.n_cells - 1.0, confidence);
    m.p = o.p_value;
    return m;
  }
  if (name == "cssd_beta_l" || name == "cssd_beta_u" || name == "csad_gamma2") {
    if (!mt.dispersion) return std::nullopt;
    method = kCoefInterval;
    const auto& d = *mt.dispersion;
    if (name == "csad_gamma2") return coefficient(d.csad, d.observations, "gamma2", confidence);
    return coefficient(d.cssd, d.observations, name == "cssd_beta_l" ? "beta_L" : "beta_U", confidence);
  }
  for (const auto& am : analysis::agent_measures(mt))
    if (am.name == name) {
      method = kOverAgents;
      return analysis::mean_interval(am.values, confidence);
    }
  return std::nullopt;
}

/// Fills the populations and the tables of `a` from its points' population comparisons.
void fill_tables(Across& a, const std::vector<const RunComparison*>& runs) {
  for (const auto* rc : runs)
    for (const auto& pc : rc->populations)
      if (std::find(a.populations.begin(), a.populations.end(), pc.name) == a.populations.end())
        a.populations.push_back(pc.name);
  for (const auto& info : kMeasures) {
    AcrossTable t{info.name, info.label, info.units, "", {}};
    bool any = false;
    for (const auto* rc : runs) {
      std::vector<std::optional<MeanInterval>> row(a.populations.size());
      for (std::size_t p = 0; p < a.populations.size(); ++p) {
        const auto it =
            std::find_if(rc->populations.begin(), rc->populations.end(),
                         [&](const PopulationComparison& pc) { return pc.name == a.populations[p]; });
        if (it == rc->populations.end()) continue;
        std::string method;
        row[p] = measure_value(*it, info.name, a.confidence, method);
        if (row[p]) {
          any = true;
          t.interval = method;
        }
      }
      t.cells.push_back(std::move(row));
    }
    if (any) a.tables.push_back(std::move(t));
  }
}

AcrossValue number(double x) {
  AcrossValue v;
  v.type = AcrossValue::Type::number;
  v.number = x;
  return v;
}

AcrossValue text(std::string s) {
  AcrossValue v;
  v.type = AcrossValue::Type::text;
  v.text = std::move(s);
  return v;
}

/// Every leaf of a scenario as "key.path" -> value; a [[population]] entry is keyed by its name
/// ("population.NAME.key", as sweep keys are), other arrays are one text value.
void flatten(const toml::node& node, const std::string& key, std::map<std::string, AcrossValue>& out) {
  const auto join = [&](std::string_view k) {
    return key.empty() ? std::string(k) : key + "." + std::string(k);
  };
  if (const auto* t = node.as_table()) {
    for (auto&& [k, v] : *t)
      if (!(key.empty() && k.str() == "sweep")) flatten(v, join(k.str()), out);
    return;
  }
  if (const auto* arr = node.as_array(); arr != nullptr && key == "population") {
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const auto* t = (*arr)[i].as_table();
      if (t == nullptr) continue;
      const std::string name = (*t)["name"].value_or(fmt::format("#{}", i));
      for (auto&& [k, v] : *t)
        if (k.str() != "name") flatten(v, fmt::format("population.{}.{}", name, k.str()), out);
    }
    return;
  }
  if (node.is_integer() || node.is_floating_point()) {
    out[key] = number(node.value<double>().value_or(kNaN));
  } else if (const auto* s = node.as_string()) {
    out[key] = text(s->get());
  } else {
    std::ostringstream os;
    if (const auto* arr = node.as_array())
      os << *arr;
    else if (const auto* b = node.as_boolean())
      os << (b->get() ? "true" : "false");
    else
      os << node.type();
    out[key] = text(os.str());
  }
}

std::string value_text(const AcrossValue& v) {
  switch (v.type) {
    case AcrossValue::Type::number:
      return markdown_number(v.number);
    case AcrossValue::Type::text: {
      std::string out;  // a '|' inside a value would split the Markdown cell
      for (char ch : v.text) out += ch == '|' ? std::string("\\|") : std::string(1, ch);
      return out;
    }
    case AcrossValue::Type::absent:
      break;
  }
  return "—";
}

json value_json(const AcrossValue& v) {
  switch (v.type) {
    case AcrossValue::Type::number:
      return json_number(v.number);
    case AcrossValue::Type::text:
      return v.text;
    case AcrossValue::Type::absent:
      break;
  }
  return nullptr;
}

AcrossPoint point_of(const RunComparison& rc, std::string label, const std::string& file) {
  AcrossPoint p;
  p.label = std::move(label);
  p.file = file;
  p.group = rc.group;
  p.sweep_point = rc.sweep_point;
  return p;
}

std::string group_label(const std::string& group) {
  return group.size() > 1 && group.front() == '/' ? group.substr(1) : group;
}

}  // namespace

std::optional<Across> across_sweep(const Comparison& c) {
  if (c.runs.size() < 2) return std::nullopt;
  Across a;
  a.over = "sweep points";
  a.confidence = c.options.confidence;
  std::vector<const RunComparison*> runs;
  for (const auto& rc : c.runs) {
    runs.push_back(&rc);
    for (const auto& [key, value] : rc.sweep_values)
      if (std::find(a.params.begin(), a.params.end(), key) == a.params.end()) a.params.push_back(key);
  }
  for (const auto& rc : c.runs) {
    AcrossPoint p = point_of(rc, group_label(rc.group), c.run_file);
    for (const auto& key : a.params) {
      const auto it = std::find_if(rc.sweep_values.begin(), rc.sweep_values.end(),
                                   [&](const auto& kv) { return kv.first == key; });
      p.values.push_back(it == rc.sweep_values.end() ? AcrossValue{} : number(it->second));
    }
    a.points.push_back(std::move(p));
  }
  fill_tables(a, runs);
  return a;
}

Across across_files(const std::vector<Comparison>& comparisons) {
  Across a;
  a.over = "files";
  if (!comparisons.empty()) a.confidence = comparisons.front().options.confidence;
  std::vector<const RunComparison*> runs;
  std::vector<std::map<std::string, AcrossValue>> values;
  std::vector<std::string> swept;
  for (const auto& c : comparisons) {
    toml::table root;
    try {
      root = toml::parse(c.scenario);
    } catch (const toml::parse_error& e) {
      throw ScenarioError(
          fmt::format("{}: the stored scenario is not TOML: {}", c.run_file, e.description()));
    }
    std::map<std::string, AcrossValue> base;
    flatten(root, "", base);
    const std::string name = std::filesystem::path(c.run_file).filename().string();
    for (const auto& rc : c.runs) {
      runs.push_back(&rc);
      auto v = base;
      for (const auto& [key, x] : rc.sweep_values) {
        v[key] = number(x);
        if (std::find(swept.begin(), swept.end(), key) == swept.end()) swept.push_back(key);
      }
      values.push_back(std::move(v));
      a.points.push_back(
          point_of(rc, c.runs.size() > 1 ? name + ":" + group_label(rc.group) : name, c.run_file));
    }
  }
  // Columns: the keys whose values are not the same at every point (absent counts as a value).
  std::vector<std::string> keys;
  for (const auto& v : values)
    for (const auto& [key, x] : v)
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  const auto at = [](const std::map<std::string, AcrossValue>& v, const std::string& key) {
    const auto it = v.find(key);
    return it == v.end() ? AcrossValue{} : it->second;
  };
  const auto differs = [&](const std::string& key) {
    return std::any_of(values.begin(), values.end(),
                       [&](const auto& v) { return at(v, key) != at(values.front(), key); });
  };
  for (const auto& key : swept)
    if (differs(key)) a.params.push_back(key);
  for (const auto& key : keys)
    if (differs(key) && std::find(a.params.begin(), a.params.end(), key) == a.params.end())
      a.params.push_back(key);
  for (std::size_t i = 0; i < a.points.size(); ++i)
    for (const auto& key : a.params) a.points[i].values.push_back(at(values[i], key));
  fill_tables(a, runs);
  return a;
}

json across_json(const Across& a) {
  json points = json::array();
  for (const auto& p : a.points) {
    json values = json::array();
    for (const auto& v : p.values) values.push_back(value_json(v));
    points.push_back({{"label", p.label},
                      {"file", p.file},
                      {"group", p.group},
                      {"sweep_point", p.sweep_point},
                      {"values", values}});
  }
  json tables = json::array();
  for (const auto& t : a.tables) {
    json rows = json::array();
    for (const auto& row : t.cells) {
      json cells = json::array();
      for (const auto& c : row)
        cells.push_back(c ? json{{"mean", json_number(c->mean)},
                                 {"ci_low", json_number(c->ci_low)},
                                 {"ci_high", json_number(c->ci_high)},
                                 {"n", c->n}}
                          : json(nullptr));
      rows.push_back(cells);
    }
    tables.push_back({{"measure", t.measure},
                      {"label", t.label},
                      {"units", t.units},
                      {"interval", t.interval},
                      {"values", rows}});
  }
  return {{"over", a.over},   {"confidence", a.confidence},   {"params", a.params},
          {"points", points}, {"populations", a.populations}, {"measures", tables}};
}

std::string across_markdown(const Across& a) {
  std::string md = fmt::format(
      "\n## Across {}\n\nOne table per measure: a row per {}, {}one column per population with its value "
      "[{:.0f}% CI] (— where the population has no value).\n",
      a.over, a.over == "files" ? "run file and run group" : "sweep point",
      a.params.empty() ? std::string()
                       : fmt::format("the {} as columns, then ",
                                     a.over == "files" ? "scenario values that differ" : "swept parameters"),
      100 * a.confidence);
  for (const auto& t : a.tables) {
    md += fmt::format("\n### {}{}\n\n{}.\n\n| {} |", t.label, t.units.empty() ? "" : " (" + t.units + ")",
                      t.interval, a.over == "files" ? "file" : "sweep point");
    for (const auto& p : a.params) md += fmt::format(" `{}` |", p);
    for (const auto& p : a.populations) md += fmt::format(" {} |", p);
    md += "\n|---|";
    for (std::size_t i = 0; i < a.params.size() + a.populations.size(); ++i) md += "---|";
    md += '\n';
    for (std::size_t i = 0; i < a.points.size(); ++i) {
      md += fmt::format("| {} |", a.points[i].label);
      for (const auto& v : a.points[i].values) md += fmt::format(" {} |", value_text(v));
      for (const auto& c : t.cells[i])
        md += c ? fmt::format(" {} [{}, {}] |", markdown_number(c->mean), markdown_number(c->ci_low),
                              markdown_number(c->ci_high))
                : std::string(" — |");
      md += '\n';
    }
  }
  return md;
}

}  // namespace herdsim::io
