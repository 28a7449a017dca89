// The GGUF validator (backends/llama/gguf_check.hpp) on its own: valid headers written here byte by
// byte, every kind of malformed header (truncated, absurd counts and lengths, bad versions, bad tensor
// entries), the largest single allocation any of them causes, the tiny test models when they are built,
// the tensor type table against ggml's where ggml is linked, and the inputs the fuzzer found.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <new>
#include <string>
#include <vector>

#include "backends/backend_test_support.hpp"
#include "gguf_check.hpp"

#if HERDSIM_GGUF_CHECK_GGML
#include <ggml.h>
#endif

namespace gguf = herdsim::gguf;
using herdsim::test::contains;

// The largest single allocation through operator new since the last reset: the check must not allocate
// in proportion to the counts and lengths a file declares. (GCC takes the malloc/free pair below for a
// mismatch with new/delete where it inlines them.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
std::size_t largest_allocation = 0;
}  // namespace

void* operator new(std::size_t n) {
  if (n > largest_allocation) largest_allocation = n;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t /*n*/) noexcept {
  std::free(p);
}

namespace {

// Little-endian pieces of a GGUF file.
void put_u32(std::string& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b += static_cast<char>((v >> (8 * i)) & 0xFFU);
}
void put_u64(std::string& b, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b += static_cast<char>((v >> (8 * i)) & 0xFFU);
}
void put_string(std::string& b, const std::string& s) {
  put_u64(b, s.size());
  b += s;
}

constexpr std::uint32_t type_u8 = 0;
constexpr std::uint32_t type_u32 = 4;
constexpr std::uint32_t type_string = 8;
constexpr std::uint32_t type_array = 9;
constexpr std::uint32_t ggml_f32 = 0;
constexpr std::uint32_t ggml_q4_0 = 2;

std::string kv_string(const std::string& key, const std::string& value) {
  std::string b;
  put_string(b, key);
  put_u32(b, type_string);
  put_string(b, value);
  return b;
}
std::string kv_u32(const std::string& key, std::uint32_t value) {
  std::string b;
  put_string(b, key);
  put_u32(b, type_u32);
  put_u32(b, value);
  return b;
}
std::string kv_strings(const std::string& key, const std::vector<std::string>& values) {
  std::string b;
  put_string(b, key);
  put_u32(b, type_array);
  put_u32(b, type_string);
  put_u64(b, values.size());
  for (const auto& v : values) put_string(b, v);
  return b;
}
std::string kv_bytes(const std::string& key, std::size_t n) {
  std::string b;
  put_string(b, key);
  put_u32(b, type_array);
  put_u32(b, type_u8);
  put_u64(b, n);
  b += std::string(n, '\x01');
  return b;
}
std::string tensor(const std::string& name, const std::vector<std::uint64_t>& shape, std::uint32_t type,
                   std::uint64_t offset) {
  std::string b;
  put_string(b, name);
  put_u32(b, static_cast<std::uint32_t>(shape.size()));
  for (const auto d : shape) put_u64(b, d);
  put_u32(b, type);
  put_u64(b, offset);
  return b;
}

/// Header with the given counts, then `body` as is.
std::string raw_gguf(std::uint32_t version, std::uint64_t n_tensors, std::uint64_t n_kv,
                     const std::string& body) {
  std::string b = "GGUF";
  put_u32(b, version);
  put_u64(b, n_tensors);
  put_u64(b, n_kv);
  return b + body;
}

/// A well-formed file: metadata, tensor table, padding to `alignment`, data.
std::string gguf_file(const std::vector<std::string>& kvs, const std::vector<std::string>& tensors,
                      const std::string& data, std::uint32_t version = 3, std::size_t alignment = 32) {
  std::string body;
  for (const auto& kv : kvs) body += kv;
  for (const auto& t : tensors) body += t;
  std::string b = raw_gguf(version, tensors.size(), kvs.size(), body);
  b.resize((b.size() + alignment - 1) / alignment * alignment, '\0');
  return b + data;
}

/// Two tensors: a 4 x 2 f32 matrix (32 bytes at 0) and a 64-element q4_0 row (2 blocks: 36 bytes at 32).
std::string two_tensor_file() {
  return gguf_file({kv_string("general.architecture", "llama"), kv_u32("llama.block_count", 2),
                    kv_strings("tokenizer.ggml.tokens", {"a", "b", "<s>"})},
                   {tensor("w", {4, 2}, ggml_f32, 0), tensor("q", {64}, ggml_q4_0, 32)},
                   std::string(68, '\x02'));
}

gguf::Info check(const std::string& bytes) {
  return gguf::check_bytes({reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()}, "t.gguf",
                           "model");
}

/// The message of the gguf::Error the check throws ("" when it accepts the bytes).
std::string error_of(const std::string& bytes) {
  return herdsim::test::message_of<gguf::Error>([&] { (void)check(bytes); });
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_SUITE("gguf_check") {
  TEST_CASE("valid headers are accepted and read") {
    const gguf::Info info = check(two_tensor_file());
    CHECK(check(gguf_file({kv_bytes("general.bytes", 1000), kv_string("general.architecture", "llama")}, {},
                          ""))
              .n_kv == 2);
    CHECK(info.version == 3);
    CHECK(info.n_tensors == 2);
    CHECK(info.n_kv == 3);
    CHECK(info.architecture == "llama");
    CHECK(info.type.empty());

    const gguf::Info v2 = check(gguf_file(
        {kv_string("general.architecture", "qwen2"), kv_string("general.type", "adapter")}, {}, "", 2));
    CHECK(v2.version == 2);
    CHECK(v2.architecture == "qwen2");
    CHECK(v2.type == "adapter");
    CHECK(v2.n_tensors == 0);

    // Another alignment moves the data section.
    const std::string aligned =
        gguf_file({kv_string("general.architecture", "llama"), kv_u32("general.alignment", 64)},
                  {tensor("w", {8}, ggml_f32, 0)}, std::string(32, '\0'), 3, 64);
    CHECK(check(aligned).architecture == "llama");
    // A zero-element tensor needs no bytes, whatever its row length.
    CHECK_NOTHROW(check(gguf_file({kv_string("general.architecture", "llama")},
                                  {tensor("empty", {std::uint64_t{1} << 62U, 0}, ggml_f32, 0)}, "")));
    // A key longer than what is read into memory is skipped, not refused (llama.cpp accepts it), and so
    // is a long value of a key that is not kept.
    const std::string long_strings =
        gguf_file({kv_u32(std::string(200000, 'k'), 1), kv_string("x", std::string(200000, 'v')),
                   kv_string("general.architecture", "llama")},
                  {}, "");
    largest_allocation = 0;
    CHECK(check(long_strings).architecture == "llama");
    CHECK(largest_allocation < 1024);
  }

  TEST_CASE("short, foreign and unsupported files") {
    CHECK(contains(error_of(""), "model t.gguf is not a valid GGUF file: only 0 bytes long"));
    CHECK(contains(error_of(std::string(23, 'G')), "only 23 bytes long"));
    CHECK(contains(error_of("this is not a model, just some text\n"),
                   "does not start with the magic \"GGUF\""));
    CHECK(contains(error_of(raw_gguf(1, 0, 0, "")), "GGUF version 1 is no longer supported"));
    CHECK(contains(error_of(raw_gguf(7, 0, 0, "")), "unsupported GGUF version 7 (supported: 2 and 3)"));
    CHECK(contains(error_of(raw_gguf(0x03000000U, 0, 0, "")), "(a big-endian file?)"));
    CHECK(contains(error_of(raw_gguf(3, 0, 0, "")), "no general.architecture in its metadata"));
  }

  TEST_CASE("every truncation of a valid file is an error, none a crash") {
    const std::string whole = two_tensor_file();
    REQUIRE(error_of(whole).empty());
    for (std::size_t n = 0; n < whole.size(); ++n) {
      INFO("first " << n << " bytes");
      CHECK_FALSE(error_of(whole.substr(0, n)).empty());
    }
    // Cut in the data: the header is whole, the last tensor's data is not; the message names it.
    const std::string msg = error_of(whole.substr(0, whole.size() - 1));
    CHECK(contains(msg, "truncated: the data of tensor 'q' (36 bytes at "));
    CHECK(contains(msg, "runs past the end of the " + std::to_string(whole.size() - 1) + "-byte file"));
    // Cut in the metadata.
    CHECK(contains(error_of(whole.substr(0, 40)), "truncated"));
  }

  TEST_CASE("absurd counts and lengths are refused before anything is allocated") {
    const std::string arch = kv_string("general.architecture", "llama");
    const std::string padding(4096, '\0');
    struct Case {
      const char* what;
      std::string bytes;
      const char* message;
    };
    std::string huge_key;
    put_u64(huge_key, std::uint64_t{1} << 62U);
    std::string huge_value;
    put_string(huge_value, "general.architecture");
    put_u32(huge_value, type_string);
    put_u64(huge_value, std::uint64_t{1} << 40U);
    std::string long_arch = kv_string("general.architecture", std::string(70000, 'a'));
    std::string huge_array;
    put_string(huge_array, "tokenizer.ggml.scores");
    put_u32(huge_array, type_array);
    put_u32(huge_array, 6);  // f32
    put_u64(huge_array, std::uint64_t{1} << 61U);
    std::string huge_strings;
    put_string(huge_strings, "tokenizer.ggml.tokens");
    put_u32(huge_strings, type_array);
    put_u32(huge_strings, type_string);
    put_u64(huge_strings, ~std::uint64_t{0});
    std::string huge_array_string;
    put_string(huge_array_string, "tokenizer.ggml.tokens");
    put_u32(huge_array_string, type_array);
    put_u32(huge_array_string, type_string);
    put_u64(huge_array_string, 1);
    put_u64(huge_array_string, std::uint64_t{1} << 50U);
    std::string nested_array;
    put_string(nested_array, "x");
    put_u32(nested_array, type_array);
    put_u32(nested_array, type_array);
    put_u64(nested_array, 1);
    std::string unknown_type;
    put_string(unknown_type, "x");
    put_u32(unknown_type, 13);
    std::string huge_name;
    put_u64(huge_name, std::uint64_t{1} << 55U);
    const std::vector<Case> cases = {
        {"metadata count", raw_gguf(3, 0, ~std::uint64_t{0} >> 1U, padding), "metadata entries cannot fit"},
        {"tensor count", raw_gguf(3, std::uint64_t{1} << 60U, 1, arch + padding),
         "tensor entries cannot fit"},
        {"key length", raw_gguf(3, 0, 1, huge_key + padding),
         "a string (metadata key) of 4611686018427387904 bytes"},
        {"value length", raw_gguf(3, 0, 1, huge_value + padding),
         "a string (metadata value) of 1099511627776 bytes"},
        {"architecture length", raw_gguf(3, 0, 1, long_arch),
         "metadata 'general.architecture' is 70000 bytes long (at most 65535)"},
        {"array length", raw_gguf(3, 0, 1, huge_array + padding),
         "'tokenizer.ggml.scores' runs past the end"},
        {"string array length", raw_gguf(3, 0, 1, huge_strings + padding),
         "has 18446744073709551615 strings"},
        {"string in an array", raw_gguf(3, 0, 1, huge_array_string + padding),
         "truncated (array string at byte"},
        {"array of arrays", raw_gguf(3, 0, 1, nested_array + padding), "is an array of unsupported type 9"},
        {"metadata type", raw_gguf(3, 0, 1, unknown_type + padding), "metadata 'x' has unknown type 13"},
        {"tensor name length", raw_gguf(3, 1, 1, arch + huge_name + padding), "a string (tensor name) of"},
        // As many tensor entries as the rest could hold (zeros): nothing is kept per declared entry.
        {"tensor count at the limit", raw_gguf(3, (1U << 22U) / 32, 1, arch + std::string(1U << 22U, '\0')),
         "tensor '' has 0 dimensions"},
    };
    for (const Case& c : cases) {
      INFO(c.what);
      largest_allocation = 0;
      const std::string msg = error_of(c.bytes);
      CHECK(contains(msg, c.message));
      CHECK(largest_allocation < 70000 + 1024);  // the longest string read into memory, and messages
    }
  }

  TEST_CASE("bad metadata values and tensor entries") {
    const std::string arch = kv_string("general.architecture", "llama");
    auto with_tensor = [&](const std::string& t, std::size_t data = 64) {
      return error_of(gguf_file({arch}, {t}, std::string(data, '\0')));
    };
    CHECK(contains(error_of(gguf_file({arch, kv_u32("general.alignment", 0)}, {}, "")),
                   "general.alignment 0 is not a power of two"));
    CHECK(contains(error_of(gguf_file({arch, kv_u32("general.alignment", 48)}, {}, "")),
                   "general.alignment 48 is not a power of two"));
    CHECK(contains(error_of(gguf_file({arch, kv_string("general.alignment", "32")}, {}, "")),
                   "general.alignment is not a u32"));
    CHECK(contains(with_tensor(tensor("w", {}, ggml_f32, 0)), "tensor 'w' has 0 dimensions"));
    CHECK(contains(with_tensor(tensor("w", {1, 1, 1, 1, 1}, ggml_f32, 0)), "tensor 'w' has 5 dimensions"));
    CHECK(contains(with_tensor(tensor("w", {~std::uint64_t{0}}, ggml_f32, 0)),
                   "tensor 'w' has a negative dimension"));
    CHECK(contains(with_tensor(tensor("w", {8}, 4, 0)), "tensor 'w' has unknown type 4"));
    CHECK(contains(with_tensor(tensor("w", {8}, 43, 0)), "tensor 'w' has unknown type 43"));
    CHECK(
        contains(with_tensor(tensor("w", {31}, ggml_q4_0, 0)), "row length not divisible by its block size"));
    CHECK(contains(with_tensor(tensor("w", {8}, ggml_f32, 4)), "tensor 'w' is not aligned"));
    CHECK(contains(with_tensor(tensor("w", {8}, ggml_f32, 64)),
                   "truncated: the data of tensor 'w' (32 bytes at "));
    // Sizes whose product wraps around 2^64 are not small: 4 * 2^62 bytes, 2^32 * 2^32 rows.
    CHECK(contains(with_tensor(tensor("w", {std::uint64_t{1} << 62U}, ggml_f32, 0)),
                   "needs more bytes than the"));
    CHECK(
        contains(with_tensor(tensor("w", {1, std::uint64_t{1} << 32U, std::uint64_t{1} << 32U}, ggml_f32, 0)),
                 "needs more bytes than the"));
    CHECK(contains(with_tensor(tensor("w", {std::uint64_t{1} << 59U}, ggml_q4_0, 0)),
                   "needs more bytes than the"));
  }

  TEST_CASE("the first tensor whose data lies outside the file is named") {
    const std::string bytes = gguf_file(
        {kv_string("general.architecture", "llama")},
        {tensor("a", {8}, ggml_f32, 0), tensor("b", {8}, ggml_f32, 1024), tensor("c", {8}, ggml_f32, 2048)},
        std::string(32, '\0'));
    const std::string msg = error_of(bytes);
    CHECK(contains(msg, "the data of tensor 'b' (32 bytes at "));
    // An offset near 2^64 is past the end, not wrapped around to the start.
    const std::string wrapped =
        gguf_file({kv_string("general.architecture", "llama")},
                  {tensor("a", {8}, ggml_f32, ~std::uint64_t{0} - 31)}, std::string(32, '\0'));
    CHECK(contains(error_of(wrapped), "the data of tensor 'a'"));
  }

  TEST_CASE("files: missing, not regular, and the same check as in memory") {
    const std::filesystem::path dir = std::filesystem::temp_directory_path() / "herdsim_test_gguf_check";
    std::filesystem::create_directories(dir);
    CHECK_THROWS_WITH_AS(gguf::check_file((dir / "none.gguf").string(), "model"),
                         ("model file " + (dir / "none.gguf").string() + " does not exist").c_str(),
                         gguf::Error);
    CHECK_THROWS_WITH_AS(gguf::check_file(dir.string(), "LoRA adapter"),
                         ("LoRA adapter " + dir.string() + " is not a regular file").c_str(), gguf::Error);
    const std::string whole = two_tensor_file();
    const std::string path = (dir / "two.gguf").string();
    std::ofstream(path, std::ios::binary) << whole;
    CHECK(gguf::check_file(path, "model").n_tensors == 2);
    for (const std::size_t n : {std::size_t{10}, std::size_t{60}, whole.size() - 1}) {
      std::ofstream(path, std::ios::binary | std::ios::trunc) << whole.substr(0, n);
      const std::string from_file =
          herdsim::test::message_of<gguf::Error>([&] { (void)gguf::check_file(path, "model"); });
      INFO(n << " bytes");
      CHECK(from_file ==
            "model " + path + error_of(whole.substr(0, n)).substr(std::string("model t.gguf").size()));
    }
    std::filesystem::remove_all(dir);
  }

#ifdef HERDSIM_TEST_MODELS
  TEST_CASE("the tiny test models pass; their truncations do not") {
    for (const std::string name : {"tiny-llama", "tiny-qwen2"}) {
      const std::string model = std::string(HERDSIM_TEST_MODELS) + "/" + name + ".gguf";
      const gguf::Info info = gguf::check_file(model, "model");
      CHECK(info.architecture == (name == "tiny-llama" ? "llama" : "qwen2"));
      CHECK(info.n_tensors > 10);
      const gguf::Info lora =
          gguf::check_file(std::string(HERDSIM_TEST_MODELS) + "/" + name + "-lora.gguf", "model");
      CHECK(lora.type == "adapter");
      const std::string bytes = read_file(model);
      CHECK(contains(error_of(bytes.substr(0, bytes.size() / 2)), "truncated or corrupt"));
      CHECK(contains(error_of(bytes.substr(0, bytes.size() - 16)), "truncated: the data of tensor"));
      CHECK(contains(error_of(bytes.substr(0, 4096)), "truncated"));
    }
  }
#endif

#if HERDSIM_GGUF_CHECK_GGML
  TEST_CASE("the tensor type table is ggml's") {
    const auto types = gguf::tensor_types();
    REQUIRE(types.size() == static_cast<std::size_t>(GGML_TYPE_COUNT));
    for (std::size_t t = 0; t < types.size(); ++t) {
      const auto type = static_cast<ggml_type>(t);
      INFO("type " << t << " (" << ggml_type_name(type) << ")");
      CHECK(types[t].block_elements == ggml_blck_size(type));
      CHECK(types[t].block_bytes == ggml_type_size(type));
    }
  }
#endif
}
