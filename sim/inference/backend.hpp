#pragma once
// The inference seam below the agents: a C++ interface (Backend) that LLM-backed populations call with
// whole batches, and the loader of plugins that implement the C ABI of herdsim_inference.h. C status
// codes become BackendError here, in one place.
#include <any>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sim/scenario_spec.hpp"

namespace herdsim::inference {

/// One generation request (see herdsim_request).
struct Request {
  std::string system;        ///< system message
  std::string user;          ///< user message
  int max_tokens = 256;      ///< upper bound on generated tokens
  double temperature = 0.0;  ///< 0 = greedy
  std::uint64_t seed = 0;    ///< sampling seed of this request alone
  std::string grammar;       ///< GBNF output constraint; empty = none
  /// What the prompt asks, in the structured form it was rendered from (investagents:
  /// investalign::Question), for answer sources that compute answers (the reference answerers,
  /// sim/investalign/reference.hpp); engines answer from the text and ignore it.
  std::any question;
};

/// One result (see herdsim_response); status 0 = ok.
struct Response {
  int status = 0;
  std::string text;
  std::string error;
  int prompt_tokens = 0;
  int cached_tokens = 0;
  int completion_tokens = 0;
  double time_ms = 0.0;
  bool cache_hit = false;  ///< answered from the decision cache (io/decision_cache.hpp), not by the engine
  [[nodiscard]] bool ok() const { return status == 0; }
};

/// An inference engine. generate() decides a batch; each answer depends only on its own request.
class Backend {
 public:
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;
  virtual ~Backend() = default;
  /// Throws BackendError when the whole call fails; per-request failures are in Response::status.
  [[nodiscard]] virtual std::vector<Response> generate(const std::vector<Request>& requests) = 0;
  /// generate() for requests that every process of a distributed run asks alike, in the same order
  /// (path-independent requests, e.g. an InvestAgent's plan at t = 0, asked by every rank of a path
  /// split): a backend shared by the ranks (tools/cli/shared_backend.hpp) has each decided by one rank and
  /// returns every answer on every rank. Every other backend decides them itself, as generate().
  [[nodiscard]] virtual std::vector<Response> generate_shared(const std::vector<Request>& requests) {
    return generate(requests);
  }
  /// Short name, e.g. "llama-cpu", "replay".
  [[nodiscard]] virtual std::string name() const = 0;
  /// JSON describing the engine (model, parameters, device), stored in run files' provenance.
  [[nodiscard]] virtual std::string describe() const = 0;
  /// Whether answers may come from a decision cache (Response::cache_hit; transcripts then record it).
  [[nodiscard]] virtual bool caches() const { return false; }
};

/// Creates the backend of an LLM-backed population from its scenario description. Agents never open
/// files or plugins themselves: the caller (herdsim run: plugins and replay files; tests: fakes) passes
/// one of these to agents::make_simulation, and every backend is created before the first step, so bad
/// input (a missing model or plugin, an unreadable replay file) stops the run before it starts.
using BackendFactory = std::function<std::unique_ptr<Backend>(const sim::InferenceSpec& spec)>;

/// Where a plugin named `name` is looked for: a path (contains '/') as is; otherwise
/// libherdsim_backend_<name>.so in $HERDSIM_PLUGIN_PATH (':'-separated), next to the executable, in
/// ../lib/herdsim relative to it, and in the build tree's plugin directory.
[[nodiscard]] std::vector<std::string> plugin_candidates(const std::string& name);

/// Receives the one line that says which plugin `auto` chose and why (default: written to stderr).
using BackendNote = std::function<void(const std::string& line)>;

/// The plugin `auto` tries first: the llama.cpp engine on CUDA (libherdsim_backend_llama_cuda.so).
inline constexpr const char* auto_gpu_plugin = "llama_cuda";
/// The plugin `auto` falls back to: the llama.cpp engine on the CPU.
inline constexpr const char* auto_cpu_plugin = "llama";

/// Loads a plugin and creates its engine from config_json. Throws BackendError naming the plugin
/// when it cannot be found or loaded, has another ABI version, or create() fails.
///
/// name_or_path "auto": the CUDA plugin when it loads and finds a usable device ("using CUDA device
/// NAME"); when it is missing, cannot be loaded (no NVIDIA driver: no libcuda.so.1) or reports no
/// device, the CPU plugin, with one line saying why. Any other failure of the CUDA plugin (a bad
/// model, out of device memory) is an error, not a fallback. The chosen backend's name() and
/// describe() say which it is.
[[nodiscard]] std::unique_ptr<Backend> load_plugin(const std::string& name_or_path,
                                                   const std::string& config_json,
                                                   const BackendNote& note = {});

/// Human name of a herdsim_status code.
[[nodiscard]] const char* status_name(int status);

}  // namespace herdsim::inference
