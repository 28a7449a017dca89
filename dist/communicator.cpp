#include "dist/communicator.hpp"

#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace herdsim::dist {

#ifdef HERDSIM_WITH_MPI
std::unique_ptr<Communicator> make_mpi_communicator();  // communicator_mpi.cpp
#endif

namespace {

/// One rank: today's code path. Tasks are handed out in order.
class SerialCommunicator final : public Communicator {
 public:
  [[nodiscard]] int rank() const override { return 0; }
  [[nodiscard]] int size() const override { return 1; }
  [[nodiscard]] int local_rank() const override { return 0; }
  [[nodiscard]] int local_size() const override { return 1; }
  [[nodiscard]] std::string describe() const override { return "serial"; }
  void start_tasks(int tasks) override {
    tasks_ = tasks;
    next_ = 0;
  }
  [[nodiscard]] int next_task() override { return next_ < tasks_ ? next_++ : -1; }
  [[nodiscard]] int max_over_ranks(int code) override { return code; }
  [[nodiscard]] std::string broadcast_from_root(const std::string& text) override { return text; }
  [[nodiscard]] std::vector<std::vector<int>> gather_to_root(const std::vector<int>& values) override {
    return {values};
  }
  [[nodiscard]] std::vector<std::string> gather_to_all(const std::string& bytes) override { return {bytes}; }
  void concatenate_on(int /*root*/, const std::vector<double>& values, std::vector<double>& out) override {
    out = values;
  }
  void concatenate_all(std::span<const double> values, std::vector<double>& out) override {
    out.assign(values.begin(), values.end());
  }
  [[noreturn]] void abort(int code) override { std::exit(code); }

 private:
  int tasks_ = 0;
  int next_ = 0;
};

}  // namespace

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

bool built_with_mpi() {
#ifdef HERDSIM_WITH_MPI
  return true;
#else
  return false;
#endif
}

Communicator& world() {
  static const std::unique_ptr<Communicator> communicator = []() -> std::unique_ptr<Communicator> {
#ifdef HERDSIM_WITH_MPI
    if (launched_by_mpi()) return make_mpi_communicator();
#endif
    return std::make_unique<SerialCommunicator>();
  }();
  return *communicator;
}

}  // namespace herdsim::dist
