// The common plugin shim (backends/shim/plugin_shim.hpp) on failure: a real plugin built from it
// (shim_test_plugin.cpp) whose engine throws mid-batch, loaded by the real loader (load_plugin) and
// called through the bare C ABI. Checks the status and message of every kind of throw, that a failed
// call hands over no string (ownership as herdsim_inference.h states it), that the engine keeps working
// after a failure, and — under the asan preset, by LeakSanitizer at exit — that nothing leaks. Where the
// openai plugin is built, its requests that cannot be sent fail alone, with nothing leaked either.
#include <dlfcn.h>
#include <doctest/doctest.h>

#include <array>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend_test_support.hpp"
#include "sim/error.hpp"
#include "sim/inference/backend.hpp"
#include "sim/inference/herdsim_inference.h"

using herdsim::BackendError;
using herdsim::inference::Backend;
using herdsim::inference::load_plugin;
using herdsim::inference::Request;
using herdsim::inference::Response;
using herdsim::test::contains;
using nlohmann::json;

namespace {

const std::string plugin_path = HERDSIM_SHIM_TEST_PLUGIN;

std::string config(const json& c) {
  return c.dump();
}

/// The message of the BackendError that fn throws ("" when it throws none).
template <typename F>
std::string backend_error(F&& fn) {
  return herdsim::test::message_of<BackendError>(std::forward<F>(fn));
}

std::vector<Request> requests(int n) {
  std::vector<Request> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) out[static_cast<std::size_t>(i)].user = "agent " + std::to_string(i);
  return out;
}

/// The plugin's C table, opened directly (the loader's library stays loaded too: RTLD_NOLOAD is not
/// needed, dlopen counts references).
const herdsim_inference_plugin& table() {
  static const herdsim_inference_plugin* t = [] {
    void* lib = dlopen(plugin_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE(lib != nullptr);
    auto* entry =
        reinterpret_cast<herdsim_inference_plugin_entry_fn>(dlsym(lib, "herdsim_inference_plugin_entry"));
    const bool has_entry = entry != nullptr;
    REQUIRE(has_entry);
    return entry(HERDSIM_INFERENCE_ABI_VERSION);
  }();
  return *t;
}

/// An engine of the plugin through the C ABI, destroyed at the end of the scope.
struct CEngine {
  void* engine = nullptr;
  explicit CEngine(const json& c) {
    std::array<char, 256> err{};
    REQUIRE(table().create(c.dump().c_str(), &engine, err.data(), err.size()) == HERDSIM_OK);
  }
  CEngine(const CEngine&) = delete;
  CEngine& operator=(const CEngine&) = delete;
  ~CEngine() { table().destroy(engine); }
};

}  // namespace

