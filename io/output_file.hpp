#pragma once
// The rules every command that writes a file follows (run, compare and its side file, report, export,
// dataset), in one place (docs/output-files.md):
//  * the output path is checked before any work: a directory, FIFO, device or socket is refused and left
//    untouched, a missing or unwritable folder is reported, an input is never an output;
//  * a symlink means its target: the file is written beside the target and replaces it (the link stays);
//  * the data go to PATH.partial, claimed with an exclusive lock, so a second writer of the same output
//    fails before it touches the first one's file; a stale PATH.partial left by a killed run is taken over;
//  * commit() syncs and renames PATH.partial to PATH (the rename is the commit point: a file named PATH is
//    always complete); without commit, PATH.partial stays (incomplete-marked) or is removed, as asked.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace herdsim::io {

/// Checks an output path before any work and returns the path to write (a symlink's target).
/// Throws InputError naming `what` (e.g. "output", "-o") and the reason: the path is a directory, FIFO,
/// device or socket; a dangling symlink; its folder is missing or not writable; it is one of `inputs`.
std::filesystem::path check_output_path(const std::string& path, const std::string& what = "output",
                                        const std::vector<std::string>& inputs = {});

/// One output file being written. The constructor checks the path (check_output_path) and claims
/// PATH.partial; write through partial_path() (any library) or fd().
class OutputFile {
 public:
  /// What happens to PATH.partial when the object is destroyed without commit().
  enum class OnFailure {
    keep,    ///< leave it: it is incomplete-marked by its own content (HDF5 `complete = 0`)
    remove,  ///< delete it (text outputs, which carry no mark of their own)
  };

  /// Throws InputError for a bad path, when PATH.partial cannot be created or is held by another process
  /// (all before any work, for the user to change).
  explicit OutputFile(const std::string& path, OnFailure on_failure = OnFailure::remove,
                      const std::string& what = "output", const std::vector<std::string>& inputs = {});
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  /// The final path (a symlink's target where the path given was a symlink).
  [[nodiscard]] const std::string& path() const { return path_; }
  /// Where the data go until commit(): path() + ".partial".
  [[nodiscard]] const std::string& partial_path() const { return partial_; }
  /// The claimed PATH.partial, open read-write (emptied when claimed).
  [[nodiscard]] int fd() const { return fd_; }
  /// Changes what happens without commit (e.g. remove while set-up work runs, keep once data are in).
  void set_on_failure(OnFailure on_failure) { on_failure_ = on_failure; }
  /// Writes all of `data` at the current position of fd(); IoError on failure.
  void write(const void* data, std::size_t bytes);
  /// Flushes PATH.partial to storage and renames it to path(); then releases the claim. IoError on failure.
  void commit();
  [[nodiscard]] bool committed() const { return committed_; }
  /// Size of the committed file, bytes.
  [[nodiscard]] std::uint64_t bytes_written() const { return bytes_; }

 private:
  std::string path_;
  std::string partial_;
  int fd_ = -1;
  OnFailure on_failure_;
  bool committed_ = false;
  std::uint64_t bytes_ = 0;
};

/// Writes a whole text output (a report, a side file) by the rules above: claimed, written, committed.
void write_output_text(const std::string& path, std::string_view text, const std::string& what = "output",
                       const std::vector<std::string>& inputs = {});

/// An output folder whose files are written together (report, dataset). The files are written into a
/// staging folder PATH.partial, claimed with an exclusive lock like OutputFile's; commit() moves them into
/// PATH (created then: a failed command leaves no folder behind) and removes the staging folder. Without
/// commit, the staging folder and what was written into it are removed. Files of PATH that the command
/// does not write are left as they are.
class OutputDirectory {
 public:
  /// Throws InputError when `path` exists and is not a folder, its parent is missing or not writable, or
  /// another process is writing the same folder; IoError when the staging folder cannot be made.
  explicit OutputDirectory(const std::string& path, const std::string& what = "output folder");
  ~OutputDirectory();
  OutputDirectory(const OutputDirectory&) = delete;
  OutputDirectory& operator=(const OutputDirectory&) = delete;

  /// The folder the files end up in.
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  /// Where to write them until commit().
  [[nodiscard]] const std::filesystem::path& staging() const { return staging_; }
  /// Moves every staged file into path(). The files named in `last` (e.g. a card or an index that vouches
  /// for the others) are removed from path() first and moved in after all the others, so that they never
  /// describe a mix of old and new files. IoError on failure.
  void commit(const std::vector<std::string>& last = {});

 private:
  std::filesystem::path path_;
  std::filesystem::path staging_;
  int lock_fd_ = -1;
  bool committed_ = false;
};

}  // namespace herdsim::io
