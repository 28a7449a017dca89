// The llama.cpp inference plugin: libherdsim_backend_llama.so (CPU) and, built with HERDSIM_LLAMA_CUDA=1,
// libherdsim_backend_llama_cuda.so (CUDA); the ABI of herdsim_inference.h.
//
// One generate() call decides many agents: their chat-formatted prompts are decoded as separate
// sequences of one llama.cpp context (one KV stream per sequence, kv_unified = false), in chunks of at
// most `batch` sequences; the token prefix common to a chunk's prompts is decoded once and its KV cache
// copied to the other sequences; then one llama_decode per step generates the next token of every
// unfinished sequence. Each request samples with its own random stream (its seed) and its own grammar
// state, and llama.cpp is built and configured batch invariant (no llamafile GEMM, no flash attention,
// no repacked or panel kernels), so an answer is bitwise the same whatever else shares the batch. The
// CUDA build (every layer on the GPU; cuBLAS picks kernels by shape) is repeatable for the same batch
// but not batch invariant, and says so in describe() (docs/gpu.md).
// Errors are status codes and messages: nothing here aborts, exits or throws across the C boundary.
// docs/adding-a-backend.md and docs/investagents.md ("The llama.cpp backend") describe the behaviour.
#include <ggml-backend.h>
#include <ggml.h>
#include <llama.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "herdsim_inference.h"

#ifndef HERDSIM_LLAMA_ORIGIN
#define HERDSIM_LLAMA_ORIGIN "unknown"
#endif
#ifndef HERDSIM_LLAMA_BATCH_INVARIANT
#define HERDSIM_LLAMA_BATCH_INVARIANT 0
#endif
// 1 in the CUDA plugin (libherdsim_backend_llama_cuda.so): every layer on the GPU, and no engine
// without a usable CUDA device.
#ifndef HERDSIM_LLAMA_CUDA
#define HERDSIM_LLAMA_CUDA 0
#endif

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

/// An error of this plugin: a herdsim_status and a message. Thrown inside, returned at the ABI boundary.
struct PluginError {
  int32_t status;
  std::string message;
};

[[noreturn]] void fail(int32_t status, std::string message) {
  throw PluginError{status, std::move(message)};
}

/// Copies msg into the host's buffer (truncated, always NUL-terminated).
void write_error(char* err, std::size_t err_size, const std::string& msg) {
  if (err == nullptr || err_size == 0) return;
  const std::size_t n = std::min(msg.size(), err_size - 1);
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

// ---------------------------------------------------------------------------------------------------
// Logging: llama.cpp and ggml are silent unless HERDSIM_LLAMA_LOG is set; their error lines are kept
// so that a failure message can quote what llama.cpp said.

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

/// The error lines llama.cpp logged since the last call, on one line ("" when none).
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

/// " (llama.cpp: ...)" with what llama.cpp logged, or a hint where to look.
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
    if (HERDSIM_LLAMA_BATCH_INVARIANT != 0) setenv("GGML_NO_IQ_PANEL", "1", 0);
    llama_backend_init();
  });
}

// ---------------------------------------------------------------------------------------------------
// GGUF header check. llama.cpp's loader aborts on some malformed files; a model (or adapter) is read
// here first, metadata and tensor table, with every count and size checked against the file size.

/// Bounds-checked reader of a GGUF file's header.
class GgufReader {
 public:
  GgufReader(const std::string& path, const char* what) : path_(path), what_(what) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status))
      fail(HERDSIM_ERR_MODEL, std::string(what_) + " file " + path + " does not exist");
    if (!std::filesystem::is_regular_file(status))
      fail(HERDSIM_ERR_MODEL, std::string(what_) + " " + path + " is not a regular file");
    size_ = std::filesystem::file_size(path, ec);
    if (ec) fail(HERDSIM_ERR_MODEL, "cannot read the size of " + path + ": " + ec.message());
    file_ = std::fopen(path.c_str(), "rb");
    if (file_ == nullptr) fail(HERDSIM_ERR_MODEL, "cannot open " + path + ": " + std::strerror(errno));
    std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
  }
  GgufReader(const GgufReader&) = delete;
  GgufReader& operator=(const GgufReader&) = delete;
  ~GgufReader() {
    if (file_ != nullptr) std::fclose(file_);
  }

  [[nodiscard]] std::uint64_t size() const { return size_; }
  [[nodiscard]] std::uint64_t offset() const { return offset_; }
  [[nodiscard]] std::uint64_t remaining() const { return size_ - offset_; }

  [[noreturn]] void corrupt(const std::string& why) const {
    fail(HERDSIM_ERR_MODEL, std::string(what_) + " " + path_ + " is not a valid GGUF file: " + why);
  }

  void read(void* dst, std::uint64_t n, const char* field) {
    if (n > remaining())
      corrupt(std::string("truncated (") + field + " at byte " + std::to_string(offset_) +
              " runs past the end of the " + std::to_string(size_) + "-byte file)");
    if (n > 0 && std::fread(dst, 1, static_cast<std::size_t>(n), file_) != n) corrupt("read error");
    offset_ += n;
  }
  template <typename T>
  T value(const char* field) {
    T v{};
    read(&v, sizeof v, field);
    return v;
  }
  void skip(std::uint64_t n, const char* field) {
    if (n > remaining())
      corrupt(std::string("truncated (") + field + " at byte " + std::to_string(offset_) +
              " runs past the end of the " + std::to_string(size_) + "-byte file)");
    if (std::fseek(file_, static_cast<long>(offset_ + n), SEEK_SET) != 0) corrupt("seek error");
    offset_ += n;
  }
  std::string string(const char* field) {
    const auto n = value<std::uint64_t>(field);
    if (n > remaining())
      corrupt(std::string("truncated or corrupt: a string (") + field + ") of " + std::to_string(n) +
              " bytes at byte " + std::to_string(offset_) + " is longer than the rest of the file");
    std::string s(static_cast<std::size_t>(n), '\0');
    read(s.data(), n, field);
    return s;
  }

 private:
  std::string path_;
  const char* what_;
  std::uint64_t size_ = 0;
  std::uint64_t offset_ = 0;
  std::FILE* file_ = nullptr;
};

enum GgufType : std::uint32_t {
  gguf_u8 = 0,
  gguf_i8,
  gguf_u16,
  gguf_i16,
  gguf_u32,
  gguf_i32,
  gguf_f32,
  gguf_bool,
  gguf_string,
  gguf_array,
  gguf_u64,
  gguf_i64,
  gguf_f64,
  gguf_type_count
};

std::uint64_t gguf_scalar_size(std::uint32_t type) {
  switch (type) {
    case gguf_u8:
    case gguf_i8:
    case gguf_bool:
      return 1;
    case gguf_u16:
    case gguf_i16:
      return 2;
    case gguf_u32:
    case gguf_i32:
    case gguf_f32:
      return 4;
    case gguf_u64:
    case gguf_i64:
    case gguf_f64:
      return 8;
    default:
      return 0;
  }
}

/// What the check learnt from the header.
struct GgufInfo {
  std::uint32_t version = 0;
  std::uint64_t n_tensors = 0;
  std::uint64_t n_kv = 0;
  std::string architecture;
  std::string type;  ///< general.type ("model", "adapter") when present
};

