#include "io/run_file.hpp"

#include <fmt/format.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string_view>
#include <system_error>

#include "io/hdf5_schema.hpp"
#include "io/hdf5_support.hpp"
#include "sim/error.hpp"
#include "sim/memory.hpp"
#include "sim/recording_plan.hpp"

namespace herdsim::io {

using namespace hdf5;  // NOLINT: handles and checks shared with the writer

namespace {

std::string child(const std::string& group, std::string_view name) {
  std::string path = group;
  if (path.empty() || path.back() != '/') path += '/';
  path += name;
  return path;
}

bool exists(hid_t file, const std::string& path) {
  // H5Lexists needs every intermediate link to exist: walk the path.
  std::string partial;
  std::string_view rest = path;
  while (!rest.empty()) {
    const auto slash = rest.find('/', 1);
    partial += rest.substr(0, slash);
    if (partial != "/" && H5Lexists(file, partial.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash);
  }
  return true;
}

template <class T>
std::vector<T> read_numeric_attribute(hid_t object, const std::string& where, std::string_view name,
                                      hid_t mem_type) {
  const std::string what = fmt::format("attribute '{}' of {}", name, where);
  Handle attr = make(H5Aopen(object, std::string(name).c_str(), H5P_DEFAULT), H5Aclose, "H5Aopen", what);
  Handle space = make(H5Aget_space(attr.get()), H5Sclose, "H5Aget_space", what);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0) raise("H5Sget_simple_extent_npoints", what);
  std::vector<T> values(static_cast<std::size_t>(n));
  if (n > 0) check(H5Aread(attr.get(), mem_type, values.data()), "H5Aread", what);
  return values;
}

template <class T>
T read_scalar_attribute(hid_t object, const std::string& where, std::string_view name, hid_t mem_type) {
  const auto values = read_numeric_attribute<T>(object, where, name, mem_type);
  if (values.size() != 1) throw IoError(fmt::format("attribute '{}' of {} is not a scalar", name, where));
  return values.front();
}

std::vector<std::string> member_names(hid_t group, const std::string& where) {
  std::vector<std::string> names;
  check(H5Literate(
            group, H5_INDEX_NAME, H5_ITER_INC, nullptr,
            [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
              static_cast<std::vector<std::string>*>(data)->emplace_back(name);
              return 0;
            },
            &names),
        "H5Literate", where);
  return names;
}

/// Dimensions of a dataset.
std::vector<hsize_t> dims_of(hid_t dataset, const std::string& what) {
  Handle space = make(H5Dget_space(dataset), H5Sclose, "H5Dget_space", what);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) raise("H5Sget_simple_extent_ndims", what);
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  check(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), "H5Sget_simple_extent_dims", what);
  return dims;
}

/// The number of elements of `dims`, or IoError when it overflows 64 bits.
std::uint64_t checked_product(const std::vector<hsize_t>& dims, const std::string& path) {
  std::uint64_t n = 1;
  for (const hsize_t d : dims) {
    if (d != 0 && n > std::numeric_limits<std::uint64_t>::max() / d)
      throw IoError(fmt::format("{}: its extent overflows (is the file corrupt?)", path));
    n *= d;
  }
  return n;
}

/// A tampered or corrupt file can declare any extent (unwritten chunks cost no disk): refuse to allocate
/// for a whole dataset that could not fit in memory, before allocating.
void check_read_size(const std::vector<hsize_t>& dims, std::size_t element_bytes, const std::string& path) {
  const std::uint64_t elements = checked_product(dims, path);
  const std::uint64_t limit = sim::available_memory_bytes() / 2;
  if (elements > limit / element_bytes) {
    throw IoError(fmt::format(
        "{}: reading it whole would need {} but {} of memory is available (is the file "
        "corrupt?)",
        path, sim::format_bytes(static_cast<double>(elements) * static_cast<double>(element_bytes)),
        sim::format_bytes(static_cast<double>(limit))));
  }
}

