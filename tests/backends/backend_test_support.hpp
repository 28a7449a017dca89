#pragma once
// Helpers of the backend tests (test_llama_backend.cpp, test_plugin_shim.cpp, test_gguf_check.cpp).
#include <string>

namespace herdsim::test {

/// The message of the exception of type E that fn throws ("" when it throws none).
template <typename E, typename F>
std::string message_of(F&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

/// Whether text contains part.
inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace herdsim::test
