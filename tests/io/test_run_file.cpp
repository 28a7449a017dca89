#include <doctest/doctest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "agents/herd_agent.hpp"
#include "agents/merton_agent.hpp"
#include "io/hdf5_output.hpp"
#include "io/master_file.hpp"
#include "io/run_file.hpp"
#include "sim/error.hpp"

namespace {

using herdsim::IoError;
using herdsim::io::Hdf5Output;
using herdsim::io::RunFile;
namespace fs = std::filesystem;

// ---- a hand-built run written through the real recorder: 2 populations (4 and 2 agents), 3 paths,
// 5 steps of half a year; every value is a known function of its indices ---------------------------

constexpr int kPaths = 3;
constexpr int kSteps = 5;
constexpr int kCounts[2] = {4, 2};

double wealth_at(int pop, int a, int p, int s) {
  return 100.0 * (pop + 1) + 10 * a + p + 0.5 * s + 0.1 / (1 + a + p + s);
}
double amount_at(int pop, int a, int p, int k) {
  return 2.0 + a + 0.1 * p + 0.3 * k * (pop + 1) + 1.0 / 3.0;
}
double price_at(int p, int s) {
  return 1.0 + 0.1 * p + 0.02 * s * s;
}
double theory_at(int k, int a) {
  return 1000.0 + 10 * k + a + 1.0 / 7.0;
}

struct Run {
  herdsim::sim::ScenarioSpec spec;
  herdsim::sim::RunState state;
};

Run make_run() {
  Run run;
  run.spec.run.horizon = 2.5;
  run.spec.run.steps_per_year = 2;
  run.state.steps = kSteps;
  run.state.paths = kPaths;
  run.state.market.price.resize(kPaths, 1);
  run.state.market.simple_return.resize(kPaths, 1);
  run.state.market.shock.resize(kPaths, 1);
  const char* names[2] = {"leaders", "followers"};
  for (int i = 0; i < 2; ++i) {
    herdsim::sim::PopulationState pop;
    pop.name = names[i];
    pop.kind = i == 0 ? herdsim::agents::MertonParams::kind : herdsim::agents::HerdParams::kind;
    pop.count = kCounts[i];
    Eigen::VectorXd alpha(pop.count);
    for (int a = 0; a < pop.count; ++a) alpha[a] = 0.1 * (a + 1) + i;
    pop.params.emplace_back("alpha", alpha);
    pop.params.emplace_back("wealth0", Eigen::VectorXd::Constant(pop.count, 100.0 * (i + 1)));
    if (i == 0) {
      pop.theory_amount.resize(pop.count, kSteps);
      for (int k = 0; k < kSteps; ++k) {
        for (int a = 0; a < pop.count; ++a) pop.theory_amount(a, k) = theory_at(k, a);
      }
    }
    pop.wealth.resize(pop.count, kPaths);
    pop.amount.resize(pop.count, kPaths);
    run.state.populations.push_back(pop);
  }
  return run;
}

/// The state seen by the observer after step s - 1 (s = 0: before the first step).
void set_step(herdsim::sim::RunState& state, int s) {
  for (int p = 0; p < kPaths; ++p) {
    state.market.price(p, 0) = price_at(p, s);
    if (s > 0) {
      state.market.simple_return(p, 0) = price_at(p, s) / price_at(p, s - 1) - 1.0;
      state.market.shock(p, 0) = 0.25 * p - 0.5 * (s - 1);
    }
  }
  for (int i = 0; i < 2; ++i) {
    auto& pop = state.populations[static_cast<std::size_t>(i)];
    for (int p = 0; p < kPaths; ++p) {
      for (int a = 0; a < pop.count; ++a) {
        pop.wealth(a, p) = wealth_at(i, a, p, s);
        pop.amount(a, p) = s > 0 ? amount_at(i, a, p, s - 1) : std::nan("");
      }
    }
  }
}

void drive(herdsim::sim::Observer& observer, Run& run) {
  run.state.spec = &run.spec;
  set_step(run.state, 0);
  observer.on_start(run.state);
  for (int k = 0; k < kSteps; ++k) {
    set_step(run.state, k + 1);
    observer.on_step(k, run.state);
  }
  observer.on_finish(run.state);
}

Hdf5Output::Provenance provenance() {
  return {"0.1.0-test", 1234567890123ULL, "[run]\nseed = 42\n", "herdsim run x.toml"};
}

std::string temp_path(const std::string& name) {
  const std::string path = std::string(HERDSIM_TEST_TMP) + "/run_file_" + name;
  fs::remove(path);
  fs::remove(path + ".partial");
  return path;
}

std::string write_run(const std::string& name, const herdsim::sim::RecordSpec& record) {
  const std::string path = temp_path(name);
  Hdf5Output out(path, provenance());
  Run run = make_run();
  auto recorder = out.recorder("/", herdsim::sim::RecordingPlan(record, run.state));
  drive(*recorder, run);
  out.commit();
  return path;
}

/// An HDF5 file with a root attribute `name` = value (or no attribute for an empty name).
std::string write_plain_hdf5(const std::string& file_name, const char* name, int value) {
  const std::string path = temp_path(file_name);
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(file >= 0);
  if (name != nullptr) {
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t attr = H5Acreate2(file, name, H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(H5Awrite(attr, H5T_NATIVE_INT, &value) >= 0);
    H5Aclose(attr);
    H5Sclose(space);
  }
  H5Fclose(file);
  return path;
}

std::string error_of(const std::string& path, bool allow_incomplete = false) {
  try {
    const RunFile file(path, allow_incomplete);
  } catch (const IoError& e) {
    return e.what();
  }
  FAIL("expected IoError opening ", path);
  return {};
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_SUITE("io.run_file") {
  TEST_CASE("a full recording reads back: provenance, group, market, rows, params, theory, summaries") {
    const std::string path = write_run("full.h5", {});
    const RunFile file(path);

    SUBCASE("root attributes") {
      const auto& info = file.info();
      CHECK(info.schema_version == 1);
      CHECK(info.complete);
      CHECK(info.herdsim_version == "0.1.0-test");
      CHECK(info.seed == 1234567890123ULL);
      CHECK(info.scenario == "[run]\nseed = 42\n");
      CHECK(info.command_line == "herdsim run x.toml");
      CHECK(info.created.size() == 20);
      CHECK(info.groups == std::vector<std::string>{"/"});
      CHECK(file.path() == path);
    }

    SUBCASE("group attributes, time axes and populations") {
      const auto g = file.group("/");
      CHECK(g.group == "/");
      CHECK(g.steps == kSteps);
      CHECK(g.dt == 0.5);
      CHECK(g.every == 1);
      CHECK(g.paths_total == kPaths);
      CHECK(g.paths == std::vector<int>{0, 1, 2});
      CHECK(g.sweep_point.empty());
      CHECK(g.wealth_steps == std::vector<int>{0, 1, 2, 3, 4, 5});
      CHECK(g.wealth_times == std::vector<double>{0.0, 0.5, 1.0, 1.5, 2.0, 2.5});
      CHECK(g.decision_steps == std::vector<int>{0, 1, 2, 3, 4});
      REQUIRE(g.populations.size() == 2);
      CHECK(g.population("nobody") == nullptr);
      const auto* leaders = g.population("leaders");
      REQUIRE(leaders != nullptr);
      CHECK(leaders->kind == "merton");
      CHECK(leaders->count == 4);
      CHECK(leaders->recorded_agents == 4);
      CHECK(leaders->has_trajectories);
      CHECK(leaders->has_theory);
      CHECK(leaders->params == std::vector<std::string>{"alpha", "wealth0"});
      CHECK(leaders->summary_stats == std::vector<std::string>{"mean", "std", "min", "max", "q0.05", "q0.25",
                                                               "q0.5", "q0.75", "q0.95"});
      const auto* followers = g.population("followers");
      REQUIRE(followers != nullptr);
      CHECK(followers->kind == "herd");
      CHECK(followers->count == 2);
      CHECK_FALSE(followers->has_theory);
    }

    SUBCASE("market: path x row") {
      const Eigen::MatrixXd price = file.market("/", "price");
      REQUIRE(price.rows() == kPaths);
      REQUIRE(price.cols() == kSteps + 1);
      for (int p = 0; p < kPaths; ++p) {
        for (int s = 0; s <= kSteps; ++s) CHECK(price(p, s) == price_at(p, s));
      }
      const Eigen::MatrixXd shock = file.market("/", "shock");
      REQUIRE(shock.rows() == kPaths);
      REQUIRE(shock.cols() == kSteps);
      CHECK(shock(2, 3) == 0.25 * 2 - 0.5 * 3);
      CHECK(file.market("/", "return").cols() == kSteps);
    }

    SUBCASE("read_row: whole rows and agent ranges, agents x paths") {
      Eigen::MatrixXd row;
      for (int i = 0; i < 2; ++i) {
        const std::string pop = i == 0 ? "leaders" : "followers";
        CAPTURE(pop);
        for (int s = 0; s <= kSteps; ++s) {
          file.read_row("/", pop, "wealth", s, row);
          REQUIRE(row.rows() == kCounts[i]);
          REQUIRE(row.cols() == kPaths);
          for (int p = 0; p < kPaths; ++p) {
            for (int a = 0; a < kCounts[i]; ++a) CHECK(row(a, p) == wealth_at(i, a, p, s));
          }
        }
        for (int k = 0; k < kSteps; ++k) {
          file.read_row("/", pop, "amount", k, row);
          REQUIRE(row.rows() == kCounts[i]);
          for (int p = 0; p < kPaths; ++p) {
            for (int a = 0; a < kCounts[i]; ++a) CHECK(row(a, p) == amount_at(i, a, p, k));
          }
        }
      }
      file.read_row("/", "leaders", "wealth", 3, row, 1, 2);  // agents 1 and 2
      REQUIRE(row.rows() == 2);
      REQUIRE(row.cols() == kPaths);
      for (int p = 0; p < kPaths; ++p) {
        CHECK(row(0, p) == wealth_at(0, 1, p, 3));
        CHECK(row(1, p) == wealth_at(0, 2, p, 3));
      }
      file.read_row("/", "leaders", "amount", 4, row, 3);  // agent 3 to the last
      REQUIRE(row.rows() == 1);
      for (int p = 0; p < kPaths; ++p) CHECK(row(0, p) == amount_at(0, 3, p, 4));
      file.read_row("/", "leaders", "wealth", 0, row, 2, 0);  // an empty range is not an error
      CHECK(row.size() == 0);
    }

    SUBCASE("params and theory/amount (agents x steps, the engine's layout)") {
      const Eigen::VectorXd alpha = file.param("/", "followers", "alpha");
      REQUIRE(alpha.size() == 2);
      CHECK(alpha[0] == 0.1 + 1);
      CHECK(alpha[1] == 0.2 + 1);
      CHECK((file.param("/", "leaders", "wealth0") == Eigen::VectorXd::Constant(4, 100.0)));
      const Eigen::MatrixXd theory = file.theory_amount("/", "leaders");
      REQUIRE(theory.rows() == 4);
      REQUIRE(theory.cols() == kSteps);
      for (int k = 0; k < kSteps; ++k) {
        for (int a = 0; a < 4; ++a) CHECK(theory(a, k) == theory_at(k, a));
      }
      CHECK_THROWS_AS((void)file.theory_amount("/", "followers"), IoError);
      CHECK_THROWS_AS((void)file.param("/", "leaders", "gamma"), IoError);
    }

    SUBCASE("summaries: stats x rows") {
      const Eigen::MatrixXd wealth = file.summary("/", "followers", "wealth");
      REQUIRE(wealth.rows() == 9);
      REQUIRE(wealth.cols() == kSteps + 1);
      for (int s = 0; s <= kSteps; ++s) {
        double mean = 0.0;
        double lo = 1e300;
        for (int p = 0; p < kPaths; ++p) {
          for (int a = 0; a < 2; ++a) {
            mean += wealth_at(1, a, p, s) / (2.0 * kPaths);
            lo = std::min(lo, wealth_at(1, a, p, s));
          }
        }
        CHECK(wealth(0, s) == doctest::Approx(mean).epsilon(1e-14));
        CHECK(wealth(2, s) == lo);
      }
      CHECK(file.summary("/", "leaders", "amount").cols() == kSteps);
      CHECK(file.summary("/", "leaders", "proportion").cols() == kSteps);
    }
  }

  TEST_CASE("every, a paths subset and max_agents: the rows, path axis and agents recorded") {
    herdsim::sim::RecordSpec record;
    record.every = 2;
    record.paths = {2, 0};
    record.max_agents = 3;
    const RunFile file(write_run("subset.h5", record));
    const auto g = file.group("/");
    CHECK(g.every == 2);
    CHECK(g.paths == std::vector<int>{0, 2});
    CHECK(g.paths_total == kPaths);
    CHECK(g.wealth_steps == std::vector<int>{0, 2, 4, 5});
    CHECK(g.wealth_times == std::vector<double>{0.0, 1.0, 2.0, 2.5});
    CHECK(g.decision_steps == std::vector<int>{0, 2, 4});
    CHECK(g.population("leaders")->count == 4);
    CHECK(g.population("leaders")->recorded_agents == 3);
    CHECK(g.population("followers")->recorded_agents == 2);
    Eigen::MatrixXd row;
    file.read_row("/", "leaders", "wealth", 3, row);
    REQUIRE(row.rows() == 3);
    REQUIRE(row.cols() == 2);
    for (int a = 0; a < 3; ++a) {
      CHECK(row(a, 0) == wealth_at(0, a, 0, 5));
      CHECK(row(a, 1) == wealth_at(0, a, 2, 5));
    }
    file.read_row("/", "leaders", "amount", 1, row, 2, 1);
    CHECK(row(0, 1) == amount_at(0, 2, 2, 2));
    // theory/amount keeps a row for every step, recorded or not.
    const Eigen::MatrixXd theory = file.theory_amount("/", "leaders");
    CHECK(theory.rows() == 3);
    CHECK(theory.cols() == kSteps);
    CHECK(theory(2, 3) == theory_at(3, 2));
    CHECK(file.market("/", "price").cols() == 4);
    CHECK(file.param("/", "leaders", "alpha").size() == 3);
  }

  TEST_CASE("trajectories = false: summaries only") {
    herdsim::sim::RecordSpec record;
    record.trajectories = false;
    const RunFile file(write_run("summaries.h5", record));
    const auto g = file.group("/");
    const auto* pop = g.population("leaders");
    REQUIRE(pop != nullptr);
    CHECK_FALSE(pop->has_trajectories);
    CHECK_FALSE(pop->has_theory);
    CHECK(pop->recorded_agents == 0);
    CHECK(pop->params.empty());
    CHECK(pop->summary_stats.size() == 9);
    CHECK(file.summary("/", "leaders", "wealth").cols() == kSteps + 1);
    Eigen::MatrixXd row;
    CHECK_THROWS_AS(file.read_row("/", "leaders", "wealth", 0, row), IoError);
  }

  TEST_CASE("a sweep: one group per point, sorted, with its sweep_point") {
    const std::string path = temp_path("sweep.h5");
    {
      Hdf5Output out(path, provenance());
      for (const int point : {1, 0}) {  // written out of order: groups() still comes back sorted
        Run run = make_run();
        auto recorder =
            out.recorder(point == 0 ? "/sweep_000" : "/sweep_001", herdsim::sim::RecordingPlan({}, run.state),
                         point == 0 ? "population.leaders.alpha=1" : "population.leaders.alpha=2");
        drive(*recorder, run);
      }
      out.commit();
    }
    const RunFile file(path);
    CHECK(file.info().groups == std::vector<std::string>{"/sweep_000", "/sweep_001"});
    const auto g = file.group("/sweep_001");
    CHECK(g.sweep_point == "population.leaders.alpha=2");
    CHECK(g.populations.size() == 2);
    Eigen::MatrixXd row;
    file.read_row("/sweep_000", "followers", "wealth", 5, row);
    CHECK(row(1, 2) == wealth_at(1, 1, 2, 5));
    CHECK_THROWS_AS((void)file.group("/"), IoError);
    CHECK_THROWS_AS((void)file.group("/sweep_002"), IoError);
  }

  TEST_CASE("errors: what is not a complete herdsim run file is refused with a reason") {
    SUBCASE("a missing file, with a hint when its .partial exists") {
      const std::string path = temp_path("missing.h5");
      std::string message = error_of(path);
      CHECK(contains(message, "no such file"));
      CHECK_FALSE(contains(message, ".partial"));
      std::ofstream(path + ".partial") << "x";
      message = error_of(path);
      CHECK(contains(message, path + ".partial"));
      CHECK(contains(message, "did not finish"));
    }
    SUBCASE("a file that is not HDF5") {
      const std::string path = temp_path("text.h5");
      std::ofstream(path) << "group,step\n";
      CHECK(contains(error_of(path), "not an HDF5 file"));
    }
    SUBCASE("an HDF5 file without schema_version") {
      CHECK(contains(error_of(write_plain_hdf5("plain.h5", nullptr, 0)), "no schema_version"));
    }
    SUBCASE("a newer schema") {
      const std::string message = error_of(write_plain_hdf5("newer.h5", "schema_version", 3));
      CHECK(contains(message, "schema_version 3"));
    }
    SUBCASE("an incomplete file unless allow_incomplete") {
      const std::string path = temp_path("interrupted.h5");
      {
        Hdf5Output out(path, provenance());
        Run run = make_run();
        auto recorder = out.recorder("/", herdsim::sim::RecordingPlan({}, run.state));
        run.state.spec = &run.spec;
        set_step(run.state, 0);
        recorder->on_start(run.state);
        set_step(run.state, 1);
        recorder->on_step(0, run.state);
        // No commit: the run "failed" after one step.
      }
      const std::string partial = path + ".partial";
      CHECK(contains(error_of(partial), "incomplete"));
      const RunFile file(partial, true);
      CHECK_FALSE(file.info().complete);
      const auto g = file.group("/");
      CHECK(g.wealth_steps == std::vector<int>{0, 1});
      Eigen::MatrixXd row;
      file.read_row("/", "leaders", "wealth", 1, row);
      CHECK(row(3, 2) == wealth_at(0, 3, 2, 1));
    }
    SUBCASE("rows and agents out of range, unknown datasets") {
      const RunFile file(write_run("ranges.h5", {}));
      Eigen::MatrixXd row;
      CHECK_THROWS_AS(file.read_row("/", "leaders", "wealth", -1, row), IoError);
      CHECK_THROWS_AS(file.read_row("/", "leaders", "wealth", kSteps + 1, row), IoError);
      CHECK_THROWS_AS(file.read_row("/", "leaders", "amount", kSteps, row), IoError);
      CHECK_THROWS_AS(file.read_row("/", "leaders", "wealth", 0, row, 3, 2), IoError);
      CHECK_THROWS_AS(file.read_row("/", "leaders", "wealth", 0, row, 5), IoError);
      CHECK_THROWS_AS(file.read_row("/", "leaders", "wealth", 0, row, -1, 2), IoError);
      CHECK_THROWS_AS(file.read_row("/", "nobody", "wealth", 0, row), IoError);
      CHECK_THROWS_AS(file.read_row("/", "leaders", "price", 0, row), IoError);
      CHECK_THROWS_AS((void)file.market("/", "volume"), IoError);
      try {
        file.read_row("/", "leaders", "wealth", 6, row);
      } catch (const IoError& e) {
        CHECK(contains(e.what(), "row 6"));
        CHECK(contains(e.what(), "6 rows"));
      }
    }
  }

  TEST_CASE("a distributed run's parts, checked, linked from a master file, merged into one file") {
    // Two parts as two ranks write them (docs/cluster.md): points 0 and 2 in one, point 1 in the other.
    auto write_part = [](const std::string& name, const std::vector<int>& points, bool commit) {
      const std::string path = temp_path(name);
      Hdf5Output out(path, provenance());
      for (const int point : points) {
        Run run = make_run();
        auto recorder =
            out.recorder("/sweep_00" + std::to_string(point), herdsim::sim::RecordingPlan({}, run.state),
                         "population.leaders.alpha=" + std::to_string(point));
        drive(*recorder, run);
      }
      if (commit) out.commit();
      return path;
    };
    const std::string a = write_part("part_a.h5", {0, 2}, true);
    const std::string b = write_part("part_b.h5", {1}, true);
    using herdsim::io::ExpectedGroup;
    auto expect = [](int point) {
      return ExpectedGroup{"/sweep_00" + std::to_string(point),
                           "population.leaders.alpha=" + std::to_string(point), kSteps, kPaths};
    };
    CHECK(herdsim::io::check_part(a, {expect(0), expect(2)}) == 1);
    CHECK(herdsim::io::check_part(b, {expect(1)}) == 1);
    auto refusal = [](const std::string& part, const std::vector<ExpectedGroup>& expected) {
      try {
        (void)herdsim::io::check_part(part, expected);
      } catch (const IoError& e) {
        return std::string(e.what());
      }
      return std::string("accepted");
    };
    CHECK(contains(refusal(a, {expect(0)}), "holds the groups /sweep_000, /sweep_002, expected /sweep_000"));
    CHECK(contains(refusal(b, {ExpectedGroup{"/sweep_001", "population.leaders.alpha=7", kSteps, kPaths}}),
                   "is the run 'population.leaders.alpha=1'"));
    CHECK(
        contains(refusal(b, {ExpectedGroup{"/sweep_001", "population.leaders.alpha=1", kSteps + 1, kPaths}}),
                 "6 steps"));
    CHECK(contains(refusal(temp_path("part_none.h5"), {}), "is missing"));
    const std::string unfinished = write_part("part_c.h5", {1}, false);  // a rank that did not commit
    CHECK(contains(refusal(unfinished + ".partial", {expect(1)}), "incomplete"));

    const std::string master = temp_path("master.h5");
    {
      Hdf5Output out(master, provenance());
      for (const int point : {0, 1, 2}) {
        const std::string group = "/sweep_00" + std::to_string(point);
        out.link_group(group, fs::path(point == 1 ? b : a).filename().string(), group, 1);
      }
      out.commit();
    }
    // Read through the links (file names relative to the master's folder, from another working directory).
    const fs::path cwd = fs::current_path();
    fs::current_path("/");
    const RunFile file(master);
    CHECK(file.info().groups == std::vector<std::string>{"/sweep_000", "/sweep_001", "/sweep_002"});
    CHECK(file.group("/sweep_001").sweep_point == "population.leaders.alpha=1");
    Eigen::MatrixXd row;
    file.read_row("/sweep_002", "followers", "wealth", 5, row);
    CHECK(row(1, 2) == wealth_at(1, 1, 2, 5));

    const std::string merged = temp_path("merged.h5");
    CHECK(herdsim::io::merge_run_file(master, merged) > 0);
    fs::current_path(cwd);
    fs::remove(a);  // self-contained: the parts are no longer needed
    fs::remove(b);
    const RunFile one(merged);
    CHECK(one.info().groups == file.info().groups);
    CHECK(one.info().seed == 1234567890123ULL);
    CHECK(one.info().created == file.info().created);
    CHECK(one.group("/sweep_000").sweep_point == "population.leaders.alpha=0");
    Eigen::MatrixXd copied;
    one.read_row("/sweep_001", "leaders", "amount", 2, copied);
    CHECK(copied(3, 1) == amount_at(0, 3, 1, 2));
    const hid_t f = H5Fopen(merged.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    H5L_info_t info{};
    CHECK(H5Lget_info(f, "sweep_001", &info, H5P_DEFAULT) >= 0);
    CHECK(info.type == H5L_TYPE_HARD);
    H5Fclose(f);
  }

  TEST_CASE("analysis_sidecar_path") {
    CHECK(herdsim::io::analysis_sidecar_path("out/run.h5") == "out/run.analysis.json");
    CHECK(herdsim::io::analysis_sidecar_path("run.hdf5") == "run.analysis.json");
    CHECK(herdsim::io::analysis_sidecar_path("run") == "run.analysis.json");
  }
}
