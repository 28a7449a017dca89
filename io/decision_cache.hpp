#pragma once
// The decision cache (docs/investagents.md, "Decision cache"): a backend in front of a model's that answers a
// request from disk when the same request was answered before — same model file (by content), adapters
// (by content), backend, prompt, grammar, max_tokens, temperature and seed — so that sweeps and reruns decide
// nothing twice. One append-only JSON Lines file per model identity in the cache folder; appends and reads
// hold flock locks, so concurrent runs share a cache; a malformed line is an InputError naming the file and
// line (exit 2).
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "sim/inference/backend.hpp"

namespace herdsim::io {

class CachedBackend final : public inference::Backend {
 public:
  /// Wraps `inner` (not null); the answers it gives for `spec` (model, lora, backend) are cached in the
  /// folder `dir` (created when missing). Hashes the model and adapter files (FNV-1a 64 of their bytes).
  /// Throws InputError for a folder that cannot be used or a corrupt cache file, IoError for unreadable
  /// models.
  CachedBackend(std::unique_ptr<inference::Backend> inner, const sim::InferenceSpec& spec,
                const std::string& dir);
  ~CachedBackend() override;
  CachedBackend(const CachedBackend&) = delete;
  CachedBackend& operator=(const CachedBackend&) = delete;

  /// Cached answers (Response::cache_hit, time_ms 0, the recorded token counts) for requests seen before;
  /// the others go to the inner backend in one call, and its successful answers are appended to the cache.
  [[nodiscard]] std::vector<inference::Response> generate(
      const std::vector<inference::Request>& requests) override;
  [[nodiscard]] std::string name() const override { return inner_->name(); }
  /// The inner backend's description with "decision_cache": the cache file.
  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] bool caches() const override { return true; }

  /// The cache file answers are read from and appended to.
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  struct Entry {
    std::string text;
    int prompt_tokens = 0;
    int cached_tokens = 0;
    int completion_tokens = 0;
  };
  /// Reads lines appended since the last read (by this or another process); caller holds a lock.
  void read_new_lines();
  [[nodiscard]] std::string key_of(const inference::Request& request) const;

  std::unique_ptr<inference::Backend> inner_;
  std::string identity_;  ///< backend, model and adapter hashes
  std::string path_;
  int fd_ = -1;
  std::uint64_t read_offset_ = 0;
  std::int64_t line_ = 0;
  std::unordered_map<std::string, Entry> entries_;
};

/// FNV-1a 64 of a file's bytes, as 16 hex digits (IoError when it cannot be read).
[[nodiscard]] std::string file_fnv1a64(const std::string& path);

}  // namespace herdsim::io
