#include <doctest/doctest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "agents/herd_agent.hpp"
#include "agents/merton_agent.hpp"
#include "agents/registry.hpp"
#include "io/hdf5_output.hpp"
#include "sim/error.hpp"
#include "sim/simulation.hpp"
#include "support/specs.hpp"

namespace {

using herdsim::io::Hdf5Output;
namespace fs = std::filesystem;

// ---- a hand-built run: 2 populations (4 and 2 agents), 3 paths, 5 steps of half a year --------

constexpr int kPaths = 3;
constexpr int kSteps = 5;
constexpr int kCounts[2] = {4, 2};

double wealth_at(int pop, int a, int p, int s) {
  return 100.0 * (pop + 1) + 10 * a + p + 0.5 * s + (a * 7 + p * 3 + s) % 5;
}
double amount_at(int pop, int a, int p, int k) {
  return 2.0 + a + 0.1 * p + 0.3 * k * (pop + 1) + (a + 2 * p + k) % 3;
}
double price_at(int p, int s) {
  return 1.0 + 0.1 * p + 0.02 * s * s;
}
double shock_at(int p, int k) {
  return 0.25 * p - 0.5 * k;
}
double theory_at(int k, int a) {
  return 1000.0 + 10 * k + a;
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
      state.market.shock(p, 0) = shock_at(p, s - 1);
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
  const std::string path = std::string(HERDSIM_TEST_TMP) + "/" + name;
  fs::remove(path);
  fs::remove(path + ".partial");
  return path;
}

/// Writes one run with `record` into a fresh file and returns its path.
std::string write_run(const std::string& name, const herdsim::sim::RecordSpec& record) {
  const std::string path = temp_path(name);
  Hdf5Output out(path, provenance());
  Run run = make_run();
  auto recorder = out.recorder("/", herdsim::sim::RecordingPlan(record, run.state));
  // The runtime can ask the recorder which steps it needs: its plan.
  REQUIRE(recorder->recording_plan() != nullptr);
  CHECK(recorder->recording_plan()->every() == record.every);
  drive(*recorder, run);
  out.commit();
  CHECK(out.bytes_written() == fs::file_size(path));
  return path;
}

// ---- reading back with the plain HDF5 C API ------------------------------------------------

/// Closes an HDF5 id at scope exit.
struct Id {
  hid_t id;
  herr_t (*close)(hid_t);
  Id(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) { REQUIRE(id >= 0); }
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  ~Id() { close(id); }
};

struct File : Id {
  explicit File(const std::string& path) : Id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose) {}
};

bool exists(hid_t file, const std::string& path) {
  // H5Lexists needs each parent to exist: walk the path one link at a time.
  std::string prefix;
  for (std::size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos == path.size() || path[pos] == '/') {
      prefix = path.substr(0, pos);
      if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    }
  }
  return true;
}

struct Data {
  std::vector<hsize_t> dims;
  std::vector<double> values;
  [[nodiscard]] double at(std::initializer_list<hsize_t> index) const {
    std::size_t flat = 0;
    auto dim = dims.begin();
    for (const hsize_t i : index) flat = flat * *dim++ + i;
    return values[flat];
  }
};

Data read(hid_t file, const std::string& name) {
  INFO(name);
  Id dset(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  Id space(H5Dget_space(dset.id), H5Sclose);
  Data data;
  data.dims.resize(static_cast<std::size_t>(H5Sget_simple_extent_ndims(space.id)));
  H5Sget_simple_extent_dims(space.id, data.dims.data(), nullptr);
  data.values.resize(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.id)));
  REQUIRE(H5Dread(dset.id, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.values.data()) >= 0);
  return data;
}

std::string attr_string(hid_t file, const std::string& object, const std::string& name) {
  INFO(object, " ", name);
  Id attr(H5Aopen_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  Id type(H5Aget_type(attr.id), H5Tclose);
  REQUIRE(H5Tis_variable_str(type.id) > 0);
  char* text = nullptr;
  REQUIRE(H5Aread(attr.id, type.id, &text) >= 0);
  std::string value(text);
  H5free_memory(text);
  return value;
}

std::vector<long long> attr_ints(hid_t file, const std::string& object, const std::string& name) {
  INFO(object, " ", name);
  Id attr(H5Aopen_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  Id space(H5Aget_space(attr.id), H5Sclose);
  std::vector<long long> values(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.id)));
  REQUIRE(H5Aread(attr.id, H5T_NATIVE_LLONG, values.data()) >= 0);
  return values;
}