/// Checks a GGUF file's header, metadata and tensor table against its size; throws PluginError
/// (HERDSIM_ERR_MODEL) naming the problem. `what` names the file's role in messages ("model").
GgufInfo check_gguf(const std::string& path, const char* what) {
  GgufReader in(path, what);
  if (in.size() < 24) in.corrupt("only " + std::to_string(in.size()) + " bytes long");
  char magic[4];
  in.read(magic, 4, "magic");
  if (std::memcmp(magic, "GGUF", 4) != 0) in.corrupt("it does not start with the magic \"GGUF\"");
  GgufInfo info;
  info.version = in.value<std::uint32_t>("version");
  if (info.version == 1) in.corrupt("GGUF version 1 is no longer supported; convert the model again");
  if (info.version != 2 && info.version != 3) {
    const bool swapped = (info.version & 0xFFFFu) == 0 && (info.version >> 16) != 0;
    in.corrupt("unsupported GGUF version " + std::to_string(info.version) +
               (swapped ? " (a big-endian file?)" : " (supported: 2 and 3)"));
  }
  info.n_tensors = in.value<std::uint64_t>("tensor count");
  info.n_kv = in.value<std::uint64_t>("metadata count");
  // Every metadata pair takes at least 8 + 4 + 1 bytes, every tensor entry at least 8 + 4 + 8 + 4 + 8.
  if (info.n_kv > in.remaining() / 13)
    in.corrupt("truncated or corrupt: " + std::to_string(info.n_kv) +
               " metadata entries cannot fit in the remaining " + std::to_string(in.remaining()) + " bytes");
  if (info.n_tensors > in.remaining() / 32)
    in.corrupt("truncated or corrupt: " + std::to_string(info.n_tensors) +
               " tensor entries cannot fit in the remaining " + std::to_string(in.remaining()) + " bytes");

  std::uint64_t alignment = 32;
  for (std::uint64_t i = 0; i < info.n_kv; ++i) {
    const std::string key = in.string("metadata key");
    const auto type = in.value<std::uint32_t>("metadata type");
    if (type >= gguf_type_count)
      in.corrupt("metadata '" + key + "' has unknown type " + std::to_string(type));
    if (type == gguf_array) {
      const auto elem = in.value<std::uint32_t>("array type");
      const auto count = in.value<std::uint64_t>("array length");
      if (elem == gguf_string) {
        if (count > in.remaining() / 8)
          in.corrupt("truncated or corrupt: metadata '" + key + "' has " + std::to_string(count) +
                     " strings, more than the rest of the file holds");
        for (std::uint64_t k = 0; k < count; ++k) {
          const auto n = in.value<std::uint64_t>("array string");
          in.skip(n, "array string");
        }
      } else {
        const std::uint64_t size = gguf_scalar_size(elem);
        if (size == 0)
          in.corrupt("metadata '" + key + "' is an array of unsupported type " + std::to_string(elem));
        if (count > in.remaining() / size)
          in.corrupt("truncated or corrupt: metadata '" + key + "' runs past the end of the file");
        in.skip(count * size, "array");
      }
    } else if (type == gguf_string) {
      const std::string value = in.string("metadata value");
      if (key == "general.architecture") info.architecture = value;
      if (key == "general.type") info.type = value;
    } else {
      const std::uint64_t size = gguf_scalar_size(type);
      if (key == "general.alignment") {
        if (type != gguf_u32) in.corrupt("general.alignment is not a u32");
        alignment = in.value<std::uint32_t>("alignment");
        if (alignment == 0 || (alignment & (alignment - 1)) != 0)
          in.corrupt("general.alignment " + std::to_string(alignment) + " is not a power of two");
      } else {
        in.skip(size, "metadata value");
      }
    }
  }
  if (info.architecture.empty()) in.corrupt("no general.architecture in its metadata");

  struct Tensor {
    std::string name;
    std::uint64_t offset;
    std::uint64_t bytes;
  };
  std::vector<Tensor> tensors;
  tensors.reserve(static_cast<std::size_t>(info.n_tensors));
  for (std::uint64_t i = 0; i < info.n_tensors; ++i) {
    Tensor t;
    t.name = in.string("tensor name");
    const auto n_dims = in.value<std::uint32_t>("tensor dimensions");
    if (n_dims == 0 || n_dims > GGML_MAX_DIMS)
      in.corrupt("tensor '" + t.name + "' has " + std::to_string(n_dims) + " dimensions");
    std::int64_t ne[GGML_MAX_DIMS] = {1, 1, 1, 1};
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const auto v = in.value<std::uint64_t>("tensor shape");
      if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        in.corrupt("tensor '" + t.name + "' has a negative dimension");
      ne[d] = static_cast<std::int64_t>(v);
    }
    const auto type = in.value<std::uint32_t>("tensor type");
    if (type >= GGML_TYPE_COUNT || ggml_blck_size(static_cast<ggml_type>(type)) <= 0)
      in.corrupt("tensor '" + t.name + "' has unknown type " + std::to_string(type));
    const auto gtype = static_cast<ggml_type>(type);
    if (ne[0] % ggml_blck_size(gtype) != 0)
      in.corrupt("tensor '" + t.name + "' has a row length not divisible by its block size");
    // Size with overflow checks: bytes = row_size * ne1 * ne2 * ne3 <= file size.
    std::uint64_t bytes = ggml_row_size(gtype, ne[0]);
    for (int d = 1; d < GGML_MAX_DIMS; ++d) {
      const auto n = static_cast<std::uint64_t>(ne[d]);
      if (n != 0 && bytes > in.size() / n)
        bytes = in.size() + 1;  // saturate: reported below
      else
        bytes *= n;
    }
    if (bytes > in.size())
      in.corrupt("truncated or corrupt: tensor '" + t.name + "' needs more bytes than the " +
                 std::to_string(in.size()) + "-byte file holds");
    t.bytes = bytes;
    t.offset = in.value<std::uint64_t>("tensor offset");
    if (t.offset % alignment != 0) in.corrupt("tensor '" + t.name + "' is not aligned");
    tensors.push_back(std::move(t));
  }
  const std::uint64_t data_start = (in.offset() + alignment - 1) / alignment * alignment;
  for (const Tensor& t : tensors) {
    if (t.offset > in.size() || t.bytes > in.size() - t.offset || data_start > in.size() - t.offset - t.bytes)
      in.corrupt("truncated: the data of tensor '" + t.name + "' (" + std::to_string(t.bytes) + " bytes at " +
                 std::to_string(data_start + t.offset) + ") runs past the end of the " +
                 std::to_string(in.size()) + "-byte file");
  }
  return info;
}

// ---------------------------------------------------------------------------------------------------
// Configuration.

struct LoraSpec {
  std::string path;
  float scale = 1.0F;
};

struct Config {
  std::string model;
  std::vector<LoraSpec> lora;
  int n_ctx = 2048;  ///< per sequence
  int batch = 64;    ///< sequences decoded together
  int threads = 1;
  bool prefix_sharing = true;
  int prefix_min_tokens = 16;  ///< shorter common prefixes are not worth a separate decode
};

