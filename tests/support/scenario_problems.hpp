#pragma once
// The scenario loader's problems for tests: parse a scenario text, list what it reported, and check that
// a problem with a key path and a message fragment is among them (CHECK_PROBLEM, CHECK_VALID).
#include <algorithm>
#include <string>
#include <vector>

#include "io/scenario_toml.hpp"

namespace herdsim::test {

/// Every problem the loader reports for text (named "t.toml"), with overrides; none when it is valid.
inline std::vector<io::ScenarioProblem> problems_of(const std::string& text,
                                                    const std::vector<std::string>& overrides = {}) {
  try {
    (void)io::parse_scenario(text, "t.toml", overrides);
  } catch (const io::ScenarioFileError& e) {
    return e.problems();
  }
  return {};
}

/// The problems as the CLI prints them, one per line.
inline std::string listing(const std::vector<io::ScenarioProblem>& ps) {
  std::string out;
  for (const auto& p : ps) out += io::format_scenario_problem("t.toml", p) + "\n";
  return out;
}

/// True if some problem has this key path and a message containing fragment.
inline bool has_problem(const std::vector<io::ScenarioProblem>& ps, const std::string& key,
                        const std::string& fragment) {
  return std::any_of(ps.begin(), ps.end(), [&](const io::ScenarioProblem& p) {
    return p.key_path == key && p.message.find(fragment) != std::string::npos;
  });
}

}  // namespace herdsim::test

#define CHECK_PROBLEM(text, key, fragment)                                           \
  do {                                                                               \
    const auto ps_ = herdsim::test::problems_of(text);                               \
    INFO("scenario:\n" << (text) << "\nproblems:\n" << herdsim::test::listing(ps_)); \
    CHECK(herdsim::test::has_problem(ps_, key, fragment));                           \
  } while (false)

#define CHECK_VALID(text)                                                            \
  do {                                                                               \
    const auto ps_ = herdsim::test::problems_of(text);                               \
    INFO("scenario:\n" << (text) << "\nproblems:\n" << herdsim::test::listing(ps_)); \
    CHECK(ps_.empty());                                                              \
  } while (false)
