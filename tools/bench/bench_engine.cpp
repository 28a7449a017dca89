// Engine benchmarks (issue 3): agent-steps per second against agents, paths and threads with
// recording off, summaries only and full trajectories; bytes per agent; HDF5 write throughput
// against the disk's plain sequential write speed; and, in the same run, the NumPy/SciPy baselines
// a researcher would otherwise write (tools/bench/numpy_baseline.py). Prints figures and ratios.
#include <tbb/info.h>
#include <unistd.h>

#include <fmt/format.h>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "agents/herd_agent.hpp"
#include "agents/merton_agent.hpp"
#include "agents/registry.hpp"
#include "io/hdf5_output.hpp"
#include "sim/recording_plan.hpp"
#include "sim/simulation.hpp"

using namespace herdsim;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

sim::ParamSpec constant(double v) {
  sim::ParamSpec p;
  p.value = v;
  return p;
}

sim::ParamSpec list(std::vector<double> values, sim::ParamSpec::Scale scale) {
  sim::ParamSpec p;
  p.form = sim::ParamSpec::Form::list;
  p.values = std::move(values);
  p.scale = scale;
  return p;
}

/// An advisor and `agents` plan followers on the paper's grid (P3), 10 annual steps.
sim::ScenarioSpec plan_spec(int agents, int paths) {
  sim::ScenarioSpec s;
  s.run.paths = paths;
  agents::MertonParams advisor;
  advisor.alpha = constant(0.2);
  s.populations.push_back(agents::population_spec("advisor", 1, advisor, constant(10.0)));
  agents::HerdParams f;
  f.leader = "advisor";
  f.alpha = list({0.4, 0.5, 0.6, 0.7, 0.8, 0.9}, sim::ParamSpec::Scale::lottery_prob);
  f.theta = list({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, sim::ParamSpec::Scale::score);
  s.populations.push_back(agents::population_spec("followers", agents, f, constant(10.0)));
  return s;
}

/// The same with every follower's initial wealth drawn (uniform on [5, 50], as scenarios/large.toml):
/// every plan row differs, so the fused kernel reads the full plan instead of a compact one.
sim::ScenarioSpec distinct_plan_spec(int agents, int paths) {
  sim::ScenarioSpec s = plan_spec(agents, paths);
  sim::ParamSpec wealth;
  wealth.form = sim::ParamSpec::Form::distribution;
  wealth.distribution.a = 5.0;
  wealth.distribution.b = 50.0;
  s.populations[1].wealth = wealth;
  return s;
}

/// `agents` Merton investors with alpha uniform on [0.1, 0.9] (every plan row distinct), `steps` steps of
/// 1 / 10 year: the recorded-run target (10^5 x 200 paths x 100 steps).
sim::ScenarioSpec merton_spec(int agents, int paths, int steps) {
  sim::ScenarioSpec s;
  s.run.paths = paths;
  s.run.steps_per_year = 10;
  s.run.horizon = steps / 10.0;
  agents::MertonParams m;
  m.alpha.form = sim::ParamSpec::Form::distribution;
  m.alpha.distribution = {sim::DistributionSpec::Kind::uniform, 0.1, 0.9, 0.1, 0.9};
  s.populations.push_back(agents::population_spec("investors", agents, m, constant(10.0)));
  return s;
}

/// Adaptive peers on a ring (k = 2), as the NumPy/SciPy baseline.
sim::ScenarioSpec peers_spec(int agents, int paths) {
  sim::ScenarioSpec s;
  s.run.paths = paths;
  agents::HerdParams f;
  f.influence = agents::Influence::peers;
  f.policy = agents::Policy::adaptive;
  f.network.kind = agents::NetworkSpec::Kind::ring;
  f.network.k = 2;
  f.alpha = list({0.4, 0.5, 0.6, 0.7, 0.8, 0.9}, sim::ParamSpec::Scale::lottery_prob);
  f.theta = constant(1e-7);
  s.populations.push_back(agents::population_spec("peers", agents, f, constant(10.0)));
  return s;
}

struct Timed {
  double rate = 0.0;  // agent-steps per second
  double seconds = 0.0;
  std::uint64_t bytes = 0;
  std::vector<sim::PhaseTiming> phases;  // the step loop's, per phase
};

enum class Recording { off, loop, summaries, full, full_no_summaries };

/// The fused kernel's build for every run (--portable: the plain C++ one).
sim::FusedKernel fused_kernel = sim::FusedKernel::fastest;

Timed time_run(const sim::ScenarioSpec& spec, int threads, Recording rec, const std::string& file = "") {
  auto simulation = agents::make_simulation(spec);
  std::unique_ptr<io::Hdf5Output> out;
  std::unique_ptr<sim::Observer> recorder;
  struct Nothing final : sim::Observer {  // an observer that reads nothing: forces the step loop
    void on_start(const sim::RunState&) override {}
    void on_step(int, const sim::RunState&) override {}
    void on_finish(const sim::RunState&) override {}
  } nothing;
  if (rec == Recording::loop) simulation->add_observer(&nothing);
  if (rec == Recording::summaries || rec == Recording::full || rec == Recording::full_no_summaries) {
    out = std::make_unique<io::Hdf5Output>(file,
                                           io::Hdf5Output::Provenance{"bench", spec.run.seed, "", "bench"});
    sim::RecordSpec r;
    r.trajectories = rec != Recording::summaries;
    r.summaries = rec != Recording::full_no_summaries;
    recorder = out->recorder("/", sim::RecordingPlan(r, simulation->state_without_amounts()));
    simulation->add_observer(recorder.get());
  }
  sim::RunOptions opt;
  opt.threads = threads;
  opt.fused_kernel = fused_kernel;
  const auto t0 = Clock::now();
  const auto summary = simulation->run(opt);
  if (out) out->commit();
  Timed t;
  t.seconds = seconds_since(t0);
  t.rate = summary.agent_steps / t.seconds;
  t.phases = summary.phases;
  if (out) {
    t.bytes = out->bytes_written();
    std::filesystem::remove(file);
  }
  return t;
}

/// A run recorded as `r` says: on the fused path between recorded steps, or by the step loop
/// (allow_fused = false).
Timed time_recorded(const sim::ScenarioSpec& spec, int threads, const sim::RecordSpec& r, bool allow_fused,
                    const std::string& file) {
  auto simulation = agents::make_simulation(spec);
  io::Hdf5Output out(file, io::Hdf5Output::Provenance{"bench", spec.run.seed, "", "bench"});
  auto recorder = out.recorder("/", sim::RecordingPlan(r, simulation->state_without_amounts()));
  simulation->add_observer(recorder.get());
  sim::RunOptions opt;
  opt.threads = threads;
  opt.fused_kernel = fused_kernel;
  opt.allow_fused = allow_fused;
  const auto t0 = Clock::now();
  const auto summary = simulation->run(opt);
  out.commit();
  Timed t;
  t.seconds = seconds_since(t0);
  t.rate = summary.agent_steps / t.seconds;
  t.bytes = out.bytes_written();
  std::filesystem::remove(file);
  return t;
}

/// Best of `repeats` (the machine is shared; the best is the least disturbed).
Timed best_of(int repeats, const std::function<Timed()>& f) {
  Timed best;
  for (int i = 0; i < repeats; ++i) {
    const Timed t = f();
    if (t.rate > best.rate) best = t;
  }
  return best;
}

double numpy_rate(const std::string& kind, int agents, int paths, int steps) {
  const std::string cmd = fmt::format("/usr/bin/python3 {}/tools/bench/numpy_baseline.py {} {} {} {} 2>&1",
                                      HERDSIM_SOURCE_DIR, kind, agents, paths, steps);
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return 0.0;
  char line[512];
  double rate = 0.0;
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    if (std::sscanf(line, "agent_steps_per_s=%lf", &rate) == 1) break;
  }
  pclose(pipe);
  return rate;
}

long resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

/// Plain sequential write of `mib` MiB with fsync: the disk's speed for the HDF5 comparison.
double disk_write_mib_per_s(const std::string& file, int mib) {
  std::vector<char> block(1 << 20, 1);
  const auto t0 = Clock::now();
  FILE* f = std::fopen(file.c_str(), "wb");
  for (int i = 0; i < mib; ++i) std::fwrite(block.data(), 1, block.size(), f);
  std::fflush(f);
  fsync(fileno(f));
  std::fclose(f);
  const double s = seconds_since(t0);
  std::filesystem::remove(file);
  return mib / s;
}

}  // namespace

/// Child mode of section 5: build a plan population and report its memory, nothing else allocated.
int report_memory(int agents, int paths) {
  const long before = resident_bytes();
  auto simulation = agents::make_simulation(plan_spec(agents, paths));
  const long after = resident_bytes();
  double held = 0.0;
  for (const auto& pop : simulation->state_without_amounts().populations) {
    held += static_cast<double>(pop.wealth.size() + pop.amount.size() + pop.previous_amount.size() +
                                pop.theory_amount.size()) *
            8.0;
    for (const auto& param : pop.params) held += static_cast<double>(param.second.size()) * 8.0;
  }
  fmt::print(
      "{} plan followers, {:>2} path(s), 10 steps: state {:.0f} B/agent (3 x 8 B per path + 8 B per step + "
      "8 B per parameter), resident growth {:.0f} B/agent\n",
      agents, paths, held / agents, static_cast<double>(after - before) / agents);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--memory")
    return report_memory(std::stoi(argv[2]), std::stoi(argv[3]));
  // --quick: a smoke run (CI); --only SECTIONS: a comma-separated subset of
  // plan,paths,recording,peers,memory,recorded,impact.
  // --shape AGENTS:PATHS (repeatable): the plan and peers sections run only these shapes; the recorded
  // section runs the first.
  // --portable: the fused kernel's portable build instead of the x86 one.
  bool quick = false;
  std::string only;
  std::vector<std::pair<int, int>> shapes;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") quick = true;
    if (arg == "--portable") fused_kernel = sim::FusedKernel::portable;
    if (arg == "--only" && i + 1 < argc) only = "," + std::string(argv[++i]) + ",";
    if (arg == "--shape" && i + 1 < argc) {
      const std::string shape = argv[++i];
      const auto colon = shape.find(':');
      if (colon == std::string::npos) {
        fmt::print(stderr, "bench_engine: --shape wants AGENTS:PATHS, not '{}'\n", shape);
        return 2;
      }
      shapes.emplace_back(std::stoi(shape.substr(0, colon)), std::stoi(shape.substr(colon + 1)));
    }
  }
  const auto wanted = [&](const char* section) {
    return only.empty() || only.find(fmt::format(",{},", section)) != std::string::npos;
  };
  const int max_threads = static_cast<int>(tbb::info::default_concurrency());
  const std::string tmp = (std::filesystem::temp_directory_path() / "herdsim_bench.h5").string();
  const int repeats = quick ? 1 : 3;
  const int short_repeats = quick ? 1 : 7;  // plan and peers runs take milliseconds
  fmt::print("herdsim engine benchmarks ({} hardware threads{}{}); agent-steps/s, best of {}\n\n",
             max_threads, quick ? ", quick" : "",
             fused_kernel == sim::FusedKernel::portable ? ", portable fused kernel" : "", repeats);

  if (wanted("plan")) {
    for (const bool distinct : {false, true}) {
      fmt::print(
          "{}. plan followers (P3 grid{}) + advisor, 10 annual steps, recording off (fused kernel), best of "
          "{}:\n",
          distinct ? "\n1b" : "1",
          distinct ? ", initial wealth drawn per agent: every plan row distinct" : "", short_repeats);
      fmt::print("   {:>10} {:>6} {:>14} {:>14} {:>8} {:>14} {:>8}\n", "agents", "paths", "1 thread",
                 "2 threads", "scaling", "NumPy", "ratio");
      // About 10^7 agent-paths per case (10^8 agent-steps), so that every case runs long enough to time.
      std::vector<std::pair<int, int>> sizes = {{1000, 10000}, {10000, 1000}, {100000, 100}, {1000000, 10}};
      if (!quick) sizes.emplace_back(10000000, 1);
      if (distinct) sizes = {{10000, 1000}, {100000, 100}, {1000000, 10}};  // a solve per agent to build
      if (quick) sizes = {{1000, 100}, {100000, 2}};
      if (!shapes.empty()) sizes = shapes;
      for (const auto& [agents, paths] : sizes) {
        const auto spec = distinct ? distinct_plan_spec(agents, paths) : plan_spec(agents, paths);
        // A run takes ~10 ms here: best of more, cheap, so that one disturbed run does not set the figure.
        const Timed one = best_of(short_repeats, [&] { return time_run(spec, 1, Recording::off); });
        const Timed two = best_of(short_repeats, [&] { return time_run(spec, max_threads, Recording::off); });
        // The baseline reads a full plan (a random amount per agent and step) either way.
        const double np = numpy_rate("plan", agents, paths, 10);
        fmt::print("   {:>10} {:>6} {:>14.3g} {:>14.3g} {:>7.2f}x {:>14.3g} {:>7.1f}x\n", agents, paths,
                   one.rate, two.rate, two.rate / one.rate, np, np > 0 ? two.rate / np : 0.0);
      }
    }
  }
  if (wanted("paths")) {
    fmt::print("\n2. paths scaling, 10,000 plan followers, {} threads, recording off:\n", max_threads);
    for (int paths : quick ? std::vector<int>{1, 16} : std::vector<int>{1, 16, 256}) {
      const Timed t =
          best_of(repeats, [&] { return time_run(plan_spec(10000, paths), max_threads, Recording::off); });
      fmt::print("   paths {:>4}: {:>12.3g} agent-steps/s\n", paths, t.rate);
    }
  }
  if (wanted("recording")) {
    const int rec_agents = quick ? 100000 : 1000000;
    const int rec_paths = 4;
    fmt::print("\n3. recording modes, {} plan followers x {} paths x 10 steps, {} threads:\n", rec_agents,
               rec_paths, max_threads);
    const auto rec_spec = plan_spec(rec_agents, rec_paths);
    const Timed off = best_of(repeats, [&] { return time_run(rec_spec, max_threads, Recording::off); });
    const Timed loop = best_of(repeats, [&] { return time_run(rec_spec, max_threads, Recording::loop); });
    const Timed summ =
        best_of(repeats, [&] { return time_run(rec_spec, max_threads, Recording::summaries, tmp); });
    const Timed full =
        best_of(repeats, [&] { return time_run(rec_spec, max_threads, Recording::full, tmp); });
    const Timed bare =
        best_of(repeats, [&] { return time_run(rec_spec, max_threads, Recording::full_no_summaries, tmp); });
    const double disk = disk_write_mib_per_s(tmp + ".disk", quick ? 128 : 1024);
    const double full_mib_s = static_cast<double>(full.bytes) / (1 << 20) / full.seconds;
    fmt::print("   off (fused kernel)     {:>12.3g}\n", off.rate);
    fmt::print("   off (step loop)        {:>12.3g}\n", loop.rate);
    fmt::print("   summaries only         {:>12.3g}\n", summ.rate);
    fmt::print(
        "   full trajectories      {:>12.3g}   ({:.0f} MiB in {:.2f} s = {:.0f} MiB/s; plain sequential "
        "write "
        "with fsync: {:.0f} MiB/s, ratio {:.2f})\n",
        full.rate, static_cast<double>(full.bytes) / (1 << 20), full.seconds, full_mib_s, disk,
        full_mib_s / disk);
    const double bare_mib_s = static_cast<double>(bare.bytes) / (1 << 20) / bare.seconds;
    fmt::print("   full, summaries = false {:>11.3g}   ({:.0f} MiB/s, ratio to the plain write {:.2f})\n",
               bare.rate, bare_mib_s, bare_mib_s / disk);
  }
  if (wanted("peers")) {
    fmt::print(
        "\n4. adaptive peers on a ring (k = 2), 10 annual steps, recording off (step loop), best of {}:\n",
        short_repeats);
    std::vector<std::pair<int, int>> sizes = {{10000, 16}, {100000, 4}, {1000000, 2}};
    if (quick) sizes = {{10000, 2}};
    if (!shapes.empty()) sizes = shapes;
    for (const auto& [agents, paths] : sizes) {
      const auto spec = peers_spec(agents, paths);
      // Runs of a few milliseconds, as for plans: best of seven.
      const Timed one = best_of(short_repeats, [&] { return time_run(spec, 1, Recording::loop); });
      const Timed two = best_of(short_repeats, [&] { return time_run(spec, max_threads, Recording::loop); });
      const double np = numpy_rate("peers", agents, paths, 10);
      fmt::print(
          "   {:>8} agents x {:>3} paths: 1 thread {:>10.3g}, {} threads {:>10.3g} ({:.2f}x); NumPy/SciPy "
          "{:>10.3g}; "
          "ratio {:.1f}x\n",
          agents, paths, one.rate, max_threads, two.rate, two.rate / one.rate, np,
          np > 0 ? two.rate / np : 0.0);
      std::string split;
      for (const auto& phase : two.phases)
        split += fmt::format(" {} {:.0f}%", phase.name, 100.0 * phase.seconds / two.seconds);
      fmt::print("      time by phase ({} threads):{}\n", max_threads, split);
    }
  }
  if (wanted("impact")) {
    // Issue 13 item 3: the flow reduction and the endogenous price (docs/theory.md §7.2) against the same
    // agents' exogenous step loop; target: impact costs at most 1.5x. The three runs alternate, best of
    // each kept, so that a busy spell of a shared machine does not fall on one of them only.
    fmt::print(
        "\n7. price impact: plan followers + advisor, 10 annual steps, step loop, {} threads, best of {} "
        "(interleaved):\n",
        max_threads, short_repeats);
    std::vector<std::pair<int, int>> sizes = {{1000000, 2}, {100000, 20}};
    if (quick) sizes = {{100000, 2}};
    if (!shapes.empty()) sizes = shapes;
    for (const auto& [agents, paths] : sizes) {
      std::vector<sim::ScenarioSpec> specs(3, plan_spec(agents, paths));  // off, post-impact, pre-impact
      for (std::size_t i = 1; i < specs.size(); ++i) {
        specs[i].market.impact.lambda = {1.0};
        specs[i].market.impact.depth = {1e3 * agents};  // deep: a stable market (radius well below 1)
        specs[i].market.impact.execution = i == 1 ? sim::Execution::post_impact : sim::Execution::pre_impact;
      }
      std::vector<double> rate(specs.size(), 0.0);
      for (int r = 0; r < short_repeats; ++r)
        for (std::size_t i = 0; i < specs.size(); ++i)
          rate[i] = std::max(rate[i], time_run(specs[i], max_threads, Recording::loop).rate);
      fmt::print(
          "   {:>8} agents x {:>3} paths: impact off {:>10.3g} agent-steps/s; post_impact {:>10.3g} ({:.2f}x "
          "the time); pre_impact {:>10.3g} ({:.2f}x)\n",
          agents, paths, rate[0], rate[1], rate[0] / rate[1], rate[2], rate[0] / rate[2]);
    }
  }
  if (wanted("recorded")) {
    // The target: 10^5 Merton investors with distinct plans x 200 paths x 100 steps, recorded.
    int agents = quick ? 10000 : 100000;
    int paths = quick ? 20 : 200;
    if (!shapes.empty()) std::tie(agents, paths) = shapes.front();
    const int steps = 100;
    const auto spec = merton_spec(agents, paths, steps);
    const int runs = quick ? 1 : 2;
    fmt::print(
        "\n6. recorded runs, {} Merton investors (distinct plans) x {} paths x {} steps, {} threads, best "
        "of {}: agent-steps/s, seconds, MiB written, ratio to NumPy:\n",
        agents, paths, steps, max_threads, runs);
    const Timed off = best_of(runs, [&] { return time_run(spec, max_threads, Recording::off); });
    const double np = numpy_rate("plan", agents, paths, steps);
    fmt::print("   {:<58} {:>10.3g} {:>8.3f} s\n", "off (fused kernel)", off.rate, off.seconds);
    if (np > 0) {
      fmt::print("   {:<58} {:>10.3g} {:>8.3f} s\n", "NumPy loop, recording nothing", np,
                 spec.run.steps() * static_cast<double>(agents) * paths / np);
    }
    const auto print = [&](const std::string& what, const Timed& t) {
      fmt::print("   {:<58} {:>10.3g} {:>8.3f} s {:>8.0f} MiB {:>7.1f}x NumPy\n", what, t.rate, t.seconds,
                 static_cast<double>(t.bytes) / (1 << 20), np > 0 ? t.rate / np : 0.0);
    };
    // The target: every 100th step, trajectories of every agent, no summaries; then the step loop.
    sim::RecordSpec target;
    target.every = 100;
    target.summaries = false;
    print("every 100, all trajectories, summaries off (fused)",
          best_of(runs, [&] { return time_recorded(spec, max_threads, target, true, tmp); }));
    print("every 100, all trajectories, summaries off (step loop)",
          best_of(1, [&] { return time_recorded(spec, max_threads, target, false, tmp); }));
    // The configuration as it states it: trajectories and summaries off, the market recorded.
    sim::RecordSpec market_only = target;
    market_only.trajectories = false;
    print("every 100, market only (trajectories, summaries off)",
          best_of(runs, [&] { return time_recorded(spec, max_threads, market_only, true, tmp); }));
    // Every 1, 10, 100 with summaries on and off: trajectories of the first 1,000 agents (all of them
    // every step would be 16 B x agents x paths per step).
    for (const bool summaries : {false, true}) {
      for (const int every : {100, 10, 1}) {
        sim::RecordSpec r;
        r.every = every;
        r.summaries = summaries;
        r.max_agents = 1000;
        print(fmt::format("every {:>3}, 1,000 agents' trajectories, summaries {:<3} (fused)", every,
                          summaries ? "on" : "off"),
              best_of(runs, [&] { return time_recorded(spec, max_threads, r, true, tmp); }));
      }
    }
  }
  if (wanted("memory")) {
    fmt::print(
        "\n5. memory per agent: state held by the run (exact) and resident-set growth (fresh process):\n");
    for (int paths : {1, 16}) {
      const int agents = quick ? 200000 : 1000000;
      const std::string cmd = fmt::format("{} --memory {} {}", argv[0], agents, paths);
      FILE* pipe = popen(cmd.c_str(), "r");
      char line[256] = {0};
      if (pipe != nullptr && std::fgets(line, sizeof line, pipe) != nullptr) fmt::print("   {}", line);
      if (pipe != nullptr) pclose(pipe);
    }
    fmt::print(
        "   per recorded step: 16 B per agent and path (wealth + amount, float64) before compression\n");
  }
  return 0;
}
