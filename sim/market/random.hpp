#pragma once
// Counter-based random numbers (Random123's Philox4x64-10): every draw is a pure function of
// (seed, stream, path, step, index), so results are identical for any thread count or schedule.
#include <Random123/philox.h>
#include <Random123/boxmuller.hpp>
#include <Random123/uniform.hpp>
#include <cstdint>

namespace herdsim::sim {

/// Independent streams of one run; each consumer draws from its own so adding one never shifts another.
enum class Stream : std::uint64_t { market = 1, noise = 2, parameters = 3, inference = 4 };

/// Stateless generator keyed by the run's seed. Cheap to copy; thread-safe (const).
class CounterRng {
 public:
  explicit CounterRng(std::uint64_t seed) : seed_(seed) {}

  [[nodiscard]] std::uint64_t seed() const { return seed_; }

  /// Two independent standard normals for (stream, path, step, index).
  [[nodiscard]] r123::double2 normal_pair(Stream stream, std::uint64_t path, std::uint64_t step,
                                          std::uint64_t index) const {
    const auto bits = raw(stream, path, step, index);
    return r123::boxmuller(bits[0], bits[1]);
  }

  /// One standard normal for (stream, path, step, index).
  [[nodiscard]] double normal(Stream stream, std::uint64_t path, std::uint64_t step,
                              std::uint64_t index) const {
    return normal_pair(stream, path, step, index).x;
  }

  /// 64 random bits for (stream, path, step, index) (e.g. a seed handed to another generator).
  [[nodiscard]] std::uint64_t bits(Stream stream, std::uint64_t path, std::uint64_t step,
                                   std::uint64_t index) const {
    return raw(stream, path, step, index)[3];
  }

  /// A uniform in the open interval (0, 1) for (stream, path, step, index, lane); lane 0 is the draw of
  /// the four-part key (a further lane: the same agent's draw for another asset).
  [[nodiscard]] double uniform(Stream stream, std::uint64_t path, std::uint64_t step, std::uint64_t index,
                               std::uint64_t lane = 0) const {
    return r123::u01<double>(raw(stream, path, step, index, lane)[2]);
  }

 private:
  using Philox = r123::Philox4x64;
  [[nodiscard]] Philox::ctr_type raw(Stream stream, std::uint64_t path, std::uint64_t step,
                                     std::uint64_t index, std::uint64_t lane = 0) const {
    const Philox::ctr_type counter = {{path, step, index, lane}};
    const Philox::key_type key = {{seed_, static_cast<std::uint64_t>(stream)}};
    return Philox{}(counter, key);
  }

  std::uint64_t seed_;
};

}  // namespace herdsim::sim