/// "(2, 3, 4)", for messages.
/// A master file of a path split (docs/cluster.md) reads its datasets through virtual datasets, which read
/// a missing or unfinished part silently as fill: every part they read must exist beside the file and be
/// complete. Nothing to do for a file without virtual datasets.
void check_virtual_sources(hid_t file, const std::string& path) {
  std::vector<std::string> datasets;
  check(H5Ovisit(
            file, H5_INDEX_NAME, H5_ITER_INC,
            [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
              if (info->type == H5O_TYPE_DATASET)
                static_cast<std::vector<std::string>*>(data)->push_back(name);
              return 0;
            },
            &datasets),
        "H5Ovisit", path);
  std::vector<std::string> checked;
  for (const auto& name : datasets) {
    Handle ds = make(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", path + ":" + name);
    Handle dcpl = make(H5Dget_create_plist(ds.get()), H5Pclose, "H5Dget_create_plist", path + ":" + name);
    if (H5Pget_layout(dcpl.get()) != H5D_VIRTUAL) continue;
    std::size_t count = 0;
    check(H5Pget_virtual_count(dcpl.get(), &count), "H5Pget_virtual_count", path + ":" + name);
    for (std::size_t i = 0; i < count; ++i) {
      const ssize_t length = H5Pget_virtual_filename(dcpl.get(), i, nullptr, 0);
      if (length < 0) raise("H5Pget_virtual_filename", path + ":" + name);
      std::string source(static_cast<std::size_t>(length) + 1, '\0');
      H5Pget_virtual_filename(dcpl.get(), i, source.data(), source.size());
      source.resize(static_cast<std::size_t>(length));
      if (source == "." || std::find(checked.begin(), checked.end(), source) != checked.end()) continue;
      checked.push_back(source);
      // Relative names are looked up beside the master file (where the run put its .parts folder).
      const std::filesystem::path part = std::filesystem::path(source).is_absolute()
                                             ? std::filesystem::path(source)
                                             : std::filesystem::path(path).parent_path() / source;
      std::error_code ec;
      if (!std::filesystem::exists(part, ec))
        throw IoError(
            fmt::format("{}: the part file {} that /{} reads is missing (keep a master file and its "
                        ".parts folder together; docs/cluster.md)",
                        path, part.string(), name));
      if (H5Fis_hdf5(part.c_str()) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        throw IoError(fmt::format("{}: the part file {} that /{} reads is not an HDF5 file", path,
                                  part.string(), name));
      }
      Handle f = make(H5Fopen(part.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, "H5Fopen", part.string());
      if (!has_attribute(f.get(), schema::kComplete) ||
          read_scalar_attribute<int>(f.get(), part.string(), schema::kComplete, H5T_NATIVE_INT) != 1)
        throw IoError(fmt::format("{}: the part file {} that /{} reads is incomplete (complete = 0)", path,
                                  part.string(), name));
    }
  }
}

std::string shape_text(const std::vector<hsize_t>& dims) {
  std::string out = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) out += fmt::format("{}{}", i ? ", " : "", dims[i]);
  return out + (dims.size() == 1 ? ",)" : ")");
}

}  // namespace

struct RunFile::Impl {
  Handle file;

