#include "tools/cli/shared_backend.hpp"

#include <fmt/format.h>

#include <cstring>
#include <utility>

#include "sim/error.hpp"
#include "tools/cli/path_split.hpp"

namespace herdsim::cli {

namespace {

template <class T>
void put(std::string& out, const T& value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

void put_text(std::string& out, const std::string& text) {
  put(out, static_cast<std::uint64_t>(text.size()));
  out += text;
}

/// Reads from `bytes` at `at`, advancing it; Error past the end.
class Reader {
 public:
  explicit Reader(const std::string& bytes) : bytes_(bytes) {}
  [[nodiscard]] bool done() const { return at_ == bytes_.size(); }
  template <class T>
  T get() {
    T value{};
    need(sizeof(T));
    std::memcpy(&value, bytes_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return value;
  }
  std::string text() {
    const auto size = get<std::uint64_t>();
    need(size);
    std::string out = bytes_.substr(at_, size);
    at_ += size;
    return out;
  }

 private:
  void need(std::size_t n) const {
    if (n > bytes_.size() - at_)
      throw Error(fmt::format("shared backend: a message of {} bytes ends inside a response", bytes_.size()));
  }
  const std::string& bytes_;
  std::size_t at_ = 0;
};

}  // namespace

std::string encode_responses(const std::vector<inference::Response>& responses) {
  std::string out;
  for (const auto& r : responses) {
    put(out, static_cast<std::int32_t>(r.status));
    put_text(out, r.text);
    put_text(out, r.error);
    put(out, static_cast<std::int32_t>(r.prompt_tokens));
    put(out, static_cast<std::int32_t>(r.cached_tokens));
    put(out, static_cast<std::int32_t>(r.completion_tokens));
    put(out, r.time_ms);
    put(out, static_cast<std::uint8_t>(r.cache_hit ? 1 : 0));
  }
  return out;
}

void decode_responses(const std::string& bytes, std::vector<inference::Response>& out) {
  Reader in(bytes);
  while (!in.done()) {
    inference::Response r;
    r.status = in.get<std::int32_t>();
    r.text = in.text();
    r.error = in.text();
    r.prompt_tokens = in.get<std::int32_t>();
    r.cached_tokens = in.get<std::int32_t>();
    r.completion_tokens = in.get<std::int32_t>();
    r.time_ms = in.get<double>();
    r.cache_hit = in.get<std::uint8_t>() != 0;
    out.push_back(std::move(r));
  }
}

SharedBackend::SharedBackend(std::unique_ptr<inference::Backend> inner, dist::Communicator& world,
                             std::shared_ptr<std::int64_t> decided)
    : inner_(std::move(inner)), world_(world), decided_(std::move(decided)) {}

std::vector<inference::Response> SharedBackend::generate(const std::vector<inference::Request>& requests) {
  *decided_ += static_cast<std::int64_t>(requests.size());
  return inner_->generate(requests);
}

std::vector<inference::Response> SharedBackend::generate_shared(
    const std::vector<inference::Request>& requests) {
  // The same fixed, contiguous blocks as the paths (path_block): rank order is request order.
  const PathBlock block = path_block(static_cast<int>(requests.size()), world_.rank(), world_.size());
  std::vector<inference::Response> mine;
  if (block.count > 0) {
    const auto first = requests.begin() + block.first;
    mine = generate(std::vector<inference::Request>(first, first + block.count));
    if (mine.size() != static_cast<std::size_t>(block.count))
      throw BackendError(fmt::format("backend {} returned {} responses for {} requests", inner_->name(),
                                     mine.size(), block.count));
  }
  std::vector<inference::Response> out;
  out.reserve(requests.size());
  for (const std::string& part : world_.gather_to_all(encode_responses(mine))) decode_responses(part, out);
  if (out.size() != requests.size())
    throw Error(
        fmt::format("shared backend: {} answers gathered for {} requests", out.size(), requests.size()));
  return out;
}

inference::BackendFactory shared_backend_factory(inference::BackendFactory inner, dist::Communicator& world,
                                                 std::shared_ptr<std::int64_t> decided) {
  return [make = std::move(inner), &world, counter = std::move(decided)](
             const sim::InferenceSpec& spec) -> std::unique_ptr<inference::Backend> {
    return std::make_unique<SharedBackend>(make(spec), world, counter);
  };
}

}  // namespace herdsim::cli
