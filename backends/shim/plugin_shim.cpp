// The C ABI of herdsim_inference.h on top of plugin_shim.hpp's Engine: exception -> status mapping and
// response ownership, once for every plugin.
#include "plugin_shim.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>
#include <string_view>
#include <utility>
#include <vector>

namespace herdsim::plugin {

void fail(std::int32_t status, const std::string& message) {
  throw Error(status, message);
}

}  // namespace herdsim::plugin

namespace {

using herdsim::plugin::Answer;
using herdsim::plugin::Engine;
using herdsim::plugin::Error;
using herdsim::plugin::plugin_definition;

/// Writes the concatenated parts into the host's buffer (truncated, always NUL-terminated). Allocates
/// nothing: it runs in handlers of std::bad_alloc too.
void write_error(char* err, std::size_t err_size, std::initializer_list<std::string_view> parts) noexcept {
  if (err == nullptr || err_size == 0) return;
  std::size_t at = 0;
  for (const std::string_view part : parts) {
    const std::size_t n = std::min(part.size(), err_size - 1 - at);
    std::memcpy(err + at, part.data(), n);
    at += n;
  }
  err[at] = '\0';
}

/// Runs body and returns HERDSIM_OK, or the status of what it threw, its message written into err.
/// `doing` completes "out of memory while ...".
template <typename Body>
std::int32_t guarded(const char* doing, char* err, std::size_t err_size, Body&& body) noexcept {
  try {
    body();
    return HERDSIM_OK;
  } catch (const Error& e) {
    write_error(err, err_size, {e.what()});
    return e.status() != HERDSIM_OK ? e.status() : HERDSIM_ERR_INTERNAL;
  } catch (const std::bad_alloc&) {
    write_error(err, err_size, {"out of memory while ", doing});
    return HERDSIM_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    write_error(err, err_size, {"unexpected error while ", doing, ": ", e.what()});
    return HERDSIM_ERR_INTERNAL;
  } catch (...) {
    write_error(err, err_size, {"unexpected error while ", doing});
    return HERDSIM_ERR_INTERNAL;
  }
}

struct Free {
  void operator()(char* p) const { std::free(p); }
};
/// A response string on its way out: malloc'd, freed by release_responses once handed over.
using OutString = std::unique_ptr<char, Free>;

OutString copy_out(const std::string& s) {
  OutString p(static_cast<char*>(std::malloc(s.size() + 1)));
  if (p == nullptr) throw std::bad_alloc();
  std::memcpy(p.get(), s.data(), s.size());
  p.get()[s.size()] = '\0';
  return p;
}

/// Copies the answers into out[0..n): every string is allocated before any is handed over, so a
/// failure here frees what was copied and leaves out[] as it was (no strings).
void hand_over(std::span<const Answer> answers, herdsim_response* out) {
  std::vector<std::pair<OutString, OutString>> strings;
  strings.reserve(answers.size());
  for (const Answer& a : answers) strings.emplace_back(copy_out(a.text), copy_out(a.error));
  for (std::size_t i = 0; i < answers.size(); ++i) {
    const Answer& a = answers[i];
    out[i] = {a.status,
              strings[i].first.release(),
              strings[i].second.release(),
              a.prompt_tokens,
              a.cached_tokens,
              a.completion_tokens,
              a.time_ms};
  }
}

std::int32_t shim_create(const char* config_json, void** engine, char* err, std::size_t err_size) {
  if (engine == nullptr) {
    write_error(err, err_size, {"create: engine pointer is NULL"});
    return HERDSIM_ERR_INVALID_ARGUMENT;
  }
  *engine = nullptr;
  return guarded("creating the engine", err, err_size, [&] {
    std::unique_ptr<Engine> created = plugin_definition().create(config_json);
    if (created == nullptr) throw Error(HERDSIM_ERR_INTERNAL, "the plugin created no engine");
    *engine = created.release();
  });
}

std::int32_t shim_generate(void* engine, const herdsim_request* requests, std::size_t n,
                           herdsim_response* out, char* err, std::size_t err_size) {
  if (engine == nullptr || (n > 0 && (requests == nullptr || out == nullptr))) {
    write_error(err, err_size, {"generate: NULL engine, requests or responses"});
    return HERDSIM_ERR_INVALID_ARGUMENT;
  }
  // No strings until the whole batch has succeeded: whatever fails below, out[] has nothing to free.
  for (std::size_t i = 0; i < n; ++i) out[i] = herdsim_response{};
  return guarded("generating", err, err_size, [&] {
    std::vector<Answer> answers(n);
    static_cast<Engine*>(engine)->generate({requests, n}, answers);
    hand_over(answers, out);
  });
}

void shim_release_responses(void* /*engine*/, herdsim_response* out, std::size_t n) {
  if (out == nullptr) return;
  for (std::size_t i = 0; i < n; ++i) {
    std::free(const_cast<char*>(out[i].text));
    std::free(const_cast<char*>(out[i].error));
    out[i].text = nullptr;
    out[i].error = nullptr;
  }
}

const char* shim_describe(void* engine) {
  if (engine == nullptr) return "{}";
  try {
    return static_cast<Engine*>(engine)->describe().c_str();
  } catch (...) {  // a description that cannot be built is an empty one, never an escaping exception
    return "{}";
  }
}

void shim_destroy(void* engine) {
  delete static_cast<Engine*>(engine);  // destructors are noexcept: nothing escapes into the host
}

}  // namespace

extern "C" const herdsim_inference_plugin* herdsim_inference_plugin_entry(uint32_t /*host_abi_version*/) {
  static const herdsim_inference_plugin table = {
      HERDSIM_INFERENCE_ABI_VERSION,
      plugin_definition().name,
      shim_create,
      shim_generate,
      shim_release_responses,
      shim_describe,
      shim_destroy,
  };
  return &table;
}
