#pragma once
// Master files of a distributed run (docs/cluster.md): each rank writes its sweep points into a part
// file with the serial writer; rank 0 checks every part (check_part) and commits a master file whose run
// groups are external links into the parts (Hdf5Output::link_group). merge_run_file copies a master
// file's linked groups into one self-contained file (`herdsim merge`).
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

/// Writes `output` (claimed like every output: PATH.partial, committed by rename) as one self-contained
/// copy of `master`: root attributes as they are (complete set last), every run group copied from where
/// its link points, its dimension scales attached again in the copy. Reads any
/// complete run file (a plain one is copied as it is). Returns the bytes written. IoError on failure,
/// InputError for a bad output path.
std::uint64_t merge_run_file(const std::string& master, const std::string& output);

}  // namespace herdsim::io
