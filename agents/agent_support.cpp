#include "agents/agent_support.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <fmt/format.h>

#include "sim/error.hpp"

namespace herdsim::agents {

const Eigen::VectorXd& param(const sim::PopulationState& pop, const std::string& name) {
  for (const auto& [key, values] : pop.params) {
    if (key == name) return values;
  }
  throw Error(fmt::format("population '{}' has no parameter '{}'", pop.name, name));
}

void play_plan(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1, sim::PopulationState& own) {
  const int len = a1 - a0;
  for (int p = p0; p < p1; ++p) {
    own.amount.col(p).segment(a0, len) = own.theory_amount.col(ctx.step).segment(a0, len);
  }
  // Several assets: asset a's plan is columns [a steps, (a + 1) steps), its amounts [a paths, (a + 1) paths).
  const Eigen::Index paths = own.wealth.cols();
  const Eigen::Index assets = own.amount.cols() / paths;
  const Eigen::Index steps = own.theory_amount.cols() / assets;
  for (Eigen::Index a = 1; a < assets; ++a) {
    for (int p = p0; p < p1; ++p) {
      own.amount.col(a * paths + p).segment(a0, len) =
          own.theory_amount.col(a * steps + ctx.step).segment(a0, len);
    }
  }
}

void set_initial_wealth(sim::PopulationState& own) {
  const Eigen::VectorXd& w0 = param(own, "wealth0");
  // Path by path in parallel: at 10^5 agents x 200 paths this is 160 MB to write.
  tbb::parallel_for(
      tbb::blocked_range<Eigen::Index>(0, own.wealth.cols(), 1),
      [&](const tbb::blocked_range<Eigen::Index>& r) {
        for (Eigen::Index p = r.begin(); p != r.end(); ++p) own.wealth.col(p) = w0;
      },
      tbb::simple_partitioner{});
}

void add_kind_state(sim::PopulationState& own, std::string name, Eigen::Index rows, Eigen::Index cols) {
  own.kind_state.emplace_back(std::move(name), Eigen::MatrixXd::Zero(rows, cols));
}

const Eigen::MatrixXd& kind_state(const sim::PopulationState& own, std::string_view name) {
  if (const Eigen::MatrixXd* values = own.find_kind_state(name)) return *values;
  throw Error(fmt::format("population '{}' has no kind state '{}'", own.name, name));
}

Eigen::MatrixXd& kind_state(sim::PopulationState& own, std::string_view name) {
  if (Eigen::MatrixXd* values = own.find_kind_state(name)) return *values;
  throw Error(fmt::format("population '{}' has no kind state '{}'", own.name, name));
}

}  // namespace herdsim::agents