constexpr const char* known_keys = "model, lora, n_ctx, batch, threads, prefix_sharing, prefix_min_tokens";

int int_key(const json& j, const char* key, int lo, int hi) {
  const json& v = j.at(key);
  if (!v.is_number_integer())
    fail(HERDSIM_ERR_INVALID_ARGUMENT,
         std::string("config: '") + key + "' must be an integer, got " + v.dump());
  const auto x = v.get<std::int64_t>();
  if (x < lo || x > hi)
    fail(HERDSIM_ERR_INVALID_ARGUMENT, std::string("config: '") + key + "' must be in [" +
                                           std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                                           std::to_string(x));
  return static_cast<int>(x);
}

Config parse_config(const char* text) {
  if (text == nullptr) fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: NULL configuration");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(HERDSIM_ERR_INVALID_ARGUMENT, std::string("config is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(HERDSIM_ERR_INVALID_ARGUMENT, "config must be a JSON object, got " + j.dump());
  Config c;
  for (const auto& [key, value] : j.items()) {
    if (key == "model") {
      if (!value.is_string() || value.get<std::string>().empty())
        fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: 'model' must be a non-empty path string");
      c.model = value.get<std::string>();
    } else if (key == "lora") {
      if (!value.is_array())
        fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: 'lora' must be a list of paths or {path, scale}");
      for (const json& item : value) {
        LoraSpec spec;
        if (item.is_string()) {
          spec.path = item.get<std::string>();
        } else if (item.is_object() && item.contains("path") && item.at("path").is_string()) {
          spec.path = item.at("path").get<std::string>();
          for (const auto& [k, v] : item.items()) {
            if (k == "scale") {
              if (!v.is_number() || !std::isfinite(v.get<double>()))
                fail(HERDSIM_ERR_INVALID_ARGUMENT,
                     "config: a LoRA 'scale' must be a finite number, got " + v.dump());
              spec.scale = v.get<float>();
            } else if (k != "path") {
              fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: unknown LoRA key '" + k + "' (known: path, scale)");
            }
          }
        } else {
          fail(
              HERDSIM_ERR_INVALID_ARGUMENT,
              "config: a 'lora' entry must be a path or {\"path\": ..., \"scale\": ...}, got " + item.dump());
        }
        if (spec.path.empty()) fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: a LoRA path is empty");
        c.lora.push_back(spec);
      }
    } else if (key == "n_ctx") {
      c.n_ctx = int_key(j, "n_ctx", 16, 1 << 20);
    } else if (key == "batch") {
      c.batch = int_key(j, "batch", 1, 256);  // llama.cpp's LLAMA_MAX_SEQ
    } else if (key == "threads") {
      c.threads = int_key(j, "threads", 1, 512);
    } else if (key == "prefix_sharing") {
      if (!value.is_boolean())
        fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: 'prefix_sharing' must be true or false");
      c.prefix_sharing = value.get<bool>();
    } else if (key == "prefix_min_tokens") {
      c.prefix_min_tokens = int_key(j, "prefix_min_tokens", 1, 1 << 20);
    } else {
      fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: unknown key '" + key + "' (known: " + known_keys + ")");
    }
  }
  if (c.model.empty())
    fail(HERDSIM_ERR_INVALID_ARGUMENT, "config: 'model' (path of a GGUF file) is required");
  return c;
}

// ---------------------------------------------------------------------------------------------------
// Small helpers.

struct SamplerFree {
  void operator()(llama_sampler* s) const { llama_sampler_free(s); }
};
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerFree>;

/// Replaces invalid UTF-8 (a generation cut inside a character, stray bytes) by U+FFFD.
std::string valid_utf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xE0U) == 0xC0U) {
      len = 2;
      cp = c & 0x1FU;
    } else if ((c & 0xF0U) == 0xE0U) {
      len = 3;
      cp = c & 0x0FU;
    } else if ((c & 0xF8U) == 0xF0U) {
      len = 4;
      cp = c & 0x07U;
    }
    bool ok = len > 0 && i + len <= s.size();
    for (std::size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xC0U) == 0x80U;
      cp = (cp << 6U) | (cc & 0x3FU);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid too.
    static constexpr std::uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    ok = ok && cp >= min_cp[len] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

/// Copies a string into malloc'd memory owned by a response (freed by release_responses).
char* dup_string(const std::string& s) {
  auto* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) throw std::bad_alloc();
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

/// A uniform double in [0, 1) from 53 random bits (the same on every platform, unlike
/// std::uniform_real_distribution).
double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11U) * 0x1.0p-53;
}

/// Unconstrained draws tried against the grammar before the masked distribution is built.
constexpr int draws_tried = 16;

// ---------------------------------------------------------------------------------------------------
// The engine.

/// One request on its way through generate().
struct Job {
  std::size_t index = 0;  ///< position in the caller's arrays
  std::vector<llama_token> prompt;
  SamplerPtr grammar;        ///< nullptr: unconstrained
  float temperature = 0.0F;  ///< 0: greedy
  std::mt19937_64 rng;       ///< this request's own stream, seeded with its seed
  int max_tokens = 0;
  std::vector<llama_token> generated;
  int cached = 0;
  llama_pos pos = 0;        ///< position of the next token to decode
  llama_token pending = 0;  ///< sampled, still to be decoded
  bool done = false;
  int32_t status = HERDSIM_OK;
  std::string error;
  double own_ms = 0.0;  ///< formatting, tokenising, sampler set-up
  double share_ms = 0.0;
};

class Engine {
 public:
  explicit Engine(Config config) : config_(std::move(config)) {
    try {
      init();
    } catch (...) {
      free_all();  // what a failed create() had loaded
      throw;
    }
  }

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  ~Engine() { free_all(); }

  /// describe(): fixed at creation, plus the count of checked grammar masks when checks are on and
  /// the device memory in use now (CUDA plugin).
  [[nodiscard]] const std::string& description() {
    if (!check_masks_ && gpu_ == nullptr) return description_;
    const std::lock_guard lock(mutex_);
    json d = json::parse(description_);
    if (check_masks_) d["grammar_masks_checked"] = masks_checked_;
    if (gpu_ != nullptr) {
      std::size_t free_bytes = 0;
      std::size_t total_bytes = 0;
      ggml_backend_dev_memory(gpu_, &free_bytes, &total_bytes);
      d["device_memory_used_bytes"] = total_bytes - free_bytes;
    }
    description_checked_ = d.dump();
    return description_checked_;
  }

