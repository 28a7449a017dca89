#include "tools/cli/evaluate_command.hpp"

#include <fmt/format.h>
#include <unistd.h>
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "dist/communicator.hpp"
#include "io/evaluation.hpp"
#include "io/output_file.hpp"
#include "io/run_file.hpp"
#include "io/scenario_toml.hpp"
#include "io/timestamp.hpp"
#include "sim/enum_names.hpp"
#include "sim/error.hpp"
#include "sim/investalign/reference.hpp"
#include "sim/memory.hpp"
#include "tools/cli/run_command.hpp"

#ifndef HERDSIM_VERSION
#define HERDSIM_VERSION "unknown"
#endif
#ifndef HERDSIM_INVESTALIGN_SCENARIOS
#define HERDSIM_INVESTALIGN_SCENARIOS "scenarios/investalign"
#endif

namespace herdsim::cli {

namespace {

namespace fs = std::filesystem;

/// The evaluation's problems: the scenario each is run from and the run file it leaves in a column's folder.
struct ProblemRun {
  const char* name;
  const char* scenario;
  const char* run_file;
};
constexpr ProblemRun kProblems[] = {{"P3", "p3_absolute.toml", "p3.h5"},
                                    {"P1", "p1_relative.toml", "p1.h5"},
                                    {"P2", "p2_mutual.toml", "p2.h5"}};

struct EvaluateFlags {
  std::vector<std::string> sources;
  std::string output;
  std::string answerers = "p3_closed_form,advisor,merton,own_theory";
  std::string problems = "P3,P1,P2";
  std::vector<long long> seeds;
  std::string backend = "llama";
  std::vector<std::string> sets;
  std::string scenarios = HERDSIM_INVESTALIGN_SCENARIOS;
  std::string population = "investors";
  int threads = 0;
  std::string cache;  ///< decision cache folder (default: DIR/cache)
  bool no_cache = false;
  bool redo = false;
  bool quiet = false;
};

/// One answer source: a column of the report.
struct Column {
  std::string label;
  std::string source;  ///< model, reference, replay
  std::string description;
  std::vector<std::string> sets;  ///< the inference overrides (replay: without the file)
  std::string replay;             ///< replay: a run file, or a folder holding p3.h5, p1.h5, p2.h5
};

std::vector<std::string> split(const std::string& text, char by) {
  std::vector<std::string> out;
  std::size_t begin = 0;
  while (true) {
    const auto end = text.find(by, begin);
    out.push_back(text.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) return out;
    begin = end + 1;
  }
}

/// A TOML basic string (for --set values that are paths).
std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + '"';
}

bool valid_label(const std::string& label) {
  return !label.empty() && label != "." && label != ".." &&
         std::all_of(label.begin(), label.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-' ||
                  c == '+';
         });
}

void require_file(const std::string& path, const std::string& what, const std::string& source) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw InputError(fmt::format("source '{}': {} '{}' does not exist or is not a file", source, what, path));
}

/// SOURCE: [LABEL=]MODEL[+ADAPTER...] | [LABEL=]replay:PATH | [LABEL=]reference:ANSWERER.
Column parse_source(const std::string& text, const EvaluateFlags& f) {
  Column c;
  std::string spec = text;
  const auto eq = text.find('=');
  if (eq != std::string::npos && valid_label(text.substr(0, eq))) {
    c.label = text.substr(0, eq);
    spec = text.substr(eq + 1);
  }
  const std::string inference = fmt::format("population.{}.inference.", f.population);
  if (spec.rfind("replay:", 0) == 0) {
    c.source = "replay";
    c.replay = spec.substr(7);
    std::error_code ec;
    if (!fs::exists(c.replay, ec))
      throw InputError(fmt::format("source '{}': replay '{}' does not exist", text, c.replay));
    c.description = fmt::format("the answers recorded in {}", c.replay);
    c.sets = {inference + "backend=replay"};
    std::string name = c.replay;
    while (name.size() > 1 && name.back() == '/') name.pop_back();
    if (c.label.empty()) c.label = "replay-" + fs::path(name).filename().stem().string();
  } else if (spec.rfind("reference:", 0) == 0) {
    const auto answerer = from_name<investalign::Answerer>(spec.substr(10));
    if (!answerer)
      throw InputError(fmt::format("source '{}': the reference answerer must be one of {}", text,
                                   quoted_names<investalign::Answerer>()));
    c.source = "reference";
    c.description = fmt::format("reference answerer {}", to_name(*answerer));
    c.sets = {inference + "backend=reference", fmt::format("{}answerer={}", inference, to_name(*answerer))};
    if (c.label.empty()) c.label = std::string(to_name(*answerer));
  } else {
    const std::vector<std::string> parts = split(spec, '+');
    c.source = "model";
    require_file(parts.front(), "model", text);
    std::string lora = "[";
    std::string label = fs::path(parts.front()).stem().string();
    for (std::size_t i = 1; i < parts.size(); ++i) {
      require_file(parts[i], "LoRA adapter", text);
      lora += (i > 1 ? ", " : "") + toml_string(parts[i]);
      label += "+" + fs::path(parts[i]).stem().string();
    }
    lora += "]";
    c.description = fmt::format(
        "model {}{} (backend {})", parts.front(),
        parts.size() > 1 ? fmt::format(" with adapter(s) {}", spec.substr(parts.front().size() + 1))
                         : std::string(),
        f.backend);
    c.sets = {inference + "backend=" + toml_string(f.backend),
              inference + "model=" + toml_string(parts.front()), inference + "lora=" + lora};
    if (c.label.empty()) c.label = label;
  }
  if (!valid_label(c.label))
    throw InputError(
        fmt::format("source '{}': the column label '{}' may hold only letters, digits and . _ - +; "
                    "name it with LABEL=",
                    text, c.label));
  return c;
}

