// Writes a small known HDF5 file through Hdf5Output for test_hdf5_h5py.py, which recomputes every
// value from the same formulas. Usage: write_sample_h5 OUTPUT.h5
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>

#include "agents/merton_agent.hpp"
#include "agents/noise_agent.hpp"
#include "io/hdf5_output.hpp"

namespace {

// Keep in step with test_hdf5_h5py.py.
constexpr int kPaths = 4;
constexpr int kCounts[2] = {5, 3};
double wealth_at(int i, int a, int p, int s) {
  return 50.0 * (i + 1) + 3 * a + 0.7 * p + 0.1 * s * s + (a * 5 + p + s * 2) % 4;
}
double amount_at(int i, int a, int p, int k) {
  return 1.0 + 0.5 * a - 0.2 * p + 0.05 * k * (i + 1) + (a + p + k) % 3;
}
double price_at(int p, int s) {
  return 2.0 + 0.3 * p + 0.01 * s;
}
double shock_at(int p, int k) {
  return 0.1 * (p + 1) * (k - 3);
}

void set_step(herdsim::sim::RunState& state, int s) {
  for (int p = 0; p < kPaths; ++p) {
    state.market.price(p, 0) = price_at(p, s);
    if (s > 0) {
      state.market.simple_return(p, 0) = price_at(p, s) / price_at(p, s - 1) - 1.0;
      state.market.shock(p, 0) = shock_at(p, s - 1);
    }
  }
  for (std::size_t i = 0; i < state.populations.size(); ++i) {
    auto& pop = state.populations[i];
    const int ii = static_cast<int>(i);
    for (int p = 0; p < kPaths; ++p) {
      for (int a = 0; a < pop.count; ++a) {
        pop.wealth(a, p) = wealth_at(ii, a, p, s);
        pop.amount(a, p) = s > 0 ? amount_at(ii, a, p, s - 1) : std::nan("");
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: write_sample_h5 OUTPUT.h5\n");
    return 2;
  }
  try {
    herdsim::sim::ScenarioSpec spec;
    spec.run.horizon = 3.5;
    spec.run.steps_per_year = 2;
    spec.record.every = 3;
    spec.record.paths = {3, 1};
    spec.record.max_agents = 4;
    spec.record.compression = 2;
    spec.text = "[run]\nhorizon = 3.5\n";

    herdsim::sim::RunState state;
    state.spec = &spec;
    state.steps = spec.run.steps();
    state.paths = kPaths;
    state.market.price.resize(kPaths, 1);
    state.market.simple_return.resize(kPaths, 1);
    state.market.shock.resize(kPaths, 1);
    for (int i = 0; i < 2; ++i) {
      herdsim::sim::PopulationState pop;
      pop.name = i == 0 ? "rational" : "noisy";
      pop.kind = i == 0 ? herdsim::agents::MertonParams::kind : herdsim::agents::NoiseParams::kind;
      pop.count = kCounts[i];
      Eigen::VectorXd alpha(pop.count);
      for (int a = 0; a < pop.count; ++a) alpha[a] = 0.5 + 0.1 * a + i;
      pop.params.emplace_back("alpha", alpha);
      if (i == 0) {
        pop.theory_amount.resize(pop.count, state.steps);
        for (int k = 0; k < state.steps; ++k) {
          for (int a = 0; a < pop.count; ++a) pop.theory_amount(a, k) = 10.0 * k + 0.5 * a;
        }
      }
      pop.wealth.resize(pop.count, kPaths);
      pop.amount.resize(pop.count, kPaths);
      state.populations.push_back(pop);
    }

    herdsim::io::Hdf5Output out(argv[1], {"0.1.0-sample", 7, spec.text, "write_sample_h5 OUTPUT.h5"});
    auto recorder =
        out.recorder("/sweep_000", herdsim::sim::RecordingPlan(spec.record, state), "market.sigma=0.2");
    set_step(state, 0);
    recorder->on_start(state);
    for (int k = 0; k < state.steps; ++k) {
      set_step(state, k + 1);
      recorder->on_step(k, state);
    }
    recorder->on_finish(state);
    out.commit();
    std::printf("%llu\n", static_cast<unsigned long long>(out.bytes_written()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "write_sample_h5: %s\n", e.what());
    return 1;
  }
  return 0;
}
