#pragma once
// Internal to io/: owning HDF5 handles and error checking shared by the writer and the reader.
// Every HDF5 call goes through check() or make() exactly once, so a failure becomes an IoError
// naming the call, the object and HDF5's own reason.
#include <fmt/format.h>
#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sim/error.hpp"

namespace herdsim::io::hdf5 {

/// HDF5's own description of the innermost error on the stack (auto-printing is off).
inline std::string hdf5_reason() {
  std::string reason;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* err, void* data) -> herr_t {
        if (n == 0 && err->desc != nullptr) *static_cast<std::string*>(data) = err->desc;
        return 0;
      },
      &reason);
  H5Eclear2(H5E_DEFAULT);
  return reason;
}

[[noreturn]] inline void raise(const char* call, const std::string& object) {
  const std::string reason = hdf5_reason();
  throw IoError(fmt::format("HDF5 {} failed on {}{}{}", call, object, reason.empty() ? "" : ": ", reason));
}

inline void check(herr_t status, const char* call, const std::string& object) {
  if (status < 0) raise(call, object);
}

/// Turns off HDF5's printing of its error stack: failures become IoError instead.
inline void silence_hdf5_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

/// Owns one HDF5 identifier. Ids that HDF5 already closed (a file closed with H5F_CLOSE_STRONG
/// closes its datasets) are skipped, so a recorder may outlive its file.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, -1)), closer_(other.closer_) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, -1);
      closer_ = other.closer_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  [[nodiscard]] hid_t get() const { return id_; }
  [[nodiscard]] bool valid() const { return id_ >= 0; }
  /// Gives up ownership (for a close whose status must be checked).
  hid_t release() { return std::exchange(id_, -1); }
  void reset() noexcept {
    if (id_ >= 0 && H5Iis_valid(id_) > 0) closer_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

inline Handle make(hid_t id, Handle::Closer closer, const char* call, const std::string& object) {
  if (id < 0) raise(call, object);
  return {id, closer};
}

inline Handle make_space(const std::vector<hsize_t>& dims, const std::vector<hsize_t>& maxdims,
                         const std::string& object) {
  return make(H5Screate_simple(static_cast<int>(dims.size()), dims.data(),
                               maxdims.empty() ? nullptr : maxdims.data()),
              H5Sclose, "H5Screate_simple", object);
}

/// The names of a comma-separated list attribute (`dims`, `stats`, `asset_names`): "a,b" -> {a, b}.
inline std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  for (std::size_t start = 0; start <= text.size();) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

inline bool has_attribute(hid_t object, std::string_view name) {
  return H5Aexists(object, std::string(name).c_str()) > 0;
}

/// A string attribute, variable-length or fixed-size.
inline std::string read_string_attribute(hid_t object, const std::string& where, std::string_view name) {
  const std::string what = fmt::format("attribute '{}' of {}", name, where);
  Handle attr = make(H5Aopen(object, std::string(name).c_str(), H5P_DEFAULT), H5Aclose, "H5Aopen", what);
  Handle type = make(H5Aget_type(attr.get()), H5Tclose, "H5Aget_type", what);
  if (H5Tget_class(type.get()) != H5T_STRING) throw IoError(fmt::format("{} is not a string", what));
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle mem = make(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy", what);
    check(H5Tset_size(mem.get(), H5T_VARIABLE), "H5Tset_size", what);
    check(H5Tset_cset(mem.get(), H5T_CSET_UTF8), "H5Tset_cset", what);
    char* text = nullptr;
    check(H5Aread(attr.get(), mem.get(), &text), "H5Aread", what);
    std::string value = text != nullptr ? text : "";
    Handle space = make(H5Aget_space(attr.get()), H5Sclose, "H5Aget_space", what);
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, &text);
    return value;
  }
  const std::size_t size = H5Tget_size(type.get());
  std::string value(size, '\0');
  check(H5Aread(attr.get(), type.get(), value.data()), "H5Aread", what);
  value.resize(std::strlen(value.c_str()));
  return value;
}

}  // namespace herdsim::io::hdf5
