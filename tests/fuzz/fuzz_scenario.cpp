// Fuzz harness: scenario files with --set overrides, through full validation: io::parse_scenario, the
// entry point behind `herdsim run` and `herdsim validate` (io::load_scenario reads the file and calls it).
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

#include "agents/herd_agent.hpp"
#include "agents/investagent_agent.hpp"
#include "agents/kind.hpp"
#include "agents/merton_agent.hpp"
#include "agents/noise_agent.hpp"
#include "agents/registry.hpp"
#include "fuzz_support.hpp"
#include "io/scenario_toml.hpp"

namespace {

namespace agents = herdsim::agents;
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
    FUZZ_CHECK(agents::find_kind(pop.kind) != nullptr, pop.name + ".kind " + pop.kind);
    check_param(pop.wealth, pop.name + ".wealth");
    if (const auto* noise = agents::params_if<agents::NoiseParams>(pop)) {
      check_param(noise->proportion, pop.name + ".proportion");
    } else if (const auto* merton = agents::params_if<agents::MertonParams>(pop)) {
      check_param(merton->alpha, pop.name + ".alpha");
    } else if (const auto* herd = agents::params_if<agents::HerdParams>(pop)) {
      check_param(herd->alpha, pop.name + ".alpha");
      check_param(herd->theta, pop.name + ".theta");
      if (herd->influence == agents::Influence::peers) {
        FUZZ_CHECK(pop.count >= 2, pop.name + ".count");
        using Net = agents::NetworkSpec::Kind;
        const auto& net = herd->network;
        if (net.kind == Net::ring || net.kind == Net::small_world)
          FUZZ_CHECK(net.k >= 1 && 2LL * net.k < pop.count, pop.name + ".network.k");
        FUZZ_CHECK(net.p >= 0.0 && net.p <= 1.0, pop.name + ".network.p");
      }
    } else if (const auto* ia = agents::params_if<agents::InvestAgentParams>(pop)) {
      check_param(ia->alpha, pop.name + ".alpha");
      check_param(ia->theta, pop.name + ".theta");
      FUZZ_CHECK(s.run.steps_per_year == 1 && s.run.steps() >= 1 && s.run.steps() <= 10, pop.name);
      const auto& inf = ia->inference;
      FUZZ_CHECK(!inf.backend.empty(), pop.name + ".inference.backend");
      FUZZ_CHECK(inf.max_tokens >= 1 && inf.batch >= 1 && inf.threads >= 1, pop.name + ".inference");
      FUZZ_CHECK(inf.temperature >= 0.0, pop.name + ".inference.temperature");
    } else {
      FUZZ_CHECK(false, pop.name + ": no parameters of its kind " + pop.kind);
    }
  }
  // The checks run again before a simulation is built (specs made in code) agree with the loader's.
  try {
    agents::check_populations(s);
  } catch (const herdsim::ScenarioError& e) {
    FUZZ_CHECK(false, std::string("the loader accepted what the runtime check refuses: ") + e.what());
  }
}

bool same_param(const ParamSpec& a, const ParamSpec& b) {
  return a.form == b.form && a.value == b.value && a.values == b.values;
}

/// The kind's parameters a run reads, equal in a and b.
bool same_params(const herdsim::sim::PopulationSpec& a, const herdsim::sim::PopulationSpec& b) {
  if (const auto* p = agents::params_if<agents::NoiseParams>(a)) {
    const auto& q = agents::params_of<agents::NoiseParams>(b);
    return same_param(p->proportion, q.proportion);
  }
  if (const auto* p = agents::params_if<agents::MertonParams>(a)) {
    const auto& q = agents::params_of<agents::MertonParams>(b);
    return same_param(p->alpha, q.alpha) && p->policy == q.policy && p->optimum == q.optimum;
  }
  if (const auto* p = agents::params_if<agents::HerdParams>(a)) {
    const auto& q = agents::params_of<agents::HerdParams>(b);
    return same_param(p->alpha, q.alpha) && same_param(p->theta, q.theta) && p->herd == q.herd &&
           p->influence == q.influence && p->leader == q.leader && p->network.kind == q.network.kind &&
           p->network.k == q.network.k && p->network.p == q.network.p && p->rho == q.rho;
  }
  if (const auto* p = agents::params_if<agents::InvestAgentParams>(a)) {
    const auto& q = agents::params_of<agents::InvestAgentParams>(b);
    return same_param(p->alpha, q.alpha) && same_param(p->theta, q.theta) && p->leader == q.leader &&
           p->protocol == q.protocol && p->inference.backend == q.inference.backend &&
           p->inference.model == q.inference.model;
  }
  return false;
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
    if (p.name != q.name || p.kind != q.kind || p.count != q.count || !same_param(p.wealth, q.wealth) ||
        !same_params(p, q))
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