  [[nodiscard]] Handle open_dataset(const std::string& path) const {
    if (!exists(file.get(), path)) throw IoError(fmt::format("run file has no dataset {}", path));
    return make(H5Dopen2(file.get(), path.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", path);
  }

  [[nodiscard]] Handle open_group(const std::string& path) const {
    if (path != "/" && !exists(file.get(), path))
      throw IoError(fmt::format("run file has no group {}", path));
    return make(H5Gopen2(file.get(), path.c_str(), H5P_DEFAULT), H5Gclose, "H5Gopen2", path);
  }

  /// Dimensions of the dataset at path.
  [[nodiscard]] std::vector<hsize_t> dims(const std::string& path) const {
    Handle ds = open_dataset(path);
    return dims_of(ds.get(), path);
  }

  /// A whole 1-D integer dataset.
  [[nodiscard]] std::vector<int> read_ints(const std::string& path) const {
    Handle ds = open_dataset(path);
    const auto dims = dims_of(ds.get(), path);
    if (dims.size() != 1) throw IoError(fmt::format("{} is not one-dimensional", path));
    check_read_size(dims, sizeof(int), path);
    std::vector<int> values(dims[0]);
    if (!values.empty())
      check(H5Dread(ds.get(), H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), "H5Dread", path);
    return values;
  }

  /// A whole 1-D dataset of a numeric type read as T (HDF5 converts).
  template <class T>
  [[nodiscard]] std::vector<T> read_vector(const std::string& path, hid_t mem_type) const {
    Handle ds = open_dataset(path);
    const auto dims = dims_of(ds.get(), path);
    if (dims.size() != 1) throw IoError(fmt::format("{} is not one-dimensional", path));
    check_read_size(dims, sizeof(T), path);
    std::vector<T> values(dims[0]);
    if (!values.empty())
      check(H5Dread(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), "H5Dread", path);
    return values;
  }

  /// A whole 1-D dataset of variable-length strings.
  [[nodiscard]] std::vector<std::string> read_strings(const std::string& path) const {
    Handle ds = open_dataset(path);
    const auto dims = dims_of(ds.get(), path);
    if (dims.size() != 1) throw IoError(fmt::format("{} is not one-dimensional", path));
    check_read_size(dims, sizeof(char*) + 64, path);
    Handle mem = make(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy", path);
    check(H5Tset_size(mem.get(), H5T_VARIABLE), "H5Tset_size", path);
    check(H5Tset_cset(mem.get(), H5T_CSET_UTF8), "H5Tset_cset", path);
    std::vector<char*> raw(dims[0], nullptr);
    std::vector<std::string> out;
    if (raw.empty()) return out;
    check(H5Dread(ds.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), "H5Dread", path);
    out.reserve(raw.size());
    for (const char* text : raw) out.emplace_back(text != nullptr ? text : "");
    Handle space = make(H5Dget_space(ds.get()), H5Sclose, "H5Dget_space", path);
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, raw.data());
    return out;
  }

  /// A whole float64 dataset of any rank, flattened in file (row-major) order, and its dimensions.
  [[nodiscard]] std::vector<double> read_flat(const std::string& path, std::vector<hsize_t>& dims) const {
    Handle ds = open_dataset(path);
    dims = dims_of(ds.get(), path);
    check_read_size(dims, sizeof(double), path);
    std::vector<double> values(checked_product(dims, path));
    if (!values.empty())
      check(H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), "H5Dread",
            path);
    return values;
  }

  /// A whole 1-D or 2-D float64 dataset as (last axis) x (rows), see the header's layout rule.
  [[nodiscard]] Eigen::MatrixXd read_matrix(const std::string& path) const {
    Handle ds = open_dataset(path);
    const auto dims = dims_of(ds.get(), path);
    if (dims.empty() || dims.size() > 2) throw IoError(fmt::format("{} is not a 1-D or 2-D dataset", path));
    check_read_size(dims, sizeof(double), path);
    const auto rows = static_cast<Eigen::Index>(dims[0]);
    const auto cols = dims.size() == 2 ? static_cast<Eigen::Index>(dims[1]) : 1;
    Eigen::MatrixXd out(cols, rows);
    if (out.size() > 0)
      check(H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), "H5Dread", path);
    return out;
  }
};

const PopulationInfo* RunGroupInfo::population(const std::string& name) const {
  const auto it = std::find_if(populations.begin(), populations.end(),
                               [&](const PopulationInfo& p) { return p.name == name; });
  return it == populations.end() ? nullptr : &*it;
}