 private:
  /// Checks the files, loads the model and the adapters, creates the context.
  void init() {
    init_llama_once();
    take_log_errors();
    const GgufInfo info = check_gguf(config_.model, "model");
    if (info.type == "adapter")
      fail(HERDSIM_ERR_MODEL,
           "model " + config_.model + " is a LoRA adapter, not a model (put it under 'lora')");
    for (const LoraSpec& l : config_.lora) check_gguf(l.path, "LoRA adapter");

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    if (HERDSIM_LLAMA_CUDA != 0) {
      gpu_ = find_gpu();
      // Every layer (and the output) on the one GPU: no split across devices, no CPU layers.
      mp.n_gpu_layers = std::numeric_limits<int32_t>::max();
      mp.split_mode = LLAMA_SPLIT_MODE_NONE;
      mp.devices = gpu_devices_.data();
    }
    // Repacked weight layouts (quantised types) have separate one-token and many-token kernels: off,
    // so that a sequence's logits do not depend on how many tokens share its decode.
    mp.use_extra_bufts = false;
    model_ = llama_model_load_from_file(config_.model.c_str(), mp);
    if (model_ == nullptr)
      fail(HERDSIM_ERR_MODEL, "llama.cpp cannot load the model " + config_.model + llama_said());
    vocab_ = llama_model_get_vocab(model_);
    n_vocab_ = llama_vocab_n_tokens(vocab_);
    if (llama_model_has_encoder(model_) || !llama_model_has_decoder(model_) ||
        llama_model_is_recurrent(model_) || llama_model_is_hybrid(model_) || llama_model_is_diffusion(model_))
      fail(HERDSIM_ERR_MODEL, "model " + config_.model + " (" + info.architecture +
                                  ") is not a decoder-only transformer, which this backend needs");
    eog_ = llama_vocab_eot(vocab_);
    if (eog_ == LLAMA_TOKEN_NULL) eog_ = llama_vocab_eos(vocab_);
    if (const char* t = llama_model_chat_template(model_, nullptr); t != nullptr) chat_template_ = t;

    for (const LoraSpec& l : config_.lora) {
      llama_adapter_lora* a = llama_adapter_lora_init(model_, l.path.c_str());
      if (a == nullptr)
        fail(HERDSIM_ERR_MODEL, "llama.cpp cannot load the LoRA adapter " + l.path + " for model " +
                                    config_.model + llama_said());
      adapters_.push_back(a);
      scales_.push_back(l.scale);
    }

    llama_context_params cp = llama_context_default_params();
    const auto n_seq = static_cast<std::uint32_t>(config_.batch);
    // One KV stream per sequence (kv_unified = false): a sequence attends over its own cells only, so
    // its logits do not depend on the others; the context is split evenly, n_ctx per sequence.
    cp.kv_unified = false;
    cp.n_seq_max = n_seq;
    cp.n_ctx = static_cast<std::uint32_t>(config_.n_ctx) * n_seq;
    n_batch_ = std::max(512, config_.batch);
    cp.n_batch = static_cast<std::uint32_t>(n_batch_);
    cp.n_ubatch = static_cast<std::uint32_t>(n_batch_);
    cp.n_threads = config_.threads;
    cp.n_threads_batch = config_.threads;
    cp.no_perf = true;
    // ggml's CPU flash attention has three kernels (one query per stream; queries in tiles; the KV split
    // across threads for a lone sequence), chosen by the shape of each decode: a sequence's attention
    // would round differently with different company. The plain path (Q.K, soft_max, V.softmax, one
    // dot product per element over the KV cells, padded to 256) is the same for any batch.
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    ctx_ = llama_init_from_model(model_, cp);
    if (ctx_ == nullptr)
      fail(HERDSIM_ERR_OUT_OF_MEMORY, "llama.cpp cannot create a context of " +
                                          std::to_string(config_.batch) + " x " +
                                          std::to_string(config_.n_ctx) + " tokens" + llama_said());
    n_ctx_seq_ = static_cast<int>(llama_n_ctx_seq(ctx_));
    if (!adapters_.empty() &&
        llama_set_adapters_lora(ctx_, adapters_.data(), adapters_.size(), scales_.data()) != 0)
      fail(HERDSIM_ERR_MODEL, "llama.cpp cannot apply the LoRA adapters" + llama_said());
    batch_ = llama_batch_init(n_batch_, 0, 1);
    cumulative_.resize(static_cast<std::size_t>(n_vocab_));
    const char* check = std::getenv("HERDSIM_LLAMA_CHECK_MASKS");
    check_masks_ = check != nullptr && check[0] != '\0' && std::strcmp(check, "0") != 0;
    description_ = describe_json(info);
  }

