// The GGUF header validator (gguf_check.hpp): header, metadata and tensor table checked against the size.
#include "gguf_check.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>
#include <utility>

namespace herdsim::gguf {

namespace {

/// ggml's tensor dimensions (GGML_MAX_DIMS).
constexpr std::uint32_t max_dims = 4;

/// Keys, names and the kept values (general.architecture, general.type) longer than this are not read
/// into memory: the GGUF specification limits keys to 65535 bytes, ggml tensor names to 63.
constexpr std::uint64_t max_read_string = 65535;

// ggml_blck_size and ggml_type_size of every ggml_type of the pinned llama.cpp (ggml/src/ggml.c,
// type_traits); tests/backends/test_gguf_check.cpp compares them with ggml's where ggml is built.
constexpr std::array<TensorType, 43> tensor_type_table = {{
    {1, 4},      // 0 f32
    {1, 2},      // 1 f16
    {32, 18},    // 2 q4_0
    {32, 20},    // 3 q4_1
    {0, 0},      // 4 removed (q4_2)
    {0, 0},      // 5 removed (q4_3)
    {32, 22},    // 6 q5_0
    {32, 24},    // 7 q5_1
    {32, 34},    // 8 q8_0
    {32, 36},    // 9 q8_1
    {256, 84},   // 10 q2_K
    {256, 110},  // 11 q3_K
    {256, 144},  // 12 q4_K
    {256, 176},  // 13 q5_K
    {256, 210},  // 14 q6_K
    {256, 292},  // 15 q8_K
    {256, 66},   // 16 iq2_xxs
    {256, 74},   // 17 iq2_xs
    {256, 98},   // 18 iq3_xxs
    {256, 50},   // 19 iq1_s
    {32, 18},    // 20 iq4_nl
    {256, 110},  // 21 iq3_s
    {256, 82},   // 22 iq2_s
    {256, 136},  // 23 iq4_xs
    {1, 1},      // 24 i8
    {1, 2},      // 25 i16
    {1, 4},      // 26 i32
    {1, 8},      // 27 i64
    {1, 8},      // 28 f64
    {256, 56},   // 29 iq1_m
    {1, 2},      // 30 bf16
    {0, 0},      // 31 removed (q4_0_4_4)
    {0, 0},      // 32 removed (q4_0_4_8)
    {0, 0},      // 33 removed (q4_0_8_8)
    {256, 54},   // 34 tq1_0
    {256, 66},   // 35 tq2_0
    {0, 0},      // 36 removed (iq4_nl_4_4)
    {0, 0},      // 37 removed (iq4_nl_4_8)
    {0, 0},      // 38 removed (iq4_nl_8_8)
    {32, 17},    // 39 mxfp4
    {64, 36},    // 40 nvfp4
    {128, 18},   // 41 q1_0
    {64, 18},    // 42 q2_0
}};

/// Metadata value types of the GGUF format.
enum ValueType : std::uint32_t {
  type_u8 = 0,
  type_i8,
  type_u16,
  type_i16,
  type_u32,
  type_i32,
  type_f32,
  type_bool,
  type_string,
  type_array,
  type_u64,
  type_i64,
  type_f64,
  type_count
};

/// Bytes of a scalar metadata value (0: not a scalar).
std::uint64_t scalar_size(std::uint32_t type) {
  switch (type) {
    case type_u8:
    case type_i8:
    case type_bool:
      return 1;
    case type_u16:
    case type_i16:
      return 2;
    case type_u32:
    case type_i32:
    case type_f32:
      return 4;
    case type_u64:
    case type_i64:
    case type_f64:
      return 8;
    default:
      return 0;
  }
}

/// A GGUF file on disk, read through a large stdio buffer (a model's vocabulary is ~10^5 small reads).
class FileSource {
 public:
  FileSource(const std::string& path, const std::string& what) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status)) throw Error(what + " file " + path + " does not exist");
    if (!std::filesystem::is_regular_file(status)) throw Error(what + " " + path + " is not a regular file");
    size_ = std::filesystem::file_size(path, ec);
    if (ec) throw Error("cannot read the size of " + path + ": " + ec.message());
    file_ = std::fopen(path.c_str(), "rb");
    if (file_ == nullptr) throw Error("cannot open " + path + ": " + std::strerror(errno));
    std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
  }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  ~FileSource() { std::fclose(file_); }

  [[nodiscard]] std::uint64_t size() const { return size_; }
  /// Reads n bytes at the current position (the caller has checked they are there).
  bool read(void* dst, std::uint64_t n) {
    return std::fread(dst, 1, static_cast<std::size_t>(n), file_) == n;
  }
  bool seek(std::uint64_t pos) { return std::fseek(file_, static_cast<long>(pos), SEEK_SET) == 0; }

 private:
  std::uint64_t size_ = 0;
  std::FILE* file_ = nullptr;
};