RunFile::RunFile(const std::string& path, bool allow_incomplete)
    : path_(path), impl_(std::make_unique<Impl>()) {
  silence_hdf5_errors();
  // The error_code overloads: a path that cannot be examined (permissions) is an IoError too, not a
  // std::filesystem_error.
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (ec) throw IoError(fmt::format("cannot open run file {}: {}", path, ec.message()));
    std::string hint;
    if (std::filesystem::exists(path + ".partial", ec))
      hint = fmt::format(" (there is {}.partial: that run did not finish)", path);
    throw IoError(fmt::format("cannot open run file {}: no such file{}", path, hint));
  }
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw IoError(fmt::format("{} is not an HDF5 file", path));
  }
  impl_->file = make(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, "H5Fopen", path);
  Handle root = impl_->open_group("/");
  const hid_t r = root.get();
  if (!has_attribute(r, schema::kSchemaVersionAttr))
    throw IoError(fmt::format("{} is not a herdsim run file (no schema_version attribute)", path));
  info_.schema_version = read_scalar_attribute<int>(r, path, schema::kSchemaVersionAttr, H5T_NATIVE_INT);
  if (info_.schema_version < 1 || info_.schema_version > schema::kSchemaVersionAssets)
    throw IoError(fmt::format("{} has schema_version {}; this herdsim reads schema_version {} and {}", path,
                              info_.schema_version, schema::kSchemaVersion, schema::kSchemaVersionAssets));
  info_.complete = read_scalar_attribute<int>(r, path, schema::kComplete, H5T_NATIVE_INT) == 1;
  if (!info_.complete && !allow_incomplete)
    throw IoError(fmt::format("{} is incomplete (complete = 0): the run that wrote it did not finish", path));
  check_virtual_sources(r, path);
  info_.herdsim_version = read_string_attribute(r, path, schema::kHerdsimVersion);
  info_.seed = read_scalar_attribute<std::uint64_t>(r, path, schema::kSeed, H5T_NATIVE_UINT64);
  info_.scenario = read_string_attribute(r, path, schema::kScenario);
  if (has_attribute(r, schema::kCommandLine))
    info_.command_line = read_string_attribute(r, path, schema::kCommandLine);
  if (has_attribute(r, schema::kCreated)) info_.created = read_string_attribute(r, path, schema::kCreated);
  if (exists(r, "/time")) {
    info_.groups.emplace_back("/");
  } else {
    for (const auto& name : member_names(r, path))
      if (name.rfind(schema::kSweepPrefix, 0) == 0) info_.groups.push_back("/" + name);
    std::sort(info_.groups.begin(), info_.groups.end());
  }
}

RunFile::~RunFile() = default;

RunGroupInfo RunFile::group(const std::string& group) const {
  if (std::find(info_.groups.begin(), info_.groups.end(), group) == info_.groups.end())
    throw IoError(fmt::format("{} has no run group {}", path_, group));
  RunGroupInfo g;
  g.group = group;
  Handle h = impl_->open_group(group);
  g.steps = read_scalar_attribute<int>(h.get(), group, schema::kSteps, H5T_NATIVE_INT);
  g.dt = read_scalar_attribute<double>(h.get(), group, schema::kDt, H5T_NATIVE_DOUBLE);
  g.every = read_scalar_attribute<int>(h.get(), group, schema::kEvery, H5T_NATIVE_INT);
  g.paths_total = read_scalar_attribute<int>(h.get(), group, schema::kPathsTotal, H5T_NATIVE_INT);
  g.paths = read_numeric_attribute<int>(h.get(), group, schema::kPaths, H5T_NATIVE_INT);
  if (has_attribute(h.get(), schema::kSweepPoint))
    g.sweep_point = read_string_attribute(h.get(), group, schema::kSweepPoint);
  if (has_attribute(h.get(), schema::kAssets)) {
    g.assets = read_scalar_attribute<int>(h.get(), group, schema::kAssets, H5T_NATIVE_INT);
    const std::string names = read_string_attribute(h.get(), group, schema::kAssetNames);
    g.asset_names = split_commas(names);
    g.asset_axis = true;
    if (g.assets < 1 || static_cast<int>(g.asset_names.size()) != g.assets)
      throw IoError(fmt::format("{}:{}: attribute assets = {} with {} asset names", path_, group, g.assets,
                                g.asset_names.size()));
  } else {
    g.asset_names = {"asset0"};
  }
  g.wealth_steps = impl_->read_ints(child(group, schema::path(schema::kTime, schema::kStep)));
  const Eigen::MatrixXd t = impl_->read_matrix(child(group, schema::path(schema::kTime, schema::kT)));
  g.wealth_times.assign(t.data(), t.data() + t.size());
  g.decision_steps = impl_->read_ints(child(group, schema::path(schema::kTime, schema::kDecisionStep)));

  const std::string pops = child(group, schema::kPopulations);
  if (!exists(impl_->file.get(), pops)) return g;
  Handle ph = impl_->open_group(pops);
  for (const auto& name : member_names(ph.get(), pops)) {
    PopulationInfo p;
    p.name = name;
    const std::string where = child(pops, name);
    Handle pg = impl_->open_group(where);
    p.kind = read_string_attribute(pg.get(), where, schema::kKind);
    p.count = read_scalar_attribute<int>(pg.get(), where, schema::kCount, H5T_NATIVE_INT);
    p.recorded_agents = read_scalar_attribute<int>(pg.get(), where, schema::kRecordedAgents, H5T_NATIVE_INT);
    const hid_t f = impl_->file.get();
    p.has_trajectories = exists(f, child(where, schema::kWealth)) && exists(f, child(where, schema::kAmount));
    p.has_theory = exists(f, child(where, schema::path(schema::kTheory, schema::kAmount)));
    p.has_transcripts = exists(f, child(where, schema::path(schema::kTranscripts, schema::kStep)));
    if (has_attribute(pg.get(), schema::kBackend))
      p.backend = read_string_attribute(pg.get(), where, schema::kBackend);
    if (has_attribute(pg.get(), schema::kProtocol))
      p.protocol = read_string_attribute(pg.get(), where, schema::kProtocol);
    if (exists(f, child(where, schema::kParams))) {
      Handle params = impl_->open_group(child(where, schema::kParams));
      p.params = member_names(params.get(), child(where, schema::kParams));
    }
    if (exists(f, child(where, schema::kSummary))) {
      Handle summary = impl_->open_group(child(where, schema::kSummary));
      p.summary_stats =
          split_commas(read_string_attribute(summary.get(), child(where, schema::kSummary), schema::kStats));
    }
    g.populations.push_back(std::move(p));
  }
  check_consistency(g);
  return g;
}