  /// The first GPU ggml registered (the CUDA plugin); HERDSIM_ERR_DEVICE when there is none, with
  /// what ggml-cuda logged (e.g. "failed to initialize CUDA: no CUDA-capable device is detected").
  ggml_backend_dev_t find_gpu() {
    for (std::size_t i = 0; i < ggml_backend_dev_count(); ++i) {
      ggml_backend_dev_t dev = ggml_backend_dev_get(i);
      if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_GPU) {
        gpu_devices_ = {dev, nullptr};
        return dev;
      }
    }
    fail(HERDSIM_ERR_DEVICE, "no usable CUDA device" + llama_said());
  }

  void free_all() noexcept {
    if (batch_.token != nullptr) llama_batch_free(batch_);
    batch_ = {};
    if (ctx_ != nullptr) llama_free(ctx_);
    ctx_ = nullptr;
    for (auto* a : adapters_) llama_adapter_lora_free(a);
    adapters_.clear();
    if (model_ != nullptr) llama_model_free(model_);
    model_ = nullptr;
  }

 public:
  /// Fills out[0..n) (strings malloc'd); per-request problems go into each response's status.
  void generate(const herdsim_request* requests, std::size_t n, herdsim_response* out) {
    const std::lock_guard lock(mutex_);  // one llama_context: one call at a time
    take_log_errors();
    std::vector<Job> jobs(n);
    std::map<std::string, SamplerPtr> grammars;  // parsed once per call, cloned per request
    for (std::size_t i = 0; i < n; ++i) {
      jobs[i].index = i;
      prepare(requests[i], jobs[i], grammars);
    }
    std::vector<Job*> ready;
    for (Job& j : jobs)
      if (j.status == HERDSIM_OK) ready.push_back(&j);
    const auto chunk = static_cast<std::size_t>(config_.batch);
    for (std::size_t b = 0; b < ready.size(); b += chunk) {
      const std::vector<Job*> part(
          ready.begin() + static_cast<std::ptrdiff_t>(b),
          ready.begin() + static_cast<std::ptrdiff_t>(std::min(ready.size(), b + chunk)));
      run_chunk(part);
    }
    // Strings are written last: a failure before this point leaves nothing to free.
    std::vector<std::string> texts(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (jobs[i].status == HERDSIM_OK) texts[i] = detokenize(jobs[i].generated);
    }
    for (std::size_t i = 0; i < n; ++i) {
      const Job& j = jobs[i];
      herdsim_response& r = out[i];
      r = {};
      r.status = j.status;
      r.prompt_tokens = static_cast<int32_t>(j.prompt.size());
      r.cached_tokens = j.cached;
      r.completion_tokens = static_cast<int32_t>(j.generated.size());
      r.time_ms = j.own_ms + j.share_ms;
      r.text = dup_string(texts[i]);
      r.error = dup_string(j.error);
    }
  }

 private:
  void reject(Job& j, int32_t status, std::string message) {
    j.status = status;
    j.error = std::move(message);
    j.grammar.reset();
  }

  /// Validates a request, formats and tokenises its prompt, builds its samplers; a problem becomes the
  /// request's own status.
  void prepare(const herdsim_request& r, Job& j, std::map<std::string, SamplerPtr>& grammars) {
    try {
      prepare_or_throw(r, j, grammars);
    } catch (const PluginError& e) {
      reject(j, e.status, e.message);
    }
  }

  void prepare_or_throw(const herdsim_request& r, Job& j, std::map<std::string, SamplerPtr>& grammars) {
    const auto t0 = Clock::now();
    if (r.user == nullptr)
      return reject(j, HERDSIM_ERR_INVALID_ARGUMENT, "request has no user message (NULL)");
    if (r.max_tokens < 1)
      return reject(j, HERDSIM_ERR_INVALID_ARGUMENT,
                    "max_tokens must be at least 1, got " + std::to_string(r.max_tokens));
    if (!std::isfinite(r.temperature) || r.temperature < 0.0F)
      return reject(j, HERDSIM_ERR_INVALID_ARGUMENT,
                    "temperature must be finite and >= 0, got " + std::to_string(r.temperature));
    j.max_tokens = r.max_tokens;
    j.prompt = tokenize(format_prompt(r.system != nullptr ? r.system : "", r.user));
    if (j.prompt.empty()) return reject(j, HERDSIM_ERR_INVALID_ARGUMENT, "the prompt has no tokens");
    const auto need = static_cast<std::int64_t>(j.prompt.size()) + r.max_tokens;
    if (need > n_ctx_seq_)
      return reject(j, HERDSIM_ERR_CONTEXT,
                    "prompt of " + std::to_string(j.prompt.size()) + " tokens + max_tokens " +
                        std::to_string(r.max_tokens) + " exceed the context of " +
                        std::to_string(n_ctx_seq_) + " tokens per sequence (config n_ctx)");
    if (r.grammar != nullptr && r.grammar[0] != '\0') {
      auto it = grammars.find(r.grammar);
      if (it == grammars.end()) {
        take_log_errors();
        SamplerPtr g(llama_sampler_init_grammar(vocab_, r.grammar, "root"));
        it = grammars.emplace(r.grammar, std::move(g)).first;
      }
      if (it->second == nullptr)
        return reject(j, HERDSIM_ERR_GRAMMAR, "the GBNF grammar does not compile" + llama_said());
      j.grammar.reset(llama_sampler_clone(it->second.get()));
    }
    j.temperature = r.temperature;
    j.rng.seed(r.seed);
    j.own_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  }

  std::string format_prompt(const char* system, const char* user) const {
    std::vector<llama_chat_message> msgs;
    if (system[0] != '\0') msgs.push_back({"system", system});
    msgs.push_back({"user", user});
    if (chat_template_.empty()) {  // no template in the model: plain text
      return system[0] != '\0' ? std::string(system) + "\n\n" + user : std::string(user);
    }
    std::vector<char> buf(2 * (std::strlen(system) + std::strlen(user)) + 256);
    int32_t len = llama_chat_apply_template(chat_template_.c_str(), msgs.data(), msgs.size(), true,
                                            buf.data(), static_cast<int32_t>(buf.size()));
    if (len > static_cast<int32_t>(buf.size())) {
      buf.resize(static_cast<std::size_t>(len));
      len =
          llama_chat_apply_template(chat_template_.c_str(), msgs.data(), msgs.size(), true, buf.data(), len);
    }
    if (len < 0) fail(HERDSIM_ERR_MODEL, "llama.cpp does not know the model's chat template");
    return {buf.data(), static_cast<std::size_t>(len)};
  }

  std::vector<llama_token> tokenize(const std::string& text) const {
    if (text.size() > static_cast<std::size_t>(std::numeric_limits<int32_t>::max() / 2))
      fail(HERDSIM_ERR_CONTEXT, "the prompt is too long");
    const auto len = static_cast<int32_t>(text.size());
    std::vector<llama_token> tokens(text.size() + 8);
    int32_t n = llama_tokenize(vocab_, text.data(), len, tokens.data(), static_cast<int32_t>(tokens.size()),
                               true, true);
    if (n < 0) {
      tokens.resize(static_cast<std::size_t>(-n));
      n = llama_tokenize(vocab_, text.data(), len, tokens.data(), -n, true, true);
    }
    if (n < 0) fail(HERDSIM_ERR_INTERNAL, "llama_tokenize failed");
    tokens.resize(static_cast<std::size_t>(n));
    return tokens;
  }

  std::string detokenize(const std::vector<llama_token>& tokens) const {
    if (tokens.empty()) return {};
    std::string text(tokens.size() * 8 + 16, '\0');
    const auto n_tok = static_cast<int32_t>(tokens.size());
    int32_t n = llama_detokenize(vocab_, tokens.data(), n_tok, text.data(), static_cast<int32_t>(text.size()),
                                 false, false);
    if (n < 0) {
      text.resize(static_cast<std::size_t>(-n));
      n = llama_detokenize(vocab_, tokens.data(), n_tok, text.data(), -n, false, false);
    }
    if (n < 0) fail(HERDSIM_ERR_INTERNAL, "llama_detokenize failed");
    text.resize(static_cast<std::size_t>(n));
    return valid_utf8(text);
  }

  void batch_add(llama_token token, llama_pos pos, llama_seq_id seq, bool logits) {
    const auto i = static_cast<std::size_t>(batch_.n_tokens);
    batch_.token[i] = token;
    batch_.pos[i] = pos;
    batch_.n_seq_id[i] = 1;
    batch_.seq_id[i][0] = seq;
    batch_.logits[i] = logits ? 1 : 0;
    ++batch_.n_tokens;
  }

  /// Decodes batch_ (and empties it); on failure throws PluginError for the chunk.
  void decode() {
    const int32_t rc = llama_decode(ctx_, batch_);
    const int32_t n_tokens = batch_.n_tokens;
    batch_.n_tokens = 0;
    if (rc == 0) return;
    const std::string what =
        "llama_decode failed (code " + std::to_string(rc) + ") on " + std::to_string(n_tokens) + " tokens";
    if (rc == 1) fail(HERDSIM_ERR_OUT_OF_MEMORY, what + ": no room in the KV cache" + llama_said());
    fail(HERDSIM_ERR_INTERNAL, what + llama_said());
  }

  /// Whether the grammar admits `token` next (a one-candidate pass: cheap).
  static bool admits(llama_sampler* grammar, llama_token token) {
    llama_token_data one{token, 0.0F, 0.0F};
    llama_token_data_array arr{&one, 1, -1, false};
    llama_sampler_apply(grammar, &arr);
    return arr.data[0].logit != -INFINITY;
  }

  // Grammar masks. llama.cpp's grammar pass over all ~150k tokens takes 10-15 ms (it decodes each
  // token's UTF-8 into a fresh vector), more than a decode step of a small model. What a grammar
  // admits is closed under prefixes (it consumes text: a token it admits has every prefix admitted),
  // so the vocabulary is walked as a prefix tree: a token's parent is the token spelling the longest
  // proper prefix of its text, and only the children of admitted tokens are tested, one grammar pass
  // per tree level. Where the grammar allows a few characters (keys, digits, punctuation) a mask costs
  // a few hundred candidates instead of the whole vocabulary; the result is the same mask.

  /// Builds the prefix tree of the vocabulary (once, at the first grammar mask).
  void build_prefix_tree() {
    if (!admitted_.empty()) return;
    const auto n = static_cast<std::size_t>(n_vocab_);
    std::vector<std::string> pieces(n);
    std::vector<char> buf(256);
    for (std::size_t t = 0; t < n; ++t) {
      const auto id = static_cast<llama_token>(t);
      // The text llama.cpp's grammar matches: the piece with special tokens rendered (its cache).
      int32_t len = llama_token_to_piece(vocab_, id, buf.data(), static_cast<int32_t>(buf.size()), 0, true);
      if (len < 0) {
        buf.resize(static_cast<std::size_t>(-len));
        len = llama_token_to_piece(vocab_, id, buf.data(), static_cast<int32_t>(buf.size()), 0, true);
      }
      if (len > 0) pieces[t].assign(buf.data(), static_cast<std::size_t>(len));
    }
    std::unordered_map<std::string_view, llama_token> by_piece;
    by_piece.reserve(n);
    for (std::size_t t = 0; t < n; ++t) {
      if (!pieces[t].empty()) by_piece.emplace(pieces[t], static_cast<llama_token>(t));
    }
    std::vector<llama_token> parent(n, -1);
    std::vector<int32_t> n_children(n + 1, 0);
    for (std::size_t t = 0; t < n; ++t) {
      const auto id = static_cast<llama_token>(t);
      const std::string& p = pieces[t];
      if (llama_vocab_is_eog(vocab_, id)) {
        eog_tokens_.push_back(id);
        continue;
      }
      if (p.empty() || p[0] == '\0') continue;  // never admitted by llama.cpp's grammar
      for (std::size_t k = p.size() - 1; k > 0; --k) {
        const auto it = by_piece.find(std::string_view(p).substr(0, k));
        if (it != by_piece.end() && !llama_vocab_is_eog(vocab_, it->second)) {
          parent[t] = it->second;
          break;
        }
      }
      if (parent[t] < 0) {
        roots_.push_back(id);
      } else {
        ++n_children[static_cast<std::size_t>(parent[t])];
      }
    }
    child_begin_.assign(n + 1, 0);
    for (std::size_t t = 0; t < n; ++t) child_begin_[t + 1] = child_begin_[t] + n_children[t];
    children_.resize(static_cast<std::size_t>(child_begin_[n]));
    std::vector<int32_t> fill = child_begin_;
    for (std::size_t t = 0; t < n; ++t) {
      if (parent[t] >= 0)
        children_[static_cast<std::size_t>(fill[static_cast<std::size_t>(parent[t])]++)] =
            static_cast<llama_token>(t);
    }
    admitted_.assign(n, 0);
  }

  /// Runs the grammar over `ids`; keeps the admitted ones in admitted_ and, when `next` is given, appends
  /// their children to it. Returns whether any was admitted.
  bool grammar_pass(llama_sampler* grammar, const std::vector<llama_token>& ids,
                    std::vector<llama_token>* next) {
    level_.clear();
    for (const llama_token id : ids) level_.push_back({id, 0.0F, 0.0F});
    llama_token_data_array arr{level_.data(), level_.size(), -1, false};
    llama_sampler_apply(grammar, &arr);
    bool any = false;
    for (const llama_token_data& c : level_) {
      if (c.logit == -INFINITY) continue;
      any = true;
      const auto t = static_cast<std::size_t>(c.id);
      admitted_[t] = 1;
      if (next != nullptr)
        next->insert(next->end(), children_.begin() + child_begin_[t],
                     children_.begin() + child_begin_[t + 1]);
    }
    return any;
  }

  /// admitted_[t] = whether the grammar admits token t next, for the whole vocabulary.
  void grammar_mask(llama_sampler* grammar) {
    build_prefix_tree();
    std::fill(admitted_.begin(), admitted_.end(), std::uint8_t{0});
    level_ids_ = roots_;
    while (!level_ids_.empty()) {
      next_ids_.clear();
      grammar_pass(grammar, level_ids_, &next_ids_);
      std::swap(level_ids_, next_ids_);
    }
    const std::uint8_t eog_ok = eog_ != LLAMA_TOKEN_NULL && admits(grammar, eog_) ? 1 : 0;
    for (const llama_token t : eog_tokens_) admitted_[static_cast<std::size_t>(t)] = eog_ok;
    if (check_masks_) check_mask(grammar);
  }

  /// The tree walk against llama.cpp's pass over the whole vocabulary (HERDSIM_LLAMA_CHECK_MASKS=1, tests).
  void check_mask(llama_sampler* grammar) {
    std::vector<llama_token_data> all(static_cast<std::size_t>(n_vocab_));
    for (int32_t t = 0; t < n_vocab_; ++t) all[static_cast<std::size_t>(t)] = {t, 0.0F, 0.0F};
    llama_token_data_array arr{all.data(), all.size(), -1, false};
    llama_sampler_apply(grammar, &arr);
    for (const llama_token_data& c : all) {
      const bool full = c.logit != -INFINITY;
      if (full != (admitted_[static_cast<std::size_t>(c.id)] != 0))
        fail(HERDSIM_ERR_INTERNAL, "grammar mask check: token " + std::to_string(c.id) + " is " +
                                       (full ? "admitted" : "rejected") +
                                       " by llama.cpp but not by the prefix tree");
    }
    ++masks_checked_;
  }

  /// Whether the grammar is complete: it admits end of generation and nothing else (no root of the
  /// prefix tree, hence no token). Needs no logits, so a finished answer costs no further decode.
  bool grammar_finished(llama_sampler* grammar) {
    if (eog_ == LLAMA_TOKEN_NULL || !admits(grammar, eog_)) return false;
    build_prefix_tree();
    return !grammar_pass(grammar, roots_, nullptr);
  }

  // Sampling is ours, per request: greedy, or a categorical draw at the request's temperature from its
  // own random stream; the grammar is llama.cpp's. The unconstrained choice is tried first (one
  // candidate) and the mask built only when the grammar rejects it. Exact: greedy takes the best
  // admitted token either way; for sampling, accepting an admitted draw and redrawing otherwise
  // (finally from the masked distribution) gives each admitted token probability p / P(admitted), the
  // masked distribution.

  /// The greedy choice (the lowest id among equal logits); nullopt when the grammar admits no token.
  std::optional<llama_token> sample_greedy(llama_sampler* grammar, const float* logits) {
    llama_token best = 0;
    for (int32_t t = 1; t < n_vocab_; ++t) {
      if (logits[t] > logits[best]) best = t;
    }
    if (grammar == nullptr || admits(grammar, best)) return best;
    grammar_mask(grammar);
    std::optional<llama_token> out;
    for (int32_t t = 0; t < n_vocab_; ++t) {
      if (admitted_[static_cast<std::size_t>(t)] != 0 && (!out || logits[t] > logits[*out])) out = t;
    }
    return out;
  }

  /// A draw from softmax(logits / temperature), restricted to what the grammar admits; nullopt when it
  /// admits no token.
  std::optional<llama_token> sample_temperature(Job& j, const float* logits) {
    const float inv_t = 1.0F / j.temperature;
    const auto n = static_cast<std::size_t>(n_vocab_);
    // cumulative_ = running sums of exp((l - max) / T) over the tokens `keep` admits.
    auto fill = [&](float max_l, auto keep) {
      double total = 0.0;
      for (std::size_t t = 0; t < n; ++t) {
        if (keep(t) && logits[t] != -INFINITY)
          total += static_cast<double>(std::exp((logits[t] - max_l) * inv_t));
        cumulative_[t] = total;
      }
      return total;
    };
    auto draw = [&](double total) {
      const double u = uniform01(j.rng) * total;
      const auto at = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
      return static_cast<llama_token>(std::min<std::ptrdiff_t>(at - cumulative_.begin(), n_vocab_ - 1));
    };
    const float max_l = *std::max_element(logits, logits + n_vocab_);
    const double total = fill(max_l, [](std::size_t) { return true; });
    if (j.grammar == nullptr) return draw(total);
    for (int k = 0; k < draws_tried; ++k) {
      const llama_token t = draw(total);
      if (admits(j.grammar.get(), t)) return t;
    }
    grammar_mask(j.grammar.get());
    float max_admitted = -INFINITY;
    for (std::size_t t = 0; t < n; ++t) {
      if (admitted_[t] != 0) max_admitted = std::max(max_admitted, logits[t]);
    }
    if (max_admitted == -INFINITY) return std::nullopt;
    return draw(fill(max_admitted, [&](std::size_t t) { return admitted_[t] != 0; }));
  }

  /// Samples job j's next token from the logits of batch row `row` and advances its state.
  void sample(Job& j, int32_t row) {
    const float* logits = llama_get_logits_ith(ctx_, row);
    if (logits == nullptr) fail(HERDSIM_ERR_INTERNAL, "llama.cpp returned no logits" + llama_said());
    const std::optional<llama_token> next =
        j.temperature > 0.0F ? sample_temperature(j, logits) : sample_greedy(j.grammar.get(), logits);
    if (!next) {
      j.done = true;
      j.status = HERDSIM_ERR_GRAMMAR;
      j.error = "the grammar admits no further token after " + std::to_string(j.generated.size()) +
                " generated tokens (it cannot be completed with this vocabulary)";
      return;
    }
    const llama_token token = *next;
    if (llama_vocab_is_eog(vocab_, token)) {
      j.done = true;
      return;
    }
    if (j.grammar != nullptr) llama_sampler_accept(j.grammar.get(), token);
    j.generated.push_back(token);
    if (static_cast<int>(j.generated.size()) >= j.max_tokens ||
        (j.grammar != nullptr && grammar_finished(j.grammar.get()))) {
      j.done = true;
      return;
    }
    j.pending = token;
  }

  /// Decodes the prompts of up to `batch` jobs and generates until every one is done.
  void run_chunk(const std::vector<Job*>& jobs) {
    const auto t0 = Clock::now();
    auto fail_chunk = [&](int32_t status, const std::string& message) {
      for (Job* j : jobs) {
        if (j->status == HERDSIM_OK) {
          j->status = status;
          j->error = message;
          j->generated.clear();
        }
      }
    };
    try {
      generate_chunk(jobs);
    } catch (const PluginError& e) {
      fail_chunk(e.status, e.message);
    } catch (const std::bad_alloc&) {
      fail_chunk(HERDSIM_ERR_OUT_OF_MEMORY, "out of memory while generating");
    } catch (const std::exception& e) {  // llama.cpp reports some failures by exception
      fail_chunk(HERDSIM_ERR_INTERNAL, std::string("llama.cpp failed while generating: ") + e.what());
    }
    // Wall time shared in proportion to the tokens each job had evaluated and generated.
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    double work = 0.0;
    for (const Job* j : jobs)
      work += static_cast<double>(j->prompt.size()) - j->cached + static_cast<double>(j->generated.size());
    for (Job* j : jobs) {
      const double w =
          static_cast<double>(j->prompt.size()) - j->cached + static_cast<double>(j->generated.size());
      j->share_ms = work > 0.0 ? ms * w / work : ms / static_cast<double>(jobs.size());
    }
  }

  void generate_chunk(const std::vector<Job*>& jobs) {
    llama_memory_t mem = llama_get_memory(ctx_);
    // Metadata only: stale cells hold finite values that attention masks out exactly.
    llama_memory_clear(mem, false);
    batch_.n_tokens = 0;
    const std::size_t n = jobs.size();

    // The prefix common to all prompts, leaving each prompt at least one token of its own (its logits
    // start the generation).
    std::size_t prefix = 0;
    if (config_.prefix_sharing && n > 1) {
      const auto& first = jobs[0]->prompt;
      prefix = first.size() - 1;
      for (const Job* j : jobs) {
        const auto& p = j->prompt;
        std::size_t m = 0;
        const std::size_t cap = std::min(prefix, p.size() - 1);
        while (m < cap && p[m] == first[m]) ++m;
        prefix = m;
      }
      if (prefix < static_cast<std::size_t>(config_.prefix_min_tokens)) prefix = 0;
    }
    if (prefix > 0) {  // decoded once, in sequence 0, then copied to the others' KV streams
      for (std::size_t t = 0; t < prefix; ++t) {
        batch_add(jobs[0]->prompt[t], static_cast<llama_pos>(t), 0, false);
        if (batch_.n_tokens == n_batch_) decode();
      }
      if (batch_.n_tokens > 0) decode();
      for (std::size_t k = 1; k < n; ++k) {
        llama_memory_seq_cp(mem, 0, static_cast<llama_seq_id>(k), -1, -1);
        jobs[k]->cached = static_cast<int>(prefix);
      }
    }

    // The rest of every prompt; logits for its last token only, sampled right after its decode.
    std::vector<std::pair<std::size_t, int32_t>> last_rows;  // (job, row in batch_)
    for (std::size_t k = 0; k < n; ++k) {
      Job& j = *jobs[k];
      for (std::size_t t = prefix; t < j.prompt.size(); ++t) {
        const bool last = t + 1 == j.prompt.size();
        if (last) last_rows.emplace_back(k, batch_.n_tokens);
        batch_add(j.prompt[t], static_cast<llama_pos>(t), static_cast<llama_seq_id>(k), last);
        if (batch_.n_tokens == n_batch_) {
          decode();
          for (const auto& [kk, row] : last_rows) sample(*jobs[kk], row);
          last_rows.clear();
        }
      }
      j.pos = static_cast<llama_pos>(j.prompt.size());
    }
    if (batch_.n_tokens > 0) {
      decode();
      for (const auto& [kk, row] : last_rows) sample(*jobs[kk], row);
    }

    // Generation: one decode per step for every unfinished sequence.
    std::vector<std::pair<std::size_t, int32_t>> rows;
    while (true) {
      rows.clear();
      for (std::size_t k = 0; k < n; ++k) {
        Job& j = *jobs[k];
        if (j.done) continue;
        rows.emplace_back(k, batch_.n_tokens);
        batch_add(j.pending, j.pos++, static_cast<llama_seq_id>(k), true);
      }
      if (rows.empty()) break;
      decode();
      for (const auto& [k, row] : rows) sample(*jobs[k], row);
    }
  }

  std::string describe_json(const GgufInfo& info) const {
    char buf[256];
    json d;
    d["backend"] = HERDSIM_LLAMA_CUDA != 0 ? "llama-cuda" : "llama-cpu";
    d["device"] = HERDSIM_LLAMA_CUDA != 0 ? "cuda" : "cpu";
    if (gpu_ != nullptr) {
      std::size_t free_bytes = 0;
      std::size_t total_bytes = 0;
      ggml_backend_dev_memory(gpu_, &free_bytes, &total_bytes);
      d["device_name"] = ggml_backend_dev_description(gpu_);
      d["device_id"] = ggml_backend_dev_name(gpu_);
      d["device_memory_total_bytes"] = total_bytes;
      d["device_memory_used_bytes"] = total_bytes - free_bytes;  // by every process, after loading
    }
    d["model"] = config_.model;
    d["architecture"] = info.architecture;
    d["gguf_version"] = info.version;
    if (llama_model_desc(model_, buf, sizeof buf) >= 0) d["model_desc"] = buf;
    if (llama_model_meta_val_str(model_, "general.name", buf, sizeof buf) >= 0) d["model_name"] = buf;
    d["n_params"] = llama_model_n_params(model_);
    d["size_bytes"] = llama_model_size(model_);
    d["n_vocab"] = n_vocab_;
    d["n_layer"] = llama_model_n_layer(model_);
    d["n_embd"] = llama_model_n_embd(model_);
    d["n_ctx_train"] = llama_model_n_ctx_train(model_);
    d["n_ctx"] = n_ctx_seq_;
    d["batch"] = config_.batch;
    d["threads"] = config_.threads;
    d["prefix_sharing"] = config_.prefix_sharing;
    d["prefix_min_tokens"] = config_.prefix_min_tokens;
    d["chat_template"] = chat_template_.empty() ? "none (plain text)" : "model";
    json lora = json::array();
    for (const LoraSpec& l : config_.lora) lora.push_back({{"path", l.path}, {"scale", l.scale}});
    d["lora"] = lora;
    d["batch_invariant"] = HERDSIM_LLAMA_BATCH_INVARIANT != 0;
    d["llama_cpp"] = {{"version", llama_version()},
                      {"origin", HERDSIM_LLAMA_ORIGIN},
                      {"system_info", llama_print_system_info()}};
    return d.dump();
  }

  std::mutex mutex_;
  Config config_;
  llama_model* model_ = nullptr;
  const llama_vocab* vocab_ = nullptr;
  llama_context* ctx_ = nullptr;
  std::vector<llama_adapter_lora*> adapters_;
  std::vector<float> scales_;
  std::string chat_template_;
  llama_token eog_ = LLAMA_TOKEN_NULL;
  int32_t n_vocab_ = 0;
  int n_ctx_seq_ = 0;
  int n_batch_ = 0;
  llama_batch batch_{};
  std::vector<double> cumulative_;  // sampling scratch, one entry per vocabulary token
  // The vocabulary's prefix tree (build_prefix_tree) and the grammar mask's scratch.
  std::vector<llama_token> roots_;
  std::vector<int32_t> child_begin_;
  std::vector<llama_token> children_;
  std::vector<llama_token> eog_tokens_;
  std::vector<std::uint8_t> admitted_;
  std::vector<llama_token_data> level_;
  std::vector<llama_token> level_ids_;
  std::vector<llama_token> next_ids_;
  ggml_backend_dev_t gpu_ = nullptr;             ///< the CUDA plugin's device
  std::vector<ggml_backend_dev_t> gpu_devices_;  ///< {gpu_, nullptr}: llama_model_params::devices
  bool check_masks_ = false;
  std::int64_t masks_checked_ = 0;
  std::string description_;
  std::string description_checked_;
};

