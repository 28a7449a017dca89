// Fuzz harness: scenario files with --set overrides, through full validation (io/scenario_toml.hpp).
//
// Input: leading lines "--set KEY=VALUE" are overrides (as `herdsim run --set` passes them), the rest is the
// TOML text. Every input must end in specs that keep the documented domains, or in a ScenarioFileError
// listing at least one problem; anything else (another exception, a crash, UB, a hang) is a finding. The
// text a spec stores (what a run file keeps and `herdsim compare` reads) must read back to the same specs.
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "io/scenario_toml.hpp"

namespace {

using herdsim::sim::ParamSpec;
using herdsim::sim::ScenarioSpec;

bool is_bare_key(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return true;
}

void check_param(const ParamSpec& p, const std::string& what) {
  switch (p.form) {
    case ParamSpec::Form::constant:
      FUZZ_CHECK(std::isfinite(p.value), what);
      break;
    case ParamSpec::Form::list:
      FUZZ_CHECK(!p.values.empty(), what);
      for (const double v : p.values) FUZZ_CHECK(std::isfinite(v), what);
      break;
    case ParamSpec::Form::distribution: {
      const auto& d = p.distribution;
      FUZZ_CHECK(std::isfinite(d.a) && std::isfinite(d.b), what);
      if (d.kind == herdsim::sim::DistributionSpec::Kind::uniform)
        FUZZ_CHECK(d.a < d.b, what);
      else
        FUZZ_CHECK(d.b > 0.0, what);
      if (d.low && d.high) FUZZ_CHECK(*d.low < *d.high, what);
      break;
    }
  }
}

/// What a consumer of a valid spec relies on (docs/scenarios.md).
void check_spec(const ScenarioSpec& s) {
  FUZZ_CHECK(s.run.paths >= 1, "run.paths");
  FUZZ_CHECK(s.run.steps_per_year >= 1, "run.steps_per_year");
  FUZZ_CHECK(std::isfinite(s.run.horizon) && s.run.horizon > 0.0, "run.horizon");
  FUZZ_CHECK(s.run.steps() >= 1, "run.steps()");  // an int conversion: UBSan reports an overflow
  FUZZ_CHECK(std::isfinite(s.run.dt()) && s.run.dt() > 0.0, "run.dt()");
  FUZZ_CHECK(std::isfinite(s.market.mu) && std::isfinite(s.market.r), "market");
  FUZZ_CHECK(std::isfinite(s.market.sigma) && s.market.sigma > 0.0, "market.sigma");
  FUZZ_CHECK(std::isfinite(s.market.price0) && s.market.price0 > 0.0, "market.price0");
  FUZZ_CHECK(s.record.every >= 1, "record.every");
  FUZZ_CHECK(s.record.compression >= 0 && s.record.compression <= 9, "record.compression");
  for (const int p : s.record.paths) FUZZ_CHECK(p >= 0 && p < s.run.paths, "record.paths");
  for (std::size_t i = 0; i < s.record.quantiles.size(); ++i) {
    const double q = s.record.quantiles[i];
    FUZZ_CHECK(q >= 0.0 && q <= 1.0, "record.quantiles");
    if (i > 0) FUZZ_CHECK(q > s.record.quantiles[i - 1], "record.quantiles order");
  }
  FUZZ_CHECK(!s.populations.empty(), "populations");
  std::set<std::string> names;
  for (const auto& pop : s.populations) {
    FUZZ_CHECK(is_bare_key(pop.name), pop.name);
    FUZZ_CHECK(names.insert(pop.name).second, "duplicate name " + pop.name);
    FUZZ_CHECK(pop.count >= 1, pop.name);
    check_param(pop.wealth, pop.name + ".wealth");
    using Kind = herdsim::sim::AgentKind;
    if (pop.kind == Kind::noise) {
      check_param(pop.proportion, pop.name + ".proportion");
      continue;
    }
    check_param(pop.alpha, pop.name + ".alpha");
    if (pop.kind == Kind::herd || pop.kind == Kind::investagent) check_param(pop.theta, pop.name + ".theta");
    if (pop.kind == Kind::herd && pop.influence == herdsim::sim::Influence::peers) {
      FUZZ_CHECK(pop.count >= 2, pop.name + ".count");
      const auto net = pop.network.kind;
      using Net = herdsim::sim::NetworkSpec::Kind;
      if (net == Net::ring || net == Net::small_world)
        FUZZ_CHECK(pop.network.k >= 1 && 2LL * pop.network.k < pop.count, pop.name + ".network.k");
      FUZZ_CHECK(pop.network.p >= 0.0 && pop.network.p <= 1.0, pop.name + ".network.p");
    }
    if (pop.kind == Kind::investagent) {
      FUZZ_CHECK(s.run.steps_per_year == 1 && s.run.steps() >= 1 && s.run.steps() <= 10, pop.name);
      FUZZ_CHECK(!pop.inference.backend.empty(), pop.name + ".inference.backend");
      FUZZ_CHECK(pop.inference.max_tokens >= 1 && pop.inference.batch >= 1 && pop.inference.threads >= 1,
                 pop.name + ".inference");
      FUZZ_CHECK(pop.inference.temperature >= 0.0, pop.name + ".inference.temperature");
    }
  }
}

/// The fields a run and `herdsim compare` read, equal in a and b (doubles bit for bit, NaN never occurs).
bool same_spec(const ScenarioSpec& a, const ScenarioSpec& b) {
  if (a.run.seed != b.run.seed || a.run.paths != b.run.paths || a.run.horizon != b.run.horizon ||
      a.run.steps_per_year != b.run.steps_per_year || a.run.wealth_update != b.run.wealth_update)
    return false;
  if (a.market.mu != b.market.mu || a.market.r != b.market.r || a.market.sigma != b.market.sigma ||
      a.market.price0 != b.market.price0)
    return false;
  if (a.record.every != b.record.every || a.record.paths != b.record.paths ||
      a.record.quantiles != b.record.quantiles || a.record.max_agents != b.record.max_agents)
    return false;
  if (a.sweep_point != b.sweep_point || a.populations.size() != b.populations.size()) return false;
  for (std::size_t i = 0; i < a.populations.size(); ++i) {
    const auto& p = a.populations[i];
    const auto& q = b.populations[i];
    if (p.name != q.name || p.kind != q.kind || p.count != q.count || p.leader != q.leader ||
        p.alpha.form != q.alpha.form || p.alpha.value != q.alpha.value || p.alpha.values != q.alpha.values ||
        p.theta.values != q.theta.values || p.inference.backend != q.inference.backend ||
        p.inference.model != q.inference.model)
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  constexpr std::string_view set_prefix = "--set ";
  while (text.substr(0, set_prefix.size()) == set_prefix) {
    const std::size_t eol = text.find('\n');
    const std::string_view line = text.substr(
        set_prefix.size(), eol == std::string_view::npos ? std::string_view::npos : eol - set_prefix.size());
    overrides.emplace_back(line);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
  }
  try {
    const auto specs = herdsim::io::parse_scenario(text, "fuzz.toml", overrides);
    FUZZ_CHECK(!specs.empty(), "no spec and no error");
    for (const auto& spec : specs) check_spec(spec);
    // The stored text (after overrides, [sweep] included) reads back to the same specs: `herdsim compare`
    // reads a run's scenario attribute this way.
    std::vector<ScenarioSpec> again;
    try {
      again = herdsim::io::parse_scenario(specs.front().text, "stored");
    } catch (const herdsim::io::ScenarioFileError& e) {
      FUZZ_CHECK(false,
                 std::string("the stored text does not read back: ") + e.what() + "\n" + specs.front().text);
    }
    FUZZ_CHECK(again.size() == specs.size(), "sweep points of the stored text");
    for (std::size_t i = 0; i < specs.size(); ++i) {
      FUZZ_CHECK(again[i].text == specs[i].text, "the stored text changes when read back");
      FUZZ_CHECK(same_spec(again[i], specs[i]),
                 "the stored text reads back to another spec:\n" + specs[i].text);
    }
  } catch (const herdsim::io::ScenarioFileError& e) {
    FUZZ_CHECK(!e.problems().empty(), "a ScenarioFileError without problems");
    for (const auto& p : e.problems()) FUZZ_CHECK(!p.message.empty(), std::string(e.what()));
    FUZZ_CHECK(e.source() == "fuzz.toml", e.source());
  }
  return 0;
}
