#include "io/master_file.hpp"

#include <fmt/format.h>
#include <hdf5.h>
#include <hdf5_hl.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "io/hdf5_schema.hpp"
#include "io/hdf5_support.hpp"
#include "io/output_file.hpp"
#include "io/run_file.hpp"
#include "sim/error.hpp"

namespace herdsim::io {

using hdf5::check;
using hdf5::Handle;
using hdf5::make;

int check_part(const std::string& part, const std::vector<ExpectedGroup>& expected) {
  if (!std::filesystem::exists(part)) throw IoError(fmt::format("part file {} is missing", part));
  const RunFile file(part);  // IoError when not a run file or incomplete
  std::vector<std::string> want;
  for (const auto& e : expected) want.push_back(e.group);
  std::sort(want.begin(), want.end());
  std::vector<std::string> have = file.info().groups;
  std::sort(have.begin(), have.end());
  if (expected.empty() && have.size() == 1 && have.front() == "/") have.clear();  // a part with no run
  if (have != want) {
    auto list = [](const std::vector<std::string>& v) {
      return v.empty() ? std::string("none") : fmt::format("{}", fmt::join(v, ", "));
    };
    throw IoError(fmt::format("part file {} holds the groups {}, expected {}", part, list(have), list(want)));
  }
  for (const auto& e : expected) {
    const RunGroupInfo g = file.group(e.group);  // every dataset's shape checked against its attributes
    if (g.sweep_point != e.sweep_point || g.steps != e.steps || g.paths_total != e.paths_total)
      throw IoError(fmt::format(
          "part file {}: group {} is the run '{}' ({} steps, {} paths), expected '{}' ({} "
          "steps, {} paths)",
          part, e.group, g.sweep_point, g.steps, g.paths_total, e.sweep_point, e.steps, e.paths_total));
  }
  return file.info().schema_version;
}

namespace {

/// The attributes of dimension scales: object references into the file that holds them, never copied
/// as they are (reattach_scales makes them again).
bool scale_reference(std::string_view name) {
  return name == "DIMENSION_LIST" || name == "REFERENCE_LIST";
}

/// Copies every attribute of `from` to `to` but `skip` and the scale references (values as stored, in
/// their file types); one `to` has already is replaced.
void copy_attributes(hid_t from, hid_t to, const std::string& where, std::string_view skip) {
  struct Context {
    hid_t to;
    const std::string* where;
    std::string_view skip;
  } context{to, &where, skip};
  check(H5Aiterate2(
            from, H5_INDEX_NAME, H5_ITER_INC, nullptr,
            [](hid_t object, const char* name, const H5A_info_t*, void* data) -> herr_t {
              const auto& c = *static_cast<Context*>(data);
              if (name == c.skip || scale_reference(name)) return 0;
              const std::string what = fmt::format("{} attribute {}", *c.where, name);
              if (H5Aexists(c.to, name) > 0) check(H5Adelete(c.to, name), "H5Adelete", what);
              Handle attr = make(H5Aopen(object, name, H5P_DEFAULT), H5Aclose, "H5Aopen", what);
              Handle type = make(H5Aget_type(attr.get()), H5Tclose, "H5Aget_type", what);
              Handle space = make(H5Aget_space(attr.get()), H5Sclose, "H5Aget_space", what);
              const hssize_t n = H5Sget_simple_extent_npoints(space.get());
              std::vector<unsigned char> buffer(static_cast<std::size_t>(std::max<hssize_t>(n, 1)) *
                                                H5Tget_size(type.get()));
              check(H5Aread(attr.get(), type.get(), buffer.data()), "H5Aread", what);
              Handle copy = make(H5Acreate2(c.to, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                                 H5Aclose, "H5Acreate2", what);
              const herr_t written = H5Awrite(copy.get(), type.get(), buffer.data());
              H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT,
                              buffer.data());  // variable-length strings
              check(written, "H5Awrite", what);
              return 0;
            },
            &context),
        "H5Aiterate2", where);
}

/// Every dataset under `group` of `file`, by its path in the file.
std::vector<std::string> datasets_under(hid_t file, const std::string& group, const std::string& where) {
  Handle g = make(H5Gopen2(file, group.c_str(), H5P_DEFAULT), H5Gclose, "H5Gopen2", where + ":" + group);
  struct Context {
    std::string prefix;
    std::vector<std::string> names;
  } context{group == "/" ? std::string("/") : group + "/", {}};
  check(H5Ovisit(
            g.get(), H5_INDEX_NAME, H5_ITER_INC,
            [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
              auto& c = *static_cast<Context*>(data);
              if (info->type == H5O_TYPE_DATASET) c.names.push_back(c.prefix + name);
              return 0;
            },
            &context),
        "H5Ovisit", where + ":" + group);
  return context.names;
}

/// H5Ocopy copies the object references of dimension scales (DIMENSION_LIST, REFERENCE_LIST: HDF5 keeps
/// them in variable-length data, which the copy does not remap) as they are, addresses in the source
/// file. The attachments are made again in the copy, by name: the copied group has the source's names.
void reattach_scales(hid_t in, hid_t out, const std::string& group, const std::string& where) {
  struct Attachment {
    std::string dataset;
    unsigned dim;
    std::string scale;
  };
  std::vector<Attachment> attachments;
  for (const auto& name : datasets_under(in, group, where)) {
    Handle ds = make(H5Dopen2(in, name.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", name);
    if (H5Aexists(ds.get(), "DIMENSION_LIST") <= 0) continue;
    Handle space = make(H5Dget_space(ds.get()), H5Sclose, "H5Dget_space", name);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    for (int dim = 0; dim < rank; ++dim) {
      if (H5DSget_num_scales(ds.get(), static_cast<unsigned>(dim)) <= 0) continue;  // none on this axis
      std::vector<std::string> scales;
      int index = 0;
      check(H5DSiterate_scales(
                ds.get(), static_cast<unsigned>(dim), &index,
                [](hid_t, unsigned, hid_t scale, void* data) -> herr_t {
                  const ssize_t length = H5Iget_name(scale, nullptr, 0);
                  if (length <= 0) return -1;
                  std::string scale_name(static_cast<std::size_t>(length) + 1, '\0');
                  H5Iget_name(scale, scale_name.data(), scale_name.size());
                  scale_name.resize(static_cast<std::size_t>(length));
                  static_cast<std::vector<std::string>*>(data)->push_back(scale_name);
                  return 0;
                },
                &scales),
            "H5DSiterate_scales", name);
      for (auto& scale : scales) attachments.push_back({name, static_cast<unsigned>(dim), std::move(scale)});
    }
  }
  // The copied attributes hold the source's addresses: removed before anything is attached again.
  for (const auto& a : attachments) {
    for (const auto& [object, attribute] :
         {std::pair{a.dataset, "DIMENSION_LIST"}, {a.scale, "REFERENCE_LIST"}}) {
      Handle ds =
          make(H5Dopen2(out, object.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", where + ":" + object);
      if (H5Aexists(ds.get(), attribute) > 0)
        check(H5Adelete(ds.get(), attribute), "H5Adelete", where + ":" + object);
    }
  }
  for (const auto& a : attachments) {
    Handle ds =
        make(H5Dopen2(out, a.dataset.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", where + ":" + a.dataset);
    Handle scale =
        make(H5Dopen2(out, a.scale.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", where + ":" + a.scale);
    check(H5DSattach_scale(ds.get(), scale.get(), a.dim), "H5DSattach_scale",
          fmt::format("{}:{} axis {} <- {}", where, a.dataset, a.dim, a.scale));
  }
}

/// The shape of a dataset.
std::vector<hsize_t> shape_of(hid_t dataset, const std::string& where) {
  Handle space = make(H5Dget_space(dataset), H5Sclose, "H5Dget_space", where);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) hdf5::raise("H5Sget_simple_extent_ndims", where);
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  check(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), "H5Sget_simple_extent_dims", where);
  return dims;
}

/// The axis called `axis` (path, agent) in the dataset's `dims` attribute ("step,path,agent"), or -1.
int named_axis(hid_t dataset, const std::string& where, std::string_view axis) {
  if (!hdf5::has_attribute(dataset, schema::kDims)) return -1;
  const auto names = hdf5::split_commas(hdf5::read_string_attribute(dataset, where, schema::kDims));
  const auto at = std::find(names.begin(), names.end(), axis);
  return at == names.end() ? -1 : static_cast<int>(at - names.begin());
}

/// The population a dataset or group below a run group belongs to ("/sweep_001/populations/noise/wealth"
/// -> "noise"; "populations/noise" -> "noise"), or "" outside populations/.
std::string population_of(const std::string& name) {
  const std::string marker = std::string(schema::kPopulations) + "/";
  std::size_t at = name.rfind("/" + marker);
  at = at == std::string::npos ? (name.rfind(marker, 0) == 0 ? 0 : std::string::npos) : at + 1;
  if (at == std::string::npos) return {};
  const std::size_t begin = at + marker.size();
  return name.substr(begin, name.find('/', begin) - begin);
}

/// Replaces the int attribute (scalar, or a list when `values` has other than one element) `name`.
void replace_int_attribute(hid_t object, const std::string& where, std::string_view name,
                           const std::vector<int>& values, bool scalar) {
  const std::string what = fmt::format("{} attribute {}", where, name);
  if (H5Aexists(object, name.data()) > 0) check(H5Adelete(object, name.data()), "H5Adelete", what);
  const auto count = static_cast<hsize_t>(values.size());
  Handle space = make(scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &count, nullptr), H5Sclose,
                      "H5Screate", what);
  Handle attr = make(H5Acreate2(object, name.data(), H5T_STD_I32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                     H5Aclose, "H5Acreate2", what);
  check(H5Awrite(attr.get(), H5T_NATIVE_INT, values.data()), "H5Awrite", what);
}

/// The name of axis `axis` in the dataset's `dims` attribute.
std::string axis_name_of(hid_t dataset, const std::string& where, int axis) {
  const auto names = hdf5::split_commas(hdf5::read_string_attribute(dataset, where, schema::kDims));
  return static_cast<std::size_t>(axis) < names.size() ? names[static_cast<std::size_t>(axis)] : "?";
}

/// Writes 0 .. n - 1 as the int dataset `name` of `file` (a split axis' coordinate: each part numbers its
/// own block from 0), with the attributes of `source`, the first part's.
void write_counting_coordinate(hid_t file, const std::string& name, const std::string& what, hid_t source,
                               int n) {
  std::vector<int> all(static_cast<std::size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  const auto count = static_cast<hsize_t>(all.size());
  Handle space = make(H5Screate_simple(1, &count, nullptr), H5Sclose, "H5Screate_simple", what);
  Handle out =
      make(H5Dcreate2(file, name.c_str(), H5T_STD_I32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
           H5Dclose, "H5Dcreate2", what);
  if (n > 0)
    check(H5Dwrite(out.get(), H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, all.data()), "H5Dwrite", what);
  copy_attributes(source, out.get(), what, {});
}

/// A virtual dataset `name` in `file` stitching the dataset of the same name in every part along `axis`
/// (the parts in order, part k holding extents[k] along it; every other axis and the type must agree).
void write_virtual_dataset(hid_t file, const std::string& where, const std::string& name, int axis,
                           const std::vector<PathPart>& parts, const std::vector<int>& extents,
                           const std::vector<Handle>& inputs) {
  const std::string what = where + ":" + name;
  Handle first = make(H5Dopen2(inputs.front().get(), name.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2",
                      parts.front().path + ":" + name);
  Handle type = make(H5Dget_type(first.get()), H5Tclose, "H5Dget_type", what);
  std::vector<hsize_t> total = shape_of(first.get(), what);
  const auto a = static_cast<std::size_t>(axis);
  std::vector<std::vector<hsize_t>> shapes;
  total[a] = 0;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    const std::string source = parts[k].path + ":" + name;
    if (H5Lexists(inputs[k].get(), name.c_str(), H5P_DEFAULT) <= 0)
      throw IoError(fmt::format("part file {} has no dataset {}", parts[k].path, name));
    Handle ds = make(H5Dopen2(inputs[k].get(), name.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", source);
    Handle part_type = make(H5Dget_type(ds.get()), H5Tclose, "H5Dget_type", source);
    std::vector<hsize_t> shape = shape_of(ds.get(), source);
    std::vector<hsize_t> expected = shapes.empty() ? shape : shapes.front();
    if (a < expected.size()) expected[a] = static_cast<hsize_t>(extents[k]);
    if (shape != expected || H5Tequal(type.get(), part_type.get()) <= 0)
      throw IoError(fmt::format("part file {}: dataset {} has the shape ({}), expected ({}) for its {} {}s",
                                parts[k].path, name, fmt::join(shape, ", "), fmt::join(expected, ", "),
                                extents[k], axis_name_of(first.get(), what, axis)));
    total[a] += shape[a];
    shapes.push_back(std::move(shape));
  }
  Handle space = make(H5Screate_simple(static_cast<int>(total.size()), total.data(), nullptr), H5Sclose,
                      "H5Screate_simple", what);
  Handle dcpl = make(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, "H5Pcreate", what);
  std::vector<hsize_t> start(total.size(), 0);
  for (std::size_t k = 0; k < parts.size(); ++k) {
    Handle source = make(H5Screate_simple(static_cast<int>(shapes[k].size()), shapes[k].data(), nullptr),
                         H5Sclose, "H5Screate_simple", what);
    check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, shapes[k].data(), nullptr),
          "H5Sselect_hyperslab", what);
    check(H5Pset_virtual(dcpl.get(), space.get(), parts[k].link.c_str(), name.c_str(), source.get()),
          "H5Pset_virtual", fmt::format("{} <- {}", what, parts[k].link));
    start[a] += shapes[k][a];
  }
  check(H5Sselect_all(space.get()), "H5Sselect_all", what);
  Handle out =
      make(H5Dcreate2(file, name.c_str(), type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
           H5Dclose, "H5Dcreate2", what);
  copy_attributes(first.get(), out.get(), what, {});
}

}  // namespace

namespace {

/// Consecutive rows [first, first + count) of one part's transcripts.
struct RowBlock {
  std::size_t part = 0;
  hsize_t first = 0;
  hsize_t count = 0;
};

/// A 1-D dataset of `file` read as `T` (memory type `mem`).
template <class T>
std::vector<T> read_column(hid_t file, const std::string& name, hid_t mem, const std::string& where) {
  Handle d = make(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", where + ":" + name);
  const std::vector<hsize_t> shape = shape_of(d.get(), where + ":" + name);
  std::vector<T> out(shape.empty() ? 0 : static_cast<std::size_t>(shape[0]));
  if (!out.empty())
    check(H5Dread(d.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), "H5Dread", where + ":" + name);
  return out;
}

/// The rows of the transcripts group `transcripts` of every part in the order one process writes them: at
/// each step, the path-independent requests (path -1: asked alike by every rank, decided once and shared,
/// so every part holds them all) from the first part, then every part's own per-path requests in part
/// order, which is path order.
std::vector<RowBlock> transcript_order(const std::vector<Handle>& inputs, const std::vector<PathPart>& parts,
                                       const std::string& transcripts) {
  std::vector<std::vector<int>> steps, paths;
  std::vector<int> all_steps;
  for (std::size_t r = 0; r < inputs.size(); ++r) {
    steps.push_back(read_column<int>(inputs[r].get(), transcripts + "/" + std::string(schema::kStep),
                                     H5T_NATIVE_INT, parts[r].path));
    paths.push_back(read_column<int>(inputs[r].get(), transcripts + "/" + std::string(schema::kPath),
                                     H5T_NATIVE_INT, parts[r].path));
    if (steps.back().size() != paths.back().size())
      throw IoError(fmt::format("{}: {} has {} steps and {} paths", parts[r].path, transcripts,
                                steps.back().size(), paths.back().size()));
    all_steps.insert(all_steps.end(), steps.back().begin(), steps.back().end());
  }
  std::sort(all_steps.begin(), all_steps.end());
  all_steps.erase(std::unique(all_steps.begin(), all_steps.end()), all_steps.end());
  std::vector<RowBlock> blocks;
  const auto add = [&](std::size_t part, std::size_t row) {
    if (!blocks.empty() && blocks.back().part == part && blocks.back().first + blocks.back().count == row) {
      ++blocks.back().count;
    } else {
      blocks.push_back({part, static_cast<hsize_t>(row), 1});
    }
  };
  for (const int k : all_steps) {
    for (std::size_t row = 0; row < steps[0].size(); ++row)
      if (steps[0][row] == k && paths[0][row] < 0) add(0, row);
    for (std::size_t r = 0; r < inputs.size(); ++r)
      for (std::size_t row = 0; row < steps[r].size(); ++row)
        if (steps[r][row] == k && paths[r][row] >= 0) add(r, row);
  }
  return blocks;
}

/// Writes `name` (a transcripts dataset, rows first) into `file` as an ordinary dataset of the parts' rows
/// in `blocks`' order, with the first part's attributes.
void write_rows(hid_t file, const std::string& where, const std::string& name,
                const std::vector<RowBlock>& blocks, const std::vector<Handle>& inputs,
                const std::vector<PathPart>& parts) {
  const std::string what = where + ":" + name;
  Handle first = make(H5Dopen2(inputs.front().get(), name.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2",
                      parts.front().path + ":" + name);
  Handle type = make(H5Dget_type(first.get()), H5Tclose, "H5Dget_type", what);
  std::vector<hsize_t> shape = shape_of(first.get(), parts.front().path + ":" + name);
  if (shape.empty()) throw IoError(fmt::format("{}: a transcripts dataset without rows", what));
  hsize_t total = 0;
  for (const auto& b : blocks) total += b.count;
  shape[0] = total;
  Handle space = make(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr), H5Sclose,
                      "H5Screate_simple", what);
  Handle out =
      make(H5Dcreate2(file, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
           H5Dclose, "H5Dcreate2", what);
  copy_attributes(first.get(), out.get(), what, {});
  if (name.substr(name.rfind('/') + 1) == "request") {
    // The request coordinate: each part numbers its own rows from 0; the whole run's are 0 .. total - 1.
    std::vector<long long> all(static_cast<std::size_t>(total));
    std::iota(all.begin(), all.end(), 0LL);
    if (!all.empty())
      check(H5Dwrite(out.get(), H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, all.data()), "H5Dwrite",
            what);
    return;
  }
  hsize_t row_elements = 1;
  for (std::size_t d = 1; d < shape.size(); ++d) row_elements *= shape[d];
  std::vector<unsigned char> buffer;
  hsize_t at = 0;
  for (const auto& b : blocks) {
    const std::string from = parts[b.part].path + ":" + name;
    Handle in = make(H5Dopen2(inputs[b.part].get(), name.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", from);
    std::vector<hsize_t> start(shape.size(), 0), count = shape;
    count[0] = b.count;
    Handle memory = make(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose,
                         "H5Screate_simple", what);
    Handle source = make(H5Dget_space(in.get()), H5Sclose, "H5Dget_space", from);
    start[0] = b.first;
    check(H5Sselect_hyperslab(source.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
          "H5Sselect_hyperslab", from);
    buffer.assign(static_cast<std::size_t>(b.count * row_elements) * H5Tget_size(type.get()), 0);
    check(H5Dread(in.get(), type.get(), memory.get(), source.get(), H5P_DEFAULT, buffer.data()), "H5Dread",
          from);
    start[0] = at;
    check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
          "H5Sselect_hyperslab", what);
    const herr_t written =
        H5Dwrite(out.get(), type.get(), memory.get(), space.get(), H5P_DEFAULT, buffer.data());
    H5Dvlen_reclaim(type.get(), memory.get(), H5P_DEFAULT, buffer.data());  // variable-length strings
    check(written, "H5Dwrite", what);
    at += b.count;
  }
}

/// Replaces the scalar attribute `name` of `object`.
void replace_attribute(hid_t object, const std::string& where, std::string_view name, hid_t file_type,
                       hid_t mem_type, const void* value) {
  const std::string what = fmt::format("{} attribute {}", where, name);
  const std::string text(name);
  if (H5Aexists(object, text.c_str()) > 0) check(H5Adelete(object, text.c_str()), "H5Adelete", what);
  Handle space = make(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate", what);
  Handle attr = make(H5Acreate2(object, text.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                     H5Aclose, "H5Acreate2", what);
  check(H5Awrite(attr.get(), mem_type, value), "H5Awrite", what);
}

/// The inference accounting of the population above `transcripts` in the master (`file`), made that of the
/// whole run from its merged transcripts: requests, invalid answers and token counts; the inference time is
/// the longest of the parts' (they ran at the same time).
void write_merged_accounting(hid_t file, const std::string& where, const std::string& transcripts,
                             const std::vector<Handle>& inputs) {
  const std::string population = transcripts.substr(0, transcripts.rfind('/'));
  const auto column = [&](std::string_view leaf) {
    return read_column<std::int64_t>(file, transcripts + "/" + std::string(leaf), H5T_NATIVE_INT64, where);
  };
  const auto sum = [](const std::vector<std::int64_t>& v) {
    return std::accumulate(v.begin(), v.end(), std::int64_t{0});
  };
  const std::vector<std::int64_t> valid = column(schema::kValid);
  const auto requests = static_cast<std::int64_t>(valid.size());
  const std::int64_t invalid = requests - sum(valid);
  Handle group =
      make(H5Oopen(file, population.c_str(), H5P_DEFAULT), H5Oclose, "H5Oopen", where + ":" + population);
  const std::string what = where + ":" + population;
  if (H5Aexists(group.get(), std::string(schema::kInferenceRequests).c_str()) <= 0) return;  // no accounting
  replace_attribute(group.get(), what, schema::kInferenceRequests, H5T_STD_I64LE, H5T_NATIVE_INT64,
                    &requests);
  replace_attribute(group.get(), what, schema::kInferenceInvalid, H5T_STD_I64LE, H5T_NATIVE_INT64, &invalid);
  for (const std::string_view tokens :
       {schema::kPromptTokens, schema::kCachedTokens, schema::kCompletionTokens}) {
    const std::int64_t total = sum(column(tokens));
    replace_attribute(group.get(), what, tokens, H5T_STD_I64LE, H5T_NATIVE_INT64, &total);
  }
  double seconds = 0.0;
  for (const auto& input : inputs) {
    Handle attr =
        make(H5Aopen_by_name(input.get(), population.c_str(), std::string(schema::kInferenceSeconds).c_str(),
                             H5P_DEFAULT, H5P_DEFAULT),
             H5Aclose, "H5Aopen_by_name", what);
    double part = 0.0;
    check(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &part), "H5Aread", what);
    seconds = std::max(seconds, part);
  }
  replace_attribute(group.get(), what, schema::kInferenceSeconds, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                    &seconds);
}

}  // namespace

static_assert(std::is_same_v<hid_t, std::int64_t>, "write_stitched_group takes a hid_t as std::int64_t");

void write_stitched_group(std::int64_t file, const std::string& where, const std::string& group,
                          const std::vector<PathPart>& parts, const SummaryValues& summaries,
                          const AgentBlocks* agents) {
  hdf5::silence_hdf5_errors();
  if (parts.empty()) throw IoError(fmt::format("{}: a split with no parts", where));
  std::vector<Handle> inputs;
  int paths_total = 0;
  for (const auto& part : parts) {
    inputs.push_back(
        make(H5Fopen(part.path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, "H5Fopen", part.path));
    paths_total += part.paths;
  }
  if (agents != nullptr) paths_total = parts.front().paths;  // every part runs every path
  std::vector<int> path_extents;
  for (const auto& part : parts) path_extents.push_back(part.paths);
  // The blocks of the population `name` belongs to, or nullptr when it is not split.
  const auto blocks_of = [&](const std::string& name) -> const std::vector<int>* {
    if (agents == nullptr) return nullptr;
    const auto it = agents->find(population_of(name));
    return it == agents->end() ? nullptr : &it->second;
  };
  const auto total_of = [](const std::vector<int>& blocks) {
    return std::accumulate(blocks.begin(), blocks.end(), 0);
  };
  const hid_t first = inputs.front().get();
  const std::string prefix = group == "/" ? std::string("/") : group + "/";
  {
    Handle in = make(H5Gopen2(first, group.c_str(), H5P_DEFAULT), H5Gclose, "H5Gopen2", parts.front().path);
    Handle out = make(group == "/" ? H5Gopen2(file, "/", H5P_DEFAULT)
                                   : H5Gcreate2(file, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                      H5Gclose, "H5Gcreate2", where + ":" + group);
    copy_attributes(in.get(), out.get(), where + ":" + group, schema::kComplete);
    std::vector<int> all(static_cast<std::size_t>(paths_total));
    std::iota(all.begin(), all.end(), 0);
    replace_int_attribute(out.get(), where + ":" + group, schema::kPathsTotal, {paths_total}, true);
    replace_int_attribute(out.get(), where + ":" + group, schema::kPaths, all, false);
  }
  // Every object below the group, parents before children (H5Ovisit's pre-order).
  struct Object {
    std::string name;
    H5O_type_t type;
  };
  std::vector<Object> objects;
  {
    Handle in = make(H5Gopen2(first, group.c_str(), H5P_DEFAULT), H5Gclose, "H5Gopen2", parts.front().path);
    check(H5Ovisit(
              in.get(), H5_INDEX_NAME, H5_ITER_INC,
              [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
                if (std::string_view(name) != ".")
                  static_cast<std::vector<Object>*>(data)->push_back({name, info->type});
                return 0;
              },
              &objects),
          "H5Ovisit", parts.front().path + ":" + group);
  }
  // LLM populations' transcripts/: one row per request, in the one-process order (transcript_order).
  const std::string transcripts_dir = "/" + std::string(schema::kTranscripts);
  std::map<std::string, std::vector<RowBlock>> transcripts;
  for (const auto& object : objects) {
    const std::string name = prefix + object.name;
    const std::string what = where + ":" + name;
    const std::string parent = name.substr(0, name.rfind('/'));
    // Its request rows (dims "request,..."), not the coordinates of its other axes (transcripts/value).
    const auto request_rows = [&] {
      Handle in = make(H5Dopen2(first, name.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", parts.front().path);
      return named_axis(in.get(), parts.front().path + ":" + name, "request") == 0;
    };
    if (object.type == H5O_TYPE_DATASET && parent.size() >= transcripts_dir.size() &&
        parent.compare(parent.size() - transcripts_dir.size(), transcripts_dir.size(), transcripts_dir) ==
            0 &&
        request_rows()) {
      auto order = transcripts.find(parent);
      if (order == transcripts.end())
        order = transcripts.emplace(parent, transcript_order(inputs, parts, parent)).first;
      write_rows(file, where, name, order->second, inputs, parts);
      continue;
    }
    if (object.type == H5O_TYPE_GROUP) {
      Handle in = make(H5Gopen2(first, name.c_str(), H5P_DEFAULT), H5Gclose, "H5Gopen2", parts.front().path);
      Handle out = make(H5Gcreate2(file, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                        "H5Gcreate2", what);
      copy_attributes(in.get(), out.get(), what, {});
      // A split population's group (".../populations/NAME"): the whole population's count.
      const std::vector<int>* blocks = blocks_of(name);
      const std::string population_group =
          "/" + std::string(schema::kPopulations) + "/" + population_of(name);
      if (blocks != nullptr && name.size() >= population_group.size() &&
          name.compare(name.size() - population_group.size(), population_group.size(), population_group) ==
              0) {
        replace_int_attribute(out.get(), what, schema::kCount, {total_of(*blocks)}, true);
        replace_int_attribute(out.get(), what, schema::kRecordedAgents, {total_of(*blocks)}, true);
      }
      continue;
    }
    if (object.type != H5O_TYPE_DATASET) continue;
    Handle in = make(H5Dopen2(first, name.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", parts.front().path);
    const std::vector<int>* blocks = blocks_of(name);
    // The axis stitched: path (a path split), agent (the datasets of a split population), or none.
    const std::string_view axis_name = agents == nullptr ? schema::kPath : schema::kAgent;
    const int axis = agents == nullptr || blocks != nullptr
                         ? named_axis(in.get(), parts.front().path + ":" + name, axis_name)
                         : -1;
    const std::vector<int>& extents = blocks != nullptr ? *blocks : path_extents;
    const std::string_view leaf = std::string_view(name).substr(name.rfind('/') + 1);
    // A statistic over paths and agents (dims "...,stat" in a summary group), not a coordinate of one.
    const bool summary = name.find("/" + std::string(schema::kSummary) + "/") != std::string::npos &&
                         shape_of(in.get(), what).size() == 2;
    if (axis == 0 && leaf == axis_name && shape_of(in.get(), what).size() == 1) {
      // The split axis' coordinate: each part numbers its own block from 0; the whole run's are 0 .. n - 1.
      write_counting_coordinate(file, name, what, in.get(),
                                blocks != nullptr ? total_of(*blocks) : paths_total);
    } else if (axis >= 0) {
      write_virtual_dataset(file, where, name, axis, parts, extents, inputs);
    } else {
      check(H5Ocopy(first, name.c_str(), file, name.c_str(), H5P_DEFAULT, H5P_DEFAULT), "H5Ocopy", what);
      if (summary) {
        // The part's summary is over its own paths; the whole run's, computed over every path, replaces it.
        const auto values = summaries.find(name);
        Handle out = make(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", what);
        hsize_t elements = 1;
        for (const hsize_t d : shape_of(out.get(), what)) elements *= d;
        if (values == summaries.end() || values->second.size() != elements)
          throw IoError(fmt::format("{}: the summary over every path has {} values, the dataset {}", what,
                                    values == summaries.end() ? 0 : values->second.size(), elements));
        check(H5Dwrite(out.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values->second.data()),
              "H5Dwrite", what);
      }
    }
  }
  for (const auto& entry : transcripts) write_merged_accounting(file, where, entry.first, inputs);
  reattach_scales(first, file, group, where);
}

namespace {

/// Replaces every virtual dataset of `in` copied into `out` (H5Ocopy keeps the mapping, which points
/// into the parts) by an ordinary dataset holding what it reads, copied one row (first axis) at a time.
void materialize_virtual_datasets(hid_t in, hid_t out, const std::string& master, const std::string& where) {
  for (const auto& name : datasets_under(in, "/", master)) {
    Handle source = make(H5Dopen2(in, name.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", master + ":" + name);
    Handle dcpl =
        make(H5Dget_create_plist(source.get()), H5Pclose, "H5Dget_create_plist", master + ":" + name);
    if (H5Pget_layout(dcpl.get()) != H5D_VIRTUAL) continue;
    const std::string what = where + ":" + name;
    check(H5Ldelete(out, name.c_str(), H5P_DEFAULT), "H5Ldelete", what);
    Handle type = make(H5Dget_type(source.get()), H5Tclose, "H5Dget_type", what);
    const std::vector<hsize_t> shape = shape_of(source.get(), master + ":" + name);
    Handle space = make(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr), H5Sclose,
                        "H5Screate_simple", what);
    Handle target =
        make(H5Dcreate2(out, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
             H5Dclose, "H5Dcreate2", what);
    copy_attributes(source.get(), target.get(), what, {});
    if (shape.empty() || std::find(shape.begin(), shape.end(), hsize_t{0}) != shape.end()) continue;
    std::vector<hsize_t> row = shape;
    row[0] = 1;
    hsize_t row_elements = 1;
    for (const hsize_t d : row) row_elements *= d;
    std::vector<unsigned char> buffer(static_cast<std::size_t>(row_elements) * H5Tget_size(type.get()));
    Handle memory = make(H5Screate_simple(static_cast<int>(row.size()), row.data(), nullptr), H5Sclose,
                         "H5Screate_simple", what);
    std::vector<hsize_t> start(shape.size(), 0);
    for (hsize_t r = 0; r < shape[0]; ++r) {
      start[0] = r;
      check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, row.data(), nullptr),
            "H5Sselect_hyperslab", what);
      check(H5Dread(source.get(), type.get(), memory.get(), space.get(), H5P_DEFAULT, buffer.data()),
            "H5Dread", master + ":" + name);
      check(H5Dwrite(target.get(), type.get(), memory.get(), space.get(), H5P_DEFAULT, buffer.data()),
            "H5Dwrite", what);
    }
  }
}

}  // namespace

std::uint64_t merge_run_file(const std::string& master, const std::string& output) {
  hdf5::silence_hdf5_errors();
  std::vector<std::string> groups;
  {
    const RunFile file(master);  // complete, a run file; each group's consistency is checked on read
    groups = file.info().groups;
    for (const auto& g : groups) (void)file.group(g);
  }
  OutputFile claimed(output, OutputFile::OnFailure::remove, "-o", {master});
  const std::string& where = claimed.partial_path();
  Handle fapl = make(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "H5Pcreate", where);
  check(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), "H5Pset_fclose_degree", where);
  check(H5Pset_file_locking(fapl.get(), 0, 1), "H5Pset_file_locking", where);  // OutputFile holds the lock
  // Default access, as io::RunFile opens it: the file may be open in this process already.
  Handle in = make(H5Fopen(master.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, "H5Fopen", master);
  Handle out =
      make(H5Fcreate(where.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, "H5Fcreate", where);
  {
    Handle in_root = make(H5Gopen2(in.get(), "/", H5P_DEFAULT), H5Gclose, "H5Gopen2", master);
    Handle out_root = make(H5Gopen2(out.get(), "/", H5P_DEFAULT), H5Gclose, "H5Gopen2", where);
    copy_attributes(in_root.get(), out_root.get(), master, schema::kComplete);
    const int incomplete = 0;
    Handle space = make(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate", where);
    Handle complete = make(H5Acreate2(out_root.get(), schema::kComplete.data(), H5T_STD_I32LE, space.get(),
                                      H5P_DEFAULT, H5P_DEFAULT),
                           H5Aclose, "H5Acreate2", where + " attribute complete");
    check(H5Awrite(complete.get(), H5T_NATIVE_INT, &incomplete), "H5Awrite", where);
    // Every root member, following links (the source name resolves an external link to its target);
    // dimension scales are attached again in the copy (reattach_scales).
    Handle copy = make(H5Pcreate(H5P_OBJECT_COPY), H5Pclose, "H5Pcreate", where);
    check(H5Pset_copy_object(copy.get(), H5O_COPY_EXPAND_EXT_LINK_FLAG | H5O_COPY_EXPAND_SOFT_LINK_FLAG),
          "H5Pset_copy_object", where);
    std::vector<std::string> members;
    check(H5Literate(
              in_root.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
              [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
                static_cast<std::vector<std::string>*>(data)->emplace_back(name);
                return 0;
              },
              &members),
          "H5Literate", master);
    for (const auto& name : members) {
      check(H5Ocopy(in.get(), name.c_str(), out.get(), name.c_str(), copy.get(), H5P_DEFAULT), "H5Ocopy",
            fmt::format("{}:/{} -> {}", master, name, where));
    }
    materialize_virtual_datasets(in.get(), out.get(), master, where);
    for (const auto& name : members) {  // after every copy: a scale may be in another member (a single run)
      H5O_info_t info{};
      check(H5Oget_info_by_name(in.get(), name.c_str(), &info, H5P_DEFAULT), "H5Oget_info_by_name", master);
      if (info.type == H5O_TYPE_GROUP) reattach_scales(in.get(), out.get(), "/" + name, where);
    }
    const int done = 1;
    check(H5Awrite(complete.get(), H5T_NATIVE_INT, &done), "H5Awrite", where);
  }
  check(H5Fclose(out.release()), "H5Fclose", where);
  claimed.commit();
  return claimed.bytes_written();
}

}  // namespace herdsim::io