/// A GGUF file's bytes in memory.
class MemorySource {
 public:
  explicit MemorySource(std::span<const unsigned char> bytes) : bytes_(bytes) {}
  [[nodiscard]] std::uint64_t size() const { return bytes_.size(); }
  bool read(void* dst, std::uint64_t n) {
    if (n > 0) std::memcpy(dst, bytes_.data() + pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return true;
  }
  bool seek(std::uint64_t pos) {
    pos_ = static_cast<std::size_t>(pos);
    return true;
  }

 private:
  std::span<const unsigned char> bytes_;
  std::size_t pos_ = 0;
};

/// Bounds-checked reading of a source: nothing is read or allocated past the end of the input.
template <typename Source>
class Reader {
 public:
  Reader(Source& source, std::string label) : source_(source), label_(std::move(label)) {}

  [[nodiscard]] std::uint64_t size() const { return source_.size(); }
  [[nodiscard]] std::uint64_t offset() const { return offset_; }
  [[nodiscard]] std::uint64_t remaining() const { return size() - offset_; }

  [[noreturn]] void corrupt(const std::string& why) const {
    throw Error(label_ + " is not a valid GGUF file: " + why);
  }

  void read(void* dst, std::uint64_t n, const char* field) {
    if (n > remaining()) truncated(field);
    if (n > 0 && !source_.read(dst, n)) corrupt("read error");
    offset_ += n;
  }
  template <typename T>
  T value(const char* field) {
    T v{};
    read(&v, sizeof v, field);
    return v;
  }
  void skip(std::uint64_t n, const char* field) {
    if (n > remaining()) truncated(field);
    if (!source_.seek(offset_ + n)) corrupt("seek error");
    offset_ += n;
  }
  void seek(std::uint64_t pos) {
    if (pos > size() || !source_.seek(pos)) corrupt("seek error");
    offset_ = pos;
  }
  /// The length of a string and a check that its bytes are there.
  std::uint64_t string_length(const char* field) {
    const auto n = value<std::uint64_t>(field);
    if (n > remaining())
      corrupt(std::string("truncated or corrupt: a string (") + field + ") of " + std::to_string(n) +
              " bytes at byte " + std::to_string(offset_) + " is longer than the rest of the file");
    return n;
  }
  /// A string (key, name): read when at most max_read_string bytes, else skipped and described.
  std::string string(const char* field) {
    const std::uint64_t n = string_length(field);
    if (n > max_read_string) {
      skip(n, field);
      return "(a " + std::to_string(n) + "-byte " + field + ")";
    }
    std::string s(static_cast<std::size_t>(n), '\0');
    read(s.data(), n, field);
    return s;
  }

 private:
  [[noreturn]] void truncated(const char* field) const {
    corrupt(std::string("truncated (") + field + " at byte " + std::to_string(offset_) +
            " runs past the end of the " + std::to_string(size()) + "-byte file)");
  }

