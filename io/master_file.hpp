#pragma once
// Master files of a distributed run (docs/cluster.md): each rank writes its sweep points into a part
// file with the serial writer; rank 0 checks every part (check_part) and commits a master file whose run
// groups are external links into the parts (Hdf5Output::link_group). merge_run_file copies a master
// file's linked groups into one self-contained file (`herdsim merge`).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace herdsim::io {

/// A run group a part file must hold, and what it must say about itself.
struct ExpectedGroup {
  std::string group;        ///< "/sweep_003"
  std::string sweep_point;  ///< its sweep_point attribute ("key=value;...")
  int steps = 0;            ///< decisions
  int paths_total = 0;      ///< paths in the run
};

/// Checks a part file: it exists, is complete (complete = 1), holds exactly the `expected` groups and
/// each is consistent (io::RunFile's checks of every dataset's shape against its attributes) and is the
/// run it should be (sweep point, steps, paths). Returns the part's schema_version. Throws IoError naming
/// the part and what is wrong: a master file never links a part that would read as fill or garbage.
int check_part(const std::string& part, const std::vector<ExpectedGroup>& expected);

/// One rank's part of a path-split run: paths [first, first + paths) of every run group (of an agent
/// split: every path, and a block of the agents of the split populations).
struct PathPart {
  std::string link;  ///< the part as the master names it: relative to the master file's folder
  std::string path;  ///< the part as this process opens it now
  int paths = 0;     ///< paths in its block (an agent split: the run's paths)
};

/// The blocks of an agent split (docs/cluster.md): per split population (its name), each part's agents, in
/// part order (which is agent order). A population not listed is whole in every part (replicated) and read
/// from the first part.
using AgentBlocks = std::map<std::string, std::vector<int>>;

/// The exact summaries of a path-split run (computed over every path by rank 0): rows x stats, row by
/// row, by the dataset's path in the master file ("/populations/noise/summary/wealth").
using SummaryValues = std::map<std::string, std::vector<double>>;

/// Writes `group` of a path-split master file (open as `file`, named `where` in messages) from the same
/// group of every part (checked first with check_part), in path order: every dataset with a path axis (its
/// `dims` attribute names `path`) becomes a virtual dataset stitching the parts' datasets along that axis;
/// the path coordinate is written as the whole run's (0 .. paths - 1); the summaries are written from
/// `summaries` (every summary dataset must be there); everything else (time, parameters, theory,
/// coordinates) is copied from the first part, where it is the same for every block. The group's
/// attributes are the first part's with paths_total and paths of the whole run; dimension scales are
/// attached as in the parts. IoError names the part whose shapes do not fit together.
/// `file` is the open master's hid_t (no HDF5 header here: tools/ include this file).
/// With `agents` (an agent split) the axis stitched is `agent`, in the datasets of the populations it
/// lists (each part's block of agents; the agent coordinate written as 0 .. count - 1 and the population's
/// count and recorded_agents as the whole population's); every other dataset, paths included, is copied
/// from the first part.
void write_stitched_group(std::int64_t file, const std::string& where, const std::string& group,
                          const std::vector<PathPart>& parts, const SummaryValues& summaries,
                          const AgentBlocks* agents = nullptr);

/// Writes `output` (claimed like every output: PATH.partial, committed by rename) as one self-contained
/// copy of `master`: root attributes as they are (complete set last), every run group copied from where
/// its link points, its dimension scales attached again in the copy; virtual datasets (a path split) are
/// written as ordinary datasets holding the data they read (contiguous, uncompressed). Reads any
/// complete run file (a plain one is copied as it is). Returns the bytes written. IoError on failure,
/// InputError for a bad output path.
std::uint64_t merge_run_file(const std::string& master, const std::string& output);

}  // namespace herdsim::io
