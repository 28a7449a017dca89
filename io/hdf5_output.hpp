#pragma once
// The HDF5 trajectory file (layout: docs/hdf5-schema.md, schema_version 1). One Hdf5Output is one
// file; each run writes into its own group through an observer that appends rows as the run goes,
// so memory stays bounded whatever the run length. The file only gets its final name on commit().
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/master_file.hpp"
#include "io/output_file.hpp"
#include "sim/observer.hpp"
#include "sim/recording_plan.hpp"
#include "sim/scenario_spec.hpp"

namespace herdsim::io {

/// One output file. Written as PATH + ".partial"; commit() writes the root attribute complete = 1
/// last, closes and renames to PATH. Destroyed without commit (failure, Ctrl-C): closes and leaves
/// PATH.partial with complete = 0 — never a file that looks complete; an existing PATH is not
/// touched until commit. Every failing HDF5 call raises IoError naming the call and the object.
class Hdf5Output {
 public:
  /// What produced the file, stored as root attributes.
  struct Provenance {
    std::string herdsim_version;  ///< e.g. "0.1.0"
    std::uint64_t seed = 0;       ///< the run seed
    std::string scenario_text;    ///< the full scenario text after overrides
    std::string command_line;     ///< the command as typed
  };

  /// Seconds between flushes while recording: what a killed run can lose at most (docs/hdf5-schema.md).
  static constexpr double kFlushSeconds = 2.0;

  /// Claims PATH.partial (io::OutputFile: the path is checked, a second writer of the same output is
  /// refused, a stale partial of a killed run is taken over) and writes the root attributes, complete = 0.
  Hdf5Output(const std::string& path, const Provenance& provenance);
  /// As above, on an output already claimed (so that a command can claim it before long set-up work:
  /// claimed with OnFailure::remove, a failed set-up leaves nothing; this constructor switches to keep).
  Hdf5Output(std::unique_ptr<OutputFile> output, const Provenance& provenance);
  ~Hdf5Output();
  Hdf5Output(const Hdf5Output&) = delete;
  Hdf5Output& operator=(const Hdf5Output&) = delete;

  /// An observer writing one run into `group` ("/" for a single run, "/sweep_000" etc. for sweep
  /// points) exactly what `plan` says (steps, paths, agents, summaries; the plan decides, the recorder
  /// only writes); the group gets the attribute `sweep_point` (text "key=value;...") when it is given.
  /// Throws InputError for a plan that records nothing, and Error at on_start when the run is not the
  /// one the plan was made for.
  [[nodiscard]] std::unique_ptr<sim::Observer> recorder(const std::string& group,
                                                        const sim::RecordingPlan& plan,
                                                        const std::string& sweep_point = "");

  /// A master file of a distributed run (docs/cluster.md): `group` ("/sweep_003") becomes an external link
  /// to `object` in the part file `file` (a path relative to this file's folder, which HDF5 searches first)
  /// instead of data written here. schema_version: the part's; 2 makes the root's schema_version 2.
  void link_group(const std::string& group, const std::string& file, const std::string& object,
                  int schema_version);

  /// A master file of a path-split run (docs/cluster.md): `group` ("/" or "/sweep_003") stitched from the
  /// same group of every part, in path order, with virtual datasets along the path axis and the exact
  /// summaries over every path (io::write_stitched_group). schema_version: the parts'; 2 makes the root's 2.
  /// With `agents`, an agent split's: stitched along the agent axis of the split populations.
  void stitch_group(const std::string& group, const std::vector<PathPart>& parts,
                    const SummaryValues& summaries, int schema_version, const AgentBlocks* agents = nullptr);

  /// Marks the file complete, closes it (and every recorder's datasets) and renames it to path().
  void commit();
  /// Size of the committed file, in bytes (0 before commit).
  [[nodiscard]] std::uint64_t bytes_written() const { return bytes_written_; }
  /// The final path (the file lives at path() + ".partial" until commit).
  [[nodiscard]] const std::string& path() const { return path_; }

  struct File;  ///< the open HDF5 file, shared with the recorders (defined in the .cpp)

 private:
  std::string path_;
  std::shared_ptr<File> file_;
  std::uint64_t bytes_written_ = 0;
};

/// Call first in main, before any HDF5 call: HDF5 then does not close, at exit, files still open. A file
/// whose write failed (a full disk) can be neither flushed nor closed, and HDF5 1.10's own close of it at
/// exit crashes after the clear message was printed; herdsim closes every file it writes itself (or leaves
/// it as PATH.partial, complete = 0), so nothing is lost by skipping HDF5's exit handler.
void prepare_hdf5_library();

}  // namespace herdsim::io
