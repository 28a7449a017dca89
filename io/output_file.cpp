#include "io/output_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "sim/error.hpp"

namespace herdsim::io {

namespace fs = std::filesystem;

namespace {

std::string errno_text(int error) {
  return std::strerror(error);
}

/// Takes the exclusive lock on `fd` without waiting, or closes it and throws: another process holding it
/// is the user's to resolve (InputError naming `shown`, the output being written, and suggesting another
/// `kind` of output); any other failure to lock `lock_path` is an IoError.
void lock_or_refuse(int fd, const std::string& what, const std::string& path, const std::string& shown,
                    const std::string& lock_path, const char* kind) {
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return;
  const int error = errno;
  ::close(fd);
  if (error == EWOULDBLOCK) {
    throw InputError(fmt::format(
        "{} '{}' is being written by another process ('{}' is locked); wait for it or choose another {}",
        what, path, shown, kind));
  }
  throw IoError(fmt::format("{} '{}': cannot lock '{}': {}", what, path, lock_path, errno_text(error)));
}

const char* file_type_name(const struct stat& st) {
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  if (S_ISCHR(st.st_mode)) return "a character device";
  if (S_ISBLK(st.st_mode)) return "a block device";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  if (S_ISREG(st.st_mode)) return nullptr;
  return "not a regular file";
}

/// The folder a file path lives in ("." for a bare name).
fs::path folder_of(const fs::path& path) {
  const fs::path parent = path.parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

void check_folder(const fs::path& folder, const std::string& what, const std::string& path) {
  struct stat st {};
  if (::stat(folder.c_str(), &st) != 0) {
    throw InputError(fmt::format("{} '{}': its folder '{}' does not exist", what, path, folder.string()));
  }
  if (!S_ISDIR(st.st_mode)) {
    throw InputError(fmt::format("{} '{}': '{}' is not a folder", what, path, folder.string()));
  }
  if (::access(folder.c_str(), W_OK | X_OK) != 0) {
    throw InputError(fmt::format("{} '{}': cannot write in folder '{}': {}", what, path, folder.string(),
                                 errno_text(errno)));
  }
}

bool same_file(const fs::path& a, const fs::path& b) {
  struct stat sa {};
  struct stat sb {};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

}  // namespace

fs::path check_output_path(const std::string& path, const std::string& what,
                           const std::vector<std::string>& inputs) {
  if (path.empty()) throw InputError(fmt::format("{}: the path is empty", what));
  fs::path target(path);
  struct stat st {};
  // A symlink means its target (docs/output-files.md), which need not exist yet: follow the chain.
  for (int hops = 0; ::lstat(target.c_str(), &st) == 0 && S_ISLNK(st.st_mode); ++hops) {
    std::error_code ec;
    const fs::path next = fs::read_symlink(target, ec);
    if (ec || hops == 40) {
      throw InputError(fmt::format("{} '{}' is a symlink that cannot be followed{}{}", what, path,
                                   ec ? ": " : " (a loop)", ec ? ec.message() : ""));
    }
    target = next.is_absolute() ? next : folder_of(target) / next;
  }
  if (::stat(target.c_str(), &st) == 0) {
    if (const char* type = file_type_name(st)) {
      throw InputError(
          fmt::format("{} '{}' is {}; give a file path (it was left untouched)", what, path, type));
    }
  } else if (errno != ENOENT && errno != ENOTDIR) {  // ENOTDIR: the folder check below names the culprit
    throw InputError(fmt::format("{} '{}': {}", what, path, errno_text(errno)));
  }
  check_folder(folder_of(target), what, path);
  for (const std::string& input : inputs) {
    if (same_file(target, input)) {
      throw InputError(fmt::format("{} '{}' is the input '{}'; it would be overwritten", what, path, input));
    }
  }
  return target;
}

OutputFile::OutputFile(const std::string& path, OnFailure on_failure, const std::string& what,
                       const std::vector<std::string>& inputs)
    : on_failure_(on_failure) {
  path_ = check_output_path(path, what, inputs).string();
  partial_ = path_ + ".partial";
  // Claim PATH.partial: open without truncating, take an exclusive lock without waiting, then make
  // sure the name still refers to the locked file (a writer that committed in between renamed it).
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(partial_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) {  // before any work, so the user's to fix: a bad input
      throw InputError(
          fmt::format("{} '{}': cannot create '{}': {}", what, path, partial_, errno_text(errno)));
    }
    lock_or_refuse(fd, what, path, partial_, partial_, "output");
    struct stat held {};
    struct stat named {};
    if (::fstat(fd, &held) == 0 && ::stat(partial_.c_str(), &named) == 0 && held.st_dev == named.st_dev &&
        held.st_ino == named.st_ino) {
      if (!S_ISREG(held.st_mode)) {
        ::close(fd);
        throw InputError(fmt::format("{} '{}': '{}' is {}", what, path, partial_, file_type_name(held)));
      }
      // A stale PATH.partial of a killed run: ours now, start from empty.
      if (::ftruncate(fd, 0) != 0) {
        const int error = errno;
        ::close(fd);
        throw IoError(
            fmt::format("{} '{}': cannot truncate '{}': {}", what, path, partial_, errno_text(error)));
      }
      fd_ = fd;
      return;
    }
    ::close(fd);  // renamed away by a writer that committed meanwhile: try the name again
  }
  throw IoError(fmt::format("{} '{}': cannot claim '{}': it keeps changing", what, path, partial_));
}

void write_output_text(const std::string& path, std::string_view text, const std::string& what,
                       const std::vector<std::string>& inputs) {
  OutputFile out(path, OutputFile::OnFailure::remove, what, inputs);
  out.write(text.data(), text.size());
  out.commit();
}

OutputFile::~OutputFile() {
  if (fd_ < 0) return;
  if (!committed_ && on_failure_ == OnFailure::remove) ::unlink(partial_.c_str());  // still ours: locked
  ::close(fd_);
}

void OutputFile::write(const void* data, std::size_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd_, p, bytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError(fmt::format("cannot write '{}': {}", partial_, errno_text(errno)));
    }
    p += n;
    bytes -= static_cast<std::size_t>(n);
  }
}