// ---------------------------------------------------------------------------------------------------
// The C ABI. Every entry point catches everything: no exception crosses into the host.

int32_t plugin_create(const char* config_json, void** engine, char* err, std::size_t err_size) {
  if (engine == nullptr) {
    write_error(err, err_size, "create: engine pointer is NULL");
    return HERDSIM_ERR_INVALID_ARGUMENT;
  }
  *engine = nullptr;
  try {
    init_llama_once();
    auto e = std::make_unique<Engine>(parse_config(config_json));
    *engine = e.release();
    return HERDSIM_OK;
  } catch (const PluginError& e) {
    write_error(err, err_size, e.message);
    return e.status;
  } catch (const std::bad_alloc&) {
    write_error(err, err_size, "out of memory while creating the engine");
    return HERDSIM_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    write_error(err, err_size, std::string("unexpected error while creating the engine: ") + e.what());
    return HERDSIM_ERR_INTERNAL;
  } catch (...) {
    write_error(err, err_size, "unexpected error while creating the engine");
    return HERDSIM_ERR_INTERNAL;
  }
}

void free_responses(herdsim_response* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    std::free(const_cast<char*>(out[i].text));
    std::free(const_cast<char*>(out[i].error));
    out[i].text = nullptr;
    out[i].error = nullptr;
  }
}

