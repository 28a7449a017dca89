#include "tools/cli/dataset_command.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/dataset_jsonl.hpp"
#include "sim/error.hpp"
#include "sim/investalign/dataset.hpp"

#ifndef HERDSIM_VERSION
#define HERDSIM_VERSION "unknown"
#endif

namespace herdsim::cli {

namespace {

namespace ia = herdsim::investalign;

/// Flags of `herdsim dataset`, as given. Defaults reproduce the paper's grid (p = 0.4..0.9, scores 0..10).
struct DatasetFlags {
  std::string output;
  std::vector<std::string> problems{"all"};
  std::vector<double> lottery_probs = ia::DatasetConfig{}.lottery_probs;
  std::vector<double> scores = ia::DatasetConfig{}.scores;
  std::vector<double> budgets = ia::DatasetConfig{}.budgets;
  int samples = 0;
  std::uint64_t seed = ia::DatasetConfig{}.seed;
  double test_fraction = ia::DatasetConfig{}.test_fraction;
  std::string lottery_convention = "w10s3";
  bool training_prompts = false;
  std::string relative_bc = "pinned";
};

/// The flag that sets a DatasetConfig field (for error messages).
const char* flag_of(const std::string& field) {
  static const std::map<std::string, const char*> flags{{"problems", "--problem"},
                                                        {"lottery_probs", "--lottery"},
                                                        {"scores", "--scores"},
                                                        {"budgets", "--budgets"},
                                                        {"samples", "--samples"},
                                                        {"test_fraction", "--test-fraction"},
                                                        {"lottery", "--lottery-convention"}};
  const auto it = flags.find(field);
  return it == flags.end() ? "dataset" : it->second;
}

ia::DatasetConfig config_of(const DatasetFlags& f, std::vector<std::string>& errors) {
  ia::DatasetConfig c;
  c.problems.clear();
  for (const auto& name : f.problems) {
    if (name == "all") {
      for (const auto p : {ia::Problem::absolute, ia::Problem::relative, ia::Problem::mutual}) {
        if (std::find(c.problems.begin(), c.problems.end(), p) == c.problems.end()) c.problems.push_back(p);
      }
    } else if (const auto problem = from_name<ia::Problem>(name)) {
      c.problems.push_back(*problem);
    } else {
      errors.push_back(fmt::format("--problem must be absolute, relative, mutual or all, got '{}'", name));
    }
  }
  c.lottery_probs = f.lottery_probs;
  c.scores = f.scores;
  c.budgets = f.budgets;
  c.samples = f.samples;
  c.seed = f.seed;
  c.test_fraction = f.test_fraction;
  c.lottery = f.lottery_convention == "w20s6" ? theory::lottery_win20_sure6 : theory::lottery_win10_sure3;
  c.lottery_name = f.lottery_convention;
  c.training_prompts = f.training_prompts;
  c.relative_bc =
      from_name<theory::BoundaryCondition>(f.relative_bc).value_or(theory::BoundaryCondition::pinned);
  return c;
}

int run_dataset(const DatasetFlags& f) {
  std::vector<std::string> errors;
  const ia::DatasetConfig config = config_of(f, errors);
  for (const auto& p : ia::check_dataset_config(config)) {
    // An unknown --problem name already has its line; an empty list after it is the same problem.
    if (p.field == "problems" && !errors.empty()) continue;
    errors.push_back(fmt::format("{}: {}", flag_of(p.field), p.message));
  }
  if (!errors.empty()) {
    for (const auto& e : errors) std::cerr << "herdsim dataset: error: " << e << '\n';
    return 2;
  }
  try {
    io::OutputDirectory out(f.output, "-o");  // checked and claimed before any work
    const ia::Dataset dataset = ia::build_dataset(config);
    const auto written = io::write_dataset(dataset, out, {HERDSIM_VERSION});
    std::string problems;
    for (const auto p : config.problems) {
      if (!problems.empty()) problems += ", ";
      problems += ia::problem_name(p);
    }
    std::cout << fmt::format("herdsim dataset: wrote {} train and {} test samples ({}) to {}\n",
                             written.train_lines, written.test_lines, problems, f.output);
    return 0;
  } catch (const InputError& e) {
    std::cerr << "herdsim dataset: error: " << e.what() << '\n';
    return 2;
  } catch (const Error& e) {
    std::cerr << "herdsim dataset: failed: " << e.what() << '\n';
    return 1;
  }
}

}  // namespace

void add_dataset_command(CLI::App& app) {
  auto flags = std::make_shared<DatasetFlags>();
  CLI::App* cmd = app.add_subcommand(
      "dataset",
      "Generate the InvestAlign dataset: chat-format JSONL (train/test) with theory targets and a card");
  cmd->add_option("-o,--output", flags->output, "output directory (created if missing)")->required();
  cmd->add_option("--problem", flags->problems,
                  "absolute (P3), relative (P1), mutual (P2) or all; a comma-separated list is fine")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--lottery", flags->lottery_probs, "lottery indifference probabilities, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--scores", flags->scores, "dependence scores (theta = score * 1e-8), comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--budgets", flags->budgets, "initial budgets, million dollars, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--samples", flags->samples,
                  "0: one sample per grid cell and budget; N: N samples per problem drawn within the cells")
      ->capture_default_str();
  cmd->add_option("--seed", flags->seed, "seed of the split, the sampling and the mutual peers")
      ->capture_default_str();
  cmd->add_option("--test-fraction", flags->test_fraction,
                  "share of (lottery, score) cells held out for test")
      ->capture_default_str();
  cmd->add_option("--lottery-convention", flags->lottery_convention,
                  "lottery amounts of the p -> alpha map: w10s3 (win 10 / sure 3) or w20s6")
      ->check(CLI::IsMember({"w10s3", "w20s6"}))
      ->capture_default_str();
  cmd->add_flag("--training-prompts", flags->training_prompts,
                "prompts also carry eta and the optimal values (the paper's training variant)");
  cmd->add_option("--relative-bc", flags->relative_bc, "boundary conditions of the relative problem (P1)")
      ->check(CLI::IsMember(names_of<theory::BoundaryCondition>()))
      ->capture_default_str();
  cmd->callback([flags]() {
    const int code = run_dataset(*flags);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace herdsim::cli