std::vector<Column> columns_of(const EvaluateFlags& f) {
  std::vector<Column> out;
  for (const auto& s : f.sources) out.push_back(parse_source(s, f));
  if (f.answerers != "none") {
    for (const auto& name : split(f.answerers, ',')) out.push_back(parse_source("reference:" + name, f));
  }
  if (out.empty()) throw InputError("nothing to evaluate: give a SOURCE or leave the reference answerers on");
  for (std::size_t i = 0; i < out.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (out[i].label == out[j].label)
        throw InputError(
            fmt::format("two columns are labelled '{}'; name them with LABEL=SOURCE", out[i].label));
    }
  }
  return out;
}

std::vector<const ProblemRun*> problems_of(const EvaluateFlags& f) {
  std::vector<const ProblemRun*> out;
  for (auto name : split(f.problems, ',')) {
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::toupper(c); });
    const auto it = std::find_if(std::begin(kProblems), std::end(kProblems),
                                 [&](const ProblemRun& p) { return name == p.name; });
    if (it == std::end(kProblems))
      throw InputError(fmt::format("--problems: '{}' is not one of P3, P1, P2", name));
    if (std::find(out.begin(), out.end(), &*it) == out.end()) out.push_back(&*it);
  }
  return out;
}

/// True when `path` holds the finished run of these specs (skip it); false when there is no such file.
/// InputError when it holds something else: a run of another configuration, or a file that is not a
/// complete run file (which the safe commit never leaves under the final name).
bool finished(const std::string& path, const std::string& scenario, const std::vector<std::string>& sets) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return false;
  const std::vector<sim::ScenarioSpec> specs = io::load_scenario(scenario, sets);
  try {
    const io::RunFile file(path);
    bool same = file.info().scenario == specs.front().text && file.info().groups.size() == specs.size();
    for (std::size_t i = 0; same && i < specs.size(); ++i)
      same = file.group(file.info().groups[i]).sweep_point == sweep_label(specs[i]);
    if (same) return true;
  } catch (const IoError& e) {
    throw InputError(fmt::format("{} cannot be resumed: {}; remove it or run with --redo", path, e.what()));
  }
  throw InputError(
      fmt::format("{} holds a run of another configuration (its scenario or seeds differ); choose another -o "
                  "or run with --redo",
                  path));
}

/// Whether the ranks have started taking jobs: a failure after that stops every rank (the others may wait
/// for this one); before it, every rank finds the same bad input and stops alone.
bool started = false;