TEST_SUITE("plugin shim") {
  TEST_CASE("a batch that runs hands over every answer, per-request errors included") {
    auto b = load_plugin(plugin_path, config({{"text_bytes", 64}}));
    CHECK(b->name() == "shim-test");
    std::vector<Request> in = requests(5);
    in[2].max_tokens = 0;
    const std::vector<Response> out = b->generate(in);
    REQUIRE(out.size() == 5);
    for (std::size_t i = 0; i < out.size(); ++i) {
      INFO("request " << i);
      if (i == 2) {
        CHECK(out[i].status == HERDSIM_ERR_INVALID_ARGUMENT);
        CHECK(out[i].error == "max_tokens must be at least 1, got 0");
        CHECK(out[i].text.empty());
      } else {
        CHECK(out[i].ok());
        CHECK(out[i].error.empty());
        CHECK(out[i].text == std::string(64, static_cast<char>('a' + i)) + ":agent " + std::to_string(i));
        CHECK(out[i].completion_tokens == 64);
        CHECK(out[i].time_ms == 1.5);
      }
    }
    CHECK(b->generate({}).empty());
    CHECK(json::parse(b->describe()).at("calls") == 2);
  }

  TEST_CASE("a throw mid-batch fails the whole call with its status and message") {
    struct Case {
      const char* kind;
      const char* message;
    };
    const Case cases[] = {
        {"error", "shim-test: generate failed (context full): request 3 failed on purpose"},
        {"bad_alloc", "shim-test: generate failed (out of memory): out of memory while generating"},
        {"runtime_error",
         "shim-test: generate failed (internal error): unexpected error while generating: request 3 failed "
         "on purpose"},
        {"int", "shim-test: generate failed (internal error): unexpected error while generating"},
    };
    for (const Case& c : cases) {
      INFO(c.kind);
      auto b = load_plugin(plugin_path, config({{"fail_at", 3}, {"throw", c.kind}, {"text_bytes", 4096}}));
      CHECK(backend_error([&] { (void)b->generate(requests(6)); }) == c.message);
      // The engine is still usable: a batch that stops before the failing index runs.
      const auto out = b->generate(requests(3));
      REQUIRE(out.size() == 3);
      CHECK(out[2].text.size() == 4096 + std::string(":agent 2").size());
    }
  }

  TEST_CASE("through the C ABI, a failed generate leaves no string to free") {
    CEngine e({{"fail_at", 2}, {"text_bytes", 4096}});
    std::vector<herdsim_request> in(4, herdsim_request{"", "u", 8, 0.0F, 1, nullptr});
    // Whatever the host's array held before, a failed call leaves it without strings.
    static char junk[] = "junk";
    std::vector<herdsim_response> out(4, herdsim_response{7, junk, junk, 1, 1, 1, 1.0});
    std::array<char, 256> err{};
    CHECK(table().generate(e.engine, in.data(), in.size(), out.data(), err.data(), err.size()) ==
          HERDSIM_ERR_CONTEXT);
    CHECK(std::string(err.data()) == "request 2 failed on purpose");
    for (const herdsim_response& r : out) {
      CHECK(r.text == nullptr);
      CHECK(r.error == nullptr);
    }
    table().release_responses(e.engine, out.data(), out.size());  // allowed, frees nothing

    // A message longer than the host's buffer is cut, NUL-terminated.
    std::array<char, 8> small{};
    small.fill('x');
    CHECK(table().generate(e.engine, in.data(), in.size(), out.data(), small.data(), small.size()) ==
          HERDSIM_ERR_CONTEXT);
    CHECK(std::string(small.data()) == "request");

    // A batch that runs hands over non-NULL strings until release_responses.
    CHECK(table().generate(e.engine, in.data(), 2, out.data(), err.data(), err.size()) == HERDSIM_OK);
    CHECK(std::strlen(out[1].text) == 4096 + 2);
    CHECK(std::string(out[1].error).empty());
    table().release_responses(e.engine, out.data(), 2);
    CHECK(out[0].text == nullptr);
    CHECK(out[1].error == nullptr);

    // Arguments the shim refuses before the engine sees them.
    CHECK(table().generate(nullptr, in.data(), 1, out.data(), err.data(), err.size()) ==
          HERDSIM_ERR_INVALID_ARGUMENT);
    CHECK(table().generate(e.engine, nullptr, 1, out.data(), err.data(), err.size()) ==
          HERDSIM_ERR_INVALID_ARGUMENT);
    CHECK(table().generate(e.engine, nullptr, 0, nullptr, err.data(), err.size()) == HERDSIM_OK);
    CHECK(std::string(table().describe(nullptr)) == "{}");
  }

  TEST_CASE("create: statuses, messages and no engine on failure") {
    std::array<char, 256> err{};
    void* engine = reinterpret_cast<void*>(&err);  // not NULL before: create must reset it
    CHECK(table().create(R"({"create": "error"})", &engine, err.data(), err.size()) == HERDSIM_ERR_MODEL);
    CHECK(engine == nullptr);
    CHECK(std::string(err.data()) == "the model is broken on purpose");
    CHECK(table().create(R"({"create": "bad_alloc"})", &engine, err.data(), err.size()) ==
          HERDSIM_ERR_OUT_OF_MEMORY);
    CHECK(std::string(err.data()) == "out of memory while creating the engine");
    CHECK(table().create("{not json", &engine, err.data(), err.size()) == HERDSIM_ERR_INTERNAL);
    CHECK(contains(err.data(), "unexpected error while creating the engine: "));
    CHECK(table().create("{}", nullptr, err.data(), err.size()) == HERDSIM_ERR_INVALID_ARGUMENT);
    CHECK(table().create("{}", &engine, nullptr, 0) == HERDSIM_OK);
    table().destroy(engine);
    CHECK(backend_error([] { (void)load_plugin(plugin_path, R"({"create": "runtime_error"})"); }) ==
          "shim-test (" + plugin_path +
              "): cannot create the engine (internal error): unexpected error while creating the engine: "
              "create "
              "failed on purpose");
  }

#ifdef HERDSIM_OPENAI_PLUGIN
  TEST_CASE("openai plugin: requests that cannot be sent fail alone, with nothing left behind") {
    // No server: port 9 (discard) on loopback refuses the connection at once; no retries.
    auto b = load_plugin(HERDSIM_OPENAI_PLUGIN, config({{"base_url", "http://127.0.0.1:9/v1"},
                                                        {"model", "m"},
                                                        {"check_server", false},
                                                        {"retries", 0},
                                                        {"timeout_s", 10}}));
    // Before the shim, the second request's encoding error failed the whole call after the first one's
    // answer had been allocated, and leaked it.
    std::vector<Request> in = requests(3);
    in[0].max_tokens = 0;
    in[1].user = "not UTF-8: \xC3\x28";
    const auto out = b->generate(in);
    REQUIRE(out.size() == 3);
    CHECK(out[0].status == HERDSIM_ERR_INVALID_ARGUMENT);
    CHECK(out[1].status == HERDSIM_ERR_INVALID_ARGUMENT);
    CHECK(contains(out[1].error, "request cannot be sent as JSON"));
    CHECK(out[2].status == HERDSIM_ERR_TRANSPORT);
    CHECK(contains(out[2].error, "request to http://127.0.0.1:9/v1/chat/completions failed"));
    for (const auto& r : out) CHECK(r.text.empty());
  }
#endif
}
