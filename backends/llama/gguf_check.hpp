#pragma once
// The GGUF header validator in front of llama.cpp: checks a model's header, metadata and tensor table
// against the file's size, so that a malformed file is a clear error here, not an abort in llama.cpp.
//
// Self-contained (the standard library only; no llama.cpp): it is fuzzed on its own
// (tests/fuzz/fuzz_gguf.cpp). Every count and length is checked against the bytes that remain before
// anything is allocated or read, and memory use does not grow with the counts a file declares: a
// malformed input is an Error naming the input and the reason, never a crash or a giant allocation.
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

namespace herdsim::gguf {

/// A file (or buffer) that is missing, unreadable or not a valid GGUF file; what() names it and why.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What the check learnt from the header.
struct Info {
  std::uint32_t version = 0;    ///< GGUF version (2 or 3)
  std::uint64_t n_tensors = 0;  ///< entries of the tensor table
  std::uint64_t n_kv = 0;       ///< metadata entries
  std::string architecture;     ///< general.architecture (never empty in a valid file)
  std::string type;             ///< general.type ("model", "adapter") when present, else ""
};

/// Block size (elements) and block size in bytes of one ggml tensor type.
struct TensorType {
  std::int64_t block_elements = 0;  ///< 0: a removed or unknown type
  std::uint64_t block_bytes = 0;
};

/// ggml's tensor types, indexed by their id in a GGUF tensor table (those of the pinned llama.cpp).
[[nodiscard]] std::span<const TensorType> tensor_types();

/// Checks the GGUF file at `path`; `what` names its role in messages ("model", "LoRA adapter"), e.g.
/// "model /m.gguf is not a valid GGUF file: truncated (...)". Throws Error.
Info check_file(const std::string& path, const std::string& what);

/// The same check of a file's bytes held in memory; `name` stands for the path in messages.
Info check_bytes(std::span<const unsigned char> bytes, const std::string& name, const std::string& what);

}  // namespace herdsim::gguf
