#include "io/hdf5_output.hpp"

#include <tbb/parallel_for.h>
#include <tbb/task_group.h>

#include <fmt/format.h>
#include <hdf5.h>
#include <hdf5_hl.h>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "agents/investagent_agent.hpp"
#include "agents/kind.hpp"
#include "io/hdf5_schema.hpp"
#include "io/hdf5_support.hpp"
#include "io/output_file.hpp"
#include "io/timestamp.hpp"
#include "sim/analysis/summary_stats.hpp"
#include "sim/enum_names.hpp"
#include "sim/error.hpp"
#include "sim/recording_plan.hpp"

namespace herdsim::io {

namespace {

using namespace hdf5;  // NOLINT: handles and checks shared with the reader

/// About 1 MiB of doubles: the cap on one chunk.
constexpr hsize_t kChunkElements = (hsize_t{1} << 20) / sizeof(double);
/// Row-appended small datasets (time, market, summaries) take several rows per chunk but stay well
/// inside HDF5's default 1 MiB chunk cache, so appending a row never rereads a chunk from disk.
constexpr hsize_t kSmallChunkElements = kChunkElements / 4;
constexpr hsize_t kSmallChunkRowsMax = 1024;

// ---------------------------------------------------------------------------------------------
// Attributes. Strings are variable-length UTF-8: h5py reads them as str, and the text lives on the
// global heap so a long scenario does not hit the 64 KiB object-header limit.

void write_attribute(hid_t object, const std::string& where, std::string_view name, hid_t file_type,
                     hid_t mem_type, const std::vector<hsize_t>& dims, const void* data) {
  const std::string what = fmt::format("attribute '{}' of {}", name, where);
  const std::string name_text(name);
  Handle space =
      dims.empty() ? make(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate", what) : make_space(dims, {}, what);
  Handle attr = make(H5Acreate2(object, name_text.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                     H5Aclose, "H5Acreate2", what);
  check(H5Awrite(attr.get(), mem_type, data), "H5Awrite", what);
}

void write_attribute(hid_t object, const std::string& where, std::string_view name,
                     const std::string& value) {
  const std::string what = fmt::format("attribute '{}' of {}", name, where);
  Handle type = make(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy", what);
  check(H5Tset_size(type.get(), H5T_VARIABLE), "H5Tset_size", what);
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), "H5Tset_cset", what);
  const char* text = value.c_str();
  write_attribute(object, where, name, type.get(), type.get(), {}, &text);
}

void write_attribute(hid_t object, const std::string& where, std::string_view name, int value) {
  write_attribute(object, where, name, H5T_STD_I32LE, H5T_NATIVE_INT, {}, &value);
}

void write_attribute(hid_t object, const std::string& where, std::string_view name, double value) {
  write_attribute(object, where, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {}, &value);
}

void write_attribute(hid_t object, const std::string& where, std::string_view name, std::int64_t value) {
  write_attribute(object, where, name, H5T_STD_I64LE, H5T_NATIVE_INT64, {}, &value);
}

/// Variable-length UTF-8 strings (datasets of text, e.g. transcripts' outputs): h5py reads str.
Handle make_string_type(const std::string& where) {
  Handle type = make(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy", where);
  check(H5Tset_size(type.get(), H5T_VARIABLE), "H5Tset_size", where);
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), "H5Tset_cset", where);
  return type;
}

// ---------------------------------------------------------------------------------------------
// Datasets

/// Chunk shape for rows of shape `row_dims`, `rows` rows per chunk: capped at `budget` elements by
/// splitting the inner axes, the last (agent) axis first.
std::vector<hsize_t> chunk_shape(const std::vector<hsize_t>& row_dims, hsize_t rows, hsize_t budget) {
  std::vector<hsize_t> chunk{rows};
  hsize_t room = std::max<hsize_t>(1, budget / rows);
  for (std::size_t i = 0; i < row_dims.size(); ++i) {
    hsize_t inner = 1;  // elements per unit of this axis, from the axes after it
    for (std::size_t j = i + 1; j < row_dims.size(); ++j) inner *= std::max<hsize_t>(1, row_dims[j]);
    const hsize_t take = std::clamp<hsize_t>(room / inner, 1, std::max<hsize_t>(1, row_dims[i]));
    chunk.push_back(take);
    room = std::max<hsize_t>(1, room / take);
  }
  return chunk;
}

struct DatasetSpec {
  std::string dims;         ///< axis names, e.g. "step,path,agent"
  std::string units;        ///< empty: no units attribute
  bool trajectory = false;  ///< one row per chunk, gzip when asked
  int gzip = 0;             ///< deflate level for trajectory datasets
};

/// Creates a chunked dataset whose first axis is `rows` long (H5S_UNLIMITED max when `extendible`).
Handle create_dataset(hid_t parent, const std::string& parent_where, std::string_view name, hid_t file_type,
                      hsize_t rows, const std::vector<hsize_t>& row_dims, bool extendible,
                      const DatasetSpec& spec, std::string& where) {
  const std::string name_text(name);
  where = parent_where == "/" ? "/" + name_text : parent_where + "/" + name_text;
  std::vector<hsize_t> dims{rows};
  dims.insert(dims.end(), row_dims.begin(), row_dims.end());
  std::vector<hsize_t> maxdims = dims;
  if (extendible) maxdims[0] = H5S_UNLIMITED;

  hsize_t row_size = 1;
  for (const hsize_t d : row_dims) row_size *= std::max<hsize_t>(1, d);
  const hsize_t chunk_rows =
      spec.trajectory ? 1 : std::clamp<hsize_t>(kSmallChunkElements / row_size, 1, kSmallChunkRowsMax);
  std::vector<hsize_t> chunk =
      chunk_shape(row_dims, chunk_rows, spec.trajectory ? kChunkElements : kSmallChunkElements);
  if (!extendible) chunk[0] = std::min(chunk[0], std::max<hsize_t>(1, rows));

  Handle dcpl = make(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, "H5Pcreate", where);
  check(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), "H5Pset_chunk", where);
  if (spec.trajectory && spec.gzip > 0) {
    check(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(spec.gzip)), "H5Pset_deflate", where);
  }
  Handle space = make_space(dims, maxdims, where);
  Handle dset = make(
      H5Dcreate2(parent, name_text.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
      H5Dclose, "H5Dcreate2", where);
  write_attribute(dset.get(), where, schema::kDims, spec.dims);
  if (!spec.units.empty()) write_attribute(dset.get(), where, schema::kUnits, spec.units);
  return dset;
}

/// A dataset extended by one row per append: the unit of bounded-memory recording.
class Series {
 public:
  Series() = default;
  Series(hid_t parent, const std::string& parent_where, std::string_view name, hid_t file_type,
         hid_t mem_type, std::vector<hsize_t> row_dims, const DatasetSpec& spec)
      : row_dims_(std::move(row_dims)), mem_type_(mem_type) {
    dset_ = create_dataset(parent, parent_where, name, file_type, 0, row_dims_, true, spec, where_);
    // The default memory layout of one row: contiguous, row-major.
    row_space_ = make_space(row_dims_.empty() ? std::vector<hsize_t>{1} : row_dims_, {}, where_);
  }

  [[nodiscard]] bool valid() const { return dset_.valid(); }

  /// Appends one row read from `data` through `mem_space` (a selection in the caller's buffer), or
  /// through a contiguous row when mem_space is negative.
  void append(const void* data, hid_t mem_space = -1) {
    std::vector<hsize_t> extent{rows_ + 1};
    extent.insert(extent.end(), row_dims_.begin(), row_dims_.end());
    check(H5Dset_extent(dset_.get(), extent.data()), "H5Dset_extent", where_);
    Handle file_space = make(H5Dget_space(dset_.get()), H5Sclose, "H5Dget_space", where_);
    std::vector<hsize_t> start(extent.size(), 0);
    start[0] = rows_;
    extent[0] = 1;
    check(
        H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, extent.data(), nullptr),
        "H5Sselect_hyperslab", where_);
    check(H5Dwrite(dset_.get(), mem_type_, mem_space >= 0 ? mem_space : row_space_.get(), file_space.get(),
                   H5P_DEFAULT, data),
          "H5Dwrite", where_);
    ++rows_;
  }

