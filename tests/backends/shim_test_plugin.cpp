// A tiny inference plugin built from the common shim (backends/shim), for test_plugin_shim.cpp: its
// engine answers each request with a long text, and fails on purpose where the configuration says, so
// that the shim's failure paths run through the real loader and the real C ABI.
//
// Configuration: {"create": "ok" | "error" | "runtime_error" | "bad_alloc", "fail_at": K (request index
// at which generate() throws, after answering the ones before it; -1 = never), "throw": "error" |
// "bad_alloc" | "runtime_error" | "int", "text_bytes": N (length of each answer)}.
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "plugin_shim.hpp"

namespace {

using herdsim::plugin::Answer;
using herdsim::plugin::fail;

class ThrowingEngine final : public herdsim::plugin::Engine {
 public:
  explicit ThrowingEngine(const nlohmann::json& config)
      : fail_at_(config.value("fail_at", -1)),
        throw_(config.value("throw", "error")),
        text_bytes_(config.value("text_bytes", 1000)) {}

  void generate(std::span<const herdsim_request> requests, std::span<Answer> answers) override {
    ++calls_;
    for (std::size_t i = 0; i < requests.size(); ++i) {
      if (static_cast<long>(i) == fail_at_) throw_now(i);
      const herdsim_request& r = requests[i];
      Answer& a = answers[i];
      if (r.max_tokens < 1) {
        a.status = HERDSIM_ERR_INVALID_ARGUMENT;
        a.error = "max_tokens must be at least 1, got " + std::to_string(r.max_tokens);
        continue;
      }
      // Long enough to live on the heap: a leak of it would show under LeakSanitizer.
      a.text = std::string(text_bytes_, static_cast<char>('a' + i % 26)) + ":" + r.user;
      a.prompt_tokens = 3;
      a.completion_tokens = static_cast<int>(text_bytes_);
      a.time_ms = 1.5;
    }
  }

  const std::string& describe() override {
    description_ = nlohmann::json{{"backend", "shim-test"}, {"calls", calls_}}.dump();
    return description_;
  }

 private:
  [[noreturn]] void throw_now(std::size_t i) const {
    const std::string what = "request " + std::to_string(i) + " failed on purpose";
    if (throw_ == "bad_alloc") throw std::bad_alloc();
    if (throw_ == "runtime_error") throw std::runtime_error(what);
    if (throw_ == "int") throw 42;
    fail(HERDSIM_ERR_CONTEXT, what);
  }

  long fail_at_;
  std::string throw_;
  std::size_t text_bytes_;
  int calls_ = 0;
  std::string description_;
};

}  // namespace

const herdsim::plugin::Definition& herdsim::plugin::plugin_definition() {
  static const Definition definition{
      "shim-test", [](const char* config_json) -> std::unique_ptr<Engine> {
        const nlohmann::json config = nlohmann::json::parse(config_json);  // a parse error: an internal error
        const std::string create = config.value("create", "ok");
        if (create == "error") fail(HERDSIM_ERR_MODEL, "the model is broken on purpose");
        if (create == "runtime_error") throw std::runtime_error("create failed on purpose");
        if (create == "bad_alloc") throw std::bad_alloc();
        return std::make_unique<ThrowingEngine>(config);
      }};
  return definition;
}
