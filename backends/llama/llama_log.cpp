// llama.cpp's log and one-time initialisation (llama_log.hpp).
#include "llama_log.hpp"

#include <ggml.h>
#include <llama.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "build_flags.hpp"

namespace herdsim::llama {

namespace {

struct LogState {
  std::mutex mutex;
  bool verbose = false;
  std::string errors;  ///< error lines since the last take_log_errors()
  bool in_error = false;
};

LogState& log_state() {
  static LogState state;
  return state;
}

void log_callback(ggml_log_level level, const char* text, void* /*user*/) {
  LogState& s = log_state();
  const std::lock_guard lock(s.mutex);
  if (s.verbose) std::fputs(text, stderr);
  if (level == GGML_LOG_LEVEL_ERROR || (level == GGML_LOG_LEVEL_CONT && s.in_error)) {
    s.in_error = true;
    if (s.errors.size() < 4096) s.errors += text;
  } else {
    s.in_error = false;
  }
}

}  // namespace

std::string take_log_errors() {
  LogState& s = log_state();
  const std::lock_guard lock(s.mutex);
  std::string out;
  for (char c : s.errors) {
    if (c == '\n' || c == '\r') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  s.errors.clear();
  s.in_error = false;
  return out;
}

std::string llama_said() {
  const std::string said = take_log_errors();
  if (said.empty()) return " (set HERDSIM_LLAMA_LOG=1 to see llama.cpp's log)";
  return " (llama.cpp: " + said + ")";
}

void init_llama_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("HERDSIM_LLAMA_LOG");
    log_state().verbose = env != nullptr && env[0] != '\0' && std::strcmp(env, "0") != 0;
    llama_log_set(log_callback, nullptr);  // also ggml's
    // ggml's "IQ panel" GEMM takes over K-quant matrix products from 2+ tokens on (one token keeps the
    // dot-product kernel), which would make a sequence's logits depend on its batch. Its escape hatch is
    // this variable, read once; set before the first decode (an explicit setting is kept).
    if (batch_invariant_build) setenv("GGML_NO_IQ_PANEL", "1", 0);
    llama_backend_init();
  });
}

}  // namespace herdsim::llama
