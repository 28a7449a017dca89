#include "tools/cli/run_command.hpp"

#include <fmt/format.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agents/registry.hpp"
#include "dist/communicator.hpp"
#include "io/hdf5_output.hpp"
#include "io/master_file.hpp"
#include "io/output_file.hpp"
#include "io/replay_backend.hpp"
#include "io/scenario_toml.hpp"
#include "sim/error.hpp"
#include "sim/inference/backend.hpp"
#include "sim/memory.hpp"
#include "sim/plural.hpp"
#include "sim/recording_plan.hpp"
#include "sim/setup.hpp"
#include "sim/simulation.hpp"
#include "tools/cli/agent_split.hpp"
#include "tools/cli/path_split.hpp"
#include "tools/cli/progress.hpp"
#include "tools/cli/shared_backend.hpp"

#ifndef HERDSIM_VERSION
#define HERDSIM_VERSION "unknown"
#endif

namespace herdsim::cli {

namespace {

std::atomic<bool> g_cancel{false};
std::atomic<int> g_signal{0};

/// SIGINT, SIGTERM and SIGHUP (Ctrl-C, `timeout`, Slurm time limits, `docker stop`, a closed terminal)
/// stop the run between steps: the .partial file is flushed and closed with complete = 0 and the exit
/// status is 128 + the signal. A second signal takes the default action (the handler resets itself);
/// the file is then readable up to its last periodic flush.
extern "C" void on_stop_signal(int signal) {
  g_signal.store(signal);
  g_cancel.store(true);
}

constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP};

/// Installs on_stop_signal for the stop signals while alive; restores the previous handlers after.
class StopSignals {
 public:
  StopSignals() {
    g_cancel.store(false);
    g_signal.store(0);
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;
    for (std::size_t i = 0; i < std::size(kStopSignals); ++i)
      sigaction(kStopSignals[i], &action, &previous_[i]);
  }
  ~StopSignals() {
    for (std::size_t i = 0; i < std::size(kStopSignals); ++i)
      sigaction(kStopSignals[i], &previous_[i], nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction previous_[std::size(kStopSignals)]{};
};

/// "N requests (M invalid), P prompt tokens (C cached), G completion tokens, S s inference".
std::string accounting_text(const sim::InferenceLog& log) {
  return fmt::format(
      "inference: {} requests ({} invalid{}), {} prompt tokens ({} cached), {} completion tokens, "
      "{:.2f} s",
      log.requests, log.invalid,
      log.cache_hits > 0 ? fmt::format(", {} from the decision cache", log.cache_hits) : std::string(),
      log.prompt_tokens, log.cached_tokens, log.completion_tokens, log.seconds);
}

/// Inference totals over every LLM-backed population of every run.
struct Accounting {
  bool any = false;
  sim::InferenceLog total;
  void add(const sim::InferenceLog& log) {
    any = true;
    total.requests += log.requests;
    total.invalid += log.invalid;
    total.prompt_tokens += log.prompt_tokens;
    total.cached_tokens += log.cached_tokens;
    total.completion_tokens += log.completion_tokens;
    total.cache_hits += log.cache_hits;
    total.seconds += log.seconds;
  }
};

/// What the runs of one command add up to.
struct Totals {
  double agent_steps = 0.0;
  double seconds = 0.0;
  double setup_seconds = 0.0;
  Accounting accounting;
};

/// Runs point i of `specs` (set up already, in setup_seconds) and records it into `file`: group "/" for a
/// single run, "/sweep_NNN" for a sweep point (the same name on one process and on every rank).
void run_point(const RunFlags& f, const std::vector<sim::ScenarioSpec>& specs, std::size_t i,
               std::unique_ptr<sim::Simulation> simulation, double setup_seconds, io::Hdf5Output& file,
               Totals& totals) {
  const sim::ScenarioSpec& spec = specs[i];
  const std::string group = specs.size() == 1 ? "/" : fmt::format("/sweep_{:03d}", i);
  const std::string label =
      f.label + (specs.size() == 1 ? std::string("run") : fmt::format("run {}/{}", i + 1, specs.size()));
  totals.setup_seconds += setup_seconds;
  for (const auto& warning : simulation->warnings()) std::cerr << "herdsim run: warning: " << warning << '\n';
  const sim::RecordingPlan plan(spec.record, simulation->state_without_amounts());
  std::unique_ptr<sim::Observer> recorder;
  if (plan.enabled()) {
    recorder = file.recorder(group, plan, sweep_label(spec));
    simulation->add_observer(recorder.get());
  }
  Progress progress(label, f.quiet || dist::world().size() > 1);  // ranks interleave: run lines only
  sim::RunOptions options;
  options.threads = f.threads;
  options.cancel = &g_cancel;
  options.progress = [&](int done, int total) { progress.update(done, total); };
  const sim::RunSummary summary = simulation->run(options);
  progress.finish();
  totals.agent_steps += summary.agent_steps;
  totals.seconds += summary.seconds;
  if (!f.quiet && f.run_lines) {
    std::string phases;
    for (const auto& ph : summary.phases) phases += fmt::format(" {} {:.2f}s", ph.name, ph.seconds);
    fmt::print(stderr, "{}{}: set-up {:.2f} s; {:.3g} agent-steps in {:.2f} s = {:.3g} agent-steps/s{}{}\n",
               label, sweep_label(spec).empty() ? "" : " (" + sweep_label(spec) + ")", setup_seconds,
               summary.agent_steps, summary.seconds, summary.agent_steps / std::max(summary.seconds, 1e-9),
               summary.fused ? " [fused kernel]" : "", summary.fused ? "" : " [" + phases.substr(1) + "]");
    std::size_t width = 16;  // names longer than the usual ones widen the column, not shift the rows
    for (const auto& pop : simulation->state_without_amounts().populations)
      width = std::max(width, pop.name.size());
    for (const auto& pop : simulation->state_without_amounts().populations) {
      fmt::print(stderr, "  {:<{}} {:>16}  final wealth mean {:.4f}\n", pop.name, width,
                 sim::counted(pop.count, "agent"), pop.wealth.mean());
      if (pop.inference) fmt::print(stderr, "  {:<{}} {}\n", "", width, accounting_text(*pop.inference));
    }
  }
  for (const auto& pop : simulation->state_without_amounts().populations) {
    if (pop.inference) totals.accounting.add(*pop.inference);
  }
}

/// The parts of earlier runs into the same output: no committed master points at them any more.
void remove_older_parts(const std::filesystem::path& parts) {
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(parts.parent_path(), ignored)) {
    if (entry.path().filename().string().rfind("run-", 0) == 0 && entry.path() != parts)
      std::filesystem::remove_all(entry.path(), ignored);
  }
}

/// What `mpirun -np ranks` splits, before the memory check (docs/cluster.md): --split agents, paths or
/// sweep as given; auto: the paths of every run when there are fewer runs than ranks, else the sweep
/// points (a run too large for one rank when split by paths is then split by agents: run_scenario).
std::string chosen_split(const RunFlags& f, std::size_t runs, int ranks) {
  if (f.split != "auto") return f.split;
  return runs < static_cast<std::size_t>(ranks) ? "paths" : "sweep";
}

/// The memory estimate of the largest run of `specs` on one process, or, split by paths across `ranks`,
/// of one rank's largest block (ceil(paths / ranks)) plus, when it summarizes, one row of every agent on
/// every path of the largest population (SummaryGatherer). Each rank checks its own share: ranks that
/// share a node share its memory (docs/cluster.md).
double largest_run_bytes(const std::vector<sim::ScenarioSpec>& specs, int ranks) {
  double largest = 0.0;
  for (sim::ScenarioSpec spec : specs) {
    double gathered = 0.0;
    if (ranks > 1) {
      if (spec.record.enabled && spec.record.summaries)
        for (const auto& ps : spec.populations)
          gathered = std::max(gathered, 8.0 * static_cast<double>(ps.count) * spec.run.paths);
      spec.run.paths = std::max(1, (spec.run.paths + ranks - 1) / ranks);
    }
    largest = std::max(largest, sim::run_memory_bytes(spec) + gathered);
  }
  return largest;
}

/// Why the runs of `specs` cannot be split by paths across `ranks` ranks, or "" when they can.
std::string path_split_problem(const std::vector<sim::ScenarioSpec>& specs, int ranks) {
  for (const auto& spec : specs) {
    if (spec.run.paths < ranks)
      return fmt::format("run.paths = {} is fewer than the {} ranks: each rank needs a path", spec.run.paths,
                         ranks);
    if (spec.record.enabled && !spec.record.paths.empty())
      return "record.paths names recorded paths; a path split records every path (leave record.paths out)";
  }
  return {};
}

/// Rank 0 of a path or agent split: every part checked (complete, its groups, each consistent and holding
/// `paths(i, r)` paths of run i on rank r) before the master file reads it through virtual datasets, which
/// would read a missing part silently as fill; then OUTPUT committed as the master (the split populations'
/// agent blocks stitched along the agent axis when `agent_blocks` is given) and older parts removed.
/// Returns the master's path.
std::string commit_split_master(const std::vector<sim::ScenarioSpec>& specs,
                                const std::filesystem::path& parts_path,
                                std::unique_ptr<io::OutputFile> claimed,
                                const io::Hdf5Output::Provenance& provenance, int ranks,
                                const std::function<int(std::size_t, int)>& paths,
                                const std::vector<io::SummaryValues>& summaries,
                                const std::vector<io::AgentBlocks>* agent_blocks) {
  const std::size_t n = specs.size();
  const auto group = [&](std::size_t i) {
    return n == 1 ? std::string("/") : fmt::format("/sweep_{:03d}", i);
  };
  int schema_version = 0;
  std::vector<std::vector<io::PathPart>> stitched(n);
  const std::string folder = (parts_path.parent_path().filename() / parts_path.filename()).string();
  for (int r = 0; r < ranks; ++r) {
    const std::string name = fmt::format("rank-{}.h5", r);
    std::vector<io::ExpectedGroup> expected;
    for (std::size_t i = 0; i < n; ++i) {
      const sim::ScenarioSpec& spec = specs[i];
      if (!spec.record.enabled) continue;
      expected.push_back({group(i), sweep_label(spec), spec.run.steps(), paths(i, r)});
      stitched[i].push_back({folder + "/" + name, (parts_path / name).string(), paths(i, r)});
    }
    schema_version = std::max(schema_version, io::check_part((parts_path / name).string(), expected));
  }
  io::Hdf5Output master(std::move(claimed), provenance);
  for (std::size_t i = 0; i < n; ++i) {
    if (!specs[i].record.enabled) continue;
    master.stitch_group(group(i), stitched[i], summaries[i], schema_version,
                        agent_blocks != nullptr ? &(*agent_blocks)[i] : nullptr);
  }
  master.commit();
  remove_older_parts(parts_path);
  return master.path();
}

/// The path split (docs/cluster.md): every rank runs its fixed block of every run's paths (path_block; the
/// RNG is keyed by the global path) and records it into its part under the one-process group names, while
/// SummaryGatherer computes the summaries over every path on rank 0. Rank 0 then checks every part and
/// commits OUTPUT as a master file whose run groups stitch the parts with virtual datasets.
int run_path_split(const RunFlags& f, const std::vector<sim::ScenarioSpec>& specs, const std::string& parts,
                   std::unique_ptr<io::OutputFile> claimed, const io::Hdf5Output::Provenance& provenance,
                   dist::Communicator& world) {
  const int n = static_cast<int>(specs.size());
  const std::filesystem::path parts_path(parts);
  io::Hdf5Output part((parts_path / fmt::format("rank-{}.h5", world.rank())).string(), provenance);
  // LLM populations: each rank's own backend (its GPU by local rank) decides its paths' requests, and the
  // path-independent ones are shared out among the ranks (tools/cli/shared_backend.hpp).
  const auto decided = std::make_shared<std::int64_t>(0);
  const inference::BackendFactory backends = shared_backend_factory(
      io::default_backend_factory(f.decision_cache, world.local_rank()), world, decided);
  const sim::ScopedSetupMonitor setup_monitor({&g_cancel, nullptr});
  Totals totals;
  std::vector<sim::ScenarioSpec> blocks = specs;
  std::vector<io::SummaryValues> summaries(specs.size());
  RunFlags flags = f;
  flags.label = fmt::format("{}rank {}/{}: ", f.label, world.rank(), world.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const PathBlock block = path_block(specs[i].run.paths, world.rank(), world.size());
    blocks[i].run.paths = block.count;
    blocks[i].run.first_path = block.first;
    // The master reads its summaries' layout from rank 0's part and their values from SummaryGatherer: the
    // other parts need not summarize their blocks (work rank 0 would wait for at the next row).
    if (world.rank() != 0) blocks[i].record.summaries = false;
    const auto t0 = std::chrono::steady_clock::now();
    auto simulation = agents::make_simulation(blocks[i], backends);
    const double setup_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::unique_ptr<SummaryGatherer> gatherer;
    if (blocks[i].record.enabled) {
      const std::string group = n == 1 ? "/" : fmt::format("/sweep_{:03d}", i);
      gatherer = std::make_unique<SummaryGatherer>(
          sim::RecordingPlan(specs[i].record, simulation->state_without_amounts()), group, world);
      simulation->add_observer(gatherer.get());
    }
    run_point(flags, blocks, i, std::move(simulation), setup_seconds, part, totals);
    if (gatherer) summaries[i] = gatherer->values();
  }
  part.commit();
  if (!f.quiet && totals.accounting.any)
    fmt::print(stderr, "{}rank {}/{}: decided {} inference requests\n", f.label, world.rank(), world.size(),
               *decided);
  (void)world.max_over_ranks(0);  // every part is committed
  if (world.rank() != 0) return 0;

  const std::string master = commit_split_master(
      specs, parts_path, std::move(claimed), provenance, world.size(),
      [&](std::size_t i, int r) { return path_block(specs[i].run.paths, r, world.size()).count; }, summaries,
      nullptr);
  if (!f.run_lines && f.quiet) return 0;
  fmt::print(
      f.run_lines ? stdout : stderr,
      "{}: {} split by paths on {} ranks ({}), {:.3g} agent-steps on rank 0; wrote {} (virtual datasets "
      "over {}/)\n",
      f.scenario, sim::counted(static_cast<long long>(n), "run"), world.size(), world.describe(),
      totals.agent_steps, master, parts);
  return 0;
}

/// The agent split (docs/cluster.md): every rank runs every path of every run with its block of each split
/// population (sim::agent_split_block; the RNG is keyed by the global agent) and the others whole; the
/// market's flow is exchanged every step (CommunicatorExchange) and SummaryGatherer computes the summaries
/// over every agent. Rank 0 then checks every part and commits OUTPUT as a master file whose run groups
/// stitch the parts along the agent axis of the split populations.
int run_agent_split(const RunFlags& f, const std::vector<sim::ScenarioSpec>& specs, const std::string& parts,
                    std::unique_ptr<io::OutputFile> claimed, const io::Hdf5Output::Provenance& provenance,
                    dist::Communicator& world) {
  const int n = static_cast<int>(specs.size());
  const std::filesystem::path parts_path(parts);
  io::Hdf5Output part((parts_path / fmt::format("rank-{}.h5", world.rank())).string(), provenance);
  const inference::BackendFactory backends = io::default_backend_factory(f.decision_cache);
  const sim::ScopedSetupMonitor setup_monitor({&g_cancel, nullptr});
  Totals totals;
  std::vector<sim::ScenarioSpec> blocks;
  std::vector<io::SummaryValues> summaries(specs.size());
  std::vector<io::AgentBlocks> agent_blocks(specs.size());
  CommunicatorExchange exchange(world);
  int steps = 0;
  RunFlags flags = f;
  flags.label = fmt::format("{}rank {}/{}: ", f.label, world.rank(), world.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const std::vector<bool> split = agent_split_populations(specs[i], world.size());
    std::vector<std::vector<int>> layout(specs[i].populations.size());
    for (std::size_t j = 0; j < split.size(); ++j) {
      if (!split[j]) continue;
      for (int r = 0; r < world.size(); ++r)
        layout[j].push_back(sim::agent_block(specs[i].populations[j].count, r, world.size()).count);
      agent_blocks[i][specs[i].populations[j].name] = layout[j];
    }
    blocks.push_back(sim::agent_split_block(specs[i], split, world.rank(), world.size()));
    // The master reads its summaries' layout from rank 0's part and their values from SummaryGatherer.
    if (world.rank() != 0) blocks.back().record.summaries = false;
  }
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto simulation = agents::make_simulation(blocks[i], backends);
    const double setup_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    simulation->set_agent_exchange(&exchange);
    std::vector<std::vector<int>> layout(specs[i].populations.size());
    for (std::size_t j = 0; j < layout.size(); ++j) {
      if (const auto it = agent_blocks[i].find(specs[i].populations[j].name); it != agent_blocks[i].end())
        layout[j] = it->second;
    }
    std::unique_ptr<SummaryGatherer> gatherer;
    if (blocks[i].record.enabled) {
      const std::string group = n == 1 ? "/" : fmt::format("/sweep_{:03d}", i);
      gatherer = std::make_unique<SummaryGatherer>(
          sim::RecordingPlan(specs[i].record, simulation->state_without_amounts()), group, world,
          std::move(layout));
      simulation->add_observer(gatherer.get());
    }
    run_point(flags, blocks, i, std::move(simulation), setup_seconds, part, totals);
    if (gatherer) summaries[i] = gatherer->values();
    steps += specs[i].run.steps();
  }
  part.commit();
  (void)world.max_over_ranks(0);  // every part is committed
  if (world.rank() != 0) return 0;