long long attr_int(hid_t file, const std::string& object, const std::string& name) {
  return attr_ints(file, object, name).at(0);
}

std::vector<hsize_t> dims(std::initializer_list<hsize_t> d) {
  return d;
}

// ---- expected summaries, computed independently: sort, then numpy's linear interpolation ---------

std::vector<double> expected_stats(std::vector<double> v, const std::vector<double>& quantiles) {
  std::sort(v.begin(), v.end());
  const auto n = static_cast<double>(v.size());
  double mean = 0.0;
  for (const double x : v) mean += x / n;
  double var = 0.0;
  for (const double x : v) var += (x - mean) * (x - mean) / n;
  std::vector<double> out{mean, std::sqrt(var), v.front(), v.back()};
  for (const double q : quantiles) {
    const double h = q * (n - 1.0);
    const auto lo = static_cast<std::size_t>(std::floor(h));
    const std::size_t hi = std::min(lo + 1, v.size() - 1);
    out.push_back(v[lo] + (h - std::floor(h)) * (v[hi] - v[lo]));
  }
  return out;
}

void check_summary_row(const Data& summary, std::size_t row, const std::vector<double>& expected) {
  REQUIRE(summary.dims[1] == expected.size());
  for (std::size_t j = 0; j < expected.size(); ++j) {
    INFO("row ", row, " stat ", j);
    CHECK(summary.at({row, j}) == doctest::Approx(expected[j]).epsilon(1e-12));
  }
}

/// Checks the summaries of population `pop` over `paths` at the given wealth and decision steps.
void check_summaries(hid_t file, const std::string& group, int pop, const std::vector<int>& paths,
                     const std::vector<int>& wealth_steps, const std::vector<int>& decision_steps,
                     const std::vector<double>& quantiles) {
  const Data sw = read(file, group + "/summary/wealth");
  const Data sa = read(file, group + "/summary/amount");
  const Data sp = read(file, group + "/summary/proportion");
  REQUIRE(sw.dims[0] == wealth_steps.size());
  REQUIRE(sa.dims[0] == decision_steps.size());
  REQUIRE(sp.dims[0] == decision_steps.size());
  for (std::size_t r = 0; r < wealth_steps.size(); ++r) {
    std::vector<double> v;
    for (const int p : paths) {
      for (int a = 0; a < kCounts[pop]; ++a) v.push_back(wealth_at(pop, a, p, wealth_steps[r]));
    }
    check_summary_row(sw, r, expected_stats(v, quantiles));
  }
  for (std::size_t r = 0; r < decision_steps.size(); ++r) {
    const int k = decision_steps[r];
    std::vector<double> amounts, proportions;
    for (const int p : paths) {
      for (int a = 0; a < kCounts[pop]; ++a) {
        amounts.push_back(amount_at(pop, a, p, k));
        proportions.push_back(amount_at(pop, a, p, k) / wealth_at(pop, a, p, k));
      }
    }
    check_summary_row(sa, r, expected_stats(amounts, quantiles));
    check_summary_row(sp, r, expected_stats(proportions, quantiles));
  }
}

}  // namespace