void RunFile::check_consistency(const RunGroupInfo& g) const {
  // Every size a reader allocates by comes from these attributes; a file whose attributes do not match
  // its datasets (edited, truncated, written by something else) is refused here, with what differs.
  const auto fail = [&](const std::string& what) {
    throw IoError(fmt::format("{}: {}: {} (the file is inconsistent: edited, or not written by herdsim?)",
                              path_, g.group, what));
  };
  if (g.steps < 1) fail(fmt::format("attribute steps = {} (must be >= 1)", g.steps));
  if (!(g.dt > 0.0) || !std::isfinite(g.dt)) fail(fmt::format("attribute dt = {} (must be > 0)", g.dt));
  if (g.every < 1) fail(fmt::format("attribute every = {} (must be >= 1)", g.every));
  if (g.paths_total < 1) fail(fmt::format("attribute paths_total = {} (must be >= 1)", g.paths_total));
  if (g.paths.empty() || g.paths.size() > static_cast<std::size_t>(g.paths_total))
    fail(fmt::format("attribute paths lists {} paths of paths_total = {}", g.paths.size(), g.paths_total));
  for (std::size_t i = 0; i < g.paths.size(); ++i) {
    if (g.paths[i] < 0 || g.paths[i] >= g.paths_total || (i > 0 && g.paths[i] <= g.paths[i - 1]))
      fail(fmt::format("attribute paths is not a sorted list of distinct paths in [0, {})", g.paths_total));
  }

  // The recorded rows: wealth rows 0, e, 2e, ... and n; decision rows 0, e, ... < n (a prefix of them in
  // an incomplete file, with the decisions that precede the last wealth row).
  const auto expect_prefix = [&](const std::vector<int>& got, std::string_view name, bool wealth) {
    const auto full = static_cast<std::size_t>(wealth ? sim::recorded_state_rows(g.steps, g.every)
                                                      : sim::recorded_decision_rows(g.steps, g.every));
    if (got.size() > full || (info_.complete && got.size() != full))
      fail(fmt::format("time/{} has {} rows; steps = {} and every = {} give {}", name, got.size(), g.steps,
                       g.every, full));
    for (std::size_t i = 0; i < got.size(); ++i) {
      const long long want = std::min<long long>(static_cast<long long>(i) * g.every, g.steps);
      if (got[i] != want) fail(fmt::format("time/{} row {} is step {}, expected {}", name, i, got[i], want));
    }
  };
  expect_prefix(g.wealth_steps, schema::kStep, true);
  expect_prefix(g.decision_steps, schema::kDecisionStep, false);
  if (g.wealth_steps.empty()) fail("time/step has no rows");
  const std::size_t rows = g.wealth_steps.size();
  std::size_t decisions_before = 0;  // decision rows that precede the last wealth row
  for (const int k : g.decision_steps) decisions_before += k < g.wealth_steps.back() ? 1 : 0;
  if (g.decision_steps.size() != decisions_before)
    fail(fmt::format("time/decision_step has {} rows where {} precede the last recorded step {}",
                     g.decision_steps.size(), decisions_before, g.wealth_steps.back()));
  if (g.wealth_times.size() != rows)
    fail(fmt::format("time/t has {} rows, time/step {}", g.wealth_times.size(), rows));
  const auto paths = static_cast<hsize_t>(g.paths.size());
  const auto decisions = static_cast<hsize_t>(g.decision_steps.size());
  const auto expect_shape = [&](const std::string& dataset, const std::vector<hsize_t>& want) {
    const std::vector<hsize_t> got = impl_->dims(child(g.group, dataset));
    if (got != want)
      fail(fmt::format("{} has shape {}, expected {}", dataset, shape_text(got), shape_text(want)));
  };
  // Schema 2 (several assets): an asset axis after the row axis of market/ and amount, first in theory/.
  const auto assets = static_cast<hsize_t>(g.assets);
  const auto per_path = [&](hsize_t row_count) {
    return g.asset_axis ? std::vector<hsize_t>{row_count, assets, paths}
                        : std::vector<hsize_t>{row_count, paths};
  };
  expect_shape(schema::path(schema::kMarket, schema::kPrice), per_path(rows));
  if (g.asset_axis) expect_shape(schema::path(schema::kMarket, schema::kFundamental), per_path(rows));
  if (g.asset_axis && exists(impl_->file.get(), child(g.group, schema::path(schema::kMarket, schema::kFlow))))
    expect_shape(schema::path(schema::kMarket, schema::kFlow), per_path(decisions));
  expect_shape(schema::path(schema::kMarket, schema::kReturn), per_path(decisions));
  expect_shape(schema::path(schema::kMarket, schema::kShock), per_path(decisions));

  for (const PopulationInfo& p : g.populations) {
    const std::string dir = schema::path(schema::kPopulations, p.name);
    const std::string base = dir + "/";  // in messages
    if (p.count < 1) fail(fmt::format("{}: attribute count = {} (must be >= 1)", base, p.count));
    if (p.recorded_agents < 0 || p.recorded_agents > p.count)
      fail(fmt::format("{}: attribute recorded_agents = {} outside [0, count = {}]", base, p.recorded_agents,
                       p.count));
    const auto m = static_cast<hsize_t>(p.recorded_agents);
    const hid_t f = impl_->file.get();
    if (exists(f, child(g.group, schema::path(dir, schema::kWealth))) !=
        exists(f, child(g.group, schema::path(dir, schema::kAmount))))
      fail(fmt::format("{}: one of wealth and amount is missing", base));
    if (p.has_trajectories) {
      expect_shape(schema::path(dir, schema::kWealth), {rows, paths, m});
      expect_shape(schema::path(dir, schema::kAmount), g.asset_axis
                                                           ? std::vector<hsize_t>{decisions, assets, paths, m}
                                                           : std::vector<hsize_t>{decisions, paths, m});
    }
    if (p.has_theory) {
      const auto n = static_cast<hsize_t>(g.steps);
      expect_shape(schema::path(dir, schema::kTheory, schema::kAmount),
                   g.asset_axis ? std::vector<hsize_t>{assets, n, m} : std::vector<hsize_t>{n, m});
    }
    for (const std::string& param : p.params) {
      const std::vector<hsize_t> got = impl_->dims(child(g.group, schema::path(dir, schema::kParams, param)));
      if (got.size() != 1 || got[0] != m)
        fail(fmt::format("{}{}/{} has shape {}, expected ({},) (recorded_agents)", base, schema::kParams,
                         param, shape_text(got), m));
    }
    if (!p.summary_stats.empty()) {
      const auto q = static_cast<hsize_t>(p.summary_stats.size());
      expect_shape(schema::path(dir, schema::kSummary, schema::kWealth), {rows, q});
      expect_shape(schema::path(dir, schema::kSummary, schema::kAmount), {decisions, q});
      expect_shape(schema::path(dir, schema::kSummary, schema::kProportion), {decisions, q});
    }
  }
}

