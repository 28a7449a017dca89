#pragma once
// The one C shim of every inference plugin: a plugin implements the small C++ interface below, and
// plugin_shim.cpp turns it into the C ABI of herdsim_inference.h (herdsim_inference_plugin_entry and
// its table). The shim owns what every plugin would otherwise repeat: catching every exception at the
// boundary and mapping it to a status and message, and the memory of the responses — all of a batch's
// responses are handed over, or none (a failed generate() leaves nothing to free).
//
// A plugin links the object library herdsim_plugin_shim and defines plugin_definition():
//
//   const herdsim::plugin::Definition& herdsim::plugin::plugin_definition() {
//     static const Definition d{"NAME", [](const char* config_json) -> std::unique_ptr<Engine> { ... }};
//     return d;
//   }
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>

#include "herdsim_inference.h"

namespace herdsim::plugin {

/// A failure with its herdsim_status. Thrown inside a plugin; the shim returns it as status + message.
class Error : public std::runtime_error {
 public:
  Error(std::int32_t status, const std::string& message) : std::runtime_error(message), status_(status) {}
  [[nodiscard]] std::int32_t status() const { return status_; }

 private:
  std::int32_t status_;
};

/// Throws Error(status, message).
[[noreturn]] void fail(std::int32_t status, const std::string& message);

/// One request's result, in C++ terms (see herdsim_response); the shim copies it out to the host.
struct Answer {
  std::int32_t status = HERDSIM_OK;  ///< herdsim_status of this request alone
  std::string text;                  ///< generated text (not including the prompt)
  std::string error;                 ///< message when status != HERDSIM_OK
  std::int32_t prompt_tokens = 0;
  std::int32_t cached_tokens = 0;  ///< prompt tokens reused from a shared prefix
  std::int32_t completion_tokens = 0;
  double time_ms = 0.0;  ///< wall time attributed to this request, in milliseconds
};

/// An inference engine behind the C ABI. Whatever a method throws is caught by the shim: Error keeps
/// its status; std::bad_alloc is HERDSIM_ERR_OUT_OF_MEMORY; anything else HERDSIM_ERR_INTERNAL.
class Engine {
 public:
  Engine() = default;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  virtual ~Engine() = default;

  /// Decides a batch: answers[i] (default-constructed on entry) is the result of requests[i]. A
  /// problem of one request goes into its answer; a throw fails the whole call, and the shim discards
  /// every answer (none reaches the host).
  virtual void generate(std::span<const herdsim_request> requests, std::span<Answer> answers) = 0;

  /// JSON describing the engine; the string stays valid until the next describe() or the engine's end.
  [[nodiscard]] virtual const std::string& describe() = 0;
};

/// What a plugin defines: its short name and how to create its engine from the JSON configuration
/// (throws, typically Error, when it cannot).
struct Definition {
  const char* name;  ///< e.g. "llama-cpu"; a string literal (the table points at it)
  std::unique_ptr<Engine> (*create)(const char* config_json);
};

/// Defined once by each plugin (in its own source); called by the shim.
const Definition& plugin_definition();

}  // namespace herdsim::plugin
