#pragma once
// The communicator seam (docs/cluster.md): everything a distributed `herdsim run` asks of the other
// ranks, in one small interface. The one-rank version is today's code path (no MPI call at all); the MPI
// version (communicator_mpi.cpp, built with HERDSIM_WITH_MPI) is used only when the process was started
// by an MPI launcher (mpirun, srun). Floating-point results never meet in a reduction: each rank writes
// its own part file and rank 0 links them; the values a path split's exact summaries need are only
// concatenated on one rank (concatenate_on), which computes them as one process would.
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace herdsim::dist {

/// The ranks of one run.
class Communicator {
 public:
  virtual ~Communicator() = default;
  /// This process's rank, 0 .. size() - 1.
  [[nodiscard]] virtual int rank() const = 0;
  [[nodiscard]] virtual int size() const = 0;
  /// This process's rank among the ranks on its node (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED),
  /// 0 .. local_size() - 1: what picks a rank's GPU (docs/cluster.md, "LLM populations").
  [[nodiscard]] virtual int local_rank() const = 0;
  [[nodiscard]] virtual int local_size() const = 0;
  /// "Open MPI v4.1.4" or "serial": what carries the messages.
  [[nodiscard]] virtual std::string describe() const = 0;
  /// Dynamic assignment of tasks 0 .. tasks - 1: each call returns the next task no rank has taken yet
  /// (every task goes to exactly one rank), or -1 when none is left. Ranks call it as they finish, so a
  /// slow task does not hold up the others. Not collective. start_tasks(tasks) must be called on every
  /// rank first (collective).
  virtual void start_tasks(int tasks) = 0;
  [[nodiscard]] virtual int next_task() = 0;
  /// Collective: the largest of every rank's `code` (the agreement on an exit status: 0 when all are 0).
  [[nodiscard]] virtual int max_over_ranks(int code) = 0;
  /// Collective: rank 0's `text` on every rank.
  [[nodiscard]] virtual std::string broadcast_from_root(const std::string& text) = 0;
  /// Collective: every rank's list, on rank 0 (empty elsewhere), in rank order.
  [[nodiscard]] virtual std::vector<std::vector<int>> gather_to_root(const std::vector<int>& values) = 0;
  /// Collective: every rank's `bytes`, on every rank, in rank order (the answers of requests split across
  /// the ranks: each rank sends what it decided, every rank gets every answer).
  [[nodiscard]] virtual std::vector<std::string> gather_to_all(const std::string& bytes) = 0;
  /// Collective: every rank's values concatenated in rank order into `out` on rank `root` (left as it is
  /// elsewhere; its capacity is reused, row after row). The values travel as they are (bit for bit): the
  /// root computes from them, nothing is reduced on the way.
  virtual void concatenate_on(int root, const std::vector<double>& values, std::vector<double>& out) = 0;
  /// Collective: every rank's values concatenated in rank order into `out` on every rank (an agent split's
  /// block sums, every step: MPI_Allgatherv, bit for bit; every rank then adds them in the same order).
  virtual void concatenate_all(std::span<const double> values, std::vector<double>& out) = 0;
  /// Stops every rank of the run now with exit status `code` (after this rank printed why); does not
  /// return. The one-rank version exits the process.
  [[noreturn]] virtual void abort(int code) = 0;
};

/// The communicator of this process, made on first use: MPI when herdsim was built with MPI and started by
/// an MPI launcher (MPI_Init_thread with MPI_THREAD_FUNNELED: only the main thread talks MPI; oneTBB works
/// inside each rank), else the one-rank version (no MPI call). Throws Error when MPI cannot be started.
/// MPI is finalized at exit.
[[nodiscard]] Communicator& world();

/// True when the environment says this process was started by an MPI launcher (Open MPI's mpirun,
/// MPICH/Hydra, Slurm's srun with PMI or PMIx).
[[nodiscard]] bool launched_by_mpi();

/// True when this build has MPI support.
[[nodiscard]] bool built_with_mpi();

}  // namespace herdsim::dist