Eigen::MatrixXd RunFile::market(const std::string& group, const std::string& name) const {
  return impl_->read_matrix(child(group, schema::path(schema::kMarket, name)));
}

bool RunFile::has_market(const std::string& group, const std::string& name) const {
  return exists(impl_->file.get(), child(group, schema::path(schema::kMarket, name)));
}

std::vector<Eigen::MatrixXd> RunFile::market_assets(const std::string& group, const std::string& name) const {
  const std::string path = child(group, schema::path(schema::kMarket, name));
  std::vector<hsize_t> dims;
  const std::vector<double> flat = impl_->read_flat(path, dims);
  if (dims.size() == 2) dims.insert(dims.begin() + 1, 1);  // schema 1: one asset
  if (dims.size() != 3) throw IoError(fmt::format("{} is not a (row, asset, path) dataset", path));
  const auto rows = static_cast<Eigen::Index>(dims[0]);
  const auto assets = static_cast<Eigen::Index>(dims[1]);
  const auto paths = static_cast<Eigen::Index>(dims[2]);
  std::vector<Eigen::MatrixXd> out(static_cast<std::size_t>(assets), Eigen::MatrixXd(paths, rows));
  for (Eigen::Index r = 0; r < rows; ++r)
    for (Eigen::Index a = 0; a < assets; ++a)
      for (Eigen::Index p = 0; p < paths; ++p)
        out[static_cast<std::size_t>(a)](p, r) = flat[static_cast<std::size_t>((r * assets + a) * paths + p)];
  return out;
}

