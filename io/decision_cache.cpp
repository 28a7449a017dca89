#include "io/decision_cache.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <tuple>

#include "sim/error.hpp"
#include "sim/investalign/prompt.hpp"

namespace herdsim::io {

namespace {

namespace fs = std::filesystem;
using investalign::fnv1a64;
using investalign::hash_hex;

/// Holds an flock on fd while alive (blocking: concurrent runs wait for each other's appends).
class FileLock {
 public:
  FileLock(int fd, int operation, const std::string& path) : fd_(fd) {
    while (::flock(fd_, operation) != 0) {
      if (errno != EINTR)
        throw IoError(fmt::format("decision cache {}: cannot lock: {}", path, std::strerror(errno)));
    }
  }
  ~FileLock() { ::flock(fd_, LOCK_UN); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

std::string field(const std::string& s) {
  return s + std::string(1, '\0');
}

}  // namespace

std::string file_fnv1a64(const std::string& path) {
  // A sweep makes a backend per run: a file unchanged since it was hashed (same size and modification
  // time) is not read again.
  static std::mutex mutex;
  static std::map<std::tuple<std::string, std::uintmax_t, std::int64_t>, std::string> known;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  const auto mtime = fs::last_write_time(path, ec).time_since_epoch().count();
  const auto key = std::make_tuple(fs::absolute(path, ec).string(), size, static_cast<std::int64_t>(mtime));
  const std::lock_guard<std::mutex> lock(mutex);
  if (const auto it = known.find(key); it != known.end()) return it->second;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("decision cache: cannot read {} to hash it", path));
  std::uint64_t h = investalign::fnv1a64_offset;
  std::vector<char> buffer(std::size_t{1} << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    h = fnv1a64(std::string_view(buffer.data(), static_cast<std::size_t>(in.gcount())), h);
  }
  if (in.bad()) throw IoError(fmt::format("decision cache: cannot read {} to hash it", path));
  return known.emplace(key, hash_hex(h)).first->second;
}

CachedBackend::CachedBackend(std::unique_ptr<inference::Backend> inner, const sim::InferenceSpec& spec,
                             const std::string& dir)
    : inner_(std::move(inner)) {
  identity_ = field(spec.backend) + field(file_fnv1a64(spec.model));
  for (const auto& lora : spec.lora) identity_ += field("lora") + field(file_fnv1a64(lora));
  // Fast mode's answers may depend on the batch: never mixed with batch-invariant ones (whose keys stay).
  if (spec.mode != "batch_invariant") identity_ += field("mode") + field(spec.mode);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir, ec))
    throw InputError(fmt::format("decision cache: '{}' is not a folder that can be created or used", dir));
  path_ = (fs::path(dir) / fmt::format("decisions-{}.jsonl", hash_hex(fnv1a64(identity_)))).string();
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw InputError(fmt::format("decision cache: cannot open {}: {}", path_, std::strerror(errno)));
  const FileLock lock(fd_, LOCK_SH, path_);
  read_new_lines();
}

CachedBackend::~CachedBackend() {
  if (fd_ >= 0) ::close(fd_);
}

void CachedBackend::read_new_lines() {
  struct stat st {};
  if (::fstat(fd_, &st) != 0)
    throw IoError(fmt::format("decision cache {}: {}", path_, std::strerror(errno)));
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size <= read_offset_) return;
  std::string bytes(size - read_offset_, '\0');
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n =
        ::pread(fd_, bytes.data() + got, bytes.size() - got, static_cast<off_t>(read_offset_ + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw IoError(fmt::format("decision cache {}: cannot read: {}", path_, std::strerror(errno)));
    got += static_cast<std::size_t>(n);
  }
  std::size_t begin = 0;
  while (begin < bytes.size()) {
    const auto end = bytes.find('\n', begin);
    ++line_;
    const auto corrupt = [&](const std::string& why) {
      return InputError(
          fmt::format("decision cache {} is corrupt at line {}: {}; remove the file or run with "
                      "--no-cache",
                      path_, line_, why));
    };
    if (end == std::string::npos) throw corrupt("the last line is incomplete");
    try {
      const auto j = nlohmann::json::parse(std::string_view(bytes).substr(begin, end - begin));
      Entry e{j.at("text").get<std::string>(), j.at("prompt_tokens").get<int>(),
              j.at("cached_tokens").get<int>(), j.at("completion_tokens").get<int>()};
      entries_.insert_or_assign(j.at("key").get<std::string>(), std::move(e));
    } catch (const nlohmann::json::exception& ex) {
      throw corrupt(ex.what());
    }
    begin = end + 1;
  }
  read_offset_ = size;
}

