// The MPI communicator (built with HERDSIM_WITH_MPI). Plain MPI C calls: the few integers exchanged do
// not need Boost.MPI's serialization (docs/cluster.md says why it is not used).
#include <mpi.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dist/communicator.hpp"
#include "sim/error.hpp"

namespace herdsim::dist {

namespace {

void check(int status, const char* call) {
  if (status != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING] = {};
    int length = 0;
    MPI_Error_string(status, text, &length);
    throw Error(std::string("MPI: ") + call +
                " failed: " + std::string(text, static_cast<std::size_t>(length)));
  }
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    if (provided < MPI_THREAD_FUNNELED) {
      MPI_Finalize();
      throw Error("MPI: the library does not provide MPI_THREAD_FUNNELED (needed: oneTBB threads in a rank)");
    }
    // Errors come back as status codes (and become herdsim::Error), not as the default abort.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    // The ranks sharing this node's memory: a rank's place among them picks its GPU.
    MPI_Comm node = MPI_COMM_NULL;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
          "MPI_Comm_split_type");
    MPI_Comm_rank(node, &local_rank_);
    MPI_Comm_size(node, &local_size_);
    MPI_Comm_free(&node);
  }
  ~MpiCommunicator() override {
    if (window_ != MPI_WIN_NULL) MPI_Win_free(&window_);
    MPI_Finalize();
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return size_; }
  [[nodiscard]] int local_rank() const override { return local_rank_; }
  [[nodiscard]] int local_size() const override { return local_size_; }
  [[nodiscard]] std::string describe() const override {
    char text[MPI_MAX_LIBRARY_VERSION_STRING] = {};
    int length = 0;
    MPI_Get_library_version(text, &length);
    std::string version(text, static_cast<std::size_t>(length));
    const auto comma = version.find(',');
    return version.substr(0, comma);
  }

  void start_tasks(int tasks) override {
    // The shared task counter lives in a window on rank 0; ranks take tasks with an atomic fetch-and-add
    // (passive target: rank 0 need not take part while it runs its own tasks).
    if (window_ != MPI_WIN_NULL) check(MPI_Win_free(&window_), "MPI_Win_free");
    const MPI_Aint bytes = rank_ == 0 ? static_cast<MPI_Aint>(sizeof(std::int64_t)) : 0;
    check(MPI_Win_allocate(bytes, sizeof(std::int64_t), MPI_INFO_NULL, MPI_COMM_WORLD, &counter_, &window_),
          "MPI_Win_allocate");
    if (rank_ == 0) {
      check(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, window_), "MPI_Win_lock");
      *counter_ = 0;
      check(MPI_Win_unlock(0, window_), "MPI_Win_unlock");
    }
    tasks_ = tasks;
    check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");  // the counter is 0 before anyone takes a task
  }

  [[nodiscard]] int next_task() override {
    const std::int64_t one = 1;
    std::int64_t taken = 0;
    check(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, window_), "MPI_Win_lock");
    check(MPI_Fetch_and_op(&one, &taken, MPI_INT64_T, 0, 0, MPI_SUM, window_), "MPI_Fetch_and_op");
    check(MPI_Win_unlock(0, window_), "MPI_Win_unlock");
    return taken < tasks_ ? static_cast<int>(taken) : -1;
  }

  [[nodiscard]] int max_over_ranks(int code) override {
    int result = 0;
    check(MPI_Allreduce(&code, &result, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    return result;
  }

  [[nodiscard]] std::string broadcast_from_root(const std::string& text) override {
    int length = static_cast<int>(text.size());
    check(MPI_Bcast(&length, 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Bcast");
    std::string out = rank_ == 0 ? text : std::string(static_cast<std::size_t>(length), '\0');
    check(MPI_Bcast(out.data(), length, MPI_CHAR, 0, MPI_COMM_WORLD), "MPI_Bcast");
    return out;
  }

  [[nodiscard]] std::vector<std::vector<int>> gather_to_root(const std::vector<int>& values) override {
    std::vector<int> counts, offsets, all;
    gatherv(0, values, MPI_INT, all, counts, offsets);
    std::vector<std::vector<int>> out;
    for (std::size_t r = 0; r < counts.size(); ++r)
      out.emplace_back(all.begin() + offsets[r], all.begin() + offsets[r] + counts[r]);
    return out;
  }

  [[nodiscard]] std::vector<std::string> gather_to_all(const std::string& bytes) override {
    std::vector<int> counts, offsets;
    const std::size_t total = all_counts(bytes.size(), "bytes", "gather on every rank", counts, offsets);
    std::string all(total, '\0');
    check(MPI_Allgatherv(bytes.data(), static_cast<int>(bytes.size()), MPI_CHAR, all.data(), counts.data(),
                         offsets.data(), MPI_CHAR, MPI_COMM_WORLD),
          "MPI_Allgatherv");
    std::vector<std::string> out;
    for (std::size_t r = 0; r < counts.size(); ++r)
      out.push_back(all.substr(static_cast<std::size_t>(offsets[r]), static_cast<std::size_t>(counts[r])));
    return out;
  }

  void concatenate_on(int root, const std::vector<double>& values, std::vector<double>& out) override {
    gatherv(root, values, MPI_DOUBLE, out, counts_, offsets_);
  }

  void concatenate_all(std::span<const double> values, std::vector<double>& out) override {
    out.resize(all_counts(values.size(), "values", "concatenate on every rank", all_counts_, all_offsets_));
    // resize keeps the capacity: no new pages per step
    check(MPI_Allgatherv(values.data(), static_cast<int>(values.size()), MPI_DOUBLE, out.data(),
                         all_counts_.data(), all_offsets_.data(), MPI_DOUBLE, MPI_COMM_WORLD),
          "MPI_Allgatherv");
  }

  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; this is for the compiler
  }

 private:
  /// Every rank's element count (MPI_Allgather of this rank's `count`) into counts and their running offsets
  /// into offsets; returns the total. Counts and the total must fit an int (MPI's counts): otherwise an
  /// Error naming `what` ("bytes") and `doing` ("gather on every rank").
  std::size_t all_counts(std::size_t count, const char* what, const char* doing, std::vector<int>& counts,
                         std::vector<int>& offsets) const {
    if (count > static_cast<std::size_t>(std::numeric_limits<int>::max()))
      throw Error("MPI: " + std::to_string(count) + " " + what + " are too many to send in one message");
    const int mine = static_cast<int>(count);
    counts.assign(static_cast<std::size_t>(size_), 0);
    check(MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
    offsets.assign(counts.size(), 0);
    long long total = 0;
    for (std::size_t r = 0; r < counts.size(); ++r) {
      offsets[r] = static_cast<int>(total);
      total += counts[r];
      if (total > std::numeric_limits<int>::max())
        throw Error("MPI: more than " + std::to_string(std::numeric_limits<int>::max()) + " " + what +
                    " to " + doing);
    }
    return static_cast<std::size_t>(total);
  }

  /// Every rank's `values` concatenated in rank order into `all` on rank `root` (untouched elsewhere), with
  /// each rank's count and offset there. MPI counts are ints: more than INT_MAX values in all is an Error,
  /// not a wrap-around.
  template <class T>
  void gatherv(int root, const std::vector<T>& values, MPI_Datatype type, std::vector<T>& all,
               std::vector<int>& counts, std::vector<int>& offsets) {
    if (values.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
      throw Error("MPI: " + std::to_string(values.size()) + " values are too many to send in one message");
    int count = static_cast<int>(values.size());
    counts.assign(rank_ == root ? static_cast<std::size_t>(size_) : 0, 0);
    check(MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, root, MPI_COMM_WORLD), "MPI_Gather");
    long long total = 0;
    offsets.assign(counts.size(), 0);
    for (std::size_t r = 0; r < counts.size(); ++r) {
      offsets[r] = static_cast<int>(total);
      total += counts[r];
      if (total > std::numeric_limits<int>::max())
        throw Error("MPI: more than " + std::to_string(std::numeric_limits<int>::max()) +
                    " values to gather on one rank");
    }
    if (rank_ == root) all.resize(static_cast<std::size_t>(total));  // capacity kept: no new pages per row
    check(MPI_Gatherv(values.data(), count, type, all.data(), counts.data(), offsets.data(), type, root,
                      MPI_COMM_WORLD),
          "MPI_Gatherv");
  }

  std::vector<int> counts_, offsets_;          ///< concatenate_on's, reused
  std::vector<int> all_counts_, all_offsets_;  ///< concatenate_all's, reused
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  int tasks_ = 0;
  MPI_Win window_ = MPI_WIN_NULL;
  std::int64_t* counter_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() {
  return std::make_unique<MpiCommunicator>();
}

}  // namespace herdsim::dist