int32_t plugin_generate(void* engine, const herdsim_request* requests, std::size_t n, herdsim_response* out,
                        char* err, std::size_t err_size) {
  if (engine == nullptr || (n > 0 && (requests == nullptr || out == nullptr))) {
    write_error(err, err_size, "generate: NULL engine, requests or responses");
    return HERDSIM_ERR_INVALID_ARGUMENT;
  }
  for (std::size_t i = 0; i < n; ++i) out[i] = {};
  try {
    static_cast<Engine*>(engine)->generate(requests, n, out);
    return HERDSIM_OK;
  } catch (const PluginError& e) {
    free_responses(out, n);
    write_error(err, err_size, e.message);
    return e.status;
  } catch (const std::bad_alloc&) {
    free_responses(out, n);
    write_error(err, err_size, "out of memory while generating");
    return HERDSIM_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    free_responses(out, n);
    write_error(err, err_size, std::string("unexpected error while generating: ") + e.what());
    return HERDSIM_ERR_INTERNAL;
  } catch (...) {
    free_responses(out, n);
    write_error(err, err_size, "unexpected error while generating");
    return HERDSIM_ERR_INTERNAL;
  }
}

void plugin_release_responses(void* /*engine*/, herdsim_response* out, std::size_t n) {
  if (out != nullptr) free_responses(out, n);
}

const char* plugin_describe(void* engine) {
  return engine != nullptr ? static_cast<Engine*>(engine)->description().c_str() : "{}";
}

void plugin_destroy(void* engine) {
  try {
    delete static_cast<Engine*>(engine);
  } catch (...) {  // NOLINT(bugprone-empty-catch): nothing may escape into the host
  }
}

const herdsim_inference_plugin plugin_table = {
    HERDSIM_INFERENCE_ABI_VERSION,
    HERDSIM_LLAMA_CUDA != 0 ? "llama-cuda" : "llama-cpu",
    plugin_create,
    plugin_generate,
    plugin_release_responses,
    plugin_describe,
    plugin_destroy,
};

}  // namespace

extern "C" const herdsim_inference_plugin* herdsim_inference_plugin_entry(uint32_t /*host_abi_version*/) {
  return &plugin_table;
}
