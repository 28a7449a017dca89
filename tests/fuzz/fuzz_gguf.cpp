// Fuzz harness: the GGUF header validator in front of llama.cpp (backends/llama/gguf_check.hpp) on
// arbitrary bytes taken as a model file.
//
// Input: the file's bytes. Properties: the check either accepts the bytes or throws gguf::Error, whose
// message names the input ("model fuzz.gguf is not a valid GGUF file: ..."); anything else that escapes
// (std::bad_alloc, std::length_error, a sanitizer report) is a crash. What it accepts is consistent with
// the header (version 2 or 3, an architecture, counts that fit the size), and the check is deterministic.
// Seeds: corpus/gguf/ (tiny valid files, the heads of the test models, broken headers). Run with
// -malloc_limit_mb to catch an allocation that grows with the counts a file declares.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "gguf_check.hpp"

namespace {

namespace gguf = herdsim::gguf;

[[noreturn]] void property_failed(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_gguf: property failed: %s\n%s\n", what, detail.c_str());
  std::abort();
}

/// The check's verdict: "" for an accepted input (with its architecture appended), else the message.
std::string verdict(std::span<const unsigned char> bytes) {
  try {
    const gguf::Info info = gguf::check_bytes(bytes, "fuzz.gguf", "model");
    if (info.version != 2 && info.version != 3)
      property_failed("accepted version is 2 or 3", std::to_string(info.version));
    if (info.architecture.empty()) property_failed("an accepted file names its architecture", "");
    if (info.n_kv > bytes.size() / 13 || info.n_tensors > bytes.size() / 32)
      property_failed("accepted counts fit the size",
                      std::to_string(info.n_kv) + " " + std::to_string(info.n_tensors));
    return "accepted " + info.architecture + "/" + info.type;
  } catch (const gguf::Error& e) {
    const std::string message = e.what();
    const std::string prefix = "model fuzz.gguf is not a valid GGUF file: ";
    if (message.compare(0, prefix.size(), prefix) != 0)
      property_failed("the message names the input", message);
    return message;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const unsigned char> bytes(data, size);
  const std::string first = verdict(bytes);
  if (verdict(bytes) != first) property_failed("the check is deterministic", first);
  return 0;
}