void RunFile::read_row(const std::string& group, const std::string& population, const std::string& dataset,
                       int row, Eigen::MatrixXd& out, int agent_begin, int agents, int asset) const {
  const std::string path = child(group, schema::path(schema::kPopulations, population, dataset));
  Handle ds = impl_->open_dataset(path);
  auto dims = dims_of(ds.get(), path);
  // Schema 2's amount (row, asset, path, agent): one asset's (path, agent) slab.
  const bool asset_axis = dims.size() == 4;
  const hsize_t assets = asset_axis ? dims[1] : 1;
  if (asset_axis) dims.erase(dims.begin() + 1);
  if (dims.size() != 3) throw IoError(fmt::format("{} is not a (row, path, agent) dataset", path));
  if (asset < 0 || static_cast<hsize_t>(asset) >= assets)
    throw IoError(fmt::format("{}: asset {} out of range ({} assets)", path, asset, assets));
  const auto m_total = static_cast<int>(dims[2]);
  if (agents < 0) agents = m_total - agent_begin;
  if (row < 0 || static_cast<hsize_t>(row) >= dims[0] || agent_begin < 0 || agents < 0 ||
      agent_begin + agents > m_total)
    throw IoError(fmt::format("{}: row {} agents [{}, {}) out of range ({} rows, {} agents)", path, row,
                              agent_begin, agent_begin + agents, dims[0], m_total));
  out.resize(agents, static_cast<Eigen::Index>(dims[1]));
  if (out.size() == 0) return;
  std::vector<hsize_t> start{static_cast<hsize_t>(row), 0, static_cast<hsize_t>(agent_begin)};
  std::vector<hsize_t> count{1, dims[1], static_cast<hsize_t>(agents)};
  if (asset_axis) {
    start.insert(start.begin() + 1, static_cast<hsize_t>(asset));
    count.insert(count.begin() + 1, 1);
  }
  Handle file_space = make(H5Dget_space(ds.get()), H5Sclose, "H5Dget_space", path);
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
        "H5Sselect_hyperslab", path);
  Handle mem_space = make_space({static_cast<hsize_t>(out.size())}, {}, path);
  check(H5Dread(ds.get(), H5T_NATIVE_DOUBLE, mem_space.get(), file_space.get(), H5P_DEFAULT, out.data()),
        "H5Dread", path);
}

Eigen::VectorXd RunFile::param(const std::string& group, const std::string& population,
                               const std::string& name) const {
  const Eigen::MatrixXd m =
      impl_->read_matrix(child(group, schema::path(schema::kPopulations, population, schema::kParams, name)));
  return m.reshaped();
}