std::string CachedBackend::key_of(const inference::Request& r) const {
  std::string bytes =
      identity_ + field(r.system) + field(r.user) + field(r.grammar) +
      fmt::format("{}:{:016x}:{}", r.max_tokens, std::bit_cast<std::uint64_t>(r.temperature), r.seed);
  // Two 64-bit FNV-1a from different starting states: a 128-bit key (an integrity key, not cryptographic).
  return hash_hex(fnv1a64(bytes)) + hash_hex(fnv1a64(bytes, fnv1a64("herdsim decision cache")));
}

std::vector<inference::Response> CachedBackend::generate(const std::vector<inference::Request>& requests) {
  std::vector<inference::Response> out(requests.size());
  std::vector<std::string> keys;
  std::vector<std::size_t> missing;
  {
    const FileLock lock(fd_, LOCK_SH, path_);
    read_new_lines();  // what concurrent runs added meanwhile
  }
  for (std::size_t i = 0; i < requests.size(); ++i) {
    keys.push_back(key_of(requests[i]));
    const auto it = entries_.find(keys.back());
    if (it == entries_.end()) {
      missing.push_back(i);
      continue;
    }
    inference::Response& r = out[i];
    r.text = it->second.text;
    r.prompt_tokens = it->second.prompt_tokens;
    r.cached_tokens = it->second.cached_tokens;
    r.completion_tokens = it->second.completion_tokens;
    r.cache_hit = true;
  }
  if (missing.empty()) return out;
  std::vector<inference::Request> asked;
  for (const auto i : missing) asked.push_back(requests[i]);
  const std::vector<inference::Response> answers = inner_->generate(asked);
  if (answers.size() != asked.size()) return answers;  // the caller reports the mismatch
  std::string lines;
  for (std::size_t j = 0; j < missing.size(); ++j) {
    const inference::Response& a = answers[j];
    out[missing[j]] = a;
    if (!a.ok()) continue;  // failures are not answers: asked again next time
    lines += nlohmann::json{{"key", keys[missing[j]]},
                            {"text", a.text},
                            {"prompt_tokens", a.prompt_tokens},
                            {"cached_tokens", a.cached_tokens},
                            {"completion_tokens", a.completion_tokens}}
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
             '\n';
    entries_.insert_or_assign(keys[missing[j]],
                              Entry{a.text, a.prompt_tokens, a.cached_tokens, a.completion_tokens});
  }
  if (!lines.empty()) {
    const FileLock lock(fd_, LOCK_EX, path_);
    read_new_lines();  // keep the offset at the end of what others appended
    std::size_t done = 0;
    while (done < lines.size()) {
      const ssize_t n = ::write(fd_, lines.data() + done, lines.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        throw IoError(fmt::format("decision cache {}: cannot append: {}", path_, std::strerror(errno)));
      done += static_cast<std::size_t>(n);
    }
    read_offset_ += lines.size();
    line_ += static_cast<std::int64_t>(std::count(lines.begin(), lines.end(), '\n'));
  }
  return out;
}

std::string CachedBackend::describe() const {
  nlohmann::json j = nlohmann::json::object();
  try {
    j = nlohmann::json::parse(inner_->describe());
  } catch (const nlohmann::json::exception&) {
    j = {{"engine", inner_->describe()}};
  }
  if (!j.is_object()) j = {{"engine", j}};
  j["decision_cache"] = path_;
  return j.dump();
}

}  // namespace herdsim::io