void OutputFile::commit() {
  if (committed_) throw IoError(fmt::format("'{}' is already committed", path_));
  if (::fsync(fd_) != 0) throw IoError(fmt::format("cannot flush '{}': {}", partial_, errno_text(errno)));
  struct stat st {};
  if (::fstat(fd_, &st) == 0) bytes_ = static_cast<std::uint64_t>(st.st_size);
  // Renamed while the lock is held: no other writer can claim the file between the rename and the close.
  if (::rename(partial_.c_str(), path_.c_str()) != 0) {
    throw IoError(fmt::format("cannot rename '{}' to '{}': {}", partial_, path_, errno_text(errno)));
  }
  committed_ = true;
  const int dir = ::open(folder_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {  // best effort: make the rename itself durable
    ::fsync(dir);
    ::close(dir);
  }
  ::close(fd_);
  fd_ = -1;
}

namespace {

constexpr const char* kLockName = ".herdsim.lock";

/// Removes what a killed command left in a staging folder (never following symlinks out of it).
void empty_folder(const fs::path& folder) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (entry.path().filename() == kLockName) continue;
    std::error_code ignored;
    fs::remove_all(entry.path(), ignored);
  }
}

}  // namespace

OutputDirectory::OutputDirectory(const std::string& path, const std::string& what) {
  if (path.empty()) throw InputError(fmt::format("{}: the path is empty", what));
  path_ = fs::path(path).lexically_normal();
  if (!path_.has_filename()) path_ = path_.parent_path();  // "out/" is "out"
  if (path_.empty() || path_ == "." || path_ == "..") path_ = fs::absolute(path_).lexically_normal();
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      throw InputError(fmt::format("{} '{}' exists and is not a folder (it was left untouched)", what, path));
    }
    if (::access(path_.c_str(), W_OK | X_OK) != 0) {
      throw InputError(fmt::format("{} '{}': cannot write in it: {}", what, path, errno_text(errno)));
    }
  }
  check_folder(folder_of(path_), what, path);
  staging_ = path_;
  staging_ += ".partial";
  const fs::path lock = staging_ / kLockName;
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (::mkdir(staging_.c_str(), 0777) != 0 && errno != EEXIST) {
      throw IoError(
          fmt::format("{} '{}': cannot create '{}': {}", what, path, staging_.string(), errno_text(errno)));
    }
    const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // the staging folder was just committed by another process
      throw IoError(
          fmt::format("{} '{}': cannot create '{}': {}", what, path, lock.string(), errno_text(errno)));
    }
    lock_or_refuse(fd, what, path, staging_.string(), lock.string(), "folder");
    struct stat held {};
    struct stat named {};
    if (::fstat(fd, &held) == 0 && ::stat(lock.c_str(), &named) == 0 && held.st_dev == named.st_dev &&
        held.st_ino == named.st_ino) {
      lock_fd_ = fd;
      empty_folder(staging_);  // a stale staging folder of a killed command: ours now
      return;
    }
    ::close(fd);
  }
  throw IoError(fmt::format("{} '{}': cannot claim '{}': it keeps changing", what, path, staging_.string()));
}