  const std::string master = commit_split_master(
      specs, parts_path, std::move(claimed), provenance, world.size(),
      [&](std::size_t i, int) { return specs[i].run.paths; }, summaries, &agent_blocks);
  if (!f.run_lines && f.quiet) return 0;
  fmt::print(
      f.run_lines ? stdout : stderr,
      "{}: {} split by agents on {} ranks ({}), {:.3g} agent-steps on rank 0; agent exchange on rank 0: "
      "{} exchanges in {} steps, {:.0f} bytes and {:.3g} ms per step; wrote {} (virtual datasets over "
      "{}/)\n",
      f.scenario, sim::counted(static_cast<long long>(n), "run"), world.size(), world.describe(),
      totals.agent_steps, exchange.exchanges(), steps, exchange.bytes_received() / std::max(steps, 1),
      1e3 * exchange.seconds() / std::max(steps, 1), master, parts);
  return 0;
}

/// `mpirun -np N herdsim run` (docs/cluster.md): the sweep points go to the ranks as they finish
/// (dynamic assignment); each rank records its points into OUTPUT.parts/run-XXXXXX/rank-K.h5 with the serial
/// writer under the group names of the one-process file; rank 0 checks every part and commits OUTPUT as a
/// master file of external links. Bad input is agreed on by every rank before any work (exit 2 everywhere);
/// any later failure on any rank is reported by that rank and stops every rank (Communicator::abort), so no
/// rank waits forever and no master file is committed.
int run_distributed(const RunFlags& f, const std::string& command_line,
                    const std::vector<sim::ScenarioSpec>& specs, const std::string& split,
                    dist::Communicator& world) {
  const bool root = world.rank() == 0;
  const int n = static_cast<int>(specs.size());
  // Every rank read the same scenario: all decide alike and return alike here, no collective needed.
  const bool by_paths = split == "paths";
  const bool by_agents = split == "agents";
  if (by_agents) {
    if (const std::string problem = agent_split_problem(specs, world.size()); !problem.empty()) {
      if (root)
        std::cerr << "herdsim run: " << f.scenario << ": cannot split the agents across " << world.size()
                  << " ranks: " << problem << " (docs/cluster.md)\nherdsim run: nothing was run\n";
      return 2;
    }
  }
  if (split == "sweep" && n == 1) {
    if (root)
      std::cerr << "herdsim run: " << f.scenario << " is one run: --split sweep needs a sweep "
                << "(docs/cluster.md); leave --split out to split its paths\nherdsim run: nothing was run\n";
    return 2;
  }
  if (by_paths) {
    if (const std::string problem = path_split_problem(specs, world.size()); !problem.empty()) {
      if (root)
        std::cerr << "herdsim run: " << f.scenario << ": cannot split the paths across " << world.size()
                  << " ranks: " << problem << " (docs/cluster.md)\nherdsim run: nothing was run\n";
      return 2;
    }
  }
  const std::string output =
      f.output.empty() ? std::filesystem::path(f.scenario).stem().string() + ".h5" : f.output;
  std::unique_ptr<io::OutputFile> claimed;
  // The parts go to a folder of their own for this run, OUTPUT.parts/run-XXXXXX: a master file committed
  // earlier keeps pointing at its own parts until the new master replaces it.
  std::string parts;
  int code = 0;
  if (root) {
    try {
      claimed = std::make_unique<io::OutputFile>(output, io::OutputFile::OnFailure::remove, "output",
                                                 std::vector{f.scenario});
      const std::filesystem::path folder = claimed->path() + ".parts";
      std::filesystem::create_directories(folder);
      std::string pattern = (folder / "run-XXXXXX").string();
      if (mkdtemp(pattern.data()) == nullptr)
        throw InputError(
            fmt::format("cannot make a folder in {}: {}", folder.string(), std::strerror(errno)));
      parts = pattern;
    } catch (const InputError& e) {
      std::cerr << "herdsim run: " << e.what() << "\nherdsim run: nothing was run\n";
      code = 2;
    } catch (const std::filesystem::filesystem_error& e) {
      std::cerr << "herdsim run: cannot make the parts folder: " << e.what()
                << "\nherdsim run: nothing was run\n";
      code = 2;
    }
  }
  if (world.max_over_ranks(code) != 0) return 2;
  parts = world.broadcast_from_root(parts);
  const io::Hdf5Output::Provenance provenance{HERDSIM_VERSION, specs.front().run.seed, specs.front().text,
                                              command_line};
  if (by_paths) return run_path_split(f, specs, parts, std::move(claimed), provenance, world);
  if (by_agents) return run_agent_split(f, specs, parts, std::move(claimed), provenance, world);
  const std::string part_name = fmt::format("rank-{}.h5", world.rank());
  io::Hdf5Output part((std::filesystem::path(parts) / part_name).string(), provenance);

  // Each rank its own backends, on its GPU by local rank; each point is decided entirely by one rank.
  const inference::BackendFactory backends =
      io::default_backend_factory(f.decision_cache, world.local_rank());
  const sim::ScopedSetupMonitor setup_monitor({&g_cancel, nullptr});
  Totals totals;
  std::vector<int> mine;
  world.start_tasks(n);
  for (int i = world.next_task(); i >= 0; i = world.next_task()) {
    const auto t0 = std::chrono::steady_clock::now();
    auto simulation = agents::make_simulation(specs[static_cast<std::size_t>(i)], backends);
    const double setup_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    RunFlags flags = f;
    flags.label = fmt::format("{}rank {}/{}: ", f.label, world.rank(), world.size());
    run_point(flags, specs, static_cast<std::size_t>(i), std::move(simulation), setup_seconds, part, totals);
    mine.push_back(i);
  }
  part.commit();
  const std::vector<std::vector<int>> taken = world.gather_to_root(mine);
  if (!root) return 0;

  // Rank 0: every part checked (complete, exactly its points, each consistent and the run it should be)
  // before the master file links it; each point must have been run exactly once.
  std::vector<std::string> link_file(specs.size());
  int schema_version = 0;
  for (std::size_t r = 0; r < taken.size(); ++r) {
    std::vector<io::ExpectedGroup> expected;
    const std::string name = fmt::format("rank-{}.h5", r);
    for (const int i : taken[r]) {
      const sim::ScenarioSpec& spec = specs[static_cast<std::size_t>(i)];
      if (!link_file[static_cast<std::size_t>(i)].empty())
        throw Error(fmt::format("sweep point {} was run twice (ranks' parts {} and {})", i,
                                link_file[static_cast<std::size_t>(i)], name));
      link_file[static_cast<std::size_t>(i)] = name;
      if (spec.record.enabled)
        expected.push_back(
            {fmt::format("/sweep_{:03d}", i), sweep_label(spec), spec.run.steps(), spec.run.paths});
    }
    schema_version =
        std::max(schema_version, io::check_part((std::filesystem::path(parts) / name).string(), expected));
  }
  io::Hdf5Output master(std::move(claimed), provenance);
  const std::filesystem::path parts_path(parts);
  const std::string folder =
      (parts_path.parent_path().filename() / parts_path.filename()).string();  // relative to the master
  for (int i = 0; i < n; ++i) {
    const std::string group = fmt::format("/sweep_{:03d}", i);
    if (link_file[static_cast<std::size_t>(i)].empty())
      throw Error(fmt::format("sweep point {} was not run", i));
    if (!specs[static_cast<std::size_t>(i)].record.enabled) continue;
    master.link_group(group, folder + "/" + link_file[static_cast<std::size_t>(i)], group, schema_version);
  }
  master.commit();
  remove_older_parts(parts_path);
  if (!f.run_lines && f.quiet) return 0;
  fmt::print(f.run_lines ? stdout : stderr,
             "{}: {} on {} ranks ({}), {:.3g} agent-steps on rank 0; wrote {} (links into {}/)\n", f.scenario,
             sim::counted(static_cast<long long>(n), "run"), world.size(), world.describe(),
             totals.agent_steps, master.path(), parts);
  return 0;
}

int run_scenario_unguarded(const RunFlags& f, const std::string& command_line) {
  std::vector<sim::ScenarioSpec> specs;
  try {
    specs = io::load_scenario(f.scenario, f.sets);
  } catch (const io::ScenarioFileError& e) {
    std::cerr << e.what() << "\nherdsim run: " << e.problems().size() << " problem(s) in " << f.scenario
              << "; nothing was run\n";
    return 2;
  }
  // Sizes before anything is allocated: the runs of a sweep run one after another, so the largest counts.
  const int ranks = f.one_process ? 1 : dist::world().size();
  std::string split = ranks > 1 ? chosen_split(f, specs.size(), ranks) : "none";
  const std::string scope = specs.size() == 1 ? "this run" : "the largest run of this sweep";
  const auto check_share = [&](const std::string& how) {
    if (how == "agents") {
      sim::check_memory(agent_split_bytes(specs, ranks), "one rank's block of agents of " + scope,
                        "--memory-limit GIB raises the limit", sim::memory_limit_bytes(f.memory_limit_gib));
      return;
    }
    const bool path_split = how == "paths";
    sim::check_memory(largest_run_bytes(specs, path_split ? ranks : 1),
                      path_split ? "one rank's block of " + scope : scope,
                      "--memory-limit GIB raises the limit", sim::memory_limit_bytes(f.memory_limit_gib));
  };
  std::string too_large;
  try {
    check_share(split);
  } catch (const InputError& e) {
    if (ranks == 1) throw;
    too_large = e.what();
    // auto: a run too large for one rank when split by paths is split by agents when it can be and fits.
    if (f.split == "auto" && split == "paths" && agent_split_problem(specs, ranks).empty()) {
      try {
        check_share("agents");
        split = "agents";
        too_large.clear();
      } catch (const InputError&) {
      }
    }
  }
  if (ranks > 1) {
    // Every rank checks its own memory (nodes may differ); all agree to stop before any work, and one
    // message is printed: rank 0's, or, where rank 0 had enough, each rank that had not.
    dist::Communicator& world = dist::world();
    // auto may have chosen the agent split on some ranks only (their memory): every rank splits alike.
    if (f.split == "auto" && world.max_over_ranks(split == "agents" ? 1 : 0) == 1 && split != "agents") {
      split = "agents";
      too_large.clear();
      try {
        check_share(split);
      } catch (const InputError& e) {
        too_large = e.what();
      }
    }
    const bool root_too_large = !world.broadcast_from_root(too_large).empty();
    if (world.max_over_ranks(too_large.empty() ? 0 : 2) != 0) {
      if (!too_large.empty() && (world.rank() == 0 || !root_too_large))
        std::cerr << "herdsim run: " << (world.rank() == 0 ? "" : fmt::format("rank {}: ", world.rank()))
                  << too_large << "\nherdsim run: nothing was run\n";
      return 2;
    }
    return run_distributed(f, command_line, specs, split, world);
  }
  const std::string output =
      f.output.empty() ? std::filesystem::path(f.scenario).stem().string() + ".h5" : f.output;
  // The output is checked and claimed before any work: a bad path or a second writer of the same output
  // is reported now, not after the run.
  std::unique_ptr<io::OutputFile> claimed;
  try {
    claimed = std::make_unique<io::OutputFile>(output, io::OutputFile::OnFailure::remove, "output",
                                               std::vector{f.scenario});
  } catch (const InputError& e) {
    std::cerr << "herdsim run: " << e.what() << "\nherdsim run: nothing was run\n";
    return 2;
  }

  // A run of one rank among several (herdsim evaluate under mpirun) uses its rank's GPU (docs/cluster.md).
  const inference::BackendFactory backends = io::default_backend_factory(
      f.decision_cache, dist::world().size() > 1 ? dist::world().local_rank() : -1);
  // Populations (and their inference backends) are built before the file exists: a missing model, plugin
  // or replay file is reported before anything runs or is written.
  // Set-up (plan solves, network games) shows progress on a terminal and stops on Ctrl-C like the steps.
  Progress setup_progress("set-up", f.quiet || isatty(STDERR_FILENO) == 0, "unit");
  const sim::ScopedSetupMonitor setup_monitor({&g_cancel, [&](std::string_view what, int done, int total) {
                                                 setup_progress.restart(fmt::format("set-up: {}", what));
                                                 setup_progress.update(done, total);
                                               }});
  auto set_up = [&](const sim::ScenarioSpec& spec, double& seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    auto simulation = agents::make_simulation(spec, backends);
    setup_progress.finish();
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return simulation;
  };
  std::unique_ptr<sim::Simulation> first;
  double first_setup_seconds = 0.0;
  try {
    first = set_up(specs.front(), first_setup_seconds);
  } catch (const sim::Interrupted& e) {
    const int signal = g_signal.load() != 0 ? g_signal.load() : SIGINT;
    std::cerr << "\nherdsim run: " << e.what() << " (" << strsignal(signal) << "); nothing was written\n";
    return 128 + signal;
  } catch (const SolverError&) {
    throw;  // a failed computation, not bad input
  } catch (const Error& e) {
    std::cerr << "herdsim run: " << e.what() << "\nherdsim run: nothing was run\n";
    return 2;
  }
  io::Hdf5Output file(std::move(claimed),
                      {HERDSIM_VERSION, specs.front().run.seed, specs.front().text, command_line});
  Totals totals;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    double setup_seconds = first_setup_seconds;
    auto simulation = i == 0 ? std::move(first) : set_up(specs[i], setup_seconds);
    run_point(f, specs, i, std::move(simulation), setup_seconds, file, totals);
  }
  file.commit();
  if (!f.run_lines && f.quiet) return 0;
  fmt::print(
      f.run_lines ? stdout : stderr,
      "{}: {}, set-up {:.2f} s, {:.3g} agent-steps in {:.2f} s ({:.3g} agent-steps/s){}; wrote {} "
      "({})\n",
      f.scenario, sim::counted(static_cast<long long>(specs.size()), "run"), totals.setup_seconds,
      totals.agent_steps, totals.seconds, totals.agent_steps / std::max(totals.seconds, 1e-9),
      totals.accounting.any ? fmt::format("; {}", accounting_text(totals.accounting.total)) : std::string(),
      file.path(), sim::format_bytes(static_cast<double>(file.bytes_written())));
  return 0;
}

}  // namespace

