#pragma once
// LLM populations under a path split (docs/cluster.md, "LLM populations"): each rank has its own backend
// (its own model, on its own GPU) and decides the requests of its own paths; the path-independent
// requests that every rank asks alike (an InvestAgent's plan at t = 0: Backend::generate_shared) are
// shared out among the ranks, each decided by one rank, and every rank gets every answer. Nothing is
// decided twice.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.hpp"
#include "sim/inference/backend.hpp"

namespace herdsim::cli {

/// A rank's backend in a path split: generate() is the inner backend's (this rank's own requests);
/// generate_shared() is collective (every rank calls it with the same requests, in the same order): rank r
/// of N decides the block [floor(r n / N), floor((r + 1) n / N)) of the n requests with the inner backend
/// and the answers travel to every rank (Communicator::gather_to_all), as they are, in request order.
/// Each answer depends only on its request (the Backend contract; llama's batch-invariant mode), so the
/// answers are those of one process.
class SharedBackend final : public inference::Backend {
 public:
  /// `decided`: incremented by the requests this rank decides (its own and its block of the shared ones).
  SharedBackend(std::unique_ptr<inference::Backend> inner, dist::Communicator& world,
                std::shared_ptr<std::int64_t> decided);
  [[nodiscard]] std::vector<inference::Response> generate(
      const std::vector<inference::Request>& requests) override;
  [[nodiscard]] std::vector<inference::Response> generate_shared(
      const std::vector<inference::Request>& requests) override;
  [[nodiscard]] std::string name() const override { return inner_->name(); }
  [[nodiscard]] std::string describe() const override { return inner_->describe(); }
  [[nodiscard]] bool caches() const override { return inner_->caches(); }

 private:
  std::unique_ptr<inference::Backend> inner_;
  dist::Communicator& world_;
  std::shared_ptr<std::int64_t> decided_;
};

/// The backends of `inner`, each wrapped in a SharedBackend of `world`; `decided` counts the requests this
/// rank decides over every backend it makes.
[[nodiscard]] inference::BackendFactory shared_backend_factory(inference::BackendFactory inner,
                                                               dist::Communicator& world,
                                                               std::shared_ptr<std::int64_t> decided);

/// Responses as bytes and back, bit for bit (status, text, error, token counts, time, cache hit): what
/// travels between ranks.
[[nodiscard]] std::string encode_responses(const std::vector<inference::Response>& responses);
/// Appends the responses of `bytes` to `out`; Error when the bytes are not encode_responses' output.
void decode_responses(const std::string& bytes, std::vector<inference::Response>& out);

}  // namespace herdsim::cli