Eigen::MatrixXd RunFile::theory_amount(const std::string& group, const std::string& population,
                                       int asset) const {
  const std::string path =
      child(group, schema::path(schema::kPopulations, population, schema::kTheory, schema::kAmount));
  if (impl_->dims(path).size() != 3) {
    if (asset != 0) throw IoError(fmt::format("{}: asset {} out of range (1 asset)", path, asset));
    return impl_->read_matrix(path);
  }
  // Schema 2: (asset, decision_step, agent).
  std::vector<hsize_t> dims;
  const std::vector<double> flat = impl_->read_flat(path, dims);
  if (asset < 0 || static_cast<hsize_t>(asset) >= dims[0])
    throw IoError(fmt::format("{}: asset {} out of range ({} assets)", path, asset, dims[0]));
  const auto n = static_cast<Eigen::Index>(dims[1]);
  const auto m = static_cast<Eigen::Index>(dims[2]);
  return Eigen::Map<const Eigen::MatrixXd>(flat.data() + static_cast<std::size_t>(asset * n * m), m, n);
}

Transcripts RunFile::transcripts(const std::string& group, const std::string& population) const {
  const std::string base = child(group, schema::path(schema::kPopulations, population, schema::kTranscripts));
  if (!exists(impl_->file.get(), base))
    throw IoError(fmt::format("{}: population {} of {} has no transcripts", path_, population, group));
  const auto at = [&](std::string_view name) { return child(base, name); };
  Transcripts t;
  t.step = impl_->read_vector<int>(at(schema::kStep), H5T_NATIVE_INT);
  t.path = impl_->read_vector<int>(at(schema::kPath), H5T_NATIVE_INT);
  t.agent = impl_->read_vector<int>(at(schema::kAgent), H5T_NATIVE_INT);
  t.stage = impl_->read_vector<int>(at(schema::kStage), H5T_NATIVE_INT);
  t.prompt_hash = impl_->read_vector<std::uint64_t>(at(schema::kPromptHash), H5T_NATIVE_UINT64);
  t.seed = impl_->read_vector<std::uint64_t>(at(schema::kRequestSeed), H5T_NATIVE_UINT64);
  t.output = impl_->read_strings(at(schema::kOutput));
  t.status = impl_->read_strings(at(schema::kStatus));
  t.values = impl_->read_matrix(at(schema::kValues));
  t.valid = impl_->read_vector<std::uint8_t>(at(schema::kValid), H5T_NATIVE_UINT8);
  t.prompt_tokens = impl_->read_vector<int>(at(schema::kPromptTokens), H5T_NATIVE_INT);
  t.cached_tokens = impl_->read_vector<int>(at(schema::kCachedTokens), H5T_NATIVE_INT);
  t.completion_tokens = impl_->read_vector<int>(at(schema::kCompletionTokens), H5T_NATIVE_INT);
  t.time_ms = impl_->read_vector<double>(at(schema::kTimeMs), H5T_NATIVE_DOUBLE);
  if (exists(impl_->file.get(), at(schema::kCacheHit)))
    t.cache_hit = impl_->read_vector<std::uint8_t>(at(schema::kCacheHit), H5T_NATIVE_UINT8);
  const std::size_t n = t.step.size();
  if (!t.cache_hit.empty() && t.cache_hit.size() != n)
    throw IoError(fmt::format("{}: the datasets under {} differ in length", path_, base));
  for (const std::size_t m :
       {t.path.size(), t.agent.size(), t.stage.size(), t.prompt_hash.size(), t.seed.size(), t.output.size(),
        t.status.size(), static_cast<std::size_t>(t.values.cols()), t.valid.size(), t.prompt_tokens.size(),
        t.cached_tokens.size(), t.completion_tokens.size(), t.time_ms.size()}) {
    if (m != n) throw IoError(fmt::format("{}: the datasets under {} differ in length", path_, base));
  }
  return t;
}

Eigen::MatrixXd RunFile::summary(const std::string& group, const std::string& population,
                                 const std::string& quantity) const {
  return impl_->read_matrix(
      child(group, schema::path(schema::kPopulations, population, schema::kSummary, quantity)));
}

std::string analysis_sidecar_path(const std::string& run_path) {
  std::filesystem::path p(run_path);
  if (p.extension() == ".h5" || p.extension() == ".hdf5") p.replace_extension();
  p += ".analysis.json";
  return p.string();
}

}  // namespace herdsim::io