std::string sweep_label(const sim::ScenarioSpec& spec) {
  std::string out;
  for (const auto& [key, value] : spec.sweep_point)
    out += fmt::format("{}{}={:g}", out.empty() ? "" : ";", key, value);
  return out;
}

int run_scenario(const RunFlags& flags, const std::string& command_line) {
  int code = 0;
  bool failed = true;  // an exception, as opposed to a status every rank agreed on
  const StopSignals stop_signals;
  try {
    code = run_scenario_unguarded(flags, command_line);
    failed = false;
  } catch (const sim::Interrupted& e) {
    const int signal = g_signal.load() != 0 ? g_signal.load() : SIGINT;
    std::cerr << "\nherdsim run: " << e.what() << " (" << strsignal(signal)
              << "); the output was left as a .partial file (complete = 0)\n";
    code = 128 + signal;
  } catch (const InputError& e) {
    std::cerr << "herdsim run: " << e.what() << "\n";
    code = 2;
  } catch (const Error& e) {
    std::cerr << "herdsim run: failed: " << e.what() << "\n";
    code = 1;
  }
  // One rank of a distributed run failed: the others may be running or waiting for it in a collective,
  // so every rank is stopped now (its message above is the one the user sees; no master file is made).
  if (failed && dist::world().size() > 1) {
    std::cerr << fmt::format("herdsim run: rank {} of {} {}; stopping every rank\n", dist::world().rank(),
                             dist::world().size(), code > 128 ? "was stopped" : "failed")
              << std::flush;
    dist::world().abort(code);
  }
  return code;
}