  /// Appends n rows read contiguously (row-major) from `data`: one extent change for a whole block.
  void append_rows(const void* data, hsize_t n) {
    if (n == 0) return;
    std::vector<hsize_t> extent{rows_ + n};
    extent.insert(extent.end(), row_dims_.begin(), row_dims_.end());
    check(H5Dset_extent(dset_.get(), extent.data()), "H5Dset_extent", where_);
    Handle file_space = make(H5Dget_space(dset_.get()), H5Sclose, "H5Dget_space", where_);
    std::vector<hsize_t> start(extent.size(), 0);
    start[0] = rows_;
    extent[0] = n;
    check(
        H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, extent.data(), nullptr),
        "H5Sselect_hyperslab", where_);
    Handle mem_space = make_space(extent, {}, where_);
    check(H5Dwrite(dset_.get(), mem_type_, mem_space.get(), file_space.get(), H5P_DEFAULT, data), "H5Dwrite",
          where_);
    rows_ += n;
  }

  void close() {
    dset_.reset();
    row_space_.reset();
  }

 private:
  Handle dset_;
  Handle row_space_;
  std::vector<hsize_t> row_dims_;
  hid_t mem_type_ = -1;
  hsize_t rows_ = 0;
  std::string where_;
};

/// Selects `paths` (sorted) x the first `agents` entries in a row-major (all_paths, all_agents)
/// buffer: the memory layout of an Eigen column-major (agents x paths) matrix. No copy is needed
/// even for a subset; with every path and agent the selection is the whole buffer.
Handle select_paths_agents(const std::vector<int>& paths, hsize_t all_paths, hsize_t all_agents,
                           hsize_t agents, const std::string& where) {
  Handle space = make_space({all_paths, all_agents}, {}, where);
  if (paths.size() == all_paths && agents == all_agents) return space;
  H5S_seloper_t op = H5S_SELECT_SET;
  for (const int p : paths) {
    const hsize_t start[2] = {static_cast<hsize_t>(p), 0};
    const hsize_t count[2] = {1, agents};
    check(H5Sselect_hyperslab(space.get(), op, start, nullptr, count, nullptr), "H5Sselect_hyperslab", where);
    op = H5S_SELECT_OR;
  }
  return space;
}

/// Several assets (schema 2): the recorded paths of every asset as rows of an (assets x all_paths) block,
/// asset a's path p at a all_paths + p (sorted when paths is): the selection of an asset axis outside the
/// paths, the layout of MarketState and PopulationState::amount.
std::vector<int> asset_paths(const std::vector<int>& paths, int all_paths, int assets) {
  std::vector<int> out;
  out.reserve(paths.size() * static_cast<std::size_t>(assets));
  for (int a = 0; a < assets; ++a)
    for (const int p : paths) out.push_back(a * all_paths + p);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Dimension scales (netCDF-4 conventions: docs/hdf5-schema.md, "Dimension scales"). Made once per run
// group when its run finishes, from every dataset's `dims` attribute, so a new dataset gets them with
// no code of its own and the recording loop does no extra work.

/// The coordinate values of each dimension name of a run group. A dimension gets the first candidate
/// whose length is the axis length; those in `index` count 0, 1, ...; any other dimension becomes a
/// netCDF dimension without a variable.
struct DimensionCoordinates {
  std::map<std::string, std::vector<std::vector<int>>> ints;  ///< e.g. step: the recorded steps
  std::map<std::string, std::vector<std::string>> strings;    ///< e.g. asset: the asset names
  std::vector<std::string> index;                             ///< e.g. agent: 0..M-1
  struct Auxiliary {
    std::string name;
    std::vector<double> values;
    std::string units;
  };
  /// Auxiliary coordinates of a dimension, made beside it (step: t = s dt in years).
  std::map<std::string, std::vector<Auxiliary>> auxiliary;
};

/// netCDF-4's NAME of a dimension scale that is not a variable (netCDF-C writes the length after it).
constexpr std::string_view kDimensionOnly = "This is a netCDF dimension but not a netCDF variable.";

struct NamedDataset {
  std::string path;   ///< relative to the run group
  std::string group;  ///< its group, relative to the run group ("" for the run group itself)
  std::vector<std::string> dims;
  std::vector<hsize_t> shape;
};

std::string parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string joined(const std::string& group, const std::string& name) {
  return group.empty() ? name : group + "/" + name;
}

/// Every dataset below `group` with a `dims` attribute naming as many axes as it has, not a scale.
std::vector<NamedDataset> named_datasets(hid_t group, const std::string& where) {
  std::vector<std::string> links;
  check(H5Lvisit(
            group, H5_INDEX_NAME, H5_ITER_INC,
            [](hid_t, const char* name, const H5L_info_t* info, void* data) -> herr_t {
              if (info->type == H5L_TYPE_HARD)
                static_cast<std::vector<std::string>*>(data)->emplace_back(name);
              return 0;
            },
            &links),
        "H5Lvisit", where);
  std::vector<NamedDataset> out;
  for (const std::string& link : links) {
    const std::string what = where + " " + link;
    Handle object = make(H5Oopen(group, link.c_str(), H5P_DEFAULT), H5Oclose, "H5Oopen", what);
    if (H5Iget_type(object.get()) != H5I_DATASET || !has_attribute(object.get(), schema::kDims)) continue;
    if (H5DSis_scale(object.get()) > 0) continue;
    Handle space = make(H5Dget_space(object.get()), H5Sclose, "H5Dget_space", what);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank <= 0) continue;
    NamedDataset d{link, parent_of(link),
                   split_commas(read_string_attribute(object.get(), what, schema::kDims)),
                   std::vector<hsize_t>(static_cast<std::size_t>(rank))};
    check(H5Sget_simple_extent_dims(space.get(), d.shape.data(), nullptr), "H5Sget_simple_extent_dims", what);
    if (d.dims.size() == d.shape.size()) out.push_back(std::move(d));
  }
  return out;
}