int run_evaluation(const EvaluateFlags& f, const std::string& command_line) {
  const std::vector<Column> columns = columns_of(f);
  const std::vector<const ProblemRun*> problems = problems_of(f);
  for (const auto* p : problems) {
    const std::string scenario = (fs::path(f.scenarios) / p->scenario).string();
    std::error_code ec;
    if (!fs::is_regular_file(scenario, ec))
      throw InputError(fmt::format("--scenarios: {} has no {}", f.scenarios, p->scenario));
  }
  std::error_code ec;
  if (fs::exists(f.output, ec) && !fs::is_directory(f.output, ec))
    throw InputError(fmt::format("-o: {} exists and is not a folder", f.output));
  fs::create_directories(f.output, ec);
  if (ec) throw InputError(fmt::format("-o: cannot create the folder {}: {}", f.output, ec.message()));

  const std::size_t jobs = columns.size() * problems.size();
  io::Evaluation report;
  report.herdsim_version = HERDSIM_VERSION;
  report.population = f.population;
  for (const auto* p : problems) report.problems.emplace_back(p->name);
  for (const auto& c : columns) {
    const fs::path folder = fs::path(f.output) / c.label;
    fs::create_directories(folder, ec);
    if (ec)
      throw InputError(fmt::format("-o: cannot create the folder {}: {}", folder.string(), ec.message()));
  }
  // Job j is column j / problems, problem j % problems (the report's order). Each run's flags:
  const auto run_flags = [&](std::size_t j) {
    const Column& c = columns[j / problems.size()];
    const ProblemRun* p = problems[j % problems.size()];
    RunFlags run;
    run.scenario = (fs::path(f.scenarios) / p->scenario).string();
    run.output = (fs::path(f.output) / c.label / p->run_file).string();
    run.threads = f.threads;
    // The step bar on a terminal; logs get one line per problem (below).
    run.quiet = f.quiet || isatty(STDERR_FILENO) == 0;
    run.run_lines = false;
    run.one_process = true;  // under mpirun, whole runs go to the ranks (below)
    if (!f.no_cache) run.decision_cache = f.cache.empty() ? (fs::path(f.output) / "cache").string() : f.cache;
    run.label = fmt::format("[{}/{}] {} {}: ", j + 1, jobs, c.label, p->name);
    run.sets = f.sets;
    if (!f.seeds.empty()) {
      std::string list;
      for (const auto s : f.seeds) list += fmt::format("{}{}", list.empty() ? "" : ", ", s);
      run.sets.push_back(fmt::format("sweep.run.seed=[{}]", list));
    }
    run.sets.insert(run.sets.end(), c.sets.begin(), c.sets.end());
    if (c.source == "replay") {
      std::error_code exists;
      const std::string file =
          fs::is_directory(c.replay, exists) ? (fs::path(c.replay) / p->run_file).string() : c.replay;
      run.sets.push_back(fmt::format("population.{}.inference.replay={}", f.population, toml_string(file)));
    }
    return run;
  };
  const auto score_of = [&](std::size_t j) {
    const RunFlags run = run_flags(j);
    const ProblemRun* p = problems[j % problems.size()];
    io::ProblemScore score = io::score_run_file(run.output, f.population, HERDSIM_VERSION);
    score.run_file = (fs::path(columns[j / problems.size()].label) / p->run_file).string();
    if (score.problem != p->name)
      throw InputError(fmt::format("{}: population '{}' is scored against {}, not {} (scenario {})",
                                   run.output, f.population, score.problem, p->name, run.scenario));
    return score;
  };
  // The jobs are independent: under mpirun each goes to the next rank that is free (docs/cluster.md), which
  // runs it on its own; one process takes them in order. Rank 0 writes the report once every rank is done.
  dist::Communicator& world = dist::world();
  std::vector<std::optional<io::ProblemScore>> scores(jobs);
  int code = 0;
  world.start_tasks(static_cast<int>(jobs));
  started = true;
  for (int task = world.next_task(); task >= 0; task = world.next_task()) {
    const auto j = static_cast<std::size_t>(task);
    const RunFlags run = run_flags(j);
    const bool skip = !f.redo && finished(run.output, run.scenario, run.sets);
    if (!skip) {
      code = run_scenario(run, command_line);
      if (code != 0) {
        std::cerr << fmt::format(
            "herdsim evaluate: stopped at {} {}; finished problems are kept and a "
            "rerun of the same command skips them\n",
            columns[j / problems.size()].label, problems[j % problems.size()]->name);
        break;
      }
    }
    scores[j] = score_of(j);
    if (!f.quiet) {
      const io::ProblemScore& score = *scores[j];
      fmt::print(stderr, "{}{} run(s), MSE {:.4g} (amount), {:.4g} (pp), {}/{} answers valid; {}{}\n",
                 run.label, score.runs, score.mse_amount, score.mse_pp, score.valid, score.requests,
                 run.output, skip ? " (finished before: skipped)" : "");
    }
  }
  code = world.max_over_ranks(code);
  if (code != 0) return code;
  if (world.rank() != 0) return 0;
  for (std::size_t j = 0; j < jobs; ++j) {
    if (j % problems.size() == 0)
      report.columns.push_back({columns[j / problems.size()].label,
                                columns[j / problems.size()].source,
                                columns[j / problems.size()].description,
                                {}});
    report.columns.back().problems.push_back(scores[j] ? std::move(*scores[j]) : score_of(j));
  }
  report.created = io::utc_now_iso8601();
  const std::string md = (fs::path(f.output) / "report.md").string();
  const std::string json = (fs::path(f.output) / "report.json").string();
  io::write_output_text(json, io::evaluation_json(report), "report");
  io::write_output_text(md, io::evaluation_markdown(report), "report");
  fmt::print("herdsim evaluate: {} column(s) x {} problem(s); wrote {} and {}\n", columns.size(),
             problems.size(), md, json);
  return 0;
}

}  // namespace