TEST_SUITE("io.hdf5_output") {
  TEST_CASE("several assets: schema 2, an asset axis holding the engine's per-asset state") {
    namespace test = herdsim::test;
    herdsim::sim::ScenarioSpec spec;
    spec.run.paths = 3;
    spec.run.horizon = 2.0;
    spec.market.assets = {{"x", 0.07, 0.17, 1.0}, {"y", 0.05, 0.1, 2.0}};
    spec.market.correlation = {1.0, 0.4, 0.4, 1.0};
    spec.populations.push_back(test::merton("m", 3, 0.3));
    spec.record.paths = {0, 2};
    spec.record.max_agents = 2;
    const std::string path = temp_path("assets.h5");
    Hdf5Output out(path, provenance());
    auto simulation = herdsim::agents::make_simulation(spec);
    auto recorder = out.recorder("/", herdsim::sim::RecordingPlan(spec.record, simulation->state()));
    simulation->add_observer(recorder.get());
    CHECK_FALSE(simulation->run().fused);
    out.commit();
    const herdsim::sim::RunState& state = simulation->state();
    File file(path);
    CHECK(attr_int(file.id, "/", "schema_version") == 2);
    CHECK(attr_int(file.id, "/", "assets") == 2);
    CHECK(attr_string(file.id, "/", "asset_names") == "x,y");
    const Data price = read(file.id, "/market/price");
    CHECK(price.dims == dims({3, 2, 2}));
    CHECK(read(file.id, "/market/fundamental").values == price.values);
    const Data amount = read(file.id, "/populations/m/amount");
    CHECK(amount.dims == dims({2, 2, 2, 2}));
    const Data theory = read(file.id, "/populations/m/theory/amount");
    CHECK(theory.dims == dims({2, 2, 2}));
    const int recorded[2] = {0, 2};
    for (hsize_t a = 0; a < 2; ++a) {
      for (hsize_t j = 0; j < 2; ++j) {
        const int p = recorded[j];
        // The last rows are the engine's final state: price after step 2, the decision of step 1.
        CHECK(price.at({2, a, j}) == state.market.price(p, static_cast<Eigen::Index>(a)));
        for (hsize_t i = 0; i < 2; ++i) {
          const auto col = static_cast<Eigen::Index>(a) * 3 + p;
          CHECK(amount.at({1, a, j, i}) == state.populations[0].amount(static_cast<Eigen::Index>(i), col));
          CHECK(theory.at({a, 1, i}) ==
                state.populations[0].theory_amount(static_cast<Eigen::Index>(i),
                                                   static_cast<Eigen::Index>(a) * 2 + 1));
        }
      }
    }
  }

  TEST_CASE(
      "a full recording round-trips: provenance, time, market, trajectories, params, theory, summaries") {
    const herdsim::sim::RecordSpec record;
    const std::string path = write_run("full.h5", record);
    CHECK_FALSE(fs::exists(path + ".partial"));
    File file(path);
    const hid_t f = file.id;

    SUBCASE("root attributes") {
      CHECK(attr_int(f, "/", "schema_version") == 1);
      CHECK(attr_int(f, "/", "complete") == 1);
      CHECK(attr_string(f, "/", "herdsim_version") == "0.1.0-test");
      CHECK(attr_string(f, "/", "scenario") == "[run]\nseed = 42\n");
      CHECK(attr_string(f, "/", "command_line") == "herdsim run x.toml");
      Id attr(H5Aopen_by_name(f, "/", "seed", H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
      unsigned long long seed = 0;
      REQUIRE(H5Aread(attr.id, H5T_NATIVE_ULLONG, &seed) >= 0);
      CHECK(seed == 1234567890123ULL);
      const std::string created = attr_string(f, "/", "created");
      CHECK(created.size() == 20);
      CHECK(created.back() == 'Z');
      CHECK(attr_ints(f, "/", "paths") == std::vector<long long>{0, 1, 2});
      CHECK(attr_int(f, "/", "steps") == kSteps);
      CHECK(attr_int(f, "/", "every") == 1);
    }

    SUBCASE("time axes") {
      const Data step = read(f, "/time/step");
      CHECK(step.values == std::vector<double>{0, 1, 2, 3, 4, 5});
      CHECK(read(f, "/time/t").values == std::vector<double>{0, 0.5, 1.0, 1.5, 2.0, 2.5});
      CHECK(read(f, "/time/decision_step").values == std::vector<double>{0, 1, 2, 3, 4});
      CHECK(attr_string(f, "/time/t", "units") == "years");
      CHECK(attr_string(f, "/time/step", "dims") == "step");
      CHECK(attr_string(f, "/time/decision_step", "dims") == "decision_step");
    }

    SUBCASE("market") {
      const Data price = read(f, "/market/price");
      REQUIRE(price.dims == dims({6, 3}));
      const Data ret = read(f, "/market/return");
      REQUIRE(ret.dims == dims({5, 3}));
      const Data shock = read(f, "/market/shock");
      REQUIRE(shock.dims == dims({5, 3}));
      for (hsize_t p = 0; p < kPaths; ++p) {
        const int pi = static_cast<int>(p);
        for (hsize_t s = 0; s <= kSteps; ++s) CHECK(price.at({s, p}) == price_at(pi, static_cast<int>(s)));
        for (hsize_t k = 0; k < kSteps; ++k) {
          const int ki = static_cast<int>(k);
          CHECK(ret.at({k, p}) ==
                doctest::Approx(price_at(pi, ki + 1) / price_at(pi, ki) - 1.0).epsilon(1e-15));
          CHECK(shock.at({k, p}) == shock_at(pi, ki));
        }
      }
      CHECK(attr_string(f, "/market/price", "dims") == "step,path");
      CHECK(attr_string(f, "/market/return", "dims") == "decision_step,path");
      CHECK(attr_string(f, "/market/shock", "dims") == "decision_step,path");
    }

    SUBCASE("trajectories, params and theory") {
      for (int i = 0; i < 2; ++i) {
        const std::string g = i == 0 ? "/populations/leaders" : "/populations/followers";
        CAPTURE(g);
        const auto n = static_cast<hsize_t>(kCounts[i]);
        CHECK(attr_string(f, g, "kind") == (i == 0 ? "merton" : "herd"));
        CHECK(attr_int(f, g, "count") == kCounts[i]);
        CHECK(attr_int(f, g, "recorded_agents") == kCounts[i]);
        const Data wealth = read(f, g + "/wealth");
        REQUIRE(wealth.dims == dims({6, 3, n}));
        const Data amount = read(f, g + "/amount");
        REQUIRE(amount.dims == dims({5, 3, n}));
        for (hsize_t p = 0; p < kPaths; ++p) {
          for (hsize_t a = 0; a < n; ++a) {
            const int pi = static_cast<int>(p), ai = static_cast<int>(a);
            for (hsize_t s = 0; s <= kSteps; ++s) {
              CHECK(wealth.at({s, p, a}) == wealth_at(i, ai, pi, static_cast<int>(s)));
            }
            for (hsize_t k = 0; k < kSteps; ++k) {
              CHECK(amount.at({k, p, a}) == amount_at(i, ai, pi, static_cast<int>(k)));
            }
          }
        }
        CHECK(attr_string(f, g + "/wealth", "dims") == "step,path,agent");
        CHECK(attr_string(f, g + "/wealth", "units") == "currency units");
        CHECK(attr_string(f, g + "/amount", "dims") == "decision_step,path,agent");
        const Data alpha = read(f, g + "/params/alpha");
        REQUIRE(alpha.dims == dims({n}));
        for (hsize_t a = 0; a < n; ++a) CHECK(alpha.values[a] == 0.1 * static_cast<double>(a + 1) + i);
        CHECK(read(f, g + "/params/wealth0").values == std::vector<double>(n, 100.0 * (i + 1)));
        CHECK(attr_string(f, g + "/params/alpha", "dims") == "agent");
      }
      const Data theory = read(f, "/populations/leaders/theory/amount");
      REQUIRE(theory.dims == dims({5, 4}));
      for (hsize_t k = 0; k < kSteps; ++k) {
        for (hsize_t a = 0; a < 4; ++a) {
          CHECK(theory.at({k, a}) == theory_at(static_cast<int>(k), static_cast<int>(a)));
        }
      }
      CHECK(attr_string(f, "/populations/leaders/theory/amount", "dims") == "decision_step,agent");
      CHECK_FALSE(exists(f, "/populations/followers/theory"));
    }

    SUBCASE("summaries over every path and agent") {
      for (int i = 0; i < 2; ++i) {
        const std::string g = i == 0 ? "/populations/leaders" : "/populations/followers";
        check_summaries(f, g, i, {0, 1, 2}, {0, 1, 2, 3, 4, 5}, {0, 1, 2, 3, 4}, record.quantiles);
        CHECK(attr_string(f, g + "/summary", "stats") == "mean,std,min,max,q0.05,q0.25,q0.5,q0.75,q0.95");
        CHECK(attr_string(f, g + "/summary/wealth", "dims") == "step,stat");
        CHECK(attr_string(f, g + "/summary/proportion", "dims") == "decision_step,stat");
        CHECK(attr_string(f, g + "/summary/proportion", "units") == "1");
      }
    }
  }

  TEST_CASE("every, a paths subset and max_agents select rows, paths and agents") {
    herdsim::sim::RecordSpec record;
    record.every = 2;
    record.paths = {2, 0};
    record.max_agents = 3;
    record.quantiles = {0.5, 0.1};
    record.compression = 4;
    const std::string path = write_run("subset.h5", record);
    File file(path);
    const hid_t f = file.id;

    CHECK(read(f, "/time/step").values == std::vector<double>{0, 2, 4, 5});
    CHECK(read(f, "/time/t").values == std::vector<double>{0, 1.0, 2.0, 2.5});
    CHECK(read(f, "/time/decision_step").values == std::vector<double>{0, 2, 4});
    CHECK(attr_ints(f, "/", "paths") == std::vector<long long>{0, 2});
    CHECK(attr_int(f, "/", "paths_total") == 3);

    const Data price = read(f, "/market/price");
    REQUIRE(price.dims == dims({4, 2}));
    CHECK(price.at({1, 1}) == price_at(2, 2));
    CHECK(price.at({3, 0}) == price_at(0, 5));
    const Data shock = read(f, "/market/shock");
    REQUIRE(shock.dims == dims({3, 2}));
    CHECK(shock.at({2, 1}) == shock_at(2, 4));

    const int wealth_steps[] = {0, 2, 4, 5};
    const int decision_steps[] = {0, 2, 4};
    const int recorded_paths[] = {0, 2};
    for (int i = 0; i < 2; ++i) {
      const std::string g = i == 0 ? "/populations/leaders" : "/populations/followers";
      CAPTURE(g);
      const auto m = static_cast<hsize_t>(std::min(3, kCounts[i]));
      CHECK(attr_int(f, g, "recorded_agents") == static_cast<long long>(m));
      const Data wealth = read(f, g + "/wealth");
      REQUIRE(wealth.dims == dims({4, 2, m}));
      const Data amount = read(f, g + "/amount");
      REQUIRE(amount.dims == dims({3, 2, m}));
      for (hsize_t p = 0; p < 2; ++p) {
        for (hsize_t a = 0; a < m; ++a) {
          const int ai = static_cast<int>(a);
          for (hsize_t r = 0; r < 4; ++r) {
            CHECK(wealth.at({r, p, a}) == wealth_at(i, ai, recorded_paths[p], wealth_steps[r]));
          }
          for (hsize_t r = 0; r < 3; ++r) {
            CHECK(amount.at({r, p, a}) == amount_at(i, ai, recorded_paths[p], decision_steps[r]));
          }
        }
      }
      CHECK(read(f, g + "/params/alpha").dims == dims({m}));
      // Summaries use every agent of the recorded paths, not only the first max_agents.
      check_summaries(f, g, i, {0, 2}, {0, 2, 4, 5}, {0, 2, 4}, record.quantiles);
      CHECK(attr_string(f, g + "/summary", "stats") == "mean,std,min,max,q0.5,q0.1");

      // gzip on trajectory datasets.
      Id dset(H5Dopen2(f, (g + "/wealth").c_str(), H5P_DEFAULT), H5Dclose);
      Id dcpl(H5Dget_create_plist(dset.id), H5Pclose);
      REQUIRE(H5Pget_nfilters(dcpl.id) == 1);
      unsigned flags = 0;
      std::size_t n_values = 1;
      unsigned level = 0;
      CHECK(H5Pget_filter2(dcpl.id, 0, &flags, &n_values, &level, 0, nullptr, nullptr) == H5Z_FILTER_DEFLATE);
      CHECK(level == 4);
    }
    const Data theory = read(f, "/populations/leaders/theory/amount");
    REQUIRE(theory.dims == dims({5, 3}));
    CHECK(theory.at({4, 2}) == theory_at(4, 2));
  }

  TEST_CASE("trajectories = false keeps time, market and summaries only") {
    herdsim::sim::RecordSpec record;
    record.trajectories = false;
    const std::string path = write_run("summaries.h5", record);
    File file(path);
    const hid_t f = file.id;
    CHECK(exists(f, "/market/price"));
    CHECK(exists(f, "/time/step"));
    CHECK_FALSE(exists(f, "/populations/leaders/wealth"));
    CHECK_FALSE(exists(f, "/populations/leaders/amount"));
    CHECK_FALSE(exists(f, "/populations/leaders/params"));
    CHECK_FALSE(exists(f, "/populations/leaders/theory"));
    CHECK(attr_int(f, "/populations/leaders", "recorded_agents") == 0);
    check_summaries(f, "/populations/followers", 1, {0, 1, 2}, {0, 1, 2, 3, 4, 5}, {0, 1, 2, 3, 4},
                    record.quantiles);
  }

  TEST_CASE("sweep points go to their own groups with a sweep_point attribute") {
    const std::string path = temp_path("sweep.h5");
    Hdf5Output out(path, provenance());
    for (int point = 0; point < 2; ++point) {
      Run run = make_run();
      auto recorder =
          out.recorder(point == 0 ? "/sweep_000" : "/sweep_001", herdsim::sim::RecordingPlan({}, run.state),
                       point == 0 ? "theta=1" : "theta=2");
      drive(*recorder, run);
    }
    out.commit();
    File file(path);
    CHECK(attr_string(file.id, "/sweep_001", "sweep_point") == "theta=2");
    CHECK(read(file.id, "/sweep_000/populations/leaders/wealth").dims == dims({6, 3, 4}));
    CHECK(read(file.id, "/sweep_001/market/price").dims == dims({6, 3}));
    CHECK_FALSE(exists(file.id, "/market"));
  }

  TEST_CASE("destroyed without commit: only PATH.partial with complete = 0, an existing PATH untouched") {
    const std::string path = temp_path("interrupted.h5");
    std::ofstream(path) << "previous results";
    {
      Hdf5Output out(path, provenance());
      Run run = make_run();
      auto recorder = out.recorder("/", herdsim::sim::RecordingPlan({}, run.state));
      run.state.spec = &run.spec;
      set_step(run.state, 0);
      recorder->on_start(run.state);
      set_step(run.state, 1);
      recorder->on_step(0, run.state);
      // The run fails here: no on_finish, no commit; the recorder even outlives the output.
    }
    std::ifstream in(path);
    std::string text;
    std::getline(in, text);
    CHECK(text == "previous results");
    REQUIRE(fs::exists(path + ".partial"));
    File file(path + ".partial");
    CHECK(attr_int(file.id, "/", "complete") == 0);
    CHECK(read(file.id, "/time/step").values == std::vector<double>{0, 1});
  }

  TEST_CASE("errors are typed and name the call and the object") {
    SUBCASE("a missing folder: refused before HDF5 is called") {
      try {
        Hdf5Output out("/nonexistent-dir/x.h5", provenance());
        FAIL("expected InputError");
      } catch (const herdsim::InputError& e) {
        const std::string message = e.what();
        CHECK(message.find("/nonexistent-dir/x.h5") != std::string::npos);
        CHECK(message.find("does not exist") != std::string::npos);
      }
    }
    SUBCASE("a group recorded twice") {
      Hdf5Output out(temp_path("twice.h5"), provenance());
      const Run run = make_run();
      const herdsim::sim::RecordingPlan plan({}, run.state);
      auto first = out.recorder("/run", plan);
      CHECK_THROWS_AS(out.recorder("/run", plan), herdsim::IoError);
    }
    SUBCASE("a plan that records nothing") {
      Hdf5Output out(temp_path("disabled.h5"), provenance());
      herdsim::sim::RecordSpec record;
      record.enabled = false;
      const Run run = make_run();
      CHECK_THROWS_AS((void)out.recorder("/", herdsim::sim::RecordingPlan(record, run.state)),
                      herdsim::InputError);
    }
    SUBCASE("a plan made for another run") {
      Hdf5Output out(temp_path("otherrun.h5"), provenance());
      Run run = make_run();
      const herdsim::sim::RecordingPlan plan({}, run.state);
      run.state.populations[1].count += 1;
      run.state.spec = &run.spec;
      auto recorder = out.recorder("/", plan);
      CHECK_THROWS_AS(recorder->on_start(run.state), herdsim::Error);
    }
    SUBCASE("a recorder used after commit") {
      Hdf5Output out(temp_path("late.h5"), provenance());
      Run run = make_run();
      auto recorder = out.recorder("/", herdsim::sim::RecordingPlan({}, run.state));
      out.commit();
      run.state.spec = &run.spec;
      set_step(run.state, 0);
      CHECK_THROWS_AS(recorder->on_start(run.state), herdsim::IoError);
      CHECK_THROWS_AS(out.commit(), herdsim::IoError);
    }
  }
}

// ---- a real engine run recorded on the fused path and by the step loop --------------------------

namespace {

/// Every dataset of a file by path, as raw bytes in its file type (variable-length strings by value).
std::map<std::string, std::string> dataset_bytes(const std::string& path) {
  std::map<std::string, std::string> out;
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(file >= 0);
  const auto visit = [](hid_t root, const char* name, const H5O_info_t* info, void* data) -> herr_t {
    if (info->type != H5O_TYPE_DATASET) return 0;
    auto& map = *static_cast<std::map<std::string, std::string>*>(data);
    const hid_t dset = H5Dopen2(root, name, H5P_DEFAULT);
    const hid_t type = H5Dget_type(dset);
    const hid_t space = H5Dget_space(dset);
    const auto elements = static_cast<std::size_t>(H5Sget_simple_extent_npoints(space));
    std::string bytes;
    if (H5Tis_variable_str(type) > 0) {
      std::vector<char*> strings(elements, nullptr);
      if (elements > 0) H5Dread(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, strings.data());
      for (char* s : strings) bytes += std::string(s == nullptr ? "" : s) + '\0';
      if (elements > 0) H5Dvlen_reclaim(type, space, H5P_DEFAULT, strings.data());
    } else {
      bytes.resize(elements * H5Tget_size(type));
      if (elements > 0) H5Dread(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
    }
    map[name] = std::move(bytes);
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(dset);
    return 0;
  };
  REQUIRE(H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, visit, &out, H5O_INFO_BASIC) >= 0);
  H5Fclose(file);
  return out;
}

/// Runs `spec` recorded into a fresh file, on the fused path or the step loop; returns the file's path.
std::string record_engine_run(const herdsim::sim::ScenarioSpec& spec, bool allow_fused,
                              const std::string& name) {
  const std::string path = temp_path(name);
  Hdf5Output out(path, provenance());
  auto simulation = herdsim::agents::make_simulation(spec);
  auto recorder = out.recorder("/", herdsim::sim::RecordingPlan(spec.record, simulation->state()));
  simulation->add_observer(recorder.get());
  herdsim::sim::RunOptions options;
  options.threads = 2;
  options.allow_fused = allow_fused;
  const herdsim::sim::RunSummary summary = simulation->run(options);
  CHECK(summary.fused == allow_fused);  // recorded plans in an exogenous market: fusable
  out.commit();
  return path;
}

}  // namespace

TEST_SUITE("io.hdf5_output") {
  TEST_CASE("a recorded run on the fused path writes the step loop's datasets bit for bit") {
    namespace test = herdsim::test;
    // An advisor, followers on a grid (a periodic plan), Merton investors with a distribution of alpha
    // (every row distinct: the full plan); 100 steps, so that every = 3 leaves an unaligned last row.
    auto spec = test::paper_spec(7, herdsim::agents::Policy::plan);
    spec.run.steps_per_year = 10;
    spec.populations[1].count = 301;
    auto spread = test::merton("spread", 97, 0.3);
    auto& alpha = herdsim::agents::params_of<herdsim::agents::MertonParams>(spread).alpha;
    alpha.form = herdsim::sim::ParamSpec::Form::distribution;
    alpha.distribution = {herdsim::sim::DistributionSpec::Kind::uniform, 0.1, 0.9, 0.1, 0.9};
    spec.populations.push_back(spread);
    int files = 0;
    for (const int every : {1, 3, 100}) {
      for (const bool summaries : {true, false}) {
        for (const bool subset : {false, true}) {
          CAPTURE(every);
          CAPTURE(summaries);
          CAPTURE(subset);
          spec.record = {};
          spec.record.every = every;
          spec.record.summaries = summaries;
          if (subset) {  // some paths and the first agents only
            spec.record.paths = {1, 4, 6};
            spec.record.max_agents = 5;
          }
          const std::string tag = std::to_string(every) + (summaries ? "s" : "") + (subset ? "p" : "");
          const auto looped = dataset_bytes(record_engine_run(spec, false, "loop_" + tag + ".h5"));
          const auto fused = dataset_bytes(record_engine_run(spec, true, "fused_" + tag + ".h5"));
          REQUIRE(looped.size() == fused.size());
          CHECK(looped.count("populations/spread/wealth") == 1);
          CHECK(looped.count("populations/spread/summary/wealth") == (summaries ? 1U : 0U));
          for (const auto& [name, bytes] : looped) {
            CAPTURE(name);
            REQUIRE(fused.count(name) == 1);
            CHECK(fused.at(name) == bytes);
          }
          ++files;
        }
      }
    }
    CHECK(files == 12);
  }
}