  Source& source_;
  std::string label_;
  std::uint64_t offset_ = 0;
};

/// One entry of the tensor table: its name and where its data lies relative to the data section.
struct Tensor {
  std::string name;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
};

/// Reads and checks one tensor table entry.
template <typename Source>
Tensor read_tensor(Reader<Source>& in, std::uint64_t alignment) {
  Tensor t;
  t.name = in.string("tensor name");
  const auto n_dims = in.template value<std::uint32_t>("tensor dimensions");
  if (n_dims == 0 || n_dims > max_dims)
    in.corrupt("tensor '" + t.name + "' has " + std::to_string(n_dims) + " dimensions");
  std::uint64_t ne[max_dims] = {1, 1, 1, 1};
  for (std::uint32_t d = 0; d < n_dims; ++d) {
    ne[d] = in.template value<std::uint64_t>("tensor shape");
    if (ne[d] > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      in.corrupt("tensor '" + t.name + "' has a negative dimension");
  }
  const auto type_id = in.template value<std::uint32_t>("tensor type");
  const auto types = tensor_types();
  if (type_id >= types.size() || types[type_id].block_elements <= 0)
    in.corrupt("tensor '" + t.name + "' has unknown type " + std::to_string(type_id));
  const TensorType type = types[type_id];
  const auto block = static_cast<std::uint64_t>(type.block_elements);
  if (ne[0] % block != 0)
    in.corrupt("tensor '" + t.name + "' has a row length not divisible by its block size");
  // bytes = row bytes * ne1 * ne2 * ne3, saturated at size + 1 (reported below) instead of overflowing;
  // a zero dimension makes the product 0 whatever came before.
  const std::uint64_t saturated = in.size() + 1;
  const std::uint64_t blocks = ne[0] / block;
  std::uint64_t bytes =
      blocks != 0 && type.block_bytes > in.size() / blocks ? saturated : blocks * type.block_bytes;
  for (std::uint32_t d = 1; d < max_dims; ++d) {
    if (ne[d] != 0 && bytes > in.size() / ne[d])
      bytes = saturated;
    else
      bytes *= ne[d];
  }
  if (bytes > in.size())
    in.corrupt("truncated or corrupt: tensor '" + t.name + "' needs more bytes than the " +
               std::to_string(in.size()) + "-byte file holds");
  t.bytes = bytes;
  t.offset = in.template value<std::uint64_t>("tensor offset");
  if (t.offset % alignment != 0) in.corrupt("tensor '" + t.name + "' is not aligned");
  return t;
}

/// Whether a tensor's data, data_start + offset .. + bytes, lies inside the file.
bool fits(const Tensor& t, std::uint64_t data_start, std::uint64_t size) {
  return t.offset <= size && t.bytes <= size - t.offset && data_start <= size - t.offset - t.bytes;
}

template <typename Source>
Info check(Source& source, const std::string& label) {
  Reader<Source> in(source, label);
  if (in.size() < 24) in.corrupt("only " + std::to_string(in.size()) + " bytes long");
  char magic[4];
  in.read(magic, 4, "magic");
  if (std::memcmp(magic, "GGUF", 4) != 0) in.corrupt("it does not start with the magic \"GGUF\"");
  Info info;
  info.version = in.template value<std::uint32_t>("version");
  if (info.version == 1) in.corrupt("GGUF version 1 is no longer supported; convert the model again");
  if (info.version != 2 && info.version != 3) {
    const bool swapped = (info.version & 0xFFFFU) == 0 && (info.version >> 16U) != 0;
    in.corrupt("unsupported GGUF version " + std::to_string(info.version) +
               (swapped ? " (a big-endian file?)" : " (supported: 2 and 3)"));
  }
  info.n_tensors = in.template value<std::uint64_t>("tensor count");
  info.n_kv = in.template value<std::uint64_t>("metadata count");
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
    const auto type = in.template value<std::uint32_t>("metadata type");
    if (type >= type_count) in.corrupt("metadata '" + key + "' has unknown type " + std::to_string(type));
    if (key == "general.alignment") {
      if (type != type_u32) in.corrupt("general.alignment is not a u32");
      alignment = in.template value<std::uint32_t>("alignment");
      if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        in.corrupt("general.alignment " + std::to_string(alignment) + " is not a power of two");
    } else if (type == type_array) {
      const auto elem = in.template value<std::uint32_t>("array type");
      const auto count = in.template value<std::uint64_t>("array length");
      if (elem == type_string) {
        if (count > in.remaining() / 8)
          in.corrupt("truncated or corrupt: metadata '" + key + "' has " + std::to_string(count) +
                     " strings, more than the rest of the file holds");
        for (std::uint64_t k = 0; k < count; ++k) {
          const auto n = in.template value<std::uint64_t>("array string");
          in.skip(n, "array string");
        }
      } else {
        const std::uint64_t size = scalar_size(elem);
        if (size == 0)
          in.corrupt("metadata '" + key + "' is an array of unsupported type " + std::to_string(elem));
        if (count > in.remaining() / size)
          in.corrupt("truncated or corrupt: metadata '" + key + "' runs past the end of the file");
        in.skip(count * size, "array");
      }
    } else if (type == type_string) {
      const bool kept = key == "general.architecture" || key == "general.type";
      const std::uint64_t n = in.string_length("metadata value");
      if (!kept) {
        in.skip(n, "metadata value");
      } else {
        if (n > max_read_string)
          in.corrupt("metadata '" + key + "' is " + std::to_string(n) + " bytes long (at most " +
                     std::to_string(max_read_string) + ")");
        std::string value(static_cast<std::size_t>(n), '\0');
        in.read(value.data(), n, "metadata value");
        (key == "general.architecture" ? info.architecture : info.type) = std::move(value);
      }
    } else {
      in.skip(scalar_size(type), "metadata value");
    }
  }
  if (info.architecture.empty()) in.corrupt("no general.architecture in its metadata");

  // The tensor table is read twice when a tensor's data lies outside the file: the data section starts
  // after the table, so which tensor is the first that does not fit is known only at its end. Nothing
  // is kept per tensor: the memory used does not grow with the count the file declares.
  const std::uint64_t table_start = in.offset();
  bool all_fit = true;
  std::uint64_t max_end = 0;  // of the tensors' data, relative to the data section
  for (std::uint64_t i = 0; i < info.n_tensors; ++i) {
    const Tensor t = read_tensor(in, alignment);
    if (t.offset > in.size() || t.bytes > in.size() - t.offset)
      all_fit = false;
    else
      max_end = std::max(max_end, t.offset + t.bytes);
  }
  const std::uint64_t data_start = (in.offset() + alignment - 1) / alignment * alignment;
  if (info.n_tensors == 0 || (all_fit && data_start <= in.size() - max_end)) return info;
  in.seek(table_start);
  for (std::uint64_t i = 0; i < info.n_tensors; ++i) {
    const Tensor t = read_tensor(in, alignment);
    if (fits(t, data_start, in.size())) continue;
    const std::string at = t.offset <= std::numeric_limits<std::uint64_t>::max() - data_start
                               ? std::to_string(data_start + t.offset)
                               : std::to_string(data_start) + " + " + std::to_string(t.offset);
    in.corrupt("truncated: the data of tensor '" + t.name + "' (" + std::to_string(t.bytes) + " bytes at " +
               at + ") runs past the end of the " + std::to_string(in.size()) + "-byte file");
  }
  in.corrupt("the tensor table reads differently a second time");  // a file changed while it was checked
}

}  // namespace

std::span<const TensorType> tensor_types() {
  return tensor_type_table;
}

Info check_file(const std::string& path, const std::string& what) {
  FileSource source(path, what);
  return check(source, what + " " + path);
}

Info check_bytes(std::span<const unsigned char> bytes, const std::string& name, const std::string& what) {
  MemorySource source(bytes);
  return check(source, what + " " + name);
}

}  // namespace herdsim::gguf