void add_evaluate_command(CLI::App& app, int argc, char** argv) {
  auto flags = std::make_shared<EvaluateFlags>();
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);
  CLI::App* cmd = app.add_subcommand(
      "evaluate",
      "InvestAlign transfer study: P3, P1, P2 for each answer source and the reference answerers, one report "
      "(docs/investagents.md)");
  cmd->add_option(
      "SOURCE", flags->sources,
      "[LABEL=]MODEL.gguf[+ADAPTER.gguf...] | [LABEL=]replay:RUN.h5|DIR | [LABEL=]reference:ANSWERER; "
      "each a column");
  cmd->add_option("-o,--output", flags->output,
                  "report folder: LABEL/p3.h5, p1.h5, p2.h5, report.md, report.json")
      ->required();
  cmd->add_option(
         "--answerers", flags->answerers,
         "reference answerers as columns (comma list of p3_closed_form, advisor, merton, own_theory; "
         "'none')")
      ->capture_default_str();
  cmd->add_option("--problems", flags->problems, "comma list of P3, P1, P2")->capture_default_str();
  cmd->add_option("--seeds", flags->seeds, "run seeds (default: the scenarios' ten)")->delimiter(',');
  cmd->add_option("--backend", flags->backend, "inference plugin of the MODEL sources")
      ->capture_default_str();
  cmd->add_option("--set", flags->sets,
                  "override a scenario key in every run: --set population.investors.inference.threads=2");
  cmd->add_option("--scenarios", flags->scenarios,
                  "folder with p3_absolute.toml, p1_relative.toml, p2_mutual.toml")
      ->capture_default_str();
  cmd->add_option("--population", flags->population, "the investagent population of the scenarios")
      ->capture_default_str();
  cmd->add_option("--threads", flags->threads, "worker threads (0: all; results do not depend on it)")
      ->check(CLI::Range(0, sim::kMaxThreads));
  cmd->add_option(
      "--cache", flags->cache,
      "decision cache folder of the model sources (default: DIR/cache; share one across studies)");
  cmd->add_flag("--no-cache", flags->no_cache, "decide every model request again (no decision cache)");
  cmd->add_flag("--redo", flags->redo, "run every problem again (default: a finished problem is skipped)");
  cmd->add_flag("-q,--quiet", flags->quiet, "no progress or per-problem lines");
  cmd->callback([flags, command_line]() {
    int code = 0;
    std::ostringstream message;
    try {
      code = run_evaluation(*flags, command_line);
    } catch (const io::ScenarioFileError& e) {
      message << e.what() << "\nherdsim evaluate: " << e.problems().size() << " problem(s) in " << e.source()
              << "\n";
      code = 2;
    } catch (const InputError& e) {
      message << "herdsim evaluate: " << e.what() << "\n";
      code = 2;
    } catch (const ScenarioError& e) {
      message << "herdsim evaluate: " << e.what() << "\n";
      code = 2;
    } catch (const Error& e) {
      message << "herdsim evaluate: failed: " << e.what() << "\n";
      code = 1;
    }
    dist::Communicator& world = dist::world();
    // Before the jobs, every rank found the same problem: rank 0 says it. After, only this rank did, and
    // the others may be waiting for it: it says why and stops them all.
    if (!started && world.rank() == 0) std::cerr << message.str();
    if (started && !message.str().empty()) {
      std::cerr << message.str();
      if (world.size() > 1) {
        std::cerr << fmt::format("herdsim evaluate: rank {} of {} failed; stopping every rank\n",
                                 world.rank(), world.size())
                  << std::flush;
        world.abort(code);
      }
    }
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace herdsim::cli