/// A fixed-size 1-D dataset of `n` values of `type` written from `data` (nothing written when null).
Handle create_coordinate(hid_t group, const std::string& name, const std::string& what, hid_t file_type,
                         hid_t mem_type, hsize_t n, const void* data) {
  Handle space = make_space({n}, {}, what);
  Handle dset =
      make(H5Dcreate2(group, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
           H5Dclose, "H5Dcreate2", what);
  if (data != nullptr && n > 0)
    check(H5Dwrite(dset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "H5Dwrite", what);
  return dset;
}

class DimensionScales {
 public:
  DimensionScales(hid_t run_group, std::string where, const DimensionCoordinates& coords)
      : run_(run_group), where_(std::move(where)), coords_(coords) {}

  void attach_all() {
    for (const NamedDataset& d : named_datasets(run_, where_)) {
      const std::string what = where_ + " " + d.path;
      Handle dset = make(H5Dopen2(run_, d.path.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", what);
      // A params group holds only parameters (readers list its members): its dimensions live above it.
      const std::string home = base_of(d.group) == schema::kParams ? parent_of(d.group) : d.group;
      std::vector<std::string> coordinates;
      for (std::size_t axis = 0; axis < d.dims.size(); ++axis) {
        const hid_t scale = scale_for(home, d.dims[axis], d.shape[axis]);
        if (scale < 0) continue;  // the group has a dataset of that name that is no such dimension
        if (joined(home, d.dims[axis]) == d.path) continue;  // time/step is the scale itself
        check(H5DSattach_scale(dset.get(), scale, static_cast<unsigned>(axis)), "H5DSattach_scale", what);
        if (home == d.group)
          for (const std::string& aux : auxiliary_[joined(home, d.dims[axis])]) coordinates.push_back(aux);
      }
      if (!coordinates.empty()) {
        std::string text;
        for (const std::string& c : coordinates) text += (text.empty() ? "" : " ") + c;
        write_attribute(dset.get(), what, "coordinates", text);
      }
    }
  }

 private:
  /// The scale of dimension `name` (length n) in group `home`, made on first use; -1 when there is none.
  hid_t scale_for(const std::string& home, const std::string& name, hsize_t n) {
    const std::string key = joined(home, name);
    if (auto found = scales_.find(key); found != scales_.end())
      return found->second.second == n ? found->second.first.get() : -1;
    const std::string what = where_ + " " + key;
    Handle scale;
    if (H5Lexists(run_, key.c_str(), H5P_DEFAULT) > 0) {
      // time/step: the dataset named like the dimension is its coordinate variable when it has that axis.
      // Anything else of that name (a group, another dataset) leaves the axis without a scale.
      Handle existing = make(H5Oopen(run_, key.c_str(), H5P_DEFAULT), H5Oclose, "H5Oopen", what);
      const bool fits = H5Iget_type(existing.get()) == H5I_DATASET &&
                        has_attribute(existing.get(), schema::kDims) &&
                        read_string_attribute(existing.get(), what, schema::kDims) == name &&
                        dims_of(existing.get(), what) == std::vector<hsize_t>{n};
      if (fits) {
        check(H5DSset_scale(existing.get(), name.c_str()), "H5DSset_scale", what);
        scale = std::move(existing);
      }
    } else {
      scale = create_scale(home, name, n, what);
    }
    const hid_t id = scale.get();
    scales_.emplace(key, std::make_pair(std::move(scale), n));
    if (id >= 0) make_auxiliary(home, name, n, id);
    return id;
  }

  Handle create_scale(const std::string& home, const std::string& name, hsize_t n, const std::string& what) {
    Handle group = open_group(home);
    std::string scale_name = name;
    Handle dset;
    if (const auto* values = candidate(coords_.ints, name, n)) {
      dset = create_coordinate(group.get(), name, what, H5T_STD_I32LE, H5T_NATIVE_INT, n, values->data());
    } else if (auto s = coords_.strings.find(name); s != coords_.strings.end() && s->second.size() == n) {
      std::vector<const char*> text;
      for (const std::string& v : s->second) text.push_back(v.c_str());
      Handle type = make_string_type(what);
      dset = create_coordinate(group.get(), name, what, type.get(), type.get(), n, text.data());
    } else if (std::find(coords_.index.begin(), coords_.index.end(), name) != coords_.index.end()) {
      std::vector<int> counting(n);
      std::iota(counting.begin(), counting.end(), 0);
      dset = create_coordinate(group.get(), name, what, H5T_STD_I32LE, H5T_NATIVE_INT, n, counting.data());
    } else {
      // No values: a netCDF dimension that is not a variable (its data are never written).
      dset = create_coordinate(group.get(), name, what, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, n, nullptr);
      scale_name = fmt::format("{}{:10d}", kDimensionOnly, n);
    }
    write_attribute(dset.get(), what, schema::kDims, name);
    check(H5DSset_scale(dset.get(), scale_name.c_str()), "H5DSset_scale", what);
    return dset;
  }

  /// Coordinates beside a new dimension: the table's auxiliary ones and, for agent, the parameters of a
  /// params group beside it (each reader of wealth or amount wants alpha and theta on the agent axis).
  void make_auxiliary(const std::string& home, const std::string& name, hsize_t n, hid_t scale) {
    Handle group = open_group(home);
    const auto add = [&](const std::string& aux, const std::vector<double>& values,
                         const std::string& units) {
      const std::string key = joined(home, aux);
      if (values.size() != n || H5Lexists(run_, key.c_str(), H5P_DEFAULT) > 0) return;
      const std::string what = where_ + " " + key;
      Handle dset =
          create_coordinate(group.get(), aux, what, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, n, values.data());
      write_attribute(dset.get(), what, schema::kDims, name);
      if (!units.empty()) write_attribute(dset.get(), what, schema::kUnits, units);
      check(H5DSattach_scale(dset.get(), scale, 0), "H5DSattach_scale", what);
      auxiliary_[joined(home, name)].push_back(aux);
    };
    if (auto a = coords_.auxiliary.find(name); a != coords_.auxiliary.end())
      for (const auto& aux : a->second) add(aux.name, aux.values, aux.units);
    if (name != schema::kAgent) return;
    const std::string params = joined(home, std::string(schema::kParams));
    if (H5Lexists(run_, params.c_str(), H5P_DEFAULT) <= 0) return;
    for (const NamedDataset& p : named_datasets(open_group(params).get(), where_ + " " + params)) {
      if (p.group.empty() && p.dims == std::vector<std::string>{name} && p.shape == std::vector<hsize_t>{n})
        add(p.path, read_doubles(joined(params, p.path), n), "");
    }
  }

  std::vector<double> read_doubles(const std::string& path, hsize_t n) const {
    const std::string what = where_ + " " + path;
    Handle dset = make(H5Dopen2(run_, path.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", what);
    std::vector<double> values(n);
    if (n > 0)
      check(H5Dread(dset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), "H5Dread",
            what);
    return values;
  }

  Handle open_group(const std::string& path) const {
    return make(H5Gopen2(run_, path.empty() ? "." : path.c_str(), H5P_DEFAULT), H5Gclose, "H5Gopen2",
                where_ + " " + path);
  }

  static const std::vector<int>* candidate(const std::map<std::string, std::vector<std::vector<int>>>& table,
                                           const std::string& name, hsize_t n) {
    const auto found = table.find(name);
    if (found == table.end()) return nullptr;
    for (const auto& values : found->second)
      if (values.size() == n) return &values;
    return nullptr;
  }

  static std::vector<hsize_t> dims_of(hid_t dset, const std::string& what) {
    Handle space = make(H5Dget_space(dset), H5Sclose, "H5Dget_space", what);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
    check(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), "H5Sget_simple_extent_dims", what);
    return dims;
  }

  hid_t run_;
  std::string where_;
  const DimensionCoordinates& coords_;
  std::map<std::string, std::pair<Handle, hsize_t>> scales_;   ///< "group/dimension" -> scale (invalid: none)
  std::map<std::string, std::vector<std::string>> auxiliary_;  ///< "group/dimension" -> auxiliary coordinates
};

// ---------------------------------------------------------------------------------------------
// Summaries

std::string stats_names(const std::vector<double>& quantiles) {
  std::string names = "mean,std,min,max";
  for (const double q : quantiles) names += fmt::format(",q{}", q);
  return names;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The file

struct Hdf5Output::File {
  std::unique_ptr<OutputFile> output;  ///< the claimed PATH.partial (lock held until commit or failure)
  std::string partial_path;
  Handle id;
  Handle complete_attr;  ///< the root attribute `complete`, set to 1 on commit
  std::chrono::steady_clock::time_point last_flush = std::chrono::steady_clock::now();

  /// Called between rows, when every dataset has the same recorded steps: every Hdf5Output::kFlushSeconds
  /// the file is flushed, so that a run killed outright (SIGKILL, a crash, a power cut) leaves a
  /// PATH.partial readable up to that point (the metadata cache never evicts between flushes: see the
  /// constructor).
  void flush_if_due(bool force = false) {
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_flush < std::chrono::duration<double>(Hdf5Output::kFlushSeconds)) return;
    check(H5Fflush(id.get(), H5F_SCOPE_GLOBAL), "H5Fflush", partial_path);
    last_flush = now;
  }
};

namespace {

/// Writes one run into one group (see docs/hdf5-schema.md).
class Recorder final : public sim::Observer {
 public:
  Recorder(std::shared_ptr<Hdf5Output::File> file, const std::string& group, sim::RecordingPlan plan,
           const std::string& sweep_point)
      : file_(std::move(file)), plan_(std::move(plan)), where_(group) {
    if (!plan_.enabled()) {
      throw InputError(fmt::format("HDF5 recorder for {}: the recording plan records nothing", where()));
    }
    const hid_t fid = require_open();
    if (group == "/") {
      group_ = make(H5Gopen2(fid, "/", H5P_DEFAULT), H5Gclose, "H5Gopen2", where());
    } else {
      Handle lcpl = make(H5Pcreate(H5P_LINK_CREATE), H5Pclose, "H5Pcreate", where());
      check(H5Pset_create_intermediate_group(lcpl.get(), 1), "H5Pset_create_intermediate_group", where());
      group_ = make(H5Gcreate2(fid, group.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                    "H5Gcreate2", where());
    }
    if (!sweep_point.empty()) write_attribute(group_.get(), where(), schema::kSweepPoint, sweep_point);
  }

  void on_start(const sim::RunState& state) override {
    require_open();
    if (state.spec == nullptr) throw InputError("HDF5 recorder: the RunState has no scenario spec");
    check_shape(state);
    assets_ = state.market.assets();
    asset_names_.clear();
    for (int a = 0; a < assets_; ++a) asset_names_.push_back(state.spec->market.asset(a).name);
    // One asset in an exogenous market: schema 1, exactly as before; several assets or price impact (a
    // fundamental apart from the price): schema 2, an asset axis (docs/hdf5-schema.md).
    schema_2_ = assets_ > 1 || state.spec->market.impact.active();
    if (schema_2_) mark_schema_2(state.spec->market);
    steps_ = state.steps;
    dt_ = state.spec->run.dt();
    write_group_attributes(state);
    create_time_and_market(state);
    populations_.clear();
    populations_.reserve(state.populations.size());
    Handle pops_group =
        make(H5Gcreate2(group_.get(), schema::kPopulations.data(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
             H5Gclose, "H5Gcreate2", child(schema::kPopulations));
    for (std::size_t i = 0; i < state.populations.size(); ++i) {
      // Its spec by name: a RunState built in code need not hold its spec's populations in the same order.
      const auto& specs = state.spec->populations;
      const auto ps = std::find_if(specs.begin(), specs.end(), [&](const sim::PopulationSpec& p) {
        return p.name == state.populations[i].name;
      });
      // The convention of its lottery probabilities: its investors' source's (the questionnaire answered).
      std::optional<theory::LotteryConvention> lottery;
      if (ps != specs.end()) {
        const sim::PopulationSpec& source = specs[static_cast<std::size_t>(
            agents::investors_source(*state.spec, static_cast<int>(ps - specs.begin())))];
        lottery = agents::kind_of(source).investor_draws(source).lottery;
      }
      populations_.push_back(create_population(pops_group.get(), child(schema::kPopulations),
                                               state.populations[i], plan_.populations()[i], state.paths,
                                               lottery));
      // The pairing (common random numbers), where there is one: the population whose investors it took.
      if (ps != specs.end() && !ps->investors.empty())
        write_attribute(populations_.back().group.get(), populations_.back().where, schema::kInvestors,
                        ps->investors);
      // An investagent population in a market of several assets: the one it trades (one asset: no attribute).
      if (const int traded = ps != specs.end() ? agents::traded_asset(*state.spec, *ps) : -1;
          traded >= 0 && assets_ > 1)
        write_attribute(populations_.back().group.get(), populations_.back().where, schema::kTradedAsset,
                        state.spec->market.asset(traded).name);
    }

    write_wealth_row(0, state);
    if (plan_.keeps_decision_wealth(0)) save_decision_wealth(state);
    file_->flush_if_due(/*force=*/true);  // the group's layout is readable from the start
  }

  void on_step(int k, const sim::RunState& state) override {
    require_open();
    assert(k >= 0 && k < steps_);
    for (std::size_t i = 0; i < populations_.size(); ++i) {
      if (state.populations[i].inference) write_transcripts(populations_[i], *state.populations[i].inference);
    }
    if (plan_.records_decision(k)) write_decision_row(k, state);
    const int s = k + 1;
    if (plan_.records_state(s)) write_wealth_row(s, state);
    if (plan_.keeps_decision_wealth(s)) save_decision_wealth(state);
    file_->flush_if_due();
  }

  void on_finish(const sim::RunState& state) override {
    for (std::size_t i = 0; i < populations_.size(); ++i) {
      if (state.populations[i].inference) write_accounting(populations_[i], *state.populations[i].inference);
    }
    attach_dimensions();
    // Everything is on disk already: release handles and buffers now rather than at destruction.
    for (Series* series : {&step_, &t_, &decision_step_, &price_, &fundamental_, &return_, &shock_, &flow_})
      series->close();
    populations_.clear();
    market_space_.reset();
    group_.reset();
    file_->flush_if_due(/*force=*/true);  // a finished sweep point survives a later kill whole
  }

  [[nodiscard]] const sim::RecordingPlan* recording_plan() const override { return &plan_; }
  [[nodiscard]] bool reads_amounts() const override { return plan_.records_amounts(); }

 private:
  struct Population {
    std::string where;
    int agents = 0;         ///< recorded agents (first max_agents)
    Handle space;           ///< selection of recorded paths x agents in an (agents x paths) matrix
    Handle amount_space;    ///< several assets: the same in an (agents x (assets x paths)) matrix
    Series wealth, amount;  ///< trajectories (invalid when not recorded)
    Series summary_wealth, summary_amount, summary_proportion;
    Eigen::MatrixXd total_amount;  ///< several assets: sum_a P_a, what summary/amount and proportion describe
    std::vector<double> decision_wealth;  ///< X_k of the next decision, recorded paths x all agents
    Handle group;                         ///< kept open for the accounting attributes at on_finish
    /// transcripts/ (LLM-backed populations): one row per request, appended per step.
    Series t_step, t_path, t_agent, t_stage, t_prompt_hash, t_seed, t_output, t_values, t_valid, t_status,
        t_prompt_tokens, t_cached_tokens, t_completion_tokens, t_time_ms;
    Series t_cache_hit;  ///< only with a decision cache (files without one are unchanged)
    int t_width = 0;
  };

  hid_t require_open() const {
    if (!file_->id.valid() || H5Iis_valid(file_->id.get()) <= 0) {
      throw IoError(fmt::format("HDF5 recorder for {}: the output file is already closed", where()));
    }
    return file_->id.get();
  }

  [[nodiscard]] std::string where() const { return fmt::format("{}:{}", file_->partial_path, where_); }
  [[nodiscard]] std::string child(std::string_view name) const {
    return where_ == "/" ? "/" + std::string(name) : where_ + "/" + std::string(name);
  }

  /// Dimension scales and coordinate variables of the whole run group, once its rows are all written.
  void attach_dimensions() {
    DimensionCoordinates coords;
    std::vector<int> steps, decisions, all_decisions(static_cast<std::size_t>(steps_));
    for (int s = 0; s <= steps_; ++s)
      if (plan_.records_state(s)) steps.push_back(s);
    for (int k = 0; k < steps_; ++k)
      if (plan_.records_decision(k)) decisions.push_back(k);
    std::iota(all_decisions.begin(), all_decisions.end(), 0);  // theory/amount: every step
    std::vector<double> t;
    for (const int s : steps) t.push_back(s * dt_);
    coords.ints[std::string(schema::kStep)] = {steps};
    coords.ints[std::string(schema::kDecisionStep)] = {decisions, all_decisions};
    coords.ints[std::string(schema::kPath)] = {plan_.paths()};
    coords.strings["asset"] = asset_names_;
    coords.strings["stat"] = split_commas(stats_names(plan_.quantiles()));
    coords.index = {std::string(schema::kAgent), "request", "value"};
    coords.auxiliary[std::string(schema::kStep)] = {{std::string(schema::kT), t, "years"}};
    DimensionScales(group_.get(), where(), coords).attach_all();
  }

  /// The plan was made for a run of this shape (a writer never decides sizes of its own).
  void check_shape(const sim::RunState& state) const {
    bool same = state.steps == plan_.steps() && state.paths == plan_.paths_total() &&
                state.populations.size() == plan_.populations().size();
    for (std::size_t i = 0; same && i < state.populations.size(); ++i) {
      same = state.populations[i].name == plan_.populations()[i].name &&
             state.populations[i].count == plan_.populations()[i].count;
    }
    if (!same)
      throw Error(fmt::format("HDF5 recorder for {}: the recording plan is for another run", where()));
  }

  /// Schema 2: the root's schema_version becomes 2 and the run group names its assets.
  void mark_schema_2(const sim::MarketSpec& market) {
    const hid_t fid = require_open();
    Handle root = make(H5Gopen2(fid, "/", H5P_DEFAULT), H5Gclose, "H5Gopen2", where());
    if (H5Aexists(root.get(), schema::kSchemaVersionAttr.data()) > 0)
      check(H5Adelete(root.get(), schema::kSchemaVersionAttr.data()), "H5Adelete", where());
    write_attribute(root.get(), where(), schema::kSchemaVersionAttr, schema::kSchemaVersionAssets);
    std::string names;
    for (int a = 0; a < assets_; ++a) {
      if (a > 0) names += ',';
      names += market.asset(a).name;
    }
    write_attribute(group_.get(), where(), schema::kAssets, assets_);
    write_attribute(group_.get(), where(), schema::kAssetNames, names);
  }

  void write_group_attributes(const sim::RunState& state) {
    const hid_t g = group_.get();
    write_attribute(g, where(), schema::kSteps, state.steps);
    write_attribute(g, where(), schema::kDt, dt_);
    write_attribute(g, where(), schema::kEvery, plan_.every());
    write_attribute(g, where(), schema::kPathsTotal, state.paths);
    write_attribute(g, where(), schema::kPaths, H5T_STD_I32LE, H5T_NATIVE_INT, {plan_.paths().size()},
                    plan_.paths().data());
  }

  void create_time_and_market(const sim::RunState& state) {
    const std::string time_where = child(schema::kTime);
    Handle time = make(H5Gcreate2(group_.get(), schema::kTime.data(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                       H5Gclose, "H5Gcreate2", time_where);
    step_ = Series(time.get(), time_where, schema::kStep, H5T_STD_I32LE, H5T_NATIVE_INT, {},
                   {"step", "", false, 0});
    t_ = Series(time.get(), time_where, schema::kT, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {},
                {"step", "years", false, 0});
    decision_step_ = Series(time.get(), time_where, schema::kDecisionStep, H5T_STD_I32LE, H5T_NATIVE_INT, {},
                            {"decision_step", "", false, 0});

    const std::string market_where = child(schema::kMarket);
    Handle market =
        make(H5Gcreate2(group_.get(), schema::kMarket.data(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
             H5Gclose, "H5Gcreate2", market_where);
    if (schema_2_) {
      // Schema 2: (row, asset, path); the fundamental is the exogenous GBM price (the price itself without
      // impact); the flow, the agents' net dollar flow per step, only with impact.
      const std::vector<hsize_t> row{static_cast<hsize_t>(assets_), plan_.paths().size()};
      price_ = Series(market.get(), market_where, schema::kPrice, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, row,
                      {"step,asset,path", "currency units", false, 0});
      fundamental_ = Series(market.get(), market_where, schema::kFundamental, H5T_IEEE_F64LE,
                            H5T_NATIVE_DOUBLE, row, {"step,asset,path", "currency units", false, 0});
      return_ = Series(market.get(), market_where, schema::kReturn, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, row,
                       {"decision_step,asset,path", "1", false, 0});
      shock_ = Series(market.get(), market_where, schema::kShock, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, row,
                      {"decision_step,asset,path", "1", false, 0});
      if (state.market.flow.size() != 0)
        flow_ = Series(market.get(), market_where, schema::kFlow, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, row,
                       {"decision_step,asset,path", "currency units", false, 0});
      market_space_ = select_paths_agents(asset_paths(plan_.paths(), state.paths, assets_),
                                          static_cast<hsize_t>(assets_) * static_cast<hsize_t>(state.paths),
                                          1, 1, market_where);
      return;
    }
    const std::vector<hsize_t> row{plan_.paths().size()};
    price_ = Series(market.get(), market_where, schema::kPrice, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, row,
                    {"step,path", "currency units", false, 0});
    return_ = Series(market.get(), market_where, schema::kReturn, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, row,
                     {"decision_step,path", "1", false, 0});
    shock_ = Series(market.get(), market_where, schema::kShock, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, row,
                    {"decision_step,path", "1", false, 0});
    // A per-path vector is an (all paths x 1 agent) matrix.
    market_space_ = select_paths_agents(plan_.paths(), static_cast<hsize_t>(state.paths), 1, 1, market_where);
  }

  Population create_population(hid_t parent, const std::string& parent_where, const sim::PopulationState& pop,
                               const sim::RecordedPopulation& recorded, int all_paths,
                               std::optional<theory::LotteryConvention> lottery) {
    Population out;
    out.where = parent_where + "/" + pop.name;
    out.agents = recorded.agents;
    Handle group = make(H5Gcreate2(parent, pop.name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                        "H5Gcreate2", out.where);
    write_attribute(group.get(), out.where, schema::kKind, pop.kind);
    write_attribute(group.get(), out.where, schema::kCount, pop.count);
    write_attribute(group.get(), out.where, schema::kRecordedAgents, out.agents);

    const auto agents = static_cast<hsize_t>(out.agents);
    if (recorded.trajectories()) {
      const std::vector<hsize_t> row{plan_.paths().size(), agents};
      const int gzip = plan_.compression();
      out.wealth = Series(group.get(), out.where, schema::kWealth, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, row,
                          {"step,path,agent", "currency units", true, gzip});
      out.space = select_paths_agents(plan_.paths(), static_cast<hsize_t>(all_paths),
                                      static_cast<hsize_t>(pop.count), agents, out.where);
      if (schema_2_) {
        // Schema 2: (decision_step, asset, path, agent), read through its own selection of every asset.
        const std::vector<hsize_t> asset_row{static_cast<hsize_t>(assets_), plan_.paths().size(), agents};
        out.amount = Series(group.get(), out.where, schema::kAmount, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                            asset_row, {"decision_step,asset,path,agent", "currency units", true, gzip});
        out.amount_space =
            select_paths_agents(asset_paths(plan_.paths(), all_paths, assets_),
                                static_cast<hsize_t>(assets_) * static_cast<hsize_t>(all_paths),
                                static_cast<hsize_t>(pop.count), agents, out.where);
      } else {
        out.amount = Series(group.get(), out.where, schema::kAmount, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, row,
                            {"decision_step,path,agent", "currency units", true, gzip});
      }
      write_params(group.get(), out.where, pop, agents, lottery);
      if (pop.theory_amount.size() > 0) write_theory(group.get(), out.where, pop, agents);
    }

    if (plan_.summaries()) {
      const std::string summary_where = out.where + "/" + std::string(schema::kSummary);
      Handle summary =
          make(H5Gcreate2(group.get(), schema::kSummary.data(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
               H5Gclose, "H5Gcreate2", summary_where);
      write_attribute(summary.get(), summary_where, schema::kStats, stats_names(plan_.quantiles()));
      const std::vector<hsize_t> stats_row{static_cast<hsize_t>(plan_.stats_per_row())};
      out.summary_wealth = Series(summary.get(), summary_where, schema::kWealth, H5T_IEEE_F64LE,
                                  H5T_NATIVE_DOUBLE, stats_row, {"step,stat", "currency units", false, 0});
      out.summary_amount =
          Series(summary.get(), summary_where, schema::kAmount, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, stats_row,
                 {"decision_step,stat", "currency units", false, 0});
      out.summary_proportion = Series(summary.get(), summary_where, schema::kProportion, H5T_IEEE_F64LE,
                                      H5T_NATIVE_DOUBLE, stats_row, {"decision_step,stat", "1", false, 0});
    }
    if (pop.inference) create_transcripts(group.get(), out, *pop.inference);
    out.group = std::move(group);
    return out;
  }

  /// The backend's provenance and the transcripts/ series (written whatever `trajectories`, `paths`,
  /// `every` and `max_agents` say: a replay needs every request).
  void create_transcripts(hid_t group, Population& out, const sim::InferenceLog& log) {
    write_attribute(group, out.where, schema::kBackend, log.backend);
    write_attribute(group, out.where, schema::kBackendDescription, log.backend_description);
    write_attribute(group, out.where, schema::kProtocol, log.protocol);
    const std::string where = out.where + "/" + std::string(schema::kTranscripts);
    Handle tg = make(H5Gcreate2(group, schema::kTranscripts.data(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     H5Gclose, "H5Gcreate2", where);
    if (!string_type_.valid()) string_type_ = make_string_type(where);
    const hid_t str = string_type_.get();
    const DatasetSpec plain{"request", "", false, 0};
    const hid_t g = tg.get();
    out.t_step = Series(g, where, schema::kStep, H5T_STD_I32LE, H5T_NATIVE_INT, {}, plain);
    out.t_path = Series(g, where, schema::kPath, H5T_STD_I32LE, H5T_NATIVE_INT, {}, plain);
    out.t_agent = Series(g, where, schema::kAgent, H5T_STD_I32LE, H5T_NATIVE_INT, {}, plain);
    out.t_stage = Series(g, where, schema::kStage, H5T_STD_I32LE, H5T_NATIVE_INT, {}, plain);
    out.t_prompt_hash = Series(g, where, schema::kPromptHash, H5T_STD_U64LE, H5T_NATIVE_UINT64, {}, plain);
    out.t_seed = Series(g, where, schema::kRequestSeed, H5T_STD_U64LE, H5T_NATIVE_UINT64, {}, plain);
    out.t_output = Series(g, where, schema::kOutput, str, str, {}, plain);
    out.t_width = std::max(1, log.width);
    out.t_values = Series(g, where, schema::kValues, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                          {static_cast<hsize_t>(out.t_width)}, {"request,value", "1", false, 0});
    out.t_valid = Series(g, where, schema::kValid, H5T_STD_U8LE, H5T_NATIVE_UINT8, {}, plain);
    out.t_status = Series(g, where, schema::kStatus, str, str, {}, plain);
    out.t_prompt_tokens = Series(g, where, schema::kPromptTokens, H5T_STD_I32LE, H5T_NATIVE_INT, {}, plain);
    out.t_cached_tokens = Series(g, where, schema::kCachedTokens, H5T_STD_I32LE, H5T_NATIVE_INT, {}, plain);
    out.t_completion_tokens =
        Series(g, where, schema::kCompletionTokens, H5T_STD_I32LE, H5T_NATIVE_INT, {}, plain);
    out.t_time_ms =
        Series(g, where, schema::kTimeMs, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {}, {"request", "ms", false, 0});
    if (log.decision_cache)
      out.t_cache_hit = Series(g, where, schema::kCacheHit, H5T_STD_U8LE, H5T_NATIVE_UINT8, {}, plain);
  }

  /// Appends the transcripts made since the last callback, one block per dataset.
  static void write_transcripts(Population& out, const sim::InferenceLog& log) {
    if (!out.t_step.valid() || log.pending.empty()) return;
    const auto& rows = log.pending;
    const std::size_t n = rows.size();
    const auto column = [&](auto field) {
      using T = std::decay_t<decltype(field(rows.front()))>;
      std::vector<T> v(n);
      for (std::size_t i = 0; i < n; ++i) v[i] = field(rows[i]);
      return v;
    };
    const auto hn = static_cast<hsize_t>(n);
    out.t_step.append_rows(column([](const sim::Transcript& t) { return t.step; }).data(), hn);
    out.t_path.append_rows(column([](const sim::Transcript& t) { return t.path; }).data(), hn);
    out.t_agent.append_rows(column([](const sim::Transcript& t) { return t.agent; }).data(), hn);
    out.t_stage.append_rows(column([](const sim::Transcript& t) { return t.stage; }).data(), hn);
    out.t_prompt_hash.append_rows(column([](const sim::Transcript& t) { return t.prompt_hash; }).data(), hn);
    out.t_seed.append_rows(column([](const sim::Transcript& t) { return t.seed; }).data(), hn);
    out.t_output.append_rows(column([](const sim::Transcript& t) { return t.output.c_str(); }).data(), hn);
    const auto width = static_cast<std::size_t>(out.t_width);
    std::vector<double> values(n * width, std::numeric_limits<double>::quiet_NaN());
    for (std::size_t i = 0; i < n; ++i) {
      const auto& v = rows[i].values;
      std::copy_n(v.begin(), std::min(v.size(), width),
                  values.begin() + static_cast<std::ptrdiff_t>(i * width));
    }
    out.t_values.append_rows(values.data(), hn);
    out.t_valid.append_rows(
        column([](const sim::Transcript& t) { return static_cast<std::uint8_t>(t.valid ? 1 : 0); }).data(),
        hn);
    out.t_status.append_rows(column([](const sim::Transcript& t) { return t.status.c_str(); }).data(), hn);
    out.t_prompt_tokens.append_rows(column([](const sim::Transcript& t) { return t.prompt_tokens; }).data(),
                                    hn);
    out.t_cached_tokens.append_rows(column([](const sim::Transcript& t) { return t.cached_tokens; }).data(),
                                    hn);
    out.t_completion_tokens.append_rows(
        column([](const sim::Transcript& t) { return t.completion_tokens; }).data(), hn);
    out.t_time_ms.append_rows(column([](const sim::Transcript& t) { return t.time_ms; }).data(), hn);
    if (out.t_cache_hit.valid()) {
      out.t_cache_hit.append_rows(column([](const sim::Transcript& t) {
                                    return static_cast<std::uint8_t>(t.cache_hit ? 1 : 0);
                                  }).data(),
                                  hn);
    }
  }

  /// Run accounting of an LLM-backed population, as attributes of its group.
  static void write_accounting(const Population& out, const sim::InferenceLog& log) {
    if (!out.group.valid()) return;
    const hid_t g = out.group.get();
    write_attribute(g, out.where, schema::kInferenceRequests, log.requests);
    write_attribute(g, out.where, schema::kInferenceInvalid, log.invalid);
    write_attribute(g, out.where, schema::kPromptTokens, log.prompt_tokens);
    write_attribute(g, out.where, schema::kCachedTokens, log.cached_tokens);
    write_attribute(g, out.where, schema::kCompletionTokens, log.completion_tokens);
    write_attribute(g, out.where, schema::kInferenceSeconds, log.seconds);
  }

  void write_params(hid_t group, const std::string& group_where, const sim::PopulationState& pop,
                    hsize_t agents, std::optional<theory::LotteryConvention> lottery) {
    const std::string params_where = group_where + "/" + std::string(schema::kParams);
    Handle params = make(H5Gcreate2(group, schema::kParams.data(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                         H5Gclose, "H5Gcreate2", params_where);
    for (const auto& [name, values] : pop.params) {
      assert(values.size() == pop.count);
      std::string where_text;
      Handle dset = create_dataset(params.get(), params_where, name, H5T_IEEE_F64LE, agents, {}, false,
                                   {"agent", "", false, 0}, where_text);
      // The first `agents` entries of the vector are contiguous: write straight from it.
      Handle mem = make_space({agents}, {}, where_text);
      check(H5Dwrite(dset.get(), H5T_NATIVE_DOUBLE, mem.get(), H5S_ALL, H5P_DEFAULT, values.data()),
            "H5Dwrite", where_text);
      if (name == schema::kLotteryProb && lottery) {
        // The convention that maps these probabilities to alpha: its name and (win, sure) amounts.
        write_attribute(dset.get(), where_text, schema::kLottery, std::string(to_name(*lottery)));
        const std::array<double, 2> amounts{lottery->win, lottery->sure};
        write_attribute(dset.get(), where_text, schema::kLotteryAmounts, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                        {amounts.size()}, amounts.data());
      }
    }
  }

  /// theory/amount (decision_step, agent), all n steps. The Eigen matrix is (steps x count) column-
  /// major, so one step's amounts are strided in memory: written row by row through a strided
  /// selection, without a transposed copy.
  void write_theory(hid_t group, const std::string& group_where, const sim::PopulationState& pop,
                    hsize_t agents) {
    assert(pop.theory_amount.rows() == pop.count && pop.theory_amount.cols() == steps_ * assets_);
    const std::string theory_where = group_where + "/" + std::string(schema::kTheory);
    Handle theory = make(H5Gcreate2(group, schema::kTheory.data(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                         H5Gclose, "H5Gcreate2", theory_where);
    std::string where_text;
    // Several assets (schema 2): (asset, decision_step, agent), asset a's steps after asset a - 1's.
    const auto steps = static_cast<hsize_t>(steps_) * static_cast<hsize_t>(assets_);
    Handle dset =
        schema_2_
            ? create_dataset(theory.get(), theory_where, schema::kAmount, H5T_IEEE_F64LE,
                             static_cast<hsize_t>(assets_), {static_cast<hsize_t>(steps_), agents}, false,
                             {"asset,decision_step,agent", "currency units", true, plan_.compression()},
                             where_text)
            : create_dataset(theory.get(), theory_where, schema::kAmount, H5T_IEEE_F64LE, steps, {agents},
                             false, {"decision_step,agent", "currency units", true, plan_.compression()},
                             where_text);
    Handle mem = make_space({static_cast<hsize_t>(pop.theory_amount.size())}, {}, where_text);
    Handle file_space = make(H5Dget_space(dset.get()), H5Sclose, "H5Dget_space", where_text);
    for (hsize_t s = 0; s < steps; ++s) {
      const hsize_t per_asset = static_cast<hsize_t>(steps_);
      const hsize_t file_start[3] = {s / per_asset, s % per_asset, 0};
      const hsize_t file_count[3] = {1, 1, agents};
      const int skip = schema_2_ ? 0 : 1;  // one asset: (decision_step, agent)
      const hsize_t one_start[2] = {s, 0};
      check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, skip == 0 ? file_start : one_start, nullptr,
                                file_count + skip, nullptr),
            "H5Sselect_hyperslab", where_text);
      // Column s of the (count x steps) matrix: the first `agents` of its contiguous values.
      const hsize_t mem_start = s * static_cast<hsize_t>(pop.count);
      check(H5Sselect_hyperslab(mem.get(), H5S_SELECT_SET, &mem_start, nullptr, &agents, nullptr),
            "H5Sselect_hyperslab", where_text);
      check(H5Dwrite(dset.get(), H5T_NATIVE_DOUBLE, mem.get(), file_space.get(), H5P_DEFAULT,
                     pop.theory_amount.data()),
            "H5Dwrite", where_text);
    }
  }

  /// One summary row to compute: a quantity of one population on the recorded paths, all agents.
  struct SummaryJob {
    const Eigen::MatrixXd* values;                   ///< agents x paths
    const std::vector<double>* divide_by = nullptr;  ///< proportion: X_k per recorded value
    Series* target = nullptr;
    std::vector<double> scratch, stats;
  };

  /// Values of an (agents x paths) matrix on the recorded paths, all agents, into out.
  void gather(const Eigen::MatrixXd& matrix, std::vector<double>& out) const {
    out.clear();
    for (const int p : plan_.paths()) {
      const double* column = matrix.col(p).data();
      out.insert(out.end(), column, column + matrix.rows());
    }
  }

  /// Computes the jobs' summaries on worker threads while this thread writes `write` (HDF5 calls stay
  /// on one thread), then appends the summary rows in a fixed order.
  template <class Write>
  void summarize_while(std::vector<SummaryJob>& jobs, Write&& write) {
    tbb::task_group group;
    group.run([&] {
      tbb::parallel_for(std::size_t{0}, jobs.size(), [&](std::size_t j) {
        SummaryJob& job = jobs[j];
        const Eigen::MatrixXd& m = *job.values;
        if (job.divide_by == nullptr && plan_.all_paths()) {
          // Every path recorded: the matrix is the gathered sequence already; summarize it in place.
          analysis::summarize(std::span<const double>(m.data(), static_cast<std::size_t>(m.size())),
                              plan_.quantiles(), job.stats, job.scratch);
          return;
        }
        gather(m, job.scratch);
        if (job.divide_by != nullptr) {
          assert(job.divide_by->size() == job.scratch.size());
          for (std::size_t v = 0; v < job.scratch.size(); ++v) job.scratch[v] /= (*job.divide_by)[v];
        }
        analysis::summarize(job.scratch, plan_.quantiles(), job.stats);
      });
    });
    try {
      write();
    } catch (...) {
      group.wait();
      throw;
    }
    group.wait();
    for (SummaryJob& job : jobs) job.target->append(job.stats.data());
  }

  void write_wealth_row(int s, const sim::RunState& state) {
    step_.append(&s);
    const double t = s * dt_;
    t_.append(&t);
    price_.append(state.market.price.data(), market_space_.get());
    if (fundamental_.valid()) {
      const auto& fundamental =
          state.market.fundamental.size() != 0 ? state.market.fundamental : state.market.price;
      fundamental_.append(fundamental.data(), market_space_.get());
    }
    jobs_.resize(plan_.summaries() ? populations_.size() : 0);
    for (std::size_t i = 0; i < jobs_.size(); ++i) {
      jobs_[i].values = &state.populations[i].wealth;
      jobs_[i].divide_by = nullptr;
      jobs_[i].target = &populations_[i].summary_wealth;
    }
    summarize_while(jobs_, [&] {
      for (std::size_t i = 0; i < populations_.size(); ++i) {
        Population& pop = populations_[i];
        const auto& wealth = state.populations[i].wealth;
        assert(wealth.rows() == state.populations[i].count && wealth.cols() == state.paths);
        if (pop.wealth.valid()) pop.wealth.append(wealth.data(), pop.space.get());
      }
    });
  }

  void write_decision_row(int k, const sim::RunState& state) {
    decision_step_.append(&k);
    return_.append(state.market.simple_return.data(), market_space_.get());
    shock_.append(state.market.shock.data(), market_space_.get());
    if (flow_.valid()) flow_.append(state.market.flow.data(), market_space_.get());
    jobs_.resize(plan_.summaries() ? 2 * populations_.size() : 0);
    for (std::size_t i = 0; 2 * i < jobs_.size(); ++i) {
      // Amount P_k, and proportion P_k / X_k with X_k kept from the callback before this decision. Several
      // assets: of the total amount in the risky assets, sum_a P_a (summed in asset order).
      const Eigen::MatrixXd* amount = &state.populations[i].amount;
      if (assets_ > 1) {
        Eigen::MatrixXd& total = populations_[i].total_amount;
        const Eigen::Index paths = state.paths;
        total = amount->leftCols(paths);
        for (int a = 1; a < assets_; ++a) total += amount->middleCols(a * paths, paths);
        amount = &total;
      }
      jobs_[2 * i].values = amount;
      jobs_[2 * i].divide_by = nullptr;
      jobs_[2 * i].target = &populations_[i].summary_amount;
      jobs_[2 * i + 1].values = amount;
      jobs_[2 * i + 1].divide_by = &populations_[i].decision_wealth;
      jobs_[2 * i + 1].target = &populations_[i].summary_proportion;
    }
    summarize_while(jobs_, [&] {
      for (std::size_t i = 0; i < populations_.size(); ++i) {
        Population& pop = populations_[i];
        if (!pop.amount.valid()) continue;  // not recorded: the amounts may be empty (reads_amounts)
        const auto& amount = state.populations[i].amount;
        assert(amount.rows() == state.populations[i].count && amount.cols() == state.paths * assets_);
        pop.amount.append(amount.data(), schema_2_ ? pop.amount_space.get() : pop.space.get());
      }
    });
  }

  /// X_k for the proportion summary of the decision about to be taken (plan_.keeps_decision_wealth).
  void save_decision_wealth(const sim::RunState& state) {
    for (std::size_t i = 0; i < populations_.size(); ++i) {
      gather(state.populations[i].wealth, populations_[i].decision_wealth);
    }
  }

  std::shared_ptr<Hdf5Output::File> file_;
  sim::RecordingPlan plan_;
  std::string where_;  ///< the group's path in the file
  Handle group_;
  int steps_ = 0;
  double dt_ = 0.0;
  Series step_, t_, decision_step_;
  Series price_, fundamental_, return_, shock_;  // fundamental_: schema 2 only
  Series flow_;                                  // schema 2 with price impact only
  int assets_ = 1;
  std::vector<std::string> asset_names_;  ///< the asset axis's coordinate (schema 2)
  bool schema_2_ = false;                 ///< several assets or price impact
  Handle market_space_;
  std::vector<Population> populations_;
  std::vector<SummaryJob> jobs_;  ///< summary rows of one callback (buffers reused across steps)
  Handle string_type_;            ///< variable-length UTF-8, for transcripts
};

}  // namespace

Hdf5Output::Hdf5Output(const std::string& path, const Provenance& provenance)
    : Hdf5Output(std::make_unique<OutputFile>(path, OutputFile::OnFailure::keep), provenance) {}

Hdf5Output::Hdf5Output(std::unique_ptr<OutputFile> output, const Provenance& provenance)
    : path_(output->path()), file_(std::make_shared<File>()) {
  silence_hdf5_errors();
  file_->partial_path = output->partial_path();
  output->set_on_failure(OutputFile::OnFailure::keep);  // from now on an incomplete-marked HDF5 file
  file_->output = std::move(output);
  const std::string& where = file_->partial_path;
  Handle fapl = make(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "H5Pcreate", where);
  // STRONG: closing the file also closes the datasets that recorders still hold.
  check(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), "H5Pset_fclose_degree", where);
  // OutputFile holds the lock on PATH.partial; HDF5's own lock would conflict with it.
  check(H5Pset_file_locking(fapl.get(), 0, 1), "H5Pset_file_locking", where);
  // No metadata evictions between flushes: the file on disk stays the consistent state of the last flush
  // (new metadata only reaches the disk in H5Fflush), so a killed run's file opens. Eviction can only be
  // turned off with automatic cache resizing off.
  H5AC_cache_config_t cache{};
  cache.version = H5AC__CURR_CACHE_CONFIG_VERSION;
  check(H5Pget_mdc_config(fapl.get(), &cache), "H5Pget_mdc_config", where);
  cache.evictions_enabled = 0;
  cache.incr_mode = H5C_incr__off;
  cache.flash_incr_mode = H5C_flash_incr__off;
  cache.decr_mode = H5C_decr__off;
  check(H5Pset_mdc_config(fapl.get(), &cache), "H5Pset_mdc_config", where);
  file_->id =
      make(H5Fcreate(where.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, "H5Fcreate", where);

  Handle root = make(H5Gopen2(file_->id.get(), "/", H5P_DEFAULT), H5Gclose, "H5Gopen2", where);
  const hid_t r = root.get();
  write_attribute(r, where, schema::kSchemaVersionAttr, schema::kSchemaVersion);
  write_attribute(r, where, schema::kHerdsimVersion, provenance.herdsim_version);
  write_attribute(r, where, schema::kSeed, H5T_STD_U64LE, H5T_NATIVE_UINT64, {}, &provenance.seed);
  write_attribute(r, where, schema::kScenario, provenance.scenario_text);
  write_attribute(r, where, schema::kCommandLine, provenance.command_line);
  write_attribute(r, where, schema::kCreated, utc_now_iso8601());
  write_attribute(r, where, schema::kComplete, 0);
  file_->complete_attr = make(H5Aopen(r, schema::kComplete.data(), H5P_DEFAULT), H5Aclose, "H5Aopen",
                              where + " attribute complete");
  file_->flush_if_due(/*force=*/true);  // from here on, PATH.partial is a readable HDF5 file
}

void prepare_hdf5_library() {
  H5dont_atexit();
}

Hdf5Output::~Hdf5Output() {
  // Not committed: close what is there and leave PATH.partial with complete = 0.
  file_->complete_attr.reset();
  file_->id.reset();
}

std::unique_ptr<sim::Observer> Hdf5Output::recorder(const std::string& group, const sim::RecordingPlan& plan,
                                                    const std::string& sweep_point) {
  return std::make_unique<Recorder>(file_, group, plan, sweep_point);
}

void Hdf5Output::link_group(const std::string& group, const std::string& file, const std::string& object,
                            int schema_version) {
  const std::string& where = file_->partial_path;
  check(H5Lcreate_external(file.c_str(), object.c_str(), file_->id.get(), group.c_str(), H5P_DEFAULT,
                           H5P_DEFAULT),
        "H5Lcreate_external", fmt::format("{} link {} -> {}:{}", where, group, file, object));
  if (schema_version == schema::kSchemaVersionAssets) {
    Handle root = make(H5Gopen2(file_->id.get(), "/", H5P_DEFAULT), H5Gclose, "H5Gopen2", where);
    if (H5Aexists(root.get(), schema::kSchemaVersionAttr.data()) > 0)
      check(H5Adelete(root.get(), schema::kSchemaVersionAttr.data()), "H5Adelete", where);
    write_attribute(root.get(), where, schema::kSchemaVersionAttr, schema::kSchemaVersionAssets);
  }
}

void Hdf5Output::stitch_group(const std::string& group, const std::vector<PathPart>& parts,
                              const SummaryValues& summaries, int schema_version, const AgentBlocks* agents) {
  const std::string& where = file_->partial_path;
  write_stitched_group(file_->id.get(), where, group, parts, summaries, agents);
  if (schema_version == schema::kSchemaVersionAssets && group != "/") {
    Handle root = make(H5Gopen2(file_->id.get(), "/", H5P_DEFAULT), H5Gclose, "H5Gopen2", where);
    if (H5Aexists(root.get(), schema::kSchemaVersionAttr.data()) > 0)
      check(H5Adelete(root.get(), schema::kSchemaVersionAttr.data()), "H5Adelete", where);
    write_attribute(root.get(), where, schema::kSchemaVersionAttr, schema::kSchemaVersionAssets);
  }
}

void Hdf5Output::commit() {
  const std::string& where = file_->partial_path;
  if (!file_->id.valid()) throw IoError(fmt::format("{}: already committed", path_));
  const int complete = 1;
  check(H5Awrite(file_->complete_attr.get(), H5T_NATIVE_INT, &complete), "H5Awrite",
        where + " attribute complete");
  file_->complete_attr.reset();
  check(H5Fclose(file_->id.release()), "H5Fclose", where);
  file_->output->commit();
  bytes_written_ = file_->output->bytes_written();
}

}  // namespace herdsim::io