void OutputDirectory::commit(const std::vector<std::string>& last) {
  if (committed_) throw IoError(fmt::format("'{}' is already committed", path_.string()));
  std::vector<fs::path> first_files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(staging_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == kLockName) continue;
    if (std::find(last.begin(), last.end(), name) == last.end()) first_files.push_back(entry.path());
  }
  if (ec) throw IoError(fmt::format("cannot list '{}': {}", staging_.string(), ec.message()));
  // Everything written reaches the disk before any of it is published.
  for (const auto& entry : fs::directory_iterator(staging_, ec)) {
    const int fd = ::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    const int synced = ::fsync(fd);
    ::close(fd);
    if (synced != 0)
      throw IoError(fmt::format("cannot flush '{}': {}", entry.path().string(), errno_text(errno)));
  }
  if (::mkdir(path_.c_str(), 0777) != 0 && errno != EEXIST) {
    throw IoError(fmt::format("cannot create '{}': {}", path_.string(), errno_text(errno)));
  }
  for (const std::string& name : last) {
    if (::unlink((path_ / name).c_str()) != 0 && errno != ENOENT) {
      throw IoError(
          fmt::format("cannot remove the old '{}': {}", (path_ / name).string(), errno_text(errno)));
    }
  }
  auto move = [&](const fs::path& from) {
    const fs::path to = path_ / from.filename();
    if (::rename(from.c_str(), to.c_str()) != 0) {
      throw IoError(
          fmt::format("cannot move '{}' to '{}': {}", from.string(), to.string(), errno_text(errno)));
    }
  };
  for (const fs::path& file : first_files) move(file);
  for (const std::string& name : last) {
    if (fs::exists(staging_ / name, ec)) move(staging_ / name);
  }
  committed_ = true;
  // Still locked while the staging folder goes away: no other writer can claim it half-removed.
  ::unlink((staging_ / kLockName).c_str());
  ::rmdir(staging_.c_str());
  ::close(lock_fd_);
  lock_fd_ = -1;
}

OutputDirectory::~OutputDirectory() {
  if (lock_fd_ < 0) return;
  empty_folder(staging_);
  ::unlink((staging_ / kLockName).c_str());
  ::rmdir(staging_.c_str());
  ::close(lock_fd_);
}

}  // namespace herdsim::io