void add_run_command(CLI::App& app, int argc, char** argv) {
  auto flags = std::make_shared<RunFlags>();
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);
  CLI::App* cmd = app.add_subcommand("run", "Run a scenario file and write its trajectories to HDF5");
  cmd->add_option("scenario", flags->scenario, "scenario file (TOML, docs/scenarios.md)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", flags->output,
                  "output HDF5 file (default: the scenario's name with .h5, here)");
  cmd->add_option("--threads", flags->threads, "worker threads (0: all; results do not depend on it)")
      ->check(CLI::Validator(
          [](const std::string& s) {
            int n = -1;
            const bool parsed = CLI::detail::lexical_cast(s, n);
            return parsed && n >= 0 && n <= sim::kMaxThreads
                       ? std::string()
                       : fmt::format("must be 0 (all cores) or a number of threads from 1 to {}, got {}",
                                     sim::kMaxThreads, s);
          },
          "0..4096"))
      ->capture_default_str();
  cmd->add_option("--memory-limit", flags->memory_limit_gib,
                  "refuse a run whose memory estimate exceeds this many GiB (0: the memory available now)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--set", flags->sets, "override a key: --set market.sigma=0.2 (repeatable)");
  cmd->add_option("--cache", flags->decision_cache,
                  "decision cache folder: model answers seen before (same model, adapters, prompt, sampling, "
                  "seed) are read from it, new ones added (default: none)");
  cmd->add_flag("-q,--quiet", flags->quiet, "no progress or per-run lines");
  cmd->add_option("--split", flags->split,
                  "under mpirun with several ranks: split the sweep points, the paths of every run, the "
                  "agents of the large populations, or auto (the sweep points when there are at least as "
                  "many as ranks, else the paths, or the agents when a rank's block of paths does not fit "
                  "in memory; docs/cluster.md)")
      ->check(CLI::IsMember({"auto", "sweep", "paths", "agents"}))
      ->capture_default_str();
  cmd->callback([flags, command_line]() {
    const int code = run_scenario(*flags, command_line);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace herdsim::cli
